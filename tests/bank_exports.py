"""Real-looking bank exports of one 50-case pool, written without Concord's writers: openpyxl
cell by cell, the csv module in the encodings banks use, and a legacy ``.xls`` written byte by
byte (``tests/legacy_xls.py``).

Each writer returns an :class:`Export`: the file and what a correct import of it gives (rows
read, the case ids imported, the rows rejected and their column, the rows skipped).
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import openpyxl

from tests.legacy_xls import write_xls

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CREDITOR = "海峡银行信用卡中心"
TITLE = "海峡银行信用卡不良资产清单 2026年10月"
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张"
GIVEN = "伟芳秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂"
# how this bank spells its products and debtor types (mapped by the shipped synonym table)
PRODUCTS = {"credit_card": "信用卡透支", "consumer_loan": "个人消费贷款", "personal_loan": "个人信用贷款"}
HEADER = [
    "案件编号",
    "债权机构",
    "业务类型",
    "主体类型",
    "债务人姓名",
    "身份证号",
    "手机号",
    "省份",
    "本金",
    "利息",
    "罚息",
    "费用",
    "年利率",
    "放款日期",
    "逾期日期",
    "最后还款日期",
    "管辖法院",
]


def with_check(body: str) -> str:
    """The 17 digits ``body`` with their check character (ISO 7064 MOD 11-2)."""
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]


def id_number(rng: random.Random) -> str:
    """A resident ID number with a valid check character."""
    birth = dt.date(1960, 1, 1) + dt.timedelta(days=rng.randrange(15000))
    return with_check(f"{rng.choice(['350102', '350203', '350581', '110105'])}{birth:%Y%m%d}{rng.randrange(1000):03d}")


@dataclass
class Case:
    """One case of the pool, with its values as a bank's system holds them."""

    case_id: str
    product: str
    name: str
    id_number: str
    phone: str
    principal: Decimal
    interest: Decimal
    loan_date: dt.date
    overdue_since: dt.date

    def cells(self) -> list[object]:
        """The row in :data:`HEADER` order, typed as a workbook holds it."""
        return [
            self.case_id,
            CREDITOR,
            PRODUCTS[self.product],
            "个人",
            self.name,
            self.id_number,
            self.phone,
            "福建省",
            float(self.principal),
            float(self.interest),
            0,
            None,
            "18%",
            self.loan_date,
            self.overdue_since,
            None,
            "福州市鼓楼区人民法院",
        ]

    def text(self) -> list[str]:
        """The row as text, as a bank's CSV export spells it."""
        return [
            self.case_id,
            CREDITOR,
            PRODUCTS[self.product],
            "个人",
            self.name,
            self.id_number,
            self.phone,
            "福建省",
            f"{self.principal:,.2f}",
            f"{self.interest:.2f}",
            "0",
            "",
            "18%",
            f"{self.loan_date:%Y/%m/%d}",
            f"{self.overdue_since:%Y-%m-%d}",
            "",
            "福州市鼓楼区人民法院",
        ]


def pool(n: int = 50, seed: int = 13) -> list[Case]:
    """``n`` valid cases of one bank."""
    rng = random.Random(seed)
    names: set[str] = set()
    cases = []
    for i in range(n):
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        while name in names:
            name += rng.choice(GIVEN)
        names.add(name)
        loan = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(900))
        cases.append(
            Case(
                f"HX2026{i:04d}",
                rng.choice(list(PRODUCTS)),
                name,
                id_number(rng),
                f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
                Decimal(rng.randrange(1_000_00, 90_000_00)) / 100,
                Decimal(rng.randrange(0, 5_000_00)) / 100,
                loan,
                loan + dt.timedelta(days=rng.randrange(60, 600)),
            )
        )
    return cases


@dataclass
class Export:
    """A bank export and what importing it must give."""

    path: Path
    imported: set[str]  # case ids
    rows_read: int
    rejected: dict[int, str] = field(default_factory=dict)  # spreadsheet row -> column at fault
    skipped: list[tuple[int, int]] = field(default_factory=list)  # (first, last) rows that are not data
    refused: str | None = None  # words of the one sentence when the file is refused as a whole


def _expect(
    cases: Sequence[Case],
    first_row: int,
    rejected: dict[int, str] | None = None,
    skipped: list[tuple[int, int]] | None = None,
    path: Path | None = None,
) -> Export:
    rejected = rejected or {}
    imported = {c.case_id for i, c in enumerate(cases) if first_row + i not in rejected}
    assert path is not None
    return Export(path, imported, len(cases), rejected, skipped or [])


def workbook(sheets: dict[str, list[list[object]]], path: Path, merged: dict[str, list[str]] | None = None) -> Path:
    """Write ``sheets`` (name -> rows) with openpyxl, merging the areas named per sheet."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        for area in (merged or {}).get(name, []):
            sheet.merge_cells(area)
    book.save(path)
    return path


def titled_workbook(folder: Path, cases: Sequence[Case]) -> Export:
    """A title line and a blank line above the header (the issue's first case)."""
    rows = [[TITLE], [], HEADER, *(c.cells() for c in cases)]
    path = workbook({"Sheet1": rows}, folder / "海峡银行-不良清单.xlsx", {"Sheet1": ["A1:Q1"]})
    return _expect(cases, 4, skipped=[(1, 2)], path=path)


def note_sheet_first(folder: Path, cases: Sequence[Case]) -> Export:
    """The first sheet is a note; the data is on the sheet 案件 (the issue's second case)."""
    notes = [["填表说明"], ["1. 金额单位为元"], ["2. 身份证号请设置为文本格式"]]
    path = workbook({"说明": notes, "案件": [HEADER, *(c.cells() for c in cases)]}, folder / "批量导入.xlsx")
    return _expect(cases, 2, path=path)


def unicode_text(folder: Path, cases: Sequence[Case]) -> Export:
    """Excel's "Unicode text" export: UTF-16LE with a BOM, tab-separated, CRLF (the third case)."""
    path = folder / "不良清单.txt"
    with path.open("w", encoding="utf-16", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\r\n")
        writer.writerows([HEADER, *(c.text() for c in cases)])
    return _expect(cases, 2, path=path)


def text_file(
    folder: Path,
    cases: Sequence[Case],
    name: str,
    encoding: str,
    delimiter: str,
    mutate: Callable[[list[list[str]]], None] | None = None,
) -> Path:
    """A CSV-like text export in ``encoding`` with ``delimiter``; ``mutate`` edits the rows first."""
    rows = [list(HEADER), *(c.text() for c in cases)]
    if mutate is not None:
        mutate(rows)
    path = folder / name
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return path


CONTRACT_PRODUCTS = {"信用卡透支": "信用卡", "个人消费贷款": "消费贷", "个人信用贷款": "个人借款"}


def contract_spellings(rows: list[list[str]]) -> None:
    """Rows of :func:`text_file` with the products spelt as the contract's Chinese aliases (a bank
    that follows CONTRACTS.md to the letter)."""
    at = HEADER.index("业务类型")
    for row in rows[1:]:
        row[at] = CONTRACT_PRODUCTS.get(row[at], row[at])


def merged_header(folder: Path, cases: Sequence[Case]) -> Export:
    """A two-row header: group titles merged across columns, single columns merged down both rows."""
    groups = [
        "案件编号",
        "债权机构",
        "业务类型",
        "主体类型",
        "债务人信息",
        "",
        "",
        "",
        "金额（元）",
        "",
        "",
        "",
        "年利率",
        "日期",
        "",
        "",
        "管辖法院",
    ]
    detail = [
        "",
        "",
        "",
        "",
        "债务人姓名",
        "身份证号",
        "手机号",
        "省份",
        "本金",
        "利息",
        "罚息",
        "费用",
        "",
        "放款日期",
        "逾期日期",
        "最后还款日期",
        "",
    ]
    downward = [f"{col}2:{col}3" for col in "ABCDMQ"]
    path = workbook(
        {"案件清单": [[TITLE], groups, detail, *(c.cells() for c in cases)]},
        folder / "merged.xlsx",
        {"案件清单": ["A1:Q1", "E2:H2", "I2:L2", "N2:P2", *downward]},
    )
    return _expect(cases, 4, skipped=[(1, 2)], path=path)


def footer_totals(folder: Path, cases: Sequence[Case]) -> Export:
    """A totals line and a signature line after the data."""
    total = sum((c.principal for c in cases), Decimal(0))
    rows = [
        HEADER,
        *(c.cells() for c in cases),
        [],
        ["合计", None, None, None, None, None, None, None, float(total)],
        ["制表人：张会计", None, None, None, None, None, None, None, None, None, "审核：李主任"],
    ]
    path = workbook({"案件": rows}, folder / "footer.xlsx")
    last = len(cases) + 1
    return _expect(cases, 2, skipped=[(last + 2, last + 3)], path=path)


def reordered_with_extras(folder: Path, cases: Sequence[Case]) -> Export:
    """Columns in the bank's own order, unknown columns among them, headers with full-width
    brackets, stray spaces and an ideographic space."""
    header = [
        "序号",
        " 债务人姓名 ",
        "【身份证号】",
        "手机号　",
        "案件编号",
        "本金（元）",
        "利息(元)",
        "婚姻状况",
        "客户经理",
        "业务类型",
        "债权机构",
        "放款日期",
        "逾期日期",
        "备注",
    ]
    rows: list[list[object]] = [header]
    for i, c in enumerate(cases, start=1):
        rows.append(
            [
                i,
                c.name,
                c.id_number,
                c.phone,
                c.case_id,
                float(c.principal),
                float(c.interest),
                "已婚" if i % 2 else "未婚",
                "陈经理",
                PRODUCTS[c.product],
                CREDITOR,
                c.loan_date,
                c.overdue_since,
                "" if i % 3 else "客户称已还部分",
            ]
        )
    path = workbook({"导出数据": rows}, folder / "reordered.xlsx")
    return _expect(cases, 2, path=path)


def legacy_xls(folder: Path, cases: Sequence[Case]) -> Export:
    """A legacy ``.xls`` (Excel 97-2003) with a title line merged across the header."""
    rows = [[TITLE], HEADER, *([None if v is None else v for v in c.cells()] for c in cases)]
    path = write_xls(folder / "不良清单-2003.xls", {"案件": rows}, {"案件": [(0, 0, 0, 16)]})
    return _expect(cases, 3, skipped=[(1, 1)], path=path)
