"""The values the importer hands the writer are the parsed values, whatever the columns hold,
however it shares equal texts between rows."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ingestion.prepare import _db_values


@hsettings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["x", "福建省", ""]), st.text(max_size=4)), max_size=400))
def test_values_for_the_driver_are_unchanged_by_sharing(values) -> None:
    series = pd.Series(values * 2, dtype=object)
    expected = [None if pd.isna(v) else v for v in series.tolist()]
    assert _db_values(series, "string") == expected


def test_dates_and_timestamps_for_the_driver() -> None:
    days = pd.Series(pd.to_datetime(["2024-03-05", None, "2024-03-05", "1999-12-31"]))
    assert _db_values(days, "date") == ["2024-03-05", None, "2024-03-05", "1999-12-31"]
    moments = pd.Series(pd.to_datetime(["2024-03-05 14:30:00.5", None, "2024-03-05 14:30:00.5"], utc=True))
    assert _db_values(moments, "timestamp") == ["2024-03-05 14:30:00.500000", None, "2024-03-05 14:30:00.500000"]


def test_row_digest_is_pandas_digest_in_hex() -> None:
    import numpy as np

    from ingestion.prepare import _row_hash

    frame = pd.DataFrame({"a": ["x", None, "福建省", "x"] * 50, "b": pd.to_datetime(["2024-03-05", None] * 100)})
    digest = pd.util.hash_pandas_object(frame, index=False, categorize=False).to_numpy()
    assert _row_hash(frame).to_pylist() == np.char.mod("%016x", digest).tolist()
    assert _row_hash(frame.iloc[:0]).to_pylist() == []


# Spellings per kind of column, good and faulty, repeated over many rows.
_SPELLINGS = {
    "amount": ["12345.6", "¥12,345.60", "１２３.４５", "-5", "1.234", "abc", "", " 7 "],
    "date": [
        "2024-03-05",
        "2024/3/5",
        "2024年3月5日",
        "20240305",
        "45000",
        "2024-02-30",
        "1850-01-01",
        "2024-03-05 10:00:00",
        "x",
        "",
    ],
    "timestamp": [
        "2024-03-05 14:30:00",
        "2024-03-05T14:30:00+08:00",
        "2024-03-05Z",
        "2024/3/5 9:05",
        "2024-03-10 02:30:00",
        "nope",
        "",
    ],
    "enum": None,  # the column's own choices, plus a wrong one
    "int": ["3", "3.0", "-1", "2.5", "x", ""],
    "float": ["0.5", "1", "1.5", "-0.1", "x", ""],
    "bool": ["true", "否", "1", "maybe", ""],
    "id_number": ["11010519491231002X", "11010519491231002x", "110105194912310021", "123", ""],
    "phone": ["13812345678", "+86 138-1234-5678", "12345", ""],
    "list": ["mandarin;minnan", "粤语、mandarin", "klingon", ""],
    "rate": ["0.18", "18%", "1.5", "0.1234567", "x", ""],
    "string": ["福建省", "  x  ", "", "y" * 300],
}


def _repeating_pool(table, rows: int, seed: int):
    import numpy as np

    from ingestion.table_file import RawTable

    rng = np.random.default_rng(seed)
    columns = {}
    for column in table.columns:
        spellings = _SPELLINGS[column.kind]
        if spellings is None:
            spellings = [*list(column.choices or {})[:4], "bogus", ""]
        if column.kind == "list" and column.choices is None:
            spellings = ["a;b", "B|c", ""]
        columns[column.name] = rng.choice(np.array(spellings, dtype=object), rows)
    frame = pd.DataFrame(columns).astype("string[pyarrow]")
    return RawTable(frame, np.arange(2, rows + 2), rows + 1)


def test_parsing_distinct_values_gives_what_parsing_every_cell_gives(monkeypatch) -> None:
    """Columns that repeat their values are parsed once per distinct value: the parsed values
    and the first fault of every row are those of parsing each cell."""
    from ingestion import validate
    from ingestion.contracts import TABLES

    for seed, table in enumerate(TABLES.values()):
        raw = _repeating_pool(table, 3000, seed)
        assert validate._distinct(raw.frame[table.columns[0].name]) is not None  # the path under test
        distinct = validate.validate(table, raw)
        monkeypatch.setattr(validate, "_DISTINCT_MIN_ROWS", 10**9)
        every = validate.validate(table, raw)
        monkeypatch.undo()
        assert every.error_column.notna().any() and every.ok.any(), table.name
        pd.testing.assert_frame_equal(distinct.values, every.values, check_dtype=False)
        assert distinct.values.dtypes.to_dict() == every.values.dtypes.to_dict()
        pd.testing.assert_series_equal(distinct.error_column, every.error_column)
        pd.testing.assert_series_equal(distinct.error_reason, every.error_reason)
        assert (distinct.blank == every.blank).all()
