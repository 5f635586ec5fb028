"""Strict-JSON conversion of Python values (application/json, e2b/data).

What converts: str, int, float (NaN and infinities become null), bool, None,
list, tuple, dict (keys str, int, float, bool or None, turned into strings),
numpy scalars and arrays, datetime/date/time (ISO 8601), UUID, Enum (its
value), dataclasses, Decimal. Anything else makes the whole conversion fail
(Unsupported): the result then simply has no application/json, as with E2B's
reference server.
"""

import dataclasses
import datetime
import decimal
import enum
import math
import sys
import uuid

# Beyond this many values (or this depth) a list/dict gets no JSON form:
# its text/plain is still there, untruncated.
MAX_NODES = 200_000
MAX_DEPTH = 100


class Unsupported(Exception):
    pass


def finite(x):
    """float x, or None for NaN and the infinities."""
    x = float(x)
    return x if math.isfinite(x) else None


def iso(v):
    """ISO 8601 text of a date/time-like value, None for NaT."""
    s = v.isoformat()
    return None if s == "NaT" else s


class _Budget:
    __slots__ = ("left",)

    def __init__(self, n):
        self.left = n


def _key(k):
    if isinstance(k, str):
        return k
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    np = sys.modules.get("numpy")
    if np is not None and isinstance(k, np.generic):
        k = k.item()
    if isinstance(k, int):
        return str(k)
    if isinstance(k, float):
        return repr(k)
    if isinstance(k, (datetime.date, datetime.time)):
        return k.isoformat()
    if isinstance(k, uuid.UUID):
        return str(k)
    if isinstance(k, enum.Enum):
        return _key(k.value)
    raise Unsupported(type(k).__name__)


def convert(v, budget=None, depth=0):
    """The strict-JSON value of v; raises Unsupported."""
    if budget is None:
        budget = _Budget(MAX_NODES)
    budget.left -= 1
    if budget.left < 0 or depth > MAX_DEPTH:
        raise Unsupported("too large")
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return finite(v)
    if isinstance(v, (list, tuple)):
        return [convert(x, budget, depth + 1) for x in v]
    if isinstance(v, dict):
        return {_key(k): convert(x, budget, depth + 1) for k, x in v.items()}
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(v, np.ndarray):
            budget.left -= v.size
            if budget.left < 0:
                raise Unsupported("too large")
            if v.dtype.kind in "biu":
                return v.tolist()
            return convert(v.tolist(), budget, depth)
        if isinstance(v, np.datetime64):
            return None if np.isnat(v) else _datetime64(v)
        if isinstance(v, np.timedelta64):
            raise Unsupported("timedelta64")
        if isinstance(v, np.generic):
            return convert(v.item(), budget, depth)
    pd = sys.modules.get("pandas")
    if pd is not None and (v is pd.NaT or v is pd.NA):
        return None
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return iso(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, enum.Enum):
        return convert(v.value, budget, depth + 1)
    if isinstance(v, decimal.Decimal):
        return finite(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: convert(getattr(v, f.name), budget, depth + 1)
                for f in dataclasses.fields(v)}
    raise Unsupported(type(v).__name__)


def _datetime64(v):
    """ISO 8601 text of a numpy datetime64 (not NaT), to the microsecond."""
    item = v.astype("datetime64[us]").item()
    if isinstance(item, datetime.datetime):
        return item.isoformat()
    return str(sys.modules["numpy"].datetime_as_string(v))


def container_json(obj):
    """application/json of a list or dict (the formatter's printer):
    (value, {"expanded": True}) or None."""
    method = getattr(type(obj), "_repr_json_", None)
    if method is not None:
        return method(obj)
    try:
        return convert(obj), {"expanded": True}
    except (Unsupported, RecursionError, ValueError, TypeError, OverflowError):
        return None
