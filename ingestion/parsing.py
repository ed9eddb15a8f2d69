"""Vectorised parsers for the value conventions of the contract tables (CONTRACTS.md).

Every parser takes a column as a pandas Series of trimmed strings (missing values as NA) and
returns a :class:`Parsed`: the canonical values and, per row, the reason the value was refused
(NA where it was fine or missing). Missing values are the caller's business (required or
default). Reasons never repeat the value of personal identifiers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from concord.outputs import restore_text

SHANGHAI = "Asia/Shanghai"
MAX_AMOUNT_DIGITS = 13  # integer digits of an amount in CNY; SQLite keeps 15 significant digits

# Full-width forms, ideographic space and the yuan sign variants people type in Excel.
_NEEDS_NFKC = "[\u3000\uff01-\uff5e\uffe0-\uffee]"


@dataclass
class Parsed:
    """Parsed column: canonical ``values`` and per-row ``errors`` (NA where none)."""

    values: pd.Series
    errors: pd.Series


def _no_errors(index: pd.Index) -> pd.Series:
    return pd.Series(pd.NA, index=index, dtype="object")


def _with_errors(errors: pd.Series, mask: pd.Series, reason: str | pd.Series) -> pd.Series:
    """Set ``reason`` where ``mask`` holds and no earlier reason exists."""
    target = mask.fillna(False).astype(bool) & errors.isna()
    if isinstance(reason, pd.Series):
        errors.loc[target] = reason.loc[target]
    else:
        errors.loc[target] = reason
    return errors


def extract(column: pd.Series, pattern: str) -> pd.DataFrame:
    """Named groups of ``pattern`` (RE2 syntax) per row; NA where absent or unmatched.

    pandas' ``str.extract`` loops in Python for Arrow strings; Arrow's kernel does not.
    """
    array = pa.array(column.astype("string[pyarrow]"))
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    found = pc.extract_regex(array, pattern)
    valid = found.is_valid()
    out = {}
    for position, group in enumerate(found.type):
        child = found.field(position)
        keep = pc.and_(valid, pc.not_equal(child, ""))
        child = pc.if_else(keep, child, pa.scalar(None, child.type))
        out[group.name] = pd.Series(pd.arrays.ArrowStringArray(child.cast(pa.large_string())), index=column.index)
    return pd.DataFrame(out, index=column.index)


def normalise_text(column: pd.Series) -> pd.Series:
    """Take off the apostrophe Concord puts before formula-like text (a rejected-rows file sent
    back), trim, fold full-width characters (NFKC) and turn empty cells into NA.

    Only cells that begin with an apostrophe or contain full-width forms pay for more than a
    vectorised look.
    """
    text = column.astype("string[pyarrow]")
    quoted = text.str.startswith("'").fillna(False).astype(bool)
    if quoted.any():
        text = text.copy()
        text.loc[quoted] = [restore_text(value) for value in text[quoted]]
    text = text.str.strip()
    wide = text.str.contains(_NEEDS_NFKC, regex=True).fillna(False).astype(bool)
    if wide.any():
        text = text.copy()
        text.loc[wide] = [unicodedata.normalize("NFKC", value).strip() for value in text[wide]]
    return text.mask(text == "")


def parse_amount(column: pd.Series) -> Parsed:
    """CNY amounts: ``12345.6``, ``12,345.60``, ``¥12,345.60``, full-width digits.

    Values are canonical decimal strings with two places (``"12345.60"``), never floats.
    """
    errors = _no_errors(column.index)
    text = column.astype("string[pyarrow]")
    cleaned = text.str.replace(r"^(?:¥|￥|CNY|RMB)\s*|\s*(?:元|CNY|RMB)$|[,\s]", "", regex=True)
    parts = extract(cleaned, r"^(?P<sign>[-+]?)(?P<int>\d*)(?:\.(?P<frac>\d*))?$")
    shaped = cleaned.str.fullmatch(r"[-+]?\d*(?:\.\d*)?").fillna(False).astype(bool)
    present = cleaned.notna()
    bad = present & (~shaped | (parts["int"].fillna("") + parts["frac"].fillna("") == ""))
    errors = _with_errors(errors, bad, "is not an amount (expected e.g. 12345.60)")
    errors = _with_errors(errors, present & (parts["sign"] == "-"), "must not be negative")
    frac = parts["frac"].fillna("").str.rstrip("0")
    errors = _with_errors(errors, present & (frac.str.len() > 2), "has more than 2 decimal places")
    integer = parts["int"].fillna("").str.lstrip("0")
    errors = _with_errors(errors, present & (integer.str.len() > MAX_AMOUNT_DIGITS), "is too large for an amount")
    good = present & errors.isna()
    values = pd.Series(pd.NA, index=column.index, dtype="object")
    integer_part = integer.where(integer != "", "0")
    canonical = integer_part + "." + frac.str.pad(2, side="right", fillchar="0")
    values.loc[good] = canonical.loc[good].astype(object)
    return Parsed(values, errors)


_DATE = (
    r"^(?P<y>\d{4})(?:[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})日?|(?P<m8>\d{2})(?P<d8>\d{2}))"
    r"(?:[ T](?P<H>\d{1,2})(?:[:时](?P<M>\d{1,2}))?(?:[:分](?P<S>\d{1,2})(?:\.(?P<f>\d+))?秒?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)
_SERIAL = r"^(?P<serial>\d{1,5}(?:\.\d+)?)$"
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def _parse_datetime_parts(column: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Naive datetimes from the accepted spellings; returns (values, has_time, tz_offset, bad)."""
    text = column.astype("string[pyarrow]")
    # Fast path: most files spell every date the ISO way, which pandas parses in C.
    iso = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    if iso.notna().sum() == text.notna().sum():
        none = pd.Series(pd.NA, index=column.index, dtype=object)
        untimed = pd.Series(False, index=column.index)
        return iso.astype("datetime64[ns]"), untimed, none, untimed.copy()
    iso_time = pd.to_datetime(text, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    if iso_time.notna().sum() == text.notna().sum():
        none = pd.Series(pd.NA, index=column.index, dtype=object)
        return iso_time.astype("datetime64[ns]"), text.notna(), none, pd.Series(False, index=column.index)
    iso_date = iso.notna()
    timed = iso_time.notna() & ~iso_date
    iso_any = iso_date | timed
    if not iso_any.any():
        return _datetime_parts_by_pattern(text)
    # Mixed spellings: the ISO cells as parsed above, only the others through the patterns.
    rest = ~iso_any
    some_values, some_time, some_tz, some_bad = _datetime_parts_by_pattern(text[rest])
    values = iso.astype("datetime64[ns]").where(iso_date, iso_time.astype("datetime64[ns]"))
    values.loc[rest] = some_values
    has_time = timed.copy()
    has_time.loc[rest] = some_time.astype(bool)
    tz = pd.Series(pd.NA, index=column.index, dtype=object)
    tz.loc[rest] = some_tz.astype(object)
    bad = pd.Series(False, index=column.index)
    bad.loc[rest] = some_bad.astype(bool)
    # The patterns refuse years outside 1900-2100; in a mixed column, so for the ISO cells.
    bad |= iso_any & ((values.dt.year < 1900) | (values.dt.year > 2100))
    return values, has_time, tz, bad


def _datetime_parts_by_pattern(text: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Naive datetimes from any accepted spelling (regular expressions; slower than ISO)."""
    column = text
    parts = extract(text, _DATE)
    serial = extract(text, _SERIAL)["serial"]
    month = parts["m"].fillna(parts["m8"])
    day = parts["d"].fillna(parts["d8"])
    frame = pd.DataFrame(
        {
            "year": pd.to_numeric(parts["y"], errors="coerce"),
            "month": pd.to_numeric(month, errors="coerce"),
            "day": pd.to_numeric(day, errors="coerce"),
            "hour": pd.to_numeric(parts["H"], errors="coerce").fillna(0),
            "minute": pd.to_numeric(parts["M"], errors="coerce").fillna(0),
            "second": pd.to_numeric(parts["S"], errors="coerce").fillna(0),
        }
    )
    matched = frame["year"].notna()
    values = pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns]")
    if matched.any():
        values.loc[matched] = pd.to_datetime(frame.loc[matched], errors="coerce")
    serial_days = pd.to_numeric(serial, errors="coerce")
    is_serial = serial_days.notna() & ~matched & (serial_days >= 1)
    if is_serial.any():
        # Excel's day 60 is the fictitious 1900-02-29; serials after it count from 1899-12-30.
        values.loc[is_serial] = _EXCEL_EPOCH + pd.to_timedelta(serial_days[is_serial], unit="D")
        values.loc[is_serial] = values.loc[is_serial].dt.round("s")
    present = text.notna()
    bad = present & values.isna()
    out_of_range = present & values.notna() & ((values.dt.year < 1900) | (values.dt.year > 2100))
    has_time = parts["H"].notna() | (is_serial & (serial_days % 1 != 0))
    return values, has_time, parts["tz"], bad | out_of_range


def parse_date(column: pd.Series) -> Parsed:
    """Calendar dates: ``2024-03-05``, ``2024/3/5``, ``2024年3月5日``, ``20240305``, Excel serials.

    Values are ``datetime64[ns]`` at midnight (NaT where missing or refused). A time of day
    other than midnight is refused: a date column holds dates.
    """
    values, _has_time, tz, bad = _parse_datetime_parts(column)
    errors = _no_errors(column.index)
    errors = _with_errors(errors, bad, "is not a date (expected e.g. 2024-03-05)")
    with_time = values.notna() & (values != values.dt.normalize())
    errors = _with_errors(errors, with_time | tz.notna(), "is a timestamp, not a date")
    values = values.where(errors.isna())
    return Parsed(values, errors)


def parse_timestamp(column: pd.Series, naive_zone: str = SHANGHAI) -> Parsed:
    """Timestamps, stored in UTC: naive input is Asia/Shanghai; ``Z``/``+08:00`` honoured.

    Values are tz-aware ``datetime64[ns, UTC]``.
    """
    values, _has_time, tz, bad = _parse_datetime_parts(column)
    errors = _no_errors(column.index)
    errors = _with_errors(errors, bad, "is not a timestamp (expected e.g. 2024-03-05 14:30:00)")
    result = pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns, UTC]")
    naive = values.notna() & tz.isna() & errors.isna()
    if naive.any():
        local = values[naive].dt.tz_localize(naive_zone, ambiguous="NaT", nonexistent="NaT")
        result.loc[naive] = local.dt.tz_convert("UTC")
    aware = values.notna() & tz.notna() & errors.isna()
    if aware.any():
        offset = tz[aware].str.replace(":", "", regex=False)
        sign = np.where(offset.str.startswith("-"), -1, 1)
        hours = pd.to_numeric(offset.str.slice(1, 3), errors="coerce").fillna(0)
        minutes = pd.to_numeric(offset.str.slice(3, 5), errors="coerce").fillna(0)
        shift = pd.to_timedelta(sign * (hours * 60 + minutes), unit="min")
        shift = shift.where(tz[aware] != "Z", pd.Timedelta(0))
        result.loc[aware] = (values[aware] - shift.values).dt.tz_localize("UTC")
    errors = _with_errors(errors, values.notna() & result.isna(), "does not exist in local time")
    return Parsed(result, errors)


def parse_enum(column: pd.Series, choices: Mapping[str, str]) -> Parsed:
    """Map spellings (English or Chinese, any case) to canonical enum values.

    A refused value is not repeated in the reason: a row whose cells moved (a name in the
    product column) would put personal data in the report; the rejected-rows file shows it.
    """
    errors = _no_errors(column.index)
    lookup = {key.lower(): value for key, value in choices.items()}
    lowered = column.astype("string[pyarrow]").str.lower()
    values = lowered.map(lookup, na_action="ignore").astype(object)
    expected = ", ".join(sorted(set(choices.values())))
    bad = column.notna() & values.isna()
    errors = _with_errors(errors, bad, f"is not one of: {expected}")
    return Parsed(values.where(values.notna(), pd.NA), errors)


_TRUE = {"true", "1", "1.0", "yes", "y", "t", "是", "有", "真"}
_FALSE = {"false", "0", "0.0", "no", "n", "f", "否", "无", "没有", "假"}


def parse_bool(column: pd.Series) -> Parsed:
    """Booleans: true/false, 1/0, yes/no, 是/否, 有/无."""
    choices = {**dict.fromkeys(_TRUE, "true"), **dict.fromkeys(_FALSE, "false")}
    parsed = parse_enum(column, choices)
    errors = _no_errors(column.index)
    errors = _with_errors(errors, parsed.errors.notna(), "is not a yes/no value (true/false, 是/否)")
    values = parsed.values.map({"true": True, "false": False}, na_action="ignore")
    return Parsed(values.astype(object), errors)


def parse_int(column: pd.Series, minimum: int = 0) -> Parsed:
    """Whole numbers (``3`` or Excel's ``3.0``) no smaller than ``minimum``."""
    errors = _no_errors(column.index)
    text = column.astype("string[pyarrow]").str.replace(r"[,\s]", "", regex=True)
    number = pd.to_numeric(text.str.replace(r"\.0+$", "", regex=True), errors="coerce")
    present = column.notna()
    whole = text.str.fullmatch(r"[-+]?\d+(?:\.0+)?").fillna(False).astype(bool)
    errors = _with_errors(errors, present & ~whole, "is not a whole number")
    errors = _with_errors(errors, present & (number < minimum), f"must be at least {minimum}")
    values = number.where(errors.isna() & present).astype("Int64")
    return Parsed(values, errors)


def parse_float(column: pd.Series, low: float, high: float, *, low_open: bool = False) -> Parsed:
    """Numbers in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    errors = _no_errors(column.index)
    number = pd.to_numeric(column.astype("string[pyarrow]"), errors="coerce").astype("float64")
    present = column.notna()
    errors = _with_errors(errors, present & number.isna(), "is not a number")
    below = number <= low if low_open else number < low
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    errors = _with_errors(errors, present & (below | (number > high)), f"must be in {interval}")
    return Parsed(number.where(errors.isna()), errors)


def parse_rate(column: pd.Series) -> Parsed:
    """Annual rates as a fraction in [0, 1]: ``0.18`` or ``18%``; canonical decimal strings."""
    errors = _no_errors(column.index)
    text = column.astype("string[pyarrow]").str.replace(r"\s", "", regex=True)
    percent = text.str.endswith("%").fillna(False).astype(bool)
    digits = text.str.rstrip("%").str.fullmatch(r"\d+(?:\.\d+)?|\.\d+").fillna(False).astype(bool)
    present = column.notna()
    errors = _with_errors(errors, present & ~digits, "is not a rate (expected 0.18 or 18%)")
    number = pd.to_numeric(text.str.rstrip("%").where(digits), errors="coerce").astype("float64")
    fraction = number.where(~percent, number / 100)
    errors = _with_errors(errors, present & digits & (fraction > 1), "must be in [0, 1] (or a percentage like 18%)")
    decimals = text.str.rstrip("%").str.extract(r"\.(\d*)$", expand=False).str.len().fillna(0)
    too_fine = present & digits & (decimals > np.where(percent, 4, 6))
    errors = _with_errors(errors, too_fine, "has more than 6 decimal places")
    values = pd.Series(pd.NA, index=column.index, dtype="object")
    good = present & errors.isna()
    if good.any():
        # At most 6 decimals in, so formatting the float to 6 places is exact.
        values.loc[good] = np.char.mod("%.6f", fraction[good].to_numpy(dtype=float)).astype(object)
    return Parsed(values, errors)


def parse_list(column: pd.Series, choices: Mapping[str, str] | None = None) -> Parsed:
    """Lists such as ``mandarin;minnan``; separators ``; ， 、 |`` accepted; canonical ``a;b``."""
    errors = _no_errors(column.index)
    values = pd.Series(pd.NA, index=column.index, dtype="object")
    lookup = {k.lower(): v for k, v in choices.items()} if choices else None
    expected = ", ".join(sorted(set(choices.values()))) if choices else ""
    for index, raw in column.dropna().items():
        items = [item.strip() for item in pd.Series([raw]).str.split(r"[;,|、，；]").iloc[0]]
        items = [item for item in items if item]
        if lookup is not None:
            unknown = [item for item in items if item.lower() not in lookup]
            if unknown:
                errors.loc[index] = f"has an item that is not one of: {expected}"
                continue
            items = [lookup[item.lower()] for item in items]
        else:
            items = [item.lower() for item in items]
        values.loc[index] = ";".join(dict.fromkeys(items))
    return Parsed(values, errors)


def parse_string(column: pd.Series, max_length: int = 255) -> Parsed:
    """Free text up to ``max_length`` characters."""
    errors = _no_errors(column.index)
    too_long = column.astype("string[pyarrow]").str.len() > max_length
    errors = _with_errors(errors, too_long, f"is longer than {max_length} characters")
    return Parsed(column.astype(object).where(errors.isna() & column.notna(), pd.NA), errors)
