"""Connections and request framing (issue 11, items 3 and 9): idle and slow
connections cannot lock clients out, HEAD answers like GET without a body,
and requests whose length is ambiguous or over --max-body are refused at
once with one well-formed answer.

Everything here talks raw sockets: the point is what goes over the wire
(one status line, no 100 Continue, when the connection closes), which
http.client would hide.
"""

import socket
import threading

import pytest

from harness import (HEAD_END, closed_by_peer, exchange, parse_responses,
                     raw_connect, read_to_eof, wait_until)


# ------------------------------------------------------------- raw HTTP

def health(d, timeout=5):
    """One GET /health on a new connection: (status, body)."""
    with raw_connect(d, timeout) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_to_eof(s, timeout)
    resp = parse_responses(data)
    assert len(resp) == 1, resp
    return resp[0][0], resp[0][2]


class Slowloris:
    """Connections that send a request head one byte per interval and never
    finish it; one thread drives them all."""

    def __init__(self, d, n, interval=1.0):
        self.socks = [raw_connect(d) for _ in range(n)]
        self.interval = interval
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10_000
        i = 0
        while not self.stop.wait(self.interval) and i < len(head):
            for s in self.socks:
                try:
                    s.send(head[i:i + 1])
                except OSError:
                    pass
            i += 1
            self.sent = i

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


# ---------------------------------------------------- idle and slow clients

def test_idle_and_slow_connections_do_not_lock_out_health(make_daemon):
    """60 silent connections and 10 slowloris ones against
    --max-connections 16: /health from a new client still answers, because
    the oldest idle connection is evicted to make room. Without eviction it
    waited in the accept queue until libmicrohttpd's 600 s timeout."""
    d = make_daemon(args=["--max-connections", "16"]).wait_healthy()
    # The slow ones first: the longest idle go first, and trickling bytes
    # does not make a connection any less idle.
    slow = Slowloris(d, 10, interval=0.5)
    idle = [raw_connect(d) for _ in range(60)]
    try:
        wait_until(lambda: slow.sent >= 2, "the slowloris clients sent bytes")
        for _ in range(5):
            assert health(d, timeout=5) == (200, b'"OK"')
        # The limit was reached and held: of our 70 connections at most 15
        # are still open (the /health ones took a slot each time); on a
        # slow machine the header timeout may have closed some first.
        wait_until(lambda: sum(closed_by_peer(s) for s in idle + slow.socks)
                   >= 70 - 15, "idle connections evicted", timeout=10)
        # The slow ones were not spared: they are idle too.
        assert any(closed_by_peer(s) for s in slow.socks)
    finally:
        slow.close()
        for s in idle:
            s.close()


def test_header_timeout_closes_silent_and_slow_connections(make_daemon):
    """A connection that has not sent a complete request head within
    --header-timeout-ms is closed, however it trickles bytes; one that
    sent part of a head learns why (408)."""
    d = make_daemon(args=["--header-timeout-ms", "1000"]).wait_healthy()
    silent = raw_connect(d)
    partial = raw_connect(d)
    partial.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    slow = Slowloris(d, 1, interval=0.2)
    try:
        assert read_to_eof(silent, timeout=30) == b""
        resp = parse_responses(read_to_eof(partial, timeout=30))
        assert [r[0] for r in resp] == [408], resp
        wait_until(lambda: closed_by_peer(slow.socks[0]),
                   "the slowloris connection is closed", timeout=30)
        # Bytes kept coming, so it was the deadline, not inactivity.
        assert slow.sent >= 2
    finally:
        slow.close()
        silent.close()
        partial.close()
    assert health(d) == (200, b'"OK"')


def test_client_leaving_mid_head_is_closed_at_once(make_daemon):
    """Part of a head, then the client closes its side: the daemon closes
    too, long before the header timeout, and keeps serving."""
    d = make_daemon(args=["--header-timeout-ms", "120000"]).wait_healthy()
    for _ in range(3):
        with raw_connect(d) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            s.shutdown(socket.SHUT_WR)
            assert read_to_eof(s, timeout=30) == b""
    assert health(d) == (200, b'"OK"')


def test_idle_keepalive_connection_is_closed_after_the_timeout(make_daemon):
    """Between requests a keep-alive connection is idle too: closed after
    --header-timeout-ms, and evictable at the limit."""
    d = make_daemon(args=["--header-timeout-ms", "1000"]).wait_healthy()
    with raw_connect(d) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_to_eof(s, timeout=30)
    # The answer, then the close (not an error response).
    resp = parse_responses(data)
    assert [r[0] for r in resp] == [200], resp


def test_keepalive_connections_are_evicted_at_the_limit(make_daemon):
    d = make_daemon(args=["--max-connections", "16",
                          "--header-timeout-ms", "120000"]).wait_healthy()
    held = []
    try:
        for _ in range(16):
            s = raw_connect(d)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(s)
        for s in held:
            head = b""
            while b'"OK"' not in head:
                chunk = s.recv(4096)
                assert chunk, "connection closed before its answer"
                head += chunk
        # Sixteen answered keep-alive connections fill the limit; new
        # clients are served by evicting the longest idle of them.
        for _ in range(3):
            assert health(d) == (200, b'"OK"')
        wait_until(lambda: closed_by_peer(held[0]),
                   "the oldest keep-alive connection is evicted", timeout=10)
        assert not closed_by_peer(held[-1])
    finally:
        for s in held:
            s.close()


def test_busy_connections_at_the_limit_refuse_new_ones_with_503(make_daemon):
    """When every slot holds a request being received, nothing is evictable:
    a new connection gets 503 at once (it used to wait in the accept queue),
    and slots come back when the clients go."""
    d = make_daemon(args=["--max-connections", "16",
                          "--header-timeout-ms", "120000"]).wait_healthy()
    held = []
    try:
        for _ in range(16):
            s = raw_connect(d)
            # A head announcing a body that never comes. The 100 Continue
            # says the daemon is receiving the body.
            s.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\n"
                      b"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
            s.sendall(b"{")
            held.append(s)
        c = d.client()
        for _ in range(3):
            with raw_connect(d) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
                resp = parse_responses(read_to_eof(s, timeout=5))
            assert resp[0][0] == 503 and b"connections" in resp[0][2], resp
        assert all(not closed_by_peer(s) for s in held)
    finally:
        for s in held:
            s.close()
    wait_until(lambda: c.request("GET", "/health", timeout=5).status == 200,
               "/health answers once the clients are gone", timeout=10)


# ------------------------------------------------------------------ HEAD

def test_head_health_is_get_without_body(client, daemon):
    with raw_connect(daemon) as s:
        s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_to_eof(s)
    # HEAD answers carry the GET's Content-Length but no body: split by hand.
    first, sep, rest = data.partition(HEAD_END)
    assert first.startswith(b"HTTP/1.1 200 "), data
    assert b"Content-Length: 4" in first, first
    assert b"application/json" in first, first
    assert rest.startswith(b"HTTP/1.1 200 "), f"HEAD sent a body: {data!r}"
    assert parse_responses(rest)[0][2] == b'"OK"'


@pytest.mark.parametrize("path", ["/metrics", "/contexts"])
def test_head_on_other_get_routes(daemon, path):
    with raw_connect(daemon) as s:
        s.sendall(b"HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  % path.encode())
        data = read_to_eof(s)
    head, _, rest = data.partition(HEAD_END)
    assert head.startswith(b"HTTP/1.1 200 "), data
    assert rest == b"", data


@pytest.mark.parametrize("path,status,allow", [
    ("/execute", 405, "POST"),
    ("/contexts/abc/restart", 405, "POST"),
    ("/nope", 404, None),
])
def test_head_on_non_get_routes(client, path, status, allow):
    r = client.request("HEAD", path)
    assert r.status == status, r
    assert r.body == b""
    if allow:
        assert r.headers.get("allow") == allow, r


def test_allow_lists_head_with_get(client):
    r = client.request("POST", "/health")
    assert r.status == 405 and r.headers.get("allow") == "GET, HEAD", r


# --------------------------------------------------------------- framing

@pytest.mark.parametrize("value,status", [
    (b"-1", 400), (b"abc", 400), (b"1 2", 400), (b"+5", 400),
    (b"99999999999999999999999", 413),
])
def test_bad_content_length_gets_one_answer(daemon, value, status):
    resp = exchange(daemon, b"POST /execute HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: " + value + b"\r\n\r\n{}")
    assert [r[0] for r in resp] == [status], resp
    assert resp[0][2], "the answer says why"


J = b'{"code": "1+1"}'  # 15 (0xf) bytes
CHUNKED_J = b"f\r\n" + J + b"\r\n0\r\n\r\n"


@pytest.mark.parametrize("framing", [
    b"Content-Length: 15\r\nContent-Length: 30\r\n\r\n" + J,
    b"Content-Length: 15\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_J,
    b"Transfer-Encoding: chunked\r\nContent-Length: 15\r\n\r\n" + CHUNKED_J,
    b"Transfer-Encoding: gzip\r\n\r\n" + J,
    b"Transfer-Encoding: gzip, chunked\r\n\r\n" + CHUNKED_J,
    b"Content-Length : 15\r\n\r\n" + J,
])
def test_ambiguous_framing_is_refused(daemon, framing):
    """Each of these has a reading under which it is a valid execute
    request; a server and a proxy in front of it may disagree on which, so
    none is guessed."""
    resp = exchange(daemon, b"POST /execute HTTP/1.1\r\nHost: x\r\n" + framing,
                    timeout=60)
    assert len(resp) == 1 and resp[0][0] in (400, 501), resp
    assert resp[0][1].get("connection") == "close", resp


def test_ambiguous_framing_on_a_keepalive_request_is_400(daemon):
    """The second request of a connection is checked as well."""
    resp = exchange(daemon, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"POST /execute HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 15\r\nContent-Length: 30\r\n\r\n" + J,
                    timeout=60)
    assert [r[0] for r in resp] == [200, 400], resp


def test_same_content_length_twice_is_accepted(daemon):
    body = J
    resp = exchange(daemon, b"POST /execute HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), len(body), body),
                    timeout=60)
    assert resp[0][0] == 200 and b"end_of_execution" in resp[0][2], resp


def test_expect_100_continue_over_the_limit_is_413_at_once(aux_daemon):
    with raw_connect(aux_daemon) as s:
        s.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        # No body is sent: the answer must not wait for it.
        resp = parse_responses(read_to_eof(s, timeout=10))
    assert [r[0] for r in resp] == [413], resp
    assert b"4096" in resp[0][2], resp


def test_expect_100_continue_under_the_limit_continues(aux_daemon):
    body = b'{"code": "1+1"}'
    with raw_connect(aux_daemon) as s:
        s.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
        s.settimeout(10)
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        s.sendall(body)
        resp = parse_responses(first + read_to_eof(s, timeout=60))
    assert [r[0] for r in resp] == [100, 200], resp


def _upload(d, head, chunks):
    """Sends head, then chunks from the iterator while the daemon reads;
    returns (bytes of body sent, raw answer) once the daemon closed."""
    s = raw_connect(d, timeout=30)
    s.sendall(head)
    sent = 0
    got = []

    def reader():
        got.append(read_to_eof(s, timeout=30))
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for c in chunks:
            if not t.is_alive():
                break
            s.sendall(c)
            sent += len(c)
    except OSError:
        pass  # the daemon closed the connection: what we expect
    t.join(35)
    s.close()
    assert got, "no answer"
    return sent, got[0]


def test_large_upload_is_refused_before_it_is_read(aux_daemon):
    """A 256 MiB Content-Length is answered 413 from the head alone."""
    block = b"x" * (1 << 20)
    sent, data = _upload(aux_daemon, b"POST /execute HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: %d\r\n\r\n" % (256 << 20),
                         (block for _ in range(256)))
    assert [r[0] for r in parse_responses(data)] == [413], data
    # Loose: socket buffers may take some MiB before the close is seen.
    assert sent < (64 << 20), f"{sent} bytes were sent before the 413"


def test_chunked_upload_over_the_limit_is_cut_short(aux_daemon):
    """Without a Content-Length the 413 comes as soon as the body passes
    --max-body (4096 here), and the connection closes."""
    block = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(block), block)
    sent, data = _upload(aux_daemon, b"POST /execute HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n",
                         (chunk for _ in range(4096)))
    resp = parse_responses(data)
    assert [r[0] for r in resp] == [413], data
    assert resp[0][1].get("connection") == "close", resp
    assert sent < (64 << 20), f"{sent} bytes were sent before the 413"
    assert health(aux_daemon) == (200, b'"OK"')
