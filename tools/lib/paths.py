"""The repository's Python directories on sys.path, in one place.

tools/lib holds the shared modules (world and its parts, chart, certs...).
The test suites get it from tests/__init__.py, which every suite module
imports first (python3 -m unittest from the repository root), with the
tool directories the tests import from; a script run directly (python3
tools/demo.py) puts tools/lib first with one line of its own, then may
call use() for another tool directory.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def use(*dirs, first=True):
    """Puts ROOT/dir on sys.path for each dir ("tools/cluster"), once:
    first (ahead of the rest) or, first=False, last (so that it shadows
    nothing: tools/kube-sim has a bench.py too)."""
    for d in dirs:
        p = os.path.join(ROOT, d)
        if p in sys.path:
            continue
        if first:
            sys.path.insert(0, p)
        else:
            sys.path.append(p)
