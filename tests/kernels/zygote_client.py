"""The daemon's side of kernels/ZYGOTE-PROTOCOL.md, in Python, for
test_zygote.py and zygote_measure.py: starts a zygote on a SOCK_SEQPACKET
socketpair (fd 3 in the zygote), makes this process a child subreaper (so
forked kernels become its children, as they become the daemon's), asks for
kernels with a connection file over ipc, and talks to them over ZeroMQ with
jupyter_client's Session (signing) like the daemon does: kernel_info every
20 ms until a reply and any iopub message arrived, execute_request, and the
iopub messages of a request up to its status idle."""

import ctypes
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import zmq
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "kernels", "python3")
ZYGOTE = os.path.join(PYDIR, "e2b_ci_zygote.py")
CONFIG = os.path.join(PYDIR, "e2b_ci_config.py")
PYTHON = "/usr/bin/python3"
ARGV = [PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}",
        f"--IPKernelApp.extra_config_file={CONFIG}"]
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def become_subreaper():
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def kernel_env(extra=None):
    """The environment the daemon gives a Python kernel (kproc.c
    kproc_build_env): ours, the kernelspec's MPLBACKEND, JPY_PARENT_PID,
    PYDEVD_DISABLE_FILE_VALIDATION."""
    env = dict(os.environ)
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["JPY_PARENT_PID"] = str(os.getpid())
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.update(extra or {})
    return env


def recv_json(sock, timeout):
    sock.settimeout(timeout)
    try:
        data = sock.recv(1 << 20)
    finally:
        sock.settimeout(None)
    if not data:
        raise EOFError("zygote closed its channel")
    return json.loads(data)


class Zygote:
    """One zygote process and the daemon end of its channel."""

    def __init__(self, preload=None, config=CONFIG, env=None, cwd=None,
                 extra_args=(), ready_timeout=120, python=PYTHON,
                 command=None, argv=None):
        """command: the zygote's command line up to its options (default:
        the Python zygote); argv: the kernel argv spawn() asks for by
        default (default: the Python kernelspec's)."""
        become_subreaper()
        self.argv = argv
        self.chan, theirs = socket.socketpair(socket.AF_UNIX,
                                              socket.SOCK_SEQPACKET)
        self.chan.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        args = list(command or [python, ZYGOTE]) + ["--channel-fd", "3"]
        if preload is not None:
            args += ["--preload", ",".join(preload)]
        if config is not None:
            args += ["--config", config]
        args += list(extra_args)
        self.env = kernel_env() if env is None else env
        self.cwd = cwd or os.getcwd()
        self.errfile = tempfile.TemporaryFile()
        fd = theirs.fileno()

        def to_fd3():
            os.dup2(fd, 3)

        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self.errfile,
            stderr=self.errfile, env=self.env, cwd=self.cwd,
            pass_fds=(3,), preexec_fn=to_fd3, start_new_session=True)
        theirs.close()
        self.ready = self.recv(ready_timeout)
        self.ready_after = time.monotonic() - self.started

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        self.errfile.seek(0)
        return self.errfile.read().decode(errors="replace")

    def recv(self, timeout=30):
        return recv_json(self.chan, timeout)

    def request(self, doc, fds=(), timeout=30):
        data = json.dumps(doc).encode()
        if fds:
            socket.send_fds(self.chan, [data], list(fds))
        else:
            self.chan.send(data)
        return self.recv(timeout)

    def spawn(self, cwd=None, env=None, argv=None, user=None, rlimits=None,
              oom_score_adj=800, cgroup_fd=None, runtime_dir=None, rid=None):
        """Asks for one kernel; returns a Kernel (whose .reply is the
        zygote's answer, spawned or error). With user, the connection
        file is handed to that user, as the daemon does."""
        return Kernel(self, cwd=cwd or self.cwd, env=env or self.env,
                      argv=argv or self.argv, user=user, rlimits=rlimits,
                      oom_score_adj=oom_score_adj, cgroup_fd=cgroup_fd,
                      runtime_dir=runtime_dir, rid=rid)

    def close(self, timeout=10):
        self.chan.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Kernel:
    """A kernel asked of a zygote (or exec'd directly, see direct()): its
    pid, the read ends of its stdout/stderr pipes, and a client."""

    # libzmq's ZMQ_RECONNECT_IVL for the client's sockets, in ms (its
    # default is 100).
    reconnect_ivl = 5

    def __init__(self, zygote, cwd, env, argv=None, user=None, rlimits=None,
                 oom_score_adj=800, cgroup_fd=None, runtime_dir=None,
                 rid=None):
        self.make_files(runtime_dir)
        if user is not None:
            os.chown(self.dir, user["uid"], user["gid"])
            os.chown(self.conn_file, user["uid"], user["gid"])
        self.pid = None
        argv = [a.replace("{connection_file}", self.conn_file)
                for a in (argv or ARGV)]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.out_fd, self.err_fd = out_r, err_r
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        doc = {"type": "spawn", "id": rid or self.id, "argv": argv,
               "cwd": cwd, "env": [f"{k}={v}" for k, v in env.items()],
               "fds": ["stdout", "stderr"], "oom_score_adj": oom_score_adj}
        fds = [out_w, err_w]
        if cgroup_fd is not None:
            doc["fds"].append("cgroup")
            fds.append(cgroup_fd)
        if user is not None:
            doc["user"] = user
        if rlimits is not None:
            doc["rlimits"] = rlimits
        self.t_request = time.monotonic()
        try:
            self.reply = zygote.request(doc, fds)
        finally:
            os.close(out_w)
            os.close(err_w)
        self.t_spawned = time.monotonic()
        if self.reply.get("pid"):
            self.pid = self.reply["pid"]
        self.client = None

    def make_files(self, runtime_dir):
        self.id = str(uuid.uuid4())
        self.dir = runtime_dir or tempfile.mkdtemp(prefix="zyg", dir="/tmp")
        self.conn_file = os.path.join(self.dir, f"kernel-{self.id[:8]}.json")
        self.key = uuid.uuid4().hex.encode()
        write_connection_file(self.conn_file, transport="ipc",
                              ip=os.path.join(self.dir, f"k{self.id[:8]}"),
                              key=self.key, shell_port=1, iopub_port=2,
                              stdin_port=3, control_port=4, hb_port=5)

    @classmethod
    def direct(cls, cwd, env, argv=None, runtime_dir=None):
        """A kernel exec'd the way the daemon does today (new session,
        stdin /dev/null, stdout/stderr pipes), for comparisons."""
        self = cls.__new__(cls)
        self.make_files(runtime_dir)
        argv = [a.replace("{connection_file}", self.conn_file)
                for a in (argv or ARGV)]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.out_fd, self.err_fd = out_r, err_r
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        self.t_request = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=out_w, stderr=err_w, env=env,
                                     cwd=cwd, start_new_session=True)
        os.close(out_w)
        os.close(err_w)
        self.t_spawned = time.monotonic()
        self.pid = self.proc.pid
        self.reply = {"type": "spawned", "pid": self.pid}
        self.client = None
        return self

    # -- the kernel's channels --

    def connect(self):
        with open(self.conn_file) as f:
            info = json.load(f)
        self.ctx = zmq.Context()
        # The kernel binds its ipc sockets some tens of ms after the fork:
        # libzmq's default 100 ms between connection attempts would add up
        # to 100 ms to every start (the daemon needs the same setting).
        self.ctx.setsockopt(zmq.RECONNECT_IVL, self.reconnect_ivl)
        self.session = Session(key=self.key)

        def ep(port):
            return f"ipc://{info['ip']}-{info[port]}"

        self.shell = self.ctx.socket(zmq.DEALER)
        self.shell.connect(ep("shell_port"))
        self.control = self.ctx.socket(zmq.DEALER)
        self.control.connect(ep("control_port"))
        self.iopub = self.ctx.socket(zmq.SUB)
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.iopub.connect(ep("iopub_port"))
        self.client = True

    def wait_ready(self, timeout=60, interval=0.02):
        """kernel_info_request every interval until a reply and any iopub
        message arrived (the daemon's handshake). Returns the seconds from
        the spawn request."""
        if not self.client:
            self.connect()
        deadline = time.monotonic() + timeout
        got_reply = got_iopub = False
        last = 0.0
        while not (got_reply and got_iopub):
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"kernel {self.pid} not ready in {timeout} s"
                                   f"; stderr: {self.read_err()!r}")
            if now - last >= interval:
                self.session.send(self.shell, "kernel_info_request", {})
                last = now
            if self.shell.poll(5):
                msg = self.session.recv(self.shell)[1]
                if msg and msg["header"]["msg_type"] == "kernel_info_reply":
                    got_reply = True
            while self.iopub.poll(0):
                self.session.recv(self.iopub)
                got_iopub = True
        self.t_ready = time.monotonic()
        return self.t_ready - self.t_request

    def submit(self, code, silent=False):
        """Sends an execute_request; returns its msg_id."""
        msg = self.session.send(self.shell, "execute_request", {
            "code": code, "silent": silent, "store_history": not silent,
            "user_expressions": {}, "allow_stdin": False,
            "stop_on_error": True})
        return msg["header"]["msg_id"]

    def collect(self, mid, timeout=60, on_iopub=None):
        """(reply content, [(msg_type, content)] of the iopub messages of
        request mid before its status idle); on_iopub(msg_type, content)
        sees each as it arrives."""
        deadline = time.monotonic() + timeout
        reply, outputs, idle = None, [], False
        while reply is None or not idle:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to {mid}: {outputs!r}")
            if self.shell.poll(5):
                m = self.session.recv(self.shell)[1]
                if m and m["parent_header"].get("msg_id") == mid:
                    reply = m["content"]
            while self.iopub.poll(0):
                m = self.session.recv(self.iopub)[1]
                if not m or m["parent_header"].get("msg_id") != mid:
                    continue
                t = m["header"]["msg_type"]
                if t == "status":
                    idle = m["content"]["execution_state"] == "idle"
                else:
                    outputs.append((t, m["content"]))
                    if on_iopub:
                        on_iopub(t, m["content"])
        return reply, outputs

    def execute(self, code, timeout=60, silent=False):
        """Runs code; returns (reply content, [(msg_type, content)] of the
        iopub messages of this request before its status idle)."""
        return self.collect(self.submit(code, silent), timeout)

    def value(self, code, timeout=60):
        """The text/plain of code's result (or a failure with its
        output)."""
        reply, outputs = self.execute(code, timeout)
        for t, c in outputs:
            if t == "execute_result":
                return c["data"]["text/plain"]
        raise AssertionError(f"{code!r}: no result: {reply!r} {outputs!r}")

    def read_out(self):
        return self._drain(self.out_fd)

    def read_err(self):
        return self._drain(self.err_fd)

    @staticmethod
    def _drain(fd):
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace")

    def wait(self, timeout=30):
        """Reaps the kernel (this process is its parent); returns the wait
        status, or None if it did not exit in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.pid = None
                return status
            time.sleep(0.01)
        return None

    def kill(self):
        if self.client:
            for s in (self.shell, self.control, self.iopub):
                s.close(0)
            self.ctx.term()
            self.client = None
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = None
        for fd in (self.out_fd, self.err_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.out_fd = self.err_fd = -1


def private_kib(pid):
    """Private_Dirty + Private_Clean of /proc/PID/smaps_rollup, in KiB, and
    Pss."""
    vals = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                vals[parts[0][:-1]] = int(parts[1])
    return vals.get("Private_Dirty", 0) + vals.get("Private_Clean", 0), \
        vals.get("Pss", 0), vals.get("Rss", 0)


# ---------------------------------------------- helpers of the zygote tests


@pytest.fixture
def kernels():
    """Kernels a test made; all killed and reaped at its end."""
    made = []
    yield made
    for k in made:
        k.kill()


def spawn(z, kernels, **kw):
    k = z.spawn(**kw)
    kernels.append(k)
    return k


def ready(z, kernels, **kw):
    k = spawn(z, kernels, **kw)
    assert k.reply["type"] == "spawned", (k.reply, z.stderr())
    k.wait_ready()
    return k


def stat_fields(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def fd_targets(pid):
    res = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            res[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return res


def env_without(env, *names):
    return {k: v for k, v in env.items() if k not in names}


def wait_gone(pid, timeout=30):
    """Reaps pid (a child of this subreaper); returns its wait status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got == pid:
            return status
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} still alive after {timeout} s")
