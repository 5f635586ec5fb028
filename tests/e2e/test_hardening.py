"""Issue 7 bounds that live in the daemon: the access token, the optional
per-execution deadline, cwd validation, the output backlog bound."""

from harness import (error, executions_over, main_text, of_type, raw_connect,
                     raw_execute, read_execute, stderr, wait_until)


def test_access_token(make_daemon):
    d = make_daemon(args=["--access-token", "s3cret"])
    c = d.client()
    good = {"E2B-Traffic-Access-Token": "s3cret"}
    d.wait_healthy(headers=good)
    for path, method in [("/health", "GET"), ("/contexts", "GET"),
                         ("/execute", "POST"), ("/metrics", "GET"),
                         ("/nope", "GET")]:
        r = c.request(method, path, body={"code": "1"} if method == "POST" else None)
        assert r.status == 401, (path, r.status)
        assert "token" in r.text.lower()
        r = c.request(method, path, headers={"X-Access-Token": "wrong"},
                      body={"code": "1"} if method == "POST" else None)
        assert r.status == 401
    assert c.request("GET", "/contexts", headers={"X-Access-Token": "s3cret"}).status == 200
    lines = c.execute("1+1", headers=good)
    assert main_text(lines) == "2"
    # CORS preflights carry no credentials and are answered anyway.
    r = c.request("OPTIONS", "/execute", headers={
        "Origin": "http://x", "Access-Control-Request-Method": "POST"})
    assert 200 <= r.status < 300


def test_deadline_header_interrupts_and_reports(client, new_context):
    ctx = new_context()
    client.execute("kept = 1", context_id=ctx["id"])
    lines = client.execute("import time; time.sleep(60)", context_id=ctx["id"],
                           headers={"X-E2B-CI-Deadline-Ms": "700"}, timeout=30)
    err = error(lines)
    assert err and err["name"] == "TimeoutError" and "700 ms" in err["value"]
    assert lines[-1]["type"] == "end_of_execution"
    # The cell was interrupted, not the kernel restarted: state is kept.
    assert main_text(client.execute("kept + 1", context_id=ctx["id"], timeout=20)) == "2"


def test_deadline_header_is_validated(client):
    r = client.request("POST", "/execute", body={"code": "1"},
                       headers={"X-E2B-CI-Deadline-Ms": "soon"})
    assert r.status == 400 and "X-E2B-CI-Deadline-Ms" in r.text


def test_deadline_not_reached_changes_nothing(client):
    lines = client.execute("1+1", headers={"X-E2B-CI-Deadline-Ms": "30000"})
    assert main_text(lines) == "2" and error(lines) is None


def test_context_cwd_must_exist(client, tmp_path):
    r = client.request("POST", "/contexts", body={"cwd": str(tmp_path / "missing")})
    assert r.status == 400 and "not an existing directory" in r.text
    f = tmp_path / "file"
    f.write_text("x")
    r = client.request("POST", "/contexts", body={"cwd": str(f)})
    assert r.status == 400


def test_backlog_bound_truncates_with_a_notice(make_daemon):
    d = make_daemon(args=["--max-backlog", "65536"]).wait_healthy()
    # A client that does not read while the kernel writes 5 MB.
    s = raw_execute(d, "import sys\nfor i in range(5000): "
                    "sys.stdout.write('x' * 999 + '\\n')\nsys.stdout.flush()\n'done'",
                    rcvbuf=4096)
    # Wait (without reading) until the kernel is done with the cell.
    c = d.client()
    wait_until(lambda: executions_over(c, 1), "the cell ended (metrics)",
               timeout=60)
    lines = read_execute(s, timeout=30)
    assert "output truncated" in stderr(lines)
    assert main_text(lines) == "done"
    printed = "".join(l["text"] for l in of_type(lines, "stdout"))
    assert printed.count("x" * 999) < 5000
    d.stop()


def test_max_contexts_is_enforced(make_daemon):
    d = make_daemon(args=["--max-contexts", "2", "--pool", "python=0"]).wait_healthy()
    c = d.client()
    # The default python context is one of the two.
    ctx = c.create_context()
    r = c.request("POST", "/contexts", body={})
    assert r.status == 429 and "Too many contexts" in r.text
    assert c.delete(ctx["id"]).status == 200
    assert c.request("POST", "/contexts", body={}).status == 200
    d.stop()


def test_max_connections_is_enforced_and_recovers(make_daemon):
    """At the limit the longest idle connection makes room for a new one
    (test_http_limits.py: slow clients, and 503 when none is idle)."""
    d = make_daemon(args=["--max-connections", "16"]).wait_healthy()
    held = [raw_connect(d, timeout=5) for _ in range(16)]
    try:
        assert d.client().request("GET", "/health", timeout=5).status == 200
        # The oldest of the idle clients was closed for it.
        try:
            assert held[0].recv(100) == b""
        except ConnectionResetError:
            pass
    finally:
        for s in held:
            s.close()
    assert d.client().request("GET", "/health").status == 200
    d.stop()


def test_max_kernels_is_enforced(make_daemon):
    # The default python context holds one kernel; no warm spares.
    d = make_daemon(args=["--max-kernels", "2", "--pool", "python=0"]).wait_healthy()
    c = d.client()
    ctx = c.create_context()
    r = c.request("POST", "/contexts", body={})
    assert r.status == 429 and "Too many kernels" in r.text
    assert main_text(c.execute("1+1", context_id=ctx["id"])) == "2"
    assert c.delete(ctx["id"]).status == 200
    # The deleted context's kernel is gone once reaped: a slot frees up.
    wait_until(lambda: c.request("POST", "/contexts", body={}).status == 200,
               "POST /contexts succeeds again", timeout=20, interval=0.1)
    d.stop()
