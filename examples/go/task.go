// Package producers holds what the two example producers share: the task
// message agentscaler parses (DESIGN.md section 6) and the Result it
// publishes (docs/protocol/result.schema.json).
package producers

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
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

// Env is the environment variable k, or def when it is unset or empty.
func Env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Out prints v as one line of JSON.
func Out(v interface{}) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

// Fail prints err and exits 1.
func Fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// TaskFromArgs is a new task whose payload is the first argument (JSON),
// and its message as bytes.
func TaskFromArgs() (Task, []byte) {
	var payload json.RawMessage
	if len(os.Args) > 1 {
		payload = json.RawMessage(os.Args[1])
	}
	task := NewTask(payload)
	body, err := json.Marshal(task)
	if err != nil {
		Fail(err)
	}
	return task, body
}
