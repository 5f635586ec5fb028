"""Streams that used to never end (issue 11 §5): the kernel handled the
request without ever replying, and only a client disconnect (restarting the
kernel, state lost) ended them. Each must now end by itself within a few
seconds, with one error line when the cell could not be run, and the
context must keep its state and run the next cell.

The general rule under test: `status: idle` for our request with no
execute_reply after it means the kernel failed while handling the request
(ipykernel publishes idle even when its handler raised), so the stream ends
with an UnexpectedEndOfExecution error and the context moves on.
"""

import pytest

from harness import content, error, main_text, need_kernel, stderr, stdout

# Far above the ~1 s the daemon waits for a reply after idle, far below the
# forever it used to take.
END_WITHIN_S = 30


def ends_with_one_error(lines):
    body = content(lines)
    assert [l["type"] for l in body].count("error") == 1, lines
    assert body[-1] == {"type": "end_of_execution"}, lines
    assert body[-2]["type"] == "error", lines
    return body[-2]


def state_survives(client, ctx, name="kept", value="41"):
    assert main_text(client.execute(f"{name} + 1", context_id=ctx["id"])) \
        == str(int(value) + 1)


@pytest.fixture
def pyctx(client, new_context):
    ctx = new_context()
    lines = client.execute("kept = 41\nimport os; os.getpid()", context_id=ctx["id"])
    ctx["pid"] = main_text(lines)
    return ctx


def same_kernel(client, ctx):
    lines = client.execute("import os; os.getpid()", context_id=ctx["id"])
    assert main_text(lines) == ctx["pid"], "the kernel was restarted"


def test_code_with_a_nul_byte_ends_with_an_error(client, pyctx):
    # ipykernel raises "source code string cannot contain null bytes" in its
    # dispatch code: idle, no reply.
    lines = client.execute('print("a\u0000b")', context_id=pyctx["id"],
                           timeout=END_WITHIN_S)
    err = ends_with_one_error(lines)
    assert err["name"] == "UnexpectedEndOfExecution", err
    assert "without replying" in err["value"], err
    assert stdout(lines) == ""
    state_survives(client, pyctx)
    same_kernel(client, pyctx)


def test_error_the_kernel_cannot_encode_ends_the_stream(client, pyctx):
    # ipykernel's JSON packer fails on the lone surrogate, for the error
    # message and for the reply.
    lines = client.execute('raise ValueError("e \\ud800")', context_id=pyctx["id"],
                           timeout=END_WITHIN_S)
    ends_with_one_error(lines)
    state_survives(client, pyctx)
    same_kernel(client, pyctx)


def test_sys_stdout_none_does_not_silence_the_kernel(client, pyctx):
    # ipykernel flushes sys.stdout after the request outside any try: with
    # None there, neither reply nor idle came, for this and every later
    # request. The kernel's own stream is put back after the cell.
    lines = client.execute("import sys; sys.stdout = None; print(1)",
                           context_id=pyctx["id"], timeout=END_WITHIN_S)
    assert content(lines)[-1] == {"type": "end_of_execution"}, lines
    assert error(lines) is None, lines
    assert "sys.stdout could not be flushed" in stderr(lines), lines
    lines = client.execute("print('back'); kept", context_id=pyctx["id"],
                           timeout=END_WITHIN_S)
    assert stdout(lines) == "back\n", lines
    assert main_text(lines) == "41"
    same_kernel(client, pyctx)


@pytest.mark.parametrize("code", [
    "import sys; sys.stderr = object()",
    "import sys; f = open('/dev/null', 'w'); f.close(); sys.stdout = f",
], ids=["stderr-object", "stdout-closed-file"])
def test_unflushable_replacements_are_undone(client, pyctx, code):
    lines = client.execute(code, context_id=pyctx["id"], timeout=END_WITHIN_S)
    assert content(lines)[-1] == {"type": "end_of_execution"}, lines
    assert "could not be flushed" in stderr(lines), lines
    lines = client.execute("import sys; print('out'); print('err', "
                           "file=sys.stderr); kept", context_id=pyctx["id"],
                           timeout=END_WITHIN_S)
    assert stdout(lines) == "out\n" and stderr(lines) == "err\n", lines
    assert main_text(lines) == "41"


def test_working_stream_replacements_are_left_alone(client, pyctx):
    client.execute("import io, sys; _orig = sys.stdout; buf = io.StringIO(); "
                   "sys.stdout = buf", context_id=pyctx["id"])
    lines = client.execute("print('into buf'); sys.stdout = _orig; "
                           "len(buf.getvalue())", context_id=pyctx["id"])
    assert stdout(lines) == "", lines
    assert main_text(lines) == str(len("into buf\n"))


# ------------------------------------------------------------------ bash

@pytest.fixture
def bashctx(client, new_context):
    need_kernel("bash")
    ctx = new_context({"language": "bash"})
    lines = client.execute("KEPT=41; echo $$", context_id=ctx["id"])
    assert error(lines) is None, lines
    ctx["pid"] = stdout(lines)
    return ctx


def bash_state_survives(client, ctx):
    lines = client.execute("echo $KEPT $$", context_id=ctx["id"],
                           timeout=END_WITHIN_S)
    assert error(lines) is None, lines
    assert stdout(lines) == f"41 {ctx['pid'].strip()}\n", lines


@pytest.mark.parametrize("fd", [3, 9, 10, 11, 12])
def test_bash_cells_may_use_low_fds(client, bashctx, tmp_path, fd):
    lock = tmp_path / "lock"
    lines = client.execute(f"exec {fd}>{lock}; echo locked; echo to-file >&{fd}",
                           context_id=bashctx["id"], timeout=END_WITHIN_S)
    assert error(lines) is None, lines
    assert stdout(lines) == "locked\n", lines
    bash_state_survives(client, bashctx)
    lines = client.execute(f"echo more >&{fd}; exec {fd}>&-",
                           context_id=bashctx["id"], timeout=END_WITHIN_S)
    assert error(lines) is None, lines
    assert lock.read_text() == "to-file\nmore\n"


def test_bash_survives_its_marker_fds_closed_or_replaced(client, bashctx, tmp_path):
    # Whatever user code does to every fd from 3 up, the shell's markers
    # reach the host again at the next prompt.
    sink = tmp_path / "sink"
    lines = client.execute(
        f"for fd in $(ls /proc/$$/fd); do [ $fd -gt 2 ] && eval \"exec $fd>&-\"; "
        f"done; exec 250>{sink} 251>{sink}; echo still here",
        context_id=bashctx["id"], timeout=END_WITHIN_S)
    assert error(lines) is None, lines
    assert stdout(lines) == "still here\n", lines
    bash_state_survives(client, bashctx)
    lines = client.execute("echo out; echo err >&2; false",
                           context_id=bashctx["id"], timeout=END_WITHIN_S)
    assert stdout(lines) == "out\n" and stderr(lines) == "err\n", lines
    assert error(lines)["name"] == "BashError", lines
    assert not sink.exists() or "__e2b" not in sink.read_text()
