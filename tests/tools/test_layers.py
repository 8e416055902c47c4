"""tools/layers.py and `make layers` (issue 14): the checker passes on the
tree as it is and fails, naming the line, on each kind of breach made
deliberately in a copy of the tree: an include upwards, one sideways between
k8s/ and scalers/, one of another folder's private header, and a cycle
between two objects.  The copy holds the C tree, the Makefile and the
checker; nothing in the checkout is modified.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
TREE = ["scheduler", "k8s", "scalers", "include", "tools/layers.py",
        "Makefile"]


class LayersCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="layers-")
        for item in TREE:
            src = os.path.join(ROOT, item)
            dst = os.path.join(self.tmp, item)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.isdir(src):
                shutil.copytree(src, dst)
            else:
                shutil.copy(src, dst)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def layers(self, *extra):
        return subprocess.run(
            ["python3", os.path.join(self.tmp, "tools", "layers.py"),
             "--root", self.tmp] + list(extra),
            capture_output=True, text=True)

    def add_include(self, path, name):
        full = os.path.join(self.tmp, path)
        with open(full, encoding="utf-8") as f:
            text = f.read()
        with open(full, "w", encoding="utf-8") as f:
            f.write('#include "%s"\n' % name + text)

    def test_tree_passes(self):
        r = self.layers()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("every include downwards", r.stdout)

    def test_upward_include_fails_make_layers(self):
        # The runtime reaching up into the scheduler: `make layers` fails
        # before compiling anything, and says where.
        self.add_include("scheduler/rt/log.c", "scheduler/config.h")
        r = subprocess.run(["make", "-C", self.tmp, "--no-print-directory",
                            "layers"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('scheduler/rt/log.c:1: #include "scheduler/config.h": '
                      "rt layer includes scheduler layer (upwards)", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "build",
                                                     "release")))

    def test_upward_public_header(self):
        self.add_include("k8s/leader.c", "../scheduler/daemon.h")
        r = self.layers()
        self.assertEqual(r.returncode, 1)
        self.assertIn("k8s layer includes scheduler layer (upwards)",
                      r.stdout)

    def test_sideways_include(self):
        self.add_include("scalers/registry.c", "agentscaler/k8s/k8s.h")
        r = self.layers()
        self.assertEqual(r.returncode, 1)
        self.assertIn("scalers layer includes k8s layer (sideways)",
                      r.stdout)

    def test_private_header_of_another_folder(self):
        self.add_include("scheduler/daemon.c", "k8s/kubeconfig.h")
        r = self.layers()
        self.assertEqual(r.returncode, 1)
        self.assertIn("k8s/kubeconfig.h is private to k8s/", r.stdout)

    def test_unknown_include(self):
        self.add_include("k8s/scale.c", "nowhere.h")
        r = self.layers()
        self.assertEqual(r.returncode, 1)
        self.assertIn('"nowhere.h": no such file in the tree', r.stdout)

    def test_cycle_between_objects(self):
        # Two files of one layer calling each other; objects built here.
        objdir = os.path.join(self.tmp, "objs")
        os.makedirs(os.path.join(objdir, "k8s"))
        for name, calls in (("ping", "pong"), ("pong", "ping")):
            src = os.path.join(self.tmp, "k8s", name + ".c")
            with open(src, "w", encoding="utf-8") as f:
                f.write("int %s(int);\nint %s(int n) { return n ? %s(n - 1)"
                        " : 0; }\n" % (calls, name, calls))
            subprocess.run(["cc", "-c", src, "-o",
                            os.path.join(objdir, "k8s", name + ".o")],
                           check=True)
        r = self.layers("--objects", objdir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cycle between files: k8s/ping -> k8s/pong (pong); "
                      "k8s/pong -> k8s/ping (ping)", r.stdout)
        # One direction only is a dependency, not a cycle.
        os.remove(os.path.join(objdir, "k8s", "pong.o"))
        subprocess.run(["cc", "-c", "-x", "c", "-", "-o",
                        os.path.join(objdir, "k8s", "pong.o")],
                       input="int pong(int n) { return n; }\n", text=True,
                       check=True)
        r = self.layers("--objects", objdir)
        self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
