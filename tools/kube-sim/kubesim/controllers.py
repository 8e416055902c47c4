"""Simulated controllers: Deployment/StatefulSet status, the garbage
collector (ownerReferences, finalizers, namespaces) and the quota controller."""

import collections
import threading
import time

from .util import clone, now_ts


class Loop:
    """A level-triggered controller thread: run_pass() returns the next
    monotonic time it wants to run (or None) and wake() forces a pass."""

    def __init__(self, name, run_pass, debounce=0.0, idle=None):
        self.name = name
        self.run_pass = run_pass
        self.debounce = debounce
        self.idle = idle
        self.ev = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self.thread.start()

    def wake(self):
        # called for every store event: skip the Event's lock when already set (the
        # loop clears it before each pass, so a wake seen set is still served)
        if not self.ev.is_set():
            self.ev.set()

    def _run(self):
        due = None
        while not self.stop:
            timeout = None
            now = time.monotonic()
            if due is not None:
                timeout = max(0.0, due - now)
            if self.idle is not None:
                timeout = self.idle if timeout is None else min(timeout, self.idle)
            self.ev.wait(timeout)
            if self.debounce:
                time.sleep(self.debounce)
            self.ev.clear()
            try:
                due = self.run_pass()
            except Exception:  # noqa: BLE001 - a controller must survive
                import traceback
                traceback.print_exc()
                due = time.monotonic() + 0.5


class Workloads:
    """Deployment and StatefulSet status follow spec.replicas after a delay."""

    KEYS = (("apps", "deployments"), ("apps", "statefulsets"))

    def __init__(self, api, delay_s):
        self.api = api
        self.delay = delay_s
        self.pending = {}
        self.loop = Loop("workloads", self.run_pass)
        api.store.listeners.append(self._on_event)

    def _on_event(self, ev):
        if ev.rkey in self.KEYS and ev.type != "DELETED":
            self.loop.wake()

    def desired(self, kind, o, old):
        spec = o.get("spec") or {}
        r = spec.get("replicas", 1)
        gen = o["metadata"].get("generation", 1)
        st = clone(old) if isinstance(old, dict) else {}
        if kind == "deployments":
            for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                      "unavailableReplicas"):
                st.pop(k, None)
            st["observedGeneration"] = gen
            if r:
                st["replicas"] = r
                st["updatedReplicas"] = r
                st["readyReplicas"] = r
                st["availableReplicas"] = r
            t = now_ts()
            conds = {c.get("type"): c for c in st.get("conditions") or []}
            avail = conds.get("Available") or {"type": "Available", "lastTransitionTime": t}
            avail.update({"status": "True", "reason": "MinimumReplicasAvailable",
                          "message": "Deployment has minimum availability."})
            avail.setdefault("lastUpdateTime", t)
            prog = conds.get("Progressing") or {"type": "Progressing", "lastTransitionTime": t}
            msg = 'ReplicaSet "%s-%s" has successfully progressed.' % (
                o["metadata"]["name"], _rs_hash(o))
            if prog.get("message") != msg:
                prog["lastUpdateTime"] = t
            prog.update({"status": "True", "reason": "NewReplicaSetAvailable",
                         "message": msg})
            st["conditions"] = [avail, prog]
        else:
            st["observedGeneration"] = gen
            st["replicas"] = r
            st["availableReplicas"] = r
            for k in ("readyReplicas", "currentReplicas", "updatedReplicas"):
                st.pop(k, None)
            if r:
                st["readyReplicas"] = r
                st["currentReplicas"] = r
                st["updatedReplicas"] = r
            rev = "%s-%s" % (o["metadata"]["name"], _rs_hash(o))
            st["currentRevision"] = rev
            st["updateRevision"] = rev
            st["collisionCount"] = 0
        return st

    @staticmethod
    def _in_sync(kind, o):
        spec = o.get("spec") or {}
        st = o.get("status") or {}
        r = spec.get("replicas", 1)
        if st.get("observedGeneration") != o["metadata"].get("generation", 1):
            return False
        if (st.get("replicas") or 0) != r or (st.get("readyReplicas") or 0) != r:
            return False
        return (st.get("availableReplicas") or 0) == r

    def run_pass(self):
        api = self.api
        now = time.monotonic()
        nxt = None
        with api.lock:
            seen = set()
            for rkey in self.KEYS:
                rt = api.storage.get(rkey)
                if rt is None:
                    continue
                for o in api.store.items(rkey):
                    md = o["metadata"]
                    key = (rkey, md.get("namespace"), md["name"], md["uid"])
                    seen.add(key)
                    if md.get("deletionTimestamp") or self._in_sync(rkey[1], o):
                        self.pending.pop(key, None)
                        continue
                    due = self.pending.setdefault(key, now + self.delay)
                    if now >= due:
                        st = self.desired(rkey[1], o, o.get("status"))
                        api.internal_update(rt, o, lambda n, st=st: n.__setitem__("status",
                                                                                   st))
                        self.pending.pop(key, None)
                    else:
                        nxt = due if nxt is None else min(nxt, due)
            for k in list(self.pending):
                if k not in seen:
                    del self.pending[k]
        return nxt


def _rs_hash(o):
    from .util import name_hash
    tpl = (o.get("spec") or {}).get("template")
    import json
    h = name_hash(json.dumps(tpl, sort_keys=True))
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(h, 16)
    out = ""
    for _ in range(10):
        out += alphabet[n % len(alphabet)]
        n //= len(alphabet)
    return out


NS_KEY = ("", "namespaces")
QUOTA_KEY = ("", "resourcequotas")
EVENT_KEY = ("", "events")


def _refs(o):
    return (o["metadata"].get("ownerReferences") or []) if o is not None else []


class Collector:
    """Garbage collector, namespace finalizer and quota controller.

    Incremental, like the real one (an owner graph fed by informers): a store listener
    records which objects an event may concern (the object when its owners or deletion
    state change, the dependents of a deleted owner, the owners still waiting for a
    foreground deletion, the namespace being emptied) and a pass visits only those,
    through the store's owner index.  POST /gc on the admin port also runs a full scan."""

    def __init__(self, api, event_ttl=0.0):
        self.api = api
        self.event_ttl = event_ttl
        self.expiring = collections.deque()  # (wall expiry, ns, name, RV) of Event writes
        self.loop = Loop("gc", self.run_pass, debounce=0.005, idle=2.0)
        # the API's kicks wake this loop directly (no relay thread to wake first)
        api.kick_gc = self.loop.ev
        self.runs = 0
        self.dirty = {}         # (rkey, ns, name) -> None, in arrival order
        self.full = False
        self.purged = set()     # terminating namespaces whose content was deleted
        api.store.listeners.append(self._on_event)

    def request_full(self):
        with self.api.lock:
            self.full = True
        self.loop.wake()

    # ------------------------------------------------------------ listener (lock held)
    def _on_event(self, ev):
        st = self.api.store
        obj = ev.obj
        md = obj["metadata"]
        d = self.dirty
        if ev.rkey == EVENT_KEY and ev.type != "DELETED" and self.event_ttl > 0:
            # kube-apiserver --event-ttl puts an etcd lease on every write of an Event:
            # it goes TTL after its last write
            self.expiring.append((time.time() + self.event_ttl, ev.ns, md["name"],
                                  md.get("resourceVersion")))
        if ev.type == "DELETED":
            for loc in st.owners.get(md.get("uid"), ()):
                d[loc] = None          # may dangle now
            for r in _refs(ev.prev if ev.prev is not None else obj):
                loc = st.uids.get(r.get("uid"))
                if loc is not None:
                    d[loc] = None      # an owner waiting in foreground deletion
            if ev.ns:
                nso = st.get(NS_KEY, "", ev.ns)
                if nso is not None and nso["metadata"].get("deletionTimestamp"):
                    d[(NS_KEY, "", ev.ns)] = None
            if ev.rkey == NS_KEY:
                self.purged.discard(md["name"])
            return
        old = _refs(ev.prev)
        new = md.get("ownerReferences") or []
        if new and (ev.prev is None or old != new):
            d[(ev.rkey, ev.ns, md["name"])] = None
        if old and old != new:
            for r in old:
                loc = st.uids.get(r.get("uid"))
                if loc is not None:
                    d[loc] = None
        if md.get("deletionTimestamp"):
            d[(ev.rkey, ev.ns, md["name"])] = None

    # ------------------------------------------------------------ pass
    def run_pass(self):
        api = self.api
        st = api.store
        with api.lock:
            if self.full:
                self.full = False
                for rkey, dd in list(st.data.items()):
                    for (ns, name) in list(dd):
                        self.dirty[(rkey, ns, name)] = None
            for _round in range(100000):
                if not self.dirty:
                    break
                batch = list(self.dirty)
                self.dirty = {}
                for loc in batch:
                    self._visit(*loc)
            self._expire_events()
            if st.data.get(QUOTA_KEY):
                api.quota_sync()
            self.runs += 1
        return self.expiring[0][0] - time.time() + time.monotonic() if self.expiring \
            else None

    def _expire_events(self):
        st = self.api.store
        rt = self._rt(EVENT_KEY)
        now = time.time()
        q = self.expiring
        while q and q[0][0] <= now:
            _t, ns, name, rv = q.popleft()
            live = st.get(EVENT_KEY, ns, name)
            if rt is not None and live is not None and \
                    live["metadata"].get("resourceVersion") == rv:
                self.api._final_delete(rt, live)  # not written again since

    def _rt(self, rkey):
        return self.api.storage.get(rkey)

    def _visit(self, rkey, ns, name):
        api = self.api
        st = api.store
        live = st.get(rkey, ns, name)
        rt = self._rt(rkey)
        if live is None or rt is None:
            return
        md = live["metadata"]
        uid = md["uid"]
        if rkey == NS_KEY and md.get("deletionTimestamp"):
            self._namespace(rt, live)
            return
        fins = md.get("finalizers") or []
        if md.get("deletionTimestamp") and "orphan" in fins:
            for drk, dns, dname in st.dependents(uid):
                drt = self._rt(drk)
                dl = st.get(drk, dns, dname)
                if drt is None or dl is None:
                    continue
                api.internal_update(drt, dl, lambda n, u=uid: n["metadata"].__setitem__(
                    "ownerReferences", [r for r in n["metadata"].get("ownerReferences")
                                        or [] if r.get("uid") != u]), ())
            api.internal_update(rt, live, lambda n: n["metadata"].__setitem__(
                "finalizers", [f for f in n["metadata"].get("finalizers") or []
                               if f != "orphan"]), ())
            return
        if md.get("deletionTimestamp") and "foregroundDeletion" in fins:
            blocking = False
            for drk, dns, dname in st.dependents(uid):
                drt = self._rt(drk)
                dl = st.get(drk, dns, dname)
                if drt is None or dl is None:
                    continue
                refs = [r for r in dl["metadata"].get("ownerReferences") or []
                        if r.get("uid") == uid]
                if not refs:
                    continue
                if any(r.get("blockOwnerDeletion") for r in refs):
                    blocking = True
                if not dl["metadata"].get("deletionTimestamp"):
                    pol = "Foreground" if st.owners.get(dl["metadata"]["uid"]) \
                        else "Background"
                    api.internal_delete(drt, dl, pol)
            if not blocking:
                api.internal_update(rt, live, lambda n: n["metadata"].__setitem__(
                    "finalizers", [f for f in n["metadata"].get("finalizers") or []
                                   if f != "foregroundDeletion"]), ())
            return
        refs = md.get("ownerReferences") or []
        if refs and not md.get("deletionTimestamp"):
            for r in refs:
                if st.by_uid(r.get("uid")) is not None:
                    return
            api.internal_delete(rt, live, "Background")

    def _namespace(self, rt, live):
        api = self.api
        st = api.store
        nsname = live["metadata"]["name"]
        if st.ns_total.get(nsname, 0) == 0:
            self.purged.discard(nsname)
            api._final_delete(rt, live)
            return
        if nsname in self.purged:
            return
        # Once per termination: delete the content (objects with finalizers stay
        # until they are released; each deletion brings the namespace back here).
        self.purged.add(nsname)
        for rkey, dd in list(st.data.items()):
            if rkey == NS_KEY:
                continue
            crt = self._rt(rkey)
            if crt is None:
                continue
            for (ons, oname), x in list(dd.items()):
                if ons == nsname and not x["metadata"].get("deletionTimestamp"):
                    api.internal_delete(crt, x, "Background")
