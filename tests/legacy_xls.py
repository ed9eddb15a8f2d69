"""A legacy Excel 97-2003 workbook (``.xls``: BIFF8 records in an OLE2 compound file), written
byte by byte from the published formats ([MS-XLS], [MS-CFB]) for the test corpus.

No installed package writes ``.xls`` (xlwt is not installed, LibreOffice is not on the machine),
and Concord only reads them (through calamine), so this writer is independent of the reader.
It writes what Excel writes for plain data: a shared string table (SST, split into CONTINUE
records at string boundaries), LABELSST and NUMBER cells, date cells as serial numbers under a
date format, and merged cells.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Sequence
from pathlib import Path

Cell = str | float | int | dt.date | None

_SECTOR = 512
_END, _FREE, _FAT_SECTOR, _NO_STREAM = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
_XF_GENERAL, _XF_DATE = 15, 16  # cell XFs after the 15 style XFs Excel always writes


def _record(kind: int, body: bytes) -> bytes:
    return struct.pack("<HH", kind, len(body)) + body


def _unicode(text: str, length_bytes: int) -> bytes:
    data = text.encode("utf-16-le")
    return struct.pack("<H" if length_bytes == 2 else "<B", len(text)) + b"\x01" + data


def _xf(number_format: int, style: bool) -> bytes:
    # font 0, format, type/protection (0xFFF5: a style XF), alignment, rotation, indent, used attributes, borders
    return struct.pack("<HHHBBBBIIH", 0, number_format, 0xFFF5 if style else 0x0001, 0x20, 0, 0, 0, 0, 0, 0x20C0)


def _sst(strings: list[str]) -> bytes:
    """The SST record and as many CONTINUE records as its strings need (8,224 bytes each at most)."""
    records, body = [], struct.pack("<II", len(strings), len(strings))
    kind = 0x00FC
    for text in strings:
        piece = _unicode(text, 2)
        if len(body) + len(piece) > 8224:
            records.append(_record(kind, body))
            kind, body = 0x003C, b""
        body += piece
    records.append(_record(kind, body))
    return b"".join(records)


def _sheet(rows: Sequence[Sequence[Cell]], index: dict[str, int], merged: Sequence[tuple[int, int, int, int]]) -> bytes:
    width = max((len(row) for row in rows), default=0)
    parts = [
        _record(0x0809, struct.pack("<HHHHII", 0x0600, 0x0010, 0x0DBB, 0x07CC, 0, 6)),
        _record(0x0200, struct.pack("<IIHHH", 0, len(rows), 0, width, 0)),
    ]
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is None or value == "":
                continue
            if isinstance(value, str):
                parts.append(_record(0x00FD, struct.pack("<HHHI", r, c, _XF_GENERAL, index[value])))
            elif isinstance(value, dt.date):
                serial = float((value - dt.date(1899, 12, 30)).days)
                parts.append(_record(0x0203, struct.pack("<HHHd", r, c, _XF_DATE, serial)))
            else:
                parts.append(_record(0x0203, struct.pack("<HHHd", r, c, _XF_GENERAL, float(value))))
    if merged:
        parts.append(
            _record(0x00E5, struct.pack("<H", len(merged)) + b"".join(struct.pack("<HHHH", *area) for area in merged))
        )
    parts.append(_record(0x000A, b""))
    return b"".join(parts)


def _workbook_stream(sheets: dict[str, tuple[Sequence[Sequence[Cell]], Sequence[tuple[int, int, int, int]]]]) -> bytes:
    strings = list(
        dict.fromkeys(v for rows, _ in sheets.values() for row in rows for v in row if isinstance(v, str) and v)
    )
    index = {text: i for i, text in enumerate(strings)}
    bodies = [_sheet(rows, index, merged) for rows, merged in sheets.values()]
    head = (
        _record(0x0809, struct.pack("<HHHHII", 0x0600, 0x0005, 0x0DBB, 0x07CC, 0, 6))
        + _record(0x0042, struct.pack("<H", 1200))
        + _record(0x0031, struct.pack("<HHHHHBBBB", 200, 0, 0x7FFF, 400, 0, 0, 0, 134, 0) + _unicode("宋体", 1))
        + b"".join(_record(0x00E0, _xf(0, True)) for _ in range(15))
        + _record(0x00E0, _xf(0, False))
        + _record(0x00E0, _xf(14, False))
    )  # 14: Excel's built-in date
    bound_sizes = [len(_record(0x0085, struct.pack("<IBB", 0, 0, 0) + _unicode(name, 1))) for name in sheets]
    sst = _sst(strings)
    offset = len(head) + sum(bound_sizes) + len(sst) + 4  # + the globals' EOF
    bound = b""
    for name, body in zip(sheets, bodies, strict=True):
        bound += _record(0x0085, struct.pack("<IBB", offset, 0, 0) + _unicode(name, 1))
        offset += len(body)
    return head + bound + sst + _record(0x000A, b"") + b"".join(bodies)


def _compound_file(stream: bytes) -> bytes:
    """``stream`` as the ``Workbook`` stream of an OLE2 compound file (version 3, 512-byte sectors)."""
    if len(stream) < 4096:  # smaller streams belong in the mini stream, which this writer does not make
        stream += b"\x00" * (4096 - len(stream))
    data_sectors = math.ceil(len(stream) / _SECTOR)
    fat_sectors = 1
    while fat_sectors * 128 < data_sectors + 1 + fat_sectors:
        fat_sectors += 1
    directory_sector = data_sectors
    fat = [i + 1 for i in range(data_sectors - 1)] + [_END, _END] + [_FAT_SECTOR] * fat_sectors
    fat += [_FREE] * (fat_sectors * 128 - len(fat))
    first_fat = data_sectors + 1
    difat = [first_fat + i for i in range(fat_sectors)] + [_FREE] * (109 - fat_sectors)
    header = (
        bytes.fromhex("D0CF11E0A1B11AE1")
        + b"\x00" * 16
        + struct.pack("<HHHHH", 0x003E, 0x0003, 0xFFFE, 9, 6)
        + b"\x00" * 6
        + struct.pack("<IIIIIIIII", 0, fat_sectors, directory_sector, 0, 4096, _END, 0, _END, 0)
        + struct.pack("<109I", *difat)
    )

    def entry(name: str, kind: int, child: int, start: int, size: int) -> bytes:
        encoded = (name + "\x00").encode("utf-16-le") if name else b""
        return (
            encoded.ljust(64, b"\x00")
            + struct.pack("<HBB", len(encoded), kind, 1)
            + struct.pack("<III", _NO_STREAM, _NO_STREAM, child)
            + b"\x00" * 16
            + b"\x00" * 4
            + b"\x00" * 16
            + struct.pack("<IQ", start, size)
        )

    directory = (
        entry("Root Entry", 5, 1, _END, 0)
        + entry("Workbook", 2, _NO_STREAM, 0, len(stream))
        + entry("", 0, _NO_STREAM, 0, 0) * 2
    )
    body = stream.ljust(data_sectors * _SECTOR, b"\x00") + directory + struct.pack(f"<{len(fat)}I", *fat)
    return header + body


def write_xls(
    path: Path,
    sheets: dict[str, Sequence[Sequence[Cell]]],
    merged: dict[str, Sequence[tuple[int, int, int, int]]] | None = None,
) -> Path:
    """Write ``sheets`` (name -> rows of cells) as a legacy ``.xls``; ``merged`` lists merged areas
    per sheet as (first row, last row, first column, last column), zero-based."""
    merged = merged or {}
    stream = _workbook_stream({name: (rows, merged.get(name, ())) for name, rows in sheets.items()})
    path.write_bytes(_compound_file(stream))
    return path
