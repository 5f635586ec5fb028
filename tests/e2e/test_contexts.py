"""The context routes and default contexts (docs/http-contract.md, "Routes",
"Choosing a context", "Restart", "Delete", "Default contexts and readiness")."""

import os
import random
import re

import pytest

from harness import (assert_json_type, assert_text_error, error, main_text,
                     processes_referencing, stdout, wait_until)

CWD_CODE = "import os; print(os.getcwd())"


def cwd_of(client, **fields):
    lines = client.execute(CWD_CODE, **fields)
    assert error(lines) is None, error(lines)
    return stdout(lines)[:-1]


def not_found(ctx_id):
    return f"Context {ctx_id} not found"


def test_create_context_defaults(client, daemon, new_context):
    ctx = new_context()
    assert set(ctx) == {"id", "language", "cwd"}, ctx
    assert ctx["id"] and ctx["language"] == "python" and ctx["cwd"] == daemon.cwd
    assert cwd_of(client, context_id=ctx["id"]) == daemon.cwd


@pytest.mark.parametrize("body", [
    {"language": None, "cwd": None},
    {"language": ""},
    {"language": "Python "},
    {"language": " PYTHON\t"},
], ids=repr)
def test_language_is_normalized(daemon, new_context, body):
    ctx = new_context(body)
    assert ctx["language"] == "python"
    assert ctx["cwd"] == daemon.cwd


@pytest.mark.parametrize("dirname", ["plain", "with space", "q'uo\"te $(x) \\",
                                     "d\u00e9j\u00e0 \u65e5\u672c"])
def test_context_cwd(client, new_context, tmp_path, dirname):
    d = tmp_path / dirname
    d.mkdir()
    ctx = new_context({"language": "Python ", "cwd": str(d)})
    assert ctx["language"] == "python"
    assert ctx["cwd"] == str(d)
    assert cwd_of(client, context_id=ctx["id"]) == str(d)
    # Child processes start there too.
    lines = client.execute("import subprocess; print(subprocess.check_output"
                           "(['pwd', '-P']).decode(), end='')",
                           context_id=ctx["id"])
    assert stdout(lines) == os.path.realpath(d) + "\n"
    listed = [c for c in client.contexts() if c["id"] == ctx["id"]]
    assert listed == [ctx]


def test_list_contexts(client, daemon, new_context, tmp_path):
    ctx = new_context({"cwd": str(tmp_path)})
    r = client.request("GET", "/contexts")
    assert r.status == 200, r
    assert_json_type(r)
    ctxs = r.json()
    assert isinstance(ctxs, list)
    for c in ctxs:
        assert set(c) == {"id", "language", "cwd"}, c
    assert ctx in ctxs
    assert any(c["language"] == "python" and c["cwd"] == daemon.cwd for c in ctxs), \
        f"no default python context in {ctxs}"
    assert len({c["id"] for c in ctxs}) == len(ctxs), f"duplicate ids: {ctxs}"


def test_list_contexts_in_creation_order(client, new_context):
    # The official SDK suite takes the last listed context as the newest.
    a = new_context()
    assert client.contexts()[-1] == a
    b = new_context()
    ids = [c["id"] for c in client.contexts()]
    assert ids[-1] == b["id"] and ids.index(a["id"]) == len(ids) - 2, ids


def test_contexts_do_not_share_state(client, new_context):
    a, b = new_context(), new_context()
    client.execute("shared_x = 1", context_id=a["id"])
    assert main_text(client.execute("shared_x", context_id=a["id"])) == "1"
    err = error(client.execute("shared_x", context_id=b["id"]))
    assert err and err["name"] == "NameError", err


def test_restart_context(client, new_context, tmp_path):
    ctx = new_context({"cwd": str(tmp_path)})
    client.execute("restart_me = 1", context_id=ctx["id"])
    r = client.restart(ctx["id"])
    assert r.status == 200, r
    assert r.json() is None
    assert [c for c in client.contexts() if c["id"] == ctx["id"]] == [ctx]
    err = error(client.execute("restart_me", context_id=ctx["id"]))
    assert err and err["name"] == "NameError", err
    assert err["value"] == "name 'restart_me' is not defined"
    assert cwd_of(client, context_id=ctx["id"]) == str(tmp_path)
    # Restart twice in a row is fine too.
    assert client.restart(ctx["id"]).status == 200
    assert main_text(client.execute("1+1", context_id=ctx["id"])) == "2"


def test_stopped_kernel_takes_its_process_group_along(client, new_context):
    """A process a cell started, even one that ignores SIGTERM, ends with
    its kernel on restart and on delete."""
    ctx = new_context()
    for stop in (client.restart, client.delete):
        n = str(random.randrange(10**8, 10**9))
        r = client.execute("import subprocess; subprocess.Popen(['sh', '-c', "
                           f"'trap \"\" TERM; exec sleep {n}'])", context_id=ctx["id"])
        assert not error(r), r
        wait_until(lambda: processes_referencing(n), f"sleep {n} runs", 10)
        assert stop(ctx["id"]).status == 200
        wait_until(lambda: not processes_referencing(n), f"sleep {n} ended")


def test_stopped_r_kernel_removes_its_tempdir(client, new_context):
    """IRkernel is asked to shut down before any signal, so R removes its
    session tempdir; a SIGTERM would leave one Rtmp* dir in /tmp per stop."""
    r = client.request("POST", "/contexts", {"language": "r"})
    if r.status != 200:
        pytest.skip(f"no R kernel: {r.status} {r.body!r}")
    ctx = r.json()
    try:
        for stop in (client.restart, client.delete):
            tmp = stdout(client.execute("cat(tempdir())", context_id=ctx["id"]))
            assert tmp and os.path.isdir(tmp), tmp
            assert stop(ctx["id"]).status == 200
            wait_until(lambda: not os.path.exists(tmp), f"{tmp} removed")
    finally:
        client.delete(ctx["id"])


def test_delete_context(client, new_context):
    ctx = new_context()
    r = client.delete(ctx["id"])
    assert r.status == 200, r
    assert r.json() is None
    assert ctx["id"] not in [c["id"] for c in client.contexts()]
    r = client.request("POST", "/execute", {"code": "1", "context_id": ctx["id"]})
    assert assert_text_error(r, 404).strip() == not_found(ctx["id"])
    assert assert_text_error(client.restart(ctx["id"]), 404).strip() == not_found(ctx["id"])
    assert assert_text_error(client.delete(ctx["id"]), 404).strip() == not_found(ctx["id"])


@pytest.mark.parametrize("ctx_id", ["no-such-context", "0123456789abcdef"])
def test_unknown_context_is_404(client, ctx_id):
    r = client.request("POST", "/execute", {"code": "1", "context_id": ctx_id})
    assert assert_text_error(r, 404).strip() == not_found(ctx_id)
    assert assert_text_error(client.restart(ctx_id), 404).strip() == not_found(ctx_id)
    assert assert_text_error(client.delete(ctx_id), 404).strip() == not_found(ctx_id)


def names(text, word):
    """text mentions word as a word (case-insensitive)."""
    return re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text, re.I) is not None


def _missing_kernel(client, language, body):
    r = client.request("POST", "/contexts", body)
    if r.status == 200:
        client.delete(r.json()["id"])
        pytest.skip(f"a {language} kernel is installed on this machine")
    return r


@pytest.mark.parametrize("language", ["javascript", "r", "java"])
def test_language_without_kernel(client, language):
    # A language the contract knows, whose kernel is not installed here
    # (skipped where it is): a plain-text error naming it, not a hang.
    r = _missing_kernel(client, language, {"language": language})
    assert_text_error(r, range(400, 600))
    assert names(r.text, language), r
    r = client.request("POST", "/execute", {"code": "1", "language": language},
                       timeout=60)
    assert_text_error(r, range(400, 600))
    assert names(r.text, language), r
    assert all(c["language"] != language for c in client.contexts())


def test_unknown_language(client):
    r = _missing_kernel(client, "cobol", {"language": "cobol"})
    assert_text_error(r, range(400, 500))
    assert names(r.text, "cobol"), r
    r = client.request("POST", "/execute", {"code": "1", "language": "COBOL"})
    assert_text_error(r, range(400, 600))
    assert names(r.text, "cobol"), r
    # Nothing was left behind for the failed language.
    assert all(c["language"] != "cobol" for c in client.contexts())


def test_default_context_lifecycle(make_daemon):
    d = make_daemon().wait_healthy()
    c = d.client()
    # /health said OK, so the default python context exists already.
    ctxs = c.contexts()
    assert len(ctxs) == 1, ctxs
    default = ctxs[0]
    assert default["language"] == "python" and default["cwd"] == d.cwd

    # Neither context_id nor language, language "python" (any spelling) and
    # the default's id all reach the same kernel.
    c.execute("dflt_marker = 41")
    assert main_text(c.execute("dflt_marker + 1", language="python")) == "42"
    assert main_text(c.execute("dflt_marker + 1", language=" Python ")) == "42"
    assert main_text(c.execute("dflt_marker + 1", context_id=default["id"])) == "42"
    assert main_text(c.execute("dflt_marker + 1", language="")) == "42"
    assert [x["id"] for x in c.contexts()] == [default["id"]]

    # Deleting the default python context: a new default is made on use.
    assert c.delete(default["id"]).status == 200
    assert default["id"] not in [x["id"] for x in c.contexts()]
    assert main_text(c.execute("1+1", language="python")) == "2"
    err = error(c.execute("dflt_marker", language="python"))
    assert err and err["name"] == "NameError"
    c.execute("new_marker = 7", language="python")
    assert main_text(c.execute("new_marker")) == "7"
    ctxs = c.contexts()
    assert len(ctxs) == 1 and ctxs[0]["language"] == "python", ctxs
    assert ctxs[0]["id"] != default["id"]
    assert ctxs[0]["cwd"] == d.cwd
    assert cwd_of(c) == d.cwd

    # Deleting it again and using no language at all also makes a new one.
    assert c.delete(ctxs[0]["id"]).status == 200
    assert main_text(c.execute("1+1")) == "2"
    assert len(c.contexts()) == 1
