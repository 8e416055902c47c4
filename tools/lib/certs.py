"""Test certificates made with the openssl CLI (standard library only).

make_ca() makes a self-signed CA; make_client_cert() a client certificate
(extendedKeyUsage clientAuth) signed by it, with subject CN = user and one
O per group, which is how kube-apiserver (and kube-sim --client-ca) maps a
certificate to a user.  Keys are P-256.  Everything goes into dir.
"""
import os
import subprocess

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)


def make_ca(d, name="test-ca"):
    """-> (ca.crt, ca.key) paths under d, named after name."""
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    _run(["openssl", "req", "-x509"] + _EC + ["-keyout", key, "-out", crt, "-days", "2",
                                              "-subj", "/CN=" + name,
                                              "-addext", "basicConstraints=critical,CA:TRUE",
                                              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return crt, key


def make_client_cert(d, ca, user, groups=(), name=None):
    """ca: (crt, key) from make_ca.  -> (crt, key) paths of a client
    certificate for user with groups as O entries."""
    name = name or "client-" + user
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    csr, ext = os.path.join(d, name + ".csr"), os.path.join(d, name + ".ext")
    subj = "".join("/O=" + g for g in groups) + "/CN=" + user
    _run(["openssl", "req"] + _EC + ["-keyout", key, "-out", csr, "-subj", subj])
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\n")
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
          "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext])
    return crt, key
