// A producer for an agentscaler pool on Redis (docs/protocol.md section 9):
// puts one task on the pool's list (LPUSH) or stream (XADD ... task <JSON>)
// in the envelope agentscaler parses, and with WAIT_SECONDS waits for its
// Result on the results stream (entries with fields id and result).
//
//   REDIS_URL=redis://127.0.0.1:6379/0 QUEUE=tasks [QUEUE_TYPE=stream]
//   RESULTS=tasks.results WAIT_SECONDS=600 node producer-redis.js '{"repo": "x"}'
//
// Prints {"submitted": <message>} and then {"result": <Result>} (one JSON
// per line); exits 2 when no result came in time.
'use strict';
const crypto = require('crypto');
const Redis = require('ioredis');

// W3C trace context, version 00: a new trace and span.
function newTraceparent() {
  return `00-${crypto.randomBytes(16).toString('hex')}-${crypto.randomBytes(8).toString('hex')}-01`;
}

// The task message (DESIGN.md section 6): id (1..253 printable ASCII, no
// spaces; unique in the namespace), payload, and optionally parent,
// resources, traceparent, deadline (RFC 3339).
function taskMessage(payload, extra = {}) {
  return { id: `t-${crypto.randomUUID()}`, payload, traceparent: newTraceparent(), ...extra };
}

async function waitResult(redis, results, id, since, seconds) {
  const end = Date.now() + seconds * 1000;
  let pos = since;
  while (Date.now() < end) {
    const block = Math.max(1, Math.min(5000, end - Date.now()));
    const got = await redis.xread('COUNT', 100, 'BLOCK', block, 'STREAMS', results, pos);
    for (const [, entries] of got || []) {
      for (const [entryId, fields] of entries) {
        pos = entryId;
        const f = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
        if (f.id === id && f.result) return JSON.parse(f.result);
      }
    }
  }
  return null;
}

async function main() {
  const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379/0');
  const queue = process.env.QUEUE || 'tasks';
  const results = process.env.RESULTS || `${queue}.results`;
  const wait = Number(process.env.WAIT_SECONDS || 0);
  const msg = taskMessage(JSON.parse(process.argv[2] || 'null'));
  try {
    // Where the results stream ends now: a result can only come after this.
    let since = '0-0';
    if (wait > 0) {
      const last = await redis.xrevrange(results, '+', '-', 'COUNT', 1);
      if (last.length) since = last[0][0];
    }
    const body = JSON.stringify(msg);
    if (process.env.QUEUE_TYPE === 'stream') await redis.xadd(queue, '*', 'task', body);
    else await redis.lpush(queue, body);
    console.log(JSON.stringify({ submitted: msg }));
    if (wait > 0) {
      const res = await waitResult(redis, results, msg.id, since, wait);
      if (res === null) {
        console.error(`no result for ${msg.id} in ${wait}s`);
        process.exitCode = 2;
      } else {
        console.log(JSON.stringify({ result: res }));
      }
    }
  } finally {
    redis.disconnect();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
