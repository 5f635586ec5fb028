"""Configuration of envd that cannot work is refused at start, and an envd
that fails at run time is a warning, once per context.

envd.c speaks plain HTTP only. An https:// --envd-url used to be accepted by
the option parser and then failed every fetch with a debug line only, so the
sandbox-wide env vars silently never arrived.
"""

import re
import subprocess

import pytest

import harness


@pytest.mark.parametrize("via", ["flag", "env"])
def test_https_envd_url_is_refused_at_start(e2bci_bin, tmp_path, via):
    url = "https://127.0.0.1:49983"
    args = [e2bci_bin, "--listen", "127.0.0.1", "--port", "0",
            "--runtime-dir", str(tmp_path / "run"), "--cwd", str(tmp_path),
            "--default-languages", "python"]
    env = {"PATH": "/usr/bin:/bin"}
    if via == "flag":
        args += ["--envd-url", url]
    else:
        env["E2B_CI_ENVD_URL"] = url
    p = subprocess.run(args, capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL, env=env)
    assert p.returncode == 2, p
    assert "envd-url" in p.stderr or "E2B_CI_ENVD_URL" in p.stderr, p.stderr
    assert "https is not supported" in p.stderr, p.stderr
    # --check refuses it the same way.
    p = subprocess.run(args + ["--check"], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode == 2 and "https is not supported" in p.stderr, p


def _envd_warnings(d):
    return [l for l in d.log_text().splitlines()
            if " WARN " in l and "/envs failed" in l]


def test_envd_failure_is_a_warning_once_per_context(make_daemon):
    closed = harness.free_port()
    d = make_daemon(envd_url=f"http://127.0.0.1:{closed}").wait_healthy()
    c = d.client()
    default = c.contexts()[0]["id"]
    for _ in range(2):
        assert harness.main_text(c.execute("1+1")) == "2"
    # A restart fetches the env vars again; still the same context.
    assert c.restart(default).status == 200
    assert harness.main_text(c.execute("2+2")) == "4"
    warned = _envd_warnings(d)
    assert len(warned) == 1, d.log_tail()
    assert default[:8] in warned[0], warned
    assert re.search(rf"http://127\.0\.0\.1:{closed}/envs failed", warned[0])

    other = c.create_context({"language": "python"})["id"]
    assert harness.main_text(c.execute("3+3", context_id=other)) == "6"
    assert harness.main_text(c.execute("4+4", context_id=other)) == "8"
    warned = _envd_warnings(d)
    assert len(warned) == 2, d.log_tail()
    assert other[:8] in warned[1], warned


def test_envd_that_answers_is_not_warned_about(make_daemon, envd):
    envd.envs = {"E2BCI_FROM_ENVD": "yes"}
    d = make_daemon().wait_healthy()
    c = d.client()
    lines = c.execute("import os; print(os.environ['E2BCI_FROM_ENVD'])")
    assert "".join(harness.stdout(lines)) == "yes\n", lines
    assert _envd_warnings(d) == []
