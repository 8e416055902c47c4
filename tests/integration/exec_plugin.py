#!/usr/bin/env python3
"""A client.authentication.k8s.io/v1 exec credential plugin for the tests.

Reads its answer from the directory in EXEC_PLUGIN_STATE: "token" (the
bearer token to hand out), "cert" and "key" (PEM files: a client certificate
instead), "ttl" (seconds until expirationTimestamp; no file: no expiry),
"fail" (when present: print its text on stderr and exit 3).
Appends one JSON line per run to "runs": the KUBERNETES_EXEC_INFO it got and
whether stdin was a terminal.  Standard library only.
"""
import datetime
import json
import os
import sys


def read(state, name):
    try:
        with open(os.path.join(state, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def main():
    state = os.environ["EXEC_PLUGIN_STATE"]
    info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "null")
    with open(os.path.join(state, "runs"), "a") as f:
        f.write(json.dumps({"info": info, "tty": os.isatty(0), "argv": sys.argv[1:]}) + "\n")
    fail = read(state, "fail")
    if fail is not None:
        sys.stderr.write(fail + "\nsecond line\n")
        return 3
    if read(state, "cert") is not None:
        status = {"clientCertificateData": read(state, "cert") + "\n",
                  "clientKeyData": read(state, "key") + "\n"}
    else:
        status = {"token": read(state, "token")}
    ttl = read(state, "ttl")
    if ttl is not None:
        t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=float(ttl))
        status["expirationTimestamp"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    json.dump({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
               "status": status}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
