"""One HTTP request with a JSON body and answer (urllib, standard library
only): what the tests say to kube-sim, the daemon and the real cluster."""
import json
import urllib.error
import urllib.request


def http(method, url, body=None, ctype="application/json", timeout=10, headers=None,
         cafile=None):
    """Returns (code, parsed JSON or text).  cafile: trust it for https."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    ctx = None
    if cafile is not None:
        import ssl
        ctx = ssl.create_default_context(cafile=cafile)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            code, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, raw.decode(errors="replace")
