"""Harness for the end-to-end tests.

Owns these, all standard library only (PyPI is not reachable), so that no
test file writes its own:

- Daemon: one e2b-ci process on a free loopback port with its own runtime
  dir, default cwd and log file; stopping it checks the exit status and that
  nothing it started is still alive. serving() is the one way a fixture
  runs one (started, healthy, stopped and checked).
- FakeEnvd: a threaded http.server answering GET /envs with a JSON object the
  test sets, recording the X-Access-Token headers it received.
- Client / ExecStream: HTTP requests, and POST /execute read line by line
  with every rule of docs/http-contract.md, "Framing", checked on the raw bytes.
- Raw HTTP (raw_connect, raw_post, read_to_eof, parse_responses,
  ChunkedDecoder, NdjsonReader): for tests whose point is what goes over
  the wire, which http.client would hide.
- Kernelspecs: where the daemon finds them (has_kernel) and writing one for
  a test (write_kernelspec).

Every network read has a deadline: a daemon that hangs fails the test, it
never hangs the suite.
"""

import contextlib
import datetime
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

HEALTH_DEADLINE_S = 60
STOP_DEADLINE_S = 20
PROJECT_KERNELS = Path(__file__).resolve().parents[2] / "kernels"

# Fields a result line may carry besides type/is_main_result/extra, and the
# JSON type each must have.
RESULT_STR_FIELDS = ("text", "html", "markdown", "svg", "png", "jpeg", "pdf",
                     "latex", "javascript")
RESULT_OBJ_FIELDS = ("json", "data", "chart")


def free_port(host="127.0.0.1"):
    """A port nothing listens on right now (the kernel picked it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def processes(zombies=False):
    """(pid, command line: bytes, each argument NUL-terminated) of every
    process but this one; zombies (dead, waiting to be reaped) only if
    asked."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
            if not zombies:
                with open(f"/proc/{name}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        continue
        except OSError:
            continue  # exited meanwhile
        yield int(name), cmdline


def sleeps(m, zombies=False):
    """pids of the processes whose argv is exactly `sleep m` (m: a random
    marker, so nothing else on a shared machine matches); zombies count
    only if asked."""
    want = b"sleep\0" + m.encode() + b"\0"
    return [pid for pid, cmdline in processes(zombies) if cmdline == want]


def kill_sleeps(m):
    """SIGKILL to every `sleep m` left: a failed test leaves none running."""
    for pid in sleeps(m):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def processes_referencing(path):
    """(pid, cmdline) of every live process whose command line or
    environment mentions path (kernel connection files live there)."""
    needle = os.fsencode(str(path))
    found = []
    for pid, cmdline in processes(zombies=True):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            environ = b""
        if needle in cmdline or needle in environ:
            found.append((pid, cmdline.replace(b"\0", b" ").decode(
                "utf-8", "replace").strip()))
    return found


# ------------------------------------------------------------ kernelspecs

# Debian's ipykernel as a kernelspec's argv.
IPYKERNEL_ARGV = ["/usr/bin/python3", "-m", "ipykernel_launcher",
                  "-f", "{connection_file}"]
# Kernelspec names of the languages whose spec is not named after them.
SPEC_NAMES = {"python": "python3", "r": "ir"}


def kernel_dirs():
    """Where the daemon looks for kernelspecs, in its order (README.md):
    its --kernel-path (the test daemons use the default, our kernels/),
    then the Jupyter paths."""
    dirs = [PROJECT_KERNELS]
    for p in filter(None, os.environ.get("JUPYTER_PATH", "").split(":")):
        dirs.append(Path(p) / "kernels")
    dirs += [Path.home() / ".local/share/jupyter/kernels",
             Path("/usr/local/share/jupyter/kernels"),
             Path("/usr/share/jupyter/kernels")]
    return dirs


def kernelspec(spec_name, language):
    """The kernel.json the daemon would pick for language, or None."""
    for d in kernel_dirs():
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            kj = sub / "kernel.json"
            if not kj.is_file():
                continue
            try:
                meta = json.loads(kj.read_text())
            except (OSError, ValueError):
                continue
            if sub.name.lower() == spec_name or meta.get("language") == language:
                return kj
    return None


def has_kernel(language):
    """Whether a kernelspec for language is installed where the daemon
    looks."""
    return kernelspec(SPEC_NAMES.get(language, language), language) is not None


def _no_kernel_reason(language):
    return (f"no kernelspec for {language} "
            f"({SPEC_NAMES.get(language, language)!r}) in any of "
            f"{[str(d) for d in kernel_dirs()]}")


def per_language(names):
    """pytest.mark.parametrize over the languages names as "lang", each
    skipped (with the reason) where no kernelspec for it is installed."""
    import pytest  # only where tests run: the load tier imports harness too
    return pytest.mark.parametrize("lang", [
        pytest.param(n, id=n, marks=pytest.mark.skipif(
            not has_kernel(n), reason=_no_kernel_reason(n))) for n in names])


def need_kernel(language):
    """Skips the test when no kernelspec for language is installed."""
    if not has_kernel(language):
        import pytest
        pytest.skip(_no_kernel_reason(language))


def write_kernelspec(top, name, *, script=None, argv=None, language=None,
                     display_name=None, **fields):
    """Writes the kernelspec top/name (made with its parents) and returns
    its directory. script: a shell script launch.sh started as the kernel,
    with the connection file as $1; else argv. fields are added to
    kernel.json as they are (interrupt_mode, env, ...)."""
    d = Path(top) / name
    d.mkdir(parents=True)
    if script is not None:
        (d / "launch.sh").write_text(script)
        argv = argv or ["/bin/sh", "{resource_dir}/launch.sh",
                        "{connection_file}"]
    (d / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": display_name or f"test {name}",
        "language": language or name, **fields}))
    return d


# --------------------------------------------------------------- the daemon

class Daemon:
    """One e2b-ci process. Use start(), then stop() (which returns problems
    as a list of strings rather than raising, so fixtures can report them)."""

    all = []  # every daemon of this session, for failure reports

    def __init__(self, binary, workdir, *, envd_url, args=(), listen="127.0.0.1",
                 port=None, port_via_env=False, host=None, name="daemon",
                 env=None):
        self.binary = str(binary)
        self.workdir = Path(workdir)
        self.name = name
        self.runtime_dir = self.workdir / "run"
        self.cwd = str(self.workdir / "home")
        self.log_path = self.workdir / "daemon.log"
        self.listen = listen
        self.port = port or free_port()
        self.host = host or ("::1" if listen in ("::", "::1") else listen)
        self.envd_url = envd_url
        self.extra_args = list(args)
        self.port_via_env = port_via_env
        self.env = dict(env or {})  # added to its environment
        self.proc = None
        self.returncode = None
        self.started_at = None
        self.stopped_at = None
        Daemon.all.append(self)

    def argv(self):
        argv = [self.binary]
        if self.listen is not None:
            argv += ["--listen", self.listen]
        if not self.port_via_env:
            argv += ["--port", str(self.port)]
        argv += ["--runtime-dir", str(self.runtime_dir), "--cwd", self.cwd,
                 "--envd-url", self.envd_url, "--default-languages", "python",
                 "--keepalive-ms", "300", "--log-level", "debug"]
        return argv + self.extra_args

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.makedirs(self.cwd, exist_ok=True)
        # Configuration comes from our flags (and self.env) only, never from
        # the caller's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_CI_")}
        env.update(self.env)
        if self.port_via_env:
            env["E2B_CI_PORT"] = str(self.port)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env,
                                         cwd=self.workdir)
        finally:
            log.close()
        self.started_at = time.monotonic()
        return self

    def wait_healthy(self, deadline_s=HEALTH_DEADLINE_S, headers=None):
        """Polls GET /health (with headers) until 200 "OK"; raises with the
        log on failure."""
        end = time.monotonic() + deadline_s
        last = "no answer"
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with status {self.proc.returncode} "
                    f"before /health answered\n{self.log_tail()}")
            try:
                r = self.client().request("GET", "/health", headers=headers,
                                          timeout=2)
                if r.status == 200 and json.loads(r.body) == "OK":
                    return self
                last = f"{r.status} {r.body!r}"
            except (OSError, http.client.HTTPException, ValueError) as e:
                last = repr(e)
            time.sleep(0.05)  # polling with a deadline, not synchronization
        raise AssertionError(f"{self.name}: /health not 200 \"OK\" within "
                             f"{deadline_s}s (last: {last})\n{self.log_tail()}")

    def wait_zygote_settled(self, deadline_s=120, zygotes=1):
        """Waits until the zygotes are ready (unless --zygote off) and
        no kernel is starting or stopping, by /metrics. When the zygote
        turns ready the daemon replaces the unused kernels exec'd while it
        loaded (the default Python context's, the spares) and the replaced
        ones exit, and a fork shows the zygote's command line until its
        set-up rewrote it: a test that tells kernels apart by the daemon's
        children must look after that. zygotes: how many must be ready
        (2 once an R kernel started R's)."""
        a = self.extra_args
        if "--zygote" in a and a[a.index("--zygote") + 1] == "off":
            return self
        def settled():
            m = parse_metrics(self.client().request("GET", "/metrics").text)
            return (m.get("e2bci_zygotes_ready") == zygotes and
                    m.get('e2bci_kernels{state="stopping"}') == 0 and
                    m.get('e2bci_kernels{state="starting"}') == 0)

        wait_until(settled, f"{self.name}: {zygotes} zygote(s) ready and "
                   "the kernels they replaced gone", timeout=deadline_s)
        return self

    def client(self):
        return Client(self.host, self.port)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, deadline_s=STOP_DEADLINE_S):
        """SIGTERM, then wait for the exit. Returns the exit status, or None
        if the daemon had to be killed because it did not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(deadline_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.stopped_at = time.monotonic()
                self.returncode = None
                return None
        self.stopped_at = self.stopped_at or time.monotonic()
        self.returncode = self.proc.returncode
        return self.returncode

    def leftovers(self, grace_s=5.0):
        """Processes still referencing the runtime dir, polled for a short
        grace period (a process being reaped still shows its cmdline)."""
        end = time.monotonic() + grace_s
        while True:
            found = processes_referencing(self.runtime_dir)
            if not found or time.monotonic() >= end:
                return found
            time.sleep(0.05)

    def stop(self, deadline_s=STOP_DEADLINE_S):
        """Stops the daemon with SIGTERM and returns a list of contract
        violations (strings): it had died already, it did not exit within the
        deadline, its exit status was not 0, plus check_after_exit()."""
        if self.proc is None:
            return []
        problems = []
        already_exited = self.proc.poll() is not None
        rc = self.terminate(deadline_s)
        if already_exited:
            problems.append(f"{self.name} had already exited (status {rc}) "
                            f"before SIGTERM")
        elif rc is None:
            problems.append(f"{self.name} did not exit within {deadline_s}s "
                            f"of SIGTERM (killed)")
        elif rc != 0:
            problems.append(f"{self.name} exited with status {rc} after "
                            f"SIGTERM, expected 0")
        return problems + self.check_after_exit()

    def check_after_exit(self):
        """Problems left behind by an exited daemon: processes that mention
        its runtime dir (they are killed), files in the runtime dir."""
        problems = []
        survivors = self.leftovers()
        if survivors:
            problems.append(f"processes still referencing {self.runtime_dir} "
                            f"after exit: {survivors}")
            for pid, _ in survivors:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.runtime_dir.exists():
            left = sorted(p.name for p in self.runtime_dir.iterdir())
            if left:
                problems.append(f"files left in the runtime dir: {left}")
        return problems

    def log_text(self):
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=200):
        text = self.log_text().splitlines()
        return "\n".join(text[-lines:])

    def active_since(self, t):
        return self.started_at is not None and (
            self.stopped_at is None or self.stopped_at >= t)


@contextlib.contextmanager
def serving(daemon, healthy=True):
    """Runs daemon for a with-block (a fixture's yield): started, waited for
    until /health is 200 unless healthy is False, then stopped with SIGTERM
    (unless the test stopped it), failing with every problem stop() found
    and the log's tail."""
    daemon.start()
    problems = []
    try:
        if healthy:
            daemon.wait_healthy()
        yield daemon
    finally:
        if daemon.stopped_at is None:
            problems = daemon.stop()
    if problems:
        raise AssertionError("\n".join(problems) + f"\n--- {daemon.name} log "
                             f"tail ---\n" + daemon.log_tail())


# ------------------------------------------------------------ the fake envd

class FakeEnvd:
    """GET /envs answers self.envs as JSON (mode "ok"), or a failure mode:
    "500", "garbage" (not JSON), "array" (JSON, not an object), "nonstring"
    (an object with a non-string value), "hang" (no answer until released).
    Records the X-Access-Token header of every request (None when absent)."""

    def __init__(self):
        self.envs = {}
        self.mode = "ok"
        self.tokens = []
        self.release = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?", 1)[0] != "/envs":
                    self._send(404, b"not found", "text/plain")
                    return
                fake.tokens.append(self.headers.get("X-Access-Token"))
                mode = fake.mode
                if mode == "hang":
                    fake.release.wait(60)
                    mode = "ok"
                if mode == "500":
                    self._send(500, b"boom", "text/plain")
                elif mode == "garbage":
                    self._send(200, b"{not json", "application/json")
                elif mode == "array":
                    self._send(200, b'["A", "B"]', "application/json")
                elif mode == "nonstring":
                    self._send(200, b'{"E2BCI_NUM": 5}', "application/json")
                else:
                    self._send(200, json.dumps(fake.envs).encode(),
                               "application/json")

            def _send(self, status, body, ctype):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the daemon gave up on us; that is allowed

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="fake-envd", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def reset(self):
        self.release.set()
        self.envs = {}
        self.mode = "ok"
        self.tokens = []
        self.release = threading.Event()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------- the HTTP client

class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:500]!r}>"


def _encode_body(body):
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class Client:
    def __init__(self, host, port):
        self.host = host
        self.port = port

    def connection(self, timeout):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a fresh connection; the whole body is read.
        Never accepts 502 (both SDKs turn it into 'sandbox timed out')."""
        data = _encode_body(body)
        hdrs = {"Connection": "close"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            resp = Response(r.status, r.reason,
                            {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()
        assert resp.status != 502, f"{method} {path} answered 502: {resp!r}"
        return resp

    def get_json(self, path, timeout=30):
        r = self.request("GET", path, timeout=timeout)
        assert r.status == 200, r
        assert_json_type(r)
        return r.json()

    # -- contexts

    def create_context(self, body=None, timeout=60):
        r = self.request("POST", "/contexts", {} if body is None else body,
                         timeout=timeout)
        assert r.status == 200, r
        assert_json_type(r)
        ctx = r.json()
        assert isinstance(ctx, dict) and isinstance(ctx.get("id"), str), ctx
        return ctx

    def contexts(self):
        ctxs = self.get_json("/contexts")
        assert isinstance(ctxs, list), ctxs
        return ctxs

    def restart(self, ctx_id, timeout=60):
        return self.request("POST", f"/contexts/{ctx_id}/restart", timeout=timeout)

    def delete(self, ctx_id, timeout=60):
        return self.request("DELETE", f"/contexts/{ctx_id}", timeout=timeout)

    # -- execute

    def stream(self, code, *, headers=None, timeout=60, path="/execute",
               body=None, **fields):
        """Opens POST /execute and returns an ExecStream after the status line
        and headers arrived. body (raw) overrides code/fields."""
        if body is None:
            body = {"code": code, **fields}
        return ExecStream(self, path, _encode_body(body), headers, timeout)

    def execute(self, code, *, headers=None, timeout=60, path="/execute",
                **fields):
        """POST /execute, the whole stream read and checked; returns the list
        of parsed lines (keepalives included)."""
        with self.stream(code, headers=headers, timeout=timeout, path=path,
                         **fields) as s:
            assert s.status == 200, f"/execute answered {s.status}: {s.read_rest()!r}"
            return s.read_all()


class ExecStream:
    """A POST /execute response read one NDJSON line at a time. Every line is
    checked against the contract as it arrives; read_all() also checks the
    sequence. close() (or leaving the with-block) drops the connection at
    once, which is what a client timing out does."""

    def __init__(self, client, path, data, headers, timeout):
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.lines = []
        self.done = False
        hdrs = {"Content-Type": "application/json", "Connection": "close"}
        hdrs.update(headers or {})
        self.conn = client.connection(timeout)
        self.conn.request("POST", path, body=data, headers=hdrs)
        # getresponse() drops conn.sock when the answer will close the
        # connection; keep our own reference for timeouts and shutdown.
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        assert self.status != 502, f"/execute answered 502: {self.read_rest()!r}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _arm(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"stream did not progress in time; lines so "
                                 f"far: {self.lines}")
        self.sock.settimeout(remaining)

    def read_rest(self):
        try:
            self._arm(self.deadline)
            return self.resp.read()
        except (OSError, http.client.HTTPException) as e:
            return repr(e).encode()

    def next_line(self, timeout=None):
        """The next parsed line, or None at the end of the body. Raises
        AssertionError when nothing arrives in time (timeout, or else the
        stream's overall deadline)."""
        deadline = self.deadline if timeout is None else min(
            self.deadline, time.monotonic() + timeout)
        if self.done:
            return None
        try:
            self._arm(deadline)
            raw = self.resp.readline()
        except socket.timeout:
            raise AssertionError(f"no NDJSON line within the deadline; lines so "
                                 f"far: {self.lines}") from None
        if not raw:
            self.done = True
            return None
        obj = parse_line(raw)
        self.lines.append(obj)
        return obj

    def read_until(self, pred, timeout=None):
        """Reads until pred(line) holds; returns that line. Fails at EOF."""
        while True:
            line = self.next_line(timeout)
            assert line is not None, f"stream ended early: {self.lines}"
            if pred(line):
                return line

    def read_all(self, timeout=None):
        """Reads to the end of the body and checks the whole sequence."""
        deadline = self.deadline if timeout is None else time.monotonic() + timeout
        while self.next_line(max(0.001, deadline - time.monotonic())) is not None:
            pass
        check_sequence(self.lines)
        return self.lines

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.resp.close()
        self.conn.close()


# ------------------------------------------------------------ raw HTTP

HEAD_END = b"\r\n\r\n"


def raw_connect(d, timeout=10, rcvbuf=None):
    """A TCP connection to daemon d. rcvbuf is set before connecting, so the
    window the daemon sees stays that small: a client that reads slowly."""
    s = socket.socket(socket.AF_INET6 if ":" in d.host else socket.AF_INET,
                      socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((d.host, d.port))
    except BaseException:
        s.close()
        raise
    return s


def raw_post(d, path, body, *, timeout=60, rcvbuf=None, close=True):
    """Sends POST path with body (JSON-encoded unless bytes) on a new
    connection and returns the socket, the answer unread."""
    data = _encode_body(body)
    s = raw_connect(d, timeout, rcvbuf)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n"
              % (path.encode(), b"Connection: close\r\n" if close else b"",
                 len(data)) + data)
    return s


def raw_execute(d, code, *, rcvbuf=None, timeout=120, **fields):
    """POST /execute of code (and fields) on a raw socket, returned with
    the answer unread: read_execute() reads it."""
    return raw_post(d, "/execute", {"code": code, **fields}, timeout=timeout,
                    rcvbuf=rcvbuf)


def read_to_eof(s, timeout=10, limit=1 << 20):
    """Everything the peer sends until it closes (or resets) the connection,
    at most limit bytes (None: no limit); fails if it neither closes nor
    stops within timeout."""
    s.settimeout(timeout)
    data = bytearray()
    try:
        while limit is None or len(data) < limit:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"connection still open after {timeout} s; "
                             f"received {bytes(data[:300])!r}") from None
    return bytes(data)


def closed_by_peer(s):
    """True once the daemon closed s (EOF or reset), False while it is
    open. Reads (and drops) anything the daemon sent before closing."""
    s.setblocking(False)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


class ChunkedDecoder:
    """A chunked body decoded as its bytes arrive. feed(data) returns the
    body bytes data completed; done turns true with the last (zero-size)
    chunk and its final CRLF, after which rest holds what followed. A
    framing error (a size that is not hex digits, a chunk not followed by
    CRLF, trailers) fails the test."""

    HEX = frozenset(b"0123456789abcdefABCDEF")

    def __init__(self):
        self.buf = bytearray()
        self.left = None  # bytes of the current chunk to come; None: a size
        self.last = False  # the current chunk is the zero-size one
        self.done = False
        self.rest = b""

    def feed(self, data):
        self.buf += data
        out, pos = bytearray(), 0
        while not self.done:
            if self.left is None:
                eol = self.buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                field = bytes(self.buf[pos:eol])
                assert field and set(field) <= self.HEX, \
                    f"bad chunk size {field[:100]!r}"
                self.left = int(field, 16)
                self.last = self.left == 0
                pos = eol + 2
            take = min(self.left, len(self.buf) - pos)
            out += self.buf[pos:pos + take]
            pos += take
            self.left -= take
            if self.left or len(self.buf) - pos < 2:
                break
            assert self.buf[pos:pos + 2] == b"\r\n", \
                f"chunk not followed by CRLF: {bytes(self.buf[pos:pos + 100])!r}"
            pos += 2
            self.left = None
            self.done = self.last
        del self.buf[:pos]
        if self.done:
            self.rest, self.buf = bytes(self.buf), bytearray()
        return bytes(out)


class NdjsonReader:
    """NDJSON lines from body bytes as they arrive: feed(body) returns the
    lines it completed, each parsed and checked (parse_line); end() fails
    if a partial line is left."""

    def __init__(self):
        self.partial = bytearray()

    def feed(self, body):
        self.partial += body
        last = self.partial.rfind(b"\n")
        if last < 0:
            return []
        whole = self.partial[:last + 1]
        del self.partial[:last + 1]
        return [parse_line(bytes(raw) + b"\n")
                for raw in whole.split(b"\n")[:-1]]

    def end(self):
        assert not self.partial, \
            f"partial line at the end: {bytes(self.partial[:200])!r}"


def ndjson_lines(body):
    """Every line of a whole NDJSON body, parsed, checked, and checked as
    an execution's sequence."""
    reader = NdjsonReader()
    lines = reader.feed(body)
    reader.end()
    check_sequence(lines)
    return lines


def parse_head(head):
    """(status, {lower-case header: value}) of a raw response head."""
    lines = head.decode("latin-1").split("\r\n")
    version, status, _ = (lines[0].split(" ", 2) + [""])[:3]
    assert version == "HTTP/1.1", f"not a status line: {lines[0]!r}"
    hdrs = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        assert colon, f"bad header line {line!r} in {head!r}"
        name = name.lower()
        assert name not in hdrs or name == "set-cookie", \
            f"header {name} twice: {head!r}"
        hdrs[name] = value.strip()
    return int(status), hdrs


def parse_responses(data):
    """Splits raw bytes into [(status, {header: value}, body)]; each message
    must be complete (Content-Length or chunked), nothing may be left."""
    out = []
    while data:
        head, sep, rest = data.partition(HEAD_END)
        assert sep, f"truncated response head: {data[:300]!r}"
        status, hdrs = parse_head(head)
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            assert len(rest) >= n, f"body shorter than Content-Length: {data!r}"
            body, data = rest[:n], rest[n:]
        elif hdrs.get("transfer-encoding") == "chunked":
            dec = ChunkedDecoder()
            body = dec.feed(rest)
            assert dec.done, f"chunked body cut short: {rest[-100:]!r}"
            data = dec.rest
        else:
            assert status in (100, 204, 304), f"no length: {head!r}"
            body = b""
            data = rest
        out.append((status, hdrs, body))
    return out


def exchange(d, raw, timeout=10):
    """Sends raw, reads until the daemon closes; returns the parsed
    responses. Use with requests that end in Connection: close or an
    error."""
    with raw_connect(d) as s:
        s.sendall(raw)
        return parse_responses(read_to_eof(s, timeout))


def read_execute(s, timeout=120):
    """The whole answer to a POST /execute sent on s (raw_post), read as
    fast as it comes until the daemon closes: status 200, the chunked
    framing, every NDJSON line and the sequence checked. Closes s."""
    with s:
        data = read_to_eof(s, timeout, limit=None)
    resp = parse_responses(data)
    assert len(resp) == 1 and resp[0][0] == 200, \
        f"/execute answered {[r[:2] for r in resp]}: {data[:300]!r}"
    assert resp[0][1].get("transfer-encoding") == "chunked", resp[0][1]
    return ndjson_lines(resp[0][2])


# ------------------------------------------------------- the NDJSON checks

def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name} in the stream")


def _is_iso8601(s):
    try:
        datetime.datetime.fromisoformat(s)
        return True
    except ValueError:
        return False


def parse_line(raw):
    """Parses one raw NDJSON line (bytes, '\\n' included) and checks it."""
    assert raw.endswith(b"\n"), f"line not terminated by \\n: {raw!r}"
    body = raw[:-1]
    assert body.strip(), f"blank line in the NDJSON stream: {raw!r}"
    assert b"\n" not in body and b"\r" not in body, f"bad line break: {raw!r}"
    assert raw.isascii(), f"non-ASCII bytes in the NDJSON stream: {raw!r}"
    obj = json.loads(body.decode("ascii"), parse_constant=_reject_constant)
    assert isinstance(obj, dict), f"NDJSON line is not an object: {raw!r}"
    check_line(obj)
    return obj


def check_line(obj):
    t = obj.get("type")
    assert isinstance(t, str), f"line without a string type: {obj}"
    if t == "number_of_executions":
        n = obj.get("execution_count")
        assert isinstance(n, int) and not isinstance(n, bool), obj
    elif t in ("stdout", "stderr"):
        assert isinstance(obj.get("text"), str), obj
        ts = obj.get("timestamp")
        assert isinstance(ts, str) and _is_iso8601(ts), f"bad timestamp: {obj}"
    elif t == "result":
        assert isinstance(obj.get("is_main_result"), bool), obj
        assert isinstance(obj.get("extra"), dict), f"extra missing: {obj}"
        for k in RESULT_STR_FIELDS:
            if k in obj:
                assert isinstance(obj[k], str), f"{k} not a string: {obj}"
        for k in RESULT_OBJ_FIELDS:
            if k in obj:
                # json carries dicts and lists (issue 5: list results get
                # application/json too); data and chart are objects.
                ok = (dict, list) if k == "json" else dict
                assert isinstance(obj[k], ok), f"{k} of the wrong type: {obj}"
        nulls = [k for k, v in obj.items() if v is None]
        assert not nulls, f"absent formats must be omitted, not null: {obj}"
    elif t == "error":
        for k in ("name", "value", "traceback"):
            assert isinstance(obj.get(k), str), f"error.{k} not a string: {obj}"


def check_sequence(lines):
    types = [l["type"] for l in lines]
    assert types and types[-1] == "end_of_execution", \
        f"end_of_execution must be the last line: {types}"
    assert types.count("end_of_execution") == 1, f"several ends: {types}"
    assert types.count("error") <= 1, f"more than one error line: {lines}"
    assert types.count("number_of_executions") <= 1, types
    if "number_of_executions" in types:
        first = types.index("number_of_executions")
        before = [t for t in types[:first] if t != "keepalive"]
        assert not before, f"output before number_of_executions: {types}"


# ------------------------------------------------------ stream accessors

def content(lines):
    """The lines without keepalives."""
    return [l for l in lines if l["type"] != "keepalive"]


def of_type(lines, t):
    return [l for l in lines if l["type"] == t]


def stdout(lines):
    return "".join(l["text"] for l in of_type(lines, "stdout"))


def stderr(lines):
    return "".join(l["text"] for l in of_type(lines, "stderr"))


def error(lines):
    errs = of_type(lines, "error")
    return errs[0] if errs else None


def main_text(lines):
    """text of the main result; fails on an error or a missing result."""
    err = error(lines)
    assert err is None, f"unexpected error: {err['name']}: {err['value']}\n{err['traceback']}"
    mains = [l for l in of_type(lines, "result") if l["is_main_result"]]
    assert len(mains) == 1, f"expected one main result: {lines}"
    return mains[0].get("text")


def assert_json_type(resp):
    ctype = resp.headers.get("content-type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", resp


def assert_text_error(resp, status=None):
    """A failure answer: the status (an int or a range), a plain-text,
    non-empty body."""
    if status is not None:
        if isinstance(status, range):
            assert resp.status in status, resp
        else:
            assert resp.status == status, resp
    ctype = resp.headers.get("content-type", "")
    assert ctype.split(";")[0].strip().lower() == "text/plain", resp
    assert resp.body.strip(), f"empty error body: {resp!r}"
    return resp.text


# ------------------------------------------------------------- waiting

def executions_over(client, n):
    """True once the daemon made n executions and none is in flight (its
    /metrics): the way to see a cell end without reading its stream."""
    m = client.request("GET", "/metrics").text
    return ("e2bci_executions_in_flight 0" in m
            and f"e2bci_executions_total {n}" in m)


def parse_metrics(text):
    """Prometheus text as {name with its labels: value}; comments and
    lines that are no sample are passed over."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def wait_until(cond, what, timeout=20, interval=0.05):
    """Polls cond() until it is true; fails the test naming what after
    timeout seconds. Polling with a deadline, not synchronization: for
    effects the daemon or a kernel shows only from the outside."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"not within {timeout} s: {what}"
        time.sleep(interval)


# ------------------------------------------------------ cells that wait

def wait_cell(path, before="", after=""):
    """Code that prints 'ready', then blocks until path exists (at most 60 s,
    so a broken test never leaves a kernel busy for long)."""
    return (f"{before}\n"
            "import os as _os, time as _time\n"
            "print('ready', flush=True)\n"
            "_t = _time.monotonic()\n"
            f"while not _os.path.exists({str(path)!r}) and _time.monotonic() - _t < 60:\n"
            "    _time.sleep(0.01)\n"
            f"{after}\n")


def is_ready(line):
    return line["type"] == "stdout" and "ready" in line["text"]
