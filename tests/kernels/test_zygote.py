"""Tests of the Python zygote (kernels/python3/e2b_ci_zygote.py), driven
directly over its channel as the daemon will drive it
(kernels/ZYGOTE-PROTOCOL.md): this process plays the daemon (a child
subreaper holding the channel's other end), asks for kernels and talks to
them over ZeroMQ.

    /usr/bin/python3 -m pytest -q tests/kernels/test_zygote.py

Needs Debian's ipykernel, numpy, pandas and matplotlib; runs as root for
the user-switching test (skipped otherwise).
"""

import ast
import errno
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from zygote_client import (ARGV, Zygote, become_subreaper, env_without,
                           fd_targets, kernel_env, kernels, private_kib, ready,
                           spawn, stat_fields, wait_gone)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_CELL = ('import pandas as pd, matplotlib.pyplot as plt; '
             'pd.DataFrame({"a":[1,2]}).plot(); plt.show()')


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    """One zygote with the default preload, started with ZYG_ONLY=1 in its
    environment (kernels asked with another environment must not see
    it)."""
    cwd = tmp_path_factory.mktemp("zcwd")
    z = Zygote(env=kernel_env({"ZYG_ONLY": "1"}), cwd=str(cwd))
    yield z
    z.close()


def lit(k, code):
    """The value of code's result in kernel k (a Python literal)."""
    return ast.literal_eval(k.value(code))


def read_to_eof(fd, timeout=30):
    """What a non-blocking pipe delivers up to EOF (every writer gone)."""
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            assert time.monotonic() < deadline, f"fd {fd} never reached EOF"
            select.select([fd], [], [], 0.5)
            continue
        if not chunk:
            return out.decode(errors="replace")
        out += chunk


def module(tmp_path, name, text):
    (tmp_path / f"{name}.py").write_text(text)


# ---- the zygote itself ----

def test_ready_one_thread_no_sockets(zygote):
    r = zygote.ready
    assert r["type"] == "ready" and r["pid"] == zygote.pid
    assert r["preloaded"] == ["numpy", "pandas", "matplotlib"]
    assert r["skipped"] == [] and r["threads"] == 1
    assert os.listdir(f"/proc/{zygote.pid}/task") == [str(zygote.pid)]
    fds = fd_targets(zygote.pid)
    # The channel is its one socket; no eventfd/epoll of a ZeroMQ context.
    assert [t for t in fds.values() if t.startswith("socket:")] == [
        fds[3]], fds
    assert not [t for t in fds.values() if t.startswith("anon_inode:")], fds


def test_kernel_is_our_child_in_its_own_session(zygote, kernels):
    k = ready(zygote, kernels)
    f = stat_fields(k.pid)
    ppid, pgrp, sid = int(f[1]), int(f[2]), int(f[3])
    assert ppid == os.getpid()  # re-parented to the subreaper
    assert pgrp == k.pid and sid == k.pid  # setsid
    assert k.value("1+1") == "2"
    libc_pdeathsig = ("import ctypes as c; s = c.c_int(); "
                      "c.CDLL(None).prctl(2, c.byref(s)); s.value")
    assert k.value(libc_pdeathsig) == str(signal.SIGKILL)
    assert k.value("import ctypes as c; c.CDLL(None).prctl(3, 0, 0, 0, 0)") \
        == "1"  # dumpable again, as after an exec
    with open(f"/proc/{k.pid}/oom_score_adj") as fh:
        assert fh.read().strip() == "800"
    assert os.readlink(f"/proc/{k.pid}/fd/0") == "/dev/null"
    # The zygote still has one thread and the same fds after forking.
    assert len(os.listdir(f"/proc/{zygote.pid}/task")) == 1


def test_kernel_looks_exec_d(zygote, kernels, tmp_path):
    k = ready(zygote, kernels, cwd=str(tmp_path))
    argv = [a.replace("{connection_file}", k.conn_file) for a in ARGV]
    with open(f"/proc/{k.pid}/cmdline", "rb") as f:
        cmdline = f.read()
    words = cmdline.replace(b"\0", b" ").split()
    assert words == [os.fsencode(a) for a in argv], cmdline
    got = json.loads(ast.literal_eval(k.value(
        "import json, sys, os; json.dumps([sys.argv, sys.orig_argv, "
        "sys.path[0], os.getcwd(), '' in sys.path])")))
    assert got[0][1:] == argv[3:]
    assert got[0][0].endswith("ipykernel_launcher.py")
    assert got[1] == argv
    assert got[2] == str(tmp_path) and got[3] == str(tmp_path)
    assert got[4]  # IPython put '' in sys.path, as in any kernel


def test_data_cell_has_png_and_chart(zygote, kernels):
    k = ready(zygote, kernels)
    _, outputs = k.execute(DATA_CELL)
    bundles = [c["data"] for t, c in outputs if t == "display_data"]
    assert len(bundles) == 1, outputs
    assert {"image/png", "e2b/chart"} <= set(bundles[0])
    assert bundles[0]["e2b/chart"]["type"] == "line"
    # No plt.show(): the inline backend still shows the figure when the
    # cell ends (its IPython hooks are set up in the kernel, not the
    # zygote).
    _, outputs = k.execute("plt.plot([1, 2, 3])")
    assert [t for t, c in outputs if t == "display_data"
            and "image/png" in c["data"]], outputs
    # Later figures too, and a DataFrame result has e2b/data.
    _, outputs = k.execute("pd.DataFrame({'x': [1, 2]})")
    data = [c["data"] for t, c in outputs if t == "execute_result"]
    assert data and data[0]["e2b/data"] == {"x": [1, 2]}, outputs


def test_no_state_shared_between_kernels(zygote, kernels, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = env_without(zygote.env, "ZYG_ONLY")
    a = ready(zygote, kernels, cwd=str(tmp_path / "a"),
              env=dict(env, CTX="a"))
    b = ready(zygote, kernels, cwd=str(tmp_path / "b"),
              env=dict(env, CTX="b"))
    # Variables, modules, matplotlib settings and figures.
    assert a.value("import sys; 'sched' in sys.modules") == "False"
    a.execute("x_zz = 42; import sched; import matplotlib.pyplot as plt; "
              "plt.rcParams['lines.linewidth'] = 7; f = plt.figure(77)")
    assert a.value("x_zz") == "42"
    assert b.value("'x_zz' in globals()") == "False"
    assert b.value("import sys; 'sched' in sys.modules") == "False"
    assert lit(b, "import matplotlib.pyplot as plt; "
               "(plt.rcParams['lines.linewidth'], plt.get_fignums())") \
        == (1.5, [])
    # cwd and environment (Python's and the C library's view).
    probe = ("import os, ctypes; g = ctypes.CDLL(None).getenv; "
             "g.restype = ctypes.c_char_p; "
             "(os.getcwd(), os.environ.get('CTX'), g(b'CTX'), "
             "'ZYG_ONLY' in os.environ, g(b'ZYG_ONLY'))")
    assert lit(a, probe) == (str(tmp_path / "a"), "a", b"a", False, None)
    assert lit(b, probe) == (str(tmp_path / "b"), "b", b"b", False, None)
    a.execute("os.chdir('/')")
    assert b.value("os.getcwd()") == repr(str(tmp_path / "b"))
    # Random streams: Python's, numpy's global state, numpy's generators,
    # uuid4.
    draw = ("import random, numpy, uuid; (random.random(), "
            "float(numpy.random.rand()), "
            "float(numpy.random.default_rng().random()), str(uuid.uuid4()))")
    va, vb = lit(a, draw), lit(b, draw)
    for x, y in zip(va, vb):
        assert x != y, (va, vb)
    c = ready(zygote, kernels, env=env)
    vc = lit(c, draw)
    for x, y in zip(va, vc):
        assert x != y, (va, vc)


def test_environment_replaced_tz_tmpdir(zygote, kernels, tmp_path):
    env = dict(env_without(zygote.env, "ZYG_ONLY"), TZ="Asia/Tokyo",
               TMPDIR=str(tmp_path))
    k = ready(zygote, kernels, env=env)
    assert k.value("import time; time.strftime('%Z')") == "'JST'"
    assert k.value("import tempfile; tempfile.gettempdir()") == \
        repr(str(tmp_path))
    assert k.value("import subprocess; subprocess.run(['sh', '-c', "
                   "'echo ${ZYG_ONLY-unset}'], capture_output=True, "
                   "text=True).stdout.strip()") == "'unset'"


def test_interrupt_reaches_the_kernel(zygote, kernels):
    k = ready(zygote, kernels)
    mid = k.submit("import time; print('sleeping', flush=True); "
                   "time.sleep(60)")

    def on_iopub(msg_type, content):
        if msg_type == "stream" and "sleeping" in content["text"]:
            os.killpg(k.pid, signal.SIGINT)

    reply, outputs = k.collect(mid, timeout=30, on_iopub=on_iopub)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert k.value("1+1") == "2"


def test_kernel_death_and_process_group(zygote, kernels):
    k = ready(zygote, kernels)
    child = int(k.value("import subprocess; p = subprocess.Popen("
                        "['sleep', '300']); p.pid"))
    assert int(stat_fields(child)[2]) == k.pid  # in the kernel's group
    os.killpg(k.pid, signal.SIGKILL)
    status = wait_gone(k.pid)
    k.pid = None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    wait_gone(child)  # orphaned to this subreaper, killed with the group
    # Its stdout pipe reaches EOF: nobody else (zygote, other kernels)
    # holds the write end.
    read_to_eof(k.out_fd)


def test_fds_not_leaked(zygote, kernels):
    before = fd_targets(zygote.pid)
    a = ready(zygote, kernels)
    b = ready(zygote, kernels)
    assert fd_targets(zygote.pid) == before
    a_out = os.readlink(f"/proc/self/fd/{a.out_fd}")
    a_err = os.readlink(f"/proc/self/fd/{a.err_fd}")
    b_fds = fd_targets(b.pid)
    assert a_out not in b_fds.values() and a_err not in b_fds.values()
    assert before[3] not in b_fds.values()  # the zygote's channel
    # The pipe ends the kernel was sent are not kept besides fd 1 and 2
    # (or the copy ipykernel keeps when it captures fd 1 and 2): one fd
    # each.
    for fd in (b.out_fd, b.err_fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        assert list(b_fds.values()).count(target) == 1, (target, b_fds)
    # a's end takes its ZeroMQ context's threads with it; b's parent-death
    # signal is tied to this process's main thread, not to those.
    a.kill()
    assert b.value("1+1") == "2"


def test_stderr_and_exit_status_of_a_failing_kernel(zygote, kernels):
    argv = ARGV + ["--no-such-flag"]
    k = spawn(zygote, kernels, argv=argv)
    assert k.reply["type"] == "spawned"
    status = wait_gone(k.pid)
    k.pid = None
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0
    assert "no-such-flag" in read_to_eof(k.err_fd) + read_to_eof(k.out_fd)


def test_private_memory_small(zygote, kernels):
    k = ready(zygote, kernels)
    k.value("import pandas, matplotlib.pyplot; 1")
    private, pss, rss = private_kib(k.pid)
    # A fresh kernel exec'd the usual way has ~100 MiB private with the
    # data stack; bounds only prove the sharing works.
    assert private < 60 * 1024, (private, pss, rss)


# ---- refusals and set-up failures (the daemon then execs the kernel) ----

def test_bad_requests_get_errors_and_fds_closed(zygote):
    before = fd_targets(zygote.pid)
    r = zygote.request({"type": "spawn"})
    assert r["type"] == "error" and r["step"] == "request", r
    zygote.chan.send(b"not json")
    r = zygote.recv()
    assert r["type"] == "error" and r["step"] == "request", r
    r = zygote.request({"type": "dance", "id": "x"})
    assert r["type"] == "error" and r["id"] == "x", r
    out_r, out_w = os.pipe()
    doc = {"type": "spawn", "id": "y", "argv": ARGV, "cwd": "/tmp",
           "env": ["A=b"], "fds": ["stdout"]}
    r = zygote.request(doc, [out_w])
    assert r["step"] == "request" and "stderr" in r["reason"], r
    doc = dict(doc, fds=["stdout", "stderr"], cwd="tmp")
    r = zygote.request(doc, [out_w, out_w])
    assert r["step"] == "request" and "cwd" in r["reason"], r
    doc = dict(doc, cwd="/tmp", argv=["/bin/sh", "-c", "true"])
    r = zygote.request(doc, [out_w, out_w])
    assert r["step"] == "argv", r
    os.close(out_w)
    # Every fd sent was closed by the zygote: the pipe is at EOF.
    assert os.read(out_r, 1) == b""
    os.close(out_r)
    assert fd_targets(zygote.pid) == before
    assert zygote.proc.poll() is None


def test_startup_variables_must_match(zygote, kernels):
    for name, value in (("PYTHONHASHSEED", "0"), ("HOME", "/nonexistent"),
                        ("LC_ALL", "C"), ("MPLBACKEND", "agg")):
        k = spawn(zygote, kernels, cwd=zygote.cwd,
                  env=dict(zygote.env, **{name: value}))
        assert k.reply["type"] == "error", k.reply
        assert k.reply["step"] == "environment" and name in k.reply["reason"]
        assert k.reply["pid"] is None
    ready(zygote, kernels)  # still serving


def test_shadowing_cwd_refused(zygote, kernels, tmp_path):
    (tmp_path / "pandas.py").write_text("raise SystemExit('shadow')\n")
    k = spawn(zygote, kernels, cwd=str(tmp_path))
    assert k.reply["type"] == "error" and k.reply["step"] == "shadowed"
    assert "pandas.py" in k.reply["reason"]
    (tmp_path / "pandas.py").unlink()
    (tmp_path / "pandas").mkdir()  # a namespace portion never wins
    (tmp_path / "matplotlibrc").write_text("lines.linewidth: 3\n")
    k = spawn(zygote, kernels, cwd=str(tmp_path))
    assert k.reply["step"] == "shadowed" and "matplotlibrc" in k.reply["reason"]
    (tmp_path / "matplotlibrc").unlink()
    ready(zygote, kernels, cwd=str(tmp_path))


def test_stale_installation_refused(tmp_path, kernels):
    """A package upgraded in place, a module that would now be found
    earlier on sys.path, a site directory that appeared (pip install
    --user): an exec'd kernel would import something else than what the
    zygote preloaded, so it refuses (step "stale": restart it)."""
    home, pp = tmp_path / "home", tmp_path / "pp"
    home.mkdir()
    pp.mkdir()
    module(pp, "zzmod", "X = 1\n")
    env = kernel_env({"HOME": str(home), "PYTHONPATH": str(pp)})
    z = Zygote(preload=["zzmod"], env=env, cwd=str(tmp_path))
    try:
        assert z.ready["preloaded"] == ["zzmod"]
        k = ready(z, kernels)
        assert k.value("import zzmod; zzmod.X") == "1"
        st = os.stat(pp / "zzmod.py")
        os.utime(pp / "zzmod.py", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        k = spawn(z, kernels)
        assert k.reply["step"] == "stale" and "zzmod.py" in k.reply["reason"]
        os.utime(pp / "zzmod.py", ns=(st.st_atime_ns, st.st_mtime_ns))
        ready(z, kernels)
        module(pp, "json", "raise SystemExit('shadow')\n")
        k = spawn(z, kernels)
        assert k.reply["step"] == "stale" and "json.py" in k.reply["reason"]
        (pp / "json.py").unlink()
        ready(z, kernels)
        user_site = subprocess.run(
            [sys.executable, "-c", "import site; print(site.USER_SITE)"],
            env=env, capture_output=True, text=True).stdout.strip()
        assert user_site.startswith(str(home))
        os.makedirs(user_site)
        k = spawn(z, kernels)
        assert k.reply["step"] == "stale" and "site" in k.reply["reason"]
    finally:
        z.close()


def test_setup_failures_reported_with_step_and_errno(zygote, kernels):
    k = spawn(zygote, kernels, cwd="/nonexistent/dir")
    assert k.reply["type"] == "error" and k.reply["step"] == "chdir"
    assert k.reply["errno"] == errno.ENOENT and k.reply["pid"]
    status = wait_gone(k.pid)  # our child: we reap it, as the daemon will
    k.pid = None
    assert os.WEXITSTATUS(status) == 127
    k = spawn(zygote, kernels, rlimits={"nofile": [100, 50]})
    assert k.reply["step"] == "rlimit nofile"
    assert k.reply["errno"] == errno.EINVAL
    wait_gone(k.pid)
    k.pid = None
    ro = os.open("/dev/null", os.O_RDONLY)
    try:
        k = spawn(zygote, kernels, cgroup_fd=ro)
    finally:
        os.close(ro)
    assert k.reply["step"] == "cgroup" and k.reply["errno"] == errno.EBADF
    wait_gone(k.pid)
    k.pid = None
    k = spawn(zygote, kernels, oom_score_adj=5000)
    assert k.reply["step"] == "request"


def test_rlimits_and_memory_error(zygote, kernels):
    probe = ready(zygote, kernels)
    with open(f"/proc/{probe.pid}/status") as f:
        vm = [int(line.split()[1]) for line in f if line.startswith("VmPeak")]
    limit = vm[0] * 1024 + (400 << 20)
    k = ready(zygote, kernels, cwd=zygote.cwd,
              rlimits={"as": [limit, limit], "nofile": [512, 1024]})
    assert lit(k, "import resource; resource.getrlimit("
               "resource.RLIMIT_NOFILE)") == (512, 1024)
    reply, outputs = k.execute("b = bytearray(1 << 30)")
    assert reply["status"] == "error" and reply["ename"] == "MemoryError"
    assert k.value("1+1") == "2"


@pytest.fixture
def user_dir():
    """A dir owned by uid 65534 that it can reach (pytest's tmp dirs are
    private to root; the daemon's per-kernel dir lies in its runtime dir)."""
    d = tempfile.mkdtemp(prefix="zygu", dir="/tmp")
    os.chmod(d, 0o755)
    os.chown(d, 65534, 65534)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_user_switch(user_dir, zygote, kernels):
    k = ready(zygote, kernels, cwd=user_dir, runtime_dir=user_dir,
              user={"uid": 65534, "gid": 65534, "groups": [65534]})
    assert lit(k, "import os; (os.getuid(), os.getgid(), os.getgroups())") \
        == (65534, 65534, [65534])
    # Set after the uid change (which clears it).
    assert k.value("import ctypes as c; s = c.c_int(); "
                   "c.CDLL(None).prctl(2, c.byref(s)); s.value") == "9"


# ---- preload, threads, lifetime ----

def test_preload_failures_skipped(tmp_path, kernels):
    module(tmp_path, "broken_zz", "raise RuntimeError('boom')\n")
    module(tmp_path, "exit_zz", "raise SystemExit(3)\n")
    env = kernel_env({"PYTHONPATH": str(tmp_path)})
    z = Zygote(preload=["nosuch_zz", "broken_zz", "exit_zz", "json"],
               env=env, cwd=str(tmp_path))
    try:
        assert z.ready["preloaded"] == ["json"]
        skipped = {s["module"]: s["error"] for s in z.ready["skipped"]}
        assert set(skipped) == {"nosuch_zz", "broken_zz", "exit_zz"}
        assert "ModuleNotFoundError" in skipped["nosuch_zz"]
        assert "boom" in skipped["broken_zz"]
        err = z.stderr()
        for name in skipped:
            assert f"warning: preload {name}" in err, err
        k = ready(z, kernels)
        assert k.value("1+1") == "2"
        assert k.value("import sys; 'pandas' in sys.modules") == "False"
    finally:
        z.close()


def test_empty_preload(kernels, tmp_path):
    z = Zygote(preload=[], cwd=str(tmp_path))
    try:
        assert z.ready["preloaded"] == [] and z.ready["skipped"] == []
        k = ready(z, kernels)
        assert lit(k, "import sys; ('pandas' in sys.modules, "
                   "'matplotlib' in sys.modules)") == (False, False)
        _, outputs = k.execute(DATA_CELL)
        assert [c for t, c in outputs if t == "display_data"
                and "e2b/chart" in c["data"]], outputs
    finally:
        z.close()


def test_thread_in_zygote_refuses_fork(tmp_path, kernels):
    module(tmp_path, "pool_zz",
           "import threading, time\n"
           "threading.Thread(target=time.sleep, args=(3600,), daemon=True)"
           ".start()\n")
    env = kernel_env({"PYTHONPATH": str(tmp_path)})
    z = Zygote(preload=["pool_zz"], env=env, cwd=str(tmp_path))
    try:
        assert z.ready["threads"] == 2
        assert "2 threads" in z.stderr()
        k = spawn(z, kernels)
        assert k.reply["type"] == "error" and k.reply["step"] == "threads"
        assert "2 threads" in k.reply["reason"] and k.reply["pid"] is None
        assert z.proc.poll() is None
    finally:
        z.close()


def test_zygote_exit_leaves_kernels_running(kernels, tmp_path):
    z = Zygote(preload=[], cwd=str(tmp_path))
    k = ready(z, kernels)
    assert z.close() == 0  # channel closed: the zygote exits by itself
    assert k.value("1+1") == "2"
    assert int(stat_fields(k.pid)[1]) == os.getpid()


def test_daemon_death_kills_zygote_and_kernels(tmp_path):
    """A stand-in daemon (a subreaper with a zygote and a kernel) is
    SIGKILLed: the zygote and the kernel die of their parent-death
    signal (this process, a subreaper too, reaps them)."""
    become_subreaper()
    script = (
        "import json, sys, time\n"
        f"sys.path.insert(0, {HERE!r})\n"
        "from zygote_client import Zygote\n"
        f"z = Zygote(preload=[], cwd={str(tmp_path)!r})\n"
        "k = z.spawn()\n"
        "k.wait_ready()\n"
        "print(json.dumps([z.pid, k.pid]), flush=True)\n"
        "time.sleep(600)\n")
    daemon = subprocess.Popen([sys.executable, "-c", script],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert select.select([daemon.stdout], [], [], 120)[0]
        zpid, kpid = json.loads(daemon.stdout.readline())
    finally:
        daemon.kill()
        daemon.wait()
    for pid in (zpid, kpid):
        status = wait_gone(pid)
        assert status is None or (os.WIFSIGNALED(status) and
                                  os.WTERMSIG(status) == signal.SIGKILL)
        assert not os.path.exists(f"/proc/{pid}")


def test_no_subreaper_no_kernel(tmp_path):
    """Without a subreaper the kernel would end up init's child, beyond
    the daemon's reach: the zygote reports it instead of a pid."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {HERE!r})\n"
        "import zygote_client\n"
        "zygote_client.become_subreaper = lambda: None\n"
        f"z = zygote_client.Zygote(preload=[], cwd={str(tmp_path)!r})\n"
        "k = z.spawn()\n"
        "print(json.dumps(k.reply), flush=True)\n"
        "z.close()\n")
    out = subprocess.run([sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=120)
    reply = json.loads(out.stdout.splitlines()[-1])
    assert reply["type"] == "error" and reply["step"] == "parent", reply
    assert "subreaper" in reply["reason"]
    if reply["pid"]:  # orphaned to this process if it is a subreaper
        try:
            os.waitpid(reply["pid"], 0)
        except ChildProcessError:
            pass
