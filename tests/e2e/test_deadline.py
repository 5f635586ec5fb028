"""X-E2B-CI-Deadline-Ms counts from the request's arrival (issue 12, defect
of exec.h:83), also when the request waited for its context's first kernel
to start: that wait is part of the deadline, so a deadline that passed
meanwhile ends the stream with TimeoutError and the code never runs.

The slow start is a kernelspec of our own that sleeps before starting
ipykernel: `sleep` lasts at least as long as asked, so the deadline has
passed for sure, however busy the machine is.
"""

from harness import error, main_text, stdout, write_kernelspec

SLOW_START_S = 3
DEADLINE_MS = 1000


def slow_kernelspec(root):
    write_kernelspec(root / "kernels", "slowpy", argv=[
        "/bin/sh", "-c", f"sleep {SLOW_START_S}; exec /usr/bin/python3 -m "
        "ipykernel_launcher -f \"$0\"", "{connection_file}"],
        display_name="slow python", language="python",
        interrupt_mode="signal")
    return root / "kernels"


def test_deadline_counts_the_wait_for_a_starting_kernel(make_daemon, tmp_path):
    daemon = make_daemon(args=["--kernel-path", str(slow_kernelspec(tmp_path)),
                               "--pool", "python=0"])
    daemon.wait_healthy()
    c = daemon.client()
    # The first execution of "slowpy" makes its default context: the answer
    # waits for the kernel, which takes longer than the whole deadline.
    lines = c.execute("print('ran')", language="slowpy", timeout=60,
                      headers={"X-E2B-CI-Deadline-Ms": str(DEADLINE_MS)})
    err = error(lines)
    assert err and err["name"] == "TimeoutError", lines
    assert f"{DEADLINE_MS} ms" in err["value"], err
    assert stdout(lines) == "", "the code ran after its deadline had passed"
    assert lines[-1]["type"] == "end_of_execution"
    # The context is fine and the next execution runs.
    assert main_text(c.execute("1 + 1", language="slowpy", timeout=60)) == "2"
