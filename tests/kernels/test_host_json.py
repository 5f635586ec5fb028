"""e2b-kernel in json mode (kernels/RUNNER-PROTOCOL.md) with a scripted
runner: a small Python program that follows the protocol and runs each cell
as Python with display()/result()/emit()/raw() helpers, so every event, and
every way a runner can misbehave, can be produced on demand. The real runners
(kernels/node, kernels/java) have their own tests.

Needs build/e2b-kernel (`make all`) or E2B_KERNEL_BIN.
"""

import json
import signal
import time

import pytest

from host_client import DEADLINE, ROOT, Kernel, require_host

RUNNER = r'''
import json, os, signal, sys, time, traceback

events = os.fdopen(3, "w")
log = os.environ.get("FAKE_LOG")
cur = None


def emit(**e):
    events.write(json.dumps(e) + "\n")
    events.flush()


def raw(text):
    events.write(text)
    events.flush()


def display(data, metadata=None, **extra):
    emit(type="display", id=cur, data=data, metadata=metadata or {}, **extra)


def result(data):
    emit(type="result", id=cur, data=data, metadata={})


def on_sigint(sig, frame):
    # SIGINT while idle is ignored, as the protocol says.
    if cur is not None:
        raise KeyboardInterrupt
    if log:
        with open(log, "a") as f:
            f.write("idle SIGINT\n")


signal.signal(signal.SIGINT, on_sigint)
gate = os.environ.get("FAKE_READY_GATE")
while gate and not os.path.exists(gate):
    time.sleep(0.02)
# FAKE_START_DELAY: announce "started" (and so get SIGINT only after it),
# that many seconds after reading a request, as a runner that is slow to
# start a cell; a SIGINT before that finds no cell and is ignored.
start_delay = os.environ.get("FAKE_START_DELAY")
emit(type="ready", banner="fake runner", announces_start=start_delay is not None,
     language_info={"name": "fakelang", "version": "1.0",
                    "mimetype": "text/x-fake", "file_extension": ".fake"})
ns = {"display": display, "result": result, "emit": emit, "raw": raw,
      "json": json}
for line in sys.stdin:
    req = json.loads(line)
    if log:
        with open(log, "a") as f:
            f.write(req["type"] + "\n")
    if req["type"] == "shutdown":
        sys.exit(0)
    rid = req["id"]
    ns["cur"], ns["silent"] = rid, req["silent"]
    status = "ok"
    try:
        if start_delay is not None:
            time.sleep(float(start_delay))
        cur = rid
        if start_delay is not None:
            emit(type="started", id=rid)
        exec(req["code"], ns)
    except KeyboardInterrupt:
        emit(type="error", id=rid, ename="KeyboardInterrupt", evalue="",
             traceback=["KeyboardInterrupt"])
        status = "error"
    except Exception as e:
        emit(type="error", id=rid, ename=type(e).__name__, evalue=str(e),
             traceback=traceback.format_exception_only(type(e), e))
        status = "error"
    sys.stdout.flush()
    sys.stderr.flush()
    cur = None
    emit(type="done", id=rid, status=status)
'''


@pytest.fixture(scope="session", autouse=True)
def built():
    require_host()


@pytest.fixture
def spec(tmp_path, monkeypatch):
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    kdir = tmp_path / "jp" / "kernels" / "fake"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": ["/bin/sh", str(ROOT / "kernels" / "host" / "launch.sh"),
                 "--mode", "json", "--language", "fakelang",
                 "-f", "{connection_file}", "--",
                 "/usr/bin/python3", "-u", str(runner)],
        "display_name": "fake", "language": "fakelang"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    return tmp_path


def fake(spec, env=None, ready=True):
    """The fake kernel, started in spec (the test's tmp dir)."""
    return Kernel("fake", spec, env=env, ready=ready)


@pytest.fixture
def kernel(spec):
    k = fake(spec)
    yield k
    k.close()


def summary(outputs):
    """(type, payload) per output message, in order (status messages and
    the execute_input are not outputs)."""
    res = []
    for m in outputs:
        c = m["content"]
        if m["msg_type"] in ("status", "execute_input"):
            continue
        if m["msg_type"] == "stream":
            # Chunking is arbitrary; adjacent text of one stream is merged.
            if res and res[-1][0] == c["name"]:
                res[-1] = (c["name"], res[-1][1] + c["text"])
            else:
                res.append((c["name"], c["text"]))
        elif m["msg_type"] in ("display_data", "execute_result"):
            res.append((m["msg_type"], c["data"]["text/plain"]))
        else:
            res.append((m["msg_type"], c.get("ename")))
    return res


def test_kernel_info_from_the_ready_event(kernel):
    info = kernel.reply(kernel.kc.kernel_info())["content"]
    assert info["language_info"] == {"name": "fakelang", "version": "1.0",
                                     "mimetype": "text/x-fake",
                                     "file_extension": ".fake"}
    assert info["banner"] == "fake runner"
    assert info["implementation"] == "e2b-kernel"


def test_requests_wait_for_ready(spec):
    gate = spec / "gate"
    k = fake(spec, env={"FAKE_READY_GATE": str(gate)}, ready=False)
    try:
        info_id = k.kc.kernel_info()
        exec_id = k.kc.execute("print('after ready')")
        gate.touch()
        info = k.reply(info_id)["content"]
        # Answered from the ready event, so it waited for it.
        assert info["banner"] == "fake runner"
        assert info["language_info"]["version"] == "1.0"
        assert k.reply(exec_id)["content"]["status"] == "ok"
    finally:
        k.close()


def test_output_order_and_results(kernel):
    c, out = kernel.run(
        "print('a'); display({'text/plain': 'd'}, transient={'display_id': 'x'})\n"
        "print('b', file=__import__('sys').stderr); result({'text/plain': 'r'})\n"
        "print('c', end='')")
    assert c["status"] == "ok", c
    kinds = [k for k, _ in summary(out)]
    # The host drains fd 1 and 2 before acting on an event: what was
    # written before an event is published before it. (Output written after
    # an event may overtake it: two pipes have no common order.) And "done"
    # comes last, so everything is in before the reply.
    assert kinds.index("stdout") < kinds.index("display_data")
    assert kinds.index("stderr") < kinds.index("execute_result")
    streams = [m["content"] for m in out if m["msg_type"] == "stream"]
    assert "".join(s["text"] for s in streams if s["name"] == "stdout") == "a\nc"
    assert "".join(s["text"] for s in streams if s["name"] == "stderr") == "b\n"
    disp = [m for m in out if m["msg_type"] == "display_data"][0]
    assert disp["content"]["transient"] == {"display_id": "x"}
    res = [m for m in out if m["msg_type"] == "execute_result"][0]
    assert res["content"]["execution_count"] == c["execution_count"]


def test_output_order_across_pipes_when_the_host_was_late(kernel):
    # The host is stopped while the cell writes an event, then stderr, then
    # stdout, then the event that ends it: when it wakes, all three pipes
    # are readable and the event pipe is read first. The drain it runs
    # before acting on the event must read stderr before stdout, the order
    # the data arrived in, not a fixed fd order.
    code = (
        "import os, signal, sys\n"
        "host = os.getppid()\n"
        "os.kill(host, signal.SIGSTOP)\n"
        "try:\n"
        "    display({'text/plain': 'd'})\n"
        "    sys.stderr.write('err\\n'); sys.stderr.flush()\n"
        "    sys.stdout.write('out\\n'); sys.stdout.flush()\n"
        "finally:\n"
        "    os.kill(host, signal.SIGCONT)\n")
    for _ in range(3):
        c, out = kernel.run(code)
        assert c["status"] == "ok", c
        assert summary(out) == [("stderr", "err\n"), ("stdout", "out\n"),
                                ("display_data", "d")]


def test_stream_events_are_one_message_each(kernel):
    # A "stream" event is one stream message, its text as is: the runner
    # chose the boundaries (Java: one per flush). fd 1 output written
    # before it still comes first; malformed stream events are dropped.
    c, out = kernel.run(
        "print('raw', flush=True)\n"
        "emit(type='stream', id=cur, name='stdout', text='Hello, World!')\n"
        "emit(type='stream', id=cur, name='stdout', text='\\n')\n"
        "emit(type='stream', id=cur, name='stderr', text='caf\\u00e9')\n"
        "emit(type='stream', id=cur, name='stdin', text='no such stream')\n"
        "emit(type='stream', id=cur, name='stdout', text=7)\n"
        "emit(type='stream', id=cur, name='stdout', text='')\n"
        "emit(type='stream', id=cur + 1000, name='stdout', text='other id')")
    assert c["status"] == "ok", c
    streams = [(m["content"]["name"], m["content"]["text"])
               for m in out if m["msg_type"] == "stream"]
    # fd 1 comes in whatever pieces the pipe gives; the events as they were.
    at = streams.index(("stdout", "Hello, World!"))
    assert "".join(t for _, t in streams[:at]) == "raw\n", streams
    assert streams[at:] == [("stdout", "Hello, World!"), ("stdout", "\n"),
                            ("stderr", "caf\u00e9")], streams


def test_silent_cells_drop_results_only(kernel):
    c, out = kernel.run("display({'text/plain': 'd'}); result({'text/plain': 'r'})",
                        silent=True)
    assert summary(out) == [("display_data", "d")]


def test_errors(kernel):
    c, out = kernel.run("print('x'); raise ValueError('bad value')")
    assert c["status"] == "error"
    assert (c["ename"], c["evalue"]) == ("ValueError", "bad value")
    assert c["traceback"] == ["ValueError: bad value\n"]
    assert summary(out) == [("stdout", "x\n"), ("error", "ValueError")]
    # A done with status error and no error event still fails the cell.
    c, out = kernel.run("emit(type='done', id=cur, status='error'); "
                        "import os; os.write(1, b'late')")
    assert c["status"] == "error" and c["ename"] == "Error"


def test_interrupt_keeps_state(kernel):
    kernel.run("x = 41")
    msg_id = kernel.kc.execute("print('go'); import time; time.sleep(100)")
    kernel.wait_iopub(lambda m: m["msg_type"] == "stream")
    kernel.km.interrupt_kernel()
    c = kernel.reply(msg_id)["content"]
    assert c["status"] == "error" and c["ename"] == "KeyboardInterrupt"
    c, out = kernel.run("print(x + 1)")
    assert summary(out) == [("stdout", "42\n")]


def busy(k, msg_id):
    """Waits until the host has taken the request (its "busy")."""
    k.wait_iopub(lambda m: m["msg_type"] == "status" and
                 m["parent_header"].get("msg_id") == msg_id and
                 m["content"]["execution_state"] == "busy")


def test_interrupt_waits_for_started(spec):
    # A runner that announces "started" gets the SIGINT of an interrupt that
    # came before it started the request only then; before, the signal
    # found no cell, was ignored, and the busy cell ran on for ever.
    k = fake(spec, env={"FAKE_START_DELAY": "0.3"})
    try:
        k.run("x = 41")
        msg_id = k.kc.execute("while True: pass")
        busy(k, msg_id)
        k.km.interrupt_kernel()
        c = k.reply(msg_id)["content"]
        assert c["status"] == "error" and c["ename"] == "KeyboardInterrupt", c
        c, out = k.run("print(x + 1)")
        assert summary(out) == [("stdout", "42\n")]
        # An interrupt after the cell has started goes out at once.
        msg_id = k.kc.execute("print('go', flush=True)\nwhile True: pass")
        k.wait_iopub(lambda m: m["msg_type"] == "stream" and
                     m["parent_header"].get("msg_id") == msg_id)
        k.km.interrupt_kernel()
        assert k.reply(msg_id)["content"]["ename"] == "KeyboardInterrupt"
    finally:
        k.close()


def test_held_interrupt_goes_out_when_started_does_not_come(spec):
    # A runner busy elsewhere (a leftover of an earlier cell) cannot start
    # the request: the SIGINT it needs to get free goes out after 0.5 s.
    log = spec / "fake.log"
    k = fake(spec, env={"FAKE_START_DELAY": "3", "FAKE_LOG": str(log)})
    try:
        msg_id = k.kc.execute("while True: pass")
        busy(k, msg_id)
        t0 = time.monotonic()
        k.km.interrupt_kernel()
        while "idle SIGINT" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() - t0 < 2.5, "the held SIGINT never went out"
            time.sleep(0.05)
        # The fake runner ignored it (no cell yet) and then starts the cell;
        # interrupts from then on reach it, as the daemon repeats them.
        deadline = time.monotonic() + DEADLINE
        while True:
            assert time.monotonic() < deadline, "the cell was never interrupted"
            k.km.interrupt_kernel()
            try:
                m = k.kc.get_shell_msg(timeout=0.5)
            except Exception:
                continue
            if m["parent_header"].get("msg_id") == msg_id:
                break
        assert m["content"]["ename"] == "KeyboardInterrupt", m["content"]
    finally:
        k.close()


def test_bad_events_are_ignored(kernel):
    c, out = kernel.run(
        "raw('not json\\n'); raw('\\n'); raw('{\"no\": \"type\"}\\n')\n"
        "emit(type='display', id=cur + 1000, data={'text/plain': 'other id'})\n"
        "emit(type='display', id=cur, data='not an object')\n"
        "emit(type='mystery', id=cur)\n"
        "raw(json.dumps({'type': 'display', 'id': cur, 'data': {'text/plain': 'sp"
        "lit'}})[:20]); raw(json.dumps({'type': 'display', 'id': cur, 'data':"
        " {'text/plain': 'split'}})[20:] + '\\n')\n"
        "display({'text/plain': 'real'})", )
    assert c["status"] == "ok", c
    assert summary(out) == [("display_data", "split"), ("display_data", "real")]
    c, out = kernel.run("print('still fine')")
    assert summary(out) == [("stdout", "still fine\n")]


def test_big_code_and_big_events(kernel):
    c, out = kernel.run("s = '" + "a" * 3_000_000 + "'; print(len(s))\n"
                        "display({'text/plain': 'b' * 5_000_000})")
    assert c["status"] == "ok"
    assert summary(out)[0] == ("stdout", "3000000\n")
    assert summary(out)[1] == ("display_data", "b" * 5_000_000)


def test_runner_exit_status_becomes_the_kernels(kernel):
    kernel.kc.execute("print('bye'); import os; os._exit(5)")
    assert kernel.proc.wait(DEADLINE) == 5


def test_runner_killed(kernel):
    kernel.kc.execute("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert kernel.proc.wait(DEADLINE) == 128 + signal.SIGKILL


def test_shutdown_reaches_the_runner(spec):
    log = spec / "requests.log"
    k = fake(spec, env={"FAKE_LOG": str(log)})
    try:
        k.run("pass")
        k.kc.shutdown()
        rep = k.kc.get_control_msg(timeout=DEADLINE)
        assert rep["content"]["status"] == "ok"
        assert k.proc.wait(DEADLINE) == 0
        assert log.read_text().split() == ["execute", "shutdown"]
    finally:
        k.close()
