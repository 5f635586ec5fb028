"""e2b/data: a pandas DataFrame as {column: [values]}.

The shape of DataFrame.to_dict(orient="list"), made strict JSON:

- timestamps (and dates, times) become ISO 8601 strings, timedeltas ISO 8601
  durations; NaN, NaT, None, pd.NA and the infinities become null;
- column names become strings (a MultiIndex column joins its levels with
  "_"; a repeated name gets ".1", ".2", ... appended);
- a meaningful index comes first, as pandas' reset_index() would put it: a
  named index (set_index, groupby) or a non-integer one (describe(),
  value_counts()). An unnamed integer index (0..n-1, or what is left of it
  after filtering) is left out, as in to_dict;
- large frames are cut, first rows and columns first, at the limits
  E2B_CI_DATA_MAX_ROWS, E2B_CI_DATA_MAX_COLUMNS and E2B_CI_DATA_MAX_CELLS
  (limits.py; 10,000 rows, 1,000 columns, 200,000 values unless set), and
  the cut is marked (limits.note: e2b-ci/truncated in the result, a line
  on stderr). text/html is pandas' own, truncated by pandas.
"""

import datetime
import sys

from . import jsonable, limits


def _meaningful_index(index):
    if any(name is not None for name in index.names):
        return True
    if index.nlevels > 1:
        return True
    return index.dtype.kind not in "iu"


def _column_name(name):
    if isinstance(name, tuple):
        parts = [str(p) for p in name if p is not None and str(p) != ""]
        return "_".join(parts)
    return str(name)


def _shape(total_rows, total_cols):
    """(rows, columns, the limits that cut) for a frame of that shape; the
    index counts as a column towards the cells."""
    max_rows = limits.get("E2B_CI_DATA_MAX_ROWS")
    max_cols = limits.get("E2B_CI_DATA_MAX_COLUMNS")
    max_cells = limits.get("E2B_CI_DATA_MAX_CELLS")
    cut = []
    cols = total_cols
    if max_cols is not None and cols > max_cols:
        cols = max_cols
        cut.append(f"E2B_CI_DATA_MAX_COLUMNS={max_cols}")
    rows = total_rows
    if max_rows is not None and rows > max_rows:
        rows = max_rows
        cut.append(f"E2B_CI_DATA_MAX_ROWS={max_rows}")
    if max_cells is not None:
        by_cells = max(1, max_cells // max(1, cols + 1))
        if rows > by_cells:
            rows = by_cells
            cut.append(f"E2B_CI_DATA_MAX_CELLS={max_cells}")
    return rows, cols, cut


def frame_to_data(frame):
    """The e2b/data dict of a DataFrame."""
    pd = sys.modules["pandas"]
    total_rows, total_cols = frame.shape
    rows, ncols, cut = _shape(total_rows, total_cols)
    if rows < total_rows or ncols < total_cols:
        limits.note(frame, "data", {
            "rows": rows, "total_rows": total_rows,
            "columns": ncols, "total_columns": total_cols,
            "limits": cut,
        })
    frame = frame.iloc[:rows, :ncols]
    if _meaningful_index(frame.index):
        try:
            frame = frame.reset_index()
        except (ValueError, TypeError):
            pass  # an index name equal to a column name: columns only
    out = {}
    for i in range(frame.shape[1]):
        key = base = _column_name(frame.columns[i])
        n = 0
        while key in out:
            n += 1
            key = f"{base}.{n}"
        out[key] = _column(frame.iloc[:, i], pd)
    return out


def _column(series, pd):
    np = sys.modules["numpy"]
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        kind = dtype.kind
        if kind in "iub":
            return series.to_numpy().tolist()
        if kind == "f":
            arr = series.to_numpy()
            values = arr.tolist()
            for i in np.flatnonzero(~np.isfinite(arr)).tolist():
                values[i] = None
            return values
    if dtype.kind in "Mm":  # datetime64, tz-aware or not; timedelta64
        return [None if v is pd.NaT else jsonable.iso(v) for v in series]
    return [_value(v, pd) for v in series.to_numpy(dtype=object)]


def _value(v, pd):
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (pd.Timestamp, pd.Timedelta, pd.Period,
                      datetime.datetime, datetime.date, datetime.time)):
        try:
            return jsonable.iso(v) if not isinstance(v, pd.Period) else str(v)
        except (ValueError, AttributeError):
            return str(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    try:
        return jsonable.convert(v, jsonable._Budget(10_000))
    except (jsonable.Unsupported, ValueError, TypeError, OverflowError,
            RecursionError):
        return str(v)
