#!/usr/bin/python3
"""The include graph of server/, one module per .c/.h pair.

A module X depends on Y when server/X.c or server/X.h includes "Y.h".
Calls follow includes only when every function a module exports is
declared in its own header; with --objs DIR that is checked too, from the
symbols each object DIR/X.o defines (main.o may define main alone: nothing
calls up into main.c).

  include-graph.py --check [--objs DIR]  exit 1 on a cycle (or a misplaced
                                         declaration), naming it
  include-graph.py --list                the graph as a Markdown list,
                                         bottom layer first
  --server DIR                           read another tree than server/

Run by `make check`; ARCHITECTURE.md shows the --list output.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "server"
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"/]+)\.h"', re.M)


def graph(server):
    deps = {}
    for f in sorted(server.glob("*.[ch]")):
        mod = f.stem
        deps.setdefault(mod, set())
        for name in INCLUDE_RE.findall(f.read_text()):
            if name != mod and (server / f"{name}.h").is_file():
                deps[mod].add(name)
    return deps


def cycles(deps):
    """The strongly connected components of more than one module (Tarjan),
    each sorted: the modules that include each other in a loop."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(m):
        index[m] = low[m] = len(index)
        stack.append(m)
        on.add(m)
        for d in deps[m]:
            if d not in index:
                visit(d)
                low[m] = min(low[m], low[d])
            elif d in on:
                low[m] = min(low[m], index[d])
        if low[m] == index[m]:
            comp = []
            while True:
                d = stack.pop()
                on.discard(d)
                comp.append(d)
                if d == m:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(deps):
        if m not in index:
            visit(m)
    return sorted(out)


def layers(deps):
    """Each module's layer: 0 for one that includes nothing of server/,
    else one above the highest module it includes."""
    layer = {}

    def depth(m):
        if m not in layer:
            layer[m] = 0  # a cycle is reported by --check, not here
            layer[m] = 1 + max((depth(d) for d in deps[m]), default=-1)
        return layer[m]

    for m in deps:
        depth(m)
    return layer


def misplaced(server, objs):
    """Exported symbols of DIR/X.o not declared in server/X.h."""
    bad = []
    for o in sorted(Path(objs).glob("*.o")):
        syms = subprocess.run(["nm", "-g", "--defined-only", str(o)],
                              capture_output=True, text=True,
                              check=True).stdout.split()[2::3]
        h = server / f"{o.stem}.h"
        text = h.read_text() if h.is_file() else ""
        for s in syms:
            if o.stem == "main" and s == "main":
                continue
            if not re.search(rf"\b{re.escape(s)}\b", text):
                bad.append(f"{o.stem}.o defines {s}, not declared in "
                           f"{o.stem}.h")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--objs")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--server", type=Path, default=SERVER)
    a = ap.parse_args()
    deps = graph(a.server)
    if a.list:
        layer = layers(deps)
        for n in range(max(layer.values()) + 1):
            mods = sorted(m for m in deps if layer[m] == n)
            print(f"- layer {n}:")
            for m in mods:
                on = ", ".join(sorted(deps[m])) or "nothing of server/"
                print(f"  - `{m}` → {on}")
    if a.check:
        problems = []
        for c in cycles(deps):
            problems.append("modules include each other in a loop: " +
                            ", ".join(c))
        if a.objs:
            problems += misplaced(a.server, a.objs)
        for p in problems:
            print(f"include-graph: {p}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
