// A producer for an agentscaler pool on RabbitMQ (docs/protocol.md section
// 9): publishes one task to the pool's queue (persistent, message_id = the
// task id, publisher confirms, mandatory) and, with WAIT_SECONDS, waits for
// its Result on the results exchange, where agentscaler publishes each
// Result with routing key = its task id: a private queue bound to exactly
// this id, declared before the task goes out.
//
//	AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F QUEUE=tasks
//	RESULTS_EXCHANGE=tasks.results WAIT_SECONDS=600 producer-rabbitmq '{"repo": "x"}'
//
// Prints {"submitted": <message>} and then {"result": <Result>}; exits 2
// when no result came in time.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	producers "agentscaler.io/examples/producers"
	amqp "github.com/rabbitmq/amqp091-go"
)

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func main() {
	conn, err := amqp.Dial(env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		fail(err)
	}
	if err := ch.Confirm(false); err != nil {
		fail(err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	queue := env("QUEUE", "tasks")
	exchange := env("RESULTS_EXCHANGE", queue+".results")
	wait, _ := strconv.Atoi(env("WAIT_SECONDS", "0"))
	var payload json.RawMessage
	if len(os.Args) > 1 {
		payload = json.RawMessage(os.Args[1])
	}
	task := producers.NewTask(payload)
	body, err := json.Marshal(task)
	if err != nil {
		fail(err)
	}

	var deliveries <-chan amqp.Delivery
	if wait > 0 {
		if err := ch.ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
			fail(err)
		}
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			fail(err)
		}
		if err := ch.QueueBind(q.Name, task.ID, exchange, false, nil); err != nil {
			fail(err)
		}
		if deliveries, err = ch.Consume(q.Name, "", false, true, false, false, nil); err != nil {
			fail(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false,
		amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent,
			MessageId: task.ID, Body: body})
	if err != nil {
		fail(err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		fail(fmt.Errorf("publish not confirmed: %v", err))
	}
	select {
	case r := <-returns:
		fail(fmt.Errorf("unroutable: %s %s", r.ReplyText, r.RoutingKey))
	default:
	}
	out(map[string]interface{}{"submitted": task})
	if wait == 0 {
		return
	}
	timeout := time.After(time.Duration(wait) * time.Second)
	for {
		select {
		case d := <-deliveries:
			d.Ack(false)
			var res producers.Result
			if err := json.Unmarshal(d.Body, &res); err != nil || res.ID != task.ID {
				continue
			}
			out(map[string]interface{}{"result": res})
			return
		case <-timeout:
			fmt.Fprintf(os.Stderr, "no result for %s in %ds\n", task.ID, wait)
			os.Exit(2)
		}
	}
}

func out(v interface{}) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
