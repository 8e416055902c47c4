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

func main() {
	conn, err := amqp.Dial(producers.Env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
	if err != nil {
		producers.Fail(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		producers.Fail(err)
	}
	if err := ch.Confirm(false); err != nil {
		producers.Fail(err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	queue := producers.Env("QUEUE", "tasks")
	exchange := producers.Env("RESULTS_EXCHANGE", queue+".results")
	wait, _ := strconv.Atoi(producers.Env("WAIT_SECONDS", "0"))
	task, body := producers.TaskFromArgs()

	var deliveries <-chan amqp.Delivery
	if wait > 0 {
		if err := ch.ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
			producers.Fail(err)
		}
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			producers.Fail(err)
		}
		if err := ch.QueueBind(q.Name, task.ID, exchange, false, nil); err != nil {
			producers.Fail(err)
		}
		if deliveries, err = ch.Consume(q.Name, "", false, true, false, false, nil); err != nil {
			producers.Fail(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false,
		amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent,
			MessageId: task.ID, Body: body})
	if err != nil {
		producers.Fail(err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		producers.Fail(fmt.Errorf("publish not confirmed: %v", err))
	}
	select {
	case r := <-returns:
		producers.Fail(fmt.Errorf("unroutable: %s %s", r.ReplyText, r.RoutingKey))
	default:
	}
	producers.Out(map[string]interface{}{"submitted": task})
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
			producers.Out(map[string]interface{}{"result": res})
			return
		case <-timeout:
			fmt.Fprintf(os.Stderr, "no result for %s in %ds\n", task.ID, wait)
			os.Exit(2)
		}
	}
}
