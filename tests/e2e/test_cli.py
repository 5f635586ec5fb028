"""Command line, environment configuration and the listening address."""

import subprocess

import pytest

import harness


def run(binary, *args, timeout=20):
    return subprocess.run([binary, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_help(e2bci_bin):
    p = run(e2bci_bin, "--help")
    assert p.returncode == 0, p
    out = p.stdout + p.stderr
    for flag in ("--port", "--listen", "--cwd", "--envd-url", "--runtime-dir",
                 "--max-body", "--keepalive-ms"):
        assert flag in out, f"{flag} missing from --help:\n{out}"
    assert "E2B_CI_PORT" in out, f"--help does not name the env variables:\n{out}"


def test_version(e2bci_bin):
    p = run(e2bci_bin, "--version")
    assert p.returncode == 0, p
    assert (p.stdout + p.stderr).strip()


@pytest.mark.parametrize("args,word", [
    (["--no-such-flag"], "no-such-flag"),
    (["--port", "not-a-number"], "port"),
    (["--port", "70000"], "port"),
    (["--log-level", "chatty"], "log-level"),
    (["--keepalive-ms"], "keepalive-ms"),
])
def test_bad_command_line(e2bci_bin, args, word):
    p = run(e2bci_bin, *args)
    assert p.returncode != 0, p
    msg = p.stdout + p.stderr
    assert msg.strip(), "no message for a bad command line"
    assert word in msg, msg


def test_default_listen_is_dual_stack_and_port_from_env(make_daemon):
    if not harness.has_ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    # No --listen (default "::") and the port from E2B_CI_PORT, no --port.
    d = make_daemon(listen=None, port_via_env=True, host="::1").wait_healthy()
    r = harness.Client("::1", d.port).request("GET", "/health")
    assert r.status == 200 and r.json() == "OK", r
    r = harness.Client("127.0.0.1", d.port).request("GET", "/health")
    assert r.status == 200 and r.json() == "OK", r
