#!/usr/bin/env python3
"""kube-sim capacity benchmark (loopback, bounded in time).

Method
  1. Start kube-sim (plain HTTP, controllers on, default history) on free ports.
  2. Writes: T client threads, each with its own keep-alive HTTP/1.1 connection, POST
     small ConfigMaps (one 8-byte data key) as fast as the server answers, for D seconds.
     Reported: successful creates per second (201s / wall time) and p50/p99 latency.
     The client shares the 2 cores with the server, so this is a lower bound.
  3. Watches: open W watches (?watch=1&resourceVersion=<now>) on one collection with
     raw sockets from this process, check every one got its 200 + chunked headers,
     then make one write and count the watches that deliver the MODIFIED event
     (fan-out) and how long the last one took.
  4. Writes with the W watches still open on *another* collection (watchers idle).
Usage: tools/kube-sim/bench.py [--threads 8] [--seconds 5] [--watches 500]
"""

import argparse
import http.client
import json
import os
import select
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
from kubesim_proc import start_kube_sim, stop_kube_sim  # noqa: E402


def start(extra=()):
    return start_kube_sim(["--port", "0", "--admin-port", "0"] + list(extra))


def writes(port, threads, seconds, ns, prefix):
    stop_at = time.monotonic() + seconds
    lat = []
    errors = [0]
    lock = threading.Lock()

    def worker(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        local = []
        n = 0
        while time.monotonic() < stop_at:
            body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "%s-%d-%d" % (prefix, i, n)},
                               "data": {"k": "12345678"}})
            t = time.monotonic()
            c.request("POST", "/api/v1/namespaces/%s/configmaps" % ns, body=body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            local.append(time.monotonic() - t)
            if r.status != 201:
                with lock:
                    errors[0] += 1
            n += 1
        c.close()
        with lock:
            lat.extend(local)

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    lat.sort()
    ok = len(lat) - errors[0]
    return {"creates": ok, "errors": errors[0], "seconds": round(wall, 2),
            "writes_per_s": round(ok / wall, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None}


def open_watches(port, n, path, deadline):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n"
                   % path).encode())
        socks.append(s)
    bufs = {s: b"" for s in socks}
    ok = set()
    while len(ok) < n and time.monotonic() < deadline:
        r, _, _ = select.select([s for s in socks if s not in ok], [], [], 0.5)
        for s in r:
            d = s.recv(65536)
            if not d:
                ok.add(s)  # closed: counted below as not ok
                bufs[s] = b"CLOSED"
                continue
            bufs[s] += d
            if b"\r\n\r\n" in bufs[s]:
                ok.add(s)
    good = [s for s in socks if bufs[s].startswith(b"HTTP/1.1 200") and
            b"chunked" in bufs[s]]
    for s in socks:
        bufs[s] = bufs[s].split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in bufs[s] else b""
    return socks, good, bufs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--watches", type=int, default=500)
    a = ap.parse_args()
    t_start = time.monotonic()
    p, info = start()
    port = int(info["url"].rsplit(":", 1)[1])
    try:
        c = http.client.HTTPConnection("127.0.0.1", port)
        for ns in ("bench", "watched"):
            c.request("POST", "/api/v1/namespaces", body=json.dumps(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            c.getresponse().read()
        print("kube-sim bench (pid %d, %d CPUs, Python %s)" % (
            info["pid"], os.cpu_count(), sys.version.split()[0]))
        for th in sorted({1, a.threads}):
            r = writes(port, th, a.seconds, "bench", "t%d" % th)
            print("writes: %2d threads x keep-alive: %7.1f creates/s  p50 %.2f ms  "
                  "p99 %.2f ms  (%d ok, %d errors in %.1f s)" % (
                      th, r["writes_per_s"], r["p50_ms"], r["p99_ms"], r["creates"],
                      r["errors"], r["seconds"]))
        c.request("POST", "/api/v1/namespaces/watched/configmaps", body=json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"},
             "data": {"k": "0"}}))
        rv = json.loads(c.getresponse().read())["metadata"]["resourceVersion"]
        path = "/api/v1/namespaces/watched/configmaps?watch=1&resourceVersion=%s" % rv
        t = time.monotonic()
        socks, good, bufs = open_watches(port, a.watches, path, time.monotonic() + 15)
        t_open = time.monotonic() - t
        print("watches: %d requested, %d open (200 + chunked) after %.2f s" % (
            a.watches, len(good), t_open))
        c.request("PATCH", "/api/v1/namespaces/watched/configmaps/w", body=json.dumps(
            {"data": {"k": "1"}}), headers={"Content-Type": "application/merge-patch+json"})
        c.getresponse().read()
        t = time.monotonic()
        got = set()
        deadline = t + 10
        last = 0.0
        while len(got) < len(good) and time.monotonic() < deadline:
            r, _, _ = select.select([s for s in good if s not in got], [], [], 0.5)
            for s in r:
                bufs[s] += s.recv(65536)
                if b"MODIFIED" in bufs[s]:
                    got.add(s)
                    last = time.monotonic() - t
        print("fan-out: one write delivered to %d/%d open watches; last after %.1f ms"
              % (len(got), len(good), last * 1000))
        r = writes(port, a.threads, min(a.seconds, 3.0), "bench", "w")
        print("writes with %d idle watches open: %7.1f creates/s  p50 %.2f ms  p99 %.2f ms"
              % (len(good), r["writes_per_s"], r["p50_ms"], r["p99_ms"]))
        for s in socks:
            s.close()
    finally:
        stop_kube_sim(p)
    print("total bench time %.1f s" % (time.monotonic() - t_start))


if __name__ == "__main__":
    main()
