"""One kernel count: systemd's STATUS= line, /metrics and the processes.

The daemon counts its kernels in one place (kernel_live(): every kernel
object from its start until it is freed); STATUS= shows that number, and
/metrics' e2bci_kernels gauges by state add up to it. A context whose
kernel cannot start (FAILED, no retry) holds no kernel, so it must not be
counted as one: with the default python context, one warm spare and a
FAILED context, STATUS= says 2 contexts and 2 kernels, the gauges add up
to 2, and the daemon has 2 child processes.

Run: /usr/bin/python3 -m pytest -q tests/system/test_kernel_counts.py
(E2BCI_BIN overrides build/e2b-ci); it starts the daemon with
NOTIFY_SOCKET pointing at a socket it owns.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("E2BCI_BIN", ROOT / "build" / "e2b-ci"))
DEADLINE_S = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def children(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += (task / "children").read_text().split()
        except OSError:
            pass
    return out


def kernel_gauges(port):
    status, body = request(port, "GET", "/metrics")
    assert status == 200, body
    return {m[1]: int(m[2]) for m in re.finditer(
        r'^e2bci_kernels\{state="(\w+)"\} (\d+)$', body, re.M)}


@pytest.fixture
def daemon(tmp_path):
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"{BIN} is not built (run make, or set E2BCI_BIN)")
    spec = tmp_path / "kernels" / "broken"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["/bin/false", "{connection_file}"],
        "display_name": "Broken", "language": "broken"}))
    sock_path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path))
    env.pop("JOURNAL_STREAM", None)
    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen(
        [str(BIN), "--listen", "127.0.0.1", "--port", str(port),
         "--runtime-dir", str(tmp_path / "run"),
         "--cwd", str(tmp_path / "home"), "--default-languages", "python",
         "--pool", "python=1", "--kernel-retry-ms", "0",
         "--kernel-path", str(tmp_path / "kernels"),
         "--envd-url", f"http://127.0.0.1:{free_port()}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc, port, sock
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    sock.close()


def test_failed_context_holds_no_kernel(daemon):
    proc, port, sock = daemon
    sock.settimeout(1)
    end = time.monotonic() + DEADLINE_S
    statuses = []

    def last_status():
        while time.monotonic() < end:
            try:
                data = sock.recv(4096).decode()
            except socket.timeout:
                return statuses[-1] if statuses else ""
            statuses.extend(ln for ln in data.split("\n")
                            if ln.startswith("STATUS="))
        pytest.fail(f"no quiet moment; STATUS= lines: {statuses[-5:]}")

    while "READY=1" not in statuses and time.monotonic() < end:
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            continue
        statuses.extend(data.split("\n"))
    status, body = request(port, "POST", "/contexts",
                           '{"language":"broken"}')
    assert status == 500, body  # FAILED: its kernel exits at once
    want = "2 contexts, 2 kernels (1 warm)"
    while time.monotonic() < end:
        line = last_status()
        kids = children(proc.pid)
        gauges = kernel_gauges(port)
        if want in line and len(kids) == 2 and sum(gauges.values()) == 2:
            break
    else:
        pytest.fail(f"want STATUS= with '{want}', 2 children and gauges "
                    f"adding up to 2; got {statuses[-3:]}, children "
                    f"{children(proc.pid)}, gauges {kernel_gauges(port)}")
    assert gauges["warm"] == 1 and gauges["idle"] == 1, gauges
