"""Measures Python kernels forked from the zygote against kernels exec'd
the way the daemon does today (`python3 -m ipykernel_launcher` with
kernel.json's arguments and environment), in the same minutes, alternating.

    /usr/bin/python3 tests/kernels/zygote_measure.py [--runs 5] [--json FILE]
        [--preload numpy,pandas,matplotlib] [--no-warm] [--no-direct]
        [--reconnect-ivl MS] [--others] [--r]

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


# --others: would a fork server pay for our other kernels? JavaScript (the
# kernel host and the Node.js runner) and R (IRkernel) exec'd as kernel.json
# says, against, for R, a prototype fork server: an R process that loaded
# IRkernel, ran once what a first cell runs (evaluate, repr, IRdisplay, so
# R's JIT has compiled it), and forks with parallel:::mcfork per connection
# file read on stdin; the child runs IRkernel::main(). Node.js cannot fork
# itself (V8 and libuv threads), so only its fresh start is measured.
KERNELS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "kernels")
JS_ARGV = ["/bin/sh", f"{KERNELS}/host/launch.sh", "--mode", "json",
           "--language", "javascript", "-f", "{connection_file}", "--",
           "/usr/bin/node", f"{KERNELS}/node/runner.mjs", "--language",
           "javascript"]
R_ARGV = ["R", "--slave", "-e", "IRkernel::main()", "--args",
          "{connection_file}"]
R_FORK = r"""
suppressMessages(library(IRkernel))
invisible(evaluate::evaluate("1+1"))
for (f in c("repr_text", "repr_html", "repr_markdown", "repr_latex"))
  invisible(get(f, asNamespace("repr"))(2))
invisible(IRdisplay::prepare_mimebundle(2))
cat(length(list.files("/proc/self/task")), "
"); flush(stdout())
con <- file("stdin"); open(con)
while (length(line <- readLines(con, n = 1)) > 0) {
  p <- parallel:::mcfork()
  if (inherits(p, "masterProcess")) {
    close(con)
    IRkernel::main(line)
    parallel:::mcexit(0L)
  }
  cat(p$pid, "
"); flush(stdout())
}
"""


def tree(pid):
    """pid and its children."""
    pids = [pid]
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def one_other(kernel, gc_cell=None):
    """ready, first `1+1`, CPU and memory of a kernel and its children."""
    try:
        ready = kernel.wait_ready(timeout=120)
        pids = tree(kernel.pid)
        cpu0 = sum(cpu_ms(p) for p in pids)
        t = time.monotonic()
        kernel.execute("1+1")
        first = time.monotonic() - t
        cpu1 = sum(cpu_ms(p) for p in pids)
        mem = [private_kib(p) for p in pids]
        out = {"ready_ms": 1000 * ready, "first_1+1_ms": 1000 * first,
               "context_ms": 1000 * (ready + first), "cpu_context_ms": cpu1,
               "cpu_first_ms": cpu1 - cpu0,
               "private_kib": sum(m[0] for m in mem),
               "pss_kib": sum(m[1] for m in mem)}
        if gc_cell:
            kernel.execute(gc_cell)
            out["private_after_gc_kib"] = private_kib(kernel.pid)[0]
        return out
    finally:
        kernel.kill()


def measure_others(runs=3, cwd="/tmp"):
    import subprocess
    import tempfile

    env = kernel_env()
    out = {"load_before": loadavg(), "javascript": [], "r": [], "r_fork": []}
    for _ in range(runs):
        out["javascript"].append(one_other(Kernel.direct(cwd, env, JS_ARGV)))
        out["r"].append(one_other(Kernel.direct(cwd, env, R_ARGV),
                                  "invisible(gc(full=TRUE))"))
    with tempfile.NamedTemporaryFile("w", suffix=".R") as script:
        script.write(R_FORK)
        script.flush()
        t = time.monotonic()
        server = subprocess.Popen(["Rscript", script.name], env=env, cwd=cwd,
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            threads = int(server.stdout.readline())
            out["r_fork_server"] = {"start_ms": 1000 * (time.monotonic() - t),
                                    "threads": threads,
                                    "pss_kib": private_kib(server.pid)[1]}
            for _ in range(runs):
                k = Kernel.__new__(Kernel)
                k.make_files(None)
                k.client, k.out_fd, k.err_fd = None, -1, -1
                k.t_request = time.monotonic()
                server.stdin.write(k.conn_file + "\n")
                server.stdin.flush()
                k.pid = int(server.stdout.readline())
                out["r_fork"].append(one_other(k, "invisible(gc(full=TRUE))"))
        finally:
            server.stdin.close()
            server.kill()
            server.wait()
    out["load_after"] = loadavg()
    out["median"] = {kind: {key: median(out[kind], key)
                            for key in out[kind][0]}
                     for kind in ("javascript", "r", "r_fork")}
    return out


# --r: R kernels forked from the R zygote (kernels/ir/e2b_ci_zygote.R)
# against R kernels exec'd as kernel.json says, alternating, same minutes.
R_ZYGOTE = ["R", "--slave", "--no-restore", "-f",
            os.path.join(KERNELS, "ir", "e2b_ci_zygote.R"), "--args"]


def measure_r(runs=5, cwd="/tmp"):
    env = kernel_env()
    out = {"load_before": loadavg(), "r_forked": [], "r_exec": []}
    t = time.monotonic()
    z = Zygote(config=None, env=env, cwd=cwd, command=R_ZYGOTE, argv=R_ARGV)
    z_start = time.monotonic() - t
    try:
        private, pss, rss = private_kib(z.pid)
        out["zygote_process"] = {"start_ms": round(1000 * z_start),
                                 "ready": z.ready, "private_kib": private,
                                 "pss_kib": pss, "rss_kib": rss}
        for _ in range(runs):
            out["r_forked"].append(one_other(z.spawn(cwd=cwd, env=env)))
            out["r_exec"].append(one_other(Kernel.direct(cwd, env, R_ARGV)))
    finally:
        z.close()
    out["load_after"] = loadavg()
    out["median"] = {kind: {key: median(out[kind], key)
                            for key in out[kind][0]}
                     for kind in ("r_forked", "r_exec")}
    return out


def print_r(res):
    zp = res["zygote_process"]
    print(f"load average before {' '.join(res['load_before'])}, "
          f"after {' '.join(res['load_after'])}")
    print(f"R zygote: ready in {zp['start_ms']} ms ({zp['ready']['ms']} ms "
          f"loading), {zp['ready']['threads']} thread(s); private "
          f"{zp['private_kib'] / 1024:.1f} MiB, PSS {zp['pss_kib'] / 1024:.1f}"
          f" MiB, RSS {zp['rss_kib'] / 1024:.1f} MiB")
    for kind in ("r_forked", "r_exec"):
        m = res["median"][kind]
        print(f"{kind:9s} " + ", ".join(f"{k} {v}" for k, v in m.items()))


def print_others(res):
    print(f"load average before {' '.join(res['load_before'])}, "
          f"after {' '.join(res['load_after'])}")
    print(f"R fork server: up in {res['r_fork_server']['start_ms']:.0f} ms, "
          f"{res['r_fork_server']['threads']} threads after "
          "library(IRkernel)")
    for kind, m in res["median"].items():
        print(f"{kind:11s}" + ", ".join(f"{k} {v}" for k, v in m.items()))


def save(res, path):
    """The measurements as JSON into path (--json), if given."""
    if path:
        with open(path, "w") as f:
            json.dump(res, f, indent=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--preload", default=None)
    p.add_argument("--no-warm", dest="warm", action="store_false")
    p.add_argument("--no-direct", dest="direct", action="store_false")
    p.add_argument("--reconnect-ivl", type=int, default=5,
                   help="the client's ZMQ_RECONNECT_IVL in ms (libzmq: 100)")
    p.add_argument("--others", action="store_true",
                   help="JavaScript and R kernels instead (see KERNELS)")
    p.add_argument("--r", action="store_true",
                   help="R kernels: forked from the R zygote against exec'd")
    p.add_argument("--json")
    a = p.parse_args()
    Kernel.reconnect_ivl = a.reconnect_ivl
    if a.r or a.others:
        res = (measure_r if a.r else measure_others)(a.runs)
        save(res, a.json)
        (print_r if a.r else print_others)(res)
        return
    preload = None if a.preload is None else \
        [m for m in a.preload.split(",") if m]
    res = measure(a.runs, preload, a.warm, a.direct)
    save(res, a.json)
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
