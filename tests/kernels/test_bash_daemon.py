"""The bash kernel behind the real daemon: build/e2b-ci with --kernel-path
pointing at the repository's kernels/, POST /execute with language "bash",
NDJSON lines checked. Needs `make all` (build/e2b-ci and build/e2b-kernel).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procs_matching(needle):
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            continue
        if needle in cmd and not zombie:
            found.append(cmd)
    return found


def wait_proc(needle, timeout=10):
    """Polls (with a deadline) until a process matching needle runs: the
    output before it may arrive before the fork."""
    end = time.monotonic() + timeout
    while not procs_matching(needle):
        assert time.monotonic() < end, f"no process {needle!r}"
        time.sleep(0.02)


class Daemon:
    def __init__(self, tmp_path):
        self.port = free_port()
        self.cwd = tmp_path / "home"
        self.cwd.mkdir()
        run = tmp_path / "run"
        run.mkdir(mode=0o700)
        self.log = tmp_path / "daemon.log"
        argv = [str(ROOT / "build" / "e2b-ci"),
                "--kernel-path", str(ROOT / "kernels"),
                "--default-languages", "python",
                "--listen", "127.0.0.1", "--port", str(self.port),
                "--runtime-dir", str(run), "--cwd", str(self.cwd),
                # Nothing listens there: no global env vars, at once.
                "--envd-url", f"http://127.0.0.1:{free_port()}",
                "--log-level", "debug"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_CI_")}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env)

    def log_tail(self):
        return self.log.read_text(errors="replace")[-4000:]

    def wait_healthy(self):
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.log_tail()
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)  # polling with a deadline
        raise AssertionError("daemon not healthy\n" + self.log_tail())

    def open(self, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        c.request("POST", "/execute", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200, (r.status, r.read())
        return c, r

    def execute(self, code, **extra):
        c, r = self.open({"code": code, "language": "bash", **extra})
        lines = []
        try:
            while True:
                raw = r.readline()
                assert raw, f"stream ended early: {lines}"
                line = json.loads(raw)
                if line["type"] == "keepalive":
                    continue
                lines.append(line)
                if line["type"] == "end_of_execution":
                    return lines
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(DEADLINE)


def out(lines, kind="stdout"):
    return "".join(l["text"] for l in lines if l["type"] == kind)


def errors(lines):
    return [l for l in lines if l["type"] == "error"]


@pytest.fixture
def daemon(tmp_path):
    for b in ("e2b-ci", "e2b-kernel"):
        if not os.access(ROOT / "build" / b, os.X_OK):
            pytest.fail(f"build/{b} is missing: run `make all` first",
                        pytrace=False)
    d = Daemon(tmp_path)
    try:
        d.wait_healthy()
        yield d
    finally:
        rc = d.stop()
        assert rc == 0, d.log_tail()


def test_bash_state_through_the_daemon(daemon):
    lines = daemon.execute("echo hi; cd /tmp; export A=1")
    assert lines[0]["type"] == "number_of_executions"
    assert [l["type"] for l in lines[1:]] == ["stdout", "end_of_execution"]
    assert out(lines) == "hi\n"
    lines = daemon.execute("pwd; echo $A")
    assert out(lines) == "/tmp\n1\n"
    assert not errors(lines)


def test_bash_error_and_stderr(daemon):
    lines = daemon.execute("echo oops >&2; (exit 4)")
    assert out(lines, "stderr") == "oops\n"
    [err] = errors(lines)
    assert err["name"] == "BashError"
    assert err["value"] == "Command exited with status 4"


def test_bash_env_vars_per_execution(daemon):
    value = "two words\n'quoted' $HOME \\ ünï"
    lines = daemon.execute("printf '%s|' \"$E2B_K\"; sh -c 'printf %s \"$E2B_K\"'",
                           env_vars={"E2B_K": value})
    assert out(lines) == f"{value}|{value}"
    lines = daemon.execute("echo \"${E2B_K-unset}\"")
    assert out(lines) == "unset\n"


def test_bash_kernel_death_and_recovery(daemon):
    daemon.execute("cd /tmp; X=1")
    lines = daemon.execute("exit 3")
    assert errors(lines), lines
    # A new kernel, back in the context's cwd, state gone.
    lines = daemon.execute("pwd; echo \"[${X-}]\"")
    assert out(lines) == f"{daemon.cwd}\n[]\n"


def test_bash_client_disconnect_interrupts(daemon):
    c, r = daemon.open({"code": "echo start; sleep 4327; echo never",
                        "language": "bash"})
    while True:
        line = json.loads(r.readline())
        if line["type"] == "stdout":
            break
    wait_proc("sleep 4327")
    c.close()
    # The next cell can only run once the interrupted one ended.
    t0 = time.monotonic()
    lines = daemon.execute("echo next")
    assert out(lines) == "next\n"
    # Far below the sleep's 72 minutes; loose, since the machine is shared.
    assert time.monotonic() - t0 < 60
    assert not procs_matching("sleep 4327")
