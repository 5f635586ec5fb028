"""env_vars per execution and the global variables from envd
(docs/http-contract.md, "env_vars and restore" and "Global env vars from envd")."""

import json
import os
import uuid

import pytest

from harness import error, is_ready, main_text, stdout, wait_cell

PWNED = f"/tmp/e2bci-pwned-{uuid.uuid4().hex}"

NASTY = {
    "E2BCI_SQ": "it's",
    "E2BCI_DQ": 'say "hi"',
    "E2BCI_BS": "back\\slash\\n\\",
    "E2BCI_NL": "line1\nline2\n",
    "E2BCI_CR": "a\r\nb\tc",
    "E2BCI_CMD": f"$(touch {PWNED})`touch {PWNED}`; touch {PWNED}",
    "E2BCI_PY": f"'); open({PWNED!r}, 'w'); ('",
    "E2BCI_TQ": "'''\"\"\"",
    "E2BCI_UNI": "h\u00e9llo \u65e5\u672c \U0001F600",
    "E2BCI_EMPTY": "",
    "E2BCI_BRACES": "{x} %s %(y)s ${HOME}",
}

# Prints, as JSON on one line each, what os.environ and a child process see.
SHOW = """
import json, os, subprocess
_keys = {keys!r}
print(json.dumps({{k: os.environ.get(k) for k in _keys}}))
print(json.dumps({{k: subprocess.check_output(
    ['sh', '-c', 'if [ "${{%s+set}}" = set ]; then printf %%s "$%s"; else printf UNSET; fi' % (k, k)]
).decode('utf-8') for k in _keys}}))
"""


def show(client, keys, **fields):
    lines = client.execute(SHOW.format(keys=sorted(keys)), **fields)
    assert error(lines) is None, error(lines)
    in_python, in_child = stdout(lines).splitlines()
    return json.loads(in_python), json.loads(in_child)


def test_env_vars_reach_code_verbatim_and_are_restored(client, new_context):
    ctx = new_context()
    py, child = show(client, NASTY, context_id=ctx["id"], env_vars=NASTY)
    assert py == NASTY
    assert child == NASTY
    assert not os.path.exists(PWNED), "an env_vars value was executed"
    # Restored: the next execution sees none of them.
    py, child = show(client, NASTY, context_id=ctx["id"])
    assert py == {k: None for k in NASTY}
    assert child == {k: "UNSET" for k in NASTY}


def test_env_vars_on_default_context(client):
    assert main_text(client.execute("import os; os.getenv('FOO')",
                                    env_vars={"FOO": "bar"})) == "bar"
    assert main_text(client.execute("import os; os.getenv('FOO', 'default')")) == "default"


def test_env_vars_restored_after_an_error(client, new_context):
    ctx = new_context()
    lines = client.execute("import os; assert os.environ['E2BCI_E'] == 'v'; 1/0",
                           context_id=ctx["id"], env_vars={"E2BCI_E": "v"})
    assert error(lines)["name"] == "ZeroDivisionError"
    assert main_text(client.execute("import os; 'E2BCI_E' in os.environ",
                                    context_id=ctx["id"])) == "False"


def test_env_vars_do_not_leak_to_other_contexts(client, new_context, tmp_path):
    a, b = new_context(), new_context()
    go = tmp_path / "go"
    code = wait_cell(go, after="print(_os.environ['E2BCI_L'])")
    with client.stream(code, context_id=a["id"], env_vars={"E2BCI_L": "mine"}) as s:
        s.read_until(is_ready, timeout=30)
        # While `a` runs with E2BCI_L set, `b` does not see it.
        assert main_text(client.execute("import os; os.getenv('E2BCI_L', 'none')",
                                        context_id=b["id"])) == "none"
        go.touch()
        assert stdout(s.read_all()) == "ready\nmine\n"


def test_global_env_from_envd(client, envd, new_context):
    envd.envs = {"E2BCI_G": "global-v", "E2BCI_G2": "g2 'q' \"dq\" \\ \n"
                 " \u00e9"}
    ctx = new_context()
    hdr = {"X-Access-Token": "tok-123"}
    py, child = show(client, envd.envs, context_id=ctx["id"], headers=hdr)
    assert py == envd.envs
    assert child == envd.envs
    assert "tok-123" in envd.tokens, envd.tokens

    # A per-execution value wins, then the global value comes back.
    lines = client.execute("import os; os.environ['E2BCI_G']", context_id=ctx["id"],
                           env_vars={"E2BCI_G": "override"}, headers=hdr)
    assert main_text(lines) == "override"
    lines = client.execute("import os; os.environ['E2BCI_G']", context_id=ctx["id"])
    assert main_text(lines) == "global-v"


def test_global_env_on_first_execution_of_a_new_context(client, envd, new_context):
    envd.envs = {"E2BCI_FIRST": "1st"}
    ctx = new_context()
    lines = client.execute("import os; os.getenv('E2BCI_FIRST')",
                           context_id=ctx["id"], headers={"X-Access-Token": "t-first"})
    assert main_text(lines) == "1st"
    assert envd.tokens and envd.tokens[-1] == "t-first", envd.tokens


def test_global_env_fetched_again_after_restart(client, envd, new_context):
    envd.envs = {"E2BCI_R": "before"}
    ctx = new_context()
    assert main_text(client.execute("import os; os.getenv('E2BCI_R')",
                                    context_id=ctx["id"])) == "before"
    envd.envs = {"E2BCI_R": "after"}
    assert client.restart(ctx["id"]).status == 200
    assert main_text(client.execute("import os; os.getenv('E2BCI_R')",
                                    context_id=ctx["id"],
                                    headers={"X-Access-Token": "t-restart"})) == "after"
    assert envd.tokens[-1] == "t-restart", envd.tokens


def test_no_access_token_header_is_fine(client, envd, new_context):
    envd.envs = {"E2BCI_NT": "x"}
    ctx = new_context()
    assert main_text(client.execute("import os; os.getenv('E2BCI_NT')",
                                    context_id=ctx["id"])) == "x"
    assert envd.tokens and envd.tokens[-1] is None, envd.tokens


@pytest.mark.parametrize("mode", ["500", "garbage", "array", "nonstring"])
def test_broken_envd_degrades_quietly(client, envd, new_context, mode):
    envd.mode = mode
    ctx = new_context()
    lines = client.execute("import os; os.getenv('E2BCI_NUM', 'none')",
                           context_id=ctx["id"], headers={"X-Access-Token": "t"})
    text = main_text(lines)
    if mode == "nonstring":
        # The bad value is dropped, or the whole answer is ignored.
        assert text in ("none", "5")
    else:
        assert text == "none"
    assert envd.tokens, "the daemon never asked envd"


def test_hanging_envd_does_not_hang_the_execution(client, envd, new_context):
    envd.mode = "hang"  # released by the fixture after the test
    ctx = new_context()
    lines = client.execute("1+1", context_id=ctx["id"], timeout=30)
    assert main_text(lines) == "2"


def test_absent_envd_degrades_quietly(aux_daemon):
    c = aux_daemon.client()
    ctx = c.create_context()
    try:
        lines = c.execute("1+1", context_id=ctx["id"],
                          headers={"X-Access-Token": "tok"})
        assert main_text(lines) == "2"
        assert main_text(c.execute("import os; os.getenv('K')",
                                   context_id=ctx["id"], env_vars={"K": "v"})) == "v"
        assert main_text(c.execute("import os; os.getenv('K', 'gone')",
                                   context_id=ctx["id"])) == "gone"
        assert main_text(c.execute("2+2", headers={"X-Access-Token": "tok"})) == "4"
    finally:
        c.delete(ctx["id"])
