// Package producers holds what the two example producers share: the task
// message agentscaler parses (DESIGN.md section 6) and the Result it
// publishes (docs/protocol/result.schema.json).
package producers

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
)

// Task is the message a producer puts on a pool's queue.  ID: 1..253
// printable ASCII bytes, no spaces, unique in the namespace.
type Task struct {
	ID          string            `json:"id"`
	Parent      string            `json:"parent,omitempty"`
	Payload     json.RawMessage   `json:"payload"`
	Resources   map[string]string `json:"resources,omitempty"`
	Traceparent string            `json:"traceparent,omitempty"`
	Deadline    string            `json:"deadline,omitempty"` // RFC 3339
}

// Result is what became of a task.
type Result struct {
	ID     string          `json:"id"`
	State  string          `json:"state"` // completed | failed
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Reason    string `json:"reason"`
		Message   string `json:"message"`
		Retryable bool   `json:"retryable"`
	} `json:"error,omitempty"`
	Sandbox     json.RawMessage `json:"sandbox"`
	StartedAt   *string         `json:"startedAt"`
	FinishedAt  string          `json:"finishedAt"`
	Traceparent *string         `json:"traceparent"`
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// NewTask makes a task with a new id and a new W3C trace context.
func NewTask(payload json.RawMessage) Task {
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	return Task{
		ID:          "t-" + randHex(16),
		Payload:     payload,
		Traceparent: "00-" + randHex(16) + "-" + randHex(8) + "-01",
	}
}
