"""e2b-kernel's queue for the runner's stdin is bounded (kh_proc_write,
KH_PROC_STDIN_MAX): a runner that stops reading while something ends its
requests for it makes the next requests fail with a RunnerError, instead
of the host queueing without end. Uses test_host_json's scripted runner.

Needs build/e2b-kernel (`make all`) or E2B_KERNEL_BIN.
"""

import time

from test_host_json import DEADLINE, built, fake, spec  # noqa: F401

# Enough requests of this size that what waits unread passes 1 MiB.
CELLS = 12
CELL_BYTES = 200_000


def test_runner_that_stops_reading_gets_no_endless_queue(spec):  # noqa: F811
    gate = spec / "gate"
    k = fake(spec)
    try:
        # The first cell waits for the gate, then ends itself and fakes the
        # ends of the next CELLS requests (their ids follow its own), and
        # never comes back to read its stdin.
        first = k.kc.execute(
            "import os, time\n"
            f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
            f"for i in range({CELLS + 1}):\n"
            "    emit(type='done', id=cur + i, status='ok')\n"
            "time.sleep(600)\n")
        k.wait_iopub(lambda m: m["msg_type"] == "status" and
                     m["parent_header"].get("msg_id") == first and
                     m["content"]["execution_state"] == "busy")
        cells = [k.kc.execute("#" + "x" * CELL_BYTES) for _ in range(CELLS)]
        # A request of another kind is answered at once and in order: the
        # host has queued every cell when its reply is here.
        k.reply(k.kc.kernel_info())
        gate.write_text("")
        assert k.reply(first)["content"]["status"] == "ok"
        replies = [k.reply(c)["content"] for c in cells]
        ok = [r for r in replies if r["status"] == "ok"]
        refused = [r for r in replies if r["status"] == "error"]
        # The first ones were queued (the runner "answered" them), the rest
        # refused: about 1 MiB of them, whatever the pipe took first.
        assert ok and refused, replies
        assert len(ok) * CELL_BYTES < 1.5 * 2**20, len(ok)
        assert replies.index(refused[0]) == len(ok), "refused then queued"
        for r in refused:
            assert r["ename"] == "RunnerError", r
            assert "not reading its input" in r["evalue"], r
        # The host itself is fine and still stops.
        assert k.reply(k.kc.kernel_info())["content"]["status"] == "ok"
        t0 = time.monotonic()
        k.kc.shutdown()
        assert k.proc.wait(DEADLINE) is not None
        assert time.monotonic() - t0 < DEADLINE
    finally:
        k.close()
