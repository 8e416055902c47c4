#!/usr/bin/env python3
"""kube-sim agent-sandbox capacity benchmark (loopback, bounded in count and time).

Method, for each (N members, K clients) combination, on a fresh kube-sim:
  1. Start kube-sim (plain HTTP, every controller on, --history 100000 so that watches from
     the list RV never expire, --cold-start-ms and --warm-bind-ms as given) on free loopback
     ports; it is stopped by PID at the end.
  2. Fill: create a SandboxTemplate and a SandboxWarmPool with spec.replicas = N; time until
     status.readyReplicas = N (polled every 0.2 s).
  3. Claims: open one watch on the namespace's SandboxClaims (raw socket, from the list RV),
     then K threads, each with its own keep-alive HTTP/1.1 connection, POST M claims between
     them as fast as the server answers, or paced at --rate creates/s in total. Claims carry
     what agentscaler sends: a deterministic name, the created-by label, the
     client-first-requested-at annotation and the safety-net lifecycle
     {shutdownTime: now + 1 h, shutdownPolicy: Delete}. A claim is bound when the watch
     delivers it with status.sandbox.name set and Ready=True. Reported: create rate (claims
     created / time to send the POSTs), bound rate (bound claims / time from the first POST
     to the last bind), claim-to-bound latency p50/p99 (POST sent -> bound event read, both on
     this process's monotonic clock; it includes --warm-bind-ms), how many adopted a warm
     member (their sandbox is not named after the claim).
  4. Refill: time from the last bind until status.readyReplicas = N again (M new members,
     each Ready --cold-start-ms after its creation).
  5. Release: K threads, per bound claim: POST /sandboxes/<ns>/<sandbox>/finish (admin port)
     then DELETE the claim (API port), on keep-alive connections. Reported: the rate of those
     pairs with p50/p99 call latency, and the release rate (claims / time until a watch on
     Sandboxes saw every released Sandbox DELETED by the garbage collector).
  kube-sim CPU per claim: user + system CPU time of the kube-sim process (/proc/PID/stat)
  over the claim phase (first POST to last bind) or the release phase, divided by the claims
  done. Python runs one thread at a time (GIL), so 1000 / that figure is about the most
  claims/s this machine's kube-sim can serve whatever the client does.
The client shares the 2 cores with the server, so every figure is a lower bound.

Usage: tools/kube-sim/bench_sandbox.py [--members 1000,2000] [--claims 0 (= N)]
         [--clients 1,8,32] [--cold-start-ms 2000] [--warm-bind-ms 50]
         [--phase-timeout 120] [--rate 0] [--profile FILE]
Each phase stops at --phase-timeout seconds and reports what completed in that time.
--profile runs kube-sim in-process under cProfile, one profiler per thread (API handlers,
controllers, GC) counting thread CPU time, merges them when kube-sim exits and writes the
pstats to FILE.<N>-<K>; figures are then much slower: use it to see where the time goes,
not for capacity.
"""

import argparse
import datetime
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
EXT = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/%s/"
SBX = "/apis/agents.x-k8s.io/v1beta1/namespaces/%s/sandboxes"
NS = "bench"


def start(extra, profile=None):
    command = [sys.executable, os.path.abspath(__file__), "--serve-profiled", profile,
               "--"] if profile else None
    return start_kube_sim(["--port", "0", "--admin-port", "0"] + list(extra),
                          command=command)


def cpu_times(pid):
    """(user, system) CPU seconds of a process so far (Linux /proc)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


def stop(p):
    stop_kube_sim(p, timeout=60)  # a profiled kube-sim writes its stats first


class Client:
    """One keep-alive HTTP/1.1 connection; JSON in and out."""

    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.retries = 0

    def req(self, method, path, body=None, ctype="application/json"):
        """-> (status, body); up to 4 retries on a fresh connection when the connection
        fails (so a create may answer 409 AlreadyExists on a retry)."""
        h = {}
        if body is not None:
            body = json.dumps(body)
            h["Content-Type"] = ctype
        for attempt in range(5):
            try:
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.retries += 1
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")

    def json(self, method, path, body=None, ctype="application/json"):
        code, data = self.req(method, path, body, ctype)
        return code, json.loads(data) if data else None

    def close(self):
        self.c.close()


class Watch(threading.Thread):
    """Reads a chunked watch stream on a raw socket and calls on_event(t, event)."""

    def __init__(self, port, path, on_event):
        threading.Thread.__init__(self, daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json"
                           "\r\n\r\n" % path).encode())
        self.on_event = on_event
        self.stopped = False
        self.error = None
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self.sock.recv(65536)
            if not d:
                raise RuntimeError("watch %s: connection closed before headers" % path)
            buf += d
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            raise RuntimeError("watch %s: unexpected response %r" % (path, head[:200]))

    def run(self):
        raw = self.buf
        data = b""
        try:
            while not self.stopped:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                d = self.sock.recv(1 << 20)
                t = time.monotonic()
                if not d:
                    return
                raw += d
                while True:
                    i = raw.find(b"\r\n")
                    if i < 0:
                        break
                    n = int(raw[:i].split(b";")[0], 16)
                    if n == 0:
                        return
                    if len(raw) < i + 2 + n + 2:
                        break
                    data += raw[i + 2:i + 2 + n]
                    raw = raw[i + 2 + n + 2:]
                while True:
                    j = data.find(b"\n")
                    if j < 0:
                        break
                    line, data = data[:j], data[j + 1:]
                    if line.strip():
                        self.on_event(t, json.loads(line))
        except (OSError, ValueError) as e:
            self.error = e

    def close(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def cond(obj, typ):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return None


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def run_clients(k, items, fn, deadline, rate=0.0):
    """Run fn(client_index, item) over items from k threads until done or deadline (no item
    is started after it); rate > 0: item i starts no earlier than i / rate seconds after
    the start (an open-loop offered rate).  Returns (items done, wall seconds)."""
    nxt = [0]
    lock = threading.Lock()
    errors = []

    def worker(i):
        try:
            while True:
                with lock:
                    if nxt[0] >= len(items) or time.monotonic() >= deadline:
                        return
                    item = items[nxt[0]]
                    due = t0 + nxt[0] / rate if rate > 0 else 0
                    nxt[0] += 1
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                fn(i, item)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(k)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("client error: %r" % errors[0])
    return nxt[0], time.monotonic() - t0


def wait_ready(c, n, deadline):
    while time.monotonic() < deadline:
        code, p = c.json("GET", EXT % NS + "sandboxwarmpools/pool")
        if code == 200 and ((p.get("status") or {}).get("readyReplicas") or 0) == n:
            return True
        time.sleep(0.2)
    return False


def one(n, m, k, a):
    res = {"N": n, "M": m, "K": k}
    p, info = start(["--cold-start-ms", str(a.cold_start_ms), "--warm-bind-ms",
                     str(a.warm_bind_ms), "--history", "100000"],
                    "%s.%d-%d" % (a.profile, n, k) if a.profile else None)
    port = int(info["url"].rsplit(":", 1)[1])
    aport = int(info["admin"].rsplit(":", 1)[1])
    try:
        c = Client(port)
        c.json("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": NS}})
        c.json("POST", EXT % NS + "sandboxtemplates", {
            "apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxTemplate",
            "metadata": {"name": "tpl"},
            "spec": {"podTemplate": {"spec": {"containers": [{"name": "agent",
                                                              "image": "agent:1"}]}}}})
        t0 = time.monotonic()
        c.json("POST", EXT % NS + "sandboxwarmpools", {
            "apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool",
            "metadata": {"name": "pool"},
            "spec": {"replicas": n, "sandboxTemplateRef": {"name": "tpl"}}})
        if not wait_ready(c, n, t0 + a.phase_timeout):
            res["fill_s"] = None
            return res
        res["fill_s"] = time.monotonic() - t0

        # ---- claims
        names = ["c-%05d" % i for i in range(m)]
        sent = {}
        bound = {}
        finished = {}
        gone = {}
        lock = threading.Lock()

        def on_claim(t, ev):
            o = ev.get("object") or {}
            nm = (o.get("metadata") or {}).get("name")
            with lock:
                if ev.get("type") == "DELETED":
                    gone.setdefault(nm, t)
                    return
                sb = ((o.get("status") or {}).get("sandbox") or {}).get("name")
                r = cond(o, "Ready")
                if nm not in bound and sb and r and r.get("status") == "True":
                    bound[nm] = (t, sb)
                f = cond(o, "Finished")
                if f and f.get("status") == "True":
                    finished.setdefault(nm, t)

        code, lst = c.json("GET", EXT % NS + "sandboxclaims")
        cw = Watch(port, EXT % NS + "sandboxclaims?watch=1&resourceVersion=%s"
                   % lst["metadata"]["resourceVersion"], on_claim)
        cw.start()
        clients = [Client(port) for _ in range(k)]
        shut = (datetime.datetime.now(datetime.timezone.utc) +
                datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def mk(i, nm):
            body = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
                    "metadata": {"name": nm, "labels": {
                        "agents.x-k8s.io/created-by": "unknown", "agentscaler.io/task": nm},
                        "annotations": {"agents.x-k8s.io/client-first-requested-at":
                                        datetime.datetime.now(datetime.timezone.utc)
                                        .strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
                    "spec": {"warmPoolRef": {"name": "pool"},
                             "lifecycle": {"shutdownTime": shut, "shutdownPolicy": "Delete"}}}
            t = time.monotonic()
            code, data = clients[i].req("POST", EXT % NS + "sandboxclaims", body)
            if code != 201 and not (code == 409 and clients[i].retries):
                raise RuntimeError("create %s: %d %s" % (nm, code, data[:200]))
            with lock:
                sent[nm] = t

        t_claims = time.monotonic()
        cpu0 = cpu_times(p.pid)
        deadline = t_claims + a.phase_timeout
        res["created"], res["create_s"] = run_clients(k, names, mk, deadline, a.rate)
        while time.monotonic() < deadline:
            with lock:
                if len(bound) >= res["created"]:
                    break
            time.sleep(0.01)
        with lock:
            lat = [bound[x][0] - sent[x] for x in bound]
            last = max(bound[x][0] for x in bound) if bound else t_claims
            res["bound"] = len(bound)
            res["warm"] = sum(1 for x in bound if bound[x][1] != x)
            todo = sorted(bound.items())
        res["bound_s"] = last - t_claims
        cpu1 = cpu_times(p.pid)
        res["claim_cpu_ms"] = (sum(cpu1) - sum(cpu0)) * 1000 / max(1, res["bound"])
        res["claim_sys"] = (cpu1[1] - cpu0[1]) / max(1e-9, sum(cpu1) - sum(cpu0))
        res["p50_ms"] = pct(lat, 0.5) * 1000
        res["p99_ms"] = pct(lat, 0.99) * 1000

        # ---- refill
        res["refill_s"] = (time.monotonic() - last) if wait_ready(
            c, n, time.monotonic() + a.phase_timeout) else None

        # ---- release
        sbdel = {}

        def on_sb(t, ev):
            if ev.get("type") == "DELETED":
                with lock:
                    sbdel.setdefault(ev["object"]["metadata"]["name"], t)

        code, lst = c.json("GET", SBX % NS + "?limit=1")
        sw = Watch(port, SBX % NS + "?watch=1&resourceVersion=%s"
                   % lst["metadata"]["resourceVersion"], on_sb)
        sw.start()
        admins = [Client(aport) for _ in range(k)]
        flat, dlat = [], []

        def rel(i, item):
            nm, (_t, sb) = item
            t = time.monotonic()
            code, data = admins[i].req("POST", "/sandboxes/%s/%s/finish" % (NS, sb),
                                       {"phase": "Succeeded"})
            t2 = time.monotonic()
            if code != 200:
                raise RuntimeError("finish %s: %d %s" % (sb, code, data[:200]))
            code, data = clients[i].req("DELETE", EXT % NS + "sandboxclaims/" + nm)
            t3 = time.monotonic()
            if code != 200 and not (code == 404 and clients[i].retries):
                raise RuntimeError("delete %s: %d %s" % (nm, code, data[:200]))
            with lock:
                flat.append(t2 - t)
                dlat.append(t3 - t2)

        t_rel = time.monotonic()
        cpu0 = cpu_times(p.pid)
        deadline = t_rel + a.phase_timeout
        res["release_calls"], res["release_calls_s"] = run_clients(k, todo, rel, deadline)
        want = {sb for _nm, (_t, sb) in todo[:res["release_calls"]]}
        while time.monotonic() < deadline:
            with lock:
                if want <= set(sbdel):
                    break
            time.sleep(0.01)
        with lock:
            done = [sbdel[s] for s in want if s in sbdel]
        res["released"] = len(done)
        cpu1 = cpu_times(p.pid)
        res["release_cpu_ms"] = (sum(cpu1) - sum(cpu0)) * 1000 / max(1, len(done))
        res["release_sys"] = (cpu1[1] - cpu0[1]) / max(1e-9, sum(cpu1) - sum(cpu0))
        res["release_s"] = (max(done) - t_rel) if done else None
        res["finish_p50_ms"] = pct(flat, 0.5) * 1000
        res["finish_p99_ms"] = pct(flat, 0.99) * 1000
        res["delete_p50_ms"] = pct(dlat, 0.5) * 1000
        res["delete_p99_ms"] = pct(dlat, 0.99) * 1000
        res["retries"] = sum(x.retries for x in clients + admins)
        for x in clients + admins + [c]:
            x.close()
        cw.close()
        sw.close()
        return res
    finally:
        stop(p)


def rate(count, secs):
    return count / secs if secs else float("nan")


def report(r):
    if r.get("fill_s") is None:
        print("N=%d K=%d: pool did not reach %d ready members in time" % (r["N"], r["K"],
                                                                           r["N"]))
        return
    print("N=%5d M=%5d K=%2d | fill %6.1f s (%5.0f members/s) | created %5d, %6.0f claims/s | "
          "bound %5d (%d warm) %6.0f claims/s, latency p50 %6.0f ms p99 %6.0f ms, "
          "kube-sim CPU %.2f ms/claim (%.0f%% system) | refill %s" % (
              r["N"], r["M"], r["K"], r["fill_s"], rate(r["N"], r["fill_s"]),
              r["created"], rate(r["created"], r["create_s"]), r["bound"], r["warm"],
              rate(r["bound"], r["bound_s"]), r["p50_ms"], r["p99_ms"], r["claim_cpu_ms"],
              r["claim_sys"] * 100,
              "%.1f s" % r["refill_s"] if r["refill_s"] is not None else "not in time"))
    print("%27s release: %d finish+delete %6.0f claims/s (finish p50 %.1f p99 %.1f ms, "
          "delete p50 %.1f p99 %.1f ms); %d/%d sandboxes gone, %s, kube-sim CPU %.2f "
          "ms/claim (%.0f%% system)" % (
              "", r["release_calls"], rate(r["release_calls"], r["release_calls_s"]),
              r["finish_p50_ms"], r["finish_p99_ms"], r["delete_p50_ms"],
              r["delete_p99_ms"], r["released"], r["release_calls"], "%.0f released/s end to end" % rate(r["released"], r["release_s"])
              if r["release_s"] else "none", r["release_cpu_ms"], r["release_sys"] * 100))
    if r.get("retries"):
        print("%27s (%d requests retried after a connection error)" % ("", r["retries"]))
    sys.stdout.flush()


def serve_profiled(out, argv):
    """kube-sim in this process with a cProfile profiler in every thread."""
    import cProfile
    import pstats
    profs = []
    orig = threading.Thread.run

    def run(self):
        # thread CPU time, not wall time: a thread waiting for the lock or the GIL is
        # not charged, so the figures say where the CPU goes
        prof = cProfile.Profile(time.thread_time)
        profs.append(prof)
        prof.enable()
        try:
            orig(self)
        finally:
            prof.disable()

    threading.Thread.run = run
    from kubesim.main import main as sim_main
    rc = sim_main(argv)
    st = None
    for prof in profs:
        try:
            st = pstats.Stats(prof) if st is None else st.add(prof)
        except TypeError:  # a profiler that never recorded anything
            pass
    if st is not None:
        st.dump_stats(out)
    return rc


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-profiled":
        sys.exit(serve_profiled(sys.argv[2], sys.argv[4:]))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default="1000,2000", help="N values, comma separated")
    ap.add_argument("--claims", type=int, default=0, help="M claims (0 = N)")
    ap.add_argument("--clients", default="1,8,32", help="K values, comma separated")
    ap.add_argument("--cold-start-ms", type=int, default=2000)
    ap.add_argument("--warm-bind-ms", type=int, default=50)
    ap.add_argument("--phase-timeout", type=float, default=120.0)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="offered claim creates/s over all clients (0 = as fast as they go)")
    ap.add_argument("--profile", help="write per-run merged cProfile stats to FILE.<N>-<K>")
    a = ap.parse_args()
    print("kube-sim agent-sandbox bench (%d CPUs, Python %s, cold start %d ms, warm bind "
          "%d ms, offered rate %s)" % (os.cpu_count(), sys.version.split()[0], a.cold_start_ms,
                                       a.warm_bind_ms,
                                       "%g claims/s" % a.rate if a.rate else "unpaced"))
    t = time.monotonic()
    for n in [int(x) for x in a.members.split(",")]:
        for k in [int(x) for x in a.clients.split(",")]:
            report(one(n, a.claims or n, k, a))
    print("total bench time %.1f s" % (time.monotonic() - t))


if __name__ == "__main__":
    main()
