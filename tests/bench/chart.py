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


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: chart.py RESULTS.json OUT.svg")
    with open(sys.argv[1]) as f:
        res = json.load(f)
    rows = {r["id"]: r for r in res["rows"]}
    ag = res.get("against")

    def v(rid, key="value"):
        x = rows.get(rid, {}).get(key)
        return float("nan") if x is None else x

    plt.rcParams["svg.hashsalt"] = "e2b-ci-bench"
    fig, ax = plt.subplots(2, 3, figsize=(13, 7.5))
    fig.suptitle(
        "e2b-ci `make bench` (%s, %s CPUs)%s"
        % (res["generated"], res["machine"]["cpus"],
           "  vs " + ag["url"] if ag else ""),
        fontsize=11)

    def bars(a, labels, series, ylabel, title, log=False, targets=()):
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

    def agv(rid, key="against"):
        return v(rid, key) if ag else None

    s = [("e2b-ci", [v("exec_p50"), v("exec_p99")], C_E2B),
         ("floor (direct ZeroMQ)", [v("exec_p50", "floor"),
                                    v("exec_p99", "floor")], C_FLOOR)]
    if ag:
        s.append(("against", [agv("exec_p50"), agv("exec_p99")], C_AG))
    bars(ax[0][0], ["p50", "p99"], s, "ms", "1+1 end to end (target p50 <= 1.15x floor)",
         targets=[(0, 1.15 * v("exec_p50", "floor"))])

    s = [("e2b-ci, warm pool", [v("ctx_warm_p50"), v("restart_warm_p50")], C_E2B),
         ("e2b-ci, no pool", [v("ctx_cold_p50"), v("restart_cold_p50")], C_FLOOR)]
    if ag:
        s.append(("against", [agv("ctx_warm_p50"), agv("restart_warm_p50")], C_AG))
    bars(ax[0][1], ["POST /contexts", "restart"], s, "ms (log)",
         "contexts p50 (target warm <= 10 ms)", log=True,
         targets=[(0, 10), (1, 10)])

    s = [("e2b-ci", [v("start_healthy")], C_E2B),
         ("kernel's own start (floor)", [v("start_healthy", "floor")], C_FLOOR)]
    bars(ax[0][2], ["start -> healthy"], s, "ms",
         "start -> healthy p50 (target <= kernel + 300 ms)",
         targets=[(0, v("start_healthy", "target"))])

    s = [("e2b-ci", [v("stdout_mibps")], C_E2B),
         ("floor", [v("stdout_mibps", "floor")], C_FLOOR)]
    bars(ax[1][0], ["20 MiB stdout"], s, "MiB/s",
         "stdout throughput (target >= 0.9x floor)",
         targets=[(0, 0.9 * v("stdout_mibps", "floor"))])

    s = [("e2b-ci", [v("parallel_eps")], C_E2B),
         ("floor", [v("parallel_eps", "floor")], C_FLOOR)]
    if ag:
        s.append(("against", [agv("parallel_eps")], C_AG))
    bars(ax[1][1], ["4 contexts x 50 1+1"], s, "executes/s",
         "parallel (target >= 0.9x floor)",
         targets=[(0, 0.9 * v("parallel_eps", "floor"))])

    mem = res["raw"].get("memory", {})

    def m(k, f):
        x = mem.get(k, {}).get(f)
        return float("nan") if x is None else x

    a = ax[1][2]
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

    fig.tight_layout()
    fig.savefig(sys.argv[2], metadata={"Date": None} if sys.argv[2].endswith(".svg") else None)
    print("chart.py: wrote %s" % sys.argv[2])


if __name__ == "__main__":
    main()
