"""Start-up ends once every default context answered or FAILED, whichever
settles last.

ctx reports a context turning READY or FAILED to main (a hook), and main
decides whether start-up is over: READY=1, the log's "ready" line, and the
warm pool starts filling. When the last default context to settle is one
whose kernel cannot start, its FAILED must end start-up too (before, only
a context turning READY was reported, so a daemon whose JavaScript kernel
failed after Python answered never became ready: no READY=1, no spares).
"""

import re

import harness

# Fails (exit 3) only once the test has seen Python answer: so JavaScript
# is the last default context to settle, whatever the machine's load.
LATE_BROKEN = """\
while [ ! -e "{go}" ]; do sleep 0.05; done
echo "late-broken: failing on purpose" >&2
exit 3
"""


def warm_spares(c):
    body = c.request("GET", "/metrics").text
    m = re.search(r'^e2bci_kernels\{state="warm"\} (\d+)$', body, re.M)
    return int(m[1]) if m else 0


def test_start_up_ends_when_the_last_default_fails(make_daemon, tmp_path):
    go = tmp_path / "go"
    kdir = tmp_path / "kernels"
    harness.write_kernelspec(kdir, "javascript",
                             script=LATE_BROKEN.format(go=go))
    d = make_daemon(args=["--default-languages", "python,javascript",
                          "--kernel-path", f"{kdir}:{harness.PROJECT_KERNELS}",
                          "--kernel-retry-ms", "0", "--pool", "python=1"])
    c = d.client()
    harness.wait_until(lambda: "listening on" in d.log_text(),
                       "the daemon listens", timeout=60)
    # Waits for the Python default context (its first /execute is held
    # until the kernel is ready).
    assert harness.main_text(c.execute("1+1")) == "2"
    assert "ready:" not in d.log_text()
    assert warm_spares(c) == 0  # spares start only once start-up is over
    go.touch()
    harness.wait_until(
        lambda: "started with 1 of 2 default context(s) failed"
        in d.log_text(), "start-up ended with the FAILED javascript context",
        timeout=60)
    assert "ready: 1 default context(s) answer" in d.log_text()
    harness.wait_until(lambda: warm_spares(c) == 1,
                       "the warm pool filled after start-up", timeout=60)
