"""In-memory object store with one global resourceVersion counter, a bounded
event history and watch fan-out.  Stored object dicts are never mutated after
they are stored: every write stores a new dict (which may share unchanged
nested dicts with the previous version), so readers may serialise a reference
outside the lock.  It also keeps the indexes the controllers need to touch only
what an event concerns: dependents per owner uid, object counts per namespace,
watches pinned to one name."""

import collections
import json
import queue
import threading


class Event:
    __slots__ = ("type", "rv", "rkey", "ns", "obj", "prev", "_json")

    def __init__(self, typ, rv, rkey, ns, obj, prev):
        self.type = typ
        self.rv = rv
        self.rkey = rkey
        self.ns = ns
        self.obj = obj
        self.prev = prev
        self._json = None

    def line(self):
        """Serialised watch line for the common case (cached)."""
        if self._json is None:
            self._json = (json.dumps({"type": self.type, "object": self.obj},
                                     separators=(",", ":")) + "\n").encode()
        return self._json


class Watcher:
    def __init__(self, rkey, ns, name=None):
        self.rkey = rkey
        self.ns = ns
        # Set when the watch's field selector pins metadata.name: the store then hands
        # it only that object's events instead of every event of the collection.
        self.name = name
        self.q = queue.SimpleQueue()
        self.closed = False
        self.sock = None


DROP = object()       # sentinel: drop the connection abruptly
BOOKMARK = object()   # sentinel: send a bookmark at the store's current RV


class Store:
    def __init__(self, history=1000):
        self.lock = threading.RLock()
        self.rv = 0
        self.data = {}          # rkey -> {(ns, name): obj}
        self.uids = {}          # uid -> (rkey, ns, name)
        self.history = collections.deque()
        self.history_max = max(1, history)
        self.compacted = 0      # events with rv <= compacted may be missing
        self.watchers = {}      # rkey -> set(Watcher) without a name
        self.named = {}         # (rkey, name) -> set(Watcher) pinned to one name
        self.listeners = []     # callables(Event), called under the lock
        # Indexes kept by put/remove so that controllers touch only what an event concerns:
        self.owners = {}        # owner uid -> set((rkey, ns, name)) of dependents
        self.counts = {}        # (rkey, ns) -> number of objects
        self.ns_total = {}      # namespace -> number of namespaced objects in it

    # -- reads (call with or without the lock; results are immutable dicts)
    def get(self, rkey, ns, name):
        return self.data.get(rkey, {}).get((ns or "", name))

    def items(self, rkey, ns=None):
        d = self.data.get(rkey, {})
        if ns is None:
            return [d[k] for k in sorted(d)]
        return [d[k] for k in sorted(d) if k[0] == ns]

    def by_uid(self, uid):
        loc = self.uids.get(uid)
        if loc is None:
            return None
        return self.get(*loc)

    # -- writes (caller holds the lock)
    def next_rv(self):
        self.rv += 1
        return self.rv

    def count(self, rkey, ns):
        return self.counts.get((rkey, ns or ""), 0)

    def dependents(self, uid):
        """[(rkey, ns, name)] of the objects whose ownerReferences name uid."""
        return list(self.owners.get(uid, ()))

    def _index(self, rkey, key, prev, obj):
        old = prev["metadata"].get("ownerReferences") if prev is not None else None
        new = obj["metadata"].get("ownerReferences") if obj is not None else None
        if old == new:
            return
        loc = (rkey, key[0], key[1])
        for r in old or ():
            s = self.owners.get(r.get("uid"))
            if s is not None:
                s.discard(loc)
                if not s:
                    del self.owners[r.get("uid")]
        for r in new or ():
            if r.get("uid"):
                self.owners.setdefault(r["uid"], set()).add(loc)

    def _count(self, rkey, ns, delta):
        ck = (rkey, ns)
        self.counts[ck] = self.counts.get(ck, 0) + delta
        if ns:
            self.ns_total[ns] = self.ns_total.get(ns, 0) + delta

    def put(self, rkey, obj, typ):
        """Store obj (whose metadata.resourceVersion was already set) and emit."""
        md = obj["metadata"]
        key = (md.get("namespace") or "", md["name"])
        d = self.data.setdefault(rkey, {})
        prev = d.get(key)
        d[key] = obj
        if prev is None:
            self._count(rkey, key[0], 1)
        self._index(rkey, key, prev, obj)
        self.uids[md["uid"]] = (rkey, key[0], key[1])
        self._emit(typ, int(md["resourceVersion"]), rkey, key[0], obj, prev)

    def remove(self, rkey, obj):
        """obj: final state with the deletion resourceVersion already set."""
        md = obj["metadata"]
        key = (md.get("namespace") or "", md["name"])
        d = self.data.get(rkey, {})
        prev = d.pop(key, None)
        if prev is not None:
            self._count(rkey, key[0], -1)
            self._index(rkey, key, prev, None)
        self.uids.pop(md.get("uid"), None)
        self._emit("DELETED", int(md["resourceVersion"]), rkey, key[0], obj, prev)

    def _emit(self, typ, rv, rkey, ns, obj, prev):
        ev = Event(typ, rv, rkey, ns, obj, prev)
        self.history.append(ev)
        while len(self.history) > self.history_max:
            old = self.history.popleft()
            self.compacted = old.rv
        for w in self.watchers.get(rkey, ()):
            if w.ns is None or w.ns == ns:
                w.q.put(ev)
        if self.named:
            for w in self.named.get((rkey, obj["metadata"]["name"]), ()):
                if w.ns is None or w.ns == ns:
                    w.q.put(ev)
        for fn in self.listeners:
            fn(ev)

    def compact(self):
        """Drop all history; every resourceVersion issued so far becomes too old
        to watch from.  Consumes one resourceVersion (like a write) so that a
        list taken afterwards has a usable RV."""
        with self.lock:
            self.history.clear()
            self.rv += 1
            self.compacted = self.rv

    def oldest(self):
        return self.compacted

    def events_since(self, rkey, rv):
        """History events for rkey with rv > given rv (caller checked compaction)."""
        return [e for e in self.history if e.rv > rv and e.rkey == rkey]

    def snapshot(self, rkey, rv):
        """Objects of rkey as they were at resourceVersion rv (needs history)."""
        d = dict(self.data.get(rkey, {}))
        for e in reversed(self.history):
            if e.rv <= rv:
                break
            if e.rkey != rkey:
                continue
            key = (e.ns, e.obj["metadata"]["name"])
            if e.type == "ADDED":
                d.pop(key, None)
            elif e.prev is not None:
                d[key] = e.prev
        return [d[k] for k in sorted(d)]

    # -- watchers
    def add_watcher(self, w):
        if w.name is not None:
            self.named.setdefault((w.rkey, w.name), set()).add(w)
        else:
            self.watchers.setdefault(w.rkey, set()).add(w)

    def remove_watcher(self, w):
        with self.lock:
            if w.name is not None:
                k = (w.rkey, w.name)
                s = self.named.get(k)
                if s is not None:
                    s.discard(w)
                    if not s:
                        del self.named[k]
                return
            s = self.watchers.get(w.rkey)
            if s is not None:
                s.discard(w)

    def all_watchers(self):
        with self.lock:
            return [w for s in list(self.watchers.values()) + list(self.named.values())
                    for w in s]
