#!/usr/bin/env python3
"""One sandbox's agent for handoff.mode http on kube-sim: the Python
runtime of clients/python (agentscaler.runtime) bound to the sandbox's pod
IP (kube-sim --pod-ip-range 127.77.x.0/24 puts them on loopback), with a
handler driven by the task's payload:

    {"sleep": s}             run s seconds (default 0.05)
    {"fail": reason}         fail with that reason (retryable when
                             "retryable": true), on every attempt or,
                             with "failAttempts": n, on the first n

Every run appends JSON lines to --log: {"event": "started", "id", "pid",
"ip"} when the handler starts and {"event": "done", "id", ...} when it
returns.  The lines are short and written with one O_APPEND write each, so
many agents may share the log.  SIGTERM stops it."""
import argparse
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "clients", "python"))
from agentscaler.protocol import TaskFailed  # noqa: E402
from agentscaler.runtime import Runtime  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=8888)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def log(event, tid, **kw):
        line = dict(event=event, id=tid, pid=os.getpid(), ip=args.host, t=time.time(), **kw)
        os.write(fd, (json.dumps(line) + "\n").encode())

    def handler(task, ctx):
        p = task.get("payload")
        p = p if isinstance(p, dict) else {}
        log("started", task["id"], attempt=ctx.attempt)
        time.sleep(float(p.get("sleep", 0.05)))
        if p.get("fail") and ctx.attempt <= int(p.get("failAttempts", 1 << 30)):
            log("failing", task["id"])
            raise TaskFailed(p["fail"], "asked to fail", retryable=bool(p.get("retryable")))
        log("done", task["id"])
        return {"echo": p, "by": args.host}

    rt = Runtime(handler, port=args.port, host=args.host).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=rt.stop).start())
    log("listening", None)
    rt.done.wait()


if __name__ == "__main__":
    main()
