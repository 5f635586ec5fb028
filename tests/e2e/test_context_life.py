"""A context's life where it used to go wrong.

- A context whose cwd was deleted could never get a kernel again: every
  restart answered 500 (chdir in the child) and every execution got
  ContextUnavailable until it was deleted. Its kernel now starts in the
  default cwd, which becomes the context's cwd, and the log says so.
"""

from pathlib import Path

import pytest

import harness

KERNELS = Path(__file__).resolve().parents[2] / "kernels"

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
