"""The daemon's side of the R zygote (issue 13; kernels/ir/e2b_ci_zygote.R,
kernels/ZYGOTE-PROTOCOL.md, "The R zygote").

R is no default language, so the R zygote starts with the first R kernel
the daemon is asked for (that one is exec'd); once it is ready, R kernels
are forks of it: the daemon's children all the same, each with its own
state, random numbers and tempdir. What must hold:

- R kernels are forks once the R zygote is ready (/metrics counts them);
  nothing leaks between two of them;
- interrupting a forked R kernel keeps its state;
- an R zygote killed with SIGKILL: R contexts are still created
  (exec'd), and a new zygote comes back and forks again.

Each test runs its own daemon with --pool python=0 (no spare takes the
Python zygote's forks meanwhile). Waits are for events seen from the
outside (/metrics, /proc), with deadlines.
"""

import os
import signal

from harness import error, parse_metrics, stdout, wait_until

PPID = "cat(strsplit(readLines('/proc/self/stat'), ' ')[[1]][4])"


def metrics(d):
    return parse_metrics(d.client().request("GET", "/metrics").text)


def r_zygote(d):
    with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
        kids = [int(p) for p in f.read().split()]
    found = []
    for p in kids:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"e2b_ci_zygote.R" in f.read():
                    found.append(p)
        except OSError:
            pass
    assert len(found) == 1, found
    return found[0]


def new_r_context(d):
    """A new R context, and whether its kernel was forked (by /metrics)."""
    before = metrics(d)["e2bci_kernels_forked_total"]
    ctx = d.client().create_context({"language": "r"}, timeout=120)
    return ctx["id"], metrics(d)["e2bci_kernels_forked_total"] == before + 1


def shown(lines):
    """The text of the value a cell shows (IRkernel shows it as
    display_data, not as the main result)."""
    texts = [l["text"] for l in lines if l["type"] == "result"]
    assert len(texts) == 1, lines
    return texts[0]


def run(d, ctx, code):
    lines = d.client().execute(code, context_id=ctx, timeout=120)
    assert error(lines) is None, lines
    return lines


def started(make_daemon, *args):
    d = make_daemon(args=["--pool", "python=0", *args]).wait_healthy()
    d.wait_zygote_settled(zygotes=1)  # the Python zygote
    return d


def test_r_kernels_are_forks_once_the_r_zygote_is_ready(make_daemon):
    d = started(make_daemon)
    first, forked = new_r_context(d)
    assert not forked  # the R zygote started with it
    assert shown(run(d, first, "1+1")) == "[1] 2"
    d.wait_zygote_settled(zygotes=2)
    a, forked_a = new_r_context(d)
    b, forked_b = new_r_context(d)
    assert forked_a and forked_b
    # The daemon's children, each with its own state, draws and tempdir.
    for ctx in (a, b):
        assert stdout(run(d, ctx, PPID)) == str(d.proc.pid)
    run(d, a, "leaked <- 42")
    assert shown(run(d, b, "exists('leaked')")) == "[1] FALSE"
    draw = "cat(runif(1), tempdir(), dir.exists(tempdir()))"
    da, db = stdout(run(d, a, draw)).split(), stdout(run(d, b, draw)).split()
    assert da[0] != db[0] and da[1] != db[1], (da, db)
    assert da[2] == db[2] == "TRUE"
    # A kernel's exit removes its own tempdir, never its sibling's.
    d.client().request("DELETE", f"/contexts/{a}")
    wait_until(lambda: not os.path.isdir(da[1]), "a's tempdir removed",
               timeout=60)
    assert stdout(run(d, b, "cat(dir.exists(tempdir()))")) == "TRUE"


def test_interrupt_of_a_forked_r_kernel_keeps_state(make_daemon):
    d = started(make_daemon, "--interrupt-timeout-ms", "5000")
    new_r_context(d)
    d.wait_zygote_settled(zygotes=2)
    ctx, forked = new_r_context(d)
    assert forked
    run(d, ctx, "kept <- 'state'")
    # Once the cell runs: IRkernel itself ends on a SIGINT that comes
    # between its "busy" and its evaluation (README, "R kernels").
    s = d.client().stream("cat('running\\n'); Sys.sleep(60)", context_id=ctx)
    s.read_until(lambda l: l["type"] == "stdout" and "running" in l["text"],
                 timeout=60)
    s.close()  # the client went away: the daemon interrupts the cell
    assert shown(run(d, ctx, "1+1")) == "[1] 2"
    assert shown(run(d, ctx, "kept")) == '[1] "state"'
    assert metrics(d)["e2bci_kernel_restarts_total"] == 0


def test_killed_r_zygote_falls_back_to_exec_and_comes_back(make_daemon):
    d = started(make_daemon)
    new_r_context(d)
    d.wait_zygote_settled(zygotes=2)
    old = r_zygote(d)
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: metrics(d)["e2bci_zygotes_ready"] == 1,
               "the daemon saw the R zygote die", timeout=60)
    ctx, forked = new_r_context(d)
    assert not forked
    assert shown(run(d, ctx, "1+1")) == "[1] 2"
    d.wait_zygote_settled(zygotes=2)
    assert r_zygote(d) != old
    ctx, forked = new_r_context(d)
    assert forked
    assert shown(run(d, ctx, "1+1")) == "[1] 2"
