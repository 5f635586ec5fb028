"""Kernel limits (issue 11, sections 8 and 9).

--kernel-memory-max 300M: every language starts and runs ordinary code
(numpy and pandas in Python too), and a memory hog ends with OutOfMemoryError
or the language's own memory error, after which the context works again.
Where the daemon has no memory cgroup (this machine) the limit is
RLIMIT_DATA per process, which V8's and the JVM's large PROT_NONE
reservations do not count against (RLIMIT_AS did: JavaScript, TypeScript and
Java could not start at 300M).

--kernel-tasks-max: a cell that starts 500 processes under a limit of 64
gets an error, the daemon and other contexts carry on, and the processes
are gone once the context is deleted.
"""

import random

import pytest

import harness
from harness import error, kill_sleeps, main_text, per_language, stdout

LIMIT = "300M"

# Per language: ordinary code and what it prints or returns; a hog; the
# error names it may end with (its own memory error, or ours when the
# kernel died of the limit); code run afterwards and its output.
CASES = {
    "python": dict(
        ok="import numpy as np, pandas as pd\n"
           "df = pd.DataFrame({'a': np.arange(1000)})\nprint(int(df.a.sum()))",
        out="499500",
        hog="x = bytearray(2 * 1024**3)",
        names={"MemoryError", "OutOfMemoryError"},
        after="print(1 + 1)", after_out="2"),
    "javascript": dict(
        ok="console.log([1, 2, 3].map(x => x * 2).join(','))", out="2,4,6",
        hog="const hog = []; while (true) hog.push(new Array(1e5).fill(1.5))",
        names={"OutOfMemoryError"},
        after="console.log(1 + 1)", after_out="2"),
    "typescript": dict(
        ok="const xs: number[] = [1, 2, 3]; console.log(xs.map((x: number) => x * 2).join(','))",
        out="2,4,6",
        hog="const hog: number[][] = []; while (true) hog.push(new Array(1e5).fill(1.5))",
        names={"OutOfMemoryError"},
        after="console.log(1 + 1)", after_out="2"),
    "r": dict(
        ok='cat(mean(c(1, 2, 3)), "\\n")', out="2",
        hog="x <- numeric(5e8)",
        names={"ERROR", "OutOfMemoryError"},  # R: "cannot allocate vector"
        after='cat(1 + 1, "\\n")', after_out="2"),
    "bash": dict(
        ok="seq 1 5 | paste -sd+ | bc", out="15",
        hog="x=$(head -c 400000000 /dev/zero | tr '\\0' x); echo ${#x}",
        names={"OutOfMemoryError"},
        after="echo $((1 + 1))", after_out="2"),
    "java": dict(
        ok='var xs = java.util.List.of(1, 2, 3); '
           'System.out.println(xs.stream().mapToInt(i -> i * 2).sum());',
        out="12",
        hog="var hog = new java.util.ArrayList<byte[]>(); while (true) hog.add(new byte[1 << 20]);",
        names={"OutOfMemoryError"},
        after="System.out.println(1 + 1);", after_out="2"),
}


@pytest.fixture(scope="module")
def mem_daemon(e2bci_bin, tmp_path_factory):
    # Python and JavaScript are default contexts: /health turns 200 only
    # once both started under the limit.
    with harness.serving(harness.Daemon(
            e2bci_bin, tmp_path_factory.mktemp("mem"),
            envd_url="http://127.0.0.1:9", name="memory-limit daemon",
            args=["--kernel-memory-max", LIMIT, "--pool", "python=0",
                  "--default-languages", "python,javascript"])) as d:
        yield d


@per_language(CASES)
def test_memory_limit_every_language_runs_and_a_hog_is_stopped(mem_daemon, lang):
    case = CASES[lang]
    c = mem_daemon.client()
    ctx = c.create_context({"language": lang})
    try:
        lines = c.execute(case["ok"], context_id=ctx["id"], timeout=120)
        assert error(lines) is None, lines
        assert stdout(lines).strip() == case["out"], lines
        lines = c.execute(case["hog"], context_id=ctx["id"], timeout=120)
        err = error(lines)
        assert err is not None and err["name"] in case["names"], lines
        if err["name"] == "ERROR":
            assert "cannot allocate" in err["value"], err
        if err["name"] == "OutOfMemoryError" and not err["traceback"]:
            assert "300 MiB" in err["value"], err  # ours: the kernel died
        assert c.request("GET", "/health").status == 200
        lines = c.execute(case["after"], context_id=ctx["id"], timeout=120)
        assert error(lines) is None, lines
        assert stdout(lines).strip() == case["after_out"], lines
    finally:
        c.delete(ctx["id"])


# ------------------------------------------------------------- tasks

def sleeps(m):
    return harness.sleeps(m, zombies=True)


def test_tasks_limit_stops_a_process_flood(make_daemon):
    d = make_daemon(envd_url="http://127.0.0.1:9", name="tasks-limit daemon",
                    args=["--kernel-tasks-max", "64", "--pool", "python=0",
                          "--default-languages", "python,javascript"])
    m = str(random.randint(8_000_000, 8_999_999))
    try:
        d.wait_healthy()
        if "not enforced" in d.log_text():
            pytest.skip("no pids controller for the daemon here")
        c = d.client()
        ctx = c.create_context()
        code = ("import subprocess\nps = []\n"
                f"for i in range(500):\n    ps.append(subprocess.Popen(['sleep', '{m}']))\n")
        lines = c.execute(code, context_id=ctx["id"], timeout=120)
        err = error(lines)
        assert err is not None and err["name"] == "BlockingIOError", lines
        assert "Resource temporarily unavailable" in err["value"], err
        started = len(sleeps(m))
        assert 0 < started < 64, started
        # The daemon and the other contexts carry on.
        assert c.request("GET", "/health").status == 200
        assert main_text(c.execute("1 + 1", language="javascript")) == "2"
        assert main_text(c.execute("len(ps)", context_id=ctx["id"])) == str(started)
        assert c.delete(ctx["id"]).status == 200
        harness.wait_until(lambda: not sleeps(m), "the sleeps ended with their context", 30)
        problems = d.stop()
        assert not problems, "\n".join(problems)
    finally:
        kill_sleeps(m)
