"""Rich outputs of the Python kernel (kernels/python3): what an AI data
analyst's session returns besides text, end to end through the daemon.

- e2b/data (`data`): a DataFrame's columns as lists, strict JSON;
- e2b/chart (`chart`): a matplotlib Figure as the chart object E2B's SDKs
  deserialize (js/src/charts.ts, python/e2b_code_interpreter/charts.py in
  e2b-dev/code-interpreter), per chart type; the reference's own SDK test
  cells are used where they exist, with the values they expect;
- application/json (`json`) for list and dict results, numpy converted;
- PNG results for PIL images however they are shown;
- the kernel's settings: no ANSI colours, no "..." in long sequences, a CJK
  font, a clean namespace and no eager pandas/matplotlib import.

The chart and data tests share one context (state does not matter between
them: each cell makes and shows its own figure) with the sample CSV loaded
as `df`. Expected values are computed here from the CSV with the standard
library, not by pandas.
"""

import base64
import csv
import datetime
import math
import shutil
import struct
from collections import defaultdict
from pathlib import Path

import pytest

import harness
from harness import error, of_type, stderr

DATA = Path(__file__).parent / "data"
KERNEL = Path(__file__).resolve().parents[2] / "kernels" / "python3"
SALES = DATA / "sales.csv"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def analyst(daemon, tmp_path_factory):
    """A context with pandas, numpy and pyplot imported and the sample CSV
    loaded as df; its cwd is a scratch directory."""
    client = daemon.client()
    cwd = tmp_path_factory.mktemp("analyst")
    ctx = client.create_context({"cwd": str(cwd)})
    run = Session(client, ctx["id"], cwd)
    run.ok("import pandas as pd\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
           f"df = pd.read_csv({str(SALES)!r}, parse_dates=['date'])")
    yield run
    client.delete(ctx["id"])


class Session:
    def __init__(self, client, ctx_id, cwd):
        self.client = client
        self.ctx_id = ctx_id
        self.cwd = cwd

    def lines(self, code, timeout=60):
        return self.client.execute(code, context_id=self.ctx_id, timeout=timeout)

    def ok(self, code, quiet=True):
        """Runs code; fails on an error line (and on stderr when quiet)."""
        lines = self.lines(code)
        err = error(lines)
        assert err is None, f"{err['name']}: {err['value']}\n{err['traceback']}"
        if quiet:
            assert stderr(lines) == "", stderr(lines)
        return lines

    def chart(self, code):
        """The chart of the one figure the cell shows (with its PNG)."""
        results = of_type(self.ok(code), "result")
        assert len(results) == 1, results
        r = results[0]
        assert png_size(r["png"]), r
        assert r["text"].startswith("<Figure size"), r
        assert "chart" in r, f"no chart: {r.keys()}"
        check_schema(r["chart"])
        return r["chart"]

    def main(self, code):
        results = [r for r in of_type(self.ok(code), "result") if r["is_main_result"]]
        assert len(results) == 1, results
        return results[0]


def png_size(b64):
    raw = base64.b64decode(b64)
    assert raw.startswith(PNG_MAGIC), raw[:16]
    return struct.unpack(">II", raw[16:24])


def is_iso(s):
    return isinstance(s, str) and datetime.datetime.fromisoformat(s) is not None


NUM = (int, float)

# Keys every chart has, by type: what the official SDKs' deserializers read
# (the Python SDK raises KeyError on a missing one).
CHART_KEYS = {"type", "title", "elements"}
CHART2D_KEYS = CHART_KEYS | {"x_label", "y_label", "x_unit", "y_unit"}
POINT_KEYS = CHART2D_KEYS | {"x_ticks", "x_tick_labels", "x_scale",
                             "y_ticks", "y_tick_labels", "y_scale"}
KEYS = {"line": POINT_KEYS, "scatter": POINT_KEYS, "bar": CHART2D_KEYS,
        "box_and_whisker": CHART2D_KEYS, "pie": CHART_KEYS,
        "superchart": CHART_KEYS, "unknown": CHART_KEYS}
SCALES = {"linear", "datetime", "categorical", "log", "symlog", "logit",
          "function", "functionlog", "asinh"}


def check_schema(chart):
    t = chart.get("type")
    assert t in KEYS, chart
    assert KEYS[t] <= set(chart), f"{t}: missing {KEYS[t] - set(chart)}"
    assert chart["title"] is None or isinstance(chart["title"], str)
    assert isinstance(chart["elements"], list)
    for k in ("x_label", "y_label", "x_unit", "y_unit"):
        assert chart.get(k) is None or isinstance(chart[k], str), (k, chart)
    if KEYS[t] is POINT_KEYS:
        for axis in "xy":
            assert chart[f"{axis}_scale"] in SCALES
            assert all(isinstance(v, (str,) + NUM) for v in chart[f"{axis}_ticks"])
            assert all(isinstance(v, str) for v in chart[f"{axis}_tick_labels"])
            assert len(chart[f"{axis}_ticks"]) == len(chart[f"{axis}_tick_labels"])
        for e in chart["elements"]:
            assert isinstance(e["label"], str)
            assert all(isinstance(p, list) and len(p) == 2 for p in e["points"])
    elif t == "bar":
        for e in chart["elements"]:
            assert isinstance(e["label"], str) and isinstance(e["group"], str)
            assert e["value"] is None or isinstance(e["value"], NUM)
    elif t == "pie":
        for e in chart["elements"]:
            assert isinstance(e["label"], str)
            assert isinstance(e["angle"], NUM) and isinstance(e["radius"], NUM)
    elif t == "box_and_whisker":
        for e in chart["elements"]:
            for k in ("min", "first_quartile", "median", "third_quartile", "max"):
                assert isinstance(e[k], NUM), (k, e)
            assert all(isinstance(v, NUM) for v in e["outliers"])
    elif t == "superchart":
        for sub in chart["elements"]:
            assert sub["type"] != "superchart"
            check_schema(sub)
    else:
        assert chart["elements"] == []


def sales_rows():
    with open(SALES, newline="") as f:
        return list(csv.DictReader(f))


def num(s):
    return float(s) if s != "" else None


def sums(key, value):
    """{key: sum of value} over the CSV rows, missing values skipped."""
    out = defaultdict(float)
    for r in sales_rows():
        if r[value] != "":
            out[r[key]] += float(r[value])
    return dict(out)


# ------------------------------------------------------- kernel settings

def test_fresh_kernel_namespace_and_imports(make_daemon):
    """The additions leave no names in the user's namespace and import
    neither pandas, matplotlib, numpy nor PIL at start. (The Python
    zygote preloads numpy, pandas and matplotlib on purpose, for every
    kernel it forks; with an empty --python-preload it must not import
    them either: test_zygote_daemon.py covers the default.)"""
    d = make_daemon(args=["--python-preload", ""]).wait_healthy()
    client = d.client()
    ctx = client.create_context()
    lines = client.execute(
        "import sys\n"
        "print(sorted(n for n in dir() if not n.startswith('_')))\n"
        "print(sorted(m for m in ('pandas', 'matplotlib', 'numpy', 'PIL') if m in sys.modules))\n"
        "print(sorted(n for n in dir() if 'e2b' in n.lower()))",
        context_id=ctx["id"])
    assert error(lines) is None, error(lines)
    assert harness.stdout(lines).splitlines() == [
        "['In', 'Out', 'exit', 'get_ipython', 'quit', 'sys']", "[]", "[]"]


def test_nothing_is_written_to_the_kernelspec(make_daemon, tmp_path, monkeypatch):
    """The kernelspec may be read-only once installed: using every addition
    writes nothing there (no __pycache__ either, whatever the environment
    says about bytecode)."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    kdir = tmp_path / "kernels"
    shutil.copytree(KERNEL, kdir / "python3",
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = sorted(kdir.rglob("*"))
    d = make_daemon(args=["--kernel-path", str(kdir)])
    d.wait_healthy()
    lines = d.client().execute(
        "import pandas as pd, matplotlib.pyplot as plt\n"
        "from PIL import Image\n"
        "display(pd.DataFrame({'a': [1]}))\n"
        "plt.boxplot([[1, 2, 3]])\nplt.show()\n"
        "Image.new('RGB', (2, 2)).show()\n"
        "{'k': 1}")
    assert error(lines) is None, error(lines)
    results = of_type(lines, "result")
    assert ["data" in r for r in results] == [True, False, False, False]
    assert results[1]["chart"]["type"] == "box_and_whisker"
    assert png_size(results[2]["png"]) == (2, 2)
    assert results[3]["json"] == {"k": 1}
    assert sorted(kdir.rglob("*")) == before


def test_plain_text_no_colours_no_truncation(analyst):
    lines = analyst.lines("def f():\n    return 1/0\nf()")
    err = error(lines)
    assert err["name"] == "ZeroDivisionError"
    assert "\x1b[" not in err["traceback"] and "\x1b[" not in err["value"]
    assert "----> 3 f()" in err["traceback"], err["traceback"]
    text = analyst.main("tuple(range(1500))")["text"]  # (a list: json too)
    assert "..." not in text
    assert text.split() == ["(0,"] + [f"{i}," for i in range(1, 1499)] + ["1499)"]


def test_cjk_text_renders_without_missing_glyphs(analyst):
    lines = analyst.lines(
        "import matplotlib\n"
        "fam = matplotlib.rcParams['font.family']\n"
        "plt.title('销售额 売上 매출')\nplt.plot([1, 2])\nplt.show()\n"
        "print(fam)")
    assert error(lines) is None, error(lines)
    assert "missing from current font" not in stderr(lines), (
        "no CJK font: install the Debian package fonts-wqy-microhei")
    families = harness.stdout(lines)
    assert "WenQuanYi Micro Hei" in families or "Noto Sans CJK" in families, families
    assert len(of_type(lines, "result")) == 1


# ------------------------------------------------------------ e2b/data

def test_dataframe_has_columns_as_lists(analyst):
    r = analyst.main("df")
    assert "<table" in r["html"] and "North" in r["text"]
    rows = sales_rows()
    assert list(r["data"]) == list(rows[0])  # the CSV's columns, in order
    data = r["data"]
    assert data["region"] == [row["region"] for row in rows]
    assert data["units"] == [num(row["units"]) for row in rows]  # NaN -> null
    assert data["revenue"] == [num(row["revenue"]) for row in rows]
    assert data["date"] == [row["date"] + "T00:00:00" for row in rows]


def test_describe_and_groupby_keep_their_index(analyst):
    d = analyst.main("df.describe()")["data"]
    assert d["index"] == ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]
    units = [num(r["units"]) for r in sales_rows() if r["units"]]
    assert d["units"][0] == len(units)
    assert d["units"][1] == pytest.approx(sum(units) / len(units))
    assert d["units"][3] == min(units) and d["units"][7] == max(units)

    g = analyst.main("df.groupby('region')[['units', 'revenue']].sum()")["data"]
    assert list(g) == ["region", "units", "revenue"]
    expected = sums("region", "revenue")
    assert g["region"] == sorted(expected)
    assert g["revenue"] == pytest.approx([expected[k] for k in g["region"]])


def test_dataframe_values_are_strict_json(analyst):
    d = analyst.main(
        "import datetime\n"
        "pd.DataFrame({\n"
        "  'f': [1.5, np.nan, np.inf, -np.inf],\n"
        "  't': pd.to_datetime(['2024-05-01 10:30', None, '2024-05-02', '2024-05-03']),\n"
        "  'tz': pd.to_datetime(['2024-05-01'] * 4).tz_localize('UTC'),\n"
        "  'o': ['a', None, np.nan, datetime.date(2024, 1, 2)],\n"
        "  'n': pd.array([1, None, 3, 4], dtype='Int64'),\n"
        "  'l': [[1, 2], {'k': np.int64(3)}, (np.float64('nan'),), 'x'],\n"
        "  ('multi', 'col'): [True, False, True, False],\n"
        "  'dup': 1,\n"
        "}).rename(columns={'n': 'dup'})")["data"]
    assert d == {
        "f": [1.5, None, None, None],
        "t": ["2024-05-01T10:30:00", None, "2024-05-02T00:00:00", "2024-05-03T00:00:00"],
        "tz": ["2024-05-01T00:00:00+00:00"] * 4,
        "o": ["a", None, None, "2024-01-02"],
        "dup": [1, None, 3, 4],
        "l": [[1, 2], {"k": 3}, [None], "x"],
        "multi_col": [True, False, True, False],
        "dup.1": [1, 1, 1, 1],
    }


def test_series_and_scalars_have_no_data(analyst):
    r = analyst.main("df['units']")
    assert "data" not in r and "chart" not in r
    assert "data" not in analyst.main("len(df)")


# ------------------------------------------------------------- e2b/chart

# The reference's own SDK test cells (js/tests/charts/*.test.ts in
# e2b-dev/code-interpreter), with the values those tests expect.

REF_LINE = """
import datetime
dates = [datetime.date(2023, 9, 1) + datetime.timedelta(seconds=i) for i in range(100)]
x = np.linspace(0, 2*np.pi, 100)
plt.figure(figsize=(10, 6))
plt.plot(dates, np.sin(x), label='sin(x)')
plt.plot(dates, np.cos(x), label='cos(x)')
plt.xlabel("Time (s)")
plt.ylabel("Amplitude (Hz)")
plt.title('Plot of sin(x) and cos(x)')
plt.show()
"""


def test_line_chart_reference(analyst):
    c = analyst.chart(REF_LINE)
    assert c["type"] == "line"
    assert c["title"] == "Plot of sin(x) and cos(x)"
    assert (c["x_label"], c["y_label"]) == ("Time (s)", "Amplitude (Hz)")
    assert (c["x_unit"], c["y_unit"]) == ("s", "Hz")
    assert (c["x_scale"], c["y_scale"]) == ("datetime", "linear")
    assert c["x_ticks"] and all(is_iso(t) for t in c["x_ticks"])
    assert c["y_ticks"] and all(isinstance(t, float) for t in c["y_ticks"])
    assert [e["label"] for e in c["elements"]] == ["sin(x)", "cos(x)"]
    for e, f in zip(c["elements"], (math.sin, math.cos)):
        assert len(e["points"]) == 100
        assert all(x == "2023-09-01" for x, _ in e["points"])
        ys = [y for _, y in e["points"]]
        assert ys == pytest.approx([f(2 * math.pi * i / 99) for i in range(100)])


def test_line_chart_from_the_csv(analyst):
    c = analyst.chart(
        "monthly = df.groupby('date')['revenue'].sum()\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot(monthly.index, monthly.values, marker='o', label='Revenue')\n"
        "ax.set_xlabel('Month')\nax.set_ylabel('Revenue [USD]')\n"
        "ax.set_title('Monthly revenue')\nax.legend()\nplt.show()")
    assert (c["type"], c["title"], c["x_scale"]) == ("line", "Monthly revenue", "datetime")
    assert (c["y_label"], c["y_unit"], c["x_unit"]) == ("Revenue [USD]", "USD", None)
    expected = sums("date", "revenue")
    [line] = c["elements"]
    assert line["label"] == "Revenue"
    assert [p[0] for p in line["points"]] == [f"{d}T00:00:00" for d in sorted(expected)]
    assert [p[1] for p in line["points"]] == pytest.approx([expected[d] for d in sorted(expected)])


def test_log_and_categorical_scales(analyst):
    c = analyst.chart(
        "x = np.linspace(0, 100, 100)\nplt.figure(figsize=(10, 6))\n"
        "plt.plot(x, np.exp(x), label='y = e^x')\nplt.yscale('log')\n"
        "plt.xlabel('X-axis')\nplt.ylabel('Y-axis (log scale)')\n"
        "plt.title('Chart with Log Scale on Y-axis')\nplt.legend()\nplt.grid(True)\nplt.show()")
    assert (c["type"], c["x_scale"], c["y_scale"]) == ("line", "linear", "log")
    assert (c["x_unit"], c["y_unit"]) == (None, "log scale")
    assert [e["label"] for e in c["elements"]] == ["y = e^x"]
    assert len(c["elements"][0]["points"]) == 100
    assert all(isinstance(t, float) for t in c["y_ticks"])
    lo, hi = 1.0, math.exp(100)
    # only ticks inside the axes' view, a decade or so beyond the data at most
    assert all(lo / 1e3 <= t <= hi * 1e3 for t in c["y_ticks"]), c["y_ticks"]

    c = analyst.chart("plt.figure()\nplt.plot([1, 2, 3, 4, 5], ['A', 'B', 'C', 'D', 'E'])\nplt.show()")
    assert (c["type"], c["x_scale"], c["y_scale"]) == ("line", "linear", "categorical")
    assert c["y_tick_labels"] == ["A", "B", "C", "D", "E"]
    assert c["elements"] == [{"label": "Line 0", "points": [
        [1.0, "A"], [2.0, "B"], [3.0, "C"], [4.0, "D"], [5.0, "E"]]}]


def test_scatter_chart(analyst):
    c = analyst.chart(
        "plt.figure()\nplt.xlabel('Units (pcs)')\nplt.ylabel('Revenue')\n"
        "for name, g in df.groupby('product'):\n"
        "    plt.scatter(g['units'], g['revenue'], label=name)\n"
        "plt.legend()\nplt.show()")
    assert (c["type"], c["title"], c["x_unit"]) == ("scatter", None, "pcs")
    assert (c["x_scale"], c["y_scale"]) == ("linear", "linear")
    by_product = defaultdict(list)
    for r in sales_rows():
        by_product[r["product"]].append([num(r["units"]), num(r["revenue"])])
    assert [e["label"] for e in c["elements"]] == sorted(by_product)
    for e in c["elements"]:
        assert e["points"] == by_product[e["label"]]  # the missing row: [null, null]


def test_bar_chart_reference(analyst):
    c = analyst.chart(
        "authors = ['Author A', 'Author B', 'Author C', 'Author D']\n"
        "sales = [100, 200, 300, 400]\nplt.figure(figsize=(10, 6))\n"
        "plt.bar(authors, sales, label='Books Sold', color='blue')\n"
        "plt.xlabel('Authors')\nplt.ylabel('Number of Books Sold')\n"
        "plt.title('Book Sales by Authors')\nplt.tight_layout()\nplt.show()")
    assert c == {
        "type": "bar", "title": "Book Sales by Authors",
        "x_label": "Authors", "y_label": "Number of Books Sold",
        "x_unit": None, "y_unit": None,
        "elements": [{"label": f"Author {a}", "group": "Books Sold", "value": v}
                     for a, v in zip("ABCD", (100, 200, 300, 400))]}


def test_grouped_bars_from_pandas_and_horizontal_bars(analyst):
    c = analyst.chart(
        "t = df.pivot_table(index='region', columns='product', values='units', aggfunc='sum')\n"
        "ax = t.plot.bar(title='Units by region')\nax.set_ylabel('Units (pcs)')\nplt.show()")
    assert (c["type"], c["title"], c["x_label"], c["y_unit"]) == (
        "bar", "Units by region", "region", "pcs")
    expected = defaultdict(float)
    seen = set()
    for r in sales_rows():
        if r["units"]:
            expected[(r["region"], r["product"])] += float(r["units"])
            seen.add((r["region"], r["product"]))
    regions = sorted({r["region"] for r in sales_rows()})
    products = sorted({r["product"] for r in sales_rows()})
    got = {(e["label"], e["group"]): e["value"] for e in c["elements"]}
    assert len(c["elements"]) == len(regions) * len(products)
    for region in regions:
        for product in products:
            v = got[(region, product)]
            if (region, product) in seen:
                assert v == expected[(region, product)]
            else:
                assert v in (None, 0.0)  # NaN bar (pandas draws it empty)

    c = analyst.chart(
        "s = df.groupby('region')['revenue'].sum().sort_values()\n"
        "plt.figure()\nplt.barh(s.index, s.values)\n"
        "plt.xlabel('Revenue (USD)')\nplt.ylabel('Region')\nplt.show()")
    expected = sums("region", "revenue")
    order = sorted(expected, key=expected.get)
    assert (c["x_label"], c["y_label"], c["y_unit"]) == ("Region", "Revenue (USD)", "USD")
    assert [e["label"] for e in c["elements"]] == order
    assert [e["value"] for e in c["elements"]] == pytest.approx([expected[k] for k in order])
    assert {e["group"] for e in c["elements"]} == {"Group 0"}


def test_pie_chart_reference_and_from_pandas(analyst):
    c = analyst.chart(
        "categories = ['No', 'No, in blue']\nsizes = [90, 10]\n"
        "fig, ax = plt.subplots(figsize=(8, 8))\nplt.xlabel('x')\nplt.ylabel('y')\n"
        "ax.pie(sizes, labels=categories, autopct='%1.1f%%', startangle=90,"
        " colors=plt.cm.Pastel1.colors[:len(categories)])\n"
        "ax.axis('equal')\nplt.title('Will I wake up early tomorrow?')\nplt.show()")
    assert c == {"type": "pie", "title": "Will I wake up early tomorrow?", "elements": [
        {"label": "No", "angle": 324, "radius": 1},
        {"label": "No, in blue", "angle": 36, "radius": 1}]}

    c = analyst.chart("df.groupby('product')['revenue'].sum().plot.pie(title='Share')\nplt.show()")
    expected = sums("product", "revenue")
    total = sum(expected.values())
    assert c["title"] == "Share"
    assert [e["label"] for e in c["elements"]] == sorted(expected)
    assert [e["angle"] for e in c["elements"]] == pytest.approx(
        [360 * expected[k] / total for k in sorted(expected)], abs=1e-3)


REF_BOX = """
data = {
    'Class A': [85, 90, 78, 92, 88],
    'Class B': [95, 89, 76, 91, 84, 87],
    'Class C': [75, 82, 88, 79, 86]
}
fig, ax = plt.subplots(figsize=(10, 6))
ax.set_title('Exam Scores Distribution')
ax.set_xlabel('Class')
ax.set_ylabel('Score')
ax.boxplot(data.values(), labels=data.keys(), patch_artist=PATCH)
plt.tight_layout()
plt.show()
"""
REF_BOXES = [
    {"label": "Class A", "min": 78, "first_quartile": 85, "median": 88,
     "third_quartile": 90, "max": 92, "outliers": []},
    {"label": "Class B", "min": 84, "first_quartile": 84.75, "median": 88,
     "third_quartile": 90.5, "max": 95, "outliers": [76]},
    {"label": "Class C", "min": 75, "first_quartile": 79, "median": 82,
     "third_quartile": 86, "max": 88, "outliers": []},
]


@pytest.mark.parametrize("patch", ["True", "False"])
def test_box_and_whisker_reference(analyst, patch):
    c = analyst.chart(REF_BOX.replace("PATCH", patch))
    assert c == {"type": "box_and_whisker", "title": "Exam Scores Distribution",
                 "x_label": "Class", "y_label": "Score", "x_unit": None,
                 "y_unit": None, "elements": REF_BOXES}


def test_box_plot_from_pandas_horizontal(analyst):
    c = analyst.chart("ax = df[['units', 'price']].plot.box(vert=False)\n"
                      "ax.set_xlabel('Value (pcs)')\nplt.show()")
    assert (c["type"], c["x_label"], c["y_label"], c["y_unit"]) == (
        "box_and_whisker", None, "Value (pcs)", "pcs")
    assert [e["label"] for e in c["elements"]] == ["units", "price"]
    units = sorted(num(r["units"]) for r in sales_rows() if r["units"])
    box = c["elements"][0]
    assert box["median"] == pytest.approx((units[11] + units[12]) / 2 if len(units) % 2 == 0
                                          else units[len(units) // 2])
    assert box["min"] == units[0] and box["max"] == units[-1] and box["outliers"] == []


def test_superchart_of_an_analysts_dashboard(analyst):
    c = analyst.chart(
        "fig, axs = plt.subplots(2, 2, figsize=(10, 8))\n"
        "fig.suptitle('Sales dashboard')\n"
        "m = df.groupby('date')['revenue'].sum()\n"
        "axs[0, 0].plot(m.index, m.values); axs[0, 0].set_title('Revenue')\n"
        "r = df.groupby('region')['units'].sum()\n"
        "axs[0, 1].bar(r.index, r.values); axs[0, 1].set_title('Units')\n"
        "axs[1, 0].scatter(df['units'], df['revenue']); axs[1, 0].set_title('Units vs revenue')\n"
        "p = df.groupby('product')['revenue'].sum()\n"
        "axs[1, 1].pie(p.values, labels=p.index); axs[1, 1].set_title('Product share')\n"
        "plt.show()")
    assert (c["type"], c["title"]) == ("superchart", "Sales dashboard")
    assert [(e["type"], e["title"]) for e in c["elements"]] == [
        ("line", "Revenue"), ("bar", "Units"), ("scatter", "Units vs revenue"),
        ("pie", "Product share")]
    bar = c["elements"][1]
    expected = sums("region", "units")
    assert {e["label"]: e["value"] for e in bar["elements"]} == expected


def test_superchart_reference_and_unknown(analyst):
    c = analyst.chart(
        "x1 = np.linspace(0, 10, 100)\nfig, axs = plt.subplots(1, 2, figsize=(10, 8))\n"
        "fig.suptitle('Multiple Charts Example', fontsize=16)\n"
        "axs[0].plot(x1, np.sin(x1), 'r')\naxs[0].set_title('Sine Wave')\naxs[0].grid(True)\n"
        "axs[1].scatter(np.random.rand(5), np.random.rand(5), c='blue', label='Dataset 1')\n"
        "axs[1].set_xlabel('X')\naxs[1].set_ylabel('Y')\naxs[1].set_title('Scatter Plot')\n"
        "axs[1].grid(True)\nplt.show()")
    assert (c["type"], c["title"]) == ("superchart", "Multiple Charts Example")
    first, second = c["elements"]
    assert (first["type"], first["title"], first["x_label"]) == ("line", "Sine Wave", None)
    assert [len(e["points"]) for e in first["elements"]] == [100]
    assert (second["type"], second["title"], second["x_label"], second["y_label"]) == (
        "scatter", "Scatter Plot", "X", "Y")
    assert [(e["label"], len(e["points"])) for e in second["elements"]] == [("Dataset 1", 5)]

    c = analyst.chart(
        "fig, ax = plt.subplots()\n"
        "ax.add_artist(plt.Circle((0, 0), 1, color='blue', fill=False, linewidth=2))\n"
        "ax.add_artist(plt.Circle((0, 0), 2, color='red', fill=False, linewidth=2))\n"
        "ax.grid(True)\nplt.title('Two Concentric Circles')\nplt.show()")
    assert c == {"type": "unknown", "title": "Two Concentric Circles", "elements": []}


def test_figure_as_last_expression(analyst):
    lines = analyst.ok("fig, ax = plt.subplots()\nax.plot([1, 2, 3], [3, 1, 2], label='a')\nfig")
    main = [r for r in of_type(lines, "result") if r["is_main_result"]]
    assert len(main) == 1 and png_size(main[0]["png"])
    assert main[0]["chart"]["type"] == "line"
    assert main[0]["chart"]["elements"] == [
        {"label": "a", "points": [[1.0, 3.0], [2.0, 1.0], [3.0, 2.0]]}]


def test_blank_figure_has_png_but_no_chart(analyst):
    results = of_type(analyst.ok("fig, ax = plt.subplots()\nax.set_title('empty')\nplt.show()"),
                      "result")
    assert len(results) == 1 and png_size(results[0]["png"])
    assert "chart" not in results[0]


def test_failed_extraction_still_gives_the_png(analyst):
    """A figure the extraction cannot read arrives as PNG, without chart,
    without an error or anything on stderr."""
    lines = analyst.ok(
        "fig, ax = plt.subplots()\nline, = ax.plot([1, 2, 3], [1, 4, 9])\n"
        "def broken(*args, **kwargs):\n    raise RuntimeError('unreadable')\n"
        "line.get_xdata = broken\nplt.show()")
    results = of_type(lines, "result")
    assert len(results) == 1
    assert png_size(results[0]["png"]) and "chart" not in results[0]
    # and the next figure is fine again
    assert analyst.chart("plt.plot([1, 2])\nplt.show()")["type"] == "line"


# ------------------------------------------------------ application/json

def test_json_for_dicts_with_numpy_values(analyst):
    r = analyst.main(
        "import datetime\n"
        "{'n': np.int64(3), 'f': np.float32(0.5), 'a': np.arange(3), 'nan': float('nan'),\n"
        " 'when': datetime.date(2024, 1, 2), 1: [True, None], 'm': np.array([[1.5, np.inf]])}")
    assert r["json"] == {"n": 3, "f": 0.5, "a": [0, 1, 2], "nan": None,
                         "when": "2024-01-02", "1": [True, None], "m": [[1.5, None]]}
    assert r["text"].startswith("{'n': 3,")


def test_json_for_lists(analyst):
    # The reference sends a list result's JSON as a JSON array.
    r = analyst.main("[object()]")  # not JSON-able: text only
    assert "json" not in r and r["text"].startswith("[<object")
    r = analyst.main("[1, 'a', None, np.float64(2.5), (np.int32(4),)]")
    assert r["json"] == [1, "a", None, 2.5, [4]]


# ------------------------------------------------------------ PIL images

def test_every_way_of_showing_a_pil_image_gives_a_png(analyst):
    lines = analyst.ok(
        "from PIL import Image\n"
        "img = Image.new('RGB', (30, 20), 'red')\n"
        "img.show()\n"
        "img.save('saved.png')\n"
        "display(Image.new('L', (12, 10)))\n"
        "Image.new('CMYK', (8, 6)).save('cmyk.jpg')\n"
        "img.resize((3, 2))")
    results = of_type(lines, "result")
    assert [png_size(r["png"]) for r in results] == [(30, 20), (30, 20), (12, 10), (8, 6), (3, 2)]
    assert [r["is_main_result"] for r in results] == [False] * 4 + [True]
    assert all(r["text"].startswith("<PIL.") for r in results)
    assert (analyst.cwd / "saved.png").read_bytes().startswith(PNG_MAGIC)
    assert (analyst.cwd / "cmyk.jpg").exists()


def test_savefig_is_not_shown_twice(analyst):
    """matplotlib saves through PIL: that save is not an extra image."""
    lines = analyst.ok("plt.plot([1, 2])\nplt.savefig('fig.png')\nplt.close()\n"
                       "from PIL import Image\nImage.open('fig.png').size")
    results = of_type(lines, "result")
    assert len(results) == 1 and "png" not in results[0]
    assert (analyst.cwd / "fig.png").read_bytes().startswith(PNG_MAGIC)
