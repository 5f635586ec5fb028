"""template/debug-probe.sh against a daemon this test starts.

systemd is not PID 1 here, which is the case the probe must survive: it
says "systemd not running" for the unit and journal parts and goes on with
/health, /contexts, a 1+1 execution and the process tree. Also checked: the
output fits one screen, the verdict and exit status follow the facts, and a
stopped (SIGSTOP) daemon cannot hang the probe.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("E2BCI_BIN", ROOT / "build" / "e2b-ci"))
PROBE = ROOT / "template" / "debug-probe.sh"
SYSTEMD = os.path.isdir("/run/systemd/system")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return None, b""
    finally:
        conn.close()


def probe(*args, timeout=60):
    start = time.monotonic()
    r = subprocess.run(["sh", str(PROBE), *args], capture_output=True,
                       text=True, timeout=timeout)
    return r, time.monotonic() - start


def sections(out):
    """{title: [lines]} of the "== title" blocks."""
    found, cur = {}, None
    for line in out.splitlines():
        if line.startswith("== "):
            cur = line[3:]
            found[cur] = []
        elif cur is not None:
            found[cur].append(line)
    return found


def section(out, prefix):
    for title, lines in sections(out).items():
        if title.startswith(prefix):
            return lines
    pytest.fail(f"no '== {prefix}' section in\n{out}")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"{BIN} is not built (run make, or set E2BCI_BIN)")
    tmp = tmp_path_factory.mktemp("probe")
    port = free_port()
    log = open(tmp / "daemon.log", "wb")
    proc = subprocess.Popen(
        [str(BIN), "--listen", "127.0.0.1", "--port", str(port),
         "--runtime-dir", str(tmp / "run"), "--cwd", str(tmp / "home"),
         "--default-languages", "python",
         "--envd-url", f"http://127.0.0.1:{free_port()}"],
        stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while get(port, "/health")[0] != 200:
        assert proc.poll() is None and time.monotonic() < end, \
            (tmp / "daemon.log").read_text()
        time.sleep(0.05)
    yield proc, port
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    assert proc.wait(20) == 0
    log.close()


def test_probe_against_a_healthy_daemon(daemon):
    proc, port = daemon
    r, _ = probe("-u", f"http://127.0.0.1:{port}")
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert r.stderr == ""

    # One screen.
    lines = out.splitlines()
    assert len(lines) <= 40, f"{len(lines)} lines"
    assert max(map(len, lines)) <= 160

    if not SYSTEMD:
        assert section(out, "unit")[0].startswith("systemd not running")
        assert section(out, "journal")[0].startswith("systemd not running")

    assert section(out, "GET /health")[0].startswith("200 ")

    _, body = get(port, "/contexts")
    ids = [c["id"] for c in json.loads(body)]
    assert ids and all(any(i in line for line in section(out, "GET /contexts"))
                       for i in ids)

    ex = section(out, "POST /execute 1+1")
    results = [json.loads(line) for line in ex if line.startswith("{")
               and '"result"' in line]
    assert [r_["text"] for r_ in results] == ["2"], ex
    assert ex[-1].startswith("-> 2, HTTP 200")

    procs = section(out, "processes")
    assert procs[0] == f"daemon pid {proc.pid} (listening on :{port})" \
        or procs[0].startswith(f"daemon pid {proc.pid} ("), procs
    rows = {int(m[1]): (float(m[2]), m[3]) for m in
            (re.match(r"\s*(\d+)\s+([\d.]+)\s+(-?\d+)\s", line)
             for line in procs[2:]) if m}
    assert proc.pid in rows
    kernels = [p for p in rows if p != proc.pid]
    assert kernels, procs
    for k in kernels:
        assert rows[k][0] > 1.0, f"kernel {k} RSS {rows[k][0]} MiB"
        with open(f"/proc/{k}/oom_score_adj") as f:
            assert rows[k][1] == f.read().strip()
    assert re.match(r"total RSS [\d.]+ MiB in \d+ process\(es\)$", procs[-1])
    assert lines[-1] == "== verdict: OK"


def test_probe_when_nothing_listens():
    port = free_port()
    r, took = probe("-u", f"http://127.0.0.1:{port}", "-t", "3", timeout=30)
    assert r.returncode == 1
    # Without its deadlines the probe would wait for subprocess's 30 s.
    assert took < 25, took
    out = r.stdout
    for title in ("unit", "journal", "GET /health", "GET /contexts",
                  "POST /execute 1+1", "processes"):
        section(out, title)
    assert section(out, "GET /health")[0].startswith("curl: (7)")
    assert f"nothing listens on :{port}" in section(out, "processes")
    assert out.splitlines()[-1] == \
        "== verdict: FAILED: health contexts execute process"


def test_probe_does_not_hang_on_a_stopped_daemon(daemon):
    proc, port = daemon
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        r, took = probe("-u", f"http://127.0.0.1:{port}", "-t", "2",
                        timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert r.returncode == 1, r.stdout
    # 3 s for /health, 3 s for /contexts, 2 s for the execution: about 8 s,
    # where a probe without deadlines would wait for the 30 s timeout.
    assert took < 25, took
    assert r.stdout.splitlines()[-1] == \
        "== verdict: FAILED: health contexts execute"
    # The process part still names the (stopped) daemon.
    assert section(r.stdout, "processes")[0].startswith(
        f"daemon pid {proc.pid} ")
