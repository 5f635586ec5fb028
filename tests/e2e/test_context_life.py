"""A context's life where it used to go wrong.

- A context whose cwd was deleted could never get a kernel again: every
  restart answered 500 (chdir in the child) and every execution got
  ContextUnavailable until it was deleted. Its kernel now starts in the
  default cwd, which becomes the context's cwd, and the log says so.
- POST /contexts whose client went away before the answer still created
  the context, which nobody knows the id of and which counted toward
  --max-contexts for good. It is deleted now.
"""

import pytest

import harness
from harness import PROJECT_KERNELS

CWD_CODE = {
    "python": "import os; print(os.getcwd())",
    "javascript": "console.log(process.cwd())",
    "bash": "pwd",
}


@pytest.mark.parametrize("language", ["python", "javascript", "bash"])
def test_deleted_cwd_falls_back_to_the_default_cwd(make_daemon, tmp_path,
                                                    language):
    # No warm spare: a spare adopted by the restart would only get a chdir
    # helper cell, and the bug was in starting a kernel.
    d = make_daemon(args=["--pool", ""]).wait_healthy()
    c = d.client()
    work = tmp_path / "work"
    work.mkdir()
    ctx = c.create_context({"language": language, "cwd": str(work)})
    code = CWD_CODE[language]
    lines = c.execute(code, context_id=ctx["id"])
    assert harness.stdout(lines) == f"{work}\n", lines

    work.rmdir()
    r = c.restart(ctx["id"])
    assert r.status == 200, r
    lines = c.execute(code, context_id=ctx["id"])
    assert harness.error(lines) is None, lines
    assert harness.stdout(lines) == f"{d.cwd}\n", lines
    listed = {x["id"]: x for x in c.contexts()}
    assert listed[ctx["id"]]["cwd"] == d.cwd, listed
    assert f"its cwd {work} is gone" in d.log_text()


SLOW = """\
while [ ! -e "{go}" ]; do sleep 0.05; done
exec /usr/bin/python3 -m ipykernel_launcher -f "$1"
"""


def test_create_abandoned_by_its_client_is_dropped(make_daemon, tmp_path):
    go = tmp_path / "go"  # never created: the kernel stays starting
    kdir = harness.write_kernelspec(tmp_path / "kernels", "slowlang",
                                    script=SLOW.format(go=go))
    d = make_daemon(args=["--kernel-path", f"{kdir.parent}:{PROJECT_KERNELS}",
                          "--max-contexts", "2"]).wait_healthy()
    c = d.client()

    with harness.raw_post(d, "/contexts", {"language": "slowlang"},
                          timeout=10, close=False):
        harness.wait_until(lambda: "(slowlang) created" in d.log_text(),
                           "the daemon made the context", timeout=20)
        assert [x["language"] for x in c.contexts()] == ["python",
                                                         "slowlang"]
    # The client is gone without an answer.
    harness.wait_until(
        lambda: [x["language"] for x in c.contexts()] == ["python"],
        "the abandoned context is dropped", timeout=15)
    harness.wait_until(lambda: not harness.processes_referencing(kdir),
                       "its kernel launcher is stopped", timeout=15)
    # It no longer counts toward --max-contexts 2.
    ctx = c.create_context({"language": "python"})
    assert harness.main_text(c.execute("1+1", context_id=ctx["id"])) == "2"


def test_create_that_is_answered_stays(make_daemon):
    d = make_daemon(args=["--pool", ""]).wait_healthy()
    c = d.client()
    ctx = c.create_context({"language": "python"})
    assert ctx["id"] in [x["id"] for x in c.contexts()]
