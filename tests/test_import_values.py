"""The values the importer hands the writer are the parsed values, whatever the columns hold,
however it shares equal texts between rows."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from features.importer import _db_values


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

    from features.importer import _row_hash

    frame = pd.DataFrame({"a": ["x", None, "福建省", "x"] * 50, "b": pd.to_datetime(["2024-03-05", None] * 100)})
    digest = pd.util.hash_pandas_object(frame, index=False, categorize=False).to_numpy()
    assert _row_hash(frame).tolist() == np.char.mod("%016x", digest).tolist()
    assert _row_hash(frame.iloc[:0]).tolist() == []
