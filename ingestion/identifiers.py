"""Personal identifiers as banks' files hold them: resident ID numbers and mainland mobiles.

Owns the ID number's check character (ISO 7064 MOD 11-2), its birth date (characters 7 to 14:
a real calendar day, not in the future), and the numbers Excel turned into scientific
notation (``4.10102E+17``), whose digits are lost and which are therefore refused rather than
stored as a wrong number. Reasons never repeat the identifier.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ingestion.parsing import Parsed, _no_errors, _with_errors

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_SCIENTIFIC = r"[-+]?\d+(?:\.\d*)?[eE][-+]?\d+"
LOST_DIGITS = (
    "was turned into a number by Excel, which kept only its first digits (like 4.10102E+17): "
    "format the column as text in Excel and export it again"
)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def id_check_characters(first17: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters (ASCII bytes) of digit rows (n, 17) with values 0-9."""
    return _ID_CHECK[(first17 * _ID_WEIGHTS).sum(axis=1) % 11]


def _digits(numbers: list[str]) -> np.ndarray:
    return np.frombuffer("".join(numbers).encode("ascii"), dtype=np.uint8).reshape(-1, 18)


def id_checksum_ok(numbers: list[str] | np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check of 18-character resident ID numbers (already well-formed)."""
    if len(numbers) == 0:
        return np.zeros(0, dtype=bool)
    return _checksum_ok(_digits(list(numbers)))


def _checksum_ok(raw: np.ndarray) -> np.ndarray:
    return raw[:, 17] == id_check_characters(raw[:, :17].astype(np.int64) - ord("0"))


def _birth_dates(raw: np.ndarray, today: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """Whether each ID's birth date (YYYYMMDD, characters 7-14) is no real day from 1900 on,
    and whether it lies after ``today``."""
    ymd = (raw[:, 6:14].astype(np.int64) - ord("0")) @ (10 ** np.arange(7, -1, -1))
    year, month, day = ymd // 10000, ymd // 100 % 100, ymd % 100
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last_day = _DAYS_IN_MONTH[np.clip(month, 0, 12)] + ((month == 2) & leap)
    impossible = (year < 1900) | (month < 1) | (month > 12) | (day < 1) | (day > last_day)
    future = ~impossible & (ymd > today.year * 10000 + today.month * 100 + today.day)
    return impossible, future


def parse_id_number(column: pd.Series, today: dt.date | None = None) -> Parsed:
    """18-character resident ID numbers; a trailing ``x`` is upper-cased; checksum verified, and
    the birth date a real day, not after ``today`` (default: today)."""
    errors = _no_errors(column.index)
    text = column.astype("string[pyarrow]").str.replace(r"\s", "", regex=True).str.upper()
    present = text.notna()
    shaped = text.str.fullmatch(r"\d{17}[\dX]").fillna(False).astype(bool)
    misshapen = present & ~shaped
    if misshapen.any():  # the common case, every number well-formed, skips this
        scientific = text[misshapen].str.fullmatch(_SCIENTIFIC).fillna(False).astype(bool)
        errors = _with_errors(errors, scientific.reindex(text.index, fill_value=False), LOST_DIGITS)
        errors = _with_errors(errors, misshapen, "is not an 18-character resident ID number")
    rows = np.flatnonzero(shaped.to_numpy())
    if rows.size:
        raw = _digits(text.iloc[rows].tolist())
        valid = _checksum_ok(raw)
        impossible, future = _birth_dates(raw, today or dt.date.today())
        for faulty, reason in (
            (~valid, "fails the ID number checksum"),
            (valid & impossible, "has a birth date that does not exist"),
            (valid & future, "has a birth date in the future"),
        ):
            if faulty.any():
                mask = np.zeros(len(text), dtype=bool)
                mask[rows] = faulty
                errors = _with_errors(errors, pd.Series(mask, index=text.index), reason)
    return Parsed(text.where(errors.isna() & present).astype(object), errors)


def parse_phone(column: pd.Series) -> Parsed:
    """Mainland mobiles: 11 digits starting 1[3-9]; ``+86``, spaces and dashes tolerated."""
    errors = _no_errors(column.index)
    text = column.astype("string[pyarrow]").str.replace(r"[\s\-()]", "", regex=True)
    prefixed = text.str.fullmatch(r"(?:\+86|0086|86)1\d{10}").fillna(False).astype(bool)
    text = text.where(~prefixed, text.str.slice(-11))
    present = text.notna()
    ok = text.str.fullmatch(r"1[3-9]\d{9}").fillna(False).astype(bool)
    wrong = present & ~ok
    if wrong.any():
        scientific = text[wrong].str.fullmatch(_SCIENTIFIC).fillna(False).astype(bool)
        errors = _with_errors(errors, scientific.reindex(text.index, fill_value=False), LOST_DIGITS)
        errors = _with_errors(errors, wrong, "is not an 11-digit mainland mobile number")
    return Parsed(text.where(ok).astype(object), errors)
