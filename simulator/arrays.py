"""Array and column helpers of the simulator: DataFrames without copies, categoricals without
hash tables, ASCII and vocabulary string columns, epoch days and handing freed memory back.

The simulated tables are large (millions of rows), so columns are built once and taken as
they are; nothing here draws random numbers.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

SHANGHAI_OFFSET = np.timedelta64(8, "h")  # local time minus UTC


def release_memory() -> None:
    """Hand freed heap memory back to the OS (glibc and Arrow's pool keep it otherwise)."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def frame(columns: dict[str, object]) -> pd.DataFrame:
    """A DataFrame that takes the column arrays as they are (no copies: these tables are large)."""
    return pd.DataFrame(columns, copy=False)


def unique_dtype(categories: pd.Index) -> pd.CategoricalDtype:
    """A categorical dtype over many unique strings, without keeping pandas' hash table."""
    dtype = pd.CategoricalDtype(categories)
    dtype.categories._cache.pop("_engine", None)
    categories._cache.pop("_engine", None)
    return dtype


def categorical(codes: np.ndarray, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """``Categorical.from_codes`` without keeping the categories' hash table (100 MB per 10^6 strings).

    pandas rebuilds the table lazily if a later lookup needs it.
    """
    values = pd.Categorical.from_codes(codes, dtype=dtype)
    for index in (dtype.categories, values.categories):
        index._cache.pop("_engine", None)
    return values


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise."""
    return 1.0 / (1.0 + np.exp(-x))


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """ASCII digit bytes (n, width) of non-negative integers, zero padded."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10 + 48).astype(np.uint8)


def ascii_strings(matrix: np.ndarray, mask: np.ndarray | None = None) -> pd.Series:
    """A pyarrow-backed string Series from fixed-width ASCII bytes (n, width); ``mask`` = missing."""
    fixed = np.ascontiguousarray(matrix).view(f"S{matrix.shape[1]}").ravel()
    arr = pa.array(fixed, mask=mask).cast(pa.binary()).cast(pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(arr))


def vocab_strings(vocab: list[str], codes: np.ndarray) -> pd.Series:
    """A pyarrow-backed string Series ``vocab[codes]`` (code -1 = missing)."""
    arr = pa.array(vocab, type=pa.string()).take(pa.array(codes, mask=codes < 0))
    return pd.Series(pd.arrays.ArrowStringArray(arr))


def epoch_day(d: dt.date) -> int:
    """Days since 1970-01-01."""
    return (d - dt.date(1970, 1, 1)).days


def days_to_datetime(days: np.ndarray, seconds: np.ndarray | None = None) -> np.ndarray:
    """datetime64[s] from epoch days (negative = missing) and optional seconds of the day."""
    out = days.astype(np.int64) * 86400
    if seconds is not None:
        out = out + seconds
    res = out.astype("datetime64[s]")
    res[days < 0] = np.datetime64("NaT")
    return res


def round2(x: np.ndarray) -> np.ndarray:
    """Rounded to whole fen (2 decimal places of CNY)."""
    return np.round(x, 2)
