#!/usr/bin/python3
"""The report of `make bench`: rows, the printed table, JSON and markdown.

    /usr/bin/python3 tests/bench/report.py MEASURED.json RESULTS.json \
        [--contexts CONTEXTS.json] [--copy FILE] [--md FILE]
    /usr/bin/python3 tests/bench/report.py --contexts CONTEXTS.json

MEASURED.json is what build/bench wrote: the samples of every series
(summarised as n, min, p50, p99, max), the daemon's memory at points of the
run, the kernels per language and, with --against, the other server's
series. This script turns them into the rows of ROWS below (value, floor,
target, ratio, whether the target is met), prints the table, writes
RESULTS.json (what chart.py and README's table read) and the same table as
markdown. Floats in RESULTS.json keep 6 significant digits.

CONTEXTS.json is what tests/bench/contexts.py wrote (Python kernels forked
from the zygote against exec'd ones): its rows (CTX_ROWS) become a second
table, "Python contexts: fork server vs exec", printed after the others,
in the markdown and under "contexts" in RESULTS.json. Given alone, that
table is printed and nothing is written (make bench-contexts).
"""
import argparse
import json
import math
import sys

NAN = float("nan")


def at(m, path):
    """The number at a dotted path of the measurements; NaN when absent."""
    x = m
    for key in path.split("."):
        if not isinstance(x, dict) or x.get(key) is None:
            return NAN
        x = x[key]
    return float(x)


def minus(a, b):
    """A value source: the difference of two paths."""
    return lambda m: at(m, a) - at(m, b)


def source(m, src):
    """A value source is a dotted path, a function of the measurements, or
    None (no value)."""
    if src is None:
        return NAN
    return src(m) if callable(src) else at(m, src)


def div(a, b):
    """a / b with IEEE results (inf, NaN) where Python would raise."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or a != a:
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


# ------------------------------------------------------------------ rules
#
# A rule says what the row is held to: its text in the table, the target
# number written to the JSON, and whether the row meets it (None: no
# verdict). Each is a function of the row's value, floor and ratio, and of
# the measurements (for targets that depend on the run, like the number of
# connections asked for).


class Rule:
    def __init__(self, text, target=None, met=None):
        self.text, self.target, self.met = text, target, met


def ratio_at_most(x):
    return Rule("<= %gx" % x, met=lambda v, f, r, t: r <= x)


def ratio_at_least(x):
    return Rule(">= %gx" % x, met=lambda v, f, r, t: r >= x)


def at_most(x, unit):
    return Rule("<= %g %s" % (x, unit), target=lambda m, f: x,
                met=lambda v, f, r, t: v <= t)


def below(x, unit):
    return Rule("< %g %s" % (x, unit), target=lambda m, f: x,
                met=lambda v, f, r, t: v < t)


def floor_plus(x, unit):
    return Rule("<= +%g %s" % (x, unit), target=lambda m, f: f + x,
                met=lambda v, f, r, t: v <= t)


def note(text):
    return Rule(text)


def all_connections():
    """Every keep-alive connection asked for (params.connections) held."""
    def text(m):
        n = at(m, "params.connections")
        return "all 1000" if n == 1000 else "all (QUICK: not 1000)"
    return Rule(text, target=lambda m, f: at(m, "params.connections"),
                met=lambda v, f, r, t: v >= t)


# ------------------------------------------------------------------- rows
#
# One row per entry, in table order. value, floor and against are value
# sources: a dotted path into MEASURED.json ("raw.exec_ms.p50": the median
# of the series exec_ms; "raw.memory.idle.VmRSS_MiB"; "against.exec_ms.p50"
# for the --against column), or a function of it such as minus(a, b). With
# a floor the row shows the ratio value / floor. needs: a path without
# which the row is left out (libfloor's rows when it was not built).
#
# Adding a row that compares something new with a baseline (e.g. "new
# Python context with no spare available (create -> first 1+1)" next to
# "POST /contexts p50, no pool", or "private memory per additional context"
# next to the first context's):
#   1. measure.c: a measure_* function that takes both samples in the same
#      run, interleaved where both sides can repeat (see
#      measure_one_plus_one); a single number (a memory reading) is a
#      series of one sample.
#   2. bench.h: a series for each side in enum series; record.c: its JSON
#      key in SERIES (it then appears as raw.<key> with n/min/p50/p99/max).
#   3. bench.c: call the function in the phase whose daemon and state it
#      needs (a daemon with other options gets a phase of its own, like
#      phase_cold's daemon B).
#   4. here: one Row(...) with value "raw.<key>.p50", floor
#      "raw.<baseline>.p50" and a rule; chart.py draws only the rows it
#      names, so a new row needs nothing there.


class Row:
    def __init__(self, id, label, unit, value, floor=None, rule=None,
                 against=None, needs=None):
        self.id, self.label, self.unit, self.value = id, label, unit, value
        self.floor, self.rule, self.against = floor, rule, against
        self.needs = needs


KSTART = "raw.kernel_start_ms.p50"
IDLE, AFTER = "raw.memory.idle.", "raw.memory.after."
LIBS = "raw.memory.libraries_alone.VmRSS_MiB"
CONNS, PRE_CONNS = "raw.memory.connections.", "raw.memory.before_connections."

ROWS = [
    Row("health_p50", "GET /health p50", "ms", "raw.health_ms.p50",
        against="against.health_ms.p50"),
    Row("health_p99", "GET /health p99", "ms", "raw.health_ms.p99",
        against="against.health_ms.p99"),
    Row("exec_p50", "1+1 end-to-end p50", "ms", "raw.exec_ms.p50",
        floor="raw.floor_exec_ms.p50", rule=ratio_at_most(1.15),
        against="against.exec_ms.p50"),
    Row("exec_overhead_p50", "1+1 overhead p50 (e2b-ci - floor)", "ms",
        minus("raw.exec_ms.p50", "raw.floor_exec_ms.p50"),
        rule=below(0.5, "ms")),
    Row("exec_p99", "1+1 end-to-end p99", "ms", "raw.exec_ms.p99",
        floor="raw.floor_exec_ms.p99", against="against.exec_ms.p99"),
    Row("ctx_warm_p50", "POST /contexts p50, warm pool", "ms",
        "raw.ctx_warm_ms.p50", rule=at_most(10, "ms"),
        against="against.ctx_ms.p50"),
    Row("ctx_cold_p50", "POST /contexts p50, no pool", "ms",
        "raw.ctx_cold_ms.p50", floor=KSTART, rule=note("kernel start")),
    Row("restart_warm_p50", "restart p50, warm pool", "ms",
        "raw.restart_warm_ms.p50", rule=at_most(10, "ms"),
        against="against.restart_ms.p50"),
    Row("restart_cold_p50", "restart p50, no pool", "ms",
        "raw.restart_cold_ms.p50", floor=KSTART, rule=note("kernel start")),
    Row("start_healthy", "start -> healthy p50", "ms",
        "raw.start_healthy_ms.p50", floor=KSTART,
        rule=floor_plus(300, "ms")),
    Row("stdout_mibps", "stdout throughput, 20 MiB", "MiB/s",
        "raw.stdout_mibps.p50", floor="raw.floor_stdout_mibps.p50",
        rule=ratio_at_least(0.9)),
    Row("parallel_eps", "4 contexts x 50 1+1 parallel", "exec/s",
        "raw.parallel_eps.p50", floor="raw.floor_parallel_eps.p50",
        rule=ratio_at_least(0.9), against="against.parallel_eps.p50"),
    Row("rss_idle", "daemon RSS idle", "MiB", IDLE + "VmRSS_MiB",
        floor=LIBS, rule=at_most(8, "MiB")),
    Row("rss_lib_floor", "  its libraries alone (libfloor)", "MiB", LIBS,
        needs=LIBS),
    Row("rss_own", "  e2b-ci's own (idle - libraries)", "MiB",
        minus(IDLE + "VmRSS_MiB", LIBS), needs=LIBS),
    Row("rss_after", "daemon RSS after the run", "MiB", AFTER + "VmRSS_MiB",
        rule=at_most(16, "MiB")),
    Row("rss_idle_anon", "  of it anonymous, idle", "MiB",
        IDLE + "RssAnon_MiB"),
    Row("rss_after_anon", "  of it anonymous, after", "MiB",
        AFTER + "RssAnon_MiB"),
    Row("rss_peak", "daemon peak RSS (VmHWM)", "MiB", AFTER + "VmHWM_MiB"),
    Row("conns_held", "keep-alive connections held", "", "run.conns_held",
        rule=all_connections(), against="against.conns_held"),
    Row("conns_rss", "daemon RSS with them", "MiB", CONNS + "VmRSS_MiB"),
    Row("conns_rss_delta", "  growth from the connections", "MiB",
        minus(CONNS + "VmRSS_MiB", PRE_CONNS + "VmRSS_MiB")),
    Row("conns_health_p99", "GET /health p99 meanwhile", "ms",
        "raw.conns_health_ms.p99", rule=at_most(5, "ms"),
        against="against.conns_health_ms.p99"),
]


def evaluate(row, m):
    """The row's cells as numbers: the dict written to RESULTS.json."""
    value = source(m, row.value)
    floor = source(m, row.floor)
    ratio = div(value, floor)
    rule = row.rule or Rule("")
    target = float(rule.target(m, floor)) if rule.target else NAN
    met = rule.met(value, floor, ratio, target) if rule.met else None
    text = rule.text(m) if callable(rule.text) else rule.text
    return {"id": row.id, "label": row.label, "unit": row.unit,
            "value": value, "floor": floor, "target": target,
            "ratio": ratio, "rule": text, "met": met,
            "against": source(m, row.against)}


def build_rows(m):
    return [evaluate(r, m) for r in ROWS
            if not (r.needs and math.isnan(at(m, r.needs)))]


# ------------------------------------------------------------------ table


def fmt_num(v):
    if v != v:
        return "-"
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def cells(r):
    """value, floor / target, ratio, met, against: the row as text."""
    val = fmt_num(r["value"]) + (" " + r["unit"] if r["unit"] else "")
    if r["floor"] == r["floor"]:
        flo = "floor " + fmt_num(r["floor"])
        flo += "; " + r["rule"] if r["rule"] else ""
    else:
        flo = r["rule"] or "-"
    rat = "-" if r["ratio"] != r["ratio"] else "%.2fx" % r["ratio"]
    met = "-" if r["met"] is None else "yes" if r["met"] else "NO"
    return val, flo, rat, met, fmt_num(r["against"])


def table(rows, against, markdown):
    if markdown:
        out = ["| row | e2b-ci | floor / target | ratio | met |%s"
               % (" against |" if against else ""),
               "|---|---|---|---|---|%s" % ("---|" if against else "")]
    else:
        out = ["%-34s %14s  %-34s %7s %4s%s"
               % ("row", "e2b-ci", "floor / target", "ratio", "met",
                  "      against" if against else "")]
    for r in rows:
        val, flo, rat, met, ag = cells(r)
        if markdown:
            out.append("| %s | %s | %s | %s | %s |%s"
                       % (r["label"], val, flo, rat, met,
                          " %s |" % ag if against else ""))
        else:
            out.append("%-34s %14s  %-34s %7s %4s%*s"
                       % (r["label"], val, flo, rat, met,
                          13 if against else 0, ag if against else ""))
    return "".join(line + "\n" for line in out)


def kernel_cells(k):
    """start p50, start min / max, idle RSS, processes: as text."""
    p50 = mm = rss = np = "-"
    s = k["start_ms"]
    if s:
        p50 = "%s ms" % fmt_num(s["p50"])
        mm = "%s / %s ms" % (fmt_num(s["min"]), fmt_num(s["max"]))
    if k["idle_rss_mib"] is not None:
        rss = "%s MiB" % fmt_num(k["idle_rss_mib"])
        np = "%d" % k["idle_processes"]
    return p50, mm, rss, np


def kernels_table(m, markdown):
    n = m["params"]["kernel_starts"]
    idle_s = m["params"]["kernel_idle_ms"] // 1000
    if markdown:
        out = ["\n### Kernels\n\nStart: spawn -> kernel_info ready through "
               "the floor client, p50 of %d (one more uncounted start warms "
               "the page cache). Idle RSS: the kernel and all its "
               "descendants, sum of VmRSS, %d s after ready.\n" % (n, idle_s),
               "| language | kernelspec | start p50 | start min / max | "
               "idle RSS | processes |", "|---|---|---|---|---|---|"]
    else:
        out = ["\nKernels (start: spawn -> ready, p50 of %d; idle RSS: "
               "kernel + descendants, %d s after ready)\n" % (n, idle_s),
               "%-11s %-12s %11s %17s %11s %6s  %s"
               % ("language", "kernelspec", "start p50", "start min / max",
                  "idle RSS", "procs", "status")]
    for k in m["kernels"]:
        spec = k["kernelspec"] or ""
        p50, mm, rss, np = kernel_cells(k)
        if markdown and k["status"] != "ok" and not k["start_ms"]:
            out.append("| %s | %s | %s | - | - | - |"
                       % (k["language"], spec or "-", k["status"]))
        elif markdown:
            out.append("| %s | %s | %s | %s | %s | %s |"
                       % (k["language"], spec, p50, mm, rss, np))
        else:
            out.append("%-11s %-12s %11s %17s %11s %6s  %s"
                       % (k["language"], spec or "-", p50, mm, rss, np,
                          k["status"]))
    return "".join(line + "\n" for line in out)


# ------------------------------------------- Python contexts: fork vs exec
#
# tests/bench/contexts.py's file (--contexts): each series holds, per
# configuration ("exec": --zygote off, "fork": --zygote on), n, min, p50,
# max and the samples. A row shows both p50s and fork / exec; its rule is
# held by the fork column (no fork column, no verdict).


class CtxRow:
    def __init__(self, id, label, unit, key, text="-", met=None):
        self.id, self.label, self.unit, self.key = id, label, unit, key
        self.text, self.met = text, met


CTX_ROWS = [
    CtxRow("new_ctx", "new Python context, no spare (create -> 1+1)", "ms",
           "new_ctx_ms", "<= 150 ms and <= 0.3x exec",
           lambda f, r: f <= 150 and r <= 0.3),
    CtxRow("create", "  of it POST /contexts", "ms", "create_ms"),
    CtxRow("data_cell", "first data cell (png + chart)", "ms",
           "data_cell_ms", "<= 150 ms", lambda f, r: f <= 150),
    CtxRow("create_to_data", "  create -> data cell done", "ms",
           "create_to_data_ms"),
    CtxRow("private_1p1", "private memory per context, after 1+1", "MiB",
           "private_1p1_mib"),
    CtxRow("private_data", "  after the data cell", "MiB",
           "private_data_mib", "<= 25 MiB", lambda f, r: f <= 25),
    CtxRow("stack_pss", "default stack total PSS", "MiB", "stack_pss_mib",
           "<= 140 MiB", lambda f, r: f <= 140),
    CtxRow("stack_rss", "  its sum of RSS (shared pages counted often)",
           "MiB", "stack_rss_mib"),
    CtxRow("stack_preloaded", "  its Python kernels with the data stack "
           "mapped", "", None),
    CtxRow("churn", "churn: create, 1+1, delete (pool 1)", "ctx/s", None,
           "higher is better"),
    CtxRow("preloaded", "new kernels with the data stack mapped", "", None,
           "fork: all", lambda f, r: f == 1),
]


def ctx_cell(c, row, config):
    """(value, n) of one configuration's column; (NaN, 0) when absent."""
    if config not in c["configs"]:
        return NAN, 0
    if row.id == "churn":
        ch = c["churn"][config]
        return float(ch["per_s"]), ch["contexts"]
    if row.id == "preloaded":
        p = c["preloaded"][config]
        return div(float(p["yes"]), float(p["n"])), p["n"]
    if row.id == "stack_preloaded":
        st = c["stack"][config]
        n = sum(s.get("python_kernels", 0) for s in st)
        yes = sum(s.get("python_preloaded", 0) for s in st)
        return div(float(yes), float(n)), n
    s = c["series"].get(row.key, {}).get(config)
    return (float(s["p50"]), s["n"]) if s else (NAN, 0)


def build_ctx_rows(c):
    out = []
    for row in CTX_ROWS:
        ev, en = ctx_cell(c, row, "exec")
        fv, fn = ctx_cell(c, row, "fork")
        ratio = NAN if row.unit == "" else div(fv, ev)
        met = row.met(fv, ratio) if row.met and fn else None
        out.append({"id": row.id, "label": row.label, "unit": row.unit,
                    "exec": ev, "exec_n": en, "fork": fv, "fork_n": fn,
                    "ratio": ratio, "target": row.text, "met": met})
    return out


def ctx_value(r, side):
    if not r[side + "_n"]:
        return "n/a"
    if r["unit"] == "":
        return "%d/%d" % (round(r[side] * r[side + "_n"]), r[side + "_n"])
    unit = " " + r["unit"] if r["unit"] else ""
    return "%s%s (n=%d)" % (fmt_num(r[side]), unit, r[side + "_n"])


def ctx_table(c, rows, markdown):
    head = ("row", "exec", "fork", "fork/exec", "target", "met")
    if markdown:
        out = ["\n### Python contexts: fork server vs exec\n\n"
               "tests/bench/contexts.py: the daemon with `--zygote off` "
               "(exec) and `--zygote on` (fork), side by side, samples "
               "interleaved; p50 (n). The target holds the fork column.%s\n"
               % ("" if c["zygote_supported"] else
                  " This daemon has no `--zygote`: exec only."),
               "| %s |" % " | ".join(head), "|---|---|---|---|---|---|"]
    else:
        out = ["\nPython contexts: fork server vs exec (p50 (n), samples "
               "interleaved%s)\n" % ("" if c["zygote_supported"] else
                                      "; no --zygote: exec only"),
               "%-46s %18s %18s %9s  %-27s %s" % head]
    for r in rows:
        rat = "-" if r["ratio"] != r["ratio"] else "%.2fx" % r["ratio"]
        met = "-" if r["met"] is None else "yes" if r["met"] else "NO"
        cols = (r["label"], ctx_value(r, "exec"), ctx_value(r, "fork"), rat,
                r["target"], met)
        if markdown:
            out.append("| %s |" % " | ".join(cols))
        else:
            out.append("%-46s %18s %18s %9s  %-27s %s" % cols)
    return "".join(line + "\n" for line in out)


def ctx_results(c, rows):
    keep = ("generated", "argv", "zygote_supported", "configs", "params",
            "seconds", "series", "preloaded", "stack", "churn",
            "start_counters")
    doc = {k: c[k] for k in keep}
    doc["rows"] = rows
    return doc


# ---------------------------------------------------------------- outputs


def rounded(x):
    """The document as written: 6 significant digits, NaN and inf null."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else float("%.6g" % x)
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v) for v in x]
    return x


def results(m, rows, ctx):
    """RESULTS.json: the measurements with the rows after params, and
    contexts.py's table and series under "contexts" (null without)."""
    keys = ["generated", "command", "argv", "machine", "params"]
    doc = {k: m[k] for k in keys}
    doc["rows"] = rows
    doc.update((k, m[k]) for k in ("kernels", "raw", "against"))
    doc["contexts"] = ctx
    return rounded(doc)


def markdown(m, rows, ctx_md):
    mach, ag = m["machine"], m["against"]
    head = ("<!-- generated by `make bench` (tests/bench/report.py); "
            "do not edit -->\n"
            "Measured %s on %s %s, %d CPUs, with `make bench%s` (%s).\n\n"
            % (m["generated"], mach["sysname"], mach["release"],
               mach["cpus"], " AGAINST=" + ag["url"] if ag else "",
               m["argv"]))
    return (head + table(rows, ag is not None, True) +
            kernels_table(m, True) + ctx_md)


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print("report.py: wrote %s" % path, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("measured", nargs="?",
                    help="build/bench's --out file (without it, only the "
                    "--contexts table is printed, nothing written)")
    ap.add_argument("out", nargs="?", help="the results JSON")
    ap.add_argument("--contexts", help="tests/bench/contexts.py's --out")
    ap.add_argument("--copy", help="a second copy of the results JSON")
    ap.add_argument("--md", help="the table as markdown")
    a = ap.parse_args()
    ctx = ctx_rows = None
    if a.contexts:
        with open(a.contexts, encoding="utf-8") as f:
            ctx = json.load(f)
        ctx_rows = build_ctx_rows(ctx)
    if not a.measured:
        if not ctx:
            ap.error("give MEASURED.json, --contexts FILE or both")
        sys.stdout.write(ctx_table(ctx, ctx_rows, False))
        return
    with open(a.measured, encoding="utf-8") as f:
        m = json.load(f)
    rows = build_rows(m)
    against = m["against"] is not None
    print("\ne2b-ci benchmark (%s; medians of interleaved samples; %.0f s)\n"
          % ("QUICK: too few samples to mean much" if m["params"]["quick"]
             else "make bench", m["run"]["seconds"]))
    sys.stdout.write(table(rows, against, False) + kernels_table(m, False))
    if ctx:
        sys.stdout.write(ctx_table(ctx, ctx_rows, False))
    sys.stdout.flush()
    doc = json.dumps(results(m, rows, ctx and ctx_results(ctx, ctx_rows)),
                     indent=1, ensure_ascii=False)
    for path in filter(None, (a.out, a.copy)):
        write(path, doc)
    if a.md:
        write(a.md, markdown(m, rows,
                             ctx_table(ctx, ctx_rows, True) if ctx else ""))


if __name__ == "__main__":
    main()
