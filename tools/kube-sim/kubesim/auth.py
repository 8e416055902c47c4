"""Authentication (x509 client certificates, bearer tokens from a CSV file)
and a small rule-based authorizer that produces the real RBAC denial
messages."""

import csv
import json
import os
import threading

ANON = {"name": "system:anonymous", "uid": "", "groups": ["system:unauthenticated"]}
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


class Auth:
    def __init__(self, tokens_file=None, rules_file=None, client_certs=False):
        self.tokens_file = tokens_file
        self.rules_file = rules_file
        self.client_certs = client_certs
        self.lock = threading.Lock()
        self.tokens = {}
        self.rules = None
        self._mtime = None
        self._rmtime = None
        self._reload()

    @property
    def enabled(self):
        return self.tokens_file is not None or self.client_certs

    def _reload(self):
        if self.tokens_file:
            try:
                mt = os.stat(self.tokens_file).st_mtime_ns
            except OSError:
                mt = None
            if mt != self._mtime:
                self._mtime = mt
                toks = {}
                if mt is not None:
                    with open(self.tokens_file, newline="") as f:
                        for row in csv.reader(f):
                            if not row or row[0].startswith("#") or len(row) < 2:
                                continue
                            groups = [g.strip() for g in row[3].split(",")] \
                                if len(row) > 3 and row[3] else []
                            toks[row[0].strip()] = {
                                "name": row[1].strip(),
                                "uid": row[2].strip() if len(row) > 2 else "",
                                "groups": [g for g in groups if g] + ["system:authenticated"]}
                self.tokens = toks
        if self.rules_file:
            try:
                mt = os.stat(self.rules_file).st_mtime_ns
            except OSError:
                mt = None
            if mt != self._rmtime:
                self._rmtime = mt
                rules = []
                if mt is not None:
                    with open(self.rules_file) as f:
                        data = json.load(f)
                    if isinstance(data, dict):
                        data = data.get("rules", [])
                    rules = data
                self.rules = rules

    def authenticate(self, header, cert=None):
        """Returns a user dict, or None for 401.  cert: the verified client
        certificate (ssl getpeercert() form) or None.  As kube-apiserver's
        authenticator union, a client certificate is tried before a token."""
        if not self.enabled:
            return dict(ANON)
        if cert and self.client_certs:
            user = cert_user(cert)
            if user is not None:
                return user
        with self.lock:
            self._reload()
            if not header:
                return dict(ANON)
            parts = header.split(None, 1)
            if len(parts) != 2 or parts[0].lower() != "bearer":
                return None
            if self.tokens_file is None:
                return dict(ANON)       # no token authenticator configured
            return self.tokens.get(parts[1].strip())

    def allowed(self, user, verb, group, resource, ns, name, path=None):
        if not self.enabled:
            return True
        if "system:masters" in user.get("groups", []):
            return True
        if path is not None:
            if path.rstrip("/") in PUBLIC_PATHS or path.startswith("/healthz"):
                return True
            if user["name"] != "system:anonymous" and (
                    path in ("/api", "/apis", "/openapi/v2", "/openapi/v3")
                    or path.startswith("/api/") or path.startswith("/apis/")
                    or path.startswith("/openapi/")):
                return True
        if self.rules is None:
            return user["name"] != "system:anonymous"
        for r in self.rules:
            users = r.get("users") or ([r["user"]] if "user" in r else [])
            groups = r.get("groups") or []
            if not ("*" in users or user["name"] in users or
                    any(g in user.get("groups", []) for g in groups)):
                continue
            verbs = r.get("verbs") or []
            if "*" not in verbs and verb not in verbs:
                continue
            if path is not None:
                urls = r.get("nonResourceURLs") or []
                if any(u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1]))
                       for u in urls):
                    return True
                continue
            groups_ok = r.get("apiGroups", ["*"])
            if "*" not in groups_ok and group not in groups_ok:
                continue
            res = r.get("resources") or []
            if "*" not in res and resource not in res and not (
                    "/" in resource and resource.split("/")[0] + "/*" in res):
                continue
            nss = r.get("namespaces", ["*"])
            if "*" not in nss and (ns or "") not in nss:
                continue
            names = r.get("resourceNames")
            if names and name not in names:
                continue
            return True
        return False


def cert_user(cert):
    """kube-apiserver's x509 mapping: subject CN is the user name, every O a
    group; no CN, no user."""
    cn, orgs = None, []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and cn is None:
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return {"name": cn, "uid": "", "groups": orgs + ["system:authenticated"]}


def forbidden_message(user, verb, group, plural, sub, ns, name):
    qual = plural + "." + group if group else plural
    res = plural + "/" + sub if sub else plural
    head = '%s "%s" is forbidden' % (qual, name) if name else "%s is forbidden" % qual
    scope = ' in the namespace "%s"' % ns if ns else " at the cluster scope"
    return '%s: User "%s" cannot %s resource "%s" in API group "%s"%s' % (
        head, user, verb, res, group, scope)
