"""The Dockerfile cannot be built here (no Docker engine).  What can rot
without a build is checked instead: the runtime stage installs exactly the
Debian packages that own the shared libraries the release binary needs
(readelf NEEDED, resolved by ldd, owners from dpkg -S), the build stage
installs the -dev packages tools/deps.sh lists for them, and the image runs
as the numeric non-root user the chart expects."""

import os
import re
import shutil
import subprocess
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.path.join(ROOT, "build", "release", "agentscaler")

# In every debian:12-slim image already (the C library itself).
BASE_IMAGE = {"libc6"}
# Installed for what the binary does, not what it links: the CA bundle that
# libcurl verifies the API server and HTTPS brokers against.
NOT_LINKED = {"ca-certificates"}
# tools/deps.sh -dev packages for tests only (Check) or other tools.
TEST_ONLY_DEV = {"libsubunit-dev", "libclang-rt-14-dev"}


def stages():
    """[(FROM line, [instruction lines])] with continuations joined."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append((line, []))
        else:
            out[-1][1].append(line)
    return out


def apt_packages(instructions):
    pk = set()
    for ins in instructions:
        for m in re.finditer(r"apt-get install ([^&|;]*)", ins):
            pk.update(w for w in m.group(1).split() if not w.startswith("-"))
    return pk


def owner(path):
    """The Debian package owning a library path (merged /usr aware)."""
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/lib/"):
            cands.append(p[4:])
        elif p.startswith("/lib/"):
            cands.append("/usr" + p)
    for p in cands:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    raise AssertionError("no Debian package owns %s" % path)


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # `make chart` builds the release binary first: a missing binary or
        # tool is a broken setup, never a reason to pass without checking.
        missing = [what for what, ok in (
            (BINARY + " (make build/release/agentscaler)", os.path.exists(BINARY)),
            ("dpkg", shutil.which("dpkg")), ("readelf", shutil.which("readelf")),
            ("ldd", shutil.which("ldd"))) if not ok]
        if missing:
            raise AssertionError("the Dockerfile checks need " + ", ".join(missing))

    def needed_packages(self):
        dyn = subprocess.run(["readelf", "-d", BINARY], capture_output=True, text=True,
                             check=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
        self.assertIn("libcurl.so.4", needed)
        ldd = subprocess.run(["ldd", BINARY], capture_output=True, text=True,
                             check=True).stdout
        paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
        return {lib: owner(paths[lib]) for lib in needed}

    def test_runtime_packages_match_the_linked_libraries(self):
        st = stages()
        self.assertEqual(len(st), 2, "a build stage and a runtime stage")
        self.assertEqual(st[1][0], "FROM debian:12-slim")
        runtime = apt_packages(st[1][1])
        owners = self.needed_packages()
        want = set(owners.values()) - BASE_IMAGE
        self.assertEqual(runtime - NOT_LINKED, want,
                         "runtime stage vs. packages of the linked libraries %s" % owners)
        self.assertFalse([p for p in runtime if p.endswith("-dev")])

    def test_build_stage_has_the_dev_packages(self):
        st = stages()
        self.assertTrue(st[0][0].startswith("FROM debian:12 AS "), st[0][0])
        build = apt_packages(st[0][1])
        with open(os.path.join(ROOT, "tools", "deps.sh")) as f:
            deps = set(re.search(r'PKGS="([^"]*)"', f.read()).group(1).split())
        dev = {p for p in deps if p.endswith("-dev")} - TEST_ONLY_DEV
        self.assertEqual({p for p in build if p.endswith("-dev")}, dev)
        self.assertTrue({"build-essential", "pkg-config"} <= build)
        # each runtime library's -dev package is there (libcurl4 <- libcurl4-openssl-dev)
        for lib, pkg in self.needed_packages().items():
            if pkg in BASE_IMAGE:
                continue
            stem = re.sub(r"[0-9.]+$", "", pkg.replace("-0-2", ""))
            self.assertTrue(any(d.startswith(stem.rstrip("-")) for d in dev),
                            "no -dev package for %s (%s)" % (lib, pkg))

    def test_runtime_user_entrypoint(self):
        rt = stages()[1][1]
        users = [i.split(None, 1)[1] for i in rt if i.upper().startswith("USER ")]
        self.assertEqual(len(users), 1)
        uid = users[0].split(":")[0]
        self.assertTrue(uid.isdigit() and int(uid) != 0, users)
        with open(os.path.join(ROOT, "charts", "agentscaler", "values.yaml")) as f:
            self.assertIn("runAsUser: %s" % uid, f.read())
        copies = [i for i in rt if i.upper().startswith("COPY ")]
        self.assertEqual(copies, ["COPY --from=build /src/build/release/agentscaler "
                                  "/usr/local/bin/agentscaler"])
        self.assertIn('ENTRYPOINT ["/usr/local/bin/agentscaler"]', rt)
        build = stages()[0][1]
        self.assertTrue(any("make build/release/agentscaler" in i for i in build))


if __name__ == "__main__":
    unittest.main()
