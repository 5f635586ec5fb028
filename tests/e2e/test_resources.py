"""Kernel resource control (issue 7): the memory limit (cgroup v2 where the
daemon owns a delegated subtree; RLIMIT_DATA elsewhere, as on this machine),
and kernels running as an unprivileged user."""

import os
import pwd

import pytest

from harness import error, main_text, stdout


def test_memory_limit_stops_a_hog_and_the_daemon_goes_on(make_daemon):
    d = make_daemon(args=["--kernel-memory-max", "600M", "--pool", "python=0"]).wait_healthy()
    c = d.client()
    ctx = c.create_context()
    c.execute("kept = 41", context_id=ctx["id"])
    lines = c.execute("x = bytearray(2 * 1024**3)", context_id=ctx["id"], timeout=60)
    err = error(lines)
    # Under RLIMIT_DATA Python raises MemoryError; under a cgroup the kernel
    # is killed and the stream says OutOfMemoryError. Either way the
    # allocation never succeeds and the daemon keeps serving.
    assert err is not None and err["name"] in ("MemoryError", "OutOfMemoryError"), lines
    assert c.request("GET", "/health").status == 200
    after = c.execute("1 + 1", context_id=ctx["id"], timeout=60)
    assert main_text(after) == "2"
    if err["name"] == "MemoryError":
        assert main_text(c.execute("kept + 1", context_id=ctx["id"])) == "42"
    d.stop()


def test_kernels_run_as_the_kernel_user(make_daemon, open_dir):
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    nobody = pwd.getpwnam("nobody")
    # Its runtime dir must be reachable by the kernel user (in production
    # /run/e2b-ci, under /run; pytest's tmp dirs are 0700).
    run = open_dir.parent / "run"
    d = make_daemon(args=["--kernel-user", "nobody", "--pool", "python=0",
                          "--cwd", str(open_dir), "--runtime-dir", str(run)]).wait_healthy()
    c = d.client()
    lines = c.execute("import os; print(os.getuid(), os.getgid(), os.environ['HOME'])")
    uid, gid, home = stdout(lines).split()
    assert (int(uid), int(gid), home) == (nobody.pw_uid, nobody.pw_gid, nobody.pw_dir)
    # The kernel cannot read the daemon's runtime dir listing (0711) nor
    # another kernel's private dir.
    lines = c.execute(f"import os\ntry:\n    os.listdir({str(run)!r})\n"
                      f"    print('listed')\nexcept PermissionError:\n    print('denied')")
    assert stdout(lines) == "denied\n"
    ctx = c.create_context({"cwd": str(open_dir)})
    assert main_text(c.execute("1+1", context_id=ctx["id"])) == "2"
    d.stop()
    assert not run.exists() or not any(run.iterdir())


def test_unknown_kernel_user_fails_at_startup(e2bci_bin, tmp_path):
    import subprocess
    p = subprocess.run([e2bci_bin, "--kernel-user", "no-such-user-e2bci",
                        "--listen", "127.0.0.1", "--port", "0",
                        "--runtime-dir", str(tmp_path / "run"), "--cwd", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "no-such-user-e2bci" in p.stderr
