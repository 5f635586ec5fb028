"""SIGTERM with streams open (issue 11, item 4): every stream ends with its
error line, end_of_execution and the chunked terminator before the daemon
exits 0, whatever the language, the amount of output and the reader's pace;
the wait is bounded by --stop-timeout-ms.

The streams are read on raw sockets and the chunked encoding is decoded
by the harness, so a stream cut short (no terminator) cannot pass for a
finished one.
"""

import signal
import socket
import threading
import time

from harness import (HEAD_END, ChunkedDecoder, NdjsonReader, check_sequence,
                     parse_head, raw_post, wait_until)

PY_LIGHT = ("import time\n"
            "for i in range(100000):\n"
            "    print('py', i, flush=True)\n"
            "    time.sleep(0.1)\n")
JS_LIGHT = ("for (let i = 0; i < 100000; i++) {\n"
            "  console.log('js', i);\n"
            "  await new Promise(r => setTimeout(r, 100));\n"
            "}\n")
# ipykernel merges what is written between two flushes into one message:
# 200 KB each here.
PY_HEAVY = ("import sys, itertools\n"
            "for i in itertools.count():\n"
            "    sys.stdout.write('y' * 999 + '\\n')\n"
            "    if i % 200 == 0:\n"
            "        sys.stdout.flush()\n")
# One message per line, as fast as the kernel can send them.
PY_HEAVY_LINES = ("import sys\n"
                  "while True:\n"
                  "    sys.stdout.write('w' * 999 + '\\n')\n"
                  "    sys.stdout.flush()\n")
JS_HEAVY = ("const s = 'z'.repeat(999) + '\\n';\n"
            "for (;;) { process.stdout.write(s);"
            " await new Promise(r => setImmediate(r)); }\n")


class RawStream:
    """POST /execute on a raw socket; a thread decodes the chunked body into
    NDJSON lines. `terminated` is set only by the zero-length last chunk;
    `eof` by the connection closing."""

    def __init__(self, d, body, pace=None):
        self.sock = raw_post(d, "/execute", body, timeout=60, close=False)
        self.pace = pace  # (bytes, seconds): read at most that much per step
        self.status = None
        self.lines = []
        self.output = 0  # stdout/stderr lines seen
        self.terminated = False
        self.eof = False
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _recv(self):
        if self.pace:
            time.sleep(self.pace[1])
            return self.sock.recv(self.pace[0])
        return self.sock.recv(1 << 16)

    def _run(self):
        buf = b""
        chunked, ndjson = ChunkedDecoder(), NdjsonReader()
        try:
            while HEAD_END not in buf:
                chunk = self._recv()
                if not chunk:
                    raise EOFError("closed before the response head")
                buf += chunk
            head, _, buf = buf.partition(HEAD_END)
            self.status, hdrs = parse_head(head)
            assert hdrs.get("transfer-encoding") == "chunked", head
            while not chunked.done:
                for line in ndjson.feed(chunked.feed(buf)):
                    self.lines.append(line)
                    if line["type"] in ("stdout", "stderr"):
                        self.output += 1
                if chunked.done:
                    break
                buf = self._recv()
                if not buf:
                    self.eof = True
                    return
            ndjson.end()
            self.terminated = True
        except Exception as e:  # reported by check()
            self.error = e
        finally:
            self.eof = self.eof or not self.terminated

    def wait(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), \
            f"stream neither ended nor closed within {timeout} s"

    def check_shut_down(self, what):
        assert self.error is None, f"{what}: {self.error!r}"
        assert self.status == 200, f"{what}: status {self.status}"
        assert self.terminated, (
            f"{what}: no chunked terminator (cut mid-stream); last lines "
            f"{[str(l)[:100] for l in self.lines[-3:]]}")
        check_sequence(self.lines)
        real = [l for l in self.lines if l["type"] != "keepalive"]
        tail = [str(l)[:100] for l in real[-3:]]
        assert real[-1]["type"] == "end_of_execution", tail
        err = real[-2]
        assert err["type"] == "error", f"{what}: {tail}"
        assert err["name"] == "ContextRestarting", err
        assert "shutting down" in err["value"], err

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()



def _daemon(make_daemon, *extra):
    return make_daemon(args=["--default-languages", "python,javascript",
                             *extra]).wait_healthy()


def _body(d, lang, code, own):
    """An execute body for lang's default context, or for a new one (two
    streams on one context would queue)."""
    if not own:
        return {"code": code, "language": lang}
    ctx = d.client().create_context({"language": lang})
    return {"code": code, "context_id": ctx["id"]}


def _sigterm_with_streams(make_daemon, specs, rounds, extra=()):
    """specs: [(language, code, pace, own context)]. Each round: a fresh
    daemon, the streams opened and producing, SIGTERM, then every stream
    must end properly and the daemon exit 0."""
    for rnd in range(rounds):
        d = _daemon(make_daemon, *extra)
        streams = [RawStream(d, _body(d, lang, code, own), pace)
                   for lang, code, pace, own in specs]
        try:
            for st, (lang, *_) in zip(streams, specs):
                wait_until(lambda: st.output >= 3 or st.error or st.eof,
                           f"{lang} stream produces output", timeout=120)
            d.proc.send_signal(signal.SIGTERM)
            for st in streams:
                st.wait(90)
            rc = d.terminate(deadline_s=90)
            assert rc == 0, f"exit status {rc} (None: no exit within 90 s)"
            problems = d.check_after_exit()
            assert not problems, problems
            for st, (lang, _, pace, _) in zip(streams, specs):
                st.check_shut_down(f"round {rnd}, {lang}"
                                   f"{' slow reader' if pace else ''}")
        finally:
            for st in streams:
                st.close()


def test_sigterm_ends_light_python_and_javascript_streams(make_daemon):
    _sigterm_with_streams(make_daemon, [("python", PY_LIGHT, None, False),
                                        ("javascript", JS_LIGHT, None, False)],
                          rounds=3)


def test_sigterm_ends_heavy_streams(make_daemon):
    # Generous bounds: under ASan or valgrind the backlogs (8 MiB each) take
    # a while to reach the readers.
    _sigterm_with_streams(make_daemon, [("python", PY_HEAVY, None, False),
                                        ("javascript", JS_HEAVY, None, False),
                                        ("python", PY_HEAVY_LINES, None, True)],
                          rounds=2, extra=["--max-backlog", "8M",
                                           "--stop-timeout-ms", "60000"])


def test_sigterm_waits_for_a_slow_reader(make_daemon):
    """Readers taking 16 KiB (4 KiB) per 20 ms behind a full backlog (1 MiB
    here) still get everything to the end."""
    _sigterm_with_streams(make_daemon,
                          [("python", PY_HEAVY_LINES, (16384, 0.02), False),
                           ("javascript", JS_HEAVY, (4096, 0.02), False)],
                          rounds=2, extra=["--max-backlog", "1M",
                                           "--stop-timeout-ms", "60000"])


def test_stop_timeout_bounds_a_reader_that_never_reads(make_daemon, tmp_path):
    """A client that stops reading cannot hold the daemon: after
    --stop-timeout-ms its stream is cut and the daemon exits 0, while the
    stream of a client that reads still ends properly."""
    d = _daemon(make_daemon, "--stop-timeout-ms", "1500",
                "--max-backlog", "16M")
    mark = tmp_path / "printed"
    code = ("import sys, pathlib, time\n"
            "for i in range(8000):\n"
            "    sys.stdout.write('x' * 999 + '\\n')\n"
            "sys.stdout.flush()\n"
            f"pathlib.Path({str(mark)!r}).touch()\n"
            "time.sleep(600)\n")
    # A small receive buffer, set before connecting so the window stays
    # small: the 8 MB stay in the daemon.
    s = raw_post(d, "/execute", {"code": code}, rcvbuf=4096, close=False)
    ok = RawStream(d, {"code": JS_LIGHT, "language": "javascript"})
    try:
        wait_until(mark.exists, "the unread cell printed its 8 MB", timeout=120)
        wait_until(lambda: ok.output >= 3, "the reading stream produces output",
                   timeout=60)
        d.proc.send_signal(signal.SIGTERM)
        # Without the bound the daemon would wait for that client forever.
        rc = d.terminate(deadline_s=30)
        assert rc == 0, f"exit status {rc} (None: no exit within 30 s)"
        assert "cut at exit" in d.log_text()
        ok.wait(30)
        ok.check_shut_down("reading stream")
    finally:
        ok.close()
        s.close()
