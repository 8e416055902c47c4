"""Simulated agent-sandbox controllers: Sandbox (cold start, expiry, suspend,
Finished), SandboxWarmPool (keep N warm, refill) and SandboxClaim (warm
adoption, cold start, lifecycle).

Shaped like controller-runtime reconcilers: a store event queues the keys it
concerns (the object, its controller owner, the claims waiting on a pool) and a
reconcile recomputes the desired state of that one object, level-triggered.
Indexes kept by the store listener (pool members in creation order by
readiness tier, unbound claims per pool, pools per template) mean no reconcile
scans every object, so the cost of a claim does not grow with the pool size
(upstream keeps an in-memory warm queue per pool for the same reason, #536)."""

import bisect
import collections
import ipaddress
import heapq
import json
import time

from .controllers import Loop
from .util import ApiError, clone, name_hash, now_micro, now_ts, parse_ts

SB = ("agents.x-k8s.io", "sandboxes")
CLAIM = ("extensions.agents.x-k8s.io", "sandboxclaims")
POOL = ("extensions.agents.x-k8s.io", "sandboxwarmpools")
TPL = ("extensions.agents.x-k8s.io", "sandboxtemplates")
L_POOL = "agents.x-k8s.io/warm-pool-sandbox"
L_TPLREF = "agents.x-k8s.io/sandbox-template-ref-hash"
L_TPLHASH = "agents.x-k8s.io/sandbox-template-hash"
L_TPLHASH_OLD = "agents.x-k8s.io/sandbox-pod-template-hash"
L_LAUNCH = "agents.x-k8s.io/launch-type"
L_CREATED = "agents.x-k8s.io/created-by"
L_CLAIMUID = "agents.x-k8s.io/claim-uid"
L_NAMEHASH = "agents.x-k8s.io/sandbox-name-hash"
A_TPLREF = "agents.x-k8s.io/sandbox-template-ref"
A_PODNAME = "agents.x-k8s.io/pod-name"
A_SBNAME = "agents.x-k8s.io/sandbox-name"
A_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
ANN = (("metadata", "annotations"),)   # internal_update(shallow=): annotations only
ADOPT = (("metadata", "labels"), ("metadata", "annotations"),
         ("spec", "podTemplate", "metadata", "annotations"),
         ("spec", "podTemplate", "metadata", "labels"))   # what the adoption patch changes
F_POD = "kube-sim.x-k8s.io/pod-termination"   # stands in for the pod's graceful end
WARM_GRACE = 2.0
WARM_RETRY = 0.5
ALLOWED_LABEL_DOMAINS = ["sandbox.users.io"]
RESTRICTED_ANN = ["kubernetes.io", "k8s.io", "agents.x-k8s.io"]


def _ctrl_ref(o):
    for r in o["metadata"].get("ownerReferences") or []:
        if r.get("controller"):
            return r
    return None


def _cond(o, typ):
    for c in (o.get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return None


def _ready(o):
    c = _cond(o, "Ready")
    return c is not None and c.get("status") == "True"


def _set_cond(conds, typ, status, reason, message, gen, t):
    for c in conds:
        if c.get("type") == typ:
            if c.get("status") != status:
                c["lastTransitionTime"] = t
            c.update({"status": status, "reason": reason, "message": message,
                      "observedGeneration": gen})
            return
    conds.append({"type": typ, "status": status, "reason": reason, "message": message,
                  "observedGeneration": gen, "lastTransitionTime": t})


def _claim_expiry(lc, claim):
    """min(shutdownTime, Finished time + ttlSecondsAfterFinished) as epoch seconds."""
    if not lc:
        return None
    exp = parse_ts(lc.get("shutdownTime"))
    ttl = lc.get("ttlSecondsAfterFinished")
    if ttl is not None:
        fin = _cond(claim, "Finished")
        if fin is not None and fin.get("status") == "True":
            ft = parse_ts(fin.get("lastTransitionTime"))
            if ft is not None:
                exp = ft + ttl if exp is None else min(exp, ft + ttl)
    return exp


def _normalize_created_by(v):
    return v if v in ("go-client", "python-client", "controller") else "unknown"


def _domain_ok(key, allowed):
    if "/" not in key:
        return False
    dom = key.split("/", 1)[0]
    return any(dom == a or dom.endswith("." + a) for a in allowed)


class _Members:
    """The Sandboxes one pool controls, with its adoption candidates (pool-owned, pool
    and template-ref labels, not deleting) in three tiers kept in creation order:
    Ready with pod IPs, pod IPs only, no pod IP.  Creation order is (creationTimestamp,
    resourceVersion when the member was first seen), so "oldest" is exact even within
    one creationTimestamp second."""

    __slots__ = ("objs", "order", "tier", "tiers", "deleting", "ready")

    def __init__(self):
        self.objs = {}               # name -> stored Sandbox
        self.order = {}              # name -> (creationTimestamp, first RV)
        self.tier = {}               # name -> 0/1/2 while a candidate
        self.tiers = ([], [], [])    # sorted [(order, name)] per tier
        self.deleting = 0
        self.ready = 0               # Ready members not being deleted

    def remove(self, name):
        o = self.objs.pop(name, None)
        if o is None:
            return
        if o["metadata"].get("deletionTimestamp"):
            self.deleting -= 1
        elif _ready(o):
            self.ready -= 1
        key = self.order.pop(name)
        t = self.tier.pop(name, None)
        if t is not None:
            lst = self.tiers[t]
            i = bisect.bisect_left(lst, (key, name))
            del lst[i]

    def put(self, name, o, rv):
        """Adds or refreshes a member; returns True when it became a candidate with a
        pod IP (a claim waiting for one can go on)."""
        key = self.order.get(name)
        before = self.tier.get(name)
        if key is None:
            key = (o["metadata"].get("creationTimestamp") or "", rv)
        else:
            self.remove(name)
        self.objs[name] = o
        self.order[name] = key
        md = o["metadata"]
        if md.get("deletionTimestamp"):
            self.deleting += 1
            return False
        rdy = _ready(o)
        if rdy:
            self.ready += 1
        lab = md.get("labels") or {}
        if not (lab.get(L_POOL) and lab.get(L_TPLREF)):
            return False
        t = 2
        if (o.get("status") or {}).get("podIPs"):
            t = 0 if rdy else 1
        self.tier[name] = t
        bisect.insort(self.tiers[t], (key, name))
        return t < 2 and (before is None or before == 2)

    def pick(self):
        """The oldest Ready candidate with an IP, else the oldest with an IP, else None."""
        for t in (0, 1):
            if self.tiers[t]:
                return self.objs[self.tiers[t][0][1]]
        return None

    def candidates(self):
        return bool(self.tier)


_NO_MEMBERS = _Members()


def _pool_uid(o):
    if o is None:
        return None
    r = _ctrl_ref(o)
    if r is not None and r.get("kind") == "SandboxWarmPool":
        return r.get("uid")
    return None


def _tpl_name(pool):
    return ((pool.get("spec") or {}).get("sandboxTemplateRef") or {}).get("name")


def _pool_name(claim):
    return ((claim.get("spec") or {}).get("warmPoolRef") or {}).get("name")


def _bound_name(claim):
    return ((claim.get("status") or {}).get("sandbox") or {}).get("name")


class SandboxControllers:
    """Event-driven: a store listener (called under the global lock) keeps the indexes
    and queues the keys an event concerns ("sb"/"claim"/"pool", ns, name); the loop
    reconciles only queued keys and keys whose timer fell due, in slices of at most
    SLICE seconds of lock hold.  Each reconcile is level-triggered on its one object."""

    SLICE = 0.005          # seconds of work per lock hold
    CREATE_BATCH = 50      # pool member creates per reconcile (then requeued)

    def __init__(self, api, cold_start_s, warm_bind_s, pod_ip_range=None):
        self.api = api
        # --pod-ip-range: pod IPs from this network, first address + 1 up (a
        # ValueError for a bad CIDR stops kube-sim at start)
        self.ip_net = ipaddress.IPv4Network(pod_ip_range) if pod_ip_range else None
        self.cold = cold_start_s
        self.warm = warm_bind_s
        self.born = {}       # sandbox uid -> monotonic start of the current pod
        self.seen = {}       # claim uid -> monotonic first observation
        self.finished = {}   # sandbox uid -> (phase, RFC 3339 time)
        self.ips = {}        # sandbox uid -> pod IP
        self.ipn = 0
        self.queue = {}      # key -> None, in arrival order
        self.pending = collections.deque()
        self.timers = []     # heap of (due, seq, key)
        self.due = {}        # key -> earliest due time in the heap
        self.tseq = 0
        self.current = None  # key being reconciled
        self.members = {}    # (ns, pool uid) -> _Members
        self.unbound = {}    # (ns, pool name) -> {claim name} without status.sandbox.name
        self.waiting = {}    # (ns, pool name) -> {claim name} waiting for an IP-less member
        self.by_tpl = {}     # (ns, template name) -> {pool name}
        # Opt-in behaviours of a real cluster (admin POST /sandbox-sim), all off by
        # default: a pod-level fault every Sandbox not yet Ready shows, and the pod's
        # graceful termination, which a Sandbox being deleted waits for.
        self.fault = None    # None, ("ReconcilerError", message) or ("Unschedulable", msg)
        self.faulted = set()  # sandbox keys held by the fault (requeued when it clears)
        self.pod_term = 0.0  # seconds a deleted Sandbox's pod takes to terminate
        self.terminating = {}  # sandbox uid -> monotonic time its pod is gone
        self.evicted = {}    # sandbox uid -> monotonic time the pod is recreated
        self.loop = Loop("sandbox", self.run_pass, debounce=0.001, idle=1.0)
        api.store.listeners.append(self._on_event)

    def rt(self, key):
        return self.api.storage.get(key)

    # ------------------------------------------------------------ indexes (lock held)
    def _enqueue(self, key):
        # The key being reconciled is not requeued by its own writes: a reconcile ends
        # at the state it wrote (the re-run would be a no-op).
        if key != self.current:
            self.queue[key] = None

    def _timer(self, key, due):
        cur = self.due.get(key)
        if cur is not None and cur <= due:
            return
        self.due[key] = due
        self.tseq += 1
        heapq.heappush(self.timers, (due, self.tseq, key))
        if len(self.timers) > 2 * len(self.due) + 1024:
            # entries replaced by an earlier due time or dropped with their object (a
            # claim's expiry can be hours away): rebuild from the live ones
            self.timers = [(d, i, k) for i, (k, d) in enumerate(self.due.items())]
            heapq.heapify(self.timers)

    def _untime(self, key):
        """The object is gone: its timer, if any, becomes a stale heap entry."""
        self.due.pop(key, None)

    @staticmethod
    def _ix_add(ix, k, v):
        ix.setdefault(k, set()).add(v)

    @staticmethod
    def _ix_del(ix, k, v):
        s = ix.get(k)
        if s is not None:
            s.discard(v)
            if not s:
                del ix[k]

    def _on_event(self, ev):
        rkey = ev.rkey
        if rkey == SB:
            self._on_sandbox(ev)
        elif rkey == CLAIM:
            self._on_claim(ev)
        elif rkey == POOL:
            self._on_pool(ev)
        elif rkey == TPL:
            ns = ev.ns
            for pname in list(self.by_tpl.get((ns, ev.obj["metadata"]["name"]), ())):
                self._enqueue(("pool", ns, pname))
                for c in self.unbound.get((ns, pname), ()):
                    self._enqueue(("claim", ns, c))
        else:
            return
        if self.queue:
            self.loop.wake()

    def _on_sandbox(self, ev):
        ns = ev.ns
        obj = ev.obj
        name = obj["metadata"]["name"]
        prev = ev.prev
        gone = ev.type == "DELETED"
        old_pool = _pool_uid(prev)
        new_pool = None if gone else _pool_uid(obj)
        if old_pool is not None and old_pool != new_pool:
            m = self.members.get((ns, old_pool))
            if m is not None:
                m.remove(name)
                if not m.objs:
                    del self.members[(ns, old_pool)]
        if new_pool is not None:
            m = self.members.get((ns, new_pool))
            if m is None:
                m = self.members[(ns, new_pool)] = _Members()
            if m.put(name, obj, ev.rv):
                # a candidate with an IP appeared: claims waiting for one go on
                r = _ctrl_ref(obj)
                for c in self.waiting.pop((ns, r.get("name")), ()):
                    self._enqueue(("claim", ns, c))
        if gone:
            uid = obj["metadata"].get("uid")
            self.born.pop(uid, None)
            self.finished.pop(uid, None)
            self.evicted.pop(uid, None)
            self.terminating.pop(uid, None)
            self.faulted.discard(("sb", ns, name))
            self.ips.pop(uid, None)
            self._untime(("sb", ns, name))
        else:
            self._enqueue(("sb", ns, name))
        seen = set()
        for o in (prev, None if gone else obj):
            r = _ctrl_ref(o) if o is not None else None
            if r is None or r.get("name") in seen:
                continue
            seen.add(r.get("name"))
            if r.get("kind") == "SandboxClaim":
                self._enqueue(("claim", ns, r.get("name")))
            elif r.get("kind") == "SandboxWarmPool":
                self._enqueue(("pool", ns, r.get("name")))
        # a claim named like this Sandbox (cold start, or a foreign one in the way)
        if self.api.store.get(CLAIM, ns, name) is not None:
            self._enqueue(("claim", ns, name))

    def _on_claim(self, ev):
        ns = ev.ns
        obj = ev.obj
        name = obj["metadata"]["name"]
        prev = ev.prev
        if prev is not None:
            self._ix_del(self.unbound, (ns, _pool_name(prev)), name)
        if ev.type == "DELETED":
            self.seen.pop(obj["metadata"].get("uid"), None)
            pn = _pool_name(obj)
            self._ix_del(self.waiting, (ns, pn), name)
            self._untime(("claim", ns, name))
            return
        if not _bound_name(obj) and not obj["metadata"].get("deletionTimestamp"):
            self._ix_add(self.unbound, (ns, _pool_name(obj)), name)
        self._enqueue(("claim", ns, name))

    def _on_pool(self, ev):
        ns = ev.ns
        obj = ev.obj
        name = obj["metadata"]["name"]
        prev = ev.prev
        if prev is not None:
            self._ix_del(self.by_tpl, (ns, _tpl_name(prev)), name)
        if ev.type != "DELETED":
            self._ix_add(self.by_tpl, (ns, _tpl_name(obj)), name)
            self._enqueue(("pool", ns, name))
        else:
            self._untime(("pool", ns, name))
        # pool create/delete or generation change wakes its unbound claims
        if ev.type != "MODIFIED" or prev is None or \
                prev["metadata"].get("generation") != obj["metadata"].get("generation"):
            for c in self.unbound.get((ns, name), ()):
                self._enqueue(("claim", ns, c))

    # ------------------------------------------------------------ hooks
    def finish(self, ns, name, phase):
        api = self.api
        with api.lock:
            sb = api.store.get(SB, ns, name)
            if sb is None:
                return None
            self.finished[sb["metadata"]["uid"]] = (phase, now_ts())
            self._reconcile(("sb", ns, name), time.monotonic(), time.time())
            out = api.store.get(SB, ns, name)
        self.loop.wake()
        return out

    def evict(self, ns, name, recreate_s):
        """The Sandbox's pod is evicted (or deleted): it passes through phase Failed,
        so the Sandbox (and its claim) show Ready=False/PodFailed and
        Finished=True/PodFailed for recreate_s, then the controller makes a new pod
        under the same name (upstream controllers/sandbox_controller.go); a new IP,
        Ready again after the cold start."""
        api = self.api
        with api.lock:
            sb = api.store.get(SB, ns, name)
            if sb is None:
                return None
            self.evicted[sb["metadata"]["uid"]] = time.monotonic() + recreate_s
            self._reconcile(("sb", ns, name), time.monotonic(), time.time())
            out = api.store.get(SB, ns, name)
        self.loop.wake()
        return out

    def configure(self, body):
        """Admin POST /sandbox-sim: reconcilerError (message or null), unschedulable
        (bool), podTerminationMs (number); keys left out keep their value."""
        api = self.api
        with api.lock:
            if "reconcilerError" in body or "unschedulable" in body:
                if body.get("reconcilerError"):
                    self.fault = ("ReconcilerError", "Error seen: " +
                                  str(body["reconcilerError"]))
                elif body.get("unschedulable"):
                    self.fault = ("Unschedulable", "0/1 nodes are available: "
                                  "1 Insufficient cpu.")
                else:
                    self.fault = None
                    for k in self.faulted:
                        self.queue[k] = None
                    self.faulted = set()
            if "podTerminationMs" in body:
                self.pod_term = max(0.0, float(body["podTerminationMs"] or 0) / 1000.0)
            out = self.settings()
        self.loop.wake()
        return out

    def settings(self):
        f = self.fault
        return {"reconcilerError": f[1] if f and f[0] == "ReconcilerError" else None,
                "unschedulable": bool(f and f[0] == "Unschedulable"),
                "podTerminationMs": self.pod_term * 1000.0}

    # ------------------------------------------------------------ loop
    def run_pass(self):
        api = self.api
        lock = api.lock
        clock = time.perf_counter
        while True:
            with lock:
                now = time.monotonic()
                wall = time.time()
                timers = self.timers
                while timers and timers[0][0] <= now:
                    due, _seq, key = heapq.heappop(timers)
                    if self.due.get(key) == due:
                        del self.due[key]
                        self.queue[key] = None
                if not self.pending:
                    if not self.queue:
                        return timers[0][0] if timers else None
                    self.pending.extend(self.queue)
                    self.queue = {}
                if self.rt(SB) is None or self.rt(CLAIM) is None or self.rt(POOL) is None:
                    self.pending.clear()  # CRDs deleted: nothing to reconcile
                    continue
                end = clock() + self.SLICE
                pending = self.pending
                while pending:
                    self._reconcile(pending.popleft(), now, wall)
                    if clock() >= end:
                        break
            time.sleep(0)  # let the API threads take the lock between slices

    def _reconcile(self, key, now, wall):
        kind, ns, name = key
        store = self.api.store
        nxt = []
        self.current = key
        try:
            if kind == "sb":
                o = store.get(SB, ns, name)
                if o is not None:
                    self._sandbox(o, now, wall, nxt)
            elif kind == "claim":
                o = store.get(CLAIM, ns, name)
                if o is not None:
                    self._claim(o, now, wall, nxt)
            else:
                o = store.get(POOL, ns, name)
                if o is not None:
                    self._pool(o, now, nxt)
        finally:
            self.current = None
        if nxt:
            self._timer(key, min(nxt))

    def _write(self, key, obj, mutate, shallow=None):
        try:
            return self.api.internal_update(self.rt(key), obj, mutate, shallow)
        except ApiError:
            return None

    def _event(self, obj, reason, note, action, typ="Normal", controller="sandboxclaim"):
        api = self.api
        rt = api.rt("events.k8s.io", "v1", "events")
        if rt is None:
            return
        md = obj["metadata"]
        ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
              "metadata": {"name": "%s.%s" % (md["name"], "%016x" % (int(time.time() * 1e9)
                                                                     ^ hash(reason) &
                                                                     0xffffffff)),
                           "namespace": md.get("namespace")},
              "eventTime": now_micro(), "reportingController": controller + "-controller",
              "reportingInstance": "kube-sim", "action": action, "reason": reason,
              "note": note, "type": typ,
              "regarding": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                            "name": md["name"], "namespace": md.get("namespace"),
                            "uid": md["uid"], "resourceVersion": md.get("resourceVersion")}}
        try:
            api.create(rt, md.get("namespace"), ev, {}, owned=True)
        except ApiError:
            pass

    # ------------------------------------------------------------ Sandbox
    def _sandbox(self, sb, now, wall, nxt):
        md = sb["metadata"]
        uid = md["uid"]
        fins = md.get("finalizers") or []
        if md.get("deletionTimestamp"):
            if F_POD in fins:
                # the pod's graceful termination; upstream has no finalizer here, the
                # Pod is the Sandbox's blocking dependent that a foreground delete of
                # the claim waits for (kube-sim has no Pods)
                due = self.terminating.setdefault(uid, now + self.pod_term)
                if now < due:
                    nxt.append(due)
                    return
                self.terminating.pop(uid, None)
                self._write(SB, sb, lambda n: n["metadata"].__setitem__(
                    "finalizers", [f for f in n["metadata"].get("finalizers") or []
                                   if f != F_POD]), ())
            return
        if self.pod_term > 0 and F_POD not in fins:
            sb = self._write(SB, sb, lambda n: n["metadata"].__setitem__(
                "finalizers", list(n["metadata"].get("finalizers") or []) + [F_POD]),
                ()) or sb
            md = sb["metadata"]
        spec = sb.get("spec") or {}
        gen = md.get("generation", 1)
        t = now_ts()
        st = clone(sb.get("status") or {})
        conds = st.setdefault("conditions", [])
        expiry = parse_ts(spec.get("shutdownTime"))
        if expiry is not None and wall >= expiry:
            _set_cond(conds, "Ready", "False", "SandboxExpired", "Sandbox has expired", gen, t)
            if spec.get("shutdownPolicy", "Retain") == "Delete":
                self.api.internal_delete(self.rt(SB), sb, "Background")
                return
            st = {"conditions": conds}
            self.born.pop(uid, None)
            self._put_status(sb, st)
            return
        if expiry is not None:
            nxt.append(now + (expiry - wall))
        ev = self.evicted.get(uid)
        if ev is not None:
            if now < ev:
                _set_cond(conds, "Ready", "False", "PodFailed", "Pod has failed", gen, t)
                _set_cond(conds, "Finished", "True", "PodFailed", "Pod has failed", gen, t)
                for k in ("podIPs", "nodeName"):
                    st.pop(k, None)
                nxt.append(ev)
                self._put_status(sb, st)
                return
            # recreated under the same name: a fresh pod, a new IP
            del self.evicted[uid]
            conds[:] = [c for c in conds if c.get("type") != "Finished"]
            self.born[uid] = now
            self.ips.pop(uid, None)
        if uid in self.finished:
            phase, ft = self.finished[uid]
            reason = "Pod" + phase
            _set_cond(conds, "Ready", "False", reason, "Pod has %s" % phase.lower(), gen, t)
            _set_cond(conds, "Finished", "True", reason, "Pod has %s" % phase.lower(), gen,
                      ft)
            self._put_status(sb, st)
            return
        if spec.get("operatingMode") == "Suspended":
            self.born.pop(uid, None)
            _set_cond(conds, "Ready", "False", "SandboxSuspended", "Sandbox is suspended",
                      gen, t)
            _set_cond(conds, "Suspended", "True", "PodTerminated", "Pod is terminated",
                      gen, t)
            for k in ("podIPs", "nodeName", "selector"):
                st.pop(k, None)
            self._put_status(sb, st)
            if (md.get("annotations") or {}).get(A_PODNAME):
                self._write(SB, sb, lambda n: n["metadata"]["annotations"].pop(A_PODNAME,
                                                                                None),
                            ANN)
            return
        key = ("sb", md.get("namespace"), md["name"])
        if self.fault is not None and not _ready(sb):
            # a pod-level problem: the controller cannot make or schedule the pod and
            # retries; the claim sees only the non-terminal reason
            self.faulted.add(key)
            self.born[uid] = now
            _set_cond(conds, "Suspended", "False", "NotSuspended",
                      "Sandbox is not suspended", gen, t)
            if self.fault[0] == "ReconcilerError":
                _set_cond(conds, "Ready", "False", "ReconcilerError", self.fault[1], gen, t)
            else:
                _set_cond(conds, "Ready", "False", "DependenciesNotReady",
                          "Pod exists with phase: Pending", gen, t)
                _set_cond(conds, "PodScheduled", "False", "Unschedulable", self.fault[1],
                          gen, t)
            self._put_status(sb, st)
            return
        self.faulted.discard(key)
        born = self.born.setdefault(uid, now)
        _set_cond(conds, "Suspended", "False", "NotSuspended", "Sandbox is not suspended",
                  gen, t)
        if now >= born + self.cold:
            ip = self.ips.get(uid)
            if ip is None:
                self.ipn += 1
                if self.ip_net is not None:
                    n = self.ip_net.num_addresses - 2       # not the first, not the last
                    ip = str(self.ip_net.network_address + 1 + (self.ipn - 1) % n)
                else:
                    ip = "10.%d.%d.%d" % (244 + (self.ipn >> 16) % 10, (self.ipn >> 8) & 255,
                                          self.ipn & 255 or 1)
                self.ips[uid] = ip
            svc = bool(spec.get("service"))
            _set_cond(conds, "Ready", "True", "DependenciesReady",
                      "Pod is Ready; Service Exists" if svc else "Pod is Ready", gen, t)
            st["podIPs"] = [ip]
            st["nodeName"] = "kube-sim-node"
            st["selector"] = "%s=%s" % (L_NAMEHASH, name_hash(md["name"]))
            st["service"] = md["name"] if svc else ""
            if svc:
                st["serviceFQDN"] = "%s.%s.svc.cluster.local" % (md["name"],
                                                                 md.get("namespace"))
            else:
                st.pop("serviceFQDN", None)
            _set_cond(conds, "PodScheduled", "True", "PodScheduled", "", gen, t)
        else:
            _set_cond(conds, "Ready", "False", "DependenciesNotReady",
                      "Pod exists with phase: Pending", gen, t)
            _set_cond(conds, "PodScheduled", "True", "PodScheduled", "", gen, t)
            st["selector"] = "%s=%s" % (L_NAMEHASH, name_hash(md["name"]))
            nxt.append(born + self.cold)
        cur = self.api.store.get(SB, md.get("namespace"), md["name"])
        if cur is not None and (cur["metadata"].get("annotations") or {}).get(A_PODNAME) \
                != md["name"]:
            cur = self._write(SB, cur, lambda n: n["metadata"].setdefault(
                "annotations", {}).__setitem__(A_PODNAME, n["metadata"]["name"]), ANN) or cur
        self._put_status(cur or sb, st)

    def _put_status(self, obj, st):
        if (obj.get("status") or {}) == st:
            return obj
        rkey = SB if obj["kind"] == "Sandbox" else (CLAIM if obj["kind"] == "SandboxClaim"
                                                     else POOL)
        return self._write(rkey, obj, lambda n: n.__setitem__("status", st), ())

    # ------------------------------------------------------------ pool
    def _blueprint(self, tpl):
        spec = tpl.get("spec") or {}
        bp = {"podTemplate": clone(spec.get("podTemplate") or {"spec": {}})}
        if spec.get("volumeClaimTemplates"):
            bp["volumeClaimTemplates"] = clone(spec["volumeClaimTemplates"])
        if "service" in spec:
            bp["service"] = spec["service"]
        ps = bp["podTemplate"].setdefault("spec", {})
        ps.setdefault("automountServiceAccountToken", False)
        if spec.get("networkPolicyManagement", "Managed") == "Managed" and \
                not spec.get("networkPolicy") and not ps.get("dnsPolicy"):
            ps["dnsPolicy"] = "None"
            ps["dnsConfig"] = {"nameservers": ["8.8.8.8", "1.1.1.1"]}
        return bp

    def _pool(self, pool, now, nxt):
        api = self.api
        md = pool["metadata"]
        if md.get("deletionTimestamp"):
            return
        ns, name, uid = md["namespace"], md["name"], md["uid"]
        spec = pool.get("spec") or {}
        desired = spec.get("replicas")
        desired = 1 if desired is None else desired
        m = self.members.get((ns, uid), _NO_MEMBERS)
        total = len(m.objs)
        active = total - m.deleting
        tname = (spec.get("sandboxTemplateRef") or {}).get("name")
        tpl = api.store.get(TPL, ns, tname) if tname else None
        label = name_hash(name)
        if total < desired and tpl is not None:
            bp = self._blueprint(tpl)
            bp_hash = name_hash(json.dumps(bp, sort_keys=True))
            ann = bp["podTemplate"].setdefault("metadata", {}).setdefault("annotations", {})
            ann.setdefault(A_EVICT, "true")
            n = desired - total
            if n > self.CREATE_BATCH:
                # the rest after the API threads had the lock (upstream creates in
                # batches too, at most --sandbox-warm-pool-max-batch-size per reconcile)
                n = self.CREATE_BATCH
                nxt.append(now)
            for _ in range(n):
                sb = {"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox",
                      "metadata": {"generateName": name + "-", "namespace": ns,
                                   "labels": {L_POOL: label, L_TPLREF: name_hash(tname),
                                              L_TPLHASH: bp_hash, L_TPLHASH_OLD: bp_hash,
                                              L_CREATED: "controller"},
                                   "annotations": {A_TPLREF: tname},
                                   "ownerReferences": [{
                                       "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
                                       "kind": "SandboxWarmPool", "name": name, "uid": uid,
                                       "controller": True, "blockOwnerDeletion": True}]},
                      "spec": clone(bp)}
                try:
                    api.create(self.rt(SB), ns, sb, {}, owned=True)
                except ApiError:
                    nxt.append(now + 1.0)
                    break
        elif active > desired:
            extra = active - desired
            live = [o for o in m.objs.values() if not o["metadata"].get("deletionTimestamp")]
            unready = [o for o in live if not _ready(o)]
            ready = [o for o in live if _ready(o)]
            victims = (sorted(unready, key=lambda o: m.order[o["metadata"]["name"]],
                              reverse=True) +
                       sorted(ready, key=lambda o: m.order[o["metadata"]["name"]],
                              reverse=True))[:extra]
            for v in victims:
                api.internal_delete(self.rt(SB), v, "Background")
        m = self.members.get((ns, uid), _NO_MEMBERS)
        st = clone(pool.get("status") or {})
        # int32 fields with omitempty upstream (SandboxWarmPoolStatus): 0 is absent
        for k, v in (("replicas", len(m.objs) - m.deleting), ("readyReplicas", m.ready)):
            if v:
                st[k] = v
            else:
                st.pop(k, None)
        st["selector"] = "%s=%s" % (L_POOL, label)
        st["observedGeneration"] = md.get("generation", 1)
        cur = api.store.get(POOL, ns, name)
        if cur is not None:
            self._put_status(cur, st)

    # ------------------------------------------------------------ claim
    def _controlled_by(self, sb, uid):
        r = _ctrl_ref(sb)
        return r is not None and r.get("uid") == uid

    def _claim(self, claim, now, wall, nxt):
        api = self.api
        md = claim["metadata"]
        if md.get("deletionTimestamp"):
            return
        ns, name, uid = md["namespace"], md["name"], md["uid"]
        gen = md.get("generation", 1)
        seen = self.seen.setdefault(uid, now)
        spec = claim.get("spec") or {}
        lc = spec.get("lifecycle")
        t = now_ts()
        st = clone(claim.get("status") or {})
        conds = st.setdefault("conditions", [])
        # -- expiry
        exp = _claim_expiry(lc, claim)
        bound, err = self._bound(claim)
        if exp is not None and wall >= exp:
            rc = _cond(claim, "Ready")
            if rc is None or rc.get("reason") != "ClaimExpired":
                _set_cond(conds, "Ready", "False", "ClaimExpired",
                          "Claim expired. Sandbox cleanup initiated.", gen, t)
                claim = self._put_status(claim, st) or claim
                self._event(claim, "ClaimExpired", "Claim expired", "Claim Expired")
            policy = lc.get("shutdownPolicy", "Retain")
            if policy in ("Delete", "DeleteForeground"):
                self._event(claim, "ClaimExpired", "Deleting Claim (ShutdownPolicy=%s)"
                            % policy, "Deleting")
                api.internal_delete(self.rt(CLAIM), claim,
                                    "Foreground" if policy == "DeleteForeground"
                                    else "Background")
            else:
                if bound is not None:
                    api.internal_delete(self.rt(SB), bound, "Background")
                    # its DELETED event does not requeue this claim (the key being
                    # reconciled): look again now
                    if api.store.get(SB, ns, bound["metadata"]["name"]) is not None:
                        return
                # Retain, the Sandbox gone: upstream computeAndSetStatus clears the
                # bound identity (reconcileExpired returns no sandbox, no error)
                sbst = st.get("sandbox") or {}
                if sbst.get("name") or sbst.get("podIPs"):
                    st["sandbox"] = {}
                    self._put_status(claim, st)
            return
        if exp is not None:
            nxt.append(now + (exp - wall) + 0.001)
        if err is not None:
            _set_cond(conds, "Ready", "False", "ReconcilerError", "Error seen: " + err, gen, t)
            self._put_status(claim, st)
            return
        if bound is None:
            pname = (spec.get("warmPoolRef") or {}).get("name")
            pool = api.store.get(POOL, ns, pname) if pname else None
            if pool is None:
                _set_cond(conds, "Ready", "False", "WarmPoolNotFound",
                          'SandboxWarmPool "%s" not found' % pname, gen, t)
                self._put_status(claim, st)
                return
            tname = ((pool.get("spec") or {}).get("sandboxTemplateRef") or {}).get("name")
            tpl = api.store.get(TPL, ns, tname) if tname else None
            if tpl is None:
                _set_cond(conds, "Ready", "False", "TemplateNotFound",
                          'SandboxTemplate "%s" not found' % tname, gen, t)
                self._put_status(claim, st)
                return
            bad = self._validate(claim, tpl)
            if bad is not None:
                _set_cond(conds, "Ready", "False", bad[0], bad[1], gen, t)
                self._put_status(claim, st)
                return
            if now < seen + self.warm:
                nxt.append(seen + self.warm)
                return
            cold = bool(spec.get("env") or spec.get("volumeClaimTemplates"))
            if not cold:
                m = self.members.get((ns, pool["metadata"]["uid"]), _NO_MEMBERS)
                pick = m.pick()
                if pick is None and m.candidates() and \
                        (pool.get("spec") or {}).get("replicas", 1) and \
                        now < seen + WARM_GRACE:
                    # only IP-less candidates: retry every WARM_RETRY, or as soon as
                    # one gets an IP (the listener requeues waiting claims)
                    self._ix_add(self.waiting, (ns, pname), name)
                    nxt.append(min(seen + WARM_GRACE, now + WARM_RETRY))
                    return
                if pick is not None:
                    bound = self._adopt(claim, pick)
                    claim = api.store.get(CLAIM, ns, name) or claim
                    if bound is not None:
                        self._event(claim, "SandboxAdopted",
                                    'Adopted warm pool Sandbox "%s"' % pick["metadata"]["name"],
                                    "Adopt")
            if bound is None:
                existing = api.store.get(SB, ns, name)
                if existing is not None:
                    if not self._controlled_by(existing, uid):
                        _set_cond(conds, "Ready", "False", "ReconcilerError",
                                  "Error seen: sandbox not owned by this claim", gen, t)
                        self._put_status(claim, st)
                        return
                    bound = existing
                else:
                    bound = self._cold_create(claim, tpl)
                    if bound is not None:
                        self._event(claim, "SandboxProvisioned",
                                    'Created Sandbox "%s"' % name, "Provision")
            if bound is None:
                _set_cond(conds, "Ready", "False", "SandboxMissing", "Sandbox does not exist",
                          gen, t)
                nxt.append(now + 1.0)
                self._put_status(claim, st)
                return
            claim = api.store.get(CLAIM, ns, name) or claim
            st = clone(claim.get("status") or {})
            conds = st.setdefault("conditions", [])
        # -- status from the bound Sandbox
        rc = _cond(bound, "Ready")
        if rc is None:
            _set_cond(conds, "Ready", "False", "SandboxNotReady",
                      "Sandbox is not ready", gen, t)
        elif rc.get("reason") == "SandboxExpired":
            _set_cond(conds, "Ready", "False", "SandboxExpired",
                      "Underlying Sandbox resource has expired independently of the Claim.",
                      gen, t)
        else:
            fwd = dict(rc)
            fwd["observedGeneration"] = gen
            conds[:] = [c for c in conds if c.get("type") != "Ready"] + [fwd]
        fc = _cond(bound, "Finished")
        if fc is not None:
            f = dict(fc)
            f["observedGeneration"] = gen
            conds[:] = [c for c in conds if c.get("type") != "Finished"] + [f]
        else:
            # a recreated pod (after an eviction) is no longer terminal
            conds[:] = [c for c in conds if c.get("type") != "Finished"]
        conds.sort(key=lambda c: c.get("type"))
        sbst = {"name": bound["metadata"]["name"]}
        ips = (bound.get("status") or {}).get("podIPs")
        if ips:
            sbst["podIPs"] = list(ips)
        st["sandbox"] = sbst
        new = self._put_status(claim, st)
        if new is not None and new is not claim:
            # this write does not requeue the claim: if it brought Finished, the TTL
            # expiry it starts is scheduled here
            e2 = _claim_expiry(lc, new)
            if e2 is not None and e2 != exp:
                nxt.append(now + (e2 - wall) + 0.001)

    def _bound(self, claim):
        api = self.api
        md = claim["metadata"]
        ns, uid = md["namespace"], md["uid"]
        sname = ((claim.get("status") or {}).get("sandbox") or {}).get("name")
        if sname:
            sb = api.store.get(SB, ns, sname)
            if sb is not None and self._controlled_by(sb, uid):
                return sb, None
        ann = (md.get("annotations") or {}).get(A_SBNAME)
        if ann:
            sb = api.store.get(SB, ns, ann)
            if sb is not None:
                if self._controlled_by(sb, uid):
                    return sb, None
                r = _ctrl_ref(sb)
                if r is not None and r.get("kind") == "SandboxWarmPool":
                    out = self._adopt(claim, sb, annotate=False)
                    if out is not None:
                        return out, None
        sb = api.store.get(SB, ns, md["name"])
        if sb is not None:
            if self._controlled_by(sb, uid):
                return sb, None
            if _ctrl_ref(sb) is not None and not ann:
                return None, "sandbox not owned by this claim"
        return None, None

    def _validate(self, claim, tpl):
        spec = claim.get("spec") or {}
        tspec = tpl.get("spec") or {}
        apm = spec.get("additionalPodMetadata") or {}
        for k in (apm.get("labels") or {}):
            if not _domain_ok(k, ALLOWED_LABEL_DOMAINS):
                return ("InvalidMetadata", "invalid additionalPodMetadata: label %q is not in "
                        "an allowed domain" % k)
        for k in (apm.get("annotations") or {}):
            if k == A_EVICT:
                continue
            if "/" in k and _domain_ok(k, RESTRICTED_ANN):
                return ("InvalidMetadata", "invalid additionalPodMetadata: annotation %q uses "
                        "a restricted domain" % k)
        if spec.get("env") and tspec.get("envVarsInjectionPolicy",
                                         "Disallowed") == "Disallowed":
            return ("EnvVarsInjectionRejected", "environment variable injection rejected: "
                    "the template's envVarsInjectionPolicy is Disallowed")
        if spec.get("volumeClaimTemplates") and tspec.get("volumeClaimTemplatesPolicy",
                                                          "Disallowed") == "Disallowed":
            return ("VolumeClaimTemplatesError",
                    "volume claim templates are disallowed by the template")
        return None

    def _claim_ref(self, claim):
        md = claim["metadata"]
        return {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
                "name": md["name"], "uid": md["uid"], "controller": True,
                "blockOwnerDeletion": True}

    def _adopt(self, claim, sb, annotate=True):
        api = self.api
        md = claim["metadata"]
        sbname = sb["metadata"]["name"]
        if annotate:
            claim = self._write(CLAIM, claim, lambda n: n["metadata"].setdefault(
                "annotations", {}).__setitem__(A_SBNAME, sbname), ANN)
            if claim is None:
                return None
        apm = (claim.get("spec") or {}).get("additionalPodMetadata") or {}
        ref = self._claim_ref(claim)

        def mut(n):
            m = n["metadata"]
            lab = m.setdefault("labels", {})
            for k in (L_POOL, L_TPLHASH, L_TPLHASH_OLD):
                lab.pop(k, None)
            lab[L_LAUNCH] = "warm"
            lab[L_CLAIMUID] = md["uid"]
            m["ownerReferences"] = [ref]
            m.setdefault("annotations", {})[A_PODNAME] = m["name"]
            pt = n.setdefault("spec", {}).setdefault("podTemplate", {})
            pm = pt.setdefault("metadata", {})
            anns = pm.get("annotations") or {}
            if anns.get(A_EVICT) == "true":
                anns.pop(A_EVICT)
            for k, v in (apm.get("annotations") or {}).items():
                anns[k] = v
            if anns:
                pm["annotations"] = anns
            else:
                pm.pop("annotations", None)
            pl = pm.setdefault("labels", {})
            pl[L_CLAIMUID] = md["uid"]
            for k, v in (apm.get("labels") or {}).items():
                pl[k] = v
        live = api.store.get(SB, sb["metadata"]["namespace"], sbname)
        if live is None:
            return None
        return self._write(SB, live, mut, ADOPT)

    def _cold_create(self, claim, tpl):
        api = self.api
        md = claim["metadata"]
        spec = claim.get("spec") or {}
        bp = self._blueprint(tpl)
        tspec = tpl.get("spec") or {}
        env = spec.get("env") or []
        conts = bp["podTemplate"]["spec"].get("containers") or []
        for e in env:
            target = None
            for c in conts:
                if not e.get("containerName") or c.get("name") == e.get("containerName"):
                    target = c
                    break
            if target is None:
                continue
            lst = target.setdefault("env", [])
            item = {"name": e["name"], "value": e.get("value", "")}
            for i, x in enumerate(lst):
                if x.get("name") == e["name"]:
                    if tspec.get("envVarsInjectionPolicy") == "Overrides":
                        lst[i] = item
                    break
            else:
                lst.append(item)
        vcts = spec.get("volumeClaimTemplates") or []
        if vcts:
            cur = bp.setdefault("volumeClaimTemplates", [])
            names = {(v.get("metadata") or {}).get("name"): i for i, v in enumerate(cur)}
            for v in vcts:
                n = (v.get("metadata") or {}).get("name")
                if n in names:
                    cur[names[n]] = clone(v)
                else:
                    cur.append(clone(v))
        apm = spec.get("additionalPodMetadata") or {}
        pm = bp["podTemplate"].setdefault("metadata", {})
        pl = pm.setdefault("labels", {})
        pl[L_CLAIMUID] = md["uid"]
        pl.update(apm.get("labels") or {})
        if apm.get("annotations"):
            pm.setdefault("annotations", {}).update(apm["annotations"])
        tname = tpl["metadata"]["name"]
        sb = {"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox",
              "metadata": {"name": md["name"], "namespace": md["namespace"],
                           "labels": {L_CLAIMUID: md["uid"], L_LAUNCH: "cold",
                                      L_TPLREF: name_hash(tname),
                                      L_CREATED: _normalize_created_by(
                                          (md.get("labels") or {}).get(L_CREATED))},
                           "annotations": {A_TPLREF: tname, A_PODNAME: md["name"]},
                           "ownerReferences": [self._claim_ref(claim)]},
              "spec": bp}
        try:
            return api.create(self.rt(SB), md["namespace"], sb, {}, owned=True)
        except ApiError:
            return None

