"""e2b/chart: what a matplotlib Figure shows, as data an SDK can redraw.

The schema is the one E2B's SDKs deserialize (js/src/charts.ts,
python/e2b_code_interpreter/charts.py in e2b-dev/code-interpreter):

  every chart    type, title, elements
  2-D charts     + x_label, y_label, x_unit, y_unit   (bar, box_and_whisker)
  point charts   + x_ticks, x_tick_labels, x_scale,
                   y_ticks, y_tick_labels, y_scale     (line, scatter)

  line/scatter     elements: [{label, points: [[x, y], ...]}]
  bar              elements: [{label, group, value}]
  pie              elements: [{label, angle, radius}]
  box_and_whisker  elements: [{label, min, first_quartile, median,
                               third_quartile, max, outliers}]
  superchart       elements: one chart per axes (a figure with several)
  unknown          elements: []

Each axes is classified by what is drawn on it (texts, legends, axhline /
axvline reference lines and error bars aside): only Line2D -> line (only
markers -> scatter), only scatter collections -> scatter, only bar
containers -> bar (histograms too), only wedges -> pie, only what a boxplot
drew -> box_and_whisker, anything else -> unknown. A figure without data
gives no chart; one with several axes holding data gives a superchart.

Bar and box charts name the category axis x: for horizontal bars/boxes
x_label/x_unit come from the y axis, as in E2B's reference.

Values: numbers are floats, dates ISO 8601 strings, NaN/inf null. Ticks
are the major ticks inside the view limits. The points of a line/scatter
chart are capped at about E2B_CI_CHART_MAX_POINTS in all (limits.py;
20,000 unless set, 0: no cap): a longer series is thinned to evenly spaced
points, its first and last kept (the PNG shows them all), and the cut is
marked (limits.note: e2b-ci/truncated in the result, a line on stderr).
"""

import math
import re
import sys

from . import jsonable, limits
from .mpl import TAG as BOX_TAG

GENERIC_LABEL = re.compile(r"^_(child|container|collection|line)?(\d+)$")
MATHDEFAULT = re.compile(r"^\$\\mathdefault\{(.*)\}\$$")
UNIT_AT_END = re.compile(r"[(\[]\s*([^()\[\]]*?)\s*[)\]]\s*$")
UNIT_ANYWHERE = re.compile(r"\s\(([^()]*)\)|\[([^\[\]]*)\]")


def figure_to_chart(figure):
    """The e2b/chart dict of a Figure, or None (nothing drawn)."""
    axes = [ax for ax in figure.get_axes() if _is_chart_axes(ax)]
    with_data = [ax for ax in axes if ax.has_data()]
    if not with_data:
        return None
    suptitle = _suptitle(figure)
    cuts = []
    if len(with_data) == 1:
        chart = axes_to_chart(with_data[0], cuts)
        if chart.get("title") is None and suptitle:
            chart["title"] = suptitle
    else:
        chart = {
            "type": "superchart",
            "title": suptitle,
            "elements": [axes_to_chart(ax, cuts) for ax in with_data],
        }
    if cuts:
        limits.note(figure, "chart", {
            "points": sum(c["points"] for c in cuts),
            "total_points": sum(c["total_points"] for c in cuts),
            "series": cuts,
            "limits": [f"E2B_CI_CHART_MAX_POINTS={limits.get('E2B_CI_CHART_MAX_POINTS')}"],
        })
    return chart


def _is_chart_axes(ax):
    if not ax.get_visible():
        return False
    return getattr(ax, "_colorbar", None) is None  # a colorbar's own axes


def _suptitle(figure):
    get = getattr(figure, "get_suptitle", None)
    if get is not None:
        text = get()
    else:
        st = getattr(figure, "_suptitle", None)
        text = st.get_text() if st is not None else ""
    return text or None


# ------------------------------------------------------------ classification

def _visible(artists):
    return [a for a in artists if a.get_visible()]


def _is_reference_line(ax, line):
    """axhline/axvline and anything drawn in axes coordinates."""
    try:
        return not line.get_transform().contains_branch(ax.transData)
    except Exception:
        return False


def _is_axis_aligned_pair(line):
    try:
        x = line.get_xdata(orig=False)
        y = line.get_ydata(orig=False)
        return len(x) == 2 and len(y) == 2 and (x[0] == x[1] or y[0] == y[1])
    except Exception:
        return False


def _markers_only(line):
    return line.get_linestyle() in ("None", "none", "", " ") and \
        line.get_marker() not in (None, "None", "none", "", " ")


def axes_to_chart(ax, cuts=None):
    """The chart of one axes; series it thins are added to cuts (a list of
    {label, points, total_points}) when given."""
    import matplotlib.collections as mcoll
    import matplotlib.patches as mpatches
    from matplotlib.container import BarContainer, ErrorbarContainer

    lines = _visible(ax.lines)
    patches = _visible(ax.patches)
    colls = _visible(ax.collections)
    others = _visible(ax.images) + _visible(getattr(ax, "tables", []))

    # Artists that only decorate: error bars, reference lines.
    helpers = set()
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            _data_line, caplines, barcols = c.lines
            helpers.update(caplines)
            helpers.update(barcols)
        elif isinstance(c, BarContainer) and getattr(c, "errorbar", None):
            helpers.update(c.errorbar.get_children())
    lines = [l for l in lines if l not in helpers and not _is_reference_line(ax, l)]
    colls = [c for c in colls if c not in helpers]

    if others or getattr(ax, "name", "rectilinear") != "rectilinear":
        return _unknown(ax)  # images, tables; polar, 3-D, map projections

    boxed = [a for a in lines + patches + colls if getattr(a, BOX_TAG, None) is not None]
    if boxed:
        rest = [a for a in lines + patches + colls
                if getattr(a, BOX_TAG, None) is None
                and not (a in lines and _is_axis_aligned_pair(a))]
        if not rest:
            return _box_chart(ax, boxed)
        return _unknown(ax)

    bar_containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    non_pair_lines = [l for l in lines if not _is_axis_aligned_pair(l)]

    if patches:
        if colls or non_pair_lines:
            return _unknown(ax)
        bar_rects = {p for c in bar_containers for p in c.patches}
        if bar_containers and all(p in bar_rects for p in patches):
            return _bar_chart(ax, bar_containers)
        wedges = [p for p in patches if not isinstance(p, mpatches.Shadow)]
        if wedges and all(isinstance(p, mpatches.Wedge) for p in wedges):
            return _pie_chart(ax, wedges)
        return _unknown(ax)

    if colls:
        if not all(isinstance(c, mcoll.PathCollection) for c in colls):
            return _unknown(ax)
        markers = [l for l in non_pair_lines if _markers_only(l)]
        if len(markers) != len(non_pair_lines):
            return _unknown(ax)
        return _point_chart(ax, "scatter", markers, colls, cuts)

    if lines:
        data_lines = non_pair_lines or lines
        kind = "scatter" if all(_markers_only(l) for l in data_lines) else "line"
        return _point_chart(ax, kind, data_lines, [], cuts)

    return _unknown(ax)


# ------------------------------------------------------------------ helpers

def _title(ax):
    for loc in ("center", "left", "right"):
        text = ax.get_title(loc=loc)
        if text:
            return text
    return None


def _unit(label):
    if not label:
        return None
    m = UNIT_AT_END.search(label)
    if m and m.group(1):
        return m.group(1)
    m = UNIT_ANYWHERE.search(label)
    if m:
        return m.group(1) or m.group(2) or None
    return None


def _labels(ax, swap=False):
    x = ax.get_xlabel() or None
    y = ax.get_ylabel() or None
    if swap:
        x, y = y, x
    return {"x_label": x, "y_label": y, "x_unit": _unit(x), "y_unit": _unit(y)}


def _unknown(ax):
    return {"type": "unknown", "title": _title(ax), "elements": []}


def _num(v):
    """A float rounded to 12 significant digits (no 88.00000000000001);
    None for NaN/inf/non-numbers."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return float(f"{f:.12g}")


def _round(v, digits):
    f = _finite(v)
    return None if f is None else round(f, digits)


def _finite(v):
    try:
        return jsonable.finite(v)
    except (TypeError, ValueError):
        return None


def _fmt(v):
    f = _num(v)
    if f is None:
        return str(v)
    return f"{f:.12g}"


def _generic_label(label, prefix, index):
    """'_child3' -> 'Line 3'; None/'' -> 'Line <index>'; else the label."""
    if label is None or label == "":
        return f"{prefix} {index}"
    label = str(label)
    if label.startswith("_"):
        m = GENERIC_LABEL.match(label)
        return f"{prefix} {m.group(2) if m else index}"
    return label


def _converter(axis):
    get = getattr(axis, "get_converter", None)
    return get() if get is not None else getattr(axis, "converter", None)


class _Axis:
    """How values on one axis read: 'date', 'period' (pandas' time series
    ordinals), 'category' (strings) or 'number'."""

    def __init__(self, ax, axis):
        self.ax = ax
        self.axis = axis
        self.kind = "number"
        self.freq = None
        self.categories = None
        conv = _converter(axis)
        names = {c.__name__ for c in type(conv).__mro__} if conv is not None else set()
        if "PeriodConverter" in names:
            freq = getattr(axis, "freq", None) or getattr(ax, "freq", None)
            if freq is not None and "pandas" in sys.modules:
                self.kind, self.freq = "period", freq
        elif names & {"DateConverter", "_SwitchableDateConverter",
                      "ConciseDateConverter"}:
            self.kind = "date"
        elif "StrCategoryConverter" in names:
            self.kind = "category"
            mapping = getattr(getattr(axis, "units", None), "_mapping", None)
            if mapping:
                self.categories = {int(v): k for k, v in mapping.items()}

    def scale(self, ticks, labels):
        if self.kind in ("date", "period"):
            return "datetime"
        scale = self.axis.get_scale()
        if scale != "linear":
            return scale
        if self.kind == "category":
            return "categorical"
        # Fixed ticks 0..n-1 with words as labels (pandas' bar plots, set_xticks)
        if ticks and all(t == i and lab != str(i) and lab != ""
                         for i, (t, lab) in enumerate(zip(ticks, labels))):
            if not all(_looks_numeric(lab) for lab in labels):
                return "categorical"
        return "linear"

    def from_float(self, v):
        """A converted (float) position back into the axis' own terms."""
        f = _num(v)
        if f is None:
            return None
        if self.kind == "date":
            import matplotlib.dates as mdates
            try:
                return mdates.num2date(f).isoformat()
            except (ValueError, OverflowError):
                return f
        if self.kind == "period":
            pd = sys.modules["pandas"]
            try:
                return pd.Period(ordinal=int(round(f)), freq=self.freq).to_timestamp().isoformat()
            except Exception:
                return f
        return f

    def ticks(self):
        """(positions, labels) of the major ticks inside the view."""
        locs = list(self.axis.get_majorticklocs())
        labels = [t.get_text() for t in self.axis.get_majorticklabels()]
        if len(labels) != len(locs):
            labels = list(self.axis.get_major_formatter().format_ticks(locs))
        import numpy as np

        # Compare in the scale's own space (log axes span decades).
        tr = self.axis.get_transform()
        with np.errstate(all="ignore"):
            lo, hi = sorted(tr.transform(np.asarray(self.axis.get_view_interval(), float)))
            where = tr.transform(np.asarray(locs, float)) if locs else []
        eps = (hi - lo) * 1e-9
        kept = [(t, lab) for t, w, lab in zip(locs, where, labels)
                if lo - eps <= w <= hi + eps]
        return [t for t, _ in kept], [_plain(lab) for _, lab in kept]

    def tick_values(self, ticks):
        if self.kind in ("date", "period"):
            return [self.from_float(t) for t in ticks]
        return [_num(t) for t in ticks]

    def category_at(self, pos, halfwidth=0.0):
        """The name of the category drawn at pos (a bar's or box's centre)."""
        if self.categories is not None:
            k = int(round(pos))
            if abs(pos - k) <= max(halfwidth, 1e-9) and k in self.categories:
                return str(self.categories[k])
        import matplotlib.ticker as mticker
        fixed = isinstance(self.axis.get_major_locator(), mticker.FixedLocator)
        if fixed or self.kind == "category":
            ticks, labels = self.ticks()
            if ticks:
                spacing = min((abs(b - a) for a, b in zip(ticks, ticks[1:])),
                              default=math.inf)
                best = min(range(len(ticks)), key=lambda i: abs(ticks[i] - pos))
                d = abs(ticks[best] - pos)
                if (d <= halfwidth + 1e-9 or d < spacing / 2) and labels[best]:
                    return labels[best]
        if self.kind in ("date", "period"):
            return str(self.from_float(pos))
        return _fmt(pos)


def _plain(label):
    """'$\\mathdefault{10^{3}}$' (log axes) -> '10^{3}'."""
    m = MATHDEFAULT.match(label)
    return m.group(1) if m else label


def _looks_numeric(text):
    try:
        float(text.replace("\u2212", "-"))
        return True
    except ValueError:
        return False


# --------------------------------------------------------------- chart kinds

def _point_chart(ax, kind, lines, collections, cuts=None):
    xa, ya = _Axis(ax, ax.xaxis), _Axis(ax, ax.yaxis)
    chart = {"type": kind, "title": _title(ax)}
    chart.update(_labels(ax))
    for name, a in (("x", xa), ("y", ya)):
        ticks, labels = a.ticks()
        chart[f"{name}_ticks"] = a.tick_values(ticks)
        chart[f"{name}_tick_labels"] = labels
        chart[f"{name}_scale"] = a.scale(ticks, labels)
    elements = []
    series = [(l, "line") for l in lines] + [(c, "coll") for c in collections]
    cap = limits.get("E2B_CI_CHART_MAX_POINTS")
    budget = None if cap is None else max(2, cap // max(1, len(series)))
    for i, (artist, what) in enumerate(series):
        if what == "line":
            xs, ys = _arrays(artist.get_xdata(orig=True), artist.get_ydata(orig=True))
            label = _generic_label(artist.get_label(), "Line", i)
        else:
            xs, ys = _offsets(artist)
            label = _generic_label(artist.get_label(), "Series", i)
        n = min(len(xs), len(ys))
        keep = _thin(n, budget)
        xs, ys = _values(xs[keep], xa), _values(ys[keep], ya)
        if len(xs) < n and cuts is not None:
            cuts.append({"label": label, "points": len(xs), "total_points": n})
        elements.append({"label": label, "points": [[x, y] for x, y in zip(xs, ys)]})
    chart["elements"] = elements
    return chart


def _array(data):
    import numpy as np

    if isinstance(data, np.ma.MaskedArray):
        if data.dtype.kind in "biuf":
            data = np.ma.filled(data.astype(float), np.nan)
        else:
            data = np.ma.filled(data.astype(object), None)
    if not isinstance(data, np.ndarray):
        try:
            data = np.asarray(data)
        except Exception:
            data = np.asarray(list(data), dtype=object)
    return data.ravel() if data.ndim != 1 else data


def _arrays(x, y):
    return _array(x), _array(y)


def _offsets(collection):
    import numpy as np
    off = collection.get_offsets()
    arr = np.ma.filled(np.ma.asarray(off, dtype=float), np.nan)
    if arr.ndim != 2 or arr.shape[1] != 2:
        return np.empty(0), np.empty(0)
    return arr[:, 0], arr[:, 1]


def _thin(n, limit):
    """Indices of at most about limit of n points (None: all), evenly
    spaced, first and last included."""
    if limit is None or n <= limit:
        return slice(0, n)
    step = math.ceil(n / limit)
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


def _values(arr, axis):
    """An array of positions (as the user gave them) as JSON values."""
    import numpy as np

    if arr.dtype.kind in "biuf":
        if axis.kind in ("date", "period"):
            return [axis.from_float(v) for v in arr.tolist()]
        f = arr.astype(float)
        out = f.tolist()
        for i in np.flatnonzero(~np.isfinite(f)).tolist():
            out[i] = None
        return out
    if arr.dtype.kind == "M":
        return [None if np.isnat(v) else jsonable._datetime64(v) for v in arr]
    if arr.dtype.kind in "US":
        return [str(v) for v in arr.tolist()]
    return [_point_value(v, axis) for v in arr.tolist()]


def _point_value(v, axis):
    import datetime

    if v is None:
        return None
    if isinstance(v, str):
        return v
    pd = sys.modules.get("pandas")
    if pd is not None:
        if v is pd.NaT or v is pd.NA:
            return None
        if isinstance(v, pd.Period):
            return v.to_timestamp().isoformat()
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return jsonable.iso(v)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.datetime64):
        return None if np.isnat(v) else jsonable._datetime64(v)
    if isinstance(v, (int, float)) or (np is not None and isinstance(v, np.number)):
        if axis.kind in ("date", "period"):
            return axis.from_float(v)
        return jsonable.finite(v)
    return str(v)


def _bar_chart(ax, containers):
    vertical = [getattr(c, "orientation", None) != "horizontal" for c in containers]
    horizontal = not any(vertical)
    chart = {"type": "bar", "title": _title(ax)}
    chart.update(_labels(ax, swap=horizontal))
    cat_axis = _Axis(ax, ax.yaxis if horizontal else ax.xaxis)
    elements = []
    for i, c in enumerate(containers):
        group = _generic_label(c.get_label(), "Group", i)
        horiz = getattr(c, "orientation", None) == "horizontal"
        for rect in c.patches:
            if horiz:
                pos, half, value = rect.get_y() + rect.get_height() / 2, \
                    abs(rect.get_height()) / 2, rect.get_width()
            else:
                pos, half, value = rect.get_x() + rect.get_width() / 2, \
                    abs(rect.get_width()) / 2, rect.get_height()
            elements.append({"label": cat_axis.category_at(pos, half),
                             "group": group, "value": _finite(value)})
    chart["elements"] = elements
    return chart


def _pie_chart(ax, wedges):
    elements = []
    for w in wedges:
        elements.append({
            "label": str(w.get_label() or ""),
            # pie() computes in float32: 4 decimals of a degree are exact
            "angle": _round(abs(w.theta2 - w.theta1), 4),
            "radius": _num(w.r),
        })
    return {"type": "pie", "title": _title(ax), "elements": elements}


def _box_chart(ax, artists):
    records = []
    for a in artists:
        r = getattr(a, BOX_TAG)
        if r not in records:
            records.append(r)
    horizontal = all(not r.vertical for r in records)
    chart = {"type": "box_and_whisker", "title": _title(ax)}
    chart.update(_labels(ax, swap=horizontal))
    boxes = []
    for r in records:
        cat_axis = _Axis(ax, ax.xaxis if r.vertical else ax.yaxis)
        for pos, s in zip(r.positions, r.stats):
            label = s.get("label")
            label = str(label) if label is not None and str(label) != "" \
                else cat_axis.category_at(pos, 0.25)
            fliers = s.get("fliers")
            outliers = [] if fliers is None else [_num(v) for v in list(fliers)]
            boxes.append((pos, {
                "label": label,
                "min": _num(s.get("whislo")),
                "first_quartile": _num(s.get("q1")),
                "median": _num(s.get("med")),
                "third_quartile": _num(s.get("q3")),
                "max": _num(s.get("whishi")),
                "outliers": [v for v in outliers if v is not None],
            }))
    boxes.sort(key=lambda b: b[0])
    chart["elements"] = [b for _, b in boxes]
    return chart
