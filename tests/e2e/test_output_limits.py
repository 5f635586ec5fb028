"""Limits of the Python kernel's rich outputs are options, and no cut is
silent (issue 11, item 9): a DataFrame's `data` (E2B_CI_DATA_MAX_ROWS,
_COLUMNS, _CELLS) and a line/scatter chart's points (E2B_CI_CHART_MAX_POINTS)
are bounded by environment variables the kernel reads at each display (the
daemon's, inherited, or an execution's env_vars; 0: no limit), and every
cut shows in the result's `extra` under "e2b-ci/truncated" and as one line
on stderr."""

import pytest

from harness import error, of_type, stderr

MARK = "e2b-ci/truncated"


@pytest.fixture(scope="module")
def py(daemon):
    client = daemon.client()
    ctx = client.create_context({"language": "python"})
    client.execute("import pandas as pd\nimport matplotlib.pyplot as plt",
                   context_id=ctx["id"], timeout=120)
    yield lambda code, **kw: run(client, ctx["id"], code, **kw)
    client.delete(ctx["id"])


def run(client, ctx_id, code, **kw):
    if ctx_id is not None:
        kw["context_id"] = ctx_id
    lines = client.execute(code, timeout=120, **kw)
    err = error(lines)
    assert err is None, f"{err['name']}: {err['value']}\n{err['traceback']}"
    results = of_type(lines, "result")
    assert len(results) == 1, results
    return results[0], stderr(lines)


def test_frame_under_the_limits_is_whole_and_unmarked(py):
    r, err = py("pd.DataFrame({'a': range(10_000)})")
    assert r["data"]["a"] == list(range(10_000))
    assert MARK not in r["extra"] and err == ""


def test_cut_frame_is_marked(py):
    r, err = py("pd.DataFrame({'a': range(50_000), 'b': 0.5})")
    assert r["data"]["a"] == list(range(10_000))
    assert r["data"]["b"] == [0.5] * 10_000
    assert "49999" in r["text"]
    assert r["extra"][MARK] == {"data": {
        "rows": 10_000, "total_rows": 50_000, "columns": 2, "total_columns": 2,
        "limits": ["E2B_CI_DATA_MAX_ROWS=10000"]}}
    assert err.count("\n") == 1 and "10,000 of 50,000 rows" in err, err
    assert "E2B_CI_DATA_MAX_ROWS=10000" in err
    # The cells limit counts the index: 300 columns leave 664 rows.
    r, err = py("pd.DataFrame([[0] * 300] * 1000)")
    mark = r["extra"][MARK]["data"]
    assert (mark["rows"], mark["total_rows"]) == (664, 1000)
    assert mark["limits"] == ["E2B_CI_DATA_MAX_CELLS=200000"]
    assert len(r["data"]["0"]) == 664 and "664 of 1,000 rows" in err
    r, err = py("pd.DataFrame([[1] * 1500])")
    assert len(r["data"]) == 1000
    assert r["extra"][MARK]["data"]["limits"] == ["E2B_CI_DATA_MAX_COLUMNS=1000"]
    assert "1,000 of 1,500 columns" in err


def test_data_limits_per_execution(py):
    big = "pd.DataFrame({'a': range(50_000)})"
    r, err = py(big, env_vars={"E2B_CI_DATA_MAX_ROWS": "0"})
    assert r["data"]["a"] == list(range(50_000))
    assert MARK not in r["extra"] and err == ""
    r, err = py(big, env_vars={"E2B_CI_DATA_MAX_ROWS": "100"})
    assert r["data"]["a"] == list(range(100))
    assert r["extra"][MARK]["data"]["limits"] == ["E2B_CI_DATA_MAX_ROWS=100"]
    # The default is back after the execution.
    r, _ = py(big)
    assert len(r["data"]["a"]) == 10_000
    r, err = py(big, env_vars={"E2B_CI_DATA_MAX_ROWS": "lots"})
    assert len(r["data"]["a"]) == 10_000
    assert "E2B_CI_DATA_MAX_ROWS='lots' is not a whole number" in err, err


def chart_of(py, code, **kw):
    lines_result, err = py(code + "\nfig = plt.gcf(); plt.close(fig); fig", **kw)
    return lines_result, err


def test_thinned_chart_is_marked(py):
    r, err = chart_of(py, "plt.plot(range(50_000)); plt.plot(range(10))")
    pts = [len(e["points"]) for e in r["chart"]["elements"]]
    assert pts[1] == 10 and pts[0] <= 10_001, pts
    mark = r["extra"][MARK]["chart"]
    assert mark["total_points"] == 50_000 and mark["points"] == pts[0], mark
    assert mark["series"] == [{"label": "Line 0", "points": pts[0], "total_points": 50_000}]
    assert mark["limits"] == ["E2B_CI_CHART_MAX_POINTS=20000"]
    assert err.count("\n") == 1 and f"{pts[0]:,} of their 50,000 points" in err, err
    r, err = chart_of(py, "plt.plot(range(50_000))", env_vars={"E2B_CI_CHART_MAX_POINTS": "0"})
    assert len(r["chart"]["elements"][0]["points"]) == 50_000
    assert MARK not in r["extra"] and err == ""
    r, err = chart_of(py, "plt.plot(range(500))")
    assert MARK not in r["extra"] and err == ""


def test_limits_are_inherited_from_the_daemon(make_daemon):
    # The harness passes none of the caller's E2B_CI_* variables, only env's.
    d = make_daemon(name="limits daemon", env={"E2B_CI_DATA_MAX_ROWS": "7",
                                               "E2B_CI_CHART_MAX_POINTS": "100"})
    c = d.wait_healthy().client()
    r, err = run(c, None, "import pandas as pd\npd.DataFrame({'a': range(20)})")
    assert r["data"]["a"] == list(range(7))
    assert r["extra"][MARK]["data"]["limits"] == ["E2B_CI_DATA_MAX_ROWS=7"]
    r, err = run(c, None, "import matplotlib.pyplot as plt\nplt.plot(range(1000))\n"
                          "fig = plt.gcf(); plt.close(fig); fig")
    assert len(r["chart"]["elements"][0]["points"]) <= 101
    assert r["extra"][MARK]["chart"]["limits"] == ["E2B_CI_CHART_MAX_POINTS=100"]
