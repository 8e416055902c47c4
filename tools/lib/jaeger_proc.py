"""The real Jaeger all-in-one (github.com/jaegertracing/jaeger v1.75.0, the
v2 binary: an OpenTelemetry Collector distribution, built by `make jaeger`
into build/jaeger/bin from tools/cluster/jaeger/go.mod; AGENTSCALER_JAEGER_BIN
names another binary) as a child process on 127.0.0.1 (Jaeger), for the
trace export test (issue 19).

Its configuration is written here, not taken from its built-in all-in-one
(cmd/jaeger/internal/all-in-one.yaml in the module, whose listeners are on
localhost with fixed ports, 4317/4318/16686 among them, plus the
collector's own metrics on 8888): one OTLP/HTTP receiver and the query
service's HTTP API, each on a free 127.0.0.1 port, the in-memory store, and
the collector's own telemetry off (service.telemetry.metrics.level none),
so nothing listens anywhere else.  The query API is the one the Jaeger UI
reads (cmd/query/app/apiv3 aside): GET /api/traces/<id> and
/api/traces?service=..., whose spans carry references: CHILD_OF for the
parent, FOLLOWS_FROM for an OTLP link (the collector's OTLP to Jaeger
translation, pkg/translator/jaeger refTypeFromLink).  Standard library
only."""
import json
import os
import subprocess
import tempfile
import urllib.request

from procs import (ROOT, check_port_in_use, free_port, listening, start_retrying, stop_pid,
                   wait_for)

JAEGER_BIN = os.environ.get("AGENTSCALER_JAEGER_BIN",
                            os.path.join(ROOT, "build/jaeger/bin/jaeger"))

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:%(query)d
    grpc:
      endpoint: 127.0.0.1:%(query_grpc)d
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%(otlp)d
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
"""


def jaeger_missing():
    """Why Jaeger cannot run here (None when it can)."""
    if not os.access(JAEGER_BIN, os.X_OK):
        return "%s is not built (make jaeger)" % JAEGER_BIN
    return None


class Jaeger:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="jaeger-")
        self.config = os.path.join(self.dir, "config.yaml")
        self.log_path = os.path.join(self.dir, "jaeger.log")
        self.proc = None
        self._configure()

    def _configure(self):
        """Picks its three ports and writes its configuration."""
        self.otlp_port = free_port()
        self.query_port = free_port()
        self.query_grpc_port = free_port()
        with open(self.config, "w") as f:
            f.write(CONFIG % {"query": self.query_port, "query_grpc": self.query_grpc_port,
                              "otlp": self.otlp_port})

    @property
    def otlp_url(self):
        return "http://127.0.0.1:%d" % self.otlp_port

    @property
    def query_url(self):
        return "http://127.0.0.1:%d" % self.query_port

    def start(self, timeout=60):
        """Starts it; a port taken before it bound it: three other ports
        (procs.start_retrying)."""
        why = jaeger_missing()
        if why:
            raise RuntimeError(why)

        def attempt():
            if self.proc is not None:
                self._configure()
            with open(self.log_path, "wb") as log:
                env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
                self.proc = subprocess.Popen([JAEGER_BIN, "--config", self.config],
                                             stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL, env=env)
            try:
                wait_for(self.ready, timeout, 0.1, "jaeger's query API (log %s)" % self.log_path)
            except AssertionError:
                stop_pid(self.proc)
                check_port_in_use(self.log(), "jaeger")
                raise
        start_retrying(attempt)
        return self

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("jaeger exited %s: %s" % (self.proc.returncode, self.log()))
        # Jaeger itself on all three ports, not another process holding one
        # (a taken port is then retried, not mistaken for Jaeger's).
        if not all(listening(self.proc.pid, p) for p in
                   (self.otlp_port, self.query_port, self.query_grpc_port)):
            return False
        return self.get("/api/services") is not None

    def get(self, path):
        """The query API's JSON at path, or None (not there yet)."""
        try:
            with urllib.request.urlopen(self.query_url + path, timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def trace(self, trace_id):
        """The spans of trace_id (Jaeger's UI model), [] when unknown."""
        doc = self.get("/api/traces/%s" % trace_id)
        if not doc or not doc.get("data"):
            return []
        return [s for t in doc["data"] for s in t["spans"]]

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        stop_pid(self.proc)
