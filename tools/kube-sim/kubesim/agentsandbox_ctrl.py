"""Simulated agent-sandbox controllers: Sandbox (cold start, expiry, suspend,
Finished), SandboxWarmPool (keep N warm, refill) and SandboxClaim (warm
adoption, cold start, lifecycle).  Level-triggered: every pass recomputes the
desired state of every object, as controller-runtime reconcilers do."""

import copy
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


def _normalize_created_by(v):
    return v if v in ("go-client", "python-client", "controller") else "unknown"


def _domain_ok(key, allowed):
    if "/" not in key:
        return False
    dom = key.split("/", 1)[0]
    return any(dom == a or dom.endswith("." + a) for a in allowed)


class SandboxControllers:
    def __init__(self, api, cold_start_s, warm_bind_s):
        self.api = api
        self.cold = cold_start_s
        self.warm = warm_bind_s
        self.born = {}       # sandbox uid -> monotonic start of the current pod
        self.seen = {}       # claim uid -> monotonic first observation
        self.finished = {}   # sandbox uid -> (phase, RFC 3339 time)
        self.ips = {}        # sandbox uid -> pod IP
        self.ipn = 0
        self.loop = Loop("sandbox", self.run_pass, debounce=0.001, idle=1.0)
        api.store.listeners.append(self._on_event)

    def _on_event(self, ev):
        if ev.rkey in (SB, CLAIM, POOL, TPL):
            self.loop.wake()

    def rt(self, key):
        return self.api.storage.get(key)

    # ------------------------------------------------------------ hooks
    def finish(self, ns, name, phase):
        api = self.api
        with api.lock:
            sb = api.store.get(SB, ns, name)
            if sb is None:
                return None
            self.finished[sb["metadata"]["uid"]] = (phase, now_ts())
            self._sandbox(sb, time.monotonic(), time.time(), [])
            out = api.store.get(SB, ns, name)
        self.loop.wake()
        return out

    # ------------------------------------------------------------ pass
    def run_pass(self):
        api = self.api
        if self.rt(SB) is None:
            return None
        now = time.monotonic()
        wall = time.time()
        nxt = []
        with api.lock:
            for sb in api.store.items(SB):
                self._sandbox(sb, now, wall, nxt)
            for pool in api.store.items(POOL):
                self._pool(pool, now, nxt)
            for claim in api.store.items(CLAIM):
                self._claim(claim, now, wall, nxt)
            for pool in api.store.items(POOL):
                self._pool(pool, now, nxt)
            live = {o["metadata"]["uid"] for o in api.store.items(SB)}
            for d in (self.born, self.finished, self.ips):
                for k in [k for k in d if k not in live]:
                    del d[k]
            live_c = {o["metadata"]["uid"] for o in api.store.items(CLAIM)}
            for k in [k for k in self.seen if k not in live_c]:
                del self.seen[k]
        return min(nxt) if nxt else None

    def _write(self, key, obj, mutate):
        try:
            return self.api.internal_update(self.rt(key), obj, mutate)
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
            api.create(rt, md.get("namespace"), ev, {})
        except ApiError:
            pass

    # ------------------------------------------------------------ Sandbox
    def _sandbox(self, sb, now, wall, nxt):
        md = sb["metadata"]
        if md.get("deletionTimestamp"):
            return
        uid = md["uid"]
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
                                                                                None))
            return
        born = self.born.setdefault(uid, now)
        _set_cond(conds, "Suspended", "False", "NotSuspended", "Sandbox is not suspended",
                  gen, t)
        if now >= born + self.cold:
            ip = self.ips.get(uid)
            if ip is None:
                self.ipn += 1
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
                "annotations", {}).__setitem__(A_PODNAME, n["metadata"]["name"])) or cur
        self._put_status(cur or sb, st)

    def _put_status(self, obj, st):
        if (obj.get("status") or {}) == st:
            return obj
        rkey = SB if obj["kind"] == "Sandbox" else (CLAIM if obj["kind"] == "SandboxClaim"
                                                     else POOL)
        return self._write(rkey, obj, lambda n: n.__setitem__("status", st))

    # ------------------------------------------------------------ pool
    def _members(self, pool):
        ns = pool["metadata"]["namespace"]
        uid = pool["metadata"]["uid"]
        out = []
        for sb in self.api.store.items(SB, ns):
            r = _ctrl_ref(sb)
            if r is not None and r.get("uid") == uid and r.get("kind") == "SandboxWarmPool":
                out.append(sb)
        return out

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
        members = self._members(pool)
        active = [m for m in members if not m["metadata"].get("deletionTimestamp")]
        tname = (spec.get("sandboxTemplateRef") or {}).get("name")
        tpl = api.store.get(TPL, ns, tname) if tname else None
        label = name_hash(name)
        if len(members) < desired and tpl is not None:
            bp = self._blueprint(tpl)
            bp_hash = name_hash(json.dumps(bp, sort_keys=True))
            ann = bp["podTemplate"].setdefault("metadata", {}).setdefault("annotations", {})
            ann.setdefault(A_EVICT, "true")
            for _ in range(desired - len(members)):
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
                      "spec": copy.deepcopy(bp)}
                try:
                    api.create(self.rt(SB), ns, sb, {})
                except ApiError:
                    nxt.append(now + 1.0)
                    break
        elif len(active) > desired:
            extra = len(active) - desired
            order = sorted(active, key=lambda m: (_ready(m), m["metadata"]["creationTimestamp"]),
                           reverse=False)
            unready = [m for m in order if not _ready(m)]
            ready = [m for m in order if _ready(m)]
            victims = (sorted(unready, key=lambda m: m["metadata"]["creationTimestamp"],
                              reverse=True) +
                       sorted(ready, key=lambda m: m["metadata"]["creationTimestamp"],
                              reverse=True))[:extra]
            for v in victims:
                api.internal_delete(self.rt(SB), v, "Background")
        members = [m for m in self._members(pool) if not m["metadata"].get("deletionTimestamp")]
        st = clone(pool.get("status") or {})
        st["replicas"] = len(members)
        st["readyReplicas"] = sum(1 for m in members if _ready(m))
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
        exp = None
        if lc:
            s = parse_ts(lc.get("shutdownTime"))
            if s is not None:
                exp = s
            ttl = lc.get("ttlSecondsAfterFinished")
            fin = _cond(claim, "Finished")
            if ttl is not None and fin is not None and fin.get("status") == "True":
                ft = parse_ts(fin.get("lastTransitionTime"))
                if ft is not None:
                    exp = ft + ttl if exp is None else min(exp, ft + ttl)
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
            elif bound is not None:
                api.internal_delete(self.rt(SB), bound, "Background")
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
                cands = [m for m in self._members(pool)
                         if not m["metadata"].get("deletionTimestamp")
                         and (m["metadata"].get("labels") or {}).get(L_POOL)
                         and (m["metadata"].get("labels") or {}).get(L_TPLREF)]
                cands.sort(key=lambda m: (m["metadata"]["creationTimestamp"],
                                          int(m["metadata"]["resourceVersion"])))
                with_ips = [m for m in cands if (m.get("status") or {}).get("podIPs")]
                ready = [m for m in with_ips if _ready(m)]
                pick = ready[0] if ready else (with_ips[0] if with_ips else None)
                if pick is None and cands and (pool.get("spec") or {}).get("replicas", 1) and \
                        now < seen + WARM_GRACE:
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
        conds.sort(key=lambda c: c.get("type"))
        sbst = {"name": bound["metadata"]["name"]}
        ips = (bound.get("status") or {}).get("podIPs")
        if ips:
            sbst["podIPs"] = list(ips)
        st["sandbox"] = sbst
        self._put_status(claim, st)

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
                "annotations", {}).__setitem__(A_SBNAME, sbname))
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
        return self._write(SB, live, mut)

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
            return api.create(self.rt(SB), md["namespace"], sb, {})
        except ApiError:
            return None

