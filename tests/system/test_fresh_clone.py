"""The README's first command on a fresh clone: `make deps`, then `make run`.

The committed tree under test (HEAD of this checkout, whatever branch or
worktree it is) is cloned into a temporary directory, where nothing was ever
built. `make deps` runs there first, outside any namespace, since npm needs
the registry for kernels/node. Then `make run` runs in a network namespace
of its own (loopback only, so port 49999 is free whatever else runs on the
machine) and must build everything the default kernels need and serve:
GET /health 200, `1+1` -> 2 in Python and `40+2` -> 42 in JavaScript. The
whole process group then gets SIGTERM, and the daemon must stop cleanly
("stopped" logged, no process left that mentions the clone).

This is what /work/shared/hooks/before-stop checks before a session ends,
and what a newcomer does first; `make all` and `make test` build more than
`make run`, so no other tier would notice a part `make run` forgets.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = "/usr/bin/python3"
DEPS_TIMEOUT_S = 600
# Build (about 30 s with -j2 on a loaded machine), then kernel start-up.
SERVE_DEADLINE_S = 240

# Runs inside the network namespace: starts `make run` in a session of its
# own, waits for /health, runs the two cells, stops the process group, and
# prints one JSON verdict on stdout.
DRIVER = r"""
import http.client, json, os, signal, subprocess, sys, time

clone, log_path, deadline_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
log = open(log_path, "wb")
make = subprocess.Popen(["make", "run"], cwd=clone, stdin=subprocess.DEVNULL,
                        stdout=log, stderr=log, start_new_session=True)
verdict = {"health": None, "health_body": "", "python": None,
           "javascript": None}

def request(method, path, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", 49999, timeout=timeout)
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()

def result_text(language, code):
    status, body = request("POST", "/execute",
                           json.dumps({"language": language, "code": code}),
                           timeout=60)
    texts = [l.get("text") for l in map(json.loads, body.splitlines())
             if l.get("type") == "result"]
    return {"status": status, "texts": texts, "body": body[-2000:]}

end = time.monotonic() + deadline_s
while time.monotonic() < end and make.poll() is None:
    try:
        verdict["health"], verdict["health_body"] = request("GET", "/health",
                                                            timeout=2)
        # 200, or a 503 that names a kernel that failed to start: either
        # way the answer is in.
        if verdict["health"] == 200 or (verdict["health"] == 503 and not
                verdict["health_body"].startswith(("Starting", "Shutting"))):
            break
    except OSError:
        pass
    time.sleep(0.2)  # polling with a deadline: the build has no event to wait on
if verdict["health"] == 200:
    verdict["python"] = result_text("python", "1+1")
    verdict["javascript"] = result_text("javascript", "40+2")
verdict["make_exited_early"] = make.poll()
try:
    os.killpg(make.pid, signal.SIGTERM)
except ProcessLookupError:
    pass
try:
    make.wait(30)
    verdict["stopped_in_time"] = True
except subprocess.TimeoutExpired:
    verdict["stopped_in_time"] = False
try:
    os.killpg(make.pid, signal.SIGKILL)
except ProcessLookupError:
    pass
make.wait()
print(json.dumps(verdict))
"""


def _clean_env(runtime_dir):
    """The caller's environment without anything that would let the clone
    use parts built elsewhere or change its configuration: E2B_CI_* options,
    the launchers' binary overrides, and the outer make's job server."""
    drop = ("E2B_CI_", "E2B_KERNEL", "E2BCI_", "MAKE", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["E2B_CI_RUNTIME_DIR"] = str(runtime_dir)
    return env


def _only_loopback():
    """Whether this network namespace has no interface but lo (asked of
    the kernel: /sys/class/net shows the namespace sysfs was mounted in)."""
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


def _processes_mentioning(path):
    needle = os.fsencode(str(path))
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture
def clone(tmp_path):
    top = subprocess.run(["git", "-C", str(ROOT), "rev-parse",
                          "--show-toplevel"], capture_output=True, text=True,
                         check=True).stdout.strip()
    sha = subprocess.run(["git", "-C", top, "rev-parse", "HEAD"],
                         capture_output=True, text=True,
                         check=True).stdout.strip()
    d = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", top, str(d)],
                   check=True)
    subprocess.run(["git", "-C", str(d), "checkout", "-q", sha], check=True)
    return d


def test_make_run_on_a_fresh_clone_serves_python_and_javascript(clone,
                                                                tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for `unshare -n`")
    if _only_loopback():
        pytest.skip("no network here: `make deps` cannot reach the npm "
                    "registry for kernels/node (run this tier outside a "
                    "network namespace)")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = _clean_env(runtime)
    assert not (clone / "build").exists()

    deps = subprocess.run(["make", "deps"], cwd=clone, env=env,
                          capture_output=True, text=True,
                          timeout=DEPS_TIMEOUT_S)
    assert deps.returncode == 0, f"make deps:\n{deps.stdout}{deps.stderr}"

    log = tmp_path / "run.log"
    r = subprocess.run(["unshare", "-n", PY, "-c", DRIVER, str(clone),
                        str(log), str(SERVE_DEADLINE_S)], env=env,
                       capture_output=True, text=True,
                       timeout=SERVE_DEADLINE_S + 120)
    text = log.read_text("utf-8", "replace") if log.exists() else ""
    tail = "\n".join(text.splitlines()[-40:])
    assert r.returncode == 0, f"driver failed:\n{r.stderr}\n--- log ---\n{tail}"
    v = json.loads(r.stdout.strip().splitlines()[-1])
    assert v["health"] == 200, \
        f"/health: {v['health']} {v['health_body']!r}\n--- log ---\n{tail}"
    assert v["python"]["texts"] == ["2"], f"{v['python']}\n{tail}"
    assert v["javascript"]["texts"] == ["42"], f"{v['javascript']}\n{tail}"
    assert v["stopped_in_time"], f"make run did not stop on SIGTERM\n{tail}"
    assert text.rstrip().endswith("INFO stopped"), \
        f"the daemon did not stop cleanly\n{tail}"
    left = _processes_mentioning(clone)
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    assert not left, f"processes of the clone outlived it: {left}"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
