"""The Makefile's own rules: header dependencies, LDFLAGS, the default goal.

A build into a temporary BUILD dir (the daemon, the kernel host, a unit
test and a bench object) gives make the dependency files the compiler
wrote; then `make -n -W HEADER` (what would be rebuilt were HEADER newer)
must compile exactly the sources that include HEADER, directly or through
other headers, as read from the sources here. `make -n -B LDFLAGS=...`
must pass LDFLAGS to every link, and `make` alone must mean `make all`,
set in the Makefile alone.
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIRS = ["server", "kernels/host", "tests/unit", "tests/bench",
                "tests/fuzz"]
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
BUILD_TIMEOUT_S = 600


def make(build, *args, timeout=120):
    r = subprocess.run(["make", "--no-print-directory", f"BUILD={build}",
                        *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"make {' '.join(args)}:\n{r.stdout}{r.stderr}"
    return r.stdout


def resolve(name, src_dir):
    for d in [src_dir, *(ROOT / i for i in INCLUDE_DIRS)]:
        if (d / name).is_file():
            return (d / name).resolve()
    return None  # a system header


def includes(path, seen=None):
    """Every header of this tree path includes, directly or not."""
    seen = set() if seen is None else seen
    for name in INCLUDE_RE.findall(path.read_text(errors="replace")):
        h = resolve(name, path.parent)
        if h and h not in seen:
            seen.add(h)
            includes(h, seen)
    return seen


def compiled(out):
    """The outputs of the compile commands in make -n's output."""
    return {m.group(1) for line in out.splitlines() if " -c " in line
            for m in [re.search(r" -o (\S+)", line)] if m}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    b = tmp_path_factory.mktemp("build") / "b"
    targets = [f"{b}/e2b-ci", f"{b}/e2b-kernel", f"{b}/tests/test_lang",
               f"{b}/tests/test_run"]
    make(b, "-j2", *targets, timeout=BUILD_TIMEOUT_S)
    # bench's objects, one at a time (a Makefile without such a rule
    # builds bench in one command, and then this test fails below).
    bench = f"{b}/obj-bench/util.o"
    if subprocess.run(["make", "-s", f"BUILD={b}", bench], cwd=ROOT,
                      capture_output=True).returncode == 0:
        targets.append(bench)
    return b, targets


# (header, the compiled sources this test looks at, by output dir)
SOURCES = {
    "obj": ("server", "*.c"),
    "obj-kh": ("kernels/host", "*.c"),
    "obj-bench": ("tests/bench", "util.c"),
}


@pytest.mark.parametrize("header", ["server/lang.h", "server/jtext.h",
                                    "server/loop.h", "kernels/host/kh.h",
                                    "tests/bench/bench.h"])
def test_header_rebuilds_only_its_dependents(build, header):
    b, targets = build
    h = (ROOT / header).resolve()
    want = set()
    for out_dir, (src_dir, pattern) in SOURCES.items():
        for src in (ROOT / src_dir).glob(pattern):
            if h in includes(src):
                want.add(f"{b}/{out_dir}/{src.stem}.o")
    got = compiled(make(b, "-n", "-W", header, *targets))
    assert want, f"nothing includes {header}?"
    if header.startswith("tests/bench/"):
        assert targets[-1].endswith(".o"), "bench is not built per object"
    assert got == want, (f"touching {header}: rebuilt but not dependent "
                         f"{sorted(got - want)}; dependent, not rebuilt "
                         f"{sorted(want - got)}")


def test_run_unit_test_links_only_what_run_uses(build):
    """test_run links run.c and the modules it uses, not libe2bci.a: a
    header of another module does not rebuild it; run.h does."""
    b, _ = build
    t = f"{b}/tests/test_run"
    assert "tests/unit/test_run.c" in make(b, "-n", "-W", "server/run.h", t)
    for header in ("server/http.h", "server/ctx.h", "server/kernel.c"):
        out = make(b, "-n", "-W", header, t)
        assert "tests/unit/test_run.c" not in out, (header, out)


def test_ldflags_reach_every_link(build):
    b, _ = build
    mark = "-Wl,--ldflags-mark"
    links = [f"{b}/e2b-ci", f"{b}/e2b-kernel", f"{b}/tests/test_lang",
             f"{b}/tests/test_run",
             f"{b}/bench", f"{b}/libfloor", f"{b}/fuzz/fuzz_req"]
    out = make(b, "-n", "-B", f"LDFLAGS={mark}", *links)
    lines = [ln for ln in out.splitlines()
             if re.search(r"\b(cc|gcc|clang)\b", ln) and " -c " not in ln
             and " -o " in ln]
    outs = {re.search(r" -o (\S+)", ln).group(1): ln for ln in lines}
    assert set(links) <= set(outs), f"no link line for {set(links) - set(outs)}"
    for target in links:
        assert mark in outs[target], f"{target} links without LDFLAGS"


def test_default_goal_is_all_and_set_once(tmp_path):
    b = tmp_path / "b"
    assert make(b, "-n") == make(b, "-n", "all")
    setters = [str(p.relative_to(ROOT)) for p in
               [*ROOT.glob("mk/*.mk"), *ROOT.glob("kernels/*/build.mk")]
               if re.search(r"^\s*\.DEFAULT_GOAL", p.read_text(), re.M)]
    assert not setters, f".DEFAULT_GOAL set again in {setters}"


def test_include_graph_check(tmp_path):
    """mk/include-graph.py (run by make check) passes on server/ and names
    a loop once one module's include closes it."""
    script = ROOT / "mk" / "include-graph.py"
    ok = subprocess.run([str(script), "--check"], cwd=ROOT,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    tree = tmp_path / "server"
    tree.mkdir()
    for f in (ROOT / "server").glob("*.[ch]"):
        (tree / f.name).write_text(f.read_text())
    # metrics is at the bottom; making it include api closes a loop
    # through everything api includes that includes metrics.
    m = tree / "metrics.c"
    m.write_text(m.read_text().replace('#include "metrics.h"',
                                       '#include "metrics.h"\n#include "api.h"',
                                       1))
    bad = subprocess.run([str(script), "--check", "--server", str(tree)],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "loop:" in bad.stderr and "api" in bad.stderr \
        and "metrics" in bad.stderr, bad.stderr
