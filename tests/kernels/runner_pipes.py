"""The test side of kernels/RUNNER-PROTOCOL.md (mode "json"), shared by the
runner tests (test_node_runner.py, test_java_runner.py): one runner process
driven directly as e2b-kernel drives it, requests on stdin, user output on
fd 1 and 2, events (one JSON object per line) on fd 3; the text of "stream"
events joins the output of fd 1 or 2, as the host makes both stream
messages. The runner gets its own session, as the host gives it, so SIGINT
goes to its process group."""

import json
import os
import select
import signal
import subprocess
import time


class RunnerPipes:
    """One runner process and the three pipes it writes. Subclasses set the
    timeouts their runtime needs and the first request id."""

    READY_TIMEOUT = 20
    EVENT_TIMEOUT = 20
    OUTPUT_TIMEOUT = 10
    CLOSE_TIMEOUT = 5
    FIRST_ID = 0

    def __init__(self, argv, cwd=None, env=None, preexec_fn=None):
        r3, w3 = os.pipe()
        # The event pipe must be fd 3 in the runner: bash moves it there
        # (dash takes single-digit fd numbers only).
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3>&{w3} {w3}>&-'] + argv,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=(w3,), cwd=cwd, env=env,
            start_new_session=True, preexec_fn=preexec_fn)
        os.close(w3)
        self.fds = {"events": r3, "stdout": self.proc.stdout.fileno(),
                    "stderr": self.proc.stderr.fileno()}
        for fd in self.fds.values():
            os.set_blocking(fd, False)
        self.buf = b""
        self.out = {"stdout": b"", "stderr": b""}
        self.events = []
        self.closed = set()
        self.next_id = self.FIRST_ID
        self.ready = self.wait_event(lambda e: True, timeout=self.READY_TIMEOUT)
        self.ready_after = time.monotonic() - self.started

    # -- pipes --

    def _read(self, name, limit=1 << 20):
        try:
            chunk = os.read(self.fds[name], limit)
        except BlockingIOError:
            return 0
        if not chunk:
            self.closed.add(name)
            return 0
        if name == "events":
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                ev = json.loads(line)
                self.events.append(ev)
                # A stream event is output, as the host publishes fd 1/2.
                if ev.get("type") == "stream" and ev.get("name") in self.out:
                    self.out[ev["name"]] += ev["text"].encode()
        else:
            self.out[name] += chunk
        return len(chunk)

    def pump(self, timeout, names=("events", "stdout", "stderr"), limit=1 << 20):
        """Reads whatever arrives within timeout seconds (at most)."""
        fds = [self.fds[n] for n in names if n not in self.closed]
        if not fds:
            time.sleep(timeout)
            return
        ready, _, _ = select.select(fds, [], [], timeout)
        for n in names:
            if self.fds[n] in ready:
                self._read(n, limit)

    def drain(self, name):
        """Like the host on "done": reads fd 1 or 2 until EAGAIN."""
        while self._read(name):
            pass

    def wait_event(self, pred, timeout=None, **kw):
        deadline = time.monotonic() + (timeout or self.EVENT_TIMEOUT)
        seen = 0
        while True:
            for e in self.events[seen:]:
                if pred(e):
                    return e
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0 or "events" in self.closed:
                raise AssertionError(
                    f"no matching event; events={self.events[-20:]!r} "
                    f"stderr={self.out['stderr'][-2000:]!r}")
            self.pump(min(left, 0.2), **kw)

    def wait_output(self, name, text, timeout=None):
        deadline = time.monotonic() + (timeout or self.OUTPUT_TIMEOUT)
        while text.encode() not in self.out[name]:
            left = deadline - time.monotonic()
            assert left > 0, f"{name} lacks {text!r}: {self.out[name][-2000:]!r}"
            self.pump(min(left, 0.2))

    # -- requests --

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def submit(self, code, silent=False):
        """Sends an execute request; returns its id."""
        self.next_id += 1
        self.send({"type": "execute", "id": self.next_id, "code": code,
                   "silent": silent})
        return self.next_id

    def interrupt(self):
        os.killpg(self.proc.pid, signal.SIGINT)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send({"type": "shutdown"})
                self.proc.stdin.close()
                self.proc.wait(timeout=self.CLOSE_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()
        os.close(self.fds["events"])
