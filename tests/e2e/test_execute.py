"""POST /execute against the real ipykernel: the NDJSON line sequence, MIME
mapping, errors, state, keepalives and ordering (docs/http-contract.md, "The
NDJSON stream" and "Semantics").

Cells that must stay busy while the test looks at the stream wait for a file
the test creates (wait_cell), so nothing here depends on timing."""

import json

import pytest

from harness import (content, error, is_ready, main_text, of_type, stderr, stdout,
                     wait_cell)

END = {"type": "end_of_execution"}
KEEPALIVE = {"type": "keepalive"}


def test_one_plus_one(client):
    lines = content(client.execute("1+1"))
    assert len(lines) == 3, lines
    first, result, end = lines
    assert first["type"] == "number_of_executions"
    assert isinstance(first["execution_count"], int) and first["execution_count"] > 0
    assert first == {"type": "number_of_executions",
                     "execution_count": first["execution_count"]}
    assert result == {"type": "result", "text": "2", "is_main_result": True,
                      "extra": {}}
    assert end == END


def test_stdout_and_stderr(client):
    lines = client.execute("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert stdout(lines) == "out\n"
    assert stderr(lines) == "err\n"
    assert not of_type(lines, "result"), lines
    assert error(lines) is None
    # harness.check_line already checked each timestamp is ISO-8601.
    for l in of_type(lines, "stdout") + of_type(lines, "stderr"):
        assert l["timestamp"]


def test_output_is_streamed_while_the_cell_runs(client, tmp_path):
    go = tmp_path / "go"
    with client.stream(wait_cell(go, after="print('done')")) as s:
        assert s.status == 200
        # If the daemon buffered output until the cell ended, 'ready' would
        # never arrive: the cell waits for us.
        s.read_until(is_ready, timeout=30)
        assert not of_type(s.lines, "end_of_execution")
        go.touch()
        lines = s.read_all()
    assert stdout(lines) == "ready\ndone\n"


@pytest.mark.parametrize("code,text", [
    ("'abc'", "abc"),
    ('"it\'s"', "it's"),
    ("'\"'", '"'),
    ("\"'abc\"", "'abc"),
    ("[1, 'a']", "[1, 'a']"),
    ("'a' + \"b\" + 'c'", "abc"),
    ("None", None),
])
def test_text_quote_stripping(client, code, text):
    lines = client.execute(code)
    if text is None:  # None has no display: no result line at all
        assert not of_type(lines, "result"), lines
        assert error(lines) is None
    else:
        assert main_text(lines) == text


def test_non_ascii_output_is_escaped_and_decodes(client):
    # harness.parse_line rejects any non-ASCII byte on the wire.
    lines = client.execute("print('h\u00e9llo \u65e5\u672c \U0001F600')")
    assert stdout(lines) == "h\u00e9llo \u65e5\u672c \U0001F600\n"
    lines = client.execute("'\u65e5\u672c\U0001F600'")
    assert main_text(lines) == "\u65e5\u672c\U0001F600"


def test_non_ascii_code_and_error_value(client):
    assert main_text(client.execute("s = '\u00f1\u65e5\U0001F600'\nlen(s)")) == "3"
    err = error(client.execute("raise ValueError('\u00f1\u65e5\U0001F600')"))
    assert err["name"] == "ValueError"
    assert err["value"] == "\u00f1\u65e5\U0001F600"


def test_control_characters_round_trip(client):
    lines = client.execute(r"print('a\"b\\c\td\x01e\x1b[0m')")
    assert stdout(lines) == 'a"b\\c\td\x01e\x1b[0m\n'


def test_large_output_arrives_complete(client):
    lines = client.execute("print('x' * 1_000_000)")
    assert stdout(lines) == "x" * 1_000_000 + "\n"
    lines = client.execute("for i in range(20000): print(i)")
    assert stdout(lines) == "".join(f"{i}\n" for i in range(20000))
    lines = client.execute("print('\u65e5\U0001F600' * 50000)")
    assert stdout(lines) == "\u65e5\U0001F600" * 50000 + "\n"


def test_display_html(client):
    lines = client.execute("from IPython.display import display, HTML\n"
                           "display(HTML('<b>hi</b>'))")
    results = of_type(lines, "result")
    assert results == [{"type": "result", "text": "<IPython.core.display.HTML object>",
                        "html": "<b>hi</b>", "is_main_result": False, "extra": {}}]


def test_main_result_with_several_formats(client):
    code = ("class H:\n"
            "    def _repr_html_(self): return '<i>h</i>'\n"
            "    def __repr__(self): return 'H()'\n"
            "H()")
    results = of_type(client.execute(code), "result")
    assert results == [{"type": "result", "text": "H()", "html": "<i>h</i>",
                        "is_main_result": True, "extra": {}}]


def test_unknown_mime_goes_to_extra(client):
    code = ("from IPython.display import display\n"
            "display({'application/x-custom': 'v', 'text/plain': 'x',"
            " 'application/vnd.thing+json': {'a': [1, 2]}}, raw=True)")
    results = of_type(client.execute(code), "result")
    assert results == [{"type": "result", "text": "x", "is_main_result": False,
                        "extra": {"application/x-custom": "v",
                                  "application/vnd.thing+json": {"a": [1, 2]}}}]


def test_every_mime_field(client):
    bundle = {
        "text/plain": "t", "text/html": "h", "text/markdown": "m",
        "image/svg+xml": "<svg/>", "image/png": "cG5n", "image/jpeg": "anBn",
        "application/pdf": "cGRm", "text/latex": "$x$",
        "application/json": {"k": [1, "v"]}, "application/javascript": "j()",
        "e2b/data": {"d": 1}, "e2b/chart": {"type": "line", "elements": []},
    }
    code = ("from IPython.display import display\n"
            f"display({json.dumps(bundle)}, raw=True)")
    results = of_type(client.execute(code), "result")
    assert results == [{
        "type": "result", "is_main_result": False, "extra": {},
        "text": "t", "html": "h", "markdown": "m", "svg": "<svg/>",
        "png": "cG5n", "jpeg": "anBn", "pdf": "cGRm", "latex": "$x$",
        "json": {"k": [1, "v"]}, "javascript": "j()", "data": {"d": 1},
        "chart": {"type": "line", "elements": []},
    }]


def test_display_without_text_plain_omits_text(client):
    code = ("from IPython.display import display\n"
            "display({'text/html': '<p>only</p>'}, raw=True)")
    results = of_type(client.execute(code), "result")
    assert results == [{"type": "result", "html": "<p>only</p>",
                        "is_main_result": False, "extra": {}}]


@pytest.mark.parametrize("code,name,value", [
    ("1/0", "ZeroDivisionError", "division by zero"),
    ("undefined_name_xyz", "NameError", "name 'undefined_name_xyz' is not defined"),
    ("def f(:\n  pass", "SyntaxError", None),
    ("raise KeyError('k')", "KeyError", "'k'"),
])
def test_error_line(client, code, name, value):
    lines = content(client.execute(code))
    types = [l["type"] for l in lines]
    assert types == ["number_of_executions", "error", "end_of_execution"], lines
    err = error(lines)
    assert err["name"] == name
    if value is not None:
        assert err["value"] == value
    assert isinstance(err["traceback"], str) and name in err["traceback"]


def test_output_before_error_is_kept(client):
    lines = client.execute("print('before')\n1/0\nprint('after')")
    assert stdout(lines) == "before\n"
    assert error(lines)["name"] == "ZeroDivisionError"
    assert lines[-1] == END
    assert [l["type"] for l in content(lines)].index("error") == len(content(lines)) - 2


def test_error_does_not_break_the_context(client):
    assert error(client.execute("1/0"))["name"] == "ZeroDivisionError"
    assert main_text(client.execute("1+1")) == "2"


@pytest.mark.parametrize("code", ["", "   \n\n", "# just a comment"])
def test_code_without_statements(client, code):
    lines = content(client.execute(code))
    assert lines[-1] == END
    assert {l["type"] for l in lines} <= {"number_of_executions", "end_of_execution"}, lines


def test_execution_count_increases(client, new_context):
    ctx = new_context()
    counts = []
    for code, env in (("1", None), ("2", {"E2BCI_N": "1"}), ("3", None)):
        fields = {"context_id": ctx["id"]}
        if env:
            fields["env_vars"] = env  # env helper cells must not count
        lines = client.execute(code, **fields)
        assert main_text(lines) == code
        counts.append(of_type(lines, "number_of_executions")[0]["execution_count"])
    assert counts == [counts[0], counts[0] + 1, counts[0] + 2], counts


def test_state_persists(client, new_context):
    ctx = new_context()
    assert not of_type(client.execute("x = 5", context_id=ctx["id"]), "result")
    assert main_text(client.execute("x * 2", context_id=ctx["id"])) == "10"


def test_keepalive_while_running(client, tmp_path):
    go = tmp_path / "go"
    with client.stream(wait_cell(go)) as s:
        assert s.status == 200
        s.read_until(is_ready, timeout=30)
        # --keepalive-ms 300: one must come while the cell waits for us.
        s.read_until(lambda l: l["type"] == "keepalive", timeout=15)
        go.touch()
        lines = s.read_all()
    for k in of_type(lines, "keepalive"):
        assert k == KEEPALIVE


def test_keepalive_while_queued_and_arrival_order(client, new_context, tmp_path):
    ctx = new_context()
    go = tmp_path / "go"
    first = client.stream(wait_cell(go, after="done_a = True"), context_id=ctx["id"])
    second = None
    try:
        assert first.status == 200
        first.read_until(is_ready, timeout=30)
        second = client.stream("done_a", context_id=ctx["id"])
        assert second.status == 200
        # The context is busy with `first`: `second` waits, with keepalives.
        second.read_until(lambda l: l["type"] == "keepalive", timeout=15)
        assert [l["type"] for l in second.lines] == ["keepalive"] * len(second.lines)
        go.touch()
        a = first.read_all()
        b = second.read_all()
    finally:
        first.close()
        if second is not None:
            second.close()
    assert error(a) is None and error(b) is None
    assert main_text(b) == "True"  # ran after `first` finished
    n_a = of_type(a, "number_of_executions")[0]["execution_count"]
    n_b = of_type(b, "number_of_executions")[0]["execution_count"]
    assert n_b == n_a + 1


def test_queue_keeps_arrival_order(client, new_context, tmp_path):
    ctx = new_context()
    go = tmp_path / "go"
    blocker = client.stream(wait_cell(go, after="order = []"), context_id=ctx["id"])
    queued = []
    try:
        blocker.read_until(is_ready, timeout=30)
        for i in range(3):
            s = client.stream(f"order.append({i}); list(order)", context_id=ctx["id"])
            queued.append(s)
            # Arrival is only known once the daemon answered with a keepalive.
            s.read_until(lambda l: l["type"] == "keepalive", timeout=15)
        go.touch()
        blocker.read_all()
        texts = [main_text(s.read_all()) for s in queued]
    finally:
        blocker.close()
        for s in queued:
            s.close()
    assert texts == ["[0]", "[0, 1]", "[0, 1, 2]"]


def test_contexts_run_in_parallel(client, new_context, tmp_path):
    ids = [new_context()["id"] for _ in range(2)]
    gos = [tmp_path / "go0", tmp_path / "go1"]
    streams = []
    try:
        for ctx_id, go in zip(ids, gos):
            s = client.stream(wait_cell(go), context_id=ctx_id)
            assert s.status == 200
            streams.append(s)
        # Both cells are running at once: each prints 'ready' while the other
        # is still blocked on its file.
        for s in streams:
            s.read_until(is_ready, timeout=30)
        for go in gos:
            go.touch()
        for s in streams:
            assert error(s.read_all()) is None
    finally:
        for s in streams:
            s.close()

