"""A stand-in for agent-sandbox's sandbox-router on loopback
(ref/agent-sandbox-api.md section 15): routes by X-Sandbox-ID,
X-Sandbox-Namespace (default "default"), X-Sandbox-Port (default 8888) and
X-Sandbox-Pod-IP (dialled instead of the name; loopback only here),
forwards method, path, query and body, answers its own errors as
{"detail": ...} (400 bad headers, 502 unreachable).  stop() also cuts the
requests in flight, as a router restart would; start() again serves on the
same port."""
import http.client
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Router:
    def __init__(self, port=0):
        self.routes = {}        # (namespace, sandbox id) -> host
        self.seen = []          # (method, path, headers dict) of each request
        self.port = port
        self.srv = None
        self._live = set()
        self._lock = threading.Lock()

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        rt = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _err(self, code, detail):
                data = json.dumps({"detail": detail}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _proxy(self):
                with rt._lock:
                    rt._live.add(self.connection)
                    rt.seen.append((self.command, self.path, dict(self.headers)))
                try:
                    self._forward()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True
                finally:
                    with rt._lock:
                        rt._live.discard(self.connection)

            def _forward(self):
                sid = self.headers.get("X-Sandbox-ID")
                ns = self.headers.get("X-Sandbox-Namespace") or "default"
                try:
                    port = int(self.headers.get("X-Sandbox-Port") or 8888)
                except ValueError:
                    return self._err(400, "X-Sandbox-Port must be a number")
                if not sid:
                    return self._err(400, "X-Sandbox-ID header is required")
                host = self.headers.get("X-Sandbox-Pod-IP") or rt.routes.get((ns, sid))
                if host is None or not host.startswith("127."):
                    return self._err(502, "sandbox %s/%s unreachable" % (ns, sid))
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                hdrs = {k: v for k, v in self.headers.items()
                        if not k.lower().startswith("x-sandbox-") and k.lower() != "host"}
                up = http.client.HTTPConnection(host, port, timeout=180)
                try:
                    up.request(self.command, self.path, body=body, headers=hdrs)
                    r = up.getresponse()
                    data = r.read()
                except OSError as e:
                    return self._err(502, "sandbox %s/%s unreachable: %s" % (ns, sid, e))
                finally:
                    up.close()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _proxy

        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        return self

    def stop(self):
        if self.srv is None:
            return
        self.srv.shutdown()
        self.srv.server_close()
        with self._lock:
            for c in list(self._live):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.srv = None
