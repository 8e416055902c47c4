// A producer for an agentscaler pool on RabbitMQ (docs/protocol.md section
// 9): publishes one task to the pool's queue (persistent, message_id = the
// task id, publisher confirms) and with WAIT_SECONDS waits for its Result
// on the results exchange, where agentscaler publishes each Result with
// routing key = its task id: a private queue bound to exactly this id,
// declared before the task goes out so that the result cannot be missed.
//
//   AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F QUEUE=tasks
//   RESULTS_EXCHANGE=tasks.results WAIT_SECONDS=600 node producer-rabbitmq.js '{"repo": "x"}'
//
// Prints {"submitted": <message>} and then {"result": <Result>}; exits 2
// when no result came in time.
'use strict';
const crypto = require('crypto');
const amqp = require('amqplib');

function newTraceparent() {
  return `00-${crypto.randomBytes(16).toString('hex')}-${crypto.randomBytes(8).toString('hex')}-01`;
}

function taskMessage(payload, extra = {}) {
  return { id: `t-${crypto.randomUUID()}`, payload, traceparent: newTraceparent(), ...extra };
}

async function main() {
  const conn = await amqp.connect(process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2F');
  const queue = process.env.QUEUE || 'tasks';
  const exchange = process.env.RESULTS_EXCHANGE || `${queue}.results`;
  const wait = Number(process.env.WAIT_SECONDS || 0);
  const msg = taskMessage(JSON.parse(process.argv[2] || 'null'));
  try {
    const ch = await conn.createConfirmChannel();
    let resultQueue = null;
    if (wait > 0) {
      await ch.assertExchange(exchange, 'direct', { durable: true });
      resultQueue = (await ch.assertQueue('', { exclusive: true, autoDelete: true })).queue;
      await ch.bindQueue(resultQueue, exchange, msg.id);
    }
    ch.sendToQueue(queue, Buffer.from(JSON.stringify(msg)), {
      persistent: true, contentType: 'application/json', messageId: msg.id,
    });
    await ch.waitForConfirms();
    console.log(JSON.stringify({ submitted: msg }));
    if (resultQueue) {
      const res = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(null), wait * 1000);
        ch.consume(resultQueue, (m) => {
          const r = JSON.parse(m.content.toString());
          ch.ack(m);
          if (r.id === msg.id) { clearTimeout(timer); resolve(r); }
        });
      });
      if (res === null) {
        console.error(`no result for ${msg.id} in ${wait}s`);
        process.exitCode = 2;
      } else {
        console.log(JSON.stringify({ result: res }));
      }
    }
    await ch.close();
  } finally {
    await conn.close();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
