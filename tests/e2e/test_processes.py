"""Processes a cell started end with their kernel (issue 11, section 6).

In every language a cell starts `sleep <marker>` as a child process; then
the context is deleted or restarted with a busy cell, the kernel process (or
the runner of our kernel host) is SIGKILLed, or the daemon is stopped with
SIGTERM or SIGKILLed and started again. Each time the sleep must be gone.

The daemons run in three set-ups:
- "plain": whatever this machine offers (as root on a cgroup v1/hybrid host,
  a cgroup v1 pids group per kernel);
- "nocg": the cgroup file systems hidden in a mount namespace of the daemon,
  so only the fallback works (the kernel's session, the kernel host as a
  subreaper, pid files in the runtime dir);
- "cg2": a cgroup v2 hierarchy of its own (a cgroup namespace over a fresh
  group of this host's unified hierarchy, INVOCATION_ID set as systemd
  would), where cgroup.kill ends a kernel's processes, setsid ones included.

Markers are random so that other processes on a shared machine never match,
and every test kills what it left behind, so a failure never leaves a
ten-day sleep running.
"""

import os
import random
import shutil
import signal
import time
import uuid
from pathlib import Path

import pytest

import harness
from harness import (error, has_kernel, kill_sleeps, of_type,
                     per_language, sleeps, stdout, wait_until)

LANGS = ["python", "javascript", "typescript", "r", "bash", "java"]
HOSTED = ["javascript", "typescript", "bash", "java"]  # our kernel host
UNIFIED = Path("/sys/fs/cgroup/unified")

# Cells, per language: start `sleep {m}` as a child and print its pid; spin.
SPAWN = {
    "python": "import subprocess\n_p{m} = subprocess.Popen(['sleep', '{m}'])\nprint(_p{m}.pid)",
    "javascript": "const _p{m} = require('child_process').spawn('sleep', ['{m}'], "
                  "{{stdio: 'ignore'}}); console.log(_p{m}.pid)",
    "r": 'cat(system("sleep {m} >/dev/null 2>&1 & echo $!", intern = TRUE), "\\n")',
    "bash": "sleep {m} >/dev/null 2>&1 & echo $!",
    "java": 'Process p{m} = new ProcessBuilder("sleep", "{m}").start(); '
            'System.out.println(p{m}.pid());',
}
SPAWN["typescript"] = SPAWN["javascript"]
BUSY = {
    "python": "while True: pass",
    "javascript": "while (true) {}",
    "typescript": "while (true) {}",
    "r": "repeat {}",
    "bash": "while :; do :; done",
    "java": "while (true) { }",
}
NOOP = {"bash": "true"}  # "1" elsewhere


# ------------------------------------------------------------ processes

def marker():
    return str(random.randint(9_000_000, 9_999_999))


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def children(pid):
    out = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out.update(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def wait_gone(m, what, timeout=30):
    wait_until(lambda: not sleeps(m), f"`sleep {m}` ended ({what})", timeout)


# --------------------------------------------------------------- set-ups

def wrapper(tmp, mode, cgroup=None):
    """A script that starts e2b-ci (same pid, via exec) in the set-up."""
    script = tmp / f"e2b-ci-{mode}"
    binary = os.environ["E2BCI_BIN"]
    if mode == "nocg":
        body = ('exec unshare -m sh -c \'mount -t tmpfs none /sys/fs/cgroup && '
                'exec "$0" "$@"\' "$@"')
    else:
        body = (f'echo $$ > {cgroup}/cgroup.procs || exit 1\n'
                'exec unshare -C -m sh -c \'mount -t cgroup2 none /sys/fs/cgroup && '
                'INVOCATION_ID=e2bci-test exec "$0" "$@"\' "$@"')
    script.write_text(f"#!/bin/sh\nset -- {binary} \"$@\"\n{body}\n")
    script.chmod(0o755)
    return script


def cg2_available():
    if os.geteuid() != 0 or not (UNIFIED / "cgroup.procs").exists():
        return False
    return shutil.which("unshare") is not None


def kernel_groups(g):
    return {p.name for p in g.iterdir() if p.name.startswith("k-")}


def cg2_group():
    g = UNIFIED / f"e2bci-test-{uuid.uuid4().hex[:8]}"
    g.mkdir()
    return g


def remove_group(g):
    """Removes a test group and everything below it (empty once killed)."""
    if not g.exists():
        return
    for sub in sorted(g.rglob("*"), key=lambda p: -len(p.parts)):
        if sub.is_dir():
            kill = sub / "cgroup.kill"
            if kill.exists():
                kill.write_text("1")
    for sub in sorted([p for p in g.rglob("*") if p.is_dir()],
                      key=lambda p: -len(p.parts)) + [g]:
        for _ in range(100):
            try:
                sub.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


class Setup:
    """A daemon in one of the set-ups, with helpers for the tests."""

    def __init__(self, mode, tmp, extra=(), group=None):
        self.mode, self.tmp, self.group = mode, tmp, group
        binary = os.environ["E2BCI_BIN"]
        if mode != "plain":
            binary = wrapper(tmp, mode, group)
        self.binary = binary
        self.extra = ["--pool", "python=0", *extra]
        self.d = None

    def start(self, workdir=None):
        self.d = harness.Daemon(self.binary, workdir or self.tmp / "d",
                                envd_url="http://127.0.0.1:9", args=self.extra,
                                name=f"{self.mode} daemon")
        # Kernels are told apart by the daemon's children: none may be
        # replaced meanwhile.
        self.d.start().wait_healthy().wait_zygote_settled()
        return self.d

    def client(self):
        return self.d.client()

    def context(self, lang):
        """A new context of lang and the pid of its kernel process."""
        before = children(self.d.proc.pid)
        ctx = self.client().create_context({"language": lang})
        if lang == "r":
            # The first R kernel starts R's zygote, which then replaces
            # that kernel (unused yet) by a fork: the kernel is the one
            # left after that.
            self.d.wait_zygote_settled(zygotes=2)
        new = {p for p in children(self.d.proc.pid) - before
               if b"e2b_ci_zygote." not in cmdline(p)}
        assert len(new) == 1, f"kernel of {lang} not found: {new}"
        return ctx, new.pop()

    def spawn(self, ctx, lang, m, code=None):
        lines = self.client().execute((code or SPAWN[lang]).format(m=m),
                                      context_id=ctx["id"], timeout=60)
        assert error(lines) is None, lines
        pid = int(stdout(lines).split()[-1])
        wait_until(lambda: pid in sleeps(m), f"`sleep {m}` runs", 10)
        return pid

    def busy(self, ctx, lang):
        s = self.client().stream(BUSY[lang], context_id=ctx["id"], timeout=60)
        assert s.status == 200
        s.read_until(lambda l: l["type"] == "number_of_executions", timeout=30)
        return s


@pytest.fixture(scope="module", params=["plain", "nocg"])
def setup(request, tmp_path_factory):
    su = Setup(request.param, tmp_path_factory.mktemp(request.param))
    su.start()
    yield su
    problems = su.d.stop()
    assert not problems, "\n".join(problems) + "\n" + su.d.log_tail()


@pytest.fixture
def m():
    mk = marker()
    yield mk
    kill_sleeps(mk)


# ----------------------------------------------------------------- tests

@per_language(LANGS)
def test_delete_with_a_busy_cell_ends_the_cells_processes(setup, lang, m):
    ctx, _ = setup.context(lang)
    setup.spawn(ctx, lang, m)
    s = setup.busy(ctx, lang)
    assert setup.client().delete(ctx["id"]).status == 200
    lines = s.read_all(timeout=30)
    assert of_type(lines, "end_of_execution")
    wait_gone(m, f"{lang} context deleted")


@per_language(LANGS)
def test_restart_with_a_busy_cell_ends_the_cells_processes(setup, lang, m):
    ctx, _ = setup.context(lang)
    setup.spawn(ctx, lang, m)
    s = setup.busy(ctx, lang)
    assert setup.client().restart(ctx["id"]).status == 200
    s.read_all(timeout=30)
    wait_gone(m, f"{lang} context restarted")
    setup.client().delete(ctx["id"])


@per_language(LANGS)
def test_sigkill_of_the_kernel_ends_the_cells_processes(setup, lang, m):
    ctx, kernel = setup.context(lang)
    setup.spawn(ctx, lang, m)
    os.kill(kernel, signal.SIGKILL)
    wait_gone(m, f"{lang} kernel SIGKILLed")
    # The context comes back with a new kernel.
    lines = setup.client().execute(NOOP.get(lang, "1"), context_id=ctx["id"],
                                   timeout=60)
    assert of_type(lines, "end_of_execution")
    setup.client().delete(ctx["id"])


@per_language(HOSTED)
def test_sigkill_of_the_runner_ends_the_cells_processes(setup, lang, m):
    ctx, kernel = setup.context(lang)
    setup.spawn(ctx, lang, m)
    runner = children(kernel) - set(sleeps(m))
    assert len(runner) == 1, runner
    s = setup.busy(ctx, lang)
    os.kill(runner.pop(), signal.SIGKILL)
    lines = s.read_all(timeout=30)
    assert error(lines)["name"] == "ContextRestarting", lines
    wait_gone(m, f"{lang} runner SIGKILLed")
    setup.client().delete(ctx["id"])


def test_detached_child_of_a_hosted_kernel_ends_too(setup, m):
    """A child in a session of its own (spawn's detached: true) escapes the
    kernel's session; the kernel host, a subreaper, still ends it."""
    ctx, _ = setup.context("javascript")
    code = ("const _d{m} = require('child_process').spawn('sh', ['-c', 'sleep {m} & echo $!'], "
            "{{detached: true, stdio: ['ignore', 'pipe', 'ignore']}}); "
            "await new Promise(r => _d{m}.stdout.on('data', d => {{ console.log(String(d).trim()); r() }}))")
    setup.spawn(ctx, "javascript", m, code)
    s = setup.busy(ctx, "javascript")
    assert setup.client().delete(ctx["id"]).status == 200
    s.read_all(timeout=30)
    wait_gone(m, "javascript context deleted")


def test_daemon_sigterm_with_busy_cells_ends_every_cells_processes(setup, tmp_path):
    su = Setup(setup.mode, tmp_path)
    d = su.start()
    marks, streams = {}, []
    try:
        for lang in [l for l in LANGS if has_kernel(l)]:
            ctx, _ = su.context(lang)
            marks[lang] = marker()
            su.spawn(ctx, lang, marks[lang])
            streams.append(su.busy(ctx, lang))
        problems = d.stop()
        assert not problems, "\n".join(problems)
        for lang, mk in marks.items():
            wait_gone(mk, f"{lang} kernel stopped with the daemon", 10)
    finally:
        for s in streams:
            s.close()
        if d.running():
            d.stop()
        for mk in marks.values():
            kill_sleeps(mk)


def stale_files(run):
    return sorted(p.name for p in run.iterdir()) if run.exists() else []


def test_daemon_sigkill_next_start_sweeps_stale_files_and_processes(setup, tmp_path):
    su = Setup(setup.mode, tmp_path)
    d = su.start(tmp_path / "w")
    marks = {"python": marker(), "javascript": marker()}
    streams, d2 = [], None
    try:
        for lang, mk in marks.items():
            ctx, _ = su.context(lang)
            su.spawn(ctx, lang, mk)
            # Kept open: a client that leaves interrupts its cell, and
            # Python's interrupt (SIGINT to the group) would end the sleep.
            streams.append(su.busy(ctx, lang))
        d.proc.kill()
        d.proc.wait(20)
        old = stale_files(d.runtime_dir)
        # Connection files (with their HMAC keys) are left behind.
        assert any(n.endswith(".json") for n in old), old
        # The Python kernel died with the daemon (parent-death signal), its
        # child did not: that is what the next start has to end.
        assert sleeps(marks["python"])
        d2 = su.start(tmp_path / "w")
        assert d2.runtime_dir == d.runtime_dir
        assert not set(old) & set(stale_files(d2.runtime_dir)), \
            (old, stale_files(d2.runtime_dir))
        for lang, mk in marks.items():
            wait_gone(mk, f"{lang}: swept at the next start", 10)
        assert "swept" in d2.log_text()
        problems = d2.stop()
        assert not problems, "\n".join(problems)
    finally:
        for s in streams:
            s.close()
        for daemon in (d, d2):
            if daemon and daemon.running():
                daemon.stop()
        for mk in marks.values():
            kill_sleeps(mk)


def test_setsid_child_ends_with_its_kernel_where_a_cgroup_holds_it(setup, m):
    if setup.mode == "nocg":
        pytest.skip("without a cgroup a setsid child of Python escapes (README)")
    log = setup.d.log_text()
    if "cgroups" not in log or "own groups" not in log:
        pytest.skip("this machine gives the daemon no cgroups")
    ctx, _ = setup.context("python")
    setup.spawn(ctx, "python", m, "import subprocess\n_p{m} = subprocess.Popen("
                "['sleep', '{m}'], start_new_session=True)\nprint(_p{m}.pid)")
    assert setup.client().delete(ctx["id"]).status == 200
    wait_gone(m, "python context deleted")


# ------------------------------------------------------- cgroup v2 (cg2)

@pytest.mark.skipif(not cg2_available(), reason="needs root and a cgroup2 mount "
                    "at /sys/fs/cgroup/unified")
def test_cgroup_v2_kill_and_sweep(tmp_path):
    group = cg2_group()
    marks = [marker(), marker()]
    d = d2 = None
    try:
        su = Setup("cg2", tmp_path, group=group)
        d = su.start(tmp_path / "w")
        log = d.log_text()
        assert "kernels get their own groups" in log, log
        # A setsid child is still in the kernel's group: deleting the
        # context ends it (cgroup.kill).
        before = kernel_groups(group)
        ctx, _ = su.context("python")
        setsid = ("import subprocess\n_p{m} = subprocess.Popen(['sleep', '{m}'], "
                  "start_new_session=True)\nprint(_p{m}.pid)")
        su.spawn(ctx, "python", marks[0], setsid)
        groups = kernel_groups(group) - before
        assert len(groups) == 1, groups
        assert su.client().delete(ctx["id"]).status == 200
        wait_gone(marks[0], "python context deleted")
        gone = group / groups.pop()
        wait_until(lambda: not gone.exists(), "its group removed", 10)
        # After a SIGKILL of the daemon, the next start kills what is left
        # in the kernels' groups and removes them.
        ctx, _ = su.context("python")
        su.spawn(ctx, "python", marks[1], setsid)
        d.proc.kill()
        d.proc.wait(20)
        assert sleeps(marks[1]), "the setsid child should outlive a SIGKILLed daemon"
        d2 = su.start(tmp_path / "w")
        wait_gone(marks[1], "swept at the next start", 10)
        # Only the new daemon's default context has a group now (once the
        # kernel it exec'd while the zygote loaded, replaced by a fork, has
        # exited).
        wait_until(lambda: len(kernel_groups(group)) == 1,
                   "one kernel group left", 20)
        problems = d2.stop()
        assert not problems, "\n".join(problems)
    finally:
        for daemon in (d, d2):
            if daemon and daemon.running():
                daemon.proc.kill()
                daemon.proc.wait(20)
        for mk in marks:
            kill_sleeps(mk)
        remove_group(group)
