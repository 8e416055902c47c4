"""Command line entry point."""

import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading

from .admin import Admin
from .api import Api
from .auth import Auth
from .controllers import Collector, Workloads
from .server import AdminServer, ApiServer, State
from .tables import Tables


def parse_args(argv):
    p = argparse.ArgumentParser(prog="kube-sim", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="API port (0 = pick a free port)")
    p.add_argument("--admin-port", type=int, default=0, help="admin port (0 = free port)")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA")
    p.add_argument("--state-dir", help="directory for generated certificates")
    p.add_argument("--client-ca", help="with --tls: CA bundle for x509 client certificates "
                                       "(requested, not required; CN = user, O = groups)")
    p.add_argument("--tokens", help="token CSV file: token,user,uid,\"group1,group2\"")
    p.add_argument("--rules", help="authorization rules JSON file")
    p.add_argument("--replica-delay-ms", type=int, default=200)
    p.add_argument("--cold-start-ms", type=int, default=2000)
    p.add_argument("--warm-bind-ms", type=int, default=50)
    p.add_argument("--pod-ip-range", default=None, metavar="CIDR",
                   help="pod IPs of sandboxes from this IPv4 range (e.g. 127.77.0.0/16, so "
                        "that a test can serve each pod at its IP on loopback); default "
                        "10.244.0.0 up, as a cluster's pod network")
    p.add_argument("--no-deployment-controller", action="store_true")
    p.add_argument("--no-sandbox-controller", action="store_true")
    p.add_argument("--no-agent-sandbox-crds", action="store_true")
    p.add_argument("--no-gc", action="store_true",
                   help="disable the garbage collector / namespace / quota controller")
    p.add_argument("--history", type=int, default=1000, help="watch event history size")
    p.add_argument("--event-ttl-s", type=float, default=3600.0,
                   help="Events are deleted this long after their last write (kube-apiserver "
                        "--event-ttl, 1 h); 0 keeps them forever")
    p.add_argument("--bookmark-interval-ms", type=int, default=60000,
                   help="interval between watch bookmarks (real servers: about 1 min)")
    return p.parse_args(argv)


def _run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(d):
    """Self-signed CA + server certificate for 127.0.0.1/localhost (openssl CLI)."""
    ca, cakey = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    if all(os.path.exists(x) for x in (ca, cakey, crt, key)):
        return ca, crt, key
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(["openssl", "req", "-x509"] + ec + ["-keyout", cakey, "-out", ca, "-days", "3650",
                                            "-subj", "/CN=kube-sim-ca",
                                            "-addext", "basicConstraints=critical,CA:TRUE",
                                            "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    csr = os.path.join(d, "server.csr")
    _run(["openssl", "req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=kube-sim"])
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
          "-CAcreateserial", "-out", crt, "-days", "3650", "-extfile", ext])
    return ca, crt, key


def main(argv):
    args = parse_args(argv)
    if args.client_ca and not args.tls:
        sys.stderr.write("kube-sim: --client-ca needs --tls\n")
        return 2
    threading.stack_size(1024 * 1024)
    tmpdir = None
    ssl_ctx = None
    ca = None
    if args.tls:
        d = args.state_dir
        if d:
            os.makedirs(d, exist_ok=True)
        else:
            d = tmpdir = tempfile.mkdtemp(prefix="kube-sim-")
        ca, crt, key = make_certs(d)
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(crt, key)
        if args.client_ca:
            # kube-apiserver --client-ca-file: ask for a certificate, accept
            # connections without one (tokens still work).
            ssl_ctx.load_verify_locations(cafile=args.client_ca)
            ssl_ctx.verify_mode = ssl.CERT_OPTIONAL
    api = Api(history=args.history)
    if not args.no_agent_sandbox_crds:
        from .agentsandbox import install_crds
        install_crds(api)
    auth = Auth(args.tokens, args.rules, client_certs=bool(args.client_ca))
    state = State()
    server = ApiServer(("127.0.0.1", args.port), api, auth, state, Tables(), ssl_ctx,
                       bookmark_interval=args.bookmark_interval_ms / 1000.0)
    sandboxes = None
    collector = None
    if not args.no_gc:
        collector = Collector(api, args.event_ttl_s)
        collector.loop.start()
    if not args.no_deployment_controller:
        w = Workloads(api, args.replica_delay_ms / 1000.0)
        w.loop.start()
    if not args.no_sandbox_controller and not args.no_agent_sandbox_crds:
        from .agentsandbox import SandboxControllers
        sandboxes = SandboxControllers(api, args.cold_start_ms / 1000.0,
                                       args.warm_bind_ms / 1000.0,
                                       pod_ip_range=args.pod_ip_range)
        sandboxes.loop.start()
    admin = Admin(api, server, state, sandboxes, collector)
    admin_srv = AdminServer(("127.0.0.1", args.admin_port), admin)
    server.start()
    threading.Thread(target=admin_srv.serve_forever, daemon=True).start()
    scheme = "https" if args.tls else "http"
    done = threading.Event()

    def stop(_sig, _frm):
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(json.dumps({
        "url": "%s://127.0.0.1:%d" % (scheme, server.server_address[1]),
        "admin": "http://127.0.0.1:%d" % admin_srv.server_address[1],
        "ca": ca, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    while not done.wait(1.0):
        pass
    try:
        if not server.paused:
            server.shutdown()
        admin_srv.shutdown()
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0
