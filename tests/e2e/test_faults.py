"""Faults: clients that go away, kernels that die, restarts and deletes with
an execution in flight, SIGTERM with work in progress (docs/http-contract.md,
"Disconnect = interrupt", "Errors in the stream", "Restart", "Shutdown")."""

import http.client
import os
import signal

from harness import (content, error, is_ready, main_text, of_type, stdout,
                     wait_cell, wait_until)

SLEEP = "import time; time.sleep(300)"
RESTARTING = {"type": "error", "name": "ContextRestarting",
              "value": "Context was restarted", "traceback": ""}


def started(line):
    return line["type"] == "number_of_executions"


def test_disconnect_interrupts_the_cell(client, new_context):
    ctx = new_context()
    client.execute("kept = 'state'", context_id=ctx["id"])
    s = client.stream(SLEEP, context_id=ctx["id"])
    assert s.status == 200
    s.read_until(started, timeout=30)
    # The daemon is not blocked by a busy kernel.
    assert client.request("GET", "/health", timeout=5).status == 200
    assert client.request("GET", "/contexts", timeout=5).status == 200
    s.close()
    # The context is free again within a few seconds (15 s is generous), and
    # it was interrupted, not restarted: its state is still there.
    assert main_text(client.execute("1+1", context_id=ctx["id"], timeout=15)) == "2"
    assert main_text(client.execute("kept", context_id=ctx["id"], timeout=15)) == "state"


def test_disconnect_on_the_default_context(client):
    s = client.stream(SLEEP)
    s.read_until(started, timeout=30)
    s.close()
    assert main_text(client.execute("1 + 1", timeout=15)) == "2"


def test_disconnect_while_queued_cancels_the_request(client, new_context, tmp_path):
    ctx = new_context()
    go = tmp_path / "go"
    first = client.stream(wait_cell(go), context_id=ctx["id"])
    try:
        first.read_until(is_ready, timeout=30)
        queued = client.stream("ran_queued = True", context_id=ctx["id"])
        # A keepalive proves the daemon has the request in its queue.
        queued.read_until(lambda l: l["type"] == "keepalive", timeout=15)
        queued.close()
        # Give the daemon a few of its own keepalive periods to notice (it
        # cannot tell us when it did): count keepalives on the running cell.
        for _ in range(3):
            first.read_until(lambda l: l["type"] == "keepalive", timeout=15)
        go.touch()
        assert error(first.read_all()) is None
    finally:
        first.close()
    lines = client.execute("'ran_queued' in globals()", context_id=ctx["id"], timeout=15)
    assert main_text(lines) == "False"


def test_cell_ignoring_sigint_is_restarted_after_disconnect(client, new_context, tmp_path):
    # The shared daemon runs with --interrupt-timeout-ms 2000.
    ctx = new_context({"cwd": str(tmp_path)})
    s = client.stream("import signal, time\n"
                      "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                      "print('ready', flush=True)\n"
                      "time.sleep(300)", context_id=ctx["id"])
    s.read_until(is_ready, timeout=30)
    s.close()
    assert main_text(client.execute("1+1", context_id=ctx["id"], timeout=20)) == "2"
    assert [c for c in client.contexts() if c["id"] == ctx["id"]] == [ctx]
    assert stdout(client.execute("import os; print(os.getcwd())",
                                 context_id=ctx["id"])) == f"{tmp_path}\n"


def test_kernel_death_mid_execution(client, new_context, tmp_path):
    ctx = new_context({"cwd": str(tmp_path)})
    client.execute("doomed = 1", context_id=ctx["id"])
    lines = client.execute("import os; os._exit(1)", context_id=ctx["id"], timeout=30)
    body = [l for l in content(lines) if l["type"] != "number_of_executions"]
    assert len(body) == 2, lines
    err, end = body
    assert {k: err.get(k) for k in RESTARTING} == RESTARTING, err
    assert end == {"type": "end_of_execution"}
    # Same context, new kernel: usable, empty, same cwd.
    assert main_text(client.execute("1+1", context_id=ctx["id"], timeout=30)) == "2"
    assert [c for c in client.contexts() if c["id"] == ctx["id"]] == [ctx]
    err = error(client.execute("doomed", context_id=ctx["id"]))
    assert err and err["name"] == "NameError"
    assert stdout(client.execute("import os; print(os.getcwd())",
                                 context_id=ctx["id"])) == f"{tmp_path}\n"


def test_kernel_killed_while_idle_is_replaced(client, new_context):
    ctx = new_context()
    pid = int(main_text(client.execute("import os; os.getpid()", context_id=ctx["id"])))
    os.kill(pid, signal.SIGKILL)
    # The daemon may or may not have noticed before our next request; either
    # that request runs on a new kernel, or it ends with ContextRestarting
    # and the one after it works.
    lines = client.execute("1+1", context_id=ctx["id"], timeout=30)
    err = error(lines)
    if err is not None:
        assert err["name"] == "ContextRestarting", err
        lines = client.execute("1+1", context_id=ctx["id"], timeout=30)
    assert main_text(lines) == "2"
    new_pid = int(main_text(client.execute("import os; os.getpid()",
                                           context_id=ctx["id"])))
    assert new_pid != pid


def test_restart_with_execution_in_flight(client, new_context):
    ctx = new_context()
    client.execute("before_restart = 1", context_id=ctx["id"])
    s = client.stream(SLEEP, context_id=ctx["id"])
    try:
        s.read_until(started, timeout=30)
        r = client.restart(ctx["id"])
        assert r.status == 200, r
        assert r.json() is None
        lines = s.read_all(timeout=15)
    finally:
        s.close()
    tail = content(lines)[-2:]
    assert tail[0]["type"] == "error", lines
    assert tail[0]["name"] == "ContextRestarting", lines
    assert tail[1] == {"type": "end_of_execution"}
    assert main_text(client.execute("1+1", context_id=ctx["id"], timeout=15)) == "2"
    err = error(client.execute("before_restart", context_id=ctx["id"]))
    assert err and err["name"] == "NameError"


def test_delete_with_execution_in_flight(client, new_context):
    ctx = new_context()
    s = client.stream(SLEEP, context_id=ctx["id"])
    try:
        s.read_until(started, timeout=30)
        r = client.delete(ctx["id"])
        assert r.status == 200, r
        lines = s.read_all(timeout=15)
    finally:
        s.close()
    assert content(lines)[-2]["type"] == "error", lines
    r = client.request("POST", "/execute", {"code": "1", "context_id": ctx["id"]})
    assert r.status == 404, r


def test_sigterm_with_execution_running(make_daemon):
    d = make_daemon().wait_healthy()
    c = d.client()
    s = c.stream(SLEEP)
    s.read_until(started, timeout=30)
    rc = d.terminate(deadline_s=10)
    assert rc == 0, f"exit status after SIGTERM: {rc} (None: no exit within 10 s)"
    problems = d.check_after_exit()
    assert not problems, problems
    # The stream ends rather than hangs. If it ends cleanly, the client
    # learns why (an error line before end_of_execution).
    try:
        while s.next_line(timeout=10) is not None:
            pass
    except (ConnectionError, http.client.HTTPException):
        pass
    finally:
        s.close()
    if of_type(s.lines, "end_of_execution"):
        assert content(s.lines)[-1]["type"] == "end_of_execution"
        assert content(s.lines)[-2]["type"] == "error", s.lines


def test_requests_during_shutdown_get_503(make_daemon):
    """While the shutdown waits for a kernel that is busy and ignores
    SIGTERM (it is killed 1.5 s in), new requests still reach the daemon.
    They must not make a context: one made then outlived the shutdown and
    its ZeroMQ sockets hung the exit."""
    d = make_daemon().wait_healthy()
    c = d.client()
    ign = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    assert not error(c.execute(ign))
    s = c.stream(SLEEP)
    s.read_until(started, timeout=30)
    d.proc.send_signal(signal.SIGTERM)
    # The daemon says so once the shutdown has begun.
    wait_until(lambda: c.request("GET", "/health", timeout=2).status == 503,
               "/health answers 503", timeout=10, interval=0.01)
    r = c.request("GET", "/health", timeout=2)
    assert (r.status, r.body) == (503, b"Shutting down"), r
    r = c.request("POST", "/execute", {"code": "1+1"}, timeout=5)
    assert (r.status, r.body) == (503, b"The server is shutting down"), r
    r = c.request("POST", "/contexts", {"language": "python"}, timeout=5)
    assert (r.status, r.body) == (503, b"The server is shutting down"), r
    s.close()
    rc = d.terminate(deadline_s=10)
    assert rc == 0, f"exit status after SIGTERM: {rc} (None: no exit within 10 s)"
    problems = d.check_after_exit()
    assert not problems, problems
