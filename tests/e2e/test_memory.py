"""What kernel output can make the daemon hold (issue 11 §1).

The daemon's peak RSS (VmHWM in /proc/<pid>/status, reset once the daemon
is up) must stay within its output budget (--max-backlog-total) plus 32 MiB
whatever a kernel prints and however the client reads:

- a client that reads as it arrives gets every byte of a 100 MB print,
  which our kernels send in small messages;
- a client that reads nothing until the cell is over gets the first
  --max-backlog bytes, one truncation notice and end_of_execution;
- two such clients share --max-backlog-total;
- a kernel that is not ours (a plain ipykernel kernelspec, which sends a
  print as one message) cannot make the daemon take a message part over
  --max-kernel-message: the stream says output was cut, the cell ends, the
  context lives on. A reply over the limit ends the cell with an error.

Sizes are bounds, not timings; waits are for events (a cell's end seen in
/metrics), with deadlines. Under AddressSanitizer or valgrind (make asan,
make valgrind) the RSS bounds are not checked: their shadow memory and
quarantine are not the daemon's.
"""

import pytest

from harness import (IPYKERNEL_ARGV, executions_over, main_text,
                     raw_execute, read_execute, stderr, wait_until,
                     write_kernelspec)

MiB = 1024 * 1024
SLACK = 32 * MiB  # what the daemon may hold beyond its output budget


def reset_peak(d):
    with open(f"/proc/{d.proc.pid}/clear_refs", "w") as f:
        f.write("5")


def instrumented(d):
    """Whether the daemon runs under AddressSanitizer or valgrind, whose
    shadow memory and quarantine make its RSS say nothing about its own."""
    with open(f"/proc/{d.proc.pid}/maps") as f:
        maps = f.read()
    return "libasan" in maps or "vgpreload" in maps


def assert_peak_within(d, budget):
    """VmHWM since reset_peak() is at most budget + 32 MiB."""
    if instrumented(d):
        return
    with open(f"/proc/{d.proc.pid}/status") as f:
        hwm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:")]
    assert hwm and hwm[0] <= budget + SLACK, \
        f"peak RSS {hwm[0] / MiB:.0f} MiB > {(budget + SLACK) / MiB:.0f} MiB"


def stdout_len(lines):
    return sum(len(l["text"]) for l in lines if l["type"] == "stdout")


def started(make_daemon, *args):
    d = make_daemon(args=list(args)).wait_healthy()
    reset_peak(d)
    return d


def test_fast_reader_gets_every_byte_and_peak_is_bounded(make_daemon):
    d = started(make_daemon, "--max-backlog", "96M",
                "--max-backlog-total", "96M")
    lines = read_execute(raw_execute(d, 'print("y" * 100_000_000)'))
    assert stdout_len(lines) == 100_000_001
    assert "".join(l["text"] for l in lines if l["type"] == "stdout") \
        == "y" * 100_000_000 + "\n"
    # Our Python kernel sends it in pieces of at most 512 KiB.
    assert max(len(l["text"]) for l in lines if l["type"] == "stdout") \
        <= 512 * 1024
    assert not [l for l in lines if l["type"] in ("stderr", "error")]
    assert_peak_within(d, 96 * MiB)


def test_kernel_host_output_comes_in_small_messages(make_daemon):
    """Our kernel host (bash, JavaScript, ...) publishes each read of the
    runner's pipe (at most 64 KiB) as one message."""
    d = started(make_daemon)
    lines = read_execute(raw_execute(d, "head -c 30000000 /dev/zero | tr '\\0' y; echo",
                            language="bash"))
    out = [l["text"] for l in lines if l["type"] == "stdout"]
    assert sum(map(len, out)) == 30_000_001
    assert max(map(len, out)) <= 64 * 1024 + 3
    assert_peak_within(d, 96 * MiB)


def test_late_reader_gets_the_start_and_a_notice(make_daemon):
    d = started(make_daemon, "--max-backlog", "8M",
                "--max-backlog-total", "16M")
    c = d.client()
    s = raw_execute(d, 'print("y" * 100_000_000)\n"done"', rcvbuf=4096)
    wait_until(lambda: executions_over(c, 1), "the cell ended (metrics)", 120)
    lines = read_execute(s)
    got = stdout_len(lines)
    assert 0 < got <= 8 * MiB + 8 * MiB  # the backlog + socket buffers
    assert stderr(lines).count("output truncated: the client reads "
                               "slower") == 1
    assert main_text(lines) == "done"
    assert_peak_within(d, 16 * MiB)
    # The context is fine, and its next output is whole.
    lines = read_execute(raw_execute(d, 'print("z" * 3_000_000)'))
    assert stdout_len(lines) == 3_000_001


def test_total_budget_is_shared_by_two_executions(make_daemon):
    d = started(make_daemon, "--max-backlog", "24M",
                "--max-backlog-total", "8M")
    c = d.client()
    other = c.create_context()["id"]
    code = 'import sys\nfor _ in range(40): sys.stdout.write("y" * 1_000_000)'
    a = raw_execute(d, code, rcvbuf=4096)
    b = raw_execute(d, code, rcvbuf=4096, context_id=other)
    wait_until(lambda: executions_over(c, 2), "both cells ended (metrics)", 120)
    la, lb = read_execute(a), read_execute(b)
    notes = stderr(la) + stderr(lb)
    assert "unread output of all executions reached the daemon's limit" \
        in notes
    # 8 MiB of backlog between them, plus what sat in two sockets' buffers;
    # each alone would have kept 24 MiB.
    assert stdout_len(la) + stdout_len(lb) <= 8 * MiB + 12 * MiB
    assert_peak_within(d, 8 * MiB)


@pytest.fixture
def plain_python(tmp_path):
    """A kernelspec dir with Debian's ipykernel as it ships: no e2b-ci
    config, so a print is one message, however large."""
    spec = write_kernelspec(tmp_path / "specs", "python3", argv=IPYKERNEL_ARGV,
                            display_name="plain ipykernel", language="python",
                            interrupt_mode="signal")
    return str(spec.parent)


def test_oversized_message_is_cut_with_a_notice(make_daemon, plain_python):
    d = started(make_daemon, "--kernel-path", plain_python,
                "--max-kernel-message", "1M")
    lines = read_execute(raw_execute(
        d, 'import sys\nprint("before", flush=True)\n'
           'print("y" * 40_000_000)\n'
           'import time; time.sleep(0.5)\nprint("after")\n"done"'))
    out = "".join(l["text"] for l in lines if l["type"] == "stdout")
    assert out.startswith("before\n") and "y" * 1000 not in out
    assert "output cut" in stderr(lines)
    assert "--max-kernel-message, 1048576 bytes" in stderr(lines)
    assert not [l for l in lines if l["type"] == "error"]
    # Display data the same way; then the context carries on.
    lines = read_execute(raw_execute(
        d, 'display({"text/plain": "x" * 3_000_000}, raw=True)'))
    assert "output cut" in stderr(lines)
    assert main_text(read_execute(raw_execute(d, "1 + 1"))) == "2"
    assert_peak_within(d, 96 * MiB)


def test_oversized_reply_ends_the_cell_with_an_error(make_daemon,
                                                     plain_python):
    d = started(make_daemon, "--kernel-path", plain_python,
                "--max-kernel-message", "1M")
    lines = read_execute(raw_execute(
        d, "get_ipython().payload_manager.write_payload("
           "{'source': 'page', 'data': {'text/plain': 'x' * 3_000_000}})"))
    errs = [l for l in lines if l["type"] == "error"]
    assert len(errs) == 1 and errs[0]["name"] == "KernelMessageTooLarge"
    assert main_text(read_execute(raw_execute(d, "2 + 2"))) == "4"
