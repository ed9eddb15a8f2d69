"""A world in the contract shapes, written by other means than Concord's simulator: numpy day
by day, Chinese headers, xlsx for the case pool, its own creditors and its own explicit rules
linking what the tables show to what happens. The pipeline must learn from it unchanged.

Rules (one step a day; ``sigma`` is the logistic function):

- A case enters the pool on a uniform day in the ``history_days`` before the snapshot. Its
  creditor entrusts it for a mandate (委托期限) of 180 days (the bank) or 120 days (the consumer
  finance company), plus up to 30; then it closes (outcome ``closed``) unless it settled.
- Each day of its life an action happens with probability ``ACTION_RATE``.
- Never reached yet (stage W): a ``voice_call`` reaches the debtor with probability 0.30 when
  the phone works, else 0.05.
- Reached (stage M): a ``mediator_call`` reaches with probability 0.55 (phone works) or 0.30;
  once reached, the debtor settles (``agreement``, the case ends) with probability
  ``sigma(-4.0 + 0.9 log(income / 5000) + 0.8 house - 1.6 dead - 0.3 log(principal / 8000))``
  where ``dead`` is whether enforcement has been terminated for no assets (终本) by that day: some
  debtors are dead already, some become so on a day during the case.
- What the tables show: the phone status at entry (and at each refresh); a capacity snapshot
  (income as a provider estimates it, with noise; property) and a litigation snapshot (终本
  count as of its date) fetched 10 days before entry and, when ``refresh_days`` is given, again
  every ``refresh_days`` (a uniform range of days) while the case is open.

The truth at a snapshot (``truth_snapshot.csv``: ``case_id, creditor, snapshot, p_reach_14d,
p_settle_90d``) is computed exactly from these rules for every case open at its start (00:00
Asia/Shanghai): the probability that an event with a reached outcome (a settling one) happens
in the 14 (90) days from then.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd

WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
CREDITORS = [("南岭银行股份有限公司", "信用卡"), ("北辰消费金融有限公司", "消费贷")]
ACTION_RATE = 0.3
REACH_W = (0.05, 0.30)  # never reached yet: phone broken, phone works
REACH_M = (0.30, 0.55)  # reached before
OUTCOMES = ("no_answer", "failed", "reached", "refused", "promise_to_pay", "agreement", "closed")
CASE_HEADER = [
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
MEDIATOR_HEADER = ["调解员编号", "调解组织", "在办上限", "语言", "擅长业务", "服务地区"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _ids(rng: np.random.Generator, n: int) -> list[str]:
    birth = pd.Timestamp("1965-01-01") + pd.to_timedelta(rng.integers(0, 13000, n), unit="D")
    region = rng.choice(["330106", "420102", "610113"], n)
    out = []
    for r, b, s in zip(region, birth.strftime("%Y%m%d"), rng.integers(0, 1000, n), strict=True):
        body = f"{r}{b}{s:03d}"
        out.append(body + "10X98765432"[int(np.dot([int(c) for c in body], WEIGHTS)) % 11])
    return out


def _sheet(path: Path, header: list[str], rows: list[list[object]]) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def _csv(path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(path, index=False, encoding="utf-8-sig")


def settle_odds(income: np.ndarray, house: np.ndarray, dead: np.ndarray, principal: np.ndarray) -> np.ndarray:
    """The chance that a reached debtor settles at one contact."""
    return _sigmoid(-4.0 + 0.9 * np.log(income / 5000) + 0.8 * house - 1.6 * dead - 0.3 * np.log(principal / 8000))


def build(
    folder: Path,
    n_cases: int = 1500,
    seed: int = 11,
    *,
    snapshot: dt.date = dt.date(2025, 3, 1),
    history_days: int = 420,
    refresh_days: tuple[int, int] | None = None,
    follow_days: int = 120,
) -> dict[str, Path]:
    """Write cases.xlsx, five CSVs with Chinese headers and ``truth_snapshot.csv``; returns table -> path.

    Cases enter in the ``history_days`` before ``snapshot``; events run until ``follow_days``
    after it, so that outcomes after the snapshot are realised."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = n_cases
    snap = (snapshot - dt.date(1970, 1, 1)).days  # day numbers since 1970, local dates
    end = snap + follow_days
    entry = snap - rng.integers(1, history_days + 1, n)
    bank = rng.random(n) < 0.3
    life = np.where(bank, 180, 120) + rng.integers(0, 31, n)
    stop = np.minimum(entry + life, end)  # the closing day (or the world's end)
    income = rng.lognormal(8.5 + 0.3 * bank, 0.7, n)
    house = rng.random(n) < 0.25
    dead_from = np.where(
        rng.random(n) < 0.10,
        entry - 400,  # dead already
        np.where(rng.random(n) < 0.12, entry + rng.integers(0, 300, n), 10**7),
    )
    phone = rng.random(n) < 0.55
    principal = np.round(rng.lognormal(9.0, 0.6, n), 2)

    # Day by day: stage 0 = never reached, 1 = reached, 2 = settled, 3 = closed.
    stage = np.zeros(n, dtype=np.int8)
    events: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []  # (cases, day, action codes, outcome codes)
    truth_state = np.full(n, -1, dtype=np.int8)
    for day in range(int(entry.min()), end):
        if day == snap:
            truth_state = np.where(entry < snap, stage, -1)
        open_now = (entry <= day) & (stage < 2)
        closing = open_now & (day == entry + life)
        stage[closing] = 3
        if closing.any():
            events.append((np.flatnonzero(closing), day, np.full(closing.sum(), 2), np.full(closing.sum(), 6)))
        act = np.flatnonzero(open_now & ~closing & (day < stop) & (rng.random(n) < ACTION_RATE))
        if not len(act):
            continue
        u, v = rng.random(len(act)), rng.random(len(act))
        works = phone[act]
        reached_before = stage[act] == 1
        reach = np.where(
            reached_before, np.where(works, REACH_M[1], REACH_M[0]), np.where(works, REACH_W[1], REACH_W[0])
        )
        got = u < reach
        settles = (
            got & reached_before & (v < settle_odds(income[act], house[act], day >= dead_from[act], principal[act]))
        )
        # outcomes: 0 no_answer, 1 failed, 2 reached, 3 refused, 4 promise_to_pay, 5 agreement
        outcome = np.where(got, np.where(reached_before, np.where(v < 0.5, 4, 3), 2), np.where(works, 0, 1))
        outcome = np.where(settles, 5, outcome)
        stage[act[got & ~reached_before]] = 1
        stage[act[settles]] = 2
        events.append((act, day, reached_before.astype(int), outcome))

    case_ids = np.array([f"NL{i:05d}" for i in range(n)])
    creditor = np.where(bank, 0, 1)
    ids = _ids(rng, n)
    paths = {
        "mediators": folder / "mediators.csv",
        "cases": folder / "cases.xlsx",
        "contact_checks": folder / "checks.csv",
        "capacity": folder / "capacity.csv",
        "litigation": folder / "litigation.csv",
        "events": folder / "events.csv",
        "truth_snapshot": folder / "truth_snapshot.csv",
    }

    def date(days: np.ndarray) -> pd.Series:
        return pd.Series(pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D")).dt.strftime("%Y-%m-%d")

    mediator = ["M01", "杭州金融纠纷调解中心", 500, "mandarin;wu", "信用卡;消费贷", "浙江省"]
    _csv(paths["mediators"], pd.DataFrame([mediator], columns=MEDIATOR_HEADER))
    overdue = entry - rng.integers(60, 400, n)
    _sheet(
        paths["cases"],
        CASE_HEADER,
        [
            [
                case_ids[i],
                CREDITORS[creditor[i]][0],
                CREDITORS[creditor[i]][1],
                "自然人",
                f"客户{i}",
                ids[i],
                f"139{rng.integers(10**8):08d}",
                "浙江省",
                f"¥{principal[i]:,.2f}",
                round(principal[i] * 0.08, 2),
                0,
                0,
                "18%",
                d_loan,
                d_over,
                None,
                None,
            ]
            for i, d_loan, d_over in zip(range(n), date(overdue - 500), date(overdue), strict=True)
        ],
    )

    # Fetches: 10 days before entry, then every refresh_days while the case is open.
    fetch_case, fetch_day = [np.arange(n)], [entry - 10]
    if refresh_days is not None:
        low, high = refresh_days
        at, alive = entry - 10, np.ones(n, dtype=bool)
        while alive.any():
            at = at + rng.integers(low, high + 1, n)
            alive &= at < np.minimum(stop, end)
            fetch_case.append(np.flatnonzero(alive))
            fetch_day.append(at[alive])
    cases_f, days_f = np.concatenate(fetch_case), np.concatenate(fetch_day)
    id_f = np.array(ids)[cases_f]
    checked = date(days_f + 7) + " " + pd.Series(rng.integers(9, 18, len(cases_f))).map("{:02d}:15:00".format)
    _csv(
        paths["contact_checks"],
        pd.DataFrame(
            {
                "身份证号": id_f,
                "查询时间": checked,
                "号码状态": np.where(phone[cases_f], "正常", rng.choice(["停机", "空号"], len(cases_f))),
                "修复号码数": 0,
                "修复来源": None,
            }
        ),
    )
    estimate = np.round(income[cases_f] * rng.lognormal(0, 0.35, len(cases_f)), 2)
    _csv(
        paths["capacity"],
        pd.DataFrame(
            {
                "身份证号": id_f,
                "日期": date(days_f),
                "月收入": estimate,
                "收入稳定性": 0.6,
                "就业状态": np.where(estimate > 4000, "在职", "无业"),
                "社保月数": 24,
                "有房产": np.where(house[cases_f], "是", "否"),
                "有车辆": "否",
                "其他负债": 2000,
                "月消费": np.round(estimate * 0.5, 2),
            }
        ).drop_duplicates(["身份证号", "日期"]),
    )
    dead_then = (days_f >= dead_from[cases_f]).astype(int)
    _csv(
        paths["litigation"],
        pd.DataFrame(
            {
                "身份证号": id_f,
                "日期": date(days_f),
                "被诉案件数": dead_then,
                "被执行案件数": 2 * dead_then,
                "终本案件数": 2 * dead_then,
                "失信被执行人": np.where(dead_then == 1, "是", "否"),
                "限制高消费": "否",
            }
        ).drop_duplicates(["身份证号", "日期"]),
    )

    who = np.concatenate([e[0] for e in events])
    event_day = np.concatenate([np.full(len(e[0]), e[1]) for e in events])
    kind = np.concatenate([e[2] for e in events])
    outcome = np.concatenate([e[3] for e in events])
    moment = (
        date(event_day)
        + " "
        + pd.Series(rng.integers(9, 18, len(who))).map("{:02d}:".format)
        + pd.Series(rng.integers(0, 60, len(who))).map("{:02d}:00".format)
    )
    _csv(
        paths["events"],
        pd.DataFrame(
            {
                "案件编号": case_ids[who],
                "债权机构": [CREDITORS[c][0] for c in creditor[who]],
                "时间": moment,
                "处置动作": np.array(["voice_call", "mediator_call", "close"])[kind],
                "处置人": np.where(kind == 1, "M01", "system"),
                "结果": np.array(OUTCOMES)[outcome],
                "金额": np.where(outcome == 5, principal[who], np.nan),
                "决策概率": None,
            }
        ).sort_values(["案件编号", "时间"], kind="stable"),
    )
    truth = snapshot_truth(truth_state, snap, stop, phone, income, house, dead_from, principal)
    truth.insert(0, "case_id", case_ids)
    truth.insert(1, "creditor", [CREDITORS[c][0] for c in creditor])
    truth.insert(2, "snapshot", pd.Timestamp(snapshot, tz="Asia/Shanghai").tz_convert("UTC"))
    truth[truth["p_reach_14d"].notna()].to_csv(paths["truth_snapshot"], index=False)
    return paths


def snapshot_truth(
    state: np.ndarray,
    snap: int,
    stop: np.ndarray,
    phone: np.ndarray,
    income: np.ndarray,
    house: np.ndarray,
    dead_from: np.ndarray,
    principal: np.ndarray,
) -> pd.DataFrame:
    """Exact probabilities, under the rules above, of a reach in the 14 days and a settlement in
    the 90 days from 00:00 of day ``snap``, for cases in stage W (0) or M (1) then (NaN otherwise)."""
    open_then = (state == 0) | (state == 1)
    days_left = np.maximum(stop - snap, 0)
    reach_w = ACTION_RATE * np.where(phone, REACH_W[1], REACH_W[0])
    reach_m = ACTION_RATE * np.where(phone, REACH_M[1], REACH_M[0])
    per_day = np.where(state == 1, reach_m, reach_w)
    p_reach = 1 - (1 - per_day) ** np.minimum(14, days_left)
    in_w, in_m, settled = (state == 0).astype(float), (state == 1).astype(float), np.zeros(len(state))
    for d in range(90):
        live = d < days_left
        settle = reach_m * settle_odds(income, house, snap + d >= dead_from, principal)
        moved, done = in_w * reach_w * live, in_m * settle * live
        settled += done
        in_w, in_m = in_w - moved, in_m - done + moved
    return pd.DataFrame(
        {"p_reach_14d": np.where(open_then, p_reach, np.nan), "p_settle_90d": np.where(open_then, settled, np.nan)}
    )
