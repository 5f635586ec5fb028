#!/usr/bin/python3
"""`make bench`'s Python zygote rows (issue 13): forked kernels (--zygote on)
next to exec'd ones (--zygote off), measured in the same run, the two
daemons alive side by side and the samples alternating.

Rows (medians):
  - new Python context with no spare (--pool python=0): POST /contexts,
    then the first `1+1` answered;
  - first data cell in a new context: `import pandas as pd,
    matplotlib.pyplot as plt; pd.DataFrame({"a":[1,2]}).plot(); plt.show()`
    until its result with png and chart;
  - private memory (Private_Dirty + Private_Clean of smaps_rollup) of an
    additional context's kernel after `1+1`, and after the data cell;
  - the default stack's total PSS (daemon and everything below it: the
    zygote, the default Python and JavaScript contexts, one Python spare),
    once healthy, the zygote ready and the spare warm; also with an empty
    --python-preload. The default Python context starts while the zygote
    still loads, so it is exec'd; the spare is a fork (pool_renew);
  - churn: 50 x (create, `1+1`, delete) with --pool python=1, contexts/s.

Usage: zygote.py DAEMON [--runs N] [--json OUT] [--md OUT]
Runs the daemons in temp dirs on loopback (call it inside `unshare -n` or
wherever loopback ports are free); the e2e harness starts and stops them.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import harness  # noqa: E402

DATA = ('import pandas as pd, matplotlib.pyplot as plt\n'
        'pd.DataFrame({"a": [1, 2]}).plot(); plt.show()')
MiB = 1024 * 1024


def metric(d, name):
    for line in d.client().request("GET", "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def rollup(pid):
    """{field: bytes} of /proc/pid/smaps_rollup."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return out


def private(pid):
    r = rollup(pid)
    return (r.get("Private_Dirty", 0) + r.get("Private_Clean", 0)) / MiB


def tree(pid):
    """pid and every descendant."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def tree_pss(pid):
    return sum(rollup(p).get("Pss", 0) for p in tree(pid)) / MiB


def start(binary, work, name, args):
    d = harness.Daemon(binary, Path(tempfile.mkdtemp(dir=work)),
                       envd_url="http://127.0.0.1:9", name=name,
                       args=list(args))
    d.start()
    d.wait_healthy(120)
    return d


def wait(cond, what, timeout=180):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit(f"bench: not within {timeout} s: {what}")
        time.sleep(0.05)


def kernel_pid(c, ctx):
    lines = c.execute("import os; print(os.getpid())", context_id=ctx)
    return int(harness.stdout(lines))


def new_context_rows(d, s):
    """One sample of each per-context row on daemon d into s."""
    c = d.client()
    t0 = time.monotonic()
    ctx = c.create_context({"language": "python"})["id"]
    assert harness.main_text(c.execute("1+1", context_id=ctx)) == "2"
    s["ctx_first_ms"].append((time.monotonic() - t0) * 1000)
    pid = kernel_pid(c, ctx)
    s["private_1p1_mib"].append(private(pid))
    t0 = time.monotonic()
    lines = c.execute(DATA, context_id=ctx, timeout=120)
    s["data_cell_ms"].append((time.monotonic() - t0) * 1000)
    res = [l for l in lines if l["type"] == "result"]
    assert res and res[0].get("png") and res[0].get("chart"), lines
    s["private_data_mib"].append(private(pid))
    c.delete(ctx)


def churn(d, n=50):
    c = d.client()
    t0 = time.monotonic()
    for _ in range(n):
        ctx = c.create_context({"language": "python"})["id"]
        assert harness.main_text(c.execute("1+1", context_id=ctx)) == "2"
        c.delete(ctx)
    return n / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("daemon")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json")
    ap.add_argument("--md")
    a = ap.parse_args()
    modes = ("on", "off")
    res = {m: {k: [] for k in ("ctx_first_ms", "private_1p1_mib",
                               "data_cell_ms", "private_data_mib")}
           for m in modes}
    with tempfile.TemporaryDirectory(prefix="e2bci-bench-zyg-") as work:
        ds = {m: start(a.daemon, work, f"zygote {m}",
                       ["--zygote", m, "--pool", "python=0"]) for m in modes}
        try:
            wait(lambda: metric(ds["on"], "e2bci_zygotes_ready") == 1,
                 "the zygote is ready")
            for _ in range(a.runs):
                for m in modes:
                    new_context_rows(ds[m], res[m])
            forked = metric(ds["on"], "e2bci_kernels_forked_total")
            assert forked >= a.runs, f"only {forked} kernels were forked"
        finally:
            for d in ds.values():
                d.stop()
        res["bare"] = {}
        for m in modes + ("bare",):
            d = start(a.daemon, work, f"default stack {m}",
                      ["--zygote", "off" if m == "off" else "on",
                       "--python-preload",
                       "" if m == "bare" else "numpy,pandas,matplotlib",
                       "--pool", "python=1",
                       "--default-languages", "python,javascript"])
            try:
                if m != "off":
                    wait(lambda: metric(d, "e2bci_zygotes_ready") == 1,
                         "the zygote is ready")
                wait(lambda: 'e2bci_kernels{state="warm"} 1' in
                     d.client().request("GET", "/metrics").text,
                     "the spare is warm")
                time.sleep(2)  # let start-up's transient memory settle
                res[m]["stack_pss_mib"] = [tree_pss(d.proc.pid)]
                if m != "bare":
                    res[m]["churn_per_s"] = [churn(d)]
            finally:
                d.stop()
    rows = [("new Python context, no spare: create → 1+1", "ctx_first_ms", "ms"),
            ("first data cell (pandas + plot → png + chart)", "data_cell_ms", "ms"),
            ("private memory per context after 1+1", "private_1p1_mib", "MiB"),
            ("private memory per context after the data cell", "private_data_mib", "MiB"),
            ("default stack total PSS", "stack_pss_mib", "MiB"),
            ("churn 50 × (create, 1+1, delete), pool 1", "churn_per_s", "contexts/s")]
    out = {}
    md = ["| zygote rows | forked (--zygote on) | exec'd (--zygote off) | ratio |",
          "|---|---|---|---|"]
    for title, key, unit in rows:
        on = statistics.median(res["on"][key])
        off = statistics.median(res["off"][key])
        out[key] = {"on": on, "off": off, "unit": unit,
                    "samples": {m: res[m][key] for m in modes}}
        md.append(f"| {title} | {on:.1f} {unit} | {off:.1f} {unit} | "
                  f"{on / off:.2f} |")
    bare = res["bare"]["stack_pss_mib"][0]
    out["stack_pss_mib"]["empty_preload"] = bare
    md.append(f"| default stack total PSS, --python-preload '' | {bare:.1f} MiB "
              f"| {out['stack_pss_mib']['off']:.1f} MiB | "
              f"{bare / out['stack_pss_mib']['off']:.2f} |")
    text = "\n".join(md) + "\n"
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    if a.md:
        Path(a.md).write_text(text)


if __name__ == "__main__":
    main()
