"""/health, the default contexts and what the daemon says when one of them
cannot start.

- A default language without a kernelspec is skipped with a warning, and
  the list of default languages stays intact around it (main.c dropped it
  with a memmove one element too long, which ASan reports as a heap
  overflow for a one-letter language).
- A default context whose kernel cannot start ends FAILED: /health says
  503 with the language, the kernelspec, the exit status and the kernel's
  last stderr lines, the log has one error line saying the same, the other
  languages serve, and (unless --kernel-retry-ms is 0) it tries again
  later, so a failure that goes away heals.
"""

import harness


def test_default_language_without_kernel_is_skipped(make_daemon):
    # "q" has no kernelspec anywhere. A one-letter name makes the list
    # exactly two pointers long ("q" and NULL), so moving one element too
    # many reads past it (ASan: heap-buffer-overflow).
    d = make_daemon(args=["--default-languages", "q"]).wait_healthy()
    assert "no kernel installed for default language q" in d.log_text()
    assert d.client().contexts() == []


def test_default_languages_around_a_missing_one_are_kept(make_daemon):
    d = make_daemon(args=["--default-languages", "q,python,z"]).wait_healthy()
    ctxs = d.client().contexts()
    assert [c["language"] for c in ctxs] == ["python"], ctxs
    log = d.log_text()
    assert "default language q;" in log and "default language z;" in log


# ------------------------------------------- a default kernel that fails

BROKEN = """\
echo "broken: starting" >&2
echo "broken.sh: e2b-kernel not found (test)" >&2
exit 3
"""


def health(d):
    """(status, body), or (None, error) while the daemon is not listening
    yet."""
    try:
        r = d.client().request("GET", "/health", timeout=5)
    except OSError as e:
        return None, repr(e)
    return r.status, r.text


def wait_failed(d, what="javascript"):
    """Waits for /health to name a failed default context; returns the
    body."""
    seen = {}

    def failed():
        seen["h"] = health(d)
        return seen["h"][0] == 503 and what in seen["h"][1] \
            and not seen["h"][1].startswith("Starting")
    harness.wait_until(failed, f"/health names the failed {what} kernel",
                       timeout=30)
    return seen["h"][1]


def test_failed_default_kernel_is_named_and_python_serves(make_daemon,
                                                          tmp_path):
    kdir = tmp_path / "kernels"
    harness.write_kernelspec(kdir, "javascript", script=BROKEN)
    d = make_daemon(args=["--default-languages", "python,javascript",
                          "--kernel-path", f"{kdir}:{harness.PROJECT_KERNELS}",
                          "--kernel-retry-ms", "0"])
    body = wait_failed(d)
    assert "Kernel for javascript" in body, body
    assert f"kernelspec javascript in {kdir / 'javascript'}" in body, body
    assert "exited with status 3" in body, body
    assert "3 times in a row" in body, body
    assert ("its stderr ended with: broken: starting | "
            "broken.sh: e2b-kernel not found (test)") in body, body
    assert "no retry" in body, body
    reason = body.split(" (context ")[0]
    errors = [l for l in d.log_text().splitlines() if " ERROR " in l]
    assert sum(reason in l for l in errors) == 1, errors

    # Python serves meanwhile.
    c = d.client()
    assert harness.main_text(c.execute("1+1")) == "2"
    # JavaScript says why it cannot (its context never had a kernel, so
    # the answer is a 500 rather than a stream).
    r = c.request("POST", "/execute", {"language": "javascript",
                                       "code": "40+2"})
    assert r.status == 500 and reason in r.text, r
    errors = [l for l in d.log_text().splitlines() if " ERROR " in l]
    assert len(errors) == 1, errors
    # Still failed: nothing retries with --kernel-retry-ms 0.
    assert health(d)[0] == 503


FLAKY = """\
if [ -e "{go}" ]; then
    exec /usr/bin/python3 -m ipykernel_launcher -f "$1"
fi
echo "flaky: {go} is not there yet" >&2
exit 4
"""


def test_failed_default_kernel_is_retried_until_it_starts(make_daemon,
                                                          tmp_path):
    go = tmp_path / "go"
    kdir = tmp_path / "kernels"
    harness.write_kernelspec(kdir, "javascript",
                             script=FLAKY.format(go=go))
    d = make_daemon(args=["--default-languages", "python,javascript",
                          "--kernel-path", f"{kdir}:{harness.PROJECT_KERNELS}",
                          "--kernel-retry-ms", "300"])
    body = wait_failed(d)
    assert "exited with status 4" in body and "is not there yet" in body
    assert "next try in" in body, body
    # A second round fails too (a warning, not another error line).
    harness.wait_until(lambda: "try 2 failed too" in d.log_text(),
                       "a second round of tries", timeout=30)
    go.touch()
    harness.wait_until(lambda: health(d) == (200, '"OK"'),
                       "/health 200 once the kernel can start", timeout=60)
    # The "javascript" kernel here is ipykernel, so Python syntax.
    lines = d.client().execute("40+2", language="javascript")
    assert harness.main_text(lines) == "42", lines
    log = d.log_text()
    assert "its javascript kernel started after all" in log
    errors = [l for l in log.splitlines()
              if " ERROR " in l and "is not there yet" in l]
    assert len(errors) == 1, errors
