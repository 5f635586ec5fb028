"""The daemon's side of the Python zygote (issue 13, kernels/ZYGOTE-PROTOCOL.md).

With --zygote on (the default) the daemon starts one e2b_ci_zygote.py for
the Python kernelspec and, once it is ready, asks it for every new Python
kernel; a kernel that is a fork has the preload (numpy, pandas, ...) in
sys.modules before any cell imported it, and is the daemon's child all the
same (the daemon is a child subreaper). What must hold:

- kernels are forks when on, exec'd when off; /metrics counts both;
- a zygote killed with SIGKILL: contexts are still created (exec'd), and
  a new zygote comes back and forks again;
- a preload module that does not exist: a warning, the rest is served;
- no state leaks between two contexts forked from one zygote (globals,
  numpy's random state);
- interrupting a forked kernel keeps its state; a memory hog in a forked
  kernel ends as in an exec'd one; --kernel-user works;
- the zygote has one thread; orphans that come to the daemon as the
  subreaper are reaped;
- a spawn is asynchronous: while the zygote keeps one waiting, the daemon
  answers other requests, and a daemon stopped meanwhile exits cleanly.

Each test runs its own daemon with --pool python=0, so every context
created once the zygote is ready starts a kernel through it. Waits are for
events seen from the outside (/metrics, /proc), with deadlines.
"""

import os
import pwd
import signal
import threading

import pytest

from harness import error, main_text, parse_metrics, stdout, wait_until

FORKED = "import sys, os; print('pandas' in sys.modules, os.getppid())"


def metric(d, name):
    m = parse_metrics(d.client().request("GET", "/metrics").text)
    assert name in m, f"{name} not in /metrics"
    return int(m[name])


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def zygotes(d):
    return [p for p in children(d.proc.pid) if "e2b_ci_zygote.py" in cmdline(p)]


def the_zygote(d):
    z = zygotes(d)
    assert len(z) == 1, [cmdline(p) for p in children(d.proc.pid)]
    return z[0]


def forked_in(c, ctx_id):
    """(whether the context's kernel had pandas before any import, its
    parent pid)."""
    lines = c.execute(FORKED, context_id=ctx_id, timeout=120)
    assert error(lines) is None, lines
    had, ppid = stdout(lines).split()
    return had == "True", int(ppid)


def started(make_daemon, *args, **kw):
    return make_daemon(args=["--pool", "python=0", *args], **kw).wait_healthy()


def test_kernels_are_forked_when_on(make_daemon):
    d = started(make_daemon)
    d.wait_zygote_settled()
    c = d.client()
    before = metric(d, "e2bci_kernels_forked_total")
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"]) == (True, d.proc.pid)
    assert metric(d, "e2bci_kernels_forked_total") == before + 1
    # The daemon's own first kernel (the default context) started while
    # the zygote was loading: exec'd.
    assert metric(d, "e2bci_kernels_execd_total") >= 1
    assert main_text(c.execute("1+1", context_id=ctx["id"])) == "2"
    # A fork's namespace is a fresh kernel's (plus what FORKED imported).
    lines = c.execute("print(sorted(n for n in dir() if not n.startswith('_')))",
                      context_id=ctx["id"])
    assert stdout(lines) == "['In', 'Out', 'exit', 'get_ipython', 'os', 'quit', 'sys']\n"
    # A zygote never holds a thread when it forks.
    z = the_zygote(d)
    assert os.listdir(f"/proc/{z}/task") == [str(z)]


def test_default_context_gets_a_fork_once_the_zygote_is_ready(make_daemon):
    # The default Python context is made at start-up, while the zygote is
    # still loading, so its first kernel is exec'd; once the zygote is
    # ready, that kernel (unused) gives way to a fork, unseen by clients:
    # the context that most code runs in gets the fast, small kernel.
    d = started(make_daemon)
    c = d.client()
    before = sorted(x["id"] for x in c.contexts())
    d.wait_zygote_settled()
    wait_until(lambda: metric(d, "e2bci_kernels_forked_total") >= 1,
               "the default context's kernel is forked", timeout=120)
    assert forked_in(c, None) == (True, d.proc.pid)
    # Nothing else changed: the same contexts as before.
    assert sorted(x["id"] for x in c.contexts()) == before


def test_a_used_kernel_is_never_replaced(make_daemon, tmp_path):
    # Code that ran before the zygote was ready keeps its kernel (and its
    # state): only unused kernels are swapped. A preload that waits for a
    # gate file holds the zygote back until a cell has run.
    gate = tmp_path / "gate"
    lib = preload_dir(tmp_path, "zz_e2bci_gate",
                      "import os, time\n"
                      "t = time.monotonic()\n"
                      f"while not os.path.exists({str(gate)!r}) and "
                      "time.monotonic() - t < 300:\n"
                      "    time.sleep(0.05)\n")
    d = started(make_daemon, "--python-preload", "numpy,zz_e2bci_gate",
                env={"PYTHONPATH": str(lib)})
    c = d.client()
    assert metric(d, "e2bci_zygotes_ready") == 0
    assert stdout(c.execute("x = 41; print('set')", timeout=120)) == "set\n"
    gate.touch()
    d.wait_zygote_settled()
    assert main_text(c.execute("x + 1")) == "42"
    assert forked_in(c, None) == (False, d.proc.pid)
    # A context made now is a fork.
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"]) == (False, d.proc.pid)
    assert main_text(c.execute("import sys; 'numpy' in sys.modules",
                               context_id=ctx["id"])) == "True"


def test_zygote_off_execs(make_daemon):
    d = started(make_daemon, "--zygote", "off")
    c = d.client()
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"]) == (False, d.proc.pid)
    assert metric(d, "e2bci_kernels_forked_total") == 0
    assert metric(d, "e2bci_zygotes_ready") == 0
    assert zygotes(d) == []


def test_killed_zygote_falls_back_and_comes_back(make_daemon):
    d = started(make_daemon)
    d.wait_zygote_settled()
    c = d.client()
    old = the_zygote(d)
    os.kill(old, signal.SIGKILL)
    # Contexts keep coming meanwhile: exec'd, or forked by the new zygote
    # should it already be back.
    for _ in range(2):
        ctx = c.create_context({"language": "python"})
        assert main_text(c.execute("1+1", context_id=ctx["id"])) == "2"
    wait_until(lambda: "zygote exited" in d.log_text(),
               "the zygote's death is logged")
    wait_until(lambda: zygotes(d) and zygotes(d)[0] != old
               and metric(d, "e2bci_zygotes_ready") == 1,
               "a new zygote is ready", timeout=120)
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"]) == (True, d.proc.pid)


def test_missing_preload_module_warns_and_serves(make_daemon):
    d = started(make_daemon, "--python-preload", "json,no_such_module_e2bci")
    d.wait_zygote_settled()
    log = d.log_text()
    assert "no_such_module_e2bci" in log and "WARN" in log
    warn = [l for l in log.splitlines()
            if "no_such_module_e2bci" in l and "WARN" in l]
    assert warn, log
    c = d.client()
    ctx = c.create_context({"language": "python"})
    # json was preloaded, pandas was not: still a fork of the daemon's.
    lines = c.execute("import sys, os; print('pandas' in sys.modules, "
                      "os.getppid())", context_id=ctx["id"])
    assert stdout(lines).split() == ["False", str(d.proc.pid)]
    assert metric(d, "e2bci_kernels_forked_total") >= 1


def test_no_state_leaks_between_forked_contexts(make_daemon):
    d = started(make_daemon)
    d.wait_zygote_settled()
    c = d.client()
    a = c.create_context({"language": "python"})
    b = c.create_context({"language": "python"})
    assert forked_in(c, a["id"])[0] and forked_in(c, b["id"])[0]
    draw = "import numpy as np, random; print(np.random.random(), random.random())"
    lines = c.execute("leaked_global = 42\n" + draw, context_id=a["id"])
    in_a = stdout(lines).split()
    lines = c.execute("print('leaked_global' in globals())\n" + draw,
                      context_id=b["id"])
    out_b = stdout(lines).split()
    assert out_b[0] == "False", lines
    # Each kernel has its own random state (numpy's is reseeded at fork).
    assert in_a[0] != out_b[1] and in_a[1] != out_b[2], (in_a, out_b)
    lines = c.execute("import os; print(os.getpid())", context_id=a["id"])
    pid_a = int(stdout(lines))
    lines = c.execute("import os; print(os.getpid())", context_id=b["id"])
    assert int(stdout(lines)) != pid_a


def test_interrupt_of_a_forked_kernel_keeps_state(make_daemon):
    d = started(make_daemon, "--interrupt-timeout-ms", "5000")
    d.wait_zygote_settled()
    c = d.client()
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"])[0]
    c.execute("kept = 'state'", context_id=ctx["id"])
    s = c.stream("import time\nfor _ in range(600): time.sleep(0.1)",
                 context_id=ctx["id"])
    s.read_until(lambda l: l["type"] == "number_of_executions", timeout=30)
    s.close()
    # Interrupted (SIGINT to the kernel's group), not restarted.
    assert main_text(c.execute("1+1", context_id=ctx["id"], timeout=30)) == "2"
    assert main_text(c.execute("kept", context_id=ctx["id"])) == "state"
    assert metric(d, "e2bci_kernel_restarts_total") == 0


@pytest.mark.parametrize("zygote", ["on", "off"])
def test_memory_hog_in_a_forked_kernel_ends_as_in_an_execd_one(make_daemon,
                                                               zygote):
    d = started(make_daemon, "--zygote", zygote, "--kernel-memory-max", "600M")
    if zygote == "on":
        d.wait_zygote_settled()
    c = d.client()
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"])[0] == (zygote == "on")
    lines = c.execute("import numpy as np, pandas as pd\n"
                      "print(int(pd.DataFrame({'a': np.arange(1000)}).a.sum()))",
                      context_id=ctx["id"], timeout=120)
    assert stdout(lines).strip() == "499500", lines
    lines = c.execute("x = bytearray(2 * 1024**3)", context_id=ctx["id"],
                      timeout=120)
    err = error(lines)
    assert err is not None and err["name"] in {"MemoryError",
                                               "OutOfMemoryError"}, lines
    assert main_text(c.execute("1+1", context_id=ctx["id"], timeout=120)) == "2"


def test_kernel_user_gets_forked_kernels(make_daemon, open_dir):
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    nobody = pwd.getpwnam("nobody")
    run = open_dir.parent / "run"
    d = started(make_daemon, "--kernel-user", "nobody", "--cwd", str(open_dir),
                "--runtime-dir", str(run))
    d.wait_zygote_settled()
    assert os.stat(f"/proc/{the_zygote(d)}").st_uid == nobody.pw_uid
    c = d.client()
    ctx = c.create_context({"language": "python", "cwd": str(open_dir)})
    assert forked_in(c, ctx["id"]) == (True, d.proc.pid)
    lines = c.execute("import os; print(os.getuid(), os.getgid(), "
                      "os.environ['HOME'], os.getcwd())", context_id=ctx["id"])
    assert stdout(lines).split() == [str(nobody.pw_uid), str(nobody.pw_gid),
                                     nobody.pw_dir, str(open_dir)]
    d.stop()
    assert not run.exists() or not any(run.iterdir())


def test_orphans_are_reaped(make_daemon):
    d = started(make_daemon)
    d.wait_zygote_settled()
    c = d.client()
    ctx = c.create_context({"language": "python"})
    # A grandchild whose parent exits at once comes to the daemon (the
    # subreaper), then exits itself: it must not stay a zombie.
    lines = c.execute("import subprocess\n"
                      "subprocess.run(['sh', '-c', 'sleep 0.3 & exit 0'])\n"
                      "print('ok')", context_id=ctx["id"])
    assert stdout(lines) == "ok\n", lines

    def sleeper_gone():
        kids = children(d.proc.pid)
        return not [p for p in kids if "sleep" in cmdline(p) or state(p) == "Z"]
    wait_until(sleeper_gone, "the orphan sleep is reaped", timeout=30)


def test_stopped_zygote_times_out_and_is_replaced(make_daemon):
    d = started(make_daemon)
    d.wait_zygote_settled()
    c = d.client()
    old = the_zygote(d)
    os.kill(old, signal.SIGSTOP)
    # The spawn gets no answer within its second: the zygote is killed and
    # the kernel exec'd.
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"]) == (False, d.proc.pid)
    assert "no answer to a spawn" in d.log_text()
    wait_until(lambda: zygotes(d) and zygotes(d)[0] != old
               and metric(d, "e2bci_zygotes_ready") == 1,
               "a new zygote is ready", timeout=120)
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"]) == (True, d.proc.pid)


ASKED = " starting in "


def create_while_stopped(d):
    """SIGSTOPs the zygote and creates a Python context in a thread; returns
    (the zygote, the thread, the list its outcome goes to) once the daemon
    logged the kernel's start (as soon as it sent the spawn; a synchronous
    spawn logged it after the zygote's second was over and the kernel
    exec'd). The create cannot end before that second is over."""
    z = the_zygote(d)
    os.kill(z, signal.SIGSTOP)
    asked = d.log_text().count(ASKED)
    out = []

    def create():
        try:
            out.append(("created", d.client().create_context(
                {"language": "python"}, timeout=120)["id"]))
        except Exception as e:  # the daemon stopped meanwhile
            out.append(("failed", repr(e)))

    t = threading.Thread(target=create, daemon=True)
    t.start()
    wait_until(lambda: d.log_text().count(ASKED) > asked,
               "the daemon started a kernel", timeout=60)
    return z, t, out


def test_the_daemon_answers_while_a_spawn_waits(make_daemon):
    d = started(make_daemon)
    d.wait_zygote_settled()
    z, t, out = create_while_stopped(d)
    # The answer is awaited by the loop, not in it: /health is served while
    # the silent zygote still holds the spawn (a synchronous spawn held the
    # loop until its second was over and the zygote killed).
    r = d.client().request("GET", "/health")
    out.append(("health", r.status))
    assert state(z) == "T", "the zygote's second was over before /health"
    t.join(120)
    assert [o[0] for o in out] == ["health", "created"], out
    assert out[0] == ("health", 200)
    assert forked_in(d.client(), out[1][1]) == (False, d.proc.pid)
    assert "no answer to a spawn" in d.log_text()


def test_daemon_stops_cleanly_while_a_spawn_waits(make_daemon):
    d = started(make_daemon)
    d.wait_zygote_settled()
    _, t, out = create_while_stopped(d)
    # The stop comes before the answer: the kernel never runs (or is
    # stopped as soon as it exists), nothing is left, the exit is clean.
    assert d.stop() == []
    t.join(60)
    assert out and out[0][0] in ("created", "failed"), out


def test_context_deleted_while_its_spawn_waits(make_daemon):
    d = started(make_daemon)
    d.wait_zygote_settled()
    c = d.client()
    ctx = c.create_context({"language": "python"})["id"]
    z = the_zygote(d)
    os.kill(z, signal.SIGSTOP)
    asked = d.log_text().count(ASKED)
    out = []

    def restart():
        r = d.client().request("POST", f"/contexts/{ctx}/restart",
                               timeout=120)
        out.append(r.status)

    t = threading.Thread(target=restart, daemon=True)
    t.start()
    wait_until(lambda: d.log_text().count(ASKED) > asked,
               "the daemon asked the zygote for the new kernel", timeout=60)
    # The context goes while the zygote holds the request: the request is
    # cancelled, and what the zygote forks for it once it runs again (or
    # what its death leaves) is killed and reaped.
    r = c.request("DELETE", f"/contexts/{ctx}")
    assert r.status == 200, r
    os.kill(z, signal.SIGCONT)
    t.join(120)
    assert not t.is_alive() and len(out) == 1, out  # the restart was answered
    ctx = c.create_context({"language": "python"})["id"]
    assert main_text(c.execute("1+1", context_id=ctx)) == "2"
    assert d.stop() == []


def preload_dir(tmp_path, name, text):
    """A dir on PYTHONPATH (the daemon's, so the zygote's and its
    kernels') holding module name."""
    d = tmp_path / "pylib"
    d.mkdir(exist_ok=True)
    (d / f"{name}.py").write_text(text)
    return d


def test_stale_zygote_is_restarted(make_daemon, tmp_path):
    lib = preload_dir(tmp_path, "zz_e2bci_stale", "VERSION = 1\n")
    d = started(make_daemon, "--python-preload", "zz_e2bci_stale",
                env={"PYTHONPATH": str(lib)})
    d.wait_zygote_settled()
    c = d.client()
    old = the_zygote(d)
    ctx = c.create_context({"language": "python"})
    assert forked_in(c, ctx["id"])[0] is False  # pandas is not preloaded
    assert main_text(c.execute("import zz_e2bci_stale, sys, os\n"
                               "os.getppid() == "
                               f"{d.proc.pid} and 'zz_e2bci_stale' in "
                               "sys.modules", context_id=ctx["id"])) == "True"
    forked = metric(d, "e2bci_kernels_forked_total")
    # An upgrade in place: the zygote's copy is stale, a new one is due.
    (lib / "zz_e2bci_stale.py").write_text("VERSION = 2  # upgraded\n")
    os.utime(lib / "zz_e2bci_stale.py", (1, 1))
    ctx = c.create_context({"language": "python"})
    assert main_text(c.execute("import zz_e2bci_stale; zz_e2bci_stale.VERSION",
                               context_id=ctx["id"])) == "2"
    assert metric(d, "e2bci_kernels_forked_total") == forked
    assert "stale" in d.log_text()
    wait_until(lambda: zygotes(d) and zygotes(d)[0] != old
               and metric(d, "e2bci_zygotes_ready") == 1,
               "a new zygote is ready", timeout=120)
    ctx = c.create_context({"language": "python"})
    assert main_text(c.execute("import zz_e2bci_stale; zz_e2bci_stale.VERSION",
                               context_id=ctx["id"])) == "2"
    assert metric(d, "e2bci_kernels_forked_total") == forked + 1


def test_zygote_with_a_thread_is_retired(make_daemon, tmp_path):
    lib = preload_dir(tmp_path, "zz_e2bci_thread",
                      "import threading, time\n"
                      "threading.Thread(target=time.sleep, args=(3600,),\n"
                      "                 name='zz-sleeper', daemon=True).start()\n")
    d = started(make_daemon, "--python-preload", "zz_e2bci_thread",
                env={"PYTHONPATH": str(lib)})
    wait_until(lambda: "cannot fork" in d.log_text(),
               "the zygote is retired", timeout=120)
    # Retired after three zygotes in a row had the thread (the first two
    # might have been a thread slow to end on a busy CPU).
    assert d.log_text().count("threads after its preload: starting "
                              "another") == 2
    c = d.client()
    ctx = c.create_context({"language": "python"})
    assert main_text(c.execute("1+1", context_id=ctx["id"])) == "2"
    assert metric(d, "e2bci_kernels_forked_total") == 0
    assert metric(d, "e2bci_zygotes_ready") == 0
    assert zygotes(d) == []
