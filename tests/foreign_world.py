"""A small world in the contract shapes, written by other means than Concord's simulator:
plain Python, Chinese headers, xlsx for the case pool, its own creditors and its own rules
linking what the tables show to what happens. The pipeline must learn from it unchanged."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from pathlib import Path

import openpyxl

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CREDITORS = [("南岭银行股份有限公司", "credit_card"), ("北辰消费金融有限公司", "consumer_loan")]


def _id(rng: random.Random) -> str:
    birth = dt.date(1965, 1, 1) + dt.timedelta(days=rng.randrange(13000))
    body = f"{rng.choice(['330106', '420102', '610113'])}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]


def _sheet(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def _csv(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> None:
    def cell(value: object) -> str:
        return "" if value is None else str(value)

    lines = [",".join(header)] + [",".join(cell(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")


def build(folder: Path, n_cases: int = 1500, seed: int = 11) -> dict[str, Path]:
    """Write cases.xlsx and five CSVs with Chinese headers; returns table -> path."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2024, 1, 1, 9, 0)
    cases, checks, capacity, litigation, events = [], [], [], [], []
    for i in range(n_cases):
        creditor, product = CREDITORS[0] if rng.random() < 0.3 else CREDITORS[1]
        ident = _id(rng)
        income = rng.lognormvariate(8.6, 0.7)
        has_house = rng.random() < 0.25
        dead = rng.random() < 0.12  # enforcement terminated for no assets
        phone_ok = rng.random() < 0.55
        principal = round(rng.lognormvariate(9.0, 0.6), 2)
        opened = start + dt.timedelta(days=rng.randrange(420))
        overdue = (opened - dt.timedelta(days=rng.randrange(60, 400))).date()
        cases.append([f"NL{i:05d}", creditor, {"credit_card": "信用卡", "consumer_loan": "消费贷"}[product], "自然人",
                      f"客户{i}", ident, f"139{rng.randrange(10**8):08d}", "浙江省", f"¥{principal:,.2f}",
                      round(principal * 0.08, 2), 0, 0, "18%", (overdue - dt.timedelta(days=500)).isoformat(),
                      overdue.isoformat(), None, None])
        checks.append([ident, (opened - dt.timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S"),
                       "正常" if phone_ok else rng.choice(["停机", "空号"]), 0, None])
        capacity.append([ident, (opened - dt.timedelta(days=10)).date().isoformat(), round(income, 2), 0.6,
                         "在职" if income > 4000 else "无业", 24, "是" if has_house else "否", "否", 2000,
                         round(income * 0.5, 2)])
        litigation.append([ident, (opened - dt.timedelta(days=10)).date().isoformat(), 1 if dead else 0,
                           2 if dead else 0, 2 if dead else 0, "是" if dead else "否", "否"])
        reach = 0.35 if phone_ok else 0.06
        settle = 1 / (1 + math.exp(-(0.9 * math.log(income / 5000) + 0.8 * has_house - 1.6 * dead - 0.7)))
        moment = opened
        reached = False
        for _ in range(rng.randrange(3, 9)):
            moment += dt.timedelta(days=rng.randrange(2, 12), hours=rng.randrange(0, 8))
            if reached and rng.random() < settle * 0.5:
                events.append([f"NL{i:05d}", creditor, moment.strftime("%Y-%m-%d %H:%M:%S"), "mediator_call", "M01",
                               "agreement", round(principal, 2), None])
                break
            action = "mediator_call" if reached else "voice_call"
            got = rng.random() < reach
            reached = reached or got
            events.append([f"NL{i:05d}", creditor, moment.strftime("%Y-%m-%d %H:%M:%S"), action,
                           "M01" if action == "mediator_call" else "system", "reached" if got else "no_answer",
                           None, None])
    paths = {
        "mediators": folder / "mediators.csv", "cases": folder / "cases.xlsx", "contact_checks": folder / "checks.csv",
        "capacity": folder / "capacity.csv", "litigation": folder / "litigation.csv", "events": folder / "events.csv",
    }
    _csv(paths["mediators"], ["调解员编号", "调解组织", "在办上限", "语言", "擅长业务", "服务地区"],
         [["M01", "杭州金融纠纷调解中心", 500, "mandarin;wu", "信用卡;消费贷", "浙江省"]])
    _sheet(paths["cases"], ["案件编号", "债权机构", "业务类型", "主体类型", "债务人姓名", "身份证号", "手机号",
                            "省份", "本金", "利息", "罚息", "费用", "年利率", "放款日期", "逾期日期",
                            "最后还款日期", "管辖法院"], cases)
    _csv(paths["contact_checks"], ["身份证号", "查询时间", "号码状态", "修复号码数", "修复来源"], checks)
    _csv(paths["capacity"], ["身份证号", "日期", "月收入", "收入稳定性", "就业状态", "社保月数", "有房产", "有车辆",
                             "其他负债", "月消费"], capacity)
    _csv(paths["litigation"], ["身份证号", "日期", "被诉案件数", "被执行案件数", "终本案件数", "失信被执行人",
                               "限制高消费"], litigation)
    _csv(paths["events"], ["案件编号", "债权机构", "时间", "处置动作", "处置人", "结果", "金额", "决策概率"], events)
    return paths
