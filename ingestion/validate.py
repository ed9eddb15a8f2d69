"""Checking a chunk of a contract file against its table: every column parsed by its rule
(repeating values parsed once each), the cases' own checks, and keys used twice in a file.

Each row's first fault, in column order, is the one reported.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ingestion import parsing
from ingestion.contracts import Column, Table
from ingestion.identifiers import parse_id_number, parse_phone
from ingestion.synonyms import Synonyms
from ingestion.table_file import RawTable

# kind -> the parser of a kind whose rule needs nothing of the column but its text
_PARSERS: dict[str, Callable[[pd.Series], parsing.Parsed]] = {
    "amount": parsing.parse_amount,
    "date": parsing.parse_date,
    "timestamp": parsing.parse_timestamp,
    "bool": parsing.parse_bool,
    "phone": parse_phone,
    "rate": parsing.parse_rate,
}
# A refused value is quoted back only when it cannot be personal data: digits and the signs of
# amounts, dates and times, without a run of seven digits (a phone or ID number moved into
# another column by a shifted row).
_SHOWABLE = re.compile(r"^[0-9.,:/\-+%¥元年月日时分秒TZ ]{1,40}$")
_LONG_DIGITS = re.compile(r"\d{7}")


def _showable(text: str) -> bool:
    return bool(_SHOWABLE.match(text)) and not _LONG_DIGITS.search(text)


def _parse_column(column: Column, text: pd.Series, today: dt.date, choices: dict[str, str] | None) -> parsing.Parsed:
    kind = column.kind
    if kind in _PARSERS:
        return _PARSERS[kind](text)
    if kind == "id_number":
        return parse_id_number(text, today)
    if kind == "enum":
        assert choices is not None
        return parsing.parse_enum(text, choices)
    if kind == "int":
        return parsing.parse_int(text, minimum=int(column.low or 0))
    if kind == "float":
        return parsing.parse_float(
            text,
            column.low if column.low is not None else -np.inf,
            column.high if column.high is not None else np.inf,
            low_open=column.low_open,
        )
    if kind == "list":
        return parsing.parse_list(text, choices)
    return parsing.parse_string(text, max_length=255)


@dataclass
class Validated:
    """Parsed values of a file and the first fault of each row (NA where none)."""

    values: pd.DataFrame
    error_column: pd.Series
    error_reason: pd.Series
    blank: np.ndarray | None = None  # rows with no value in any contract column

    def reject(self, mask: pd.Series | np.ndarray, column: str, reason: str | pd.Series) -> None:
        """Record ``reason`` for rows in ``mask`` that have no fault yet."""
        if isinstance(mask, pd.Series):
            mask = mask.reindex(self.values.index, fill_value=False).fillna(False).astype(bool)
        target = pd.Series(np.asarray(mask, dtype=bool), index=self.values.index) & self.error_column.isna()
        self.error_column.loc[target] = column
        if isinstance(reason, pd.Series):
            self.error_reason.loc[target] = reason.loc[target]
        else:
            self.error_reason.loc[target] = reason

    @property
    def ok(self) -> pd.Series:
        return self.error_column.isna()


_DISTINCT_MIN_ROWS = 1000


def _distinct(cells: pd.Series) -> tuple[np.ndarray, pd.Series] | None:
    """For a column that repeats its values (dates, products, rates, courts): the position of
    each row's value among the distinct ones, and the distinct values with NA last. None for
    a column of mostly distinct values, where finding the repeats costs more than it saves.
    """
    if len(cells) < _DISTINCT_MIN_ROWS or cells.iloc[:1000].nunique(dropna=False) > 900:
        return None
    codes, uniques = _factorized(cells)
    if len(uniques) > len(cells) // 4:
        return None
    distinct = pd.concat(
        [pd.Series(uniques, dtype=cells.dtype), pd.Series([pd.NA], dtype=cells.dtype)], ignore_index=True
    )
    return codes, distinct


def _factorized(values: pd.Series | np.ndarray) -> tuple[np.ndarray, Any]:
    """Each value's position among the distinct values (missing ones: the position after the
    last), and the distinct values."""
    codes, uniques = pd.factorize(values)
    return np.where(codes < 0, len(uniques), codes).astype(np.int32), uniques


def _spread(series: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """Values of distinct cells back on the rows that hold them."""
    return series.take(codes).set_axis(index)


def _creditor_spellings(table: Table, raw: RawTable, synonyms: Synonyms | None) -> pd.Series | None:
    """Each row's creditor, when the table has one and some creditor has spellings of its own."""
    if synonyms is None or not synonyms.creditors or "creditor" not in table.by_name:
        return None
    return parsing.normalise_text(raw.frame["creditor"])


def validate(table: Table, raw: RawTable, today: dt.date | None = None, synonyms: Synonyms | None = None) -> Validated:
    """Parse every column by its contract rule; the first fault per row, in column order.

    Each value is parsed per cell, so a column that repeats its values has only its distinct
    values parsed (see :func:`_distinct`), with the same results. Enum values are read through
    ``synonyms`` (the contract's spellings alone without it), a creditor's own spellings for
    its rows. ``today`` bounds birth dates (default: today).
    """
    today = today or dt.date.today()
    creditors = _creditor_spellings(table, raw, synonyms)
    index = raw.frame.index
    values = pd.DataFrame(index=index)
    result = Validated(values, pd.Series(pd.NA, index=index, dtype=object), pd.Series(pd.NA, index=index, dtype=object))
    present = np.zeros(len(index), dtype=bool)
    for column in table.columns:
        cells = raw.frame[column.name]
        distinct = _distinct(cells)
        text = parsing.normalise_text(cells if distinct is None else distinct[1])
        given = text.notna()
        if column.default is not None:
            text = text.fillna(column.default)
        choices = (
            None if column.choices is None else (synonyms.choices(column) if synonyms is not None else column.choices)
        )
        parsed = _parse_column(column, text, today, choices)
        if distinct is not None:
            codes = distinct[0]
            text, given = _spread(text, codes, index), _spread(given, codes, index)
            parsed = parsing.Parsed(_spread(parsed.values, codes, index), _spread(parsed.errors, codes, index))
        if creditors is not None and choices is not None:
            parsed = _per_creditor(column, text, today, creditors, synonyms, parsed)
        present |= given.to_numpy()
        values[column.name] = parsed.values
        label = table.label(column.name)
        faulty = parsed.errors.notna()
        if faulty.any():
            reason = label + " " + parsed.errors[faulty]
            if not (column.personal or column.kind in ("enum", "list")):
                shown = text[faulty].astype(str)
                quoted = shown.map(_showable)
                reason = reason.where(~quoted, reason + ": '" + shown + "'")
            result.reject(faulty, column.name, reason.reindex(index))
        if column.required:
            missing = text.isna()
            if missing.any():
                result.reject(missing, column.name, f"{label} is required")
    result.blank = ~present
    return result


def _per_creditor(
    column: Column,
    text: pd.Series,
    today: dt.date,
    creditors: pd.Series,
    synonyms: Synonyms | None,
    parsed: parsing.Parsed,
) -> parsing.Parsed:
    """``parsed`` with the rows of each creditor that has spellings of its own parsed again by them."""
    assert synonyms is not None
    values, errors = parsed.values.copy(), parsed.errors.copy()
    for name in set(synonyms.creditors) & set(creditors.dropna().unique()):
        if column.name not in synonyms.creditors[name]:
            continue
        rows = (creditors == name).fillna(False).to_numpy(dtype=bool)
        again = _parse_column(column, text[rows], today, synonyms.choices(column, name))
        values.loc[rows], errors.loc[rows] = again.values, again.errors
    return parsing.Parsed(values, errors)


def _check_cases(table: Table, result: Validated, today: dt.date) -> None:
    v = result.values
    person = v["debtor_type"] == "person"
    # id_number: required for persons; companies may carry another registration number.
    result.reject(
        person & v["id_number"].isna() & result.ok, "id_number", f"{table.label('id_number')} is required for a person"
    )
    loan, overdue = v["loan_date"], v["overdue_since"]
    result.reject(
        overdue < loan, "overdue_since", f"{table.label('overdue_since')} is before {table.label('loan_date')}"
    )
    result.reject(overdue > pd.Timestamp(today), "overdue_since", f"{table.label('overdue_since')} is in the future")
    result.reject(v["loan_date"] > pd.Timestamp(today), "loan_date", f"{table.label('loan_date')} is in the future")


def _company_ids(raw: RawTable, result: Validated) -> None:
    """Companies keep their registration number as written (not a resident ID)."""
    company = (result.values["debtor_type"] == "company").fillna(False)
    if not company.any():
        return
    text = parsing.normalise_text(raw.frame["id_number"]).str.replace(r"\s", "", regex=True).str.upper()
    result.values.loc[company, "id_number"] = text[company].astype(object)
    cleared = company & (result.error_column == "id_number")
    result.error_column.loc[cleared] = pd.NA
    result.error_reason.loc[cleared] = pd.NA


def _key_text(table: Table, values: pd.DataFrame) -> list[str]:
    """Each row's key as one string (parsed values), to find a key used twice in a file."""
    keys = values[list(table.key)]
    text = keys.iloc[:, 0].astype(str)
    for name in keys.columns[1:]:
        text = text + "\x1f" + keys[name].astype(str)
    return text.tolist()


def _duplicates(table: Table, keys: list[str], rows: np.ndarray, seen: dict[str, int]) -> dict[int, str]:
    """Positions of rows whose key an earlier row of the file used (``seen``: key -> first row).

    Only rows without another fault take part, so a duplicate is the last check of a row.
    """
    names = ", ".join(table.key)
    found = {}
    for position, (key, row) in enumerate(zip(keys, rows.tolist(), strict=True)):
        first = seen.setdefault(key, row)
        if first != row:
            found[position] = f"duplicate key ({names}): row {first} has the same"
    return found
