"""A small OTLP/HTTP JSON trace receiver on a free 127.0.0.1 port, in a
thread of the test's process, for the integration tests of the span
export (--otlp-endpoint) that need no real collector: it takes
POST /v1/traces (the OTLP specification's OTLP/HTTP section, JSON
encoding), keeps every span it was sent and answers 200 with an empty
ExportTraceServiceResponse.  mute=True accepts the requests and never
answers them (a collector that hangs), until stop().  The real collector
path is tests/e2e/test_e2e_traces.py's (tools/lib/jaeger_proc.py).
Standard library only."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OtlpSink:
    def __init__(self, mute=False):
        self.mute = mute
        self.requests = 0
        self._spans = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if sink.mute:
                    sink._stopped.wait()
                    return
                spans = []
                try:
                    for rs in json.loads(body).get("resourceSpans", []):
                        for ss in rs.get("scopeSpans", []):
                            spans += ss.get("spans", [])
                    code = 200 if self.path == "/v1/traces" else 404
                except ValueError:
                    code = 400
                with sink._lock:
                    sink.requests += 1
                    if code == 200:
                        sink._spans += spans
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self):
        """Every span received so far (OTLP JSON objects), in order."""
        with self._lock:
            return list(self._spans)

    def task_spans(self, task_id):
        """The names of the spans whose agentscaler.task.id is task_id."""
        out = []
        for s in self.spans():
            for a in s.get("attributes", []):
                if (a.get("key") == "agentscaler.task.id" and
                        a.get("value", {}).get("stringValue") == task_id):
                    out.append(s["name"])
        return out

    def stop(self):
        self._stopped.set()
        self.server.shutdown()
        self.server.server_close()
