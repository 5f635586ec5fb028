"""The bash kernel (kernels/bash, e2b-kernel in bash mode) driven directly
over the Jupyter protocol with jupyter_client.

Needs build/e2b-kernel (`make all`) or E2B_KERNEL_BIN. The kernelspec is
found through JUPYTER_PATH=<repo root>, exactly as shipped in kernels/bash.
Cells that must still be running while the test looks wait for a file the
test creates, so nothing here depends on timing; every wait has a deadline.
"""

import os
import re
import signal
import time

import pytest
import zmq
from jupyter_client.session import Session

from host_client import (DEADLINE, ROOT, Kernel, pid_alive, procs_matching,
                         require_host, text, types, wait_proc)

os.environ["JUPYTER_PATH"] = str(ROOT)


@pytest.fixture(scope="session", autouse=True)
def built():
    require_host()


def wait_file(path):
    """Shell code that blocks until path exists (bounded, 60 s)."""
    return (f"for __i in $(seq 600); do [ -e '{path}' ] && break; "
            f"sleep 0.1; done")


def start_kernel(tmp_path, transport="tcp", cwd=None):
    return Kernel("bash", cwd or tmp_path,
                  ipc=tmp_path / "kipc" if transport == "ipc" else None)


@pytest.fixture
def kernel(tmp_path):
    k = start_kernel(tmp_path)
    yield k
    k.close()


# ------------------------------------------------------------ state, output

def test_state_persists_across_cells(kernel, tmp_path):
    c, out = kernel.run("echo hi; cd /tmp; export A=1; B=two; "
                        "f() { echo \"f:$1\"; }; alias ll='echo aliased'")
    assert c["status"] == "ok", c
    assert text(out, "stdout") == "hi\n"
    c, out = kernel.run("pwd; echo $A $B; f x; ll; "
                        "sh -c 'echo child sees A=$A B=${B-unset}'")
    assert c["status"] == "ok", c
    assert text(out, "stdout") == ("/tmp\n1 two\nf:x\naliased\n"
                                   "child sees A=1 B=unset\n")


def test_kernel_starts_in_its_cwd(tmp_path):
    home = tmp_path / "home dir"
    home.mkdir()
    k = start_kernel(tmp_path, cwd=home)
    try:
        c, out = k.run("pwd")
        assert text(out, "stdout") == f"{home}\n"
    finally:
        k.close()


def test_message_sequence_and_counts(kernel):
    msg_id = kernel.execute("echo one")
    reply = kernel.reply(msg_id)
    out = kernel.outputs(msg_id)
    assert types(out) == ["status", "execute_input", "stream", "status"]
    assert out[0]["content"]["execution_state"] == "busy"
    n = out[1]["content"]["execution_count"]
    assert out[1]["content"]["code"] == "echo one"
    assert reply["content"]["execution_count"] == n
    assert reply["parent_header"]["msg_id"] == msg_id
    # Silent: no execute_input, output still streamed, count unchanged.
    c, out = kernel.run("echo quiet", silent=True)
    assert "execute_input" not in types(out)
    assert text(out, "stdout") == "quiet\n"
    assert c["execution_count"] == n
    # store_history=False does not count either; the next normal cell does.
    c, _ = kernel.run("true", store_history=False)
    assert c["execution_count"] == n
    c, _ = kernel.run("true")
    assert c["execution_count"] == n + 1


def test_output_is_streamed_in_order_while_the_cell_runs(kernel, tmp_path):
    go = tmp_path / "go"
    msg_id = kernel.execute(f"echo out; {wait_file(go)}; echo err >&2; "
                            f"printf 'no newline'")
    # The cell is blocked on us: stdout must arrive before it ends.
    first = kernel.wait_iopub(lambda m: m["msg_type"] == "stream")
    assert first["content"] == {"name": "stdout", "text": "out\n"}
    assert not [m for m in kernel.iopub if m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"].get("msg_id") == msg_id]
    go.touch()
    assert kernel.reply(msg_id)["content"]["status"] == "ok"
    out = kernel.outputs(msg_id)
    streams = [(m["content"]["name"], m["content"]["text"]) for m in out
               if m["msg_type"] == "stream"]
    assert streams[0] == ("stdout", "out\n")
    assert text(out, "stderr") == "err\n"
    assert text(out, "stdout") == "out\nno newline"
    # Across the two pipes only what the cell separated in time is ordered:
    # stdout "out" was published before the stderr line was even written.
    names = [n for n, _ in streams]
    assert names.index("stdout") < names.index("stderr")


def test_code_bytes_arrive_unchanged(kernel):
    code = ("cat <<'EOF'\nit's \"q\" \\ $x `y` ünï €\tcode\r!\nEOF\n"
            "echo \"a'b\" 'c\"d' $'e\\tf'")
    c, out = kernel.run(code)
    assert c["status"] == "ok", c
    assert text(out, "stdout") == ("it's \"q\" \\ $x `y` ünï €\tcode\r!\n"
                                   "a'b c\"d e\tf\n")


def test_utf8_split_across_writes_is_kept_whole(kernel, tmp_path):
    go = tmp_path / "go"
    msg_id = kernel.execute(f"printf 'caf\\xc3'; {wait_file(go)}; "
                            f"printf '\\xa9 \\xff\\n'")
    first = kernel.wait_iopub(lambda m: m["msg_type"] == "stream")
    assert first["content"]["text"] == "caf"
    go.touch()
    kernel.reply(msg_id)
    # The lead byte waited for its continuation; 0xff can never be valid.
    assert text(kernel.outputs(msg_id), "stdout") == "café \ufffd\n"


def test_large_output_arrives_complete(kernel):
    c, out = kernel.run("seq 1 200000", timeout=60)
    assert c["status"] == "ok"
    assert text(out, "stdout") == "".join(f"{i}\n" for i in range(1, 200001))


def test_user_code_gets_no_stdin(kernel):
    c, out = kernel.run("cat; read x; echo \"[$x] $?\"")
    assert c["status"] == "ok", c
    assert text(out, "stdout") == "[] 1\n"


def test_redirecting_the_shell_output_does_not_hang(kernel):
    c, _ = kernel.run("exec 3>&1 >/dev/null")
    assert c["status"] == "ok"
    c, out = kernel.run("echo hidden; echo shown >&2")
    assert c["status"] == "ok"
    assert text(out, "stderr") == "shown\n"
    c, out = kernel.run("exec >&3 3>&-; echo back")
    assert text(out, "stdout") == "back\n"


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("code,status", [
    ("ls /nonexistent-e2b-dir", 2),
    ("(exit 7)", 7),
    ("true; false", 1),
    ("nosuchcommand-e2b", 127),
    ("if then", 2),
])
def test_non_zero_status_is_an_error(kernel, code, status):
    c, out = kernel.run(code)
    assert c["status"] == "error"
    assert c["ename"] == "BashError"
    assert c["evalue"] == f"Command exited with status {status}"
    errors = [m["content"] for m in out if m["msg_type"] == "error"]
    assert errors == [{"ename": "BashError", "evalue": c["evalue"],
                       "traceback": c["traceback"]}]
    # The shell is fine afterwards.
    c, out = kernel.run("false; echo fine")
    assert c["status"] == "ok" and text(out, "stdout") == "fine\n"


def test_stop_on_error_aborts_queued_cells(kernel, tmp_path):
    go = tmp_path / "go"
    a = kernel.execute(f"{wait_file(go)}; false")
    b = kernel.execute("echo never")
    # kernel_info is answered at once, after b was read from the same
    # socket: once its reply is here, b is in the queue.
    kernel.reply(kernel.kc.kernel_info())
    go.touch()
    assert kernel.reply(a)["content"]["status"] == "error"
    rb = kernel.reply(b)["content"]
    assert rb["status"] == "aborted"
    out = kernel.outputs(b)
    assert types(out) == ["status", "status"]
    # Without stop_on_error the next cell runs.
    go2 = tmp_path / "go2"
    a = kernel.execute(f"{wait_file(go2)}; false", stop_on_error=False)
    b = kernel.execute("echo ran")
    kernel.reply(kernel.kc.kernel_info())
    go2.touch()
    assert kernel.reply(a)["content"]["status"] == "error"
    assert kernel.reply(b)["content"]["status"] == "ok"
    assert text(kernel.outputs(b), "stdout") == "ran\n"


# -------------------------------------------------------------- interrupts

def test_interrupt_sleep_keeps_state(kernel):
    kernel.run("X=kept; cd /tmp")
    msg_id = kernel.execute("echo start; sleep 4321; echo after")
    kernel.wait_iopub(lambda m: m["msg_type"] == "stream")
    wait_proc("sleep 4321")
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    c = kernel.reply(msg_id)["content"]
    # Far below the sleep's 72 minutes; loose, since the machine is shared.
    assert time.monotonic() - t0 < 60
    assert c["status"] == "error" and c["ename"] == "KeyboardInterrupt"
    out = kernel.outputs(msg_id)
    assert "after" not in text(out, "stdout")
    assert [m["msg_type"] for m in out].count("error") == 1
    # bash reaped the sleep before it printed the end of the cell.
    assert not procs_matching("sleep 4321")
    c, out = kernel.run("echo $X; pwd")
    assert c["status"] == "ok"
    assert text(out, "stdout") == "kept\n/tmp\n"


def test_interrupt_builtin_loop(kernel):
    msg_id = kernel.execute("echo spin; while :; do :; done")
    kernel.wait_iopub(lambda m: m["msg_type"] == "stream")
    kernel.km.interrupt_kernel()
    assert kernel.reply(msg_id)["content"]["ename"] == "KeyboardInterrupt"
    c, out = kernel.run("echo alive")
    assert text(out, "stdout") == "alive\n"


def test_interrupt_right_after_start_is_not_lost(kernel):
    """SIGINT arriving while bash may still be reading the cell's line is
    held until the cell runs; a lost one would leave `sleep 30` running."""
    for _ in range(20):
        msg_id = kernel.execute("sleep 30")
        kernel.wait_iopub(lambda m: m["parent_header"].get("msg_id") == msg_id
                          and m["msg_type"] == "execute_input")
        kernel.km.interrupt_kernel()
        c = kernel.reply(msg_id, timeout=10)["content"]
        assert c["status"] == "error" and c["ename"] == "KeyboardInterrupt"
    c, out = kernel.run("echo done")
    assert text(out, "stdout") == "done\n"


def test_interrupt_request_on_control(kernel):
    msg_id = kernel.execute("echo start; sleep 4322")
    kernel.wait_iopub(lambda m: m["msg_type"] == "stream")
    req = kernel.kc.session.msg("interrupt_request", {})
    kernel.kc.control_channel.send(req)
    rep = kernel.kc.get_control_msg(timeout=DEADLINE)
    assert rep["msg_type"] == "interrupt_reply"
    assert rep["content"]["status"] == "ok"
    assert kernel.reply(msg_id)["content"]["ename"] == "KeyboardInterrupt"


def test_sigint_while_idle_is_harmless(kernel):
    for _ in range(3):
        kernel.km.interrupt_kernel()
    c, out = kernel.run("echo fine")
    assert c["status"] == "ok" and text(out, "stdout") == "fine\n"
    assert kernel.proc.poll() is None


# ------------------------------------------------------- death and shutdown

def test_exit_kills_the_kernel_with_its_status(kernel):
    c, out = kernel.run("echo $$")
    bash_pid = int(text(out, "stdout"))
    kernel.execute("sleep 4323 & exit 3")
    assert kernel.proc.wait(DEADLINE) == 3
    assert not pid_alive(bash_pid)
    # The runner's process group went with it, background jobs included.
    assert not procs_matching("sleep 4323")


def test_shutdown_request(kernel):
    c, out = kernel.run("echo $$; sleep 4324 &")
    bash_pid = int(text(out, "stdout").split()[0])
    kernel.kc.shutdown()
    rep = kernel.kc.get_control_msg(timeout=DEADLINE)
    assert rep["msg_type"] == "shutdown_reply"
    assert rep["content"] == {"status": "ok", "restart": False}
    assert kernel.proc.wait(DEADLINE) == 0
    assert not pid_alive(bash_pid)
    assert not procs_matching("sleep 4324")


def test_shutdown_while_a_cell_runs(kernel):
    msg_id = kernel.execute("echo start; sleep 4325")
    kernel.wait_iopub(lambda m: m["msg_type"] == "stream")
    kernel.kc.shutdown()
    assert kernel.proc.wait(DEADLINE) == 0
    assert not procs_matching("sleep 4325")


def test_sigterm_stops_host_and_runner(kernel):
    c, out = kernel.run("echo $$")
    bash_pid = int(text(out, "stdout"))
    kernel.proc.send_signal(signal.SIGTERM)
    assert kernel.proc.wait(DEADLINE) == 0
    assert not pid_alive(bash_pid)


def test_runner_killed_from_outside(kernel):
    c, out = kernel.run("echo $$")
    os.kill(int(text(out, "stdout")), signal.SIGKILL)
    assert kernel.proc.wait(DEADLINE) == 128 + signal.SIGKILL


# ----------------------------------------------------- the other requests

def test_kernel_info_and_small_requests(kernel):
    info = kernel.reply(kernel.kc.kernel_info())["content"]
    assert info["status"] == "ok"
    assert info["protocol_version"] == "5.3"
    assert info["implementation"] == "e2b-kernel"
    li = info["language_info"]
    assert li["name"] == "bash" and li["file_extension"] == ".sh"
    assert re.match(r"\d+\.\d+", li["version"])
    c = kernel.reply(kernel.kc.is_complete("echo hi"))["content"]
    assert c == {"status": "complete"}
    c = kernel.reply(kernel.kc.comm_info())["content"]
    assert c == {"status": "ok", "comms": {}}
    c = kernel.reply(kernel.kc.complete("ec", 2))["content"]
    assert c["status"] == "ok" and c["matches"] == []
    msg = kernel.kc.session.msg("frobnicate_request", {})
    kernel.kc.shell_channel.send(msg)
    rep = kernel.reply(msg["header"]["msg_id"])
    assert rep["msg_type"] == "frobnicate_reply"
    assert rep["content"]["status"] == "error"
    # Every request got busy and idle on iopub.
    states = [m["content"]["execution_state"] for m in
              kernel.outputs(msg["header"]["msg_id"])]
    assert states == ["busy", "idle"]


def test_bad_signatures_are_dropped(kernel):
    info = kernel.km.get_connection_info()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
    try:
        bad = Session(key=b"not-the-key")
        good = Session(key=info["key"])
        bad_msg = bad.send(sock, "kernel_info_request", {})
        good_msg = good.send(sock, "kernel_info_request", {})
        assert sock.poll(DEADLINE * 1000)
        _, reply = good.feed_identities(sock.recv_multipart())
        reply = good.deserialize(reply)
        # Requests on one socket are handled in order: had the forged one
        # been answered, its reply would have come first.
        assert reply["parent_header"]["msg_id"] == good_msg["header"]["msg_id"]
        assert bad_msg["header"]["msg_id"] != good_msg["header"]["msg_id"]
    finally:
        sock.close()


def test_heartbeat_echoes(kernel):
    info = kernel.km.get_connection_info()
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.linger = 0
    sock.connect(f"tcp://{info['ip']}:{info['hb_port']}")
    try:
        sock.send(b"ping-e2b")
        assert sock.poll(DEADLINE * 1000)
        assert sock.recv() == b"ping-e2b"
    finally:
        sock.close()


def test_ipc_transport(tmp_path):
    k = start_kernel(tmp_path, transport="ipc")
    try:
        c, out = k.run("echo over ipc")
        assert text(out, "stdout") == "over ipc\n"
        assert (tmp_path / "kipc-1").exists() or any(
            p.name.startswith("kipc-") for p in tmp_path.iterdir())
    finally:
        k.close()


# ------------------------------------------------ the daemon's env helpers

def bash_word(value: str) -> str:
    """The quoting lang.c should use for bash: one $'...' word, quote and
    backslash escaped, printable ASCII as is, every other byte as \\xHH."""
    out = ["$'"]
    for b in value.encode("utf-8"):
        if b in (0x27, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    out.append("'")
    return "".join(out)


def env_cell(set_vars, unset_vars):
    lines = [f"export -- {k}={bash_word(v)}" for k, v in set_vars.items()]
    lines += [f"unset -v -- {k}" for k in unset_vars]
    return "\n".join(lines)


def test_env_helper_cells_set_and_unset_any_value(kernel):
    value = "".join(chr(c) for c in range(1, 256)) + " €\n'\"\\$(x)`y`\n"
    code = env_cell({"E2B_T1": value, "E2B_T2": ""}, [])
    c, out = kernel.run(code, silent=True, store_history=False,
                        stop_on_error=False)
    assert c["status"] == "ok", c
    assert out and "execute_input" not in types(out)
    c, out = kernel.run("printf %s \"$E2B_T1\" | od -An -v -tx1; "
                        "sh -c 'printf %s \"$E2B_T1\"' | od -An -v -tx1; "
                        "echo \"[${E2B_T2-unset}]\"")
    assert c["status"] == "ok", c
    lines = text(out, "stdout").split("\n", )
    hexes = "".join(lines[:-2]).split()
    want = value.encode().hex()
    # Two dumps (the shell's own, a child's), then "[]".
    assert "".join(hexes) == want * 2
    assert lines[-2] == "[]"
    c, out = kernel.run(env_cell({}, ["E2B_T1", "E2B_T2"]), silent=True,
                        store_history=False, stop_on_error=False)
    assert c["status"] == "ok", c
    c, out = kernel.run("echo \"${E2B_T1-unset} ${E2B_T2-unset}\"; "
                        "sh -c 'echo ${E2B_T1-gone}'")
    assert text(out, "stdout") == "unset unset\ngone\n"
