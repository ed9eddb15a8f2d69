"""A creditor's case pool as an xlsx file, written cell by cell with openpyxl, independently
of Concord's parsers: mixed spellings of amounts, dates, phones and IDs, blank rows, and a
known set of faulty rows with the column each fault is in."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import openpyxl

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
HEADERS_CN = [
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
FULL = str.maketrans("0123456789.", "０１２３４５６７８９．")


def id_number(rng: random.Random) -> str:
    birth = dt.date(1960, 1, 1) + dt.timedelta(days=rng.randrange(15000))
    body = f"{rng.choice(['350102', '110105', '440304', '320106'])}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]


@dataclass
class Pool:
    path: Path
    rows_read: int  # non-blank data rows
    good: dict[str, dict]  # case_id -> expected stored values
    faults: dict[int, str] = field(default_factory=dict)  # spreadsheet row -> column at fault


FAULTS = [
    ("id_number", lambda r: r.__setitem__(5, r[5][:-1] + ("0" if r[5][-1] != "0" else "1"))),  # checksum
    ("id_number", lambda r: r.__setitem__(5, r[5][:15])),
    ("phone", lambda r: r.__setitem__(6, "1234567")),
    ("principal", lambda r: r.__setitem__(8, "一万二")),
    ("principal", lambda r: r.__setitem__(8, -500)),
    ("interest", lambda r: r.__setitem__(9, "12.345")),
    ("loan_date", lambda r: r.__setitem__(13, "2023-02-30")),
    ("overdue_since", lambda r: r.__setitem__(14, dt.date(2020, 1, 1))),  # before the loan
    ("overdue_since", lambda r: r.__setitem__(14, dt.date(2099, 1, 1))),  # in the future
    ("product", lambda r: r.__setitem__(2, "mortgage")),
    ("debtor_name", lambda r: r.__setitem__(4, None)),
    ("annual_rate", lambda r: r.__setitem__(12, "150%")),
    ("debtor_type", lambda r: r.__setitem__(3, "alien")),
]


def build_pool(path: Path, n: int = 1000, fault_share: float = 0.15, seed: int = 7) -> Pool:
    rng = random.Random(seed)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "案件"
    sheet.append(HEADERS_CN)
    good: dict[str, dict] = {}
    faults: dict[int, str] = {}
    row_number = 1
    written = 0
    fault_rows = set(rng.sample(range(n), int(n * fault_share)))
    duplicate_of: str | None = None
    for i in range(n):
        if i and i % 97 == 0:  # blank rows are skipped but keep their row number
            sheet.append([None] * len(HEADERS_CN))
            row_number += 1
        case_id = f"HX{i:06d}"
        creditor = rng.choice(["华夏安和银行信用卡中心", "安信消费金融有限公司"])
        product_en = rng.choice(["credit_card", "personal_loan", "consumer_loan"])
        product = (
            {"credit_card": "信用卡", "personal_loan": "个人借款", "consumer_loan": "消费贷"}[product_en]
            if rng.random() < 0.5
            else product_en
        )
        principal = Decimal(rng.randrange(100_00, 99_000_00)) / 100
        interest = Decimal(rng.randrange(0, 5000_00)) / 100
        loan = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(900))
        overdue = loan + dt.timedelta(days=rng.randrange(30, 700))
        ident = id_number(rng)
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        amount_style = rng.randrange(4)
        principal_cell = [
            float(principal),
            f"{principal:,.2f}",
            f"¥{principal:,.2f}",
            f"{principal:.2f}".translate(FULL),
        ][amount_style]
        date_style = rng.randrange(4)
        loan_cell = [
            loan,
            f"{loan.year}/{loan.month}/{loan.day}",
            f"{loan.year}年{loan.month}月{loan.day}日",
            (loan - dt.date(1899, 12, 30)).days,
        ][date_style]
        phone_cell = rng.choice([phone, f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}", f"{phone[:3]}-{phone[3:]}", None])
        rate = rng.choice([None, "0.18", "24%", 0.36])
        row = [
            case_id,
            creditor,
            product,
            rng.choice(["自然人", "person", None]),
            f"测试{i}",
            ident.lower() if rng.random() < 0.1 else ident,
            phone_cell,
            rng.choice(["福建省", "北京市", None]),
            principal_cell,
            float(interest),
            0,
            None,
            rate,
            loan_cell,
            overdue,
            None,
            rng.choice(["福州市鼓楼区人民法院", None]),
        ]
        row_number += 1
        written += 1
        if i in fault_rows:
            column, spoil = FAULTS[len(faults) % len(FAULTS)]
            spoil(row)
            faults[row_number] = column
        elif duplicate_of is None and i > n // 2 and rng.random() < 0.5:
            duplicate_of = case_id
        good_row = i not in fault_rows
        if good_row:
            good[case_id] = {
                "creditor": creditor,
                "principal": principal,
                "interest": interest,
                "loan_date": loan,
                "overdue_since": overdue,
                "phone_tail": None if phone_cell is None else phone[-4:],
                "product": product_en,
                "id_tail": ident[-2:].upper(),
            }
        sheet.append(row)
    # A second row with a key already used: the first stands, this one is rejected.
    assert duplicate_of is not None
    dup = good[duplicate_of]
    sheet.append(
        [
            duplicate_of,
            dup["creditor"],
            "信用卡",
            None,
            "重复",
            id_number(rng),
            None,
            None,
            1,
            0,
            0,
            0,
            None,
            dup["loan_date"],
            dup["overdue_since"],
            None,
            None,
        ]
    )
    row_number += 1
    written += 1
    faults[row_number] = "case_id"
    sheet.append([None] * len(HEADERS_CN))  # trailing blank row
    workbook.save(path)
    return Pool(path=path, rows_read=written, good=good, faults=faults)
