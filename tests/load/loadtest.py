#!/usr/bin/python3
"""Load, fault and soak tests for e2b-ci (`make loadtest`, `make loadtest-quick`).

One daemon (tests/e2e/harness.py: loopback, free port, temp dirs, no envd
behind --envd-url) serves every scenario in turn; the contexts are made
once, before the first one:

  health   N concurrent GET /health (all connections open first), R rounds
  execute  N concurrent streaming executions spread over the contexts, R rounds
  abort    clients that go away at random points (right after connecting,
           mid-headers, mid-body, before reading, after the head,
           mid-stream, mid-stream with RST) mixed with well-behaved ones;
           then every context must answer 1+1
  sigkill  executions on every context while random kernels get SIGKILL:
           each affected stream must end with a ContextRestarting error and
           end_of_execution, the others must complete; every context
           answers 1+1 afterwards, each kill is counted as a crash
  soak     many small executions (1+1 / print) over keep-alive connections
  bigprint one print of 300 MB (40 MB with --quick) read as it arrives
           (a blocking socket, like curl): every byte must arrive
  lateread a print of 300 MB (80 MB with --quick) with a client that reads
           nothing until the cell is over: the first --max-backlog bytes,
           one truncation notice, end_of_execution

Each row: requests, errors (any failed check of a request), streams ended
properly (end_of_execution last, exactly once), lost (requests that got no
answer at all), p50/p99 latency (to the last byte), the daemon's peak RSS during the
row (VmHWM, reset when the row starts), and its RSS, open fds and kernel
children before and after. "After" is taken once the
daemon settled (nothing in flight, every kernel idle or warm, the kernel
count back) and 2.6 s without HTTP traffic (the daemon trims its heap 2 s
after traffic stops). A row fails when a request failed or was lost, a
scenario check failed, the fds or kernel count differ, RSS grew by more
than --rss-slack-mib, or the peak passed the daemon's output budget
(--max-backlog-total: 96 MiB, 64 MiB with --quick) plus 32 MiB.

Every network wait has a deadline and every scenario a time budget; the
run stops by itself. Exit status 0 when every row passed and the daemon
stopped cleanly (status 0, nothing left behind), 1 otherwise.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402

MiB = 1024 * 1024

FULL = dict(
    contexts=20,
    health_conc=500, health_rounds=4,
    exec_conc=100, exec_rounds=3,
    abort_clients=300, abort_good=100, abort_spread_s=4.0,
    kill_per_ctx=3, kill_rounds=2, kill_count=8,
    soak_total=10000, soak_contexts=4, soak_conns=8, soak_budget_s=170,
    print_mb=300, late_mb=300, backlog_mib=64, backlog_total_mib=96,
)
QUICK = dict(
    contexts=4,
    health_conc=200, health_rounds=1,
    exec_conc=20, exec_rounds=1,
    abort_clients=40, abort_good=12, abort_spread_s=1.5,
    kill_per_ctx=2, kill_rounds=1, kill_count=2,
    soak_total=600, soak_contexts=2, soak_conns=4, soak_budget_s=40,
    # bigprint smaller than the backlog: on a busy machine even a blocking
    # reader can fall behind for a moment, and make test must not flake.
    print_mb=40, late_mb=80, backlog_mib=48, backlog_total_mib=64,
)
SCENARIOS = ("health", "execute", "abort", "sigkill", "soak", "bigprint",
             "lateread")
# What the daemon may hold beyond its output budget (backlog_total_mib, set
# explicitly): no row's peak RSS may pass their sum.
PEAK_SLACK_MIB = 32
# How an aborting client goes away: right after connecting, mid-headers,
# mid-body, after sending the request without reading, after the response
# head, after a few stream lines (FIN), the same with RST.
ABORT_MODES = ("connect", "partial-headers", "partial-body", "no-read",
               "after-head", "mid-stream", "mid-stream-rst")


class NoAnswer(Exception):
    """The connection ended (or timed out) before a status line."""


class BadAnswer(Exception):
    """A malformed or unexpected answer."""


# ------------------------------------------------------------ HTTP client

class Conn:
    """One HTTP/1.1 connection over asyncio streams, with our own framing
    (Content-Length, chunked, or to EOF) so aborts can happen anywhere."""

    def __init__(self, reader, writer):
        self.r = reader
        self.w = writer
        self.closed = False

    @classmethod
    async def open(cls, host, port, timeout=10):
        r, w = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=4 * MiB), timeout)
        return cls(r, w)

    @staticmethod
    def request_bytes(method, path, body=None, keepalive=False):
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
                f"Connection: {'keep-alive' if keepalive else 'close'}"]
        if body is not None:
            head += ["Content-Type: application/json",
                     f"Content-Length: {len(body)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")

    async def send(self, data):
        self.w.write(data)
        await self.w.drain()

    async def head(self, timeout):
        """(status, headers); headers lower-cased."""
        try:
            raw = await asyncio.wait_for(self.r.readuntil(b"\r\n\r\n"), timeout)
        except asyncio.IncompleteReadError as e:
            raise NoAnswer(f"connection closed before the status line "
                           f"({len(e.partial)} bytes)") from None
        except (asyncio.TimeoutError, ConnectionError) as e:
            raise NoAnswer(f"no status line: {e!r}") from None
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise BadAnswer(f"bad status line {lines[0]!r}")
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        return int(parts[1]), hdrs

    async def chunks(self, hdrs, deadline):
        """Yields the body in pieces as they arrive."""
        async def rd(coro):
            left = deadline - time.monotonic()
            if left <= 0:
                raise BadAnswer("body did not complete in time")
            try:
                return await asyncio.wait_for(coro, left)
            except asyncio.TimeoutError:
                raise BadAnswer("body did not complete in time") from None
            except asyncio.IncompleteReadError:
                raise BadAnswer("connection closed mid-body") from None

        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            while True:
                line = await rd(self.r.readuntil(b"\r\n"))
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (await rd(self.r.readuntil(b"\r\n"))) != b"\r\n":
                        pass  # trailers
                    return
                data = await rd(self.r.readexactly(size + 2))
                if data[-2:] != b"\r\n":
                    raise BadAnswer("bad chunk framing")
                yield data[:-2]
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            if n:
                yield await rd(self.r.readexactly(n))
        else:
            while True:
                data = await rd(self.r.read(65536))
                if not data:
                    return
                yield data

    async def body(self, hdrs, timeout):
        deadline = time.monotonic() + timeout
        return b"".join([c async for c in self.chunks(hdrs, deadline)])

    def reusable(self, hdrs):
        return hdrs.get("connection", "").lower() != "close"

    def close(self, rst=False):
        if self.closed:
            return
        self.closed = True
        if rst:
            sock = self.w.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                except OSError:
                    pass
        self.w.close()


class Result:
    """What one request got."""

    def __init__(self):
        self.answered = False     # a status line arrived
        self.status = None
        self.lines = []           # parsed NDJSON lines
        self.stream = False       # a 200 /execute stream
        self.ended = False        # end_of_execution last, exactly once
        self.error = None         # first failed check, or None
        self.latency = None

    def fail(self, msg):
        if self.error is None:
            self.error = msg


def ended_properly(lines):
    types = [l["type"] for l in lines]
    return bool(types) and types[-1] == "end_of_execution" and \
        types.count("end_of_execution") == 1


async def read_stream(conn, hdrs, res, deadline, on_line=None, stop_after=None):
    """Reads NDJSON lines of an /execute answer into res; each line checked
    by the harness. on_line(obj) is called per line; stop_after lines read
    returns early (for aborting clients). Returns True at the end of body."""
    parts = []  # the pieces of the line being read (a line may be MBs)
    async for piece in conn.chunks(hdrs, deadline):
        while True:
            nl = piece.find(b"\n")
            if nl < 0:
                if piece:
                    parts.append(piece)
                break
            parts.append(piece[:nl + 1])
            piece = piece[nl + 1:]
            raw, parts = b"".join(parts), []
            try:
                obj = harness.parse_line(raw)
            except (AssertionError, ValueError) as e:
                res.fail(f"bad NDJSON line: {e}")
                continue
            res.lines.append(obj)
            if on_line:
                on_line(obj)
            if stop_after is not None and len(res.lines) >= stop_after:
                return False
    if parts:
        res.fail(f"unterminated last line {b''.join(parts)[:200]!r}")
    return True


async def execute(host, port, code, ctx_id=None, timeout=60, conn=None,
                  keepalive=False, on_line=None):
    """POST /execute and the whole stream; returns (Result, conn or None):
    the connection is given back when it may be reused."""
    res = Result()
    body = {"code": code}
    if ctx_id:
        body["context_id"] = ctx_id
    t0 = time.monotonic()
    deadline = t0 + timeout
    own = conn is None
    try:
        if own:
            conn = await Conn.open(host, port)
        await conn.send(Conn.request_bytes("POST", "/execute",
                                           json.dumps(body).encode(), keepalive))
        status, hdrs = await conn.head(max(0.1, deadline - time.monotonic()))
        res.answered, res.status = True, status
        if status != 200:
            text = await conn.body(hdrs, 10)
            res.fail(f"/execute answered {status}: {text[:200]!r}")
            conn.close()
            return res, None
        res.stream = True
        await read_stream(conn, hdrs, res, deadline, on_line)
        res.latency = time.monotonic() - t0
        res.ended = ended_properly(res.lines)
        if not res.ended:
            res.fail("stream did not end with exactly one end_of_execution: "
                     f"{[l['type'] for l in res.lines][-5:]}")
        else:
            try:
                harness.check_sequence(res.lines)
            except AssertionError as e:
                res.fail(f"bad sequence: {e}")
        if keepalive and conn.reusable(hdrs) and res.ended:
            return res, conn
    except (NoAnswer, OSError, asyncio.TimeoutError) as e:
        res.fail(f"no answer: {e!r}" if not res.answered else repr(e))
    except BadAnswer as e:
        res.fail(str(e))
    if conn is not None:
        conn.close()
    return res, None


def read_rest(s):
    """Everything a blocking socket delivers until EOF."""
    buf = bytearray()
    while True:
        data = s.recv(1 << 20)
        if not data:
            return bytes(buf)
        buf += data


def read_raw(host, port, request, timeout):
    """Sends request and reads the answer to EOF on a blocking socket."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(request)
        return read_rest(s)


def parse_raw(raw, res):
    """An /execute answer read whole: status, chunked body, every line."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 "):
        raise BadAnswer(f"bad answer head {head[:100]!r}")
    res.status = int(head.split()[1])
    if res.status != 200:
        res.fail(f"/execute answered {res.status}")
        return
    res.stream = True
    body, i = [], 0
    while True:
        eol = rest.index(b"\r\n", i)
        size = int(rest[i:eol].split(b";")[0], 16)
        if size == 0:
            break
        body.append(rest[eol + 2:eol + 2 + size])
        i = eol + 2 + size + 2
    for line in b"".join(body).split(b"\n")[:-1]:
        res.lines.append(harness.parse_line(line + b"\n"))
    res.ended = ended_properly(res.lines)
    if not res.ended:
        res.fail("stream did not end with end_of_execution")


async def simple(host, port, method, path, body=None, timeout=30):
    """One request on its own connection: (status, body bytes)."""
    conn = await Conn.open(host, port)
    try:
        await conn.send(Conn.request_bytes(
            method, path, None if body is None else json.dumps(body).encode()))
        status, hdrs = await conn.head(timeout)
        return status, await conn.body(hdrs, timeout)
    finally:
        conn.close()


def stdout_of(lines):
    return "".join(l["text"] for l in lines if l["type"] == "stdout")


def error_of(lines):
    errs = [l for l in lines if l["type"] == "error"]
    return errs[0] if errs else None


def main_text_of(lines):
    mains = [l for l in lines if l["type"] == "result" and l["is_main_result"]]
    return mains[0].get("text") if len(mains) == 1 else None


def check_result(res, want_stdout=None, want_text=None):
    if res.error or not res.stream:
        return
    err = error_of(res.lines)
    if err is not None:
        res.fail(f"unexpected error {err['name']}: {err['value']}")
        return
    if want_stdout is not None and stdout_of(res.lines) != want_stdout:
        res.fail(f"stdout {stdout_of(res.lines)!r} != {want_stdout!r}")
    if want_text is not None and main_text_of(res.lines) != want_text:
        res.fail(f"main result {main_text_of(res.lines)!r} != {want_text!r}")


# ------------------------------------------------------ daemon observation

def kernel_children(d):
    """{pid: cmdline} of the daemon's live child processes whose command
    line mentions its runtime dir (the kernels), plus zombie children."""
    needle = os.fsencode(str(d.runtime_dir))
    kids, zombies = {}, []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            fields = stat.rsplit(b")", 1)[1].split()
            if int(fields[1]) != d.proc.pid:
                continue
            if fields[0] == b"Z":
                zombies.append(int(name))
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if needle in cmd:
            kids[int(name)] = cmd.replace(b"\0", b" ").decode(errors="replace")
    return kids, zombies


def snapshot(d):
    pid = d.proc.pid
    st = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "VmHWM", "Threads"):
                st[k] = int(v.split()[0])
    kids, zombies = kernel_children(d)
    links = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return {"fd_links": links, "rss_kib": st.get("VmRSS"), "rss_anon_kib": st.get("RssAnon"),
            "hwm_kib": st.get("VmHWM"), "threads": st.get("Threads"),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "kernels": len(kids), "zombies": len(zombies)}


TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "07": "CLOSE",
              "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN"}


def tcp_sockets():
    """{inode: (state, local port, remote port)} of every TCP socket."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for r in rows:
            cols = r.split()
            if len(cols) < 10:
                continue
            out[cols[9]] = (TCP_STATES.get(cols[3], cols[3]),
                            int(cols[1].rsplit(":", 1)[1], 16),
                            int(cols[2].rsplit(":", 1)[1], 16))
    return out


def unix_socket_inodes():
    try:
        with open("/proc/net/unix") as f:
            return {r.split()[6] for r in f.read().splitlines()[1:]
                    if len(r.split()) > 6}
    except OSError:
        return set()


def new_sockets(before, after):
    """What the socket fds the daemon gained are: [(kind, state, peer port)]."""
    tcp, unix = tcp_sockets(), unix_socket_inodes()
    b = set(before.get("fd_links", {}).values())
    found = []
    for link in after.get("fd_links", {}).values():
        if link in b or not link.startswith("socket:["):
            continue
        ino = link[len("socket:["):-1]
        if ino in tcp:
            found.append(("tcp",) + (tcp[ino][0], tcp[ino][2]))
        elif ino in unix:
            found.append(("unix", "-", 0))
        else:
            found.append(("unlisted", "(TCP reset by the peer?)", 0))
    return found


def reset_peak(d):
    """Resets the daemon's VmHWM to its RSS now (clear_refs 5)."""
    with open(f"/proc/{d.proc.pid}/clear_refs", "w") as f:
        f.write("5")


def rss_kib(d):
    with open(f"/proc/{d.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def metrics(host, port):
    status, body = await simple(host, port, "GET", "/metrics", timeout=10)
    if status != 200:
        raise BadAnswer(f"/metrics answered {status}")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def kstate(m, state):
    return int(m.get(f'e2bci_kernels{{state="{state}"}}', 0))


class Run:
    def __init__(self, args, prof):
        self.args = args
        self.p = prof
        self.rng = random.Random(args.seed)
        self.d = None
        self.host = "127.0.0.1"
        self.port = None
        self.ctxs = []          # context ids made for the run
        self.kernels = None     # settled kernel count
        self.rows = []

    # -- settling

    async def settle(self, timeout=90):
        """Waits until nothing runs and the kernel count is back; then 2.6 s
        without HTTP traffic so the daemon's heap trim has run. Returns
        (snapshot, problem or None)."""
        end = time.monotonic() + timeout
        while True:
            try:
                m = await metrics(self.host, self.port)
                kids, _ = kernel_children(self.d)
                busy = (m.get("e2bci_executions_in_flight", 0), kstate(m, "busy"),
                        kstate(m, "starting"), kstate(m, "stopping"))
                if busy == (0, 0, 0, 0) and (self.kernels is None or
                                             len(kids) == self.kernels):
                    problem = None
                    break
                problem = (f"did not settle in {timeout}s: in flight/busy/"
                           f"starting/stopping {busy}, kernel children "
                           f"{len(kids)} (want {self.kernels})")
            except (OSError, NoAnswer, BadAnswer, asyncio.TimeoutError) as e:
                problem = f"did not settle: {e!r}"
            if time.monotonic() > end:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.6)
        return snapshot(self.d), problem

    async def all_contexts_answer(self, ids, timeout=60):
        """Every context runs 1+1 -> "2"; returns a list of problems."""
        async def one(cid):
            res, _ = await execute(self.host, self.port, "1+1", cid, timeout)
            check_result(res, want_text="2")
            return f"context {cid}: {res.error}" if res.error else None
        return [p for p in await asyncio.gather(*(one(c) for c in ids)) if p]

    # -- one row

    async def scenario(self, name, fn):
        print(f"== {name}", flush=True)
        before, prob = await self.settle()
        row = {"scenario": name, "requests": 0, "errors": 0, "streams": 0,
               "ended": 0, "lost": 0, "latencies": [], "checks": [],
               "failures": [], "before": before}
        if prob:
            row["checks"].append(f"before: {prob}")
        reset_peak(self.d)
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(fn(row), self.args.budget_s)
        except asyncio.TimeoutError:
            row["checks"].append(f"scenario did not finish within "
                                 f"{self.args.budget_s}s")
        except Exception as e:  # a broken scenario fails its row, not the run
            row["checks"].append(f"scenario stopped by {e!r}")
        row["seconds"] = round(time.monotonic() - t0, 1)
        if not self.d.running():
            row["checks"].append(f"daemon exited with status "
                                 f"{self.d.proc.returncode}")
            after = dict(before, rss_kib=0, fds=0, kernels=0)
        else:
            after, prob = await self.settle()
            if prob:
                row["checks"].append(f"after: {prob}")
        row["after"] = after
        bound = (self.p["backlog_total_mib"] + PEAK_SLACK_MIB) * 1024
        if after.get("hwm_kib", 0) > bound:
            row["checks"].append(
                f"peak RSS {after['hwm_kib']} KiB over the output budget "
                f"plus {PEAK_SLACK_MIB} MiB ({bound} KiB)")
        slack = self.args.rss_slack_mib * 1024
        if after["rss_kib"] > before["rss_kib"] + slack:
            row["checks"].append(
                f"RSS grew {before['rss_kib']} -> {after['rss_kib']} KiB "
                f"(slack {slack} KiB)")
        if after["fds"] != before["fds"]:
            row["checks"].append(f"open fds {before['fds']} -> {after['fds']}: "
                                 f"{fd_diff(before, after)}")
            # Sockets the daemon still holds, by TCP state and, for the
            # abort scenario, by how that client went away.
            ports = row.get("_ports", {})
            held = {}
            for kind, state, peer in new_sockets(before, after):
                k = f"{kind} {state}" + (f" ({ports[peer]})" if peer in ports
                                         else "")
                held[k] = held.get(k, 0) + 1
            if held:
                row["checks"].append(f"sockets the daemon still holds: {held}")
                row.setdefault("detail", {})["held_sockets"] = held
        if after["kernels"] != before["kernels"]:
            row["checks"].append(
                f"kernel children {before['kernels']} -> {after['kernels']}")
        if after.get("zombies"):
            row["checks"].append(f"{after['zombies']} zombie children")
        row.pop("_ports", None)
        before.pop("fd_links", None)
        after.pop("fd_links", None)
        lat = sorted(row.pop("latencies"))
        row["p50_ms"] = round(pct(lat, 50) * 1000, 2) if lat else None
        row["p99_ms"] = round(pct(lat, 99) * 1000, 2) if lat else None
        row["ok"] = not (row["errors"] or row["lost"] or row["checks"] or
                         row["streams"] != row["ended"])
        self.rows.append(row)
        print(f"   {'ok' if row['ok'] else 'FAIL'} in {row['seconds']} s: "
              f"{row['requests']} requests, {row['errors']} errors, "
              f"{row['ended']}/{row['streams']} ended, {row['lost']} lost, "
              f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
              f"peak RSS {after.get('hwm_kib')} KiB, "
              f"RSS {before['rss_kib']} -> {after['rss_kib']} KiB, "
              f"fds {before['fds']} -> {after['fds']}, "
              f"kernels {before['kernels']} -> {after['kernels']}", flush=True)
        for msg in row["checks"] + row["failures"]:
            print(f"   - {msg}", flush=True)
        return row

    @staticmethod
    def account(row, res, count_stream=True):
        row["requests"] += 1
        if not res.answered:
            row["lost"] += 1
        if res.error:
            row["errors"] += 1
            if len(row["failures"]) < 12:
                row["failures"].append(res.error)
        if res.stream and count_stream:
            row["streams"] += 1
            row["ended"] += res.ended
        if res.latency is not None and not res.error:
            row["latencies"].append(res.latency)

    # -- scenarios

    async def health(self, row):
        n = self.p["health_conc"]

        async def opened():
            try:
                return await Conn.open(self.host, self.port, timeout=20)
            except (OSError, asyncio.TimeoutError) as e:
                return e

        async def one(conn):
            res = Result()
            if not isinstance(conn, Conn):
                res.fail(f"connect failed: {conn!r}")
                return res
            t0 = time.monotonic()
            try:
                await conn.send(Conn.request_bytes("GET", "/health"))
                status, hdrs = await conn.head(30)
                res.answered, res.status = True, status
                body = await conn.body(hdrs, 30)
                res.latency = time.monotonic() - t0
                if status != 200 or json.loads(body) != "OK":
                    res.fail(f"/health answered {status} {body[:100]!r}")
            except (NoAnswer, BadAnswer, OSError, ValueError) as e:
                res.fail(repr(e))
            finally:
                conn.close()
            return res

        for _ in range(self.p["health_rounds"]):
            # Every connection is open before the first request goes out.
            conns = await asyncio.gather(*(opened() for _ in range(n)))
            for res in await asyncio.gather(*(one(c) for c in conns)):
                self.account(row, res)

    async def execute_load(self, row):
        n, ids = self.p["exec_conc"], self.ctxs
        for rnd in range(self.p["exec_rounds"]):
            async def one(i):
                tag = f"r{rnd}s{i}"
                code = ("import time\n"
                        "for _i in range(5):\n"
                        f"    print({tag!r}, _i, flush=True)\n"
                        "    time.sleep(0.01)\n"
                        f"{i} * 2\n")
                res, _ = await execute(self.host, self.port, code,
                                       ids[i % len(ids)], timeout=120)
                check_result(res, "".join(f"{tag} {k}\n" for k in range(5)),
                             str(i * 2))
                return i, res

            counts = {}
            for i, res in await asyncio.gather(*(one(i) for i in range(n))):
                self.account(row, res)
                ne = [l for l in res.lines if l["type"] == "number_of_executions"]
                if ne and not res.error:
                    counts.setdefault(ids[i % len(ids)], []).append(
                        ne[0]["execution_count"])
            for cid, cs in counts.items():
                if len(set(cs)) != len(cs):
                    row["checks"].append(f"context {cid}: repeated execution "
                                         f"counts {sorted(cs)}")

    async def abort(self, row):
        ids = self.ctxs
        modes = tuple(self.args.abort_modes)
        tally = {m: 0 for m in modes}
        ports = {}   # client port -> mode, to tell which connections linger
        slow = ("import time\n"
                "for _i in range(20):\n"
                "    print('tick', _i, flush=True)\n"
                "    time.sleep(0.05)\n"
                "'finished'\n")

        async def aborter(k):
            mode = self.rng.choice(modes)
            cid = self.rng.choice(ids)
            delay = self.rng.uniform(0, self.p["abort_spread_s"])
            cut = self.rng.randint(1, 8)
            tally[mode] += 1
            await asyncio.sleep(delay)
            body = json.dumps({"code": slow, "context_id": cid}).encode()
            req = Conn.request_bytes("POST", "/execute", body)
            problem = None
            try:
                conn = await Conn.open(self.host, self.port)
            except (OSError, asyncio.TimeoutError) as e:
                return f"abort client could not connect: {e!r}"
            ports[conn.w.get_extra_info("sockname")[1]] = mode
            try:
                if mode == "connect":
                    pass
                elif mode == "partial-headers":
                    await conn.send(req[:self.rng.randint(1, req.index(b"\r\n\r\n"))])
                elif mode == "partial-body":
                    split = req.index(b"\r\n\r\n") + 4
                    await conn.send(req[:split + self.rng.randint(0, len(body) - 1)])
                elif mode == "no-read":
                    await conn.send(req)
                else:
                    await conn.send(req)
                    status, hdrs = await conn.head(60)
                    if status != 200:
                        problem = f"aborting client got {status}"
                    elif mode != "after-head":
                        res = Result()
                        await read_stream(conn, hdrs, res,
                                          time.monotonic() + 60, None, cut)
                        if res.error:
                            problem = res.error
                        if any(l["type"] == "end_of_execution" for l in res.lines):
                            problem = problem or "slow cell ended before the abort"
            except (NoAnswer, BadAnswer, OSError) as e:
                problem = f"aborting client ({mode}): {e!r}"
            finally:
                conn.close(rst=mode == "mid-stream-rst")
            return problem

        async def good(k):
            await asyncio.sleep(self.rng.uniform(0, self.p["abort_spread_s"] + 1))
            cid = self.rng.choice(ids)
            res, _ = await execute(self.host, self.port,
                                   f"print('good', {k})\n{k} + 1000", cid,
                                   timeout=120)
            check_result(res, f"good {k}\n", str(k + 1000))
            return res

        m0 = await metrics(self.host, self.port)
        tasks = [aborter(k) for k in range(self.p["abort_clients"])]
        goods = [good(k) for k in range(self.p["abort_good"])]
        out = await asyncio.gather(*tasks, *goods)
        for p in out[:len(tasks)]:
            row["requests"] += 1
            if p:
                row["errors"] += 1
                if len(row["failures"]) < 12:
                    row["failures"].append(p)
        for res in out[len(tasks):]:
            self.account(row, res)
        row["checks"] += await self.all_contexts_answer(ids)
        row["requests"] += len(ids)
        m1 = await metrics(self.host, self.port)
        row["_ports"] = ports
        row["detail"] = {"modes": tally,
                         "interrupts": m1.get("e2bci_interrupts_total", 0) -
                         m0.get("e2bci_interrupts_total", 0),
                         "restarts": m1.get("e2bci_kernel_restarts_total", 0) -
                         m0.get("e2bci_kernel_restarts_total", 0)}

    async def sigkill(self, row):
        ids = self.ctxs
        kills_done = []
        m0 = await metrics(self.host, self.port)
        for rnd in range(self.p["kill_rounds"]):
            streams = [(cid, j) for cid in ids for j in range(self.p["kill_per_ctx"])]
            doomed = set(self.rng.sample(range(len(streams)),
                                         min(self.p["kill_count"], len(streams))))
            state = {}   # stream index -> {"pid", "killed", "ended"}
            killers = []

            async def kill_later(i, pid):
                await asyncio.sleep(self.rng.uniform(0.05, 0.4))
                st = state[i]
                if st["ended"] or "done" in st["out"]:
                    st["skipped"] = True
                    return
                kids, _ = kernel_children(self.d)
                if pid not in kids:
                    st["bad_pid"] = (f"pid {pid} reported by a cell is not a "
                                     f"kernel child of the daemon")
                    return
                os.kill(pid, signal.SIGKILL)
                st["killed"] = True
                kills_done.append(pid)

            async def one(i):
                cid, j = streams[i]
                tag = f"k{rnd}-{i}"
                st = state[i] = {"pid": None, "killed": False, "ended": False,
                                 "out": ""}
                code = ("import os, time\n"
                        "print('pid', os.getpid(), flush=True)\n"
                        "time.sleep(1.0)\n"
                        "print('done', flush=True)\n"
                        f"{tag!r}\n")

                def on_line(obj):
                    if obj["type"] == "stdout":
                        st["out"] += obj["text"]
                        if st["pid"] is None and st["out"].startswith("pid "):
                            try:
                                st["pid"] = int(st["out"].split()[1])
                            except (IndexError, ValueError):
                                return
                            if i in doomed:
                                killers.append(asyncio.ensure_future(
                                    kill_later(i, st["pid"])))

                res, _ = await execute(self.host, self.port, code, cid,
                                       timeout=120, on_line=on_line)
                st["ended"] = True
                return i, res

            out = await asyncio.gather(*(one(i) for i in range(len(streams))))
            if killers:
                await asyncio.gather(*killers)
            for i, res in out:
                st = state[i]
                if st.get("bad_pid"):
                    res.fail(st["bad_pid"])
                if st["killed"]:
                    err = error_of(res.lines)
                    if res.error is None and res.stream:
                        if err is None or err["name"] != "ContextRestarting":
                            res.fail(f"killed kernel {st['pid']}: stream ended "
                                     f"without ContextRestarting: "
                                     f"{[l['type'] for l in res.lines]} "
                                     f"{err and err['name']}")
                        elif "done" in stdout_of(res.lines):
                            res.fail("killed cell still printed done")
                else:
                    check_result(res, f"pid {st['pid']}\ndone\n",
                                 f"k{rnd}-{i}")
                self.account(row, res)
            row["checks"] += await self.all_contexts_answer(ids)
            row["requests"] += len(ids)
        m1 = await metrics(self.host, self.port)
        crashes = m1.get("e2bci_kernel_crashes_total", 0) - \
            m0.get("e2bci_kernel_crashes_total", 0)
        if crashes != len(kills_done):
            row["checks"].append(f"{len(kills_done)} kernels killed but "
                                 f"e2bci_kernel_crashes_total grew by {crashes}")
        if not kills_done:
            row["checks"].append("no kernel was killed")
        row["detail"] = {"kills": len(kills_done), "crashes": crashes}

    async def soak(self, row):
        total, ids = self.p["soak_total"], self.ctxs[:self.p["soak_contexts"]]
        nconn = self.p["soak_conns"]
        nxt = iter(range(total))
        reconnects = [0]
        samples = []
        stop = asyncio.Event()

        async def sampler():
            t0 = time.monotonic()
            while not stop.is_set():
                samples.append((round(time.monotonic() - t0, 1), rss_kib(self.d)))
                try:
                    await asyncio.wait_for(stop.wait(), 5)
                except asyncio.TimeoutError:
                    pass

        async def worker(w):
            cid = ids[w % len(ids)]
            conn, first = None, True
            for i in nxt:
                if conn is None and not first:
                    reconnects[0] += 1
                first = False
                if i % 2:
                    code, want_out, want_text = f"print({i})", f"{i}\n", None
                else:
                    code, want_out, want_text = f"{i} + 1", None, str(i + 1)
                res, conn = await execute(self.host, self.port, code, cid,
                                          timeout=60, conn=conn, keepalive=True)
                check_result(res, want_out, want_text)
                if want_text is None and res.error is None and \
                        main_text_of(res.lines) is not None:
                    res.fail("print() gave a main result")
                self.account(row, res)
            if conn is not None:
                conn.close()

        m0 = await metrics(self.host, self.port)
        samp = asyncio.ensure_future(sampler())
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(worker(w) for w in range(nconn))),
                self.p["soak_budget_s"])
        except asyncio.TimeoutError:
            row["checks"].append(f"soak did not finish within "
                                 f"{self.p['soak_budget_s']}s "
                                 f"({row['requests']} of {total} done)")
        elapsed = time.monotonic() - t0
        stop.set()
        await samp
        m1 = await metrics(self.host, self.port)
        sent = m1.get("e2bci_executions_total", 0) - m0.get("e2bci_executions_total", 0)
        if row["requests"] == total and sent != total:
            row["checks"].append(f"{total} executions requested, "
                                 f"e2bci_executions_total grew by {sent:.0f}")
        row["detail"] = {"exec_per_s": round(row["requests"] / elapsed, 1),
                         "reconnects": reconnects[0],
                         "rss_kib_samples": samples}

    @staticmethod
    def print_code(mb):
        return f'print("y" * {mb * 1_000_000})\n"done"'

    def check_print(self, res, whole):
        """A big print's stream: all of it, or the start and one notice."""
        if res.error or not res.stream:
            return
        mb = self.p["print_mb" if whole else "late_mb"]
        n, want = len(stdout_of(res.lines)), mb * 1_000_000 + 1
        notes = "".join(l["text"] for l in res.lines if l["type"] == "stderr")
        if main_text_of(res.lines) != "done":
            res.fail(f"main result {main_text_of(res.lines)!r} != 'done'")
        elif whole and (n != want or notes):
            res.fail(f"got {n} of {want} stdout bytes; stderr {notes[:200]!r}")
        elif not whole and (notes.count("output truncated") != 1 or
                            not 0 < n <= (self.p["backlog_mib"] + 16) * MiB):
            res.fail(f"late reader: {n} stdout bytes, stderr {notes[:200]!r}")

    async def bigprint(self, row):
        """The client reads as fast as a blocking socket can (in a thread),
        and checks the stream afterwards."""
        res = Result()
        body = json.dumps({"code": self.print_code(self.p["print_mb"]),
                           "context_id": self.ctxs[0]}).encode()
        t0 = time.monotonic()
        try:
            raw = await asyncio.to_thread(
                read_raw, self.host, self.port,
                Conn.request_bytes("POST", "/execute", body),
                self.args.budget_s)
            res.answered = True
            parse_raw(raw, res)
            res.latency = time.monotonic() - t0
        except (OSError, BadAnswer, ValueError) as e:
            res.fail(repr(e))
        self.check_print(res, True)
        self.account(row, res)
        row["detail"] = {"stdout_bytes": len(stdout_of(res.lines))}

    async def lateread(self, row):
        """Sends the request on a socket with a small receive buffer, reads
        nothing until /metrics shows the cell over, then reads the stream."""
        res = Result()
        body = json.dumps({"code": self.print_code(self.p["late_mb"]),
                           "context_id": self.ctxs[0]}).encode()
        t0 = time.monotonic()
        deadline = t0 + self.args.budget_s
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(self.args.budget_s)
            m0 = await metrics(self.host, self.port)
            s.connect((self.host, self.port))
            s.sendall(Conn.request_bytes("POST", "/execute", body))
            done = m0.get("e2bci_executions_total", 0) + 1
            while time.monotonic() < deadline:
                m = await metrics(self.host, self.port)
                if m.get("e2bci_executions_total", 0) >= done and \
                        m.get("e2bci_executions_in_flight", 0) == 0:
                    break
                await asyncio.sleep(0.2)
            raw = await asyncio.to_thread(read_rest, s)
            res.answered = True
            parse_raw(raw, res)
            res.latency = time.monotonic() - t0
        except (OSError, BadAnswer, ValueError) as e:
            res.fail(repr(e))
        finally:
            s.close()
        self.check_print(res, False)
        self.account(row, res)
        row["detail"] = {"stdout_bytes": len(stdout_of(res.lines))}

    # -- the whole run

    async def setup(self):
        args = self.args
        work = self.work = Path(args.workdir or
                                f"/tmp/e2bci-loadtest-{os.getpid()}")
        closed = harness.free_port()
        self.d = harness.Daemon(
            args.bin, work, envd_url=f"http://127.0.0.1:{closed}",
            name="loadtest daemon",
            args=["--log-level", args.log_level,
                  "--interrupt-timeout-ms", "3000",
                  "--keepalive-ms", "1000",
                  "--max-backlog", f"{self.p['backlog_mib']}M",
                  "--max-backlog-total", f"{self.p['backlog_total_mib']}M"])
        self.port = self.d.port
        print(f"daemon {args.bin} on 127.0.0.1:{self.port}, log {self.d.log_path}",
              flush=True)
        self.d.start()
        self.d.wait_healthy()
        # The default context plus ours; a few at a time so kernel starts do
        # not all time out together on a small machine.
        n = self.p["contexts"]
        for k in range(0, n, 5):
            made = await asyncio.gather(*(simple(
                self.host, self.port, "POST", "/contexts", {}, timeout=120)
                for _ in range(min(5, n - k))))
            for status, body in made:
                if status != 200:
                    raise SystemExit(f"POST /contexts answered {status}: {body!r}")
                self.ctxs.append(json.loads(body)["id"])
        problems = await self.all_contexts_answer(self.ctxs, timeout=120)
        if problems:
            raise SystemExit("contexts do not answer: " + "; ".join(problems))
        self.kernels = None
        snap, _ = await self.settle()
        self.kernels = snap["kernels"]
        print(f"{len(self.ctxs)} contexts ready; {self.kernels} kernel children "
              f"(contexts + default + pool)", flush=True)

    async def run(self):
        await self.setup()
        funcs = {"health": self.health, "execute": self.execute_load,
                 "abort": self.abort, "sigkill": self.sigkill, "soak": self.soak,
                 "bigprint": self.bigprint, "lateread": self.lateread}
        names = {"health": f"{self.p['health_conc']} concurrent GET /health "
                           f"x {self.p['health_rounds']}",
                 "execute": f"{self.p['exec_conc']} concurrent streams, "
                            f"{len(self.ctxs)} contexts x {self.p['exec_rounds']}",
                 "abort": f"{self.p['abort_clients']} aborting + "
                          f"{self.p['abort_good']} normal clients",
                 "sigkill": f"SIGKILL {self.p['kill_count']} of "
                            f"{self.p['kill_per_ctx'] * len(self.ctxs)} running "
                            f"kernels x {self.p['kill_rounds']}",
                 "soak": f"soak: {self.p['soak_total']} executions, "
                         f"{self.p['soak_conns']} keep-alive conns, "
                         f"{self.p['soak_contexts']} contexts",
                 "bigprint": f"print of {self.p['print_mb']} MB, client "
                             f"reading as it arrives",
                 "lateread": f"print of {self.p['late_mb']} MB, client "
                             f"reading after the cell ended"}
        for s in self.args.only:
            if self.d.running():
                await self.scenario(names[s], funcs[s])
        if self.d.running():
            for cid in self.ctxs:
                await simple(self.host, self.port, "DELETE", f"/contexts/{cid}")


def fd_diff(before, after):
    """What the fds that came or went are, e.g. "+3 socket:[...]"."""
    b, a = before.get("fd_links", {}), after.get("fd_links", {})
    kinds = {}
    for fd, link in a.items():
        if b.get(fd) != link:
            k = "+" + link.split("[")[0].rstrip(":")
            kinds[k] = kinds.get(k, 0) + 1
    for fd, link in b.items():
        if a.get(fd) != link:
            k = "-" + link.split("[")[0].rstrip(":")
            kinds[k] = kinds.get(k, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = (len(sorted_vals) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def mib(kib):
    return f"{kib / 1024:.1f}"


def table(rows):
    out = ["| scenario | requests | errors | streams ended properly | lost | "
           "p50 ms | p99 ms | peak RSS MiB | RSS MiB before → after | "
           "fds before → after | kernels before → after | result |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, a = r["before"], r["after"]
        streams = f"{r['ended']}/{r['streams']}" if r["streams"] else "-"
        out.append(
            f"| {r['scenario']} | {r['requests']} | {r['errors']} | {streams} | "
            f"{r['lost']} | {r['p50_ms'] if r['p50_ms'] is not None else '-'} | "
            f"{r['p99_ms'] if r['p99_ms'] is not None else '-'} | "
            f"{mib(a.get('hwm_kib') or 0)} | "
            f"{mib(b['rss_kib'])} → {mib(a['rss_kib'])} | {b['fds']} → {a['fds']} | "
            f"{b['kernels']} → {a['kernels']} | {'pass' if r['ok'] else 'FAIL'} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get(
        "E2BCI_BIN", str(ROOT / "build" / "e2b-ci")))
    ap.add_argument("--quick", action="store_true",
                    help="small counts (under a minute), for make test")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", help="JSON results file")
    ap.add_argument("--md", help="Markdown table file")
    ap.add_argument("--workdir", help="daemon work dir (default /tmp/...)")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--abort-modes", default=",".join(ABORT_MODES),
                    help="how aborting clients go away, a subset of "
                         + ",".join(ABORT_MODES))
    ap.add_argument("--rss-slack-mib", type=float, default=4.0)
    ap.add_argument("--budget-s", type=float, default=None,
                    help="time budget per scenario")
    args = ap.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    args.abort_modes = [m.strip() for m in args.abort_modes.split(",") if m.strip()]
    for m in args.abort_modes:
        if m not in ABORT_MODES:
            ap.error(f"unknown abort mode {m}")
    for s in args.only:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")
    if args.seed is None:
        args.seed = int(time.time())
    prof = dict(QUICK if args.quick else FULL)
    if args.budget_s is None:
        args.budget_s = 60 if args.quick else 240
    print(f"seed {args.seed} ({'quick' if args.quick else 'full'})", flush=True)

    run = Run(args, prof)
    t0 = time.monotonic()
    setup_error = None
    try:
        asyncio.run(asyncio.wait_for(run.run(), len(args.only) * (args.budget_s + 200) + 300))
    except (SystemExit, AssertionError, asyncio.TimeoutError, OSError) as e:
        setup_error = f"{type(e).__name__}: {e}"
        print(f"run aborted: {setup_error}", flush=True)
    stop_problems = run.d.stop() if run.d is not None else []
    elapsed = time.monotonic() - t0

    md = table(run.rows)
    if run.rows:
        first, last = run.rows[0]["before"], run.rows[-1]["after"]
        top = max(r["after"].get("hwm_kib") or 0 for r in run.rows)
        md += (f"\n\nWhole run: daemon RSS {mib(first['rss_kib'])} → "
               f"{mib(last['rss_kib'])} MiB (peak {mib(top)} MiB; "
               f"--max-backlog {prof['backlog_mib']} MiB, --max-backlog-total "
               f"{prof['backlog_total_mib']} MiB), "
               f"open fds {first['fds']} → {last['fds']}, kernels "
               f"{first['kernels']} → {last['kernels']}.")
        notes = [f"- {r['scenario']}: {msg}" for r in run.rows if not r["ok"]
                 for msg in r["checks"] + r["failures"][:3]]
        if notes:
            md += "\n\nFailed checks:\n\n" + "\n".join(notes)
    print()
    print(md)
    ok = bool(run.rows) and all(r["ok"] for r in run.rows) and \
        not stop_problems and not setup_error and len(run.rows) == len(args.only)
    if stop_problems:
        print("daemon stop: " + "; ".join(stop_problems))
    else:
        print("daemon stop: exit status 0, nothing left behind")
    if not ok and run.d is not None:
        print(f"--- daemon log tail ({run.d.log_path}) ---")
        print(run.d.log_tail(60))
    if ok and not args.workdir and run.d is not None:
        shutil.rmtree(run.work, ignore_errors=True)  # logs kept on failure
    print(f"\n{'PASS' if ok else 'FAIL'} in {elapsed:.0f} s (seed {args.seed})")

    results = {
        "generated": datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs",
        "binary": args.bin, "profile": "quick" if args.quick else "full",
        "seed": args.seed, "seconds": round(elapsed, 1), "ok": ok,
        "setup_error": setup_error, "stop_problems": stop_problems,
        "params": prof, "rows": run.rows,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if args.md:
        Path(args.md).write_text(
            "<!-- generated by `make loadtest` (tests/load/loadtest.py); "
            "do not edit -->\n"
            f"Measured {results['generated']} on {results['host']}, "
            f"seed {args.seed}, {results['seconds']} s in all; daemon stop: "
            f"{'clean' if not stop_problems else '; '.join(stop_problems)}.\n\n"
            + md + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
