"""Large CSV files are cut into byte ranges parsed apart (in worker processes); what comes
out must be exactly what one pass over the file gives, and duplicates across ranges are found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from concord.db import make_engine
from ingestion.contracts import TABLES, ContractError
from ingestion.importer import import_file
from ingestion.table_file import read_table

HEADER = "mediator_id,organisation,capacity,languages"


def _rows(raws) -> tuple[list[list[str]], list[int]]:
    raws = list(raws)
    frames = [raw.frame.fillna("") for raw in raws]
    rows = [row for frame in frames for row in frame.to_numpy().tolist()]
    return rows, [int(r) for raw in raws for r in raw.rows]


def _one_pass(path, chunk_rows: int):
    opened = read_table(path, TABLES["mediators"], chunk_rows=chunk_rows)
    opened._csv_ranges = None  # force the single sequential parse
    return _rows(opened.chunks())


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_ranges_read_like_one_pass(tmp_path, encoding: str, newline: str) -> None:
    lines = [HEADER]
    for i in range(40):
        organisation = ["调解中心", '"Smith, Jones & Co"', '"two\nlines"', '"say ""hi"""', "", " spaced "][i % 6]
        lines.append(f"M{i},{organisation},{i + 1},mandarin;minnan" if i % 7 else "")
    path = tmp_path / "mediators.csv"
    path.write_bytes(newline.join(lines).encode(encoding) + (newline.encode() if encoding != "gb18030" else b""))
    opened = read_table(path, TABLES["mediators"], chunk_rows=7)
    assert opened.part_count is not None and opened.part_count > 3
    assert _rows(opened.chunks()) == _one_pass(path, 7)


@pytest.mark.parametrize("body", ['M1,ab"c,3,x\nM2,"d\ne",4,y', "M1,x,3,a\rM2,y,4,b", 'M1,"a"b,3,x'])
def test_files_quoted_unusually_are_read_in_one_pass(tmp_path, body: str) -> None:
    path = tmp_path / "mediators.csv"
    path.write_text(HEADER + "\n" + "\n".join([body] * 5) + "\n", encoding="utf-8")
    opened = read_table(path, TABLES["mediators"], chunk_rows=2)
    assert opened.part_count is None
    assert _rows(opened.chunks()) == _one_pass(path, 2)


@pytest.mark.parametrize(("encoding", "newline"), [("utf-8", "\n"), ("gb18030", "\r\n"), ("utf-8", "\r")])
@pytest.mark.parametrize("chunk_rows", [10, 7])
@pytest.mark.parametrize("rows", [[25], [22], [22, 26], [2], [3, 30]])  # 22: the first record of a range
def test_a_record_with_too_many_fields_refuses_the_file_wherever_it_is(
    tmp_path, rows: list[int], chunk_rows: int, encoding: str, newline: str
) -> None:
    """Never a shifted or cut row: the file is refused, naming the first such row, however it is
    cut into parts (pandas alone cuts such a record that opens a chunk to the header's fields)."""
    lines = [HEADER] + [f"M{i},调解中心,5,mandarin" for i in range(30)]
    for row in rows:
        lines[row - 1] = f"M{row},org,5,mandarin,extra"
    path = tmp_path / "mediators.csv"
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    messages = set()
    for split in (True, False):
        opened = read_table(path, TABLES["mediators"], chunk_rows=chunk_rows)
        if not split:
            opened._csv_ranges = None
        with pytest.raises(ContractError) as refused:
            list(opened.chunks())
        messages.add(str(refused.value))
    assert len(messages) == 1
    assert f"row {rows[0]} has more fields than its header (4)" in messages.pop()


def test_duplicate_keys_across_chunks_are_rejected_in_parallel_import(settings, tmp_path, monkeypatch) -> None:
    import ingestion.table_file

    monkeypatch.setattr(ingestion.table_file.read_table, "__defaults__", (None, 50))  # chunks of 50 rows
    rng = np.random.default_rng(0)
    ids = [f"M{i}" for i in range(300)]
    repeats = {320: "M5", 321: "M60", 399: "M250"}  # spreadsheet row -> key used earlier
    frame = pd.DataFrame(
        {
            "mediator_id": ids + [f"N{i}" for i in range(100)],
            "organisation": "调解中心",
            "capacity": rng.integers(1, 50, 400).astype(str),
            "languages": "mandarin",
        }
    )
    for row, key in repeats.items():
        frame.loc[row - 2, "mediator_id"] = key
    frame.loc[100, "capacity"] = "many"  # a fault of its own: not a duplicate
    path = tmp_path / "mediators.csv"
    frame.to_csv(path, index=False)
    rejected: list[pd.DataFrame] = []
    report = import_file("mediators", path, settings, make_engine(settings), rejected_rows=rejected)
    assert report.rows_read == 400 and report.rejected == 4 and report.imported == 396
    reasons = {r.row: (r.column, r.reason) for r in report.rejections}
    first = {"M5": 7, "M60": 62, "M250": 252}
    for row, key in repeats.items():
        assert reasons[row] == ("mediator_id", f"duplicate key (mediator_id): row {first[key]} has the same")
    assert reasons[102][0] == "capacity"
    written = pd.concat(rejected).sort_values("reject_row")
    assert written["reject_row"].tolist() == [102, 320, 321, 399]
    assert written["mediator_id"].tolist()[1:] == ["M5", "M60", "M250"]
    again = import_file("mediators", path, settings, make_engine(settings))
    assert again.unchanged == 396 and again.rejected == 4
