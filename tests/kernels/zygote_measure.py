"""Measures Python kernels forked from the zygote against kernels exec'd
the way the daemon does today (`python3 -m ipykernel_launcher` with
kernel.json's arguments and environment), in the same minutes, alternating.

    /usr/bin/python3 tests/kernels/zygote_measure.py [--runs 5] [--json FILE]
        [--preload numpy,pandas,matplotlib] [--no-warm] [--no-direct]

Per kernel (medians over the runs):
  ready      spawn request -> first kernel_info_reply and iopub message,
             kernel_info_request every 20 ms over ipc (the daemon's
             handshake; libzmq's reconnect interval set to 5 ms, see
             --reconnect-ivl)
  first_1+1  ready -> the reply and idle of a first `1+1`
  context    spawn request -> `1+1` answered (ready + first_1+1)
  data_cell  the first data cell (DataFrame.plot + plt.show) after that,
             which must give image/png and e2b/chart
  cpu_*      CPU time the kernel's threads used for the context (spawn
             to `1+1` answered) and for the data cell (schedstat): what
             the wall times would be on an idle machine, roughly
  private    Private_Dirty + Private_Clean of the kernel after that cell
             (/proc/PID/smaps_rollup), and Pss, Rss; private_idle the same
             after the first `1+1`
plus the zygote's own start time and memory. Prints a table and the load
average before and after; --json writes every sample. The bench calls it
as a library: measure(runs, ...) returns the same dictionary.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zygote_client import Kernel, Zygote, kernel_env, private_kib  # noqa: E402

DATA_CELL = ('import pandas as pd, matplotlib.pyplot as plt; '
             'pd.DataFrame({"a":[1,2]}).plot(); plt.show()')


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def cpu_ms(pid):
    """CPU time used so far by the live threads of pid (schedstat, ns)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e6


def one(kernel, cwd):
    """The figures of one kernel (killed afterwards)."""
    try:
        ready = kernel.wait_ready()
        cpu_ready = cpu_ms(kernel.pid)
        t = time.monotonic()
        assert kernel.value("1+1") == "2"
        first = time.monotonic() - t
        cpu_first = cpu_ms(kernel.pid)
        private_idle = private_kib(kernel.pid)[0]
        t = time.monotonic()
        _, outputs = kernel.execute(DATA_CELL)
        cell = time.monotonic() - t
        cpu_cell = cpu_ms(kernel.pid)
        mimes = set()
        for _, c in outputs:
            mimes |= set(c.get("data", {}))
        if not {"image/png", "e2b/chart"} <= mimes:
            raise AssertionError(f"data cell gave {sorted(mimes)}: {outputs!r}")
        private, pss, rss = private_kib(kernel.pid)
        return {"ready_ms": 1000 * ready, "first_1+1_ms": 1000 * first,
                "context_ms": 1000 * (ready + first),
                "data_cell_ms": 1000 * cell,
                "cpu_context_ms": cpu_first,
                "cpu_cell_ms": cpu_cell - cpu_first,
                "private_idle_kib": private_idle,
                "private_kib": private, "pss_kib": pss, "rss_kib": rss,
                "_cpu_ready_ms": cpu_ready}
    finally:
        kernel.kill()


def median(samples, key):
    vals = [s[key] for s in samples]
    return round(statistics.median(vals), 1) if vals else None


def measure(runs=5, preload=None, warm=True, direct=True, cwd="/tmp"):
    env = kernel_env()
    out = {"load_before": loadavg(), "zygote": [], "direct": []}
    extra = [] if warm else ["--no-warm"]
    t = time.monotonic()
    z = Zygote(preload=preload, env=env, cwd=cwd, extra_args=extra)
    z_start = time.monotonic() - t
    try:
        private, pss, rss = private_kib(z.pid)
        out["zygote_process"] = {
            "start_ms": round(1000 * z_start), "ready": z.ready,
            "private_kib": private, "pss_kib": pss, "rss_kib": rss}
        for _ in range(runs):
            out["zygote"].append(one(z.spawn(cwd=cwd, env=env), cwd))
            if direct:
                out["direct"].append(one(Kernel.direct(cwd, env), cwd))
        private, pss, rss = private_kib(z.pid)
        out["zygote_process"]["after"] = {"private_kib": private,
                                          "pss_kib": pss, "rss_kib": rss}
    finally:
        z.close()
    out["load_after"] = loadavg()
    out["median"] = {kind: {key: median(out[kind], key)
                            for key in (out[kind][0] if out[kind] else {})}
                     for kind in ("zygote", "direct")}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--preload", default=None)
    p.add_argument("--no-warm", dest="warm", action="store_false")
    p.add_argument("--no-direct", dest="direct", action="store_false")
    p.add_argument("--reconnect-ivl", type=int, default=5,
                   help="the client's ZMQ_RECONNECT_IVL in ms (libzmq: 100)")
    p.add_argument("--json")
    a = p.parse_args()
    Kernel.reconnect_ivl = a.reconnect_ivl
    preload = None if a.preload is None else \
        [m for m in a.preload.split(",") if m]
    res = measure(a.runs, preload, a.warm, a.direct)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    zp = res["zygote_process"]
    print(f"load average before {' '.join(res['load_before'])}, "
          f"after {' '.join(res['load_after'])}; {a.runs} runs")
    print(f"zygote: ready in {zp['start_ms']} ms, preloaded "
          f"{zp['ready']['preloaded']}, skipped {zp['ready']['skipped']}; "
          f"private {zp['private_kib'] / 1024:.1f} MiB, "
          f"PSS {zp['pss_kib'] / 1024:.1f} MiB, RSS {zp['rss_kib'] / 1024:.1f}"
          " MiB")
    keys = ["ready_ms", "first_1+1_ms", "context_ms", "data_cell_ms",
            "cpu_context_ms", "cpu_cell_ms", "private_idle_kib",
            "private_kib", "pss_kib", "rss_kib"]
    print(f"{'median':10s}" + "".join(f"{k[:-3][:12]:>13s}" for k in keys))
    for kind in ("zygote", "direct"):
        m = res["median"][kind]
        if m:
            print(f"{kind:10s}" + "".join(f"{m[k]:>13}" for k in keys))
    for kind in ("zygote", "direct"):
        for s in res[kind]:
            print(f"  {kind:8s}" + "".join(f"{round(s[k], 1):>13}"
                                          for k in keys))


if __name__ == "__main__":
    main()
