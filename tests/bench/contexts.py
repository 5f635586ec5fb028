#!/usr/bin/python3
"""Python contexts, fork server against exec: the measurements of issue 13.

    /usr/bin/python3 tests/bench/contexts.py --daemon build/e2b-ci \
        --out build/bench-contexts.json [--samples 6] [--churn 50]

Starts the daemon the way build/bench does (tests/bench/daemon.c: loopback,
a free port, runtime dir, cwd and log in a temp dir, an unreachable envd,
log level info), once per configuration: "exec" (`--zygote off`) and "fork"
(`--zygote on`). A daemon whose --help does not mention --zygote gets only
"exec", started without the flag; the fork column is then absent (n/a in
report.py), never made up.

Phases (samples of the two configurations interleaved, ABAB or ABBA, so
that the noise of a busy machine hits both alike):
  1. two daemons side by side, python only, pool python=0: each sample is
     POST /contexts, `1+1` (create -> 1+1 answered: new_ctx_ms), the
     private memory (Private_Clean + Private_Dirty of smaps_rollup) of the
     new kernel's process tree, the data cell (sent -> end of stream:
     data_cell_ms; its result must carry png and chart), the private
     memory again, DELETE. One untimed sample per daemon first.
  2. the default stack, one daemon at a time (PSS divides shared pages
     among every process that maps them, the other daemon's too): default
     languages python,javascript, pool python=1; both default contexts
     answer a cell, the spare is ready, then the sum of Pss over the
     daemon's whole process tree (stack_pss_mib; the sum of Rss too, the
     figure the issue's "~205 MiB today" was).
  3. churn: two daemons side by side, pool python=1; blocks of
     (POST /contexts, 1+1, DELETE) x N/2, ABBA, each block timed from its
     first request until the pool is full again: contexts per second.

It writes the series (n, min, p50, max and the samples) to --out; report.py
--contexts turns them into the table "Python contexts: fork server vs
exec". Progress goes to stderr.
"""
import argparse
import ctypes
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import Client, free_port, parse_metrics  # noqa: E402

DATA_CELL = ('import pandas as pd, matplotlib.pyplot as plt; '
             'pd.DataFrame({"a":[1,2]}).plot(); plt.show()')
START_TIMEOUT_S = 120
ZYGOTE_TIMEOUT_S = 120
QUIET_TIMEOUT_S = 120
T0 = time.monotonic()


def say(fmt, *args):
    print("contexts.py [%5.1fs] " % (time.monotonic() - T0) + fmt % args,
          file=sys.stderr, flush=True)


def ms_since(t):
    return (time.monotonic() - t) * 1000.0


# ------------------------------------------------------------- processes


def stat_of(pid):
    """(state, ppid) of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def descendants(root):
    """root and every live (not zombie) process below it."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = stat_of(int(name))
            if st and st[0] != "Z":
                children.setdefault(st[1], []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def alive(pid):
    st = stat_of(pid)
    return st is not None and st[0] != "Z"


def rollup(pid):
    """smaps_rollup of pid in kB by field; {} when unreadable."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def private_mib(pids):
    """Private_Clean + Private_Dirty summed over pids, MiB."""
    kb = 0
    for pid in pids:
        r = rollup(pid)
        kb += r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)
    return kb / 1024.0


def maps_mention(pid, needle):
    try:
        with open("/proc/%d/maps" % pid, "rb") as f:
            return needle in f.read()
    except OSError:
        return False


def role(pid, daemon_pid):
    """What a process of the daemon's tree is, for the PSS breakdown."""
    if pid == daemon_pid:
        return "daemon"
    c = cmdline(pid)
    if b"e2b_ci_zygote" in c:
        return "zygote"
    if b"ipykernel" in c:
        return "python kernel"
    if b"node" in c or b"e2b-kernel" in c or b"kernel-host" in c:
        return "javascript kernel"
    return "other"


# ---------------------------------------------------------------- daemon


def _pdeathsig():
    """In the child: SIGTERM when the bench dies, so no daemon outlives
    it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def zygote_supported(binary):
    out = subprocess.run([binary, "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=30).stdout
    return b"--zygote" in out


class Daemon:
    """One e2b-ci on loopback with the options build/bench gives its
    daemons, plus the configuration's."""

    def __init__(self, binary, tmp, tag, config, supported, languages,
                 pool):
        self.tag, self.config = tag, config
        self.port = free_port()
        self.dir = Path(tmp) / tag
        self.log = self.dir / "daemon.log"
        (self.dir / "cwd").mkdir(parents=True)
        rt = self.dir / "rt"
        rt.mkdir(mode=0o700)
        self.rt = os.fsencode(str(rt) + "/")
        argv = [binary, "--listen", "127.0.0.1", "--port", str(self.port),
                "--cwd", str(self.dir / "cwd"), "--runtime-dir", str(rt),
                "--default-languages", languages, "--pool", pool,
                "--envd-url", "http://127.0.0.1:1", "--log-level", "info"]
        if supported:
            argv += ["--zygote", "on" if config == "fork" else "off"]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("E2B_CI_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=env, cwd=self.dir, start_new_session=True,
                preexec_fn=_pdeathsig)
        self.pid = self.proc.pid
        self.client = Client("127.0.0.1", self.port)
        self.t_start = time.monotonic()

    def check(self):
        if self.proc.poll() is not None:
            raise SystemExit("daemon %s exited (status %s); log tail:\n%s"
                             % (self.tag, self.proc.returncode,
                                self.log_tail()))

    def log_tail(self, n=20):
        try:
            lines = self.log.read_text("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def log_has(self, pattern):
        try:
            return re.search(pattern, self.log.read_text("utf-8", "replace"))
        except OSError:
            return None

    def wait_healthy(self):
        end = self.t_start + START_TIMEOUT_S
        while time.monotonic() < end:
            self.check()
            try:
                if self.client.request("GET", "/health", timeout=2).status \
                        == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)  # polling with a deadline
        raise SystemExit("daemon %s not healthy in %d s:\n%s"
                         % (self.tag, START_TIMEOUT_S, self.log_tail()))

    def wait_zygote(self):
        """The fork configuration waits for its zygote's "ready" line
        (until then kernels are exec'd, which is not what it measures)."""
        if self.config != "fork":
            return
        end = time.monotonic() + ZYGOTE_TIMEOUT_S
        while time.monotonic() < end:
            self.check()
            if self.log_has(r"zygote ready"):
                return
            time.sleep(0.05)  # polling the log with a deadline
        say("WARNING: daemon %s logged no 'zygote ready' in %d s; its "
            "kernels may be exec'd", self.tag, ZYGOTE_TIMEOUT_S)

    def metrics(self):
        r = self.client.request("GET", "/metrics", timeout=30)
        return parse_metrics(r.text)

    def start_counters(self):
        """The kernel start counters of /metrics (the fork server's
        forked / exec'd ones once they exist)."""
        return {k: v for k, v in self.metrics().items()
                if re.search(r"kernel_starts|fork|exec[^u]|zygote", k)}

    def wait_quiet(self, warm):
        """Until no kernel is starting and the pool holds warm spares."""
        end = time.monotonic() + QUIET_TIMEOUT_S
        while time.monotonic() < end:
            self.check()
            m = self.metrics()
            if m.get('e2bci_kernels{state="starting"}', 0) == 0 and \
                    m.get('e2bci_kernels{state="warm"}', 0) >= warm:
                return
            time.sleep(0.02)  # polling with a deadline
        raise SystemExit("daemon %s: pool not full in %d s" %
                         (self.tag, QUIET_TIMEOUT_S))

    def kernels(self):
        """pids of this daemon's Python kernels (not the zygote): their
        command line names a connection file in its runtime dir, whoever
        their parent is."""
        out = set()
        for name in os.listdir("/proc"):
            if name.isdigit():
                c = cmdline(int(name))
                if b"ipykernel" in c and self.rt in c and \
                        b"e2b_ci_zygote" not in c and alive(int(name)):
                    out.add(int(name))
        return out

    def tree(self):
        """The daemon's process tree, and kernels that left it (should a
        fork not have been re-parented to the daemon) with theirs."""
        pids = set(descendants(self.pid))
        for k in self.kernels() - pids:
            pids.update(descendants(k))
        return sorted(pids)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                say("daemon %s did not stop in 20 s; killing it", self.tag)
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()


# ---------------------------------------------------------------- requests


def execute(d, code, **fields):
    """POST /execute, the stream read to its end; the lines."""
    lines = d.client.execute(code, timeout=120, **fields)
    errs = [x for x in lines if x.get("type") == "error"]
    if errs:
        raise SystemExit("daemon %s: %r failed: %r" % (d.tag, code, errs[0]))
    return lines


def results(lines):
    return [x for x in lines if x.get("type") == "result"]


def one_plus_one(d, **fields):
    res = results(execute(d, "1+1", **fields))
    if not any(r.get("text") == "2" for r in res):
        raise SystemExit("daemon %s: 1+1 gave %r" % (d.tag, res))


def delete(d, ctx_id, pids=()):
    r = d.client.delete(ctx_id)
    if r.status not in (200, 204):
        raise SystemExit("daemon %s: DELETE answered %r" % (d.tag, r))
    end = time.monotonic() + 30
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.01)  # the kernel's exit has no event we can await


def context_sample(d):
    """One context's life: the timings and memory of phase 1."""
    before = d.kernels()
    t0 = time.monotonic()
    ctx = d.client.create_context({"language": "python"}, timeout=120)
    create_ms = ms_since(t0)
    one_plus_one(d, context_id=ctx["id"])
    new_ctx_ms = ms_since(t0)
    new = sorted(d.kernels() - before)
    if len(new) != 1:
        say("WARNING: daemon %s: %d new kernels for one context (%s)",
            d.tag, len(new), new)
    tree = [q for p in new for q in descendants(p)]
    priv_1p1 = private_mib(tree)
    # numpy mapped before any user code imported it: a fork of a zygote
    # that preloaded the data stack (exec'd kernels import nothing of it).
    preloaded = bool(tree) and maps_mention(tree[0], b"numpy")
    t1 = time.monotonic()
    lines = execute(d, DATA_CELL, context_id=ctx["id"])
    data_ms = ms_since(t1)
    total_ms = ms_since(t0)
    res = results(lines)
    if not any("png" in r and "chart" in r for r in res):
        raise SystemExit("daemon %s: the data cell gave no result with png "
                         "and chart: %r" % (d.tag, [sorted(r) for r in res]))
    tree = [q for p in new for q in descendants(p)]
    priv_data = private_mib(tree)
    delete(d, ctx["id"], new)
    return {"create_ms": create_ms, "new_ctx_ms": new_ctx_ms,
            "data_cell_ms": data_ms, "create_to_data_ms": total_ms,
            "private_1p1_mib": priv_1p1, "private_data_mib": priv_data,
            "preloaded": preloaded}


# ------------------------------------------------------------------ phases


def summary(xs):
    xs = [x for x in xs if x == x]
    if not xs:
        return None
    return {"n": len(xs), "min": min(xs), "p50": statistics.median(xs),
            "max": max(xs), "samples": xs}


def order(i, configs):
    """ABAB...: sample i runs the configurations in turn, first one
    alternating."""
    return configs if i % 2 == 0 else configs[::-1]


def phase_contexts(binary, tmp, configs, supported, n):
    say("phase 1: new contexts, pool python=0, %d samples each", n)
    ds = {c: Daemon(binary, tmp, "ctx-" + c, c, supported, "python",
                    "python=0") for c in configs}
    out = {c: [] for c in configs}
    counters = {}
    try:
        for d in ds.values():
            d.wait_healthy()
        for d in ds.values():
            d.wait_zygote()
            d.wait_quiet(0)
        for c in configs:  # untimed: page cache, first imports
            s = context_sample(ds[c])
            say("  warm-up %s: new context %.0f ms, data cell %.0f ms", c,
                s["new_ctx_ms"], s["data_cell_ms"])
        for i in range(n):
            for c in order(i, configs):
                s = context_sample(ds[c])
                out[c].append(s)
                say("  %d/%d %-4s new context %6.0f ms, data cell %6.0f "
                    "ms, private %5.1f / %5.1f MiB%s", i + 1, n, c,
                    s["new_ctx_ms"], s["data_cell_ms"], s["private_1p1_mib"],
                    s["private_data_mib"],
                    ", preloaded" if s["preloaded"] else "")
        for c in configs:
            counters[c] = ds[c].start_counters()
    finally:
        for d in ds.values():
            d.stop()
    return out, counters


def stack_sample(binary, tmp, c, supported, k):
    d = Daemon(binary, tmp, "stack-%s-%d" % (c, k), c, supported,
               "python,javascript", "python=1")
    try:
        d.wait_healthy()
        d.wait_zygote()
        one_plus_one(d, language="python")
        res = results(execute(d, "1+1", language="javascript"))
        if not res:
            raise SystemExit("daemon %s: javascript 1+1 gave no result"
                             % d.tag)
        d.wait_quiet(1)
        time.sleep(1.0)  # let the last start's transient pages settle
        by_role, n_procs, unreadable, rss = {}, 0, 0, 0.0
        for pid in d.tree():
            r = rollup(pid)
            if not r:
                unreadable += 1
                continue
            n_procs += 1
            rss += r.get("Rss", 0) / 1024.0
            key = role(pid, d.pid)
            by_role[key] = by_role.get(key, 0) + r.get("Pss", 0) / 1024.0
        # Which of the Python kernels (default context, spare) are forks:
        # those started before the zygote was ready are exec'd.
        py = sorted(d.kernels())
        mapped = sum(maps_mention(k, b"numpy") for k in py)
        if unreadable:
            say("WARNING: %d processes of daemon %s have no readable "
                "smaps_rollup", unreadable, d.tag)
        return {"pss_mib": sum(by_role.values()), "rss_mib": rss,
                "by_role": by_role, "python_kernels": len(py),
                "python_preloaded": mapped,
                "processes": n_procs, "unreadable": unreadable}
    finally:
        d.stop()


def phase_stack(binary, tmp, configs, supported, rounds):
    say("phase 2: default stack PSS, one daemon at a time, %d rounds",
        rounds)
    out = {c: [] for c in configs}
    for i in range(rounds):
        for c in order(i, configs):
            s = stack_sample(binary, tmp, c, supported, i)
            out[c].append(s)
            say("  %d/%d %-4s PSS %.1f MiB (RSS %.1f) over %d processes, "
                "%d/%d Python kernels preloaded (%s)", i + 1, rounds, c,
                s["pss_mib"], s["rss_mib"], s["processes"],
                s["python_preloaded"], s["python_kernels"],
                ", ".join("%s %.1f" % kv for kv in sorted(
                    s["by_role"].items())))
    return out


def churn_block(d, n):
    d.wait_quiet(1)
    t0 = time.monotonic()
    for _ in range(n):
        ctx = d.client.create_context({"language": "python"}, timeout=120)
        one_plus_one(d, context_id=ctx["id"])
        r = d.client.delete(ctx["id"])
        if r.status not in (200, 204):
            raise SystemExit("daemon %s: DELETE answered %r" % (d.tag, r))
    d.wait_quiet(1)
    return time.monotonic() - t0


def phase_churn(binary, tmp, configs, supported, n):
    half = n // 2
    say("phase 3: churn, pool python=1, 2 x %d contexts each (ABBA)", half)
    ds = {c: Daemon(binary, tmp, "churn-" + c, c, supported, "python",
                    "python=1") for c in configs}
    secs = {c: 0.0 for c in configs}
    try:
        for d in ds.values():
            d.wait_healthy()
        for d in ds.values():
            d.wait_zygote()
        for c in configs:  # the spare may predate the zygote: replace it
            churn_block(ds[c], 2)
        for c in configs + configs[::-1]:
            s = churn_block(ds[c], half)
            secs[c] += s
            say("  %-4s %d contexts in %.1f s (%.2f/s)", c, half, s,
                half / s)
    finally:
        for d in ds.values():
            d.stop()
    return {c: {"contexts": 2 * half, "seconds": secs[c],
                "per_s": 2 * half / secs[c]} for c in configs}


def series(samples, key):
    return {c: summary([s[key] for s in v]) for c, v in samples.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", required=True, help="the e2b-ci binary")
    ap.add_argument("--out", required=True, help="the JSON written")
    ap.add_argument("--samples", type=int, default=6,
                    help="contexts per configuration in phase 1")
    ap.add_argument("--stack-rounds", type=int, default=2)
    ap.add_argument("--churn", type=int, default=50,
                    help="contexts per configuration in phase 3")
    a = ap.parse_args()
    binary = os.path.abspath(a.daemon)
    supported = zygote_supported(binary)
    configs = ["exec", "fork"] if supported else ["exec"]
    say("%s: %s", binary, "--zygote supported: exec vs fork" if supported
        else "no --zygote: exec only, the fork column stays n/a")
    tmp = tempfile.mkdtemp(prefix="e2bci-bench-ctx-")
    try:
        ctx, counters = phase_contexts(binary, tmp, configs, supported,
                                       a.samples)
        stack = phase_stack(binary, tmp, configs, supported, a.stack_rounds)
        churn = phase_churn(binary, tmp, configs, supported, a.churn)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "argv": " ".join(sys.argv),
        "daemon": binary,
        "zygote_supported": supported,
        "configs": configs,
        "params": {"samples": a.samples, "stack_rounds": a.stack_rounds,
                   "churn": a.churn, "data_cell": DATA_CELL},
        "seconds": time.monotonic() - T0,
        "series": {
            "create_ms": series(ctx, "create_ms"),
            "new_ctx_ms": series(ctx, "new_ctx_ms"),
            "data_cell_ms": series(ctx, "data_cell_ms"),
            "create_to_data_ms": series(ctx, "create_to_data_ms"),
            "private_1p1_mib": series(ctx, "private_1p1_mib"),
            "private_data_mib": series(ctx, "private_data_mib"),
            "stack_pss_mib": series(stack, "pss_mib"),
            "stack_rss_mib": series(stack, "rss_mib"),
        },
        "preloaded": {c: {"n": len(v), "yes": sum(s["preloaded"] for s in v)}
                      for c, v in ctx.items()},
        "stack": stack,
        "churn": churn,
        "start_counters": counters,
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    say("wrote %s (%.0f s)", a.out, doc["seconds"])


if __name__ == "__main__":
    main()
