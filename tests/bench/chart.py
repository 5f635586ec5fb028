#!/usr/bin/python3
"""Draws the main rows of a `make bench` JSON file as one SVG (or PNG).

    /usr/bin/python3 tests/bench/chart.py build/bench-results.json tests/bench/latest.svg

Panels: 1+1 latency (e2b-ci vs the direct-ZeroMQ floor), POST /contexts and
restart (warm pool vs none), start -> healthy (vs the kernel's own start +
0.3 s), stdout throughput and parallel executes/s (vs floor), daemon RSS (vs
the targets). With --against results the other server gets its own bars.
Needs only Debian's python3-matplotlib (Agg backend, no display).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

C_E2B, C_FLOOR, C_AG, C_TGT = "#1f77b4", "#9a9a9a", "#ff7f0e", "#d62728"


def fmt(x):
    if x != x:
        return "n/a"
    return "%.0f" % x if abs(x) >= 100 else "%.3g" % x


def bars(a, labels, series, ylabel, title, log=False, targets=()):
    """Grouped bars: series is [(name, values, color)], one value per
    label; targets [(label index, y)] draw dashed target lines."""
    n = len(series)
    width = 0.8 / n
    for i, (name, vals, color) in enumerate(series):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        b = a.bar(xs, vals, width, label=name, color=color)
        a.bar_label(b, labels=[fmt(x) for x in vals], fontsize=7,
                    padding=1)
    for j, t in targets:
        a.hlines(t, j - 0.45, j + 0.45, colors=C_TGT, linestyles="--",
                 label="target" if j == targets[0][0] else None)
    a.set_xticks(range(len(labels)), labels, fontsize=8)
    a.set_ylabel(ylabel, fontsize=8)
    a.set_title(title, fontsize=9)
    if log:
        a.set_yscale("log")
    a.legend(fontsize=7, framealpha=0.7)
    a.margins(y=0.3)


class Results:
    """The rows of a results file by id, and the --against run if any."""

    def __init__(self, res):
        self.rows = {r["id"]: r for r in res["rows"]}
        self.ag = res.get("against")

    def v(self, rid, key="value"):
        x = self.rows.get(rid, {}).get(key)
        return float("nan") if x is None else x

    def agv(self, rid, key="against"):
        return self.v(rid, key) if self.ag else None


def panel_exec(a, r):
    s = [("e2b-ci", [r.v("exec_p50"), r.v("exec_p99")], C_E2B),
         ("floor (direct ZeroMQ)", [r.v("exec_p50", "floor"),
                                    r.v("exec_p99", "floor")], C_FLOOR)]
    if r.ag:
        s.append(("against", [r.agv("exec_p50"), r.agv("exec_p99")], C_AG))
    bars(a, ["p50", "p99"], s, "ms", "1+1 end to end (target p50 <= 1.15x floor)",
         targets=[(0, 1.15 * r.v("exec_p50", "floor"))])


def panel_contexts(a, r):
    s = [("e2b-ci, warm pool", [r.v("ctx_warm_p50"), r.v("restart_warm_p50")], C_E2B),
         ("e2b-ci, no pool", [r.v("ctx_cold_p50"), r.v("restart_cold_p50")], C_FLOOR)]
    if r.ag:
        s.append(("against", [r.agv("ctx_warm_p50"), r.agv("restart_warm_p50")], C_AG))
    bars(a, ["POST /contexts", "restart"], s, "ms (log)",
         "contexts p50 (target warm <= 10 ms)", log=True,
         targets=[(0, 10), (1, 10)])


def panel_start(a, r):
    s = [("e2b-ci", [r.v("start_healthy")], C_E2B),
         ("kernel's own start (floor)", [r.v("start_healthy", "floor")], C_FLOOR)]
    bars(a, ["start -> healthy"], s, "ms",
         "start -> healthy p50 (target <= kernel + 300 ms)",
         targets=[(0, r.v("start_healthy", "target"))])


def panel_stdout(a, r):
    s = [("e2b-ci", [r.v("stdout_mibps")], C_E2B),
         ("floor", [r.v("stdout_mibps", "floor")], C_FLOOR)]
    bars(a, ["20 MiB stdout"], s, "MiB/s",
         "stdout throughput (target >= 0.9x floor)",
         targets=[(0, 0.9 * r.v("stdout_mibps", "floor"))])


def panel_parallel(a, r):
    s = [("e2b-ci", [r.v("parallel_eps")], C_E2B),
         ("floor", [r.v("parallel_eps", "floor")], C_FLOOR)]
    if r.ag:
        s.append(("against", [r.agv("parallel_eps")], C_AG))
    bars(a, ["4 contexts x 50 1+1"], s, "executes/s",
         "parallel (target >= 0.9x floor)",
         targets=[(0, 0.9 * r.v("parallel_eps", "floor"))])


def panel_memory(a, res):
    mem = res["raw"].get("memory", {})

    def m(k, f):
        x = mem.get(k, {}).get(f)
        return float("nan") if x is None else x

    labels = ["idle", "1000 conns", "after"]
    keys = ["idle", "connections", "after"]
    anon = [m(k, "RssAnon_MiB") for k in keys]
    filed = [m(k, "RssFile_MiB") for k in keys]
    a.bar(labels, filed, color=C_FLOOR, label="file-backed (shared libs)")
    b = a.bar(labels, anon, bottom=filed, color=C_E2B, label="anonymous")
    a.bar_label(b, labels=["%.1f" % (x + y) for x, y in zip(anon, filed)],
                fontsize=7, padding=1)
    a.hlines(8, -0.45, 0.45, colors=C_TGT, linestyles="--", label="target")
    a.hlines(16, 1.55, 2.45, colors=C_TGT, linestyles="--")
    a.set_ylabel("MiB (VmRSS)", fontsize=8)
    a.set_title("daemon RSS (target idle <= 8, after <= 16)", fontsize=9)
    a.tick_params(axis="x", labelsize=8)
    a.legend(fontsize=7, framealpha=0.7)
    a.margins(y=0.3)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: chart.py RESULTS.json OUT.svg")
    with open(sys.argv[1]) as f:
        res = json.load(f)
    r = Results(res)

    plt.rcParams["svg.hashsalt"] = "e2b-ci-bench"
    fig, ax = plt.subplots(2, 3, figsize=(13, 7.5))
    fig.suptitle(
        "e2b-ci `make bench` (%s, %s CPUs)%s"
        % (res["generated"], res["machine"]["cpus"],
           "  vs " + r.ag["url"] if r.ag else ""),
        fontsize=11)
    panel_exec(ax[0][0], r)
    panel_contexts(ax[0][1], r)
    panel_start(ax[0][2], r)
    panel_stdout(ax[1][0], r)
    panel_parallel(ax[1][1], r)
    panel_memory(ax[1][2], res)

    fig.tight_layout()
    fig.savefig(sys.argv[2], metadata={"Date": None} if sys.argv[2].endswith(".svg") else None)
    print("chart.py: wrote %s" % sys.argv[2])


if __name__ == "__main__":
    main()
