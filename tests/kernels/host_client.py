"""What the kernel-host tests share: the e2b-kernel binary they need, a
jupyter_client driver of one kernel, and the processes a cell starts.

test_host_bash.py drives the bash kernel (kernels/bash), test_host_json.py
a fake JSON-mode runner, test_bash_daemon.py the bash kernel behind the real
daemon (through tests/e2e/harness.py). Every wait has a deadline.
"""

import os
import sys
import time
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 15

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402  (the e2e harness: daemons, /proc)


def host_binary():
    return os.environ.get("E2B_KERNEL_BIN") or str(ROOT / "build" / "e2b-kernel")


def require_host():
    """Fails the test (not skips) when the kernel host is not built."""
    path = host_binary()
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `make all` first", pytrace=False)


# ------------------------------------------------------------ processes

def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def procs_matching(needle):
    """(pid, command line) of every live process whose command line has
    needle in it."""
    found = []
    for pid, cmdline in harness.processes():
        cmd = cmdline.replace(b"\0", b" ").decode(errors="replace")
        if needle in cmd and pid_alive(pid):
            found.append((pid, cmd))
    return found


def wait_proc(needle, timeout=10):
    """Polls (with a deadline) until a process matching needle runs: the
    output before it may arrive before the fork."""
    end = time.monotonic() + timeout
    while not procs_matching(needle):
        assert time.monotonic() < end, f"no process {needle!r}"
        time.sleep(0.02)


# --------------------------------------------------------------- a kernel

class Kernel:
    """One kernel process (kernelspec `name`, found on JUPYTER_PATH) plus a
    blocking client. Replies and iopub messages are kept per parent msg_id,
    so requests may overlap. env is added to this process's environment;
    ready=False does not wait for the kernel to answer first."""

    def __init__(self, name, cwd, *, env=None, ipc=None, ready=True):
        self.km = KernelManager(kernel_name=name)
        if ipc is not None:
            self.km.transport = "ipc"
            self.km.ip = str(ipc)
        kw = {"cwd": str(cwd)}
        if env is not None:
            kw["env"] = {**os.environ, **env}
        self.km.start_kernel(**kw)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.replies = {}
        self.iopub = []
        if ready:
            self.kc.wait_for_ready(timeout=DEADLINE)

    @property
    def proc(self):
        return self.km.provisioner.process

    def execute(self, code, **kw):
        return self.kc.execute(code, **kw)

    def reply(self, msg_id, timeout=DEADLINE):
        end = time.monotonic() + timeout
        while msg_id not in self.replies:
            left = end - time.monotonic()
            assert left > 0, f"no reply to {msg_id} within {timeout}s"
            try:
                m = self.kc.get_shell_msg(timeout=left)
            except Exception:
                continue
            self.replies[m["parent_header"].get("msg_id")] = m
        return self.replies.pop(msg_id)

    def wait_iopub(self, pred, timeout=DEADLINE):
        """Reads iopub (keeping everything) until pred(msg) is true."""
        for m in self.iopub:
            if pred(m):
                return m
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            assert left > 0, "iopub message not seen in time"
            try:
                m = self.kc.get_iopub_msg(timeout=left)
            except Exception:
                continue
            self.iopub.append(m)
            if pred(m):
                return m

    def outputs(self, msg_id, timeout=DEADLINE):
        """iopub messages of a request up to and including its idle."""
        self.wait_iopub(lambda m: m["parent_header"].get("msg_id") == msg_id
                        and m["msg_type"] == "status"
                        and m["content"]["execution_state"] == "idle",
                        timeout)
        return [m for m in self.iopub
                if m["parent_header"].get("msg_id") == msg_id]

    def run(self, code, timeout=DEADLINE, **kw):
        msg_id = self.execute(code, **kw)
        reply = self.reply(msg_id, timeout)
        return reply["content"], self.outputs(msg_id, timeout)

    def close(self):
        self.kc.stop_channels()
        if self.km.has_kernel:
            self.km.shutdown_kernel(now=True)
        self.km.cleanup_resources()


def text(outputs, name):
    """The text a request's outputs wrote to stream name, joined."""
    return "".join(m["content"]["text"] for m in outputs
                   if m["msg_type"] == "stream" and m["content"]["name"] == name)


def types(outputs):
    return [m["msg_type"] for m in outputs]
