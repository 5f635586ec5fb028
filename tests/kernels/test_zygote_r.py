"""Tests of the R zygote (kernels/ir/e2b_ci_zygote.R and its C half
kernels/ir/zyg/rzyg.c, built by `make` into build/ir/rzyg.so), driven over
its channel as the daemon drives the Python one (kernels/ZYGOTE-PROTOCOL.md):
this process plays the daemon (a child subreaper holding the channel's other
end), asks for kernels and talks to them over ZeroMQ.

    unshare -n /usr/bin/python3 -m pytest -q tests/kernels/test_zygote_r.py

Needs R and Debian's IRkernel (r-cran-irkernel); test packages are
installed with `R CMD INSTALL` into temporary libraries (pure R, no
compiler needed, but gcc builds the thread-starting library of one).
"""

import errno
import os
import shutil
import signal
import subprocess
import time

import pytest

from zygote_client import (ROOT, Kernel, Zygote, env_without, fd_targets,
                            kernel_env, kernels, ready, spawn, stat_fields,
                            wait_gone)

SCRIPT = os.path.join(ROOT, "kernels", "ir", "e2b_ci_zygote.R")
LIB = os.path.join(ROOT, "build", "ir", "rzyg.so")
COMMAND = ["R", "--slave", "--no-restore", "-f", SCRIPT, "--args"]
R_ARGV = ["R", "--slave", "-e", "IRkernel::main()", "--args",
          "{connection_file}"]

pytestmark = pytest.mark.skipif(
    not shutil.which("R") or not os.path.exists(LIB),
    reason="needs R and build/ir/rzyg.so (make)")


def r_zygote(preload=None, env=None, cwd=None, extra=()):
    return Zygote(preload=preload, config=None, env=env, cwd=cwd,
                  command=COMMAND, argv=R_ARGV,
                  extra_args=["--lib", LIB, *extra])


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    """One zygote, started with ZYG_ONLY=1 in its environment (kernels
    asked with another environment must not see it)."""
    cwd = tmp_path_factory.mktemp("rzcwd")
    z = r_zygote(env=kernel_env({"ZYG_ONLY": "1"}), cwd=str(cwd))
    yield z
    z.close()


def out(k, code):
    """What code prints on stdout in kernel k (it must succeed)."""
    reply, outputs = k.execute(code)
    assert reply["status"] == "ok", (reply, outputs)
    return "".join(c["text"] for t, c in outputs
                   if t == "stream" and c["name"] == "stdout")


def r_package(lib, name, onload="", description_extra=""):
    """Installs a pure-R package name into lib (created)."""
    src = os.path.join(os.path.dirname(lib), f"src-{name}")
    os.makedirs(os.path.join(src, "R"), exist_ok=True)
    os.makedirs(lib, exist_ok=True)
    with open(os.path.join(src, "DESCRIPTION"), "w") as f:
        f.write(f"Package: {name}\nVersion: 0.1\nTitle: t\n"
                "Description: A test package.\nLicense: MIT\n"
                "Author: t\nMaintainer: t <t@t>\n" + description_extra)
    with open(os.path.join(src, "NAMESPACE"), "w") as f:
        f.write("export(zz_value)\n")
    with open(os.path.join(src, "R", "zz.R"), "w") as f:
        f.write("zz_value <- function() 42\n")
        if onload:
            f.write(f".onLoad <- function(libname, pkgname) {{ {onload} }}\n")
    subprocess.run(["R", "CMD", "INSTALL", "--no-test-load", "-l", lib, src],
                   check=True, capture_output=True)


# ---- the zygote itself ----

def test_ready_one_thread_no_sockets(zygote):
    r = zygote.ready
    assert r["type"] == "ready" and r["pid"] == zygote.pid
    assert r["preloaded"] == [] and r["skipped"] == []
    # cli's ticker thread was stopped: one thread, honestly reported.
    assert r["threads"] == 1
    assert os.listdir(f"/proc/{zygote.pid}/task") == [str(zygote.pid)]
    fds = fd_targets(zygote.pid)
    assert [t for t in fds.values() if t.startswith("socket:")] == [fds[3]]
    assert not [t for t in fds.values() if t.startswith("anon_inode:")]
    assert os.path.isdir(r["tempdir"])


def test_kernel_is_our_child_and_looks_exec_d(zygote, kernels, tmp_path):
    k = ready(zygote, kernels, cwd=str(tmp_path))
    f = stat_fields(k.pid)
    assert int(f[1]) == os.getpid()  # re-parented to the subreaper
    assert int(f[2]) == k.pid and int(f[3]) == k.pid  # setsid
    reply, outputs = k.execute("1+1")
    assert reply["status"] == "ok"
    assert [c["data"]["text/plain"] for t, c in outputs
            if t == "display_data"] == ["[1] 2"]
    with open(f"/proc/{k.pid}/oom_score_adj") as fh:
        assert fh.read().strip() == "800"
    assert os.readlink(f"/proc/{k.pid}/fd/0") == "/dev/null"
    # What an exec'd kernel shows: commandArgs(), /proc/PID/cmdline (the
    # daemon looks for kernel-<id8>.json there), search(), getwd().
    exe = "/usr/lib/R/bin/exec/R"
    argv = [exe] + [a.replace("{connection_file}", k.conn_file)
                    for a in R_ARGV[1:]]
    assert out(k, "cat(commandArgs(), sep = '\\n')").split("\n")[:6] == argv
    with open(f"/proc/{k.pid}/cmdline", "rb") as fh:
        assert fh.read().rstrip(b"\0").split(b"\0") == \
            [os.fsencode(a) for a in argv]
    assert f"kernel-{k.id[:8]}.json" in k.conn_file
    probe = "cat(getwd(), search(), ls(all.names = TRUE), sep = '\\n')"
    got = out(k, probe)
    assert got.split("\n")[0] == str(tmp_path)
    direct = Kernel.direct(str(tmp_path), zygote.env, R_ARGV)
    kernels.append(direct)
    direct.wait_ready(timeout=120)
    assert got == out(direct, probe)
    # The zygote still has one thread and the same fds after forking.
    assert len(os.listdir(f"/proc/{zygote.pid}/task")) == 1


def test_no_state_shared_between_kernels(zygote, kernels, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = env_without(zygote.env, "ZYG_ONLY")
    a = ready(zygote, kernels, cwd=str(tmp_path / "a"),
              env=dict(env, CTX="a"))
    b = ready(zygote, kernels, cwd=str(tmp_path / "b"),
              env=dict(env, CTX="b"))
    out(a, "x_zz <- 42; library(tools); options(zz_opt = 1)")
    assert out(b, "cat(exists('x_zz'), 'package:tools' %in% search(), "
               "is.null(getOption('zz_opt')))") == "FALSE FALSE TRUE"
    probe = ("cat(getwd(), Sys.getenv('CTX'), Sys.getenv('ZYG_ONLY', 'unset'),"
             " system('echo ${CTX}-${ZYG_ONLY-unset}', intern = TRUE))")
    assert out(a, probe) == f"{tmp_path / 'a'} a unset a-unset"
    assert out(b, probe) == f"{tmp_path / 'b'} b unset b-unset"
    out(a, "Sys.setenv(CTX = 'changed'); setwd('/')")
    assert out(b, probe) == f"{tmp_path / 'b'} b unset b-unset"
    # RNG (no .Random.seed inherited: each kernel seeds itself), uuids.
    draw = ("cat(exists('.Random.seed', globalenv()), runif(1), "
            "uuid::UUIDgenerate())")
    c = ready(zygote, kernels, env=env)
    va, vb, vc = out(a, draw), out(b, draw), out(c, draw)
    assert va.split()[0] == "FALSE" and vb.split()[0] == "FALSE"
    for x, y in ((va, vb), (va, vc), (vb, vc)):
        assert x.split()[1] != y.split()[1] and x.split()[2] != y.split()[2]


def test_tempdirs_differ_and_outlive_the_others(zygote, kernels, tmp_path):
    env = dict(env_without(zygote.env, "ZYG_ONLY"), TZ="Asia/Tokyo",
               TMPDIR=str(tmp_path))
    a = ready(zygote, kernels, env=env)
    b = ready(zygote, kernels)
    ta = out(a, "cat(tempdir(), Sys.getenv('R_SESSION_TMPDIR'))").split()
    tb = out(b, "cat(tempdir(), tempfile())").split()
    assert ta[0] == ta[1] and ta[0].startswith(str(tmp_path) + "/Rtmp")
    assert tb[0] != ta[0] and tb[0] != zygote.ready["tempdir"]
    assert tb[1].startswith(tb[0] + "/")
    assert out(a, "cat(format(Sys.time(), '%Z'))") == "JST"
    out(b, "writeLines('x', file.path(tempdir(), 'keep'))")
    # a ends normally (shutdown_request): R removes its own tempdir only.
    a.session.send(a.control, "shutdown_request", {"restart": False})
    status = wait_gone(a.pid)
    a.pid = None
    assert os.WIFEXITED(status), status
    assert not os.path.exists(ta[0])
    assert os.path.exists(os.path.join(tb[0], "keep"))
    assert os.path.isdir(zygote.ready["tempdir"])
    assert out(b, "cat(readLines(file.path(tempdir(), 'keep')))") == "x"


def test_interrupt_reaches_the_kernel(zygote, kernels):
    k = ready(zygote, kernels)
    mid = k.submit("cat('sleeping\\n')\nfor (i in 1:30) Sys.sleep(1)")

    def on_iopub(msg_type, content):
        if msg_type == "stream" and "sleeping" in content["text"]:
            os.killpg(k.pid, signal.SIGINT)

    reply, _ = k.collect(mid, timeout=25, on_iopub=on_iopub)
    assert reply["status"] in ("abort", "error"), reply
    assert out(k, "cat(1+1)") == "2"
    assert int(stat_fields(k.pid)[1]) == os.getpid()


# ---- refusals and set-up failures (the daemon then execs the kernel) ----

def test_bad_requests_and_argv_refused(zygote):
    before = fd_targets(zygote.pid)
    r = zygote.request({"type": "spawn"})
    assert r["type"] == "error" and r["step"] == "request", r
    zygote.chan.send(b"not json")
    assert zygote.recv()["step"] == "request"
    out_r, out_w = os.pipe()
    doc = {"type": "spawn", "id": "y", "argv": R_ARGV, "cwd": "/tmp",
           "env": ["PATH=/usr/bin:/bin"], "fds": ["stdout"]}
    r = zygote.request(doc, [out_w])
    assert r["step"] == "request" and "stderr" in r["reason"], r
    doc["fds"] = ["stdout", "stderr"]
    for argv in (["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "x"],
                 ["R", "--slave", "-e", "1+1", "--args", "x"],
                 ["/bin/sh", "--slave", "-e", "IRkernel::main()", "--args",
                  "x"]):
        r = zygote.request(dict(doc, argv=argv), [out_w, out_w])
        assert r["type"] == "error" and r["step"] == "argv", r
        assert r["pid"] is None
    os.close(out_w)
    assert os.read(out_r, 1) == b""  # every fd sent was closed
    os.close(out_r)
    assert fd_targets(zygote.pid) == before


def test_startup_variables_must_match(zygote, kernels):
    for name, value in (("R_LIBS_USER", "/nonexistent"), ("LANG", "C"),
                        ("HOME", "/nonexistent"), ("R_ENVIRON_USER", "/x"),
                        ("LD_PRELOAD", "/x.so"), ("CLI_TICK_TIME", "5")):
        k = spawn(zygote, kernels, env=dict(zygote.env, **{name: value}))
        assert k.reply["type"] == "error", k.reply
        assert k.reply["step"] == "environment" and name in k.reply["reason"]
        assert k.reply["pid"] is None
    # Variables R reads later may differ.
    k = ready(zygote, kernels, env=dict(zygote.env, ZZ_LATER="1"))
    assert out(k, "cat(Sys.getenv('ZZ_LATER'), Sys.getenv('R_HOME'))") == \
        "1 /usr/lib/R"


def test_cwd_start_up_files_refused(zygote, kernels, tmp_path):
    (tmp_path / ".RData").write_bytes(b"")
    k = spawn(zygote, kernels, cwd=str(tmp_path))
    assert k.reply["step"] == "shadowed" and ".RData" in k.reply["reason"]
    (tmp_path / ".RData").unlink()
    (tmp_path / ".Rprofile").write_text("zz <- 1\n")
    k = spawn(zygote, kernels, cwd=str(tmp_path))
    assert k.reply["step"] == "shadowed" and ".Rprofile" in k.reply["reason"]
    (tmp_path / ".Rprofile").unlink()
    ready(zygote, kernels, cwd=str(tmp_path))


def test_setup_failures_reported_with_step_and_errno(zygote, kernels):
    k = spawn(zygote, kernels, cwd="/nonexistent/dir")
    assert k.reply["type"] == "error" and k.reply["step"] == "chdir"
    assert k.reply["errno"] == errno.ENOENT and k.reply["pid"]
    status = wait_gone(k.pid)
    k.pid = None
    assert os.WEXITSTATUS(status) == 127
    k = spawn(zygote, kernels, rlimits={"nofile": [100, 50]})
    assert k.reply["step"] == "rlimit nofile"
    assert k.reply["errno"] == errno.EINVAL
    wait_gone(k.pid)
    k.pid = None


# ---- preload, threads, stale ----

def test_preload_and_missing_preload_skipped(tmp_path, kernels):
    lib = str(tmp_path / "lib")
    r_package(lib, "zzokpkg")
    env = kernel_env({"R_LIBS": lib})
    z = r_zygote(preload=["nosuchpkg_zz", "zzokpkg"], env=env,
                 cwd=str(tmp_path))
    try:
        assert z.ready["preloaded"] == ["zzokpkg"]
        assert [s["package"] for s in z.ready["skipped"]] == ["nosuchpkg_zz"]
        assert "warning: preload nosuchpkg_zz" in z.stderr()
        k = ready(z, kernels)
        # Loaded, not attached (as in an exec'd kernel until library()).
        assert out(k, "cat('zzokpkg' %in% loadedNamespaces(), "
                   "'package:zzokpkg' %in% search(), zzokpkg::zz_value())") \
            == "TRUE FALSE 42"
        # An upgrade in place, a library dir that appears: stale.
        desc = os.path.join(lib, "zzokpkg", "DESCRIPTION")
        st = os.stat(desc)
        os.utime(desc, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        k = spawn(z, kernels)
        assert k.reply["step"] == "stale" and "zzokpkg" in k.reply["reason"]
        os.utime(desc, ns=(st.st_atime_ns, st.st_mtime_ns))
        ready(z, kernels)
    finally:
        z.close()


def test_library_appearing_is_stale(tmp_path, kernels):
    user_lib = tmp_path / "userlib"
    env = kernel_env({"R_LIBS_USER": str(user_lib)})
    z = r_zygote(env=env, cwd=str(tmp_path))
    try:
        ready(z, kernels)
        user_lib.mkdir()
        k = spawn(z, kernels)
        assert k.reply["step"] == "stale" and "userlib" in k.reply["reason"]
    finally:
        z.close()


THREAD_C = r"""
#include <pthread.h>
#include <unistd.h>
static void *idle(void *a) { for (;;) pause(); return a; }
__attribute__((constructor)) static void start(void)
{
	pthread_t t;
	pthread_create(&t, 0, idle, 0);
}
"""


def openblas():
    """A pthread OpenBLAS library: $E2BCI_TEST_OPENBLAS, else Debian's
    libopenblas0-pthread where installed; None (the test skips) without
    one. `make vm-test`'s image has it as R's BLAS."""
    cands = [os.environ.get("E2BCI_TEST_OPENBLAS", ""),
             "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"]
    return next((c for c in cands if c and os.path.exists(c)), None)


@pytest.mark.skipif(openblas() is None, reason="no pthread OpenBLAS here")
def test_openblas_pool_is_ended_before_ready(tmp_path, kernels):
    # OpenBLAS starts a thread pool when it loads (R's BLAS where it is
    # installed): the zygote ends it, so it has one thread and forks.
    env = kernel_env({"LD_PRELOAD": openblas()})
    z = r_zygote(env=env, cwd=str(tmp_path))
    try:
        assert z.ready["threads"] == 1, z.stderr()
        k = ready(z, kernels, env=env)
        # The kernel's BLAS works (its own pool starts on first use).
        assert out(k, "cat(sum(crossprod(matrix(1:4, 2))))") == "52"
    finally:
        z.close()


def test_thread_in_zygote_refuses_fork(tmp_path, kernels):
    so = tmp_path / "zzthread.so"
    (tmp_path / "zzthread.c").write_text(THREAD_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so),
                    str(tmp_path / "zzthread.c"), "-lpthread"], check=True)
    lib = str(tmp_path / "lib")
    r_package(lib, "zzthreadpkg", onload=f"dyn.load('{so}')")
    env = kernel_env({"R_LIBS": lib})
    z = r_zygote(preload=["zzthreadpkg"], env=env, cwd=str(tmp_path))
    try:
        assert z.ready["threads"] == 2
        assert "2 threads" in z.stderr()
        k = spawn(z, kernels)
        assert k.reply["type"] == "error" and k.reply["step"] == "threads"
        assert "2 threads" in k.reply["reason"] and k.reply["pid"] is None
        assert z.proc.poll() is None
    finally:
        z.close()


def test_zygote_exit_leaves_kernels_running(tmp_path, kernels):
    z = r_zygote(cwd=str(tmp_path))
    k = ready(z, kernels)
    assert z.close() == 0  # channel closed: the zygote exits by itself
    assert out(k, "cat(1+1)") == "2"
    assert int(stat_fields(k.pid)[1]) == os.getpid()
