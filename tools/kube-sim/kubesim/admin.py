"""Admin API (separate port): faults, latency, outage, watch drops, history
compaction, request log and test hooks."""

from .util import ApiError


class Admin:
    def __init__(self, api, server, state, sandboxes=None, collector=None):
        self.api = api
        self.server = server
        self.state = state
        self.sandboxes = sandboxes
        self.collector = collector

    def handle(self, method, path, q, body):
        st = self.state
        p = path.rstrip("/") or "/"
        if p == "/healthz" and method == "GET":
            return 200, {"ok": True, "paused": self.server.paused,
                         "resourceVersion": str(self.api.store.rv),
                         "watches": self.server.open_watches()}
        if p == "/faults":
            if method == "GET":
                with st.lock:
                    return 200, {"faults": [dict(f) for f in st.faults]}
            if method == "DELETE":
                with st.lock:
                    st.faults = []
                return 200, {"faults": []}
            if method == "POST":
                items = body if isinstance(body, list) else [body]
                out = []
                with st.lock:
                    for f in items:
                        f = dict(f)
                        code = int(f.get("code", 500))
                        f["code"] = code
                        f["count"] = int(f.get("count", 1))
                        f["remaining"] = f["count"]
                        f["fired"] = 0
                        st.faults.append(f)
                        out.append(dict(f))
                return 200, {"faults": out}
        if p == "/latency":
            if method == "GET":
                with st.lock:
                    return 200, {"latency": list(st.latency)}
            if method == "DELETE" or (method == "POST" and not body.get("ms")):
                with st.lock:
                    st.latency = []
                return 200, {"latency": []}
            if method == "POST":
                with st.lock:
                    st.latency.append({"ms": float(body["ms"]), "method": body.get("method"),
                                       "path": body.get("path")})
                    return 200, {"latency": list(st.latency)}
        if p == "/pause" and method == "POST":
            self.server.pause()
            return 200, {"paused": True}
        if p == "/resume" and method == "POST":
            self.server.resume()
            return 200, {"paused": False}
        if p == "/drop-watches" and method == "POST":
            return 200, {"dropped": self.server.drop_watches()}
        if p == "/compact" and method == "POST":
            self.api.store.compact()
            return 200, {"compacted": str(self.api.store.compacted)}
        if p == "/requests":
            if method == "DELETE":
                with st.lock:
                    st.log.clear()
                return 200, {"requests": [], "next": st.seq + 1}
            if method == "GET":
                since = int(q.get("since", 0) or 0)
                want_m = (q.get("method") or "").upper()
                want_p = q.get("path") or ""
                reqs = []
                with st.lock:
                    # Newest first, down to since: a poll for the last few
                    # requests costs those, not the whole log.
                    for e in reversed(st.log):
                        if e["seq"] < since:
                            break
                        if (want_m and e["method"] != want_m) or \
                                (want_p and want_p not in e["path"]):
                            continue
                        reqs.append(dict(e))
                    nxt = st.seq + 1
                reqs.reverse()
                return 200, {"requests": reqs, "next": nxt}
        if p == "/objects" and method == "POST":
            return 200, self.create_objects(body)
        if p == "/gc" and method == "POST":
            if self.collector is not None:
                self.collector.request_full()
            else:
                self.api.kick_gc.set()
            return 200, {"ok": True}
        if p == "/reconcile-quota" and method == "POST":
            self.api.quota_sync()
            return 200, {"ok": True}
        if p == "/sandbox-sim" and method in ("GET", "POST"):
            if self.sandboxes is None:
                return 409, {"error": "sandbox controller disabled"}
            if method == "GET":
                with self.api.lock:
                    return 200, self.sandboxes.settings()
            if not isinstance(body, dict):
                return 400, {"error": "body must be an object"}
            return 200, self.sandboxes.configure(body)
        if p.startswith("/sandboxes/") and method == "POST":
            parts = p.split("/")
            if len(parts) == 5 and parts[4] == "evict":
                if self.sandboxes is None:
                    return 409, {"error": "sandbox controller disabled"}
                obj = self.sandboxes.evict(parts[2], parts[3],
                                           float(body.get("recreateMs", 200)) / 1000.0)
                if obj is None:
                    raise ApiError(404, "NotFound", 'sandboxes.agents.x-k8s.io "%s" not found'
                                   % parts[3], {"name": parts[3], "group": "agents.x-k8s.io",
                                               "kind": "sandboxes"})
                return 200, obj
            if len(parts) == 5 and parts[4] == "finish":
                if self.sandboxes is None:
                    return 409, {"error": "sandbox controller disabled"}
                phase = body.get("phase", "Succeeded")
                if phase not in ("Succeeded", "Failed"):
                    return 400, {"error": "phase must be Succeeded or Failed"}
                obj = self.sandboxes.finish(parts[2], parts[3], phase)
                if obj is None:
                    raise ApiError(404, "NotFound", 'sandboxes.agents.x-k8s.io "%s" not found'
                                   % parts[3], {"name": parts[3], "group": "agents.x-k8s.io",
                                               "kind": "sandboxes"})
                return 200, obj
        return 404, {"error": "no such admin endpoint: %s %s" % (method, path)}

    def create_objects(self, body):
        """POST /objects: creates each object of the list (or of
        {"items": [...]}) as a POST of it would, in one admin request
        (benchmarks seed tens of thousands of Deployments this way).  Every
        object is tried; the answer counts those created and describes the
        first few failures."""
        items = body.get("items") if isinstance(body, dict) else body
        if not isinstance(items, list):
            return {"created": 0, "failed": 0,
                    "errors": ["the body must be a list of objects or {\"items\": [...]}"]}
        created, errors = 0, []
        for i, obj in enumerate(items):
            try:
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                rt = self.api.find_by_kind(obj.get("apiVersion"), obj.get("kind"))
                if rt is None:
                    raise ValueError("no kind %s in %s" % (obj.get("kind"), obj.get("apiVersion")))
                ns = None
                if rt.namespaced:
                    ns = (obj.get("metadata") or {}).get("namespace") or "default"
                self.api.create(rt, ns, obj, {}, owned=True)
                created += 1
            except ApiError as e:
                errors.append("items[%d]: %s" % (i, e.status().get("message")))
            except (ValueError, TypeError, AttributeError) as e:
                errors.append("items[%d]: %s" % (i, e))
        return {"created": created, "failed": len(errors), "errors": errors[:10]}
