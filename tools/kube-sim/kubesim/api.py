"""The resource semantics of kube-sim, independent of HTTP: CRUD, scale,
status, patch, delete/GC, list paging, quota admission and CRD serving."""

import base64
import json
import re
import threading

from . import patch as P
from .resources import (apply_schema, builtin_types, cel_not_checked, crd_types,
                        default_builtin, event_core_to_new, event_new_to_core,
                        validate_builtin, validate_builtin_update)
from .selectors import FieldSelector, LabelSelector, selector_from_match_labels
from .store import Store
from .util import (ApiError, already_exists, bad_request, clone, conflict, details,
                   get_path, gen_suffix, invalid, new_uid, not_found, now_ts, rv_int,
                   set_path)

DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUB_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
           "characters, '-' or '.', and must start and end with an alphanumeric character "
           "(e.g. 'example.com', regex used for validation is "
           "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
             "characters or '-', and must start and end with an alphanumeric character "
             "(e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
PROTECTED_NS = ("default", "kube-system", "kube-public")
GROUP_ORDER = ["", "apps", "events.k8s.io", "autoscaling", "policy",
               "rbac.authorization.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io"]
SERVER_FIELDS = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                 "deletionGracePeriodSeconds", "generation", "selfLink")


def _strip_rv(o):
    md = dict(o.get("metadata") or {})
    md.pop("resourceVersion", None)
    md.pop("managedFields", None)
    x = dict(o)
    x["metadata"] = md
    return x


def _gen_part(o):
    return {k: v for k, v in o.items()
            if k not in ("metadata", "status", "apiVersion", "kind")}


def _quantity(v):
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v).strip()
    mult = {"k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "Ki": 1024, "Mi": 1024 ** 2}
    for suf, m in mult.items():
        if s.endswith(suf):
            try:
                return int(float(s[:-len(suf)]) * m)
            except ValueError:
                return 0
    try:
        return int(float(s))
    except ValueError:
        return 0


class Api:
    def __init__(self, history=1000):
        self.store = Store(history)
        self.lock = self.store.lock
        self.types = {}      # gv -> {plural: RType}
        self.storage = {}    # rkey -> storage RType
        self.crd_types = {}  # crd name -> [RType]
        self.group_order = list(GROUP_ORDER)
        self.kick_gc = threading.Event()
        self.hooks = []      # fn(kind, rt, obj) after create/update/delete
        for rt in builtin_types():
            self.register(rt)
        with self.lock:
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.create(self.rt("", "v1", "namespaces"), None,
                            {"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": ns}}, {})

    # ------------------------------------------------------------ registry
    def register(self, rt):
        self.types.setdefault(rt.gv, {})[rt.plural] = rt
        if rt.storage or rt.key not in self.storage:
            self.storage[rt.key] = rt
        if rt.group not in self.group_order:
            self.group_order.append(rt.group)

    def unregister_crd(self, name):
        for rt in self.crd_types.pop(name, []):
            d = self.types.get(rt.gv, {})
            d.pop(rt.plural, None)
            if not d:
                self.types.pop(rt.gv, None)
            self.storage.pop(rt.key, None)

    def rt(self, group, version, plural):
        return self.types.get(group + "/" + version if group else version, {}).get(plural)

    def find_by_kind(self, api_version, kind):
        for rt in self.types.get(api_version, {}).values():
            if rt.kind == kind:
                return rt
        return None

    def groups(self):
        """group -> [versions] in preferred order."""
        out = {}
        for gv in self.types:
            if "/" not in gv:
                continue
            g, v = gv.split("/", 1)
            out.setdefault(g, []).append(v)
        for g in out:
            out[g].sort(key=_version_rank)
        return [(g, out[g]) for g in self.group_order if g in out]

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _is_new_event(rt):
        return rt.kind == "Event" and rt.group == "events.k8s.io"

    def _out(self, rt, obj):
        if rt.kind == "Event" and obj.get("apiVersion") != rt.gv:
            return event_core_to_new(obj) if self._is_new_event(rt) else obj
        if obj.get("apiVersion") != rt.gv:
            obj = dict(obj)
            obj["apiVersion"] = rt.gv
        return obj

    def ns_check(self, rt, ns, name):
        if not rt.namespaced:
            return
        nsobj = self.store.get(("", "namespaces"), "", ns)
        if nsobj is None:
            raise not_found("namespaces", "", ns)
        if nsobj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           '%s "%s" is forbidden: unable to create new content in namespace '
                           '%s because it is being terminated' % (rt.qualified, name, ns),
                           details(name, rt.group, rt.plural,
                                   [{"reason": "NamespaceTerminating",
                                     "message": "namespace %s is being terminated" % ns,
                                     "field": "metadata.namespace"}]))

    @staticmethod
    def _norm_meta(obj):
        """Go omits empty slices/maps in ObjectMeta (omitempty)."""
        md = obj.get("metadata")
        if isinstance(md, dict):
            for k in ("labels", "annotations", "ownerReferences", "finalizers",
                      "managedFields"):
                if k in md and not md[k]:
                    del md[k]

    def _defaults_validate(self, rt, obj, name):
        self._norm_meta(obj)
        if rt.builtin:
            default_builtin(rt, obj)
            validate_builtin(rt, obj)
        elif rt.schema:
            errs = []
            apply_schema(rt.schema, obj, "", errs, top=True)
            if errs:
                cel_not_checked(rt.schema, errs)
                raise invalid(rt.kind, rt.group, name, errs)

    def get(self, rt, ns, name):
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return self._out(rt, obj)

    # ------------------------------------------------------------ list
    def list(self, rt, ns, q):
        ls = LabelSelector(q.get("labelSelector"))
        fs = FieldSelector(q.get("fieldSelector"), rt, q.get("labelSelector"))
        rvq = q.get("resourceVersion")
        match = q.get("resourceVersionMatch")
        cont = q.get("continue")
        limit = q.get("limit")
        try:
            limit = int(limit) if limit not in (None, "") else 0
        except ValueError:
            raise bad_request("invalid limit: %s" % limit)
        with self.lock:
            cur = self.store.rv
            start = ""
            if match and not rvq:
                raise invalid("ListOptions", "meta.k8s.io", "",
                              [("resourceVersionMatch", "FieldValueForbidden",
                                "Forbidden: resourceVersionMatch is forbidden unless "
                                "resourceVersion is provided")])
            if match and match not in ("Exact", "NotOlderThan"):
                raise invalid("ListOptions", "meta.k8s.io", "",
                              [("resourceVersionMatch", "FieldValueNotSupported",
                                'Unsupported value: "%s": supported values: "Exact", '
                                '"NotOlderThan"' % match)])
            if cont:
                if rvq not in (None, "", "0"):
                    raise bad_request("specifying resource version is not allowed when "
                                      "using continue")
                if match:
                    raise invalid("ListOptions", "meta.k8s.io", "",
                                  [("resourceVersionMatch", "FieldValueForbidden",
                                    "Forbidden: resourceVersionMatch is forbidden when "
                                    "continue is provided")])
                try:
                    tok = json.loads(base64.b64decode(cont + "=" * (-len(cont) % 4)))
                    at, start = int(tok["rv"]), tok["start"]
                except (ValueError, KeyError, TypeError):
                    raise bad_request("continue key is not valid: incorrect encoded start "
                                      "resourceVersion (version meta.k8s.io/v1)")
                if at == -1:
                    at = cur
                elif at < self.store.oldest():
                    newtok = self._token(-1, start)
                    raise ApiError(410, "Expired",
                                   "The provided continue parameter is too old to display a "
                                   "consistent list result. You can start a new list without "
                                   "the continue parameter, or use the continue token in this "
                                   "response to retrieve the remainder of the results. "
                                   "Continuing with the provided token results in an "
                                   "inconsistent list - objects that were created, modified, "
                                   "or deleted between the time the first chunk was returned "
                                   "and now may show up in the list.",
                                   metadata={"continue": newtok})
            else:
                at = cur
                exact = False
                if rvq not in (None, "", "0"):
                    r = rv_int(rvq)
                    if r is None:
                        raise bad_request("invalid resource version: %s" % rvq)
                    if match == "Exact" or (limit and not match):
                        exact = True
                    if r > cur:
                        raise ApiError(504, "Timeout", "Too large resource version: %d, "
                                       "current: %d" % (r, cur),
                                       details(causes=[{"reason": "ResourceVersionTooLarge",
                                                        "message": "Too large resource "
                                                        "version"}], retry=1))
                    if exact:
                        if r < self.store.oldest():
                            raise ApiError(410, "Expired", "too old resource version: %d "
                                           "(%d)" % (r, self.store.oldest()))
                        at = r
                elif rvq == "0" and match == "Exact":
                    raise invalid("ListOptions", "meta.k8s.io", "",
                                  [("resourceVersionMatch", "FieldValueForbidden",
                                    'Forbidden: resourceVersionMatch "exact" is forbidden '
                                    'for resourceVersion "0"')])
            if at == cur:
                objs = self.store.items(rt.key, ns if rt.namespaced else None)
            else:
                objs = self.store.snapshot(rt.key, at)
                if rt.namespaced and ns is not None:
                    objs = [o for o in objs if o["metadata"].get("namespace") == ns]
        if self._is_new_event(rt):
            objs = [self._out(rt, o) for o in objs]
        items = []
        more = False
        remaining = 0
        last = None
        for o in objs:
            md = o["metadata"]
            k = (md.get("namespace") or "") + "/" + md["name"]
            if start and k < start:
                continue
            if not ls.empty() and not ls.matches(md.get("labels")):
                continue
            if not fs.empty() and not fs.matches(o):
                continue
            if limit and len(items) >= limit:
                more = True
                remaining += 1
                continue
            items.append(o)
            last = k
        meta = {"resourceVersion": str(at)}
        if more:
            meta["continue"] = self._token(at, last + "\x00")
            if ls.empty() and fs.empty():
                meta["remainingItemCount"] = remaining
        if rt.builtin:
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                     for o in items]
        else:
            items = [self._out(rt, o) for o in items]
        return {"kind": rt.list_kind, "apiVersion": rt.gv, "metadata": meta,
                "items": items}

    @staticmethod
    def _token(rv, start):
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start},
                         separators=(",", ":")).encode()
        return base64.b64encode(raw).decode().rstrip("=")

    # ------------------------------------------------------------ create
    def create(self, rt, ns, body, q, sub=None, owned=False):
        """owned: the caller hands body over (freshly parsed or built, shared with
        nothing, not used afterwards), so it is stored without a copy."""
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized")
        obj = body if owned else clone(body)
        if self._is_new_event(rt) and isinstance(obj, dict):
            obj = event_new_to_core(obj)
        if obj.get("kind") and obj.get("kind") != rt.kind and not (
                rt.kind == "Event" and obj.get("kind") == "Event"):
            raise bad_request("the kind of the object (%s) does not match the expected kind "
                              "(%s)" % (obj.get("kind"), rt.kind))
        obj["kind"] = rt.kind
        obj["apiVersion"] = self.storage[rt.key].gv if rt.key in self.storage else rt.gv
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = obj["metadata"] = {}
        if rt.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        for k in ("uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "resourceVersion",
                  "selfLink", "managedFields"):
            md.pop(k, None)
        if rt.status and "status" in obj and rt.kind != "Namespace":
            del obj["status"]
        dry = q.get("dryRun") == "All"
        with self.lock:
            name = md.get("name")
            gen = not name and bool(md.get("generateName"))
            if not name and not gen:
                raise invalid(rt.kind, rt.group, "",
                              [("metadata.name", "FieldValueRequired",
                                "Required value: name or generateName is required")])
            if gen:
                base = md["generateName"][:58]
                for _ in range(8):
                    name = base + gen_suffix()
                    if self.store.get(rt.key, ns, name) is None:
                        break
                md["name"] = name
            self._check_name(rt, name)
            self.ns_check(rt, ns, name)
            self._defaults_validate(rt, obj, name)
            if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self._crd_validate(obj)
            self._quota_admit(rt, ns, name, dry)
            if self.store.get(rt.key, ns, name) is not None:
                raise already_exists(rt.plural, rt.group, name, generated=gen)
            if dry:
                md["uid"] = new_uid()
                md["creationTimestamp"] = now_ts()
                if rt.generation:
                    md["generation"] = 1
                return self._out(rt, obj)
            md["uid"] = new_uid()
            md["creationTimestamp"] = now_ts()
            if rt.generation:
                md["generation"] = 1
            if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self._crd_status(obj)
            md["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rt.key, obj, "ADDED")
            if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self._crd_register(obj)
            if md.get("ownerReferences") or rt.plural == "resourcequotas":
                self.kick_gc.set()
            for h in self.hooks:
                h("create", rt, obj)
        return self._out(rt, obj)

    def _check_name(self, rt, name):
        if rt.kind == "Namespace":
            if not DNS1123_LABEL.match(name) or len(name) > 63:
                raise invalid(rt.kind, rt.group, name,
                              [("metadata.name", "FieldValueInvalid",
                                'Invalid value: "%s": %s' % (name, LABEL_MSG))])
        elif not DNS1123_SUB.match(name) or len(name) > 253:
            raise invalid(rt.kind, rt.group, name,
                          [("metadata.name", "FieldValueInvalid",
                            'Invalid value: "%s": %s' % (name, SUB_MSG))])

    # ------------------------------------------------------------ update
    def update(self, rt, ns, name, body, sub, q):
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized")
        if sub == "scale":
            return self._scale_update(rt, ns, name, body)
        bmd = body.get("metadata") or {}
        if bmd.get("name") and bmd["name"] != name:
            raise bad_request("the name of the object (%s) does not match the name on the "
                              "URL (%s)" % (bmd["name"], name))
        if rt.namespaced and bmd.get("namespace") and bmd["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        with self.lock:
            cur = self.store.get(rt.key, ns, name)
            if cur is None:
                if rt.create_on_update and not sub:
                    b = clone(body)
                    b.setdefault("metadata", {})["name"] = name
                    return self.create(rt, ns, b, q), True
                raise not_found(rt.plural, rt.group, name)
            rvq = bmd.get("resourceVersion")
            if not rvq:
                if not rt.builtin:
                    raise invalid(rt.kind, rt.group, name,
                                  [("metadata.resourceVersion", "FieldValueInvalid",
                                    "Invalid value: 0x0: must be specified for an update")])
            elif rvq != cur["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
            new = self._merge_for(rt, cur, body, sub)
            return self._commit(rt, cur, new, q), False

    def _merge_for(self, rt, cur, body, sub):
        if sub == "status":
            new = clone(cur)
            if "status" in body:
                new["status"] = clone(body["status"])
            else:
                new.pop("status", None)
            return new
        new = clone(body)
        if self._is_new_event(rt):
            new = event_new_to_core(new)
        new["kind"] = cur["kind"]
        new["apiVersion"] = cur["apiVersion"]
        md = new.get("metadata")
        if not isinstance(md, dict):
            md = new["metadata"] = {}
        cmd = cur["metadata"]
        for k in SERVER_FIELDS:
            if k in cmd:
                md[k] = cmd[k]
            else:
                md.pop(k, None)
        md.pop("managedFields", None)
        md["resourceVersion"] = cmd["resourceVersion"]
        if rt.status and rt.kind != "Namespace":
            if "status" in cur:
                new["status"] = clone(cur["status"])
            else:
                new.pop("status", None)
        if rt.kind == "Namespace":
            new["status"] = clone(cur.get("status") or {})
        return new

    def _commit(self, rt, cur, new, q=None, internal=False):
        """Validate, bump generation/RV and store an update (lock held).
        internal: a simulated controller's write (status, annotations, ownerReferences,
        finalizers).  It writes only what the schema allows, so the walk of the whole
        object, the biggest cost of a write, is skipped; client writes get it all."""
        name = cur["metadata"]["name"]
        nmd = new["metadata"]
        if nmd.get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        if internal:
            self._norm_meta(new)
        else:
            if rt.builtin:
                validate_builtin_update(rt, cur, new)
            self._defaults_validate(rt, new, name)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._crd_validate(new)
        if cur["metadata"].get("deletionTimestamp"):
            old_f = set(cur["metadata"].get("finalizers") or [])
            added = [f for f in nmd.get("finalizers") or [] if f not in old_f]
            if added:
                raise invalid(rt.kind, rt.group, name,
                              [("metadata.finalizers", "FieldValueForbidden",
                                "Forbidden: no new finalizers can be added if the object "
                                "is being deleted, found new finalizers %s" %
                                json.dumps(added))])
        if rt.generation and _gen_part(new) != _gen_part(cur):
            nmd["generation"] = int(cur["metadata"].get("generation") or 1) + 1
        if q and q.get("dryRun") == "All":
            return self._out(rt, new)
        if _strip_rv(new) == _strip_rv(cur):
            return self._out(rt, cur)
        if cur["metadata"].get("deletionTimestamp") and not nmd.get("finalizers"):
            self._final_delete(rt, new)
            return self._out(rt, new)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._crd_status(new)
        nmd["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, new, "MODIFIED")
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.unregister_crd(name)
            self._crd_register(new)
        if nmd.get("ownerReferences") != cur["metadata"].get("ownerReferences") or \
                rt.plural == "resourcequotas" or nmd.get("deletionTimestamp"):
            self.kick_gc.set()
        for h in self.hooks:
            h("update", rt, new)
        return self._out(rt, new)

    def internal_update(self, rt, cur, mutate, shallow=None):
        """Controller write: mutate a copy of cur and commit (lock held).
        Returns the stored object, or None when cur vanished.
        shallow: None for a deep copy; else the paths (tuples of keys) of the only nested
        dicts mutate changes in place: the top level, metadata and those are copied and
        the rest is shared with the stored version (stored objects are never mutated),
        which makes a status or metadata write cheap whatever the object's size."""
        live = self.store.get(rt.key, cur["metadata"].get("namespace"),
                              cur["metadata"]["name"])
        if live is None:
            return None
        if shallow is None:
            new = clone(live)
        else:
            new = dict(live)
            new["metadata"] = dict(live["metadata"])
            for path in shallow:
                node = new
                src = live
                for k in path:
                    s = src.get(k) if isinstance(src, dict) else None
                    if not isinstance(s, dict):
                        break
                    if node.get(k) is s:
                        node[k] = dict(s)
                    node, src = node[k], s
        mutate(new)
        new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        return self._commit(rt, live, new, internal=True)

    # ------------------------------------------------------------ patch
    def patch(self, rt, ns, name, raw, ctype, sub, q):
        ctype = (ctype or "").split(";")[0].strip().lower()
        allowed = ["application/json-patch+json", "application/merge-patch+json"]
        if rt.builtin:
            allowed.append("application/strategic-merge-patch+json")
        allowed.append("application/apply-patch+yaml")
        if ctype not in allowed:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted "
                           "media types include: " + ", ".join(allowed))
        body = P.parse_body(raw)
        if ctype == "application/apply-patch+yaml":
            if not q.get("fieldManager"):
                raise bad_request("PATCH requests must specify a fieldManager when using "
                                  "application/apply-patch+yaml")
            if isinstance(body, dict) and (body.get("metadata") or {}).get("managedFields"):
                raise bad_request("metadata.managedFields must be nil")
        elif ctype != "application/json-patch+json" and not isinstance(body, dict):
            raise bad_request("error decoding patch: json: cannot unmarshal %s into Go "
                              "value of type map[string]interface {}" % type(body).__name__)
        with self.lock:
            cur = self.store.get(rt.key, ns, name)
            if cur is None:
                if ctype == "application/apply-patch+yaml" and not sub:
                    b = clone(body)
                    b.setdefault("metadata", {})["name"] = name
                    return self.create(rt, ns, b, q), True
                raise not_found(rt.plural, rt.group, name)
            if sub == "scale":
                base = self.scale_of(rt, cur)
            else:
                base = self._out(rt, cur)
            if ctype == "application/json-patch+json":
                new = P.json_patch(base, body)
            elif ctype == "application/merge-patch+json":
                new = P.merge_patch(base, body)
            elif ctype == "application/strategic-merge-patch+json":
                new = P.strategic_merge(base, body)
            else:
                new = P.merge_patch(base, body)
            if not isinstance(new, dict):
                raise bad_request("the patch produced a non-object")
            if sub == "scale":
                return self._scale_update(rt, ns, name, new), False
            nmd = new.get("metadata") or {}
            if nmd.get("name") != name:
                raise bad_request("the name of the object (%s) does not match the name on "
                                  "the URL (%s)" % (nmd.get("name"), name))
            rvq = nmd.get("resourceVersion")
            if rvq and rvq != cur["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
            merged = self._merge_for(rt, cur, new, sub)
            return self._commit(rt, cur, merged, q), False

    # ------------------------------------------------------------ scale
    def scale_of(self, rt, obj):
        sc = rt.scale
        if not sc:
            raise not_found(rt.plural, rt.group, obj["metadata"]["name"])
        md = obj["metadata"]
        spec_r = get_path(obj, sc["specReplicasPath"])
        if spec_r is None and not rt.builtin:
            raise ApiError(500, "InternalError",
                           'Internal error occurred: the spec replicas field "%s" does not '
                           'exist' % sc["specReplicasPath"],
                           {"causes": [{"message": 'the spec replicas field "%s" does not '
                                        'exist' % sc["specReplicasPath"]}]})
        st_r = get_path(obj, sc["statusReplicasPath"]) or 0
        if rt.builtin:
            selector = selector_from_match_labels((obj.get("spec") or {}).get("selector"))
        else:
            lp = sc.get("labelSelectorPath")
            selector = get_path(obj, lp) if lp else ""
            if not isinstance(selector, str):
                selector = ""
        smd = {"name": md["name"]}
        if md.get("namespace"):
            smd["namespace"] = md["namespace"]
        smd["uid"] = md["uid"]
        smd["resourceVersion"] = md["resourceVersion"]
        smd["creationTimestamp"] = md["creationTimestamp"]
        spec = {}
        if spec_r:
            spec["replicas"] = spec_r
        status = {"replicas": st_r}
        if selector:
            status["selector"] = selector
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": smd,
                "spec": spec, "status": status}

    def get_scale(self, rt, ns, name):
        with self.lock:
            cur = self.store.get(rt.key, ns, name)
            if cur is None:
                raise not_found(rt.plural, rt.group, name)
            return self.scale_of(rt, cur)

    def _scale_update(self, rt, ns, name, body):
        with self.lock:
            cur = self.store.get(rt.key, ns, name)
            if cur is None:
                raise not_found(rt.plural, rt.group, name)
            if not rt.scale:
                raise not_found(rt.plural, rt.group, name)
            bmd = body.get("metadata") or {}
            if bmd.get("name") and bmd["name"] != name:
                raise bad_request("the name of the object (%s) does not match the name on "
                                  "the URL (%s)" % (bmd["name"], name))
            rvq = bmd.get("resourceVersion")
            if rvq and rvq != cur["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
            r = (body.get("spec") or {}).get("replicas", 0)
            if not isinstance(r, int) or isinstance(r, bool):
                raise bad_request("json: cannot unmarshal %s into Go struct field "
                                  "ScaleSpec.spec.replicas of type int32"
                                  % type(r).__name__)
            if r < 0:
                raise invalid("Scale", "autoscaling", name,
                              [("spec.replicas", "FieldValueInvalid",
                                "Invalid value: %d: must be greater than or equal to 0" % r)])
            new = clone(cur)
            set_path(new, rt.scale["specReplicasPath"], r)
            self._commit(rt, cur, new)
            return self.scale_of(rt, self.store.get(rt.key, ns, name))

    # ------------------------------------------------------------ delete
    def delete(self, rt, ns, name, raw, q):
        opts = {}
        if raw:
            try:
                opts = json.loads(raw)
            except ValueError as e:
                raise bad_request("error decoding DeleteOptions: %s" % e)
            if not isinstance(opts, dict):
                opts = {}
        policy = q.get("propagationPolicy") or opts.get("propagationPolicy")
        if opts.get("orphanDependents") is True or q.get("orphanDependents") == "true":
            policy = policy or "Orphan"
        if policy and policy not in ("Foreground", "Background", "Orphan"):
            raise invalid("DeleteOptions", "meta.k8s.io", "",
                          [("propagationPolicy", "FieldValueNotSupported",
                            'Unsupported value: "%s": supported values: "Foreground", '
                            '"Background", "Orphan", "nil"' % policy)])
        pre = opts.get("preconditions") or {}
        dry = q.get("dryRun") == "All" or "All" in (opts.get("dryRun") or [])
        with self.lock:
            cur = self.store.get(rt.key, ns, name)
            if cur is None:
                raise not_found(rt.plural, rt.group, name)
            md = cur["metadata"]
            if pre.get("uid") and pre["uid"] != md["uid"]:
                raise ApiError(409, "Conflict",
                               'Operation cannot be fulfilled on %s "%s": Precondition '
                               'failed: UID in precondition: %s, UID in object meta: %s'
                               % (rt.qualified, name, pre["uid"], md["uid"]),
                               details(name, rt.group, rt.plural))
            if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
                raise ApiError(409, "Conflict",
                               'Operation cannot be fulfilled on %s "%s": Precondition '
                               'failed: ResourceVersion in precondition: %s, '
                               'ResourceVersion in object meta: %s'
                               % (rt.qualified, name, pre["resourceVersion"],
                                  md["resourceVersion"]),
                               details(name, rt.group, rt.plural))
            if rt.kind == "Namespace":
                if name in PROTECTED_NS:
                    raise ApiError(403, "Forbidden", 'namespaces "%s" is forbidden: this '
                                   'namespace may not be deleted' % name,
                                   details(name, "", "namespaces"))
                if dry:
                    return cur, None
                new = clone(cur)
                if not md.get("deletionTimestamp"):
                    new["metadata"]["deletionTimestamp"] = now_ts()
                    new["metadata"]["deletionGracePeriodSeconds"] = 0
                    new["status"] = {"phase": "Terminating"}
                    new["metadata"]["resourceVersion"] = str(self.store.next_rv())
                    self.store.put(rt.key, new, "MODIFIED")
                    self.kick_gc.set()
                    return new, None
                return cur, None
            fins = list(md.get("finalizers") or [])
            gc_fin = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
            if gc_fin and gc_fin not in fins:
                fins.append(gc_fin)
                other = "orphan" if gc_fin == "foregroundDeletion" else "foregroundDeletion"
                if other in fins and md.get("deletionTimestamp") is None:
                    fins.remove(other)
            if dry:
                return (self._out(rt, cur), None) if fins else \
                    (None, self._success(rt, cur))
            if md.get("deletionTimestamp"):
                if fins != list(md.get("finalizers") or []):
                    new = clone(cur)
                    new["metadata"]["finalizers"] = fins
                    new["metadata"]["resourceVersion"] = str(self.store.next_rv())
                    self.store.put(rt.key, new, "MODIFIED")
                    self.kick_gc.set()
                    return self._out(rt, new), None
                return self._out(rt, cur), None
            if fins:
                new = clone(cur)
                nmd = new["metadata"]
                nmd["finalizers"] = fins
                nmd["deletionTimestamp"] = now_ts()
                nmd["deletionGracePeriodSeconds"] = 0
                if rt.generation:
                    nmd["generation"] = int(md.get("generation") or 1) + 1
                nmd["resourceVersion"] = str(self.store.next_rv())
                self.store.put(rt.key, new, "MODIFIED")
                self.kick_gc.set()
                for h in self.hooks:
                    h("update", rt, new)
                return self._out(rt, new), None
            self._final_delete(rt, cur)
            return None, self._success(rt, cur)

    def _success(self, rt, obj):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details(obj["metadata"]["name"], rt.group, rt.plural,
                                   uid=obj["metadata"]["uid"])}

    def _final_delete(self, rt, obj):
        final = dict(obj)
        final["metadata"] = dict(obj["metadata"])
        final["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.remove(rt.key, final)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            name = obj["metadata"]["name"]
            for crt in list(self.crd_types.get(name, [])):
                for o in self.store.items(crt.key):
                    if self.store.get(crt.key, o["metadata"].get("namespace"),
                                      o["metadata"]["name"]) is not None:
                        self._final_delete(crt, o)
            self.unregister_crd(name)
        self.kick_gc.set()
        for h in self.hooks:
            h("delete", rt, final)

    def internal_delete(self, rt, obj, policy=None):
        try:
            return self.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                               json.dumps({"propagationPolicy": policy}) if policy else None,
                               {})
        except ApiError:
            return None

    def delete_collection(self, rt, ns, raw, q):
        with self.lock:
            lst = self.list(rt, ns, {k: q[k] for k in ("labelSelector", "fieldSelector")
                                     if k in q})
            out = []
            for item in lst["items"]:
                try:
                    o, _st = self.delete(rt, item["metadata"].get("namespace"),
                                         item["metadata"]["name"], raw, q)
                    out.append(o or item)
                except ApiError:
                    pass
            lst["items"] = out
            lst["metadata"] = {"resourceVersion": str(self.store.rv)}
            return lst

    # ------------------------------------------------------------ quota
    @staticmethod
    def _quota_keys(rt):
        keys = ["count/" + rt.qualified]
        if rt.group == "" and rt.plural in ("configmaps", "secrets", "resourcequotas",
                                            "services", "pods",
                                            "persistentvolumeclaims"):
            keys.append(rt.plural)
        return keys

    def _quota_admit(self, rt, ns, name, dry):
        if not rt.namespaced:
            return
        keys = self._quota_keys(rt)
        qrt = self.storage[("", "resourcequotas")]
        for quota in self.store.items(qrt.key, ns):
            st = quota.get("status") or {}
            hard = st.get("hard") or {}
            used = st.get("used") or {}
            restricted = [k for k in keys if k in hard]
            if not restricted:
                continue
            qn = quota["metadata"]["name"]
            if any(k not in used for k in restricted):
                raise self._forbidden_quota(rt, name, "status unknown for quota: %s, "
                                            "resources: %s" % (qn, ",".join(sorted(restricted))))
            over = [k for k in restricted if _quantity(used[k]) + 1 > _quantity(hard[k])]
            if over:
                over.sort()
                raise self._forbidden_quota(
                    rt, name, "exceeded quota: %s, requested: %s, used: %s, limited: %s" % (
                        qn, ",".join("%s=1" % k for k in over),
                        ",".join("%s=%s" % (k, used[k]) for k in over),
                        ",".join("%s=%s" % (k, hard[k]) for k in over)))
            if dry:
                continue
            new = clone(quota)
            for k in restricted:
                new["status"]["used"][k] = str(_quantity(used[k]) + 1)
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(qrt.key, new, "MODIFIED")

    @staticmethod
    def _forbidden_quota(rt, name, why):
        return ApiError(403, "Forbidden", '%s "%s" is forbidden: %s' % (rt.qualified, name, why),
                        details(name, rt.group, rt.plural))

    def quota_sync(self):
        """The quota controller: status.hard = spec.hard, status.used recounted."""
        qkey = ("", "resourcequotas")
        with self.lock:
            for quota in self.store.items(qkey):
                hard = (quota.get("spec") or {}).get("hard") or {}
                ns = quota["metadata"]["namespace"]
                used = {}
                for k in hard:
                    used[k] = str(self._count(k, ns))
                st = {"hard": {k: str(v) for k, v in hard.items()}, "used": used}
                if quota.get("status") != st:
                    new = clone(quota)
                    new["status"] = st
                    new["metadata"]["resourceVersion"] = str(self.store.next_rv())
                    self.store.put(qkey, new, "MODIFIED")

    def _count(self, key, ns):
        res = key[6:] if key.startswith("count/") else key
        if "." in res:
            plural, group = res.split(".", 1)
        else:
            plural, group = res, ""
        return self.store.count((group, plural), ns)

    # ------------------------------------------------------------ CRDs
    def _crd_validate(self, crd):
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        name = crd["metadata"]["name"]
        errs = []
        if not spec.get("group"):
            errs.append(("spec.group", "FieldValueRequired", "Required value"))
        if not names.get("plural"):
            errs.append(("spec.names.plural", "FieldValueRequired", "Required value"))
        if not names.get("kind"):
            errs.append(("spec.names.kind", "FieldValueRequired", "Required value"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errs.append(("spec.scope", "FieldValueNotSupported",
                         'Unsupported value: "%s": supported values: "Cluster", '
                         '"Namespaced"' % spec.get("scope", "")))
        vers = spec.get("versions") or []
        if not vers:
            errs.append(("spec.versions", "FieldValueInvalid",
                         "Invalid value: []: must have exactly one version marked as "
                         "storage version"))
        elif sum(1 for v in vers if v.get("storage")) != 1:
            errs.append(("spec.versions", "FieldValueInvalid",
                         "Invalid value: %s: must have exactly one version marked as "
                         "storage version" % json.dumps([v.get("name") for v in vers])))
        if names.get("plural") and spec.get("group") and \
                name != names["plural"] + "." + spec["group"]:
            errs.append(("metadata.name", "FieldValueInvalid",
                         'Invalid value: "%s": must be spec.names.plural+"."+spec.group'
                         % name))
        if errs:
            raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, errs)
        for v in vers:
            sc = (v.get("subresources") or {}).get("scale")
            if sc is not None:
                if not sc.get("specReplicasPath") or not sc.get("statusReplicasPath"):
                    raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name,
                                  [("spec.versions[0].subresources.scale.specReplicasPath",
                                    "FieldValueRequired", "Required value")])

    @staticmethod
    def _crd_status(crd):
        spec = crd.get("spec") or {}
        names = dict(spec.get("names") or {})
        names.setdefault("singular", names.get("kind", "").lower())
        names.setdefault("listKind", names.get("kind", "") + "List")
        t = now_ts()
        crd["spec"]["names"] = names
        crd["status"] = {
            "acceptedNames": names,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": t},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted",
                 "lastTransitionTime": t}],
            "storedVersions": [v["name"] for v in spec.get("versions") or []
                               if v.get("storage")]}

    def _crd_register(self, crd):
        rts = crd_types(crd)
        self.crd_types[crd["metadata"]["name"]] = rts
        for rt in rts:
            self.register(rt)


def _version_rank(v):
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0, v)
    major = int(m.group(1))
    kind = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (kind, -major, -minor, v)

