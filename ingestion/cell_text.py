"""Typed cells (an xlsx workbook's or a parquet file's values) as the text the parsers read.

One rule, :func:`_cell_text`, per cell; :func:`_column_text` gives the same text for a whole
Arrow column at once wherever it can, and falls back to the rule per cell elsewhere.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _cell_text(value: object) -> str:
    """Canonical text of a typed cell (xlsx or parquet) before parsing."""
    if value is None or value is pd.NaT or value is pd.NA:  # NaT, NA: empty cells of typed columns
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if abs(float(value)) >= 1e15:
            # Beyond 15 digits Excel and a double lose digits: an ID number typed as a number. As
            # Excel shows it, so that no one takes the rounded digits for the real ones.
            return f"{float(value):.15G}"
        if float(value).is_integer():
            return str(int(value))
        # Excel keeps binary doubles: 0.1 + 0.2 shows as 0.3; 9 decimals remove that noise.
        text = repr(round(float(value), 9))
        return format(float(text), "f") if "e" in text else text
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.isoformat(sep=" ")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, pd.Timestamp):
        return str(value)
    return str(value)


_DAY_1000, _DAY_9999 = (np.datetime64(d, "D").astype(np.int64) for d in ("1000-01-01", "9999-12-31"))


def _column_text(column: pa.ChunkedArray) -> np.ndarray:
    """``_cell_text`` of each cell, computed for the whole column where that gives the same text.

    Integers: pandas turns a column with nulls into doubles, whose text is the integer's below
    1e15. Decimals of up to 6 places: Python writes them without an exponent, as Arrow does.
    Dates and naive timestamps of years 1000 to 9999: ISO text to the second (the fraction
    dropped, as ``strftime`` does). Doubles: see :func:`_double_text`. Any other type (time
    zones, lists, ...) goes per value.
    """
    kind = column.type
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        and _below(column, 1e15)
        or pa.types.is_decimal(kind)
        and 0 <= kind.scale <= 6
    ):
        return pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
    if pa.types.is_date32(kind):
        days = pc.min_max(column.cast(pa.int32()))
        if days["min"].as_py() is None or (days["min"].as_py() >= _DAY_1000 and days["max"].as_py() <= _DAY_9999):
            return pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
    elif pa.types.is_timestamp(kind) and kind.tz is None:
        # Floored to the second, as are the calendar fields strftime writes.
        ticks = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        known = column.is_valid().to_numpy(zero_copy_only=False)
        per_second = {"s": 1, "ms": 1000, "us": 10**6, "ns": 10**9}[kind.unit]
        seconds = np.floor_divide(ticks[known], per_second)
        if seconds.size == 0 or (seconds.min() >= _DAY_1000 * 86400 and seconds.max() < (_DAY_9999 + 1) * 86400):
            text = np.full(len(column), "", dtype=object)
            moments = pa.array(seconds, pa.timestamp("s"))
            text[known] = pc.cast(moments, pa.string()).to_numpy(zero_copy_only=False)  # "YYYY-MM-DD hh:mm:ss"
            return text
    elif pa.types.is_floating(kind) and not pa.types.is_float16(kind):
        return _double_text(column)
    return np.array([_cell_text(v) for v in column.to_pandas().tolist()], dtype=object)


def _double_text(column: pa.ChunkedArray) -> np.ndarray:
    """``_cell_text`` of doubles: whole ones below 1e15 as integers, the rest rounded to 9 places.

    Below 1e3, x * 1e9 is within 1e-4 of its exact value, so when its fraction is not near a
    half, rint(x * 1e9) / 1e9 is the double Python's correctly rounded ``round(x, 9)`` gives.
    Below 4e6 a double whose shortest text has at most 9 decimals is already rounded (its ulp is
    under 1e-9). From 1e-4 on Python writes these in their shortest digits without an
    exponent, as Arrow's cast to string does. Other values go per value.
    """
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)  # NaN for nulls
    text = np.full(len(values), "", dtype=object)
    known = ~np.isnan(values)
    magnitude = np.where(known, np.abs(values), 0.0)
    whole = known & (magnitude < 1e15) & (values == np.floor(values))
    text[whole] = values[whole].astype(np.int64).astype(str).astype(object)
    near = np.flatnonzero(known & ~whole & (magnitude < 4e6))
    scaled = values[near] * 1e9
    clear = (magnitude[near] < 1e3) & (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-3)
    rounded = np.where(clear, np.rint(scaled) / 1e9, values[near])
    shortest = pc.cast(pa.array(rounded), pa.string())
    point = pc.find_substring(shortest, ".")
    decimals = pc.subtract(pc.utf8_length(shortest), pc.add(point, 1))
    plain = pc.and_(
        pc.and_(pc.invert(pc.match_substring(shortest, "e")), pc.greater_equal(point, 0)), pc.less_equal(decimals, 9)
    ).to_numpy(zero_copy_only=False) & (np.abs(rounded) >= 1e-4)
    text[near[plain]] = shortest.filter(pa.array(plain)).to_numpy(zero_copy_only=False)
    rest = known & ~whole
    rest[near[plain]] = False
    text[rest] = [_cell_text(v) for v in values[rest].tolist()]
    return text


def _below(column: pa.ChunkedArray, bound: float) -> bool:
    """Whether a column has no nulls or every value's magnitude is below ``bound``."""
    if column.null_count == 0:
        return True
    extremes = pc.min_max(column)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    return low is None or (-bound < low and high < bound)
