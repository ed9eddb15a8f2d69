"""Parquet files: the header, the parts as runs of rows, and those rows as text columns.

Each row group is decoded once per process however many parts share it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.cell_text import _cell_text, _column_text
from ingestion.contracts import ContractError
from ingestion.parts import ParquetRange, _parquet_ranges


def _read_parquet(path: Path, chunk_rows: int) -> tuple[list[str], list[ParquetRange], int]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for damaged files
        raise ContractError(f"{path.name} is not a readable parquet file ({error}).") from error
    header = [str(name) for name in parquet.schema_arrow.names]
    return header, _parquet_ranges(path, parquet.metadata, chunk_rows), parquet.metadata.num_rows


_last_row_group: dict[tuple[str, int, int, int], pa.Table] = {}  # this process's last row group read


def _row_group(path: Path, index: int) -> pa.Table:
    """Row group ``index`` of ``path``, kept until another is read: decoding a row group costs the
    same whatever part of it is wanted, and consecutive parts mostly share one."""
    status = path.stat()
    key = (str(path), status.st_size, status.st_mtime_ns, index)
    table = _last_row_group.get(key)
    if table is None:
        _last_row_group.clear()  # free the previous one before decoding the next
        table = pq.ParquetFile(path).read_row_group(index)
        _last_row_group[key] = table
    return table


def _read_parquet_range(part: ParquetRange) -> pd.DataFrame:
    """The rows of one parquet range as text, exactly as reading the file in one pass gives them."""
    pieces = []
    group, offset, wanted = part.row_group, part.offset, part.length
    while wanted > 0:
        piece = _row_group(part.path, group).slice(offset, wanted)
        pieces.append(piece)
        group, offset, wanted = group + 1, 0, wanted - piece.num_rows
    return _parquet_text(pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0])


def _parquet_text(table: pa.Table) -> pd.DataFrame:
    """The columns pandas makes of ``table``, each cell as :func:`_cell_text` writes it.

    The columns are those of ``table.to_pandas()`` (an index pandas stored is not one); a
    column that becomes one of pandas' own types (categories, or nullable integers when the
    file's pandas metadata asks for them) goes through ``to_pandas`` and ``_cell_text`` per cell.
    """
    shape = table.schema.empty_table().to_pandas()
    names = list(shape.columns)
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n in table.schema.names for n in names):
        frame = table.to_pandas()
        return pd.DataFrame(
            {i: [_cell_text(v) for v in frame[c].tolist()] for i, c in enumerate(frame.columns)}, dtype=object
        )
    frame = None
    columns: dict[int, list[str] | np.ndarray] = {}
    for i, name in enumerate(names):
        if pd.api.types.is_extension_array_dtype(shape.dtypes[name]):
            frame = table.to_pandas() if frame is None else frame
            columns[i] = [_cell_text(v) for v in frame[name].tolist()]
        else:
            columns[i] = _column_text(table.column(name))
    return pd.DataFrame(columns, dtype=object)
