#!/usr/bin/env python3
"""layers.py: the C tree's layers, checked (`make layers`, part of `make lint`).

The layers, bottom first (README "Where things live"):

  rt         scheduler/rt/, include/agentscaler/rt/: allocation, buffers,
             time, secrets, logging, the HTTP engines.  Uses nothing above.
  k8s        k8s/, include/agentscaler/k8s/: the Kubernetes client, informers,
             leases, Events, status.  Uses rt.
  scalers    scalers/, include/agentscaler/scalers/: queue sources and
             consumers.  Uses rt.
  scheduler  scheduler/: policy and orchestration, the daemon.  Uses all.

Checked on the sources (every #include "..." line):
  - no include of a higher layer, and none between k8s and scalers;
  - a header beside its .c (not under include/) is private to its folder;
  - every include names a file of the tree.
Checked on the objects (with --objects DIR, the defined and undefined
symbols `nm` lists): no two files of the library depend on each other,
directly or round a cycle, except the files of one unit that share a private
"<unit>_int.h" (scheduler/dispatch_*.c).

Exit status 1 with one line per finding; 0 and one summary line otherwise.
Standard library only.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

RANK = {"rt": 0, "k8s": 1, "scalers": 1, "scheduler": 2}
ALLOWED = {
    "rt": {"rt"},
    "k8s": {"rt", "k8s"},
    "scalers": {"rt", "scalers"},
    "scheduler": {"rt", "k8s", "scalers", "scheduler"},
}
FOLDERS = ["scheduler/rt", "k8s", "scalers", "scheduler"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    """The layer of a file of the tree (a path relative to the root)."""
    for pub in ("rt", "k8s", "scalers"):
        if path.startswith("include/agentscaler/%s/" % pub):
            return pub
    if path.startswith("scheduler/rt/"):
        return "rt"
    for folder in ("k8s", "scalers", "scheduler"):
        if path.startswith(folder + "/"):
            return folder
    return None


def sources(root):
    out = []
    for folder in FOLDERS + ["include/agentscaler"]:
        top = os.path.join(root, folder)
        for dirpath, _, files in os.walk(top):
            rel = os.path.relpath(dirpath, root)
            # scheduler's walk would enter scheduler/rt: listed once.
            if folder == "scheduler" and rel.startswith("scheduler/rt"):
                continue
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    out.append(os.path.join(rel, f))
    return sorted(set(out))


def resolve(root, including, name):
    """The file an #include "name" of `including` reads, as cc -Iinclude -I.
    finds it: beside the including file first, then include/, then the root."""
    for base in (os.path.dirname(including), "include", ""):
        cand = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def check_includes(root):
    problems = []
    files = sources(root)
    for path in files:
        lay = layer_of(path)
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        for m in INCLUDE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            name = m.group(1)
            target = resolve(root, path, name)
            where = "%s:%d: #include \"%s\"" % (path, line, name)
            if target is None:
                problems.append("%s: no such file in the tree" % where)
                continue
            tl = layer_of(target)
            if tl is None:
                problems.append("%s: %s is outside the layered tree"
                                % (where, target))
                continue
            if tl not in ALLOWED[lay]:
                kind = "upwards" if RANK[tl] > RANK[lay] else "sideways"
                problems.append("%s: %s layer includes %s layer (%s)"
                                % (where, lay, tl, kind))
                continue
            private = not target.startswith("include/")
            if private and os.path.dirname(target) != os.path.dirname(path):
                problems.append("%s: %s is private to %s/" % (
                    where, target, os.path.dirname(target)))
    return files, problems


def nm_symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True,
                         check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRCVW":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
    return defined, undefined


def unit_of(root, src):
    """Files that share a private <unit>_int.h are one unit."""
    d, base = os.path.split(src)
    stem = base.rsplit(".", 1)[0]
    head = stem.split("_", 1)[0]
    if os.path.isfile(os.path.join(root, d, head + "_int.h")):
        return os.path.join(d, head)
    return os.path.join(d, stem)


def check_cycles(root, objdir):
    problems = []
    objs = {}
    for folder in FOLDERS:
        top = os.path.join(objdir, folder)
        if not os.path.isdir(top):
            continue
        for f in sorted(os.listdir(top)):
            if f.endswith(".o") and f != "main.o":
                src = os.path.join(folder, f[:-2] + ".c")
                if os.path.isfile(os.path.join(root, src)):
                    objs[src] = os.path.join(top, f)
    if not objs:
        return ["%s: no objects (build first)" % objdir]
    owner, needs = {}, {}
    for src, obj in objs.items():
        d, u = nm_symbols(obj)
        needs[src] = u
        for s in d:
            owner[s] = src
    graph = collections.defaultdict(set)
    why = {}
    for src, u in needs.items():
        for s in u:
            dst = owner.get(s)
            if dst is None or dst == src:
                continue
            a, b = unit_of(root, src), unit_of(root, dst)
            if a != b:
                graph[a].add(b)
                why.setdefault((a, b), s)
    # Tarjan's strongly connected components, iteratively.
    index, low, on, stack, sccs = {}, {}, set(), [], []
    counter = 0
    for start in sorted({unit_of(root, s) for s in objs}):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    sccs.append(sorted(comp))
    for comp in sccs:
        edges = ["%s -> %s (%s)" % (a, b, why[(a, b)])
                 for a in comp for b in comp if (a, b) in why]
        problems.append("cycle between files: %s" % "; ".join(edges))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=".", help="the tree (default .)")
    ap.add_argument("--objects", help="a build directory (build/release) "
                    "whose objects are checked for cycles")
    args = ap.parse_args()
    files, problems = check_includes(args.root)
    if args.objects:
        problems += check_cycles(args.root, args.objects)
    for p in problems:
        print("layers: " + p)
    if problems:
        return 1
    print("layers: %d files, every include downwards or within a layer%s"
          % (len(files), ", no cycle between files" if args.objects else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
