"""Large contract-shaped case pools for benchmarks, written with numpy (not by Concord)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
CHECK = np.array(list("10X98765432"))


def case_pool(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` valid cases with mixed spellings (amount and date styles, phone formats)."""
    rng = np.random.default_rng(seed)
    regions = rng.choice(np.array(["350102", "110105", "440304", "320106", "510104"]), n)
    birth = np.datetime64("1960-01-01") + rng.integers(0, 15000, n).astype("timedelta64[D]")
    birth_text = np.char.replace(np.datetime_as_string(birth, unit="D"), "-", "")
    seq = np.char.zfill(rng.integers(0, 1000, n).astype(str), 3)
    body = np.char.add(np.char.add(regions, birth_text), seq)
    digits = np.frombuffer("".join(body).encode(), dtype=np.uint8).reshape(n, 17) - 48
    ids = np.char.add(body, CHECK[(digits * WEIGHTS).sum(axis=1) % 11])
    phones = np.char.add("13", np.char.zfill(rng.integers(0, 10**9, n).astype(str), 9))
    principal = np.round(rng.lognormal(9, 0.8, n), 2)
    loan = np.datetime64("2020-01-01") + rng.integers(0, 1000, n).astype("timedelta64[D]")
    overdue = loan + rng.integers(30, 600, n).astype("timedelta64[D]")
    style = rng.integers(0, 3, n)
    amount_text = np.where(
        style == 0,
        np.char.mod("%.2f", principal),
        np.where(style == 1, np.char.mod("¥%.2f", principal), np.char.mod("%.1f", principal)),
    )
    loan_text = np.datetime_as_string(loan, unit="D")
    loan_text = np.where(style == 1, np.char.replace(loan_text, "-", "/"), loan_text)
    return pd.DataFrame(
        {
            "case_id": np.char.add("P", np.arange(n).astype(str)),
            "creditor": rng.choice(
                np.array(["华夏安和银行信用卡中心", "安信消费金融有限公司", "闽江消费金融有限公司"]), n
            ),
            "product": rng.choice(np.array(["credit_card", "personal_loan", "consumer_loan", "信用卡"]), n),
            "debtor_type": "person",
            "debtor_name": np.char.add("测试", np.arange(n).astype(str)),
            "id_number": ids,
            "phone": np.where(rng.random(n) < 0.1, "", phones),
            "province": rng.choice(np.array(["福建省", "北京市", "广东省", ""]), n),
            "principal": amount_text,
            "interest": np.char.mod("%.2f", np.round(principal * 0.1, 2)),
            "penalty": "0",
            "fees": "",
            "annual_rate": rng.choice(np.array(["0.18", "24%", ""]), n),
            "loan_date": loan_text,
            "overdue_since": np.datetime_as_string(overdue, unit="D"),
            "last_payment_date": "",
            "court": rng.choice(np.array(["福州市鼓楼区人民法院", ""]), n),
        }
    )


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def write_xlsx(frame: pd.DataFrame, path: Path) -> Path:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("cases")
    sheet.write_row(0, 0, list(frame.columns))
    for r, row in enumerate(frame.itertuples(index=False), start=1):
        sheet.write_row(r, 0, row)
    workbook.close()
    return path
