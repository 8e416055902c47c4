"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge
patch covering the list merge keys of the built-in types kube-sim serves."""

import copy
import json

from .util import ApiError, bad_request

# patchMergeKey of the built-in list fields (field name -> merge key).  A field
# listed with None is a primitive list with patchStrategy merge (union).
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "ports": "containerPort", "volumeMounts": "mountPath",
    "volumes": "name", "imagePullSecrets": "name", "hostAliases": "ip",
    "volumeDevices": "devicePath", "conditions": "type", "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
    "finalizers": None,
}


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _unesc(tok):
    return tok.replace("~1", "/").replace("~0", "~")


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise _jp_err('JSON pointer must start with "/": %s' % path)
    return [_unesc(t) for t in path[1:].split("/")]


def _jp_err(msg):
    return ApiError(422, "Invalid",
                    "the server rejected our request due to an error in our request",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": msg}]})


def _parent(doc, toks, path, op):
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise _jp_err("%s operation does not apply: doc is missing path: %s: "
                              "missing value" % (op, path))
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                i = int(t)
                cur = cur[i]
            except (ValueError, IndexError):
                raise _jp_err("%s operation does not apply: doc is missing path: %s: "
                              "missing value" % (op, path))
        else:
            raise _jp_err("%s operation does not apply: doc is missing path: %s: "
                          "missing value" % (op, path))
    return cur


def _get(doc, path, op):
    toks = _ptr(path)
    if not toks:
        return doc
    par = _parent(doc, toks, path, op)
    last = toks[-1]
    if isinstance(par, dict):
        if last not in par:
            raise _jp_err("%s operation does not apply: doc is missing key: %s: missing "
                          "value" % (op, path))
        return par[last]
    if isinstance(par, list):
        try:
            return par[int(last)]
        except (ValueError, IndexError):
            raise _jp_err("%s operation does not apply: doc is missing key: %s: missing "
                          "value" % (op, path))
    raise _jp_err("%s operation does not apply: doc is missing key: %s" % (op, path))


def _add(doc, path, value, op="add"):
    toks = _ptr(path)
    if not toks:
        return value
    par = _parent(doc, toks, path, op)
    last = toks[-1]
    if isinstance(par, dict):
        par[last] = value
    elif isinstance(par, list):
        if last == "-":
            par.append(value)
        else:
            try:
                i = int(last)
            except ValueError:
                raise _jp_err("add operation does not apply: doc is missing path: %s" % path)
            if i < 0 or i > len(par):
                raise _jp_err("add operation does not apply: doc is missing path: %s: "
                              "invalid index: %d" % (path, i))
            par.insert(i, value)
    else:
        raise _jp_err("add operation does not apply: doc is missing path: %s" % path)
    return doc


def _remove(doc, path, op="remove"):
    toks = _ptr(path)
    par = _parent(doc, toks, path, op)
    last = toks[-1] if toks else ""
    if isinstance(par, dict):
        if last not in par:
            raise _jp_err("%s operation does not apply: doc is missing key: %s: missing "
                          "value" % (op, path))
        return par.pop(last)
    if isinstance(par, list):
        try:
            return par.pop(int(last))
        except (ValueError, IndexError):
            raise _jp_err("%s operation does not apply: doc is missing key: %s: missing "
                          "value" % (op, path))
    raise _jp_err("%s operation does not apply: doc is missing key: %s" % (op, path))


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for o in ops:
        if not isinstance(o, dict) or "op" not in o:
            raise bad_request("unexpected kind of operation")
        op = o.get("op")
        path = o.get("path")
        if not isinstance(path, str):
            raise _jp_err("%s operation does not apply: missing path" % op)
        if op == "add":
            if "value" not in o:
                raise _jp_err("add operation does not apply: missing value")
            doc = _add(doc, path, copy.deepcopy(o["value"]))
        elif op == "remove":
            _remove(doc, path)
        elif op == "replace":
            if "value" not in o:
                raise _jp_err("replace operation does not apply: missing value")
            toks = _ptr(path)
            if not toks:
                doc = copy.deepcopy(o["value"])
                continue
            _get(doc, path, "replace")
            par = _parent(doc, toks, path, "replace")
            if isinstance(par, dict):
                par[toks[-1]] = copy.deepcopy(o["value"])
            else:
                par[int(toks[-1])] = copy.deepcopy(o["value"])
        elif op == "move":
            val = _remove(doc, o.get("from", ""), "move")
            doc = _add(doc, path, val, "move")
        elif op == "copy":
            val = copy.deepcopy(_get(doc, o.get("from", ""), "copy"))
            doc = _add(doc, path, val, "copy")
        elif op == "test":
            try:
                cur = _get(doc, path, "test")
            except ApiError:
                raise _jp_err("testing value %s failed: test failed" % path)
            if cur != o.get("value"):
                raise _jp_err("testing value %s failed: test failed" % path)
        else:
            raise bad_request("Unexpected kind: %s" % op)
    return doc


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items()
                if not k.startswith("$") and not k.startswith("$setElementOrder/")
                and not k.startswith("$deleteFromPrimitiveList/")}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def strategic_merge(target, patch, field=None):
    if not isinstance(patch, dict):
        return _strip_directives(copy.deepcopy(patch))
    if patch.get("$patch") == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if patch.get("$patch") == "delete":
        return None
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            fld = k.split("/", 1)[1]
            if isinstance(out.get(fld), list) and isinstance(v, list):
                out[fld] = [x for x in out[fld] if x not in v]
            continue
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
            continue
        if isinstance(v, list) and k in MERGE_KEYS and isinstance(out.get(k), list):
            out[k] = _merge_list(out[k], v, _merge_key(k, out[k], v), k)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, k)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = _strip_directives(copy.deepcopy(v))
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain or k not in target}
        out = {k: v for k, v in out.items() if k in retain or k in patch}
    return out


def _merge_key(field, cur, patch):
    """The merge key of a list field.  `ports` is the one name shared by two
    types: container ports merge on containerPort, Service ports on port."""
    key = MERGE_KEYS[field]
    if field == "ports":
        items = [i for i in list(cur) + list(patch) if isinstance(i, dict)
                 and "$patch" not in i]
        if items and all("containerPort" not in i for i in items):
            return "port"
    return key


def _merge_list(cur, patch, key, field):
    if key is None:
        out = list(cur)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    for item in patch:
        if isinstance(item, dict) and item.get("$patch") == "replace":
            return _strip_directives([i for i in patch if not (isinstance(i, dict)
                                                              and "$patch" in i)])
    out = [copy.deepcopy(x) for x in cur]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            out.append(_strip_directives(copy.deepcopy(item)))
            continue
        idx = next((i for i, x in enumerate(out)
                    if isinstance(x, dict) and x.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip_directives(copy.deepcopy(item)))
        else:
            out[idx] = strategic_merge(out[idx], item, field)
    return out


def parse_body(raw):
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request("error decoding patch: %s" % e)
