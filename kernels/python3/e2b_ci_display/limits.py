"""Limits of the rich outputs (kernel options), and marks where they cut.

Each limit is an environment variable, read at each use: the daemon's
environment (which every kernel inherits), a context's or an execution's
env_vars, or os.environ as the user's code set it. Its value is a whole
number; 0 means no limit. Unset or empty gives the default; anything else
gives the default and one warning on stderr.

  E2B_CI_DATA_MAX_ROWS      10000   rows of a DataFrame's e2b/data
  E2B_CI_DATA_MAX_COLUMNS    1000   columns of it
  E2B_CI_DATA_MAX_CELLS    200000   values of it (rows x columns)
  E2B_CI_CHART_MAX_POINTS   20000   points of a line/scatter chart, in all

A cut is never silent: the conversion that cut notes it for the object
(note()), and the e2b-ci/truncated formatter, which IPython runs after
e2b/data and e2b/chart, turns the notes into that MIME type, which the
daemon passes on in the result's `extra` (Python SDK: result.extra, JS SDK:
result.raw.extra), and writes one line per cut to stderr.
"""

import os
import sys

DEFAULTS = {
    "E2B_CI_DATA_MAX_ROWS": 10_000,
    "E2B_CI_DATA_MAX_COLUMNS": 1_000,
    "E2B_CI_DATA_MAX_CELLS": 200_000,
    "E2B_CI_CHART_MAX_POINTS": 20_000,
}

MIME = "e2b-ci/truncated"

_warned = set()
_notes = {}  # id(obj) -> {kind: details}, for the object being formatted


def get(name):
    """The limit called name, or None when there is none (0)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return DEFAULTS[name]
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        if (name, raw) not in _warned:
            _warned.add((name, raw))
            print(f"e2b-ci: {name}={raw!r} is not a whole number >= 0; "
                  f"using {DEFAULTS[name]}", file=sys.stderr)
        return DEFAULTS[name]
    return value or None


def note(obj, kind, details):
    """Records that the kind ("data", "chart") of obj was cut."""
    _notes.setdefault(id(obj), {})[kind] = details


def take(obj):
    """The notes on obj, or None; forgets every note."""
    if not _notes:
        return None
    notes = _notes.pop(id(obj), None)
    _notes.clear()
    return notes


def describe(kind, d):
    """The stderr line of one cut."""
    if kind == "data":
        parts = []
        if d["rows"] < d["total_rows"]:
            parts.append(f"{d['rows']:,} of {d['total_rows']:,} rows")
        if d["columns"] < d["total_columns"]:
            parts.append(f"{d['columns']:,} of {d['total_columns']:,} columns")
        what = " and ".join(parts)
        return (f"e2b-ci: the DataFrame's data holds only its first {what} "
                f"(limit {', '.join(d['limits'])}; 0 means none)")
    return (f"e2b-ci: the chart's series hold {d['points']:,} of their "
            f"{d['total_points']:,} points, thinned evenly (limit "
            f"{', '.join(d['limits'])}; 0 means none); the image shows all")
