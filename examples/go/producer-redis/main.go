// A producer for an agentscaler pool on Redis (docs/protocol.md section 9):
// puts one task on the pool's list (LPUSH) or stream (XADD ... task <JSON>)
// and, with WAIT_SECONDS, waits for its Result on the results stream
// (entries with fields id and result).
//
//	REDIS_URL=redis://127.0.0.1:6379/0 QUEUE=tasks [QUEUE_TYPE=stream]
//	RESULTS=tasks.results WAIT_SECONDS=600 producer-redis '{"repo": "x"}'
//
// Prints {"submitted": <message>} and then {"result": <Result>}; exits 2
// when no result came in time.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	producers "agentscaler.io/examples/producers"
	"github.com/redis/go-redis/v9"
)

func main() {
	opt, err := redis.ParseURL(producers.Env("REDIS_URL", "redis://127.0.0.1:6379/0"))
	if err != nil {
		producers.Fail(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	queue := producers.Env("QUEUE", "tasks")
	results := producers.Env("RESULTS", queue+".results")
	wait, _ := strconv.Atoi(producers.Env("WAIT_SECONDS", "0"))
	task, body := producers.TaskFromArgs()

	// Where the results stream ends now: a result can only come after.
	since := "0-0"
	if wait > 0 {
		last, err := rdb.XRevRangeN(ctx, results, "+", "-", 1).Result()
		if err != nil {
			producers.Fail(err)
		}
		if len(last) > 0 {
			since = last[0].ID
		}
	}
	if os.Getenv("QUEUE_TYPE") == "stream" {
		err = rdb.XAdd(ctx, &redis.XAddArgs{Stream: queue,
			Values: map[string]interface{}{"task": string(body)}}).Err()
	} else {
		err = rdb.LPush(ctx, queue, body).Err()
	}
	if err != nil {
		producers.Fail(err)
	}
	producers.Out(map[string]interface{}{"submitted": task})
	if wait == 0 {
		return
	}
	end := time.Now().Add(time.Duration(wait) * time.Second)
	for time.Now().Before(end) {
		block := time.Until(end)
		if block > 5*time.Second {
			block = 5 * time.Second
		}
		got, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{results, since},
			Count: 100, Block: block}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			producers.Fail(err)
		}
		for _, s := range got {
			for _, m := range s.Messages {
				since = m.ID
				if m.Values["id"] != task.ID {
					continue
				}
				var res producers.Result
				if err := json.Unmarshal([]byte(fmt.Sprint(m.Values["result"])), &res); err != nil {
					producers.Fail(err)
				}
				producers.Out(map[string]interface{}{"result": res})
				return
			}
		}
	}
	fmt.Fprintf(os.Stderr, "no result for %s in %ds\n", task.ID, wait)
	os.Exit(2)
}
