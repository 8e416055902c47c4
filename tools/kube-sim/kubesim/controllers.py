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


class Collector:
    """Garbage collector, namespace finalizer and quota controller."""

    def __init__(self, api):
        self.api = api
        self.loop = Loop("gc", self.run_pass, debounce=0.005, idle=2.0)
        self._kick = api.kick_gc
        self.runs = 0
        threading.Thread(target=self._relay, daemon=True).start()

    def _relay(self):
        while True:
            self._kick.wait()
            self._kick.clear()
            self.loop.wake()

    def run_pass(self):
        api = self.api
        st = api.store
        with api.lock:
            for _round in range(100):
                if not self._one_round():
                    break
            if st.data.get(("", "resourcequotas")):
                api.quota_sync()
            self.runs += 1
        return None

    def _rt(self, rkey):
        return self.api.storage.get(rkey)

    def _one_round(self):
        api = self.api
        st = api.store
        changed = False
        objs = [(rkey, o) for rkey, d in list(st.data.items()) for o in list(d.values())]
        deps = collections.defaultdict(list)
        for rkey, o in objs:
            for ref in o["metadata"].get("ownerReferences") or []:
                if ref.get("uid"):
                    deps[ref["uid"]].append((rkey, o))
        # namespaces being deleted
        for rkey, o in objs:
            if rkey != ("", "namespaces") or not o["metadata"].get("deletionTimestamp"):
                continue
            nsname = o["metadata"]["name"]
            content = [(rk, x) for rk, x in objs
                       if rk != ("", "namespaces") and x["metadata"].get("namespace") == nsname]
            for rk, x in content:
                if not x["metadata"].get("deletionTimestamp"):
                    rt = self._rt(rk)
                    if rt is not None:
                        api.internal_delete(rt, x, "Background")
                        changed = True
            if not content:
                live = st.get(rkey, "", nsname)
                if live is not None:
                    api._final_delete(self._rt(rkey), live)
                    changed = True
        for rkey, o in objs:
            rt = self._rt(rkey)
            if rt is None:
                continue
            live = st.get(rkey, o["metadata"].get("namespace"), o["metadata"]["name"])
            if live is None or live["metadata"]["uid"] != o["metadata"]["uid"]:
                continue
            md = live["metadata"]
            uid = md["uid"]
            fins = md.get("finalizers") or []
            if md.get("deletionTimestamp") and "orphan" in fins:
                for drk, d in deps.get(uid, []):
                    drt = self._rt(drk)
                    dl = st.get(drk, d["metadata"].get("namespace"), d["metadata"]["name"])
                    if drt is None or dl is None:
                        continue
                    api.internal_update(drt, dl, lambda n, u=uid: n["metadata"].__setitem__(
                        "ownerReferences", [r for r in n["metadata"].get("ownerReferences")
                                            or [] if r.get("uid") != u]))
                api.internal_update(rt, live, lambda n: n["metadata"].__setitem__(
                    "finalizers", [f for f in n["metadata"].get("finalizers") or []
                                   if f != "orphan"]))
                changed = True
                continue
            if md.get("deletionTimestamp") and "foregroundDeletion" in fins:
                blocking = False
                for drk, d in deps.get(uid, []):
                    drt = self._rt(drk)
                    dl = st.get(drk, d["metadata"].get("namespace"), d["metadata"]["name"])
                    if drt is None or dl is None:
                        continue
                    refs = [r for r in dl["metadata"].get("ownerReferences") or []
                            if r.get("uid") == uid]
                    if not refs:
                        continue
                    if any(r.get("blockOwnerDeletion") for r in refs):
                        blocking = True
                    if not dl["metadata"].get("deletionTimestamp"):
                        pol = "Foreground" if deps.get(dl["metadata"]["uid"]) else "Background"
                        api.internal_delete(drt, dl, pol)
                        changed = True
                if not blocking:
                    api.internal_update(rt, live, lambda n: n["metadata"].__setitem__(
                        "finalizers", [f for f in n["metadata"].get("finalizers") or []
                                       if f != "foregroundDeletion"]))
                    changed = True
                continue
            refs = md.get("ownerReferences") or []
            if refs and not md.get("deletionTimestamp"):
                alive = False
                for r in refs:
                    owner = st.by_uid(r.get("uid"))
                    if owner is not None:
                        alive = True
                        break
                if not alive:
                    api.internal_delete(rt, live, "Background")
                    changed = True
        return changed
