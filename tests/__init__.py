"""The Python suites, run from the repository root (python3 -m unittest ...
-t .).  Every suite module is imported as tests.<suite>.<module>, so this
runs first: the only place the tests set sys.path (tools/lib/paths.py says
what goes there).  Tests then import the shared modules by name (world,
chart, certs, podstatus, cluster, bench) with no sys.path line of their own.
"""
import os
import sys

_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

import paths  # noqa: E402

paths.use("tools/cluster", "tools/bench")
