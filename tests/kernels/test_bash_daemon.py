"""The bash kernel behind the real daemon: build/e2b-ci (or E2BCI_BIN)
with its default --kernel-path, the repository's kernels/, POST /execute
with language "bash", NDJSON lines checked by the e2e harness
(tests/e2e/harness.py), which also checks that the daemon stops cleanly.
Needs `make all` (build/e2b-ci and build/e2b-kernel).
"""

import os
import time

import pytest

from host_client import ROOT, harness, procs_matching, require_host, wait_proc

DEADLINE = 30


def daemon_binary():
    return os.environ.get("E2BCI_BIN") or str(ROOT / "build" / "e2b-ci")


def execute(d, code, **extra):
    """The lines of a bash execution, keepalives left out."""
    return harness.content(d.client().execute(code, language="bash",
                                              timeout=DEADLINE, **extra))


def out(lines, kind="stdout"):
    return "".join(l["text"] for l in lines if l["type"] == kind)


def errors(lines):
    return [l for l in lines if l["type"] == "error"]


@pytest.fixture
def daemon(tmp_path):
    if not os.access(daemon_binary(), os.X_OK):
        pytest.fail(f"{daemon_binary()} is missing: run `make all` first",
                    pytrace=False)
    require_host()
    # Nothing listens at the envd URL: no global env vars, at once.
    with harness.serving(harness.Daemon(
            daemon_binary(), tmp_path,
            envd_url=f"http://127.0.0.1:{harness.free_port()}",
            args=["--kernel-path", str(ROOT / "kernels")],
            name="bash daemon")) as d:
        yield d


def test_bash_state_through_the_daemon(daemon):
    lines = execute(daemon, "echo hi; cd /tmp; export A=1")
    assert lines[0]["type"] == "number_of_executions"
    assert [l["type"] for l in lines[1:]] == ["stdout", "end_of_execution"]
    assert out(lines) == "hi\n"
    lines = execute(daemon, "pwd; echo $A")
    assert out(lines) == "/tmp\n1\n"
    assert not errors(lines)


def test_bash_error_and_stderr(daemon):
    lines = execute(daemon, "echo oops >&2; (exit 4)")
    assert out(lines, "stderr") == "oops\n"
    [err] = errors(lines)
    assert err["name"] == "BashError"
    assert err["value"] == "Command exited with status 4"


def test_bash_env_vars_per_execution(daemon):
    value = "two words\n'quoted' $HOME \\ ünï"
    lines = execute(daemon, "printf '%s|' \"$E2B_K\"; sh -c 'printf %s \"$E2B_K\"'",
                    env_vars={"E2B_K": value})
    assert out(lines) == f"{value}|{value}"
    lines = execute(daemon, "echo \"${E2B_K-unset}\"")
    assert out(lines) == "unset\n"


def test_bash_kernel_death_and_recovery(daemon):
    execute(daemon, "cd /tmp; X=1")
    lines = execute(daemon, "exit 3")
    assert errors(lines), lines
    # A new kernel, back in the context's cwd, state gone.
    lines = execute(daemon, "pwd; echo \"[${X-}]\"")
    assert out(lines) == f"{daemon.cwd}\n[]\n"


def test_bash_client_disconnect_interrupts(daemon):
    s = daemon.client().stream("echo start; sleep 4327; echo never",
                               language="bash", timeout=DEADLINE)
    assert s.status == 200
    s.read_until(lambda line: line["type"] == "stdout")
    wait_proc("sleep 4327")
    s.close()
    # The next cell can only run once the interrupted one ended.
    t0 = time.monotonic()
    lines = execute(daemon, "echo next")
    assert out(lines) == "next\n"
    # Far below the sleep's 72 minutes; loose, since the machine is shared.
    assert time.monotonic() - t0 < 60
    assert not procs_matching("sleep 4327")
