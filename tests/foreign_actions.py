"""Two worlds in the contract shapes, written without Concord's simulator, in which the actions the
platform chose had different effects on different debtors, and the truth of every action is known.

They extend ``tests/foreign_world.py`` (its creditors, Chinese headers, xlsx case pool, day-by-day
life with one action on a day with probability ``ACTION_RATE`` (0.05 here), mandates of 120-210 days) with a
logging policy that chooses among several actions, records the probability it chose with
(``决策概率``; blank with ``record_propensity=False``), and ``truth_actions.csv``: for every case
open at the snapshot (00:00 Asia/Shanghai) and every action its stage allows, the exact probability
of a settlement in the 90 days from then if that action is taken on the case's first action day on
or after the snapshot and the logging policy chooses after it. The schedule of action days is the
world's, drawn before anything else: the truth is conditional on it.

Stages: W (never reached) and M (reached); a settlement (``agreement``) ends the case. Visible
traits: income (a noisy capacity estimate), property, dead debt (终本, from the litigation
snapshot), a working phone (the contact check), principal; the debtor's willingness ``w`` (standard
normal, hidden) shows through a last repayment date in the case file (with probability
sigma(1.5 w)) and other debt (lower for the willing).

Rules (``sigma`` the logistic function; ``able`` = log(income / 5000) + 0.8 property):

- W: ``voice_call`` reaches with 0.30 (phone works) or 0.05; ``sms_warning`` 0.12 or 0;
  ``lawyer_letter`` (by post) 0.05 + 0.10 property. Reaching moves the case to M.
- M: ``mediator_call``, ``installment_offer``, ``online_negotiation`` reach with 0.55 (phone works)
  or 0.30, ``lawyer_letter`` with 0.45; once reached the debtor settles with sigma(base + h(action)).
- ``foreign``: base = the foreign world's odds, -4 + 0.9 log(income / 5000) + 0.8 property - 1.6 dead
  - 0.3 log(principal / 8000); h: mediator call 0, installment offer +1.2 when income is below
  4,000 CNY else -0.4, lawyer letter -0.5 + 1.2 property, online negotiation +0.3.
- ``different``: base = -3 + 0.4 w - 1.6 dead; h: installment offer -1 + 4 sigma(2 w) sigma(-2 able)
  (the willing but poor), lawyer letter -1 + 4 sigma(2 able) sigma(-2 w) (the able but unwilling),
  mediator call 0.5 w, online negotiation 0.2: no single action is best for most debtors.
- Logging policy (what the platform did; it saw only the visible traits): W voice 0.5, sms 0.3,
  letter 0.2 (0.4 for principal above 15,000; weights, normalised); M mediator call 0.4,
  installment 0.25 (0.45 when the income estimate is below 4,000), letter 0.2 (0.35 with
  property), online negotiation 0.15. The close at the mandate's end has probability 1.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from tests.foreign_world import CASE_HEADER, CREDITORS, MEDIATOR_HEADER, _csv, _ids, _sheet, _sigmoid

ACTION_RATE = 0.05  # fewer steps than the foreign world's 0.3 a day: the first action weighs more
W_ACTIONS = ("voice_call", "sms_warning", "lawyer_letter")
M_ACTIONS = ("mediator_call", "installment_offer", "lawyer_letter", "online_negotiation")
WORLDS = ("foreign", "different")


class Debtors:
    """Traits of every case's debtor."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.bank = rng.random(n) < 0.3
        self.income = rng.lognormal(8.5 + 0.3 * self.bank, 0.7, n)
        self.house = rng.random(n) < 0.25
        self.dead = rng.random(n) < 0.08
        self.phone = rng.random(n) < 0.6
        self.principal = np.round(rng.lognormal(9.0, 0.6, n), 2)
        self.willing = rng.standard_normal(n)
        self.estimate = np.round(self.income * rng.lognormal(0, 0.25, n), 2)  # what the capacity file shows
        self.last_payment = rng.random(n) < _sigmoid(1.5 * self.willing)
        self.other_debt = np.round(np.exp(8.5 - 0.6 * self.willing + rng.normal(0, 0.4, n)), 2)


def logging_weights(d: Debtors, stage: int) -> np.ndarray:
    """(cases, actions of the stage) the logging policy's probabilities (stage 0 = W, 1 = M)."""
    n = len(d.income)
    if stage == 0:
        w = np.column_stack([np.full(n, 0.5), np.full(n, 0.3), np.where(d.principal > 15_000, 0.4, 0.2)])
    else:
        w = np.column_stack(
            [np.full(n, 0.4), np.where(d.estimate < 4000, 0.45, 0.25), np.where(d.house, 0.35, 0.2), np.full(n, 0.15)]
        )
    return w / w.sum(axis=1, keepdims=True)


def transitions(d: Debtors, world: str, stage: int) -> tuple[np.ndarray, np.ndarray]:
    """(cases, actions of the stage): P(reached) and P(settled) for one action day."""
    works = d.phone
    if stage == 0:
        reach = np.column_stack([np.where(works, 0.30, 0.05), np.where(works, 0.12, 0.0), 0.05 + 0.10 * d.house])
        return reach, np.zeros_like(reach)
    call = np.where(works, 0.55, 0.30)
    reach = np.column_stack([call, call, np.full(len(call), 0.45), call])
    if world == "foreign":
        base = -4.0 + 0.9 * np.log(d.income / 5000) + 0.8 * d.house - 1.6 * d.dead - 0.3 * np.log(d.principal / 8000)
        h = np.column_stack(
            [np.zeros(len(base)), np.where(d.income < 4000, 1.2, -0.4), -0.5 + 1.2 * d.house, np.full(len(base), 0.3)]
        )
    else:
        able = np.log(d.income / 5000) + 0.8 * d.house
        base = -3.0 + 0.4 * d.willing - 1.6 * d.dead
        h = np.column_stack(
            [
                0.5 * d.willing,
                -1 + 4 * _sigmoid(2 * d.willing) * _sigmoid(-2 * able),
                -1 + 4 * _sigmoid(2 * able) * _sigmoid(-2 * d.willing),
                np.full(len(base), 0.2),
            ]
        )
    return reach, reach * _sigmoid(base[:, None] + h)


def truth_actions(
    d: Debtors, world: str, stage: np.ndarray, acts: np.ndarray, snap: int, first: int, stop: np.ndarray
) -> pd.DataFrame:
    """For the cases open at day ``snap`` (stage 0 or 1), per action of their stage: P(settled in
    the 90 days from the snapshot | that action on the first action day, the logging policy after).
    ``acts[i, t]``: case i acts on day first + t."""
    rows = []
    open_now = np.flatnonzero((stage == 0) | (stage == 1))
    mix = [(transitions(d, world, s), logging_weights(d, s)) for s in (0, 1)]
    for s, names in ((0, W_ACTIONS), (1, M_ACTIONS)):
        cases = open_now[stage[open_now] == s]
        for j, name in enumerate(names):
            in_w = (s == 0) * np.ones(len(cases))
            in_m = (s == 1) * np.ones(len(cases))
            settled = np.zeros(len(cases))
            forced = np.zeros(len(cases), dtype=bool)
            for day in range(snap, snap + 90):
                act = acts[cases, day - first] & (day < stop[cases])
                now = act & ~forced
                moves = []
                for st in (0, 1):
                    (reach, settle), weights = mix[st]
                    p_move = (weights * (reach if st == 0 else settle)).sum(axis=1)[cases]
                    if st == s:
                        p_move = np.where(now, (reach if st == 0 else settle)[cases, j], p_move)
                    moves.append((in_w if st == 0 else in_m) * act * p_move)
                in_w, in_m, settled = in_w - moves[0], in_m + moves[0] - moves[1], settled + moves[1]
                forced |= act
            rows.append(
                pd.DataFrame(
                    {
                        "i": cases,
                        "action": name,
                        "p_settle_90d": settled,
                        "logging_probability": logging_weights(d, s)[cases, j],
                    }
                )
            )
    return pd.concat(rows, ignore_index=True).sort_values(["i", "action"], kind="stable")


def build(
    folder: Path,
    world: str = "different",
    n_cases: int = 6000,
    seed: int = 7,
    *,
    snapshot: dt.date = dt.date(2025, 3, 1),
    history_days: int = 420,
    follow_days: int = 120,
    record_propensity: bool = True,
) -> dict[str, Path]:
    """Write the world (cases.xlsx, five CSVs with Chinese headers, ``truth_actions.csv``,
    ``truth_snapshot.csv``); returns table -> path."""
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = n_cases
    d = Debtors(rng, n)
    snap = (snapshot - dt.date(1970, 1, 1)).days
    end = snap + follow_days
    entry = snap - rng.integers(1, history_days + 1, n)
    life = np.where(d.bank, 180, 120) + rng.integers(0, 31, n)
    stop = np.minimum(entry + life, end)
    first = int(entry.min())
    acts = rng.random((n, end - first)) < ACTION_RATE  # the world's schedule of action days
    stage = np.zeros(n, dtype=np.int8)  # 0 W, 1 M, 2 settled, 3 closed
    mix = [(transitions(d, world, s), logging_weights(d, s)) for s in (0, 1)]
    log: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]] = []
    truth = None
    for day in range(first, end):
        if day == snap:
            at_snap = np.where(entry < snap, stage, -1)
            truth = truth_actions(d, world, at_snap, acts, snap, first, stop)
        open_now = (entry <= day) & (stage < 2)
        closing = open_now & (day == entry + life)
        stage[closing] = 3
        if closing.any():
            who = np.flatnonzero(closing)
            log.append(
                (
                    who,
                    day,
                    np.full(len(who), "close", dtype=object),
                    np.full(len(who), "closed", dtype=object),
                    np.ones(len(who)),
                )
            )
        for s, names in ((0, W_ACTIONS), (1, M_ACTIONS)):
            who = np.flatnonzero(open_now & ~closing & (day < stop) & acts[:, day - first] & (stage == s))
            if not len(who):
                continue
            (reach, settle), weights = mix[s]
            cum = np.cumsum(weights[who], axis=1)
            pick = np.minimum((rng.random(len(who))[:, None] > cum).sum(axis=1), len(names) - 1)
            u = rng.random(len(who))
            p_reach, p_settle = reach[who, pick], settle[who, pick]
            settles = u < p_settle
            got = u < p_reach
            if s == 0:
                outcome = np.where(got, "reached", np.where(d.phone[who], "no_answer", "failed"))
                stage[who[got]] = 1
            else:
                outcome = np.where(
                    settles,
                    "agreement",
                    np.where(got, np.where(u < 0.5 * p_reach, "promise_to_pay", "refused"), "no_answer"),
                )
                stage[who[settles]] = 2
            log.append((who, day, np.asarray(names, dtype=object)[pick], outcome.astype(object), weights[who, pick]))
    assert truth is not None
    return _write(folder, rng, d, entry, stop, log, truth, snapshot, record_propensity)


def _write(
    folder: Path,
    rng: np.random.Generator,
    d: Debtors,
    entry: np.ndarray,
    stop: np.ndarray,
    log: list,
    truth: pd.DataFrame,
    snapshot: dt.date,
    record_propensity: bool,
) -> dict[str, Path]:
    n = len(entry)
    paths = {
        "mediators": folder / "mediators.csv",
        "cases": folder / "cases.xlsx",
        "contact_checks": folder / "checks.csv",
        "capacity": folder / "capacity.csv",
        "litigation": folder / "litigation.csv",
        "events": folder / "events.csv",
        "truth_actions": folder / "truth_actions.csv",
        "truth_snapshot": folder / "truth_snapshot.csv",
    }

    def date(days: np.ndarray) -> pd.Series:
        return pd.Series(pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D")).dt.strftime("%Y-%m-%d")

    case_ids = np.array([f"FA{i:05d}" for i in range(n)])
    creditor = np.where(d.bank, 0, 1)
    names = np.array([CREDITORS[c][0] for c in creditor], dtype=object)
    ids = _ids(rng, n)
    mediator = ["M01", "杭州金融纠纷调解中心", 500, "mandarin;wu", "信用卡;消费贷", "浙江省"]
    _csv(paths["mediators"], pd.DataFrame([mediator], columns=MEDIATOR_HEADER))
    overdue = entry - rng.integers(60, 400, n)
    last_paid = date(overdue - rng.integers(5, 60, n))
    _sheet(
        paths["cases"],
        CASE_HEADER,
        [
            [
                case_ids[i],
                names[i],
                CREDITORS[creditor[i]][1],
                "自然人",
                f"客户{i}",
                ids[i],
                f"139{rng.integers(10**8):08d}",
                "浙江省",
                f"¥{d.principal[i]:,.2f}",
                round(d.principal[i] * 0.08, 2),
                0,
                0,
                "18%",
                loan,
                over,
                last_paid[i] if d.last_payment[i] else None,
                None,
            ]
            for i, loan, over in zip(range(n), date(overdue - 500), date(overdue), strict=True)
        ],
    )
    fetched = date(entry - 10)
    _csv(
        paths["contact_checks"],
        pd.DataFrame(
            {
                "身份证号": ids,
                "查询时间": date(entry - 3) + " 10:15:00",
                "号码状态": np.where(d.phone, "正常", rng.choice(["停机", "空号"], n)),
                "修复号码数": 0,
                "修复来源": None,
            }
        ),
    )
    _csv(
        paths["capacity"],
        pd.DataFrame(
            {
                "身份证号": ids,
                "日期": fetched,
                "月收入": d.estimate,
                "收入稳定性": 0.6,
                "就业状态": np.where(d.estimate > 4000, "在职", "无业"),
                "社保月数": 24,
                "有房产": np.where(d.house, "是", "否"),
                "有车辆": "否",
                "其他负债": d.other_debt,
                "月消费": np.round(d.estimate * 0.5, 2),
            }
        ),
    )
    _csv(
        paths["litigation"],
        pd.DataFrame(
            {
                "身份证号": ids,
                "日期": fetched,
                "被诉案件数": d.dead.astype(int),
                "被执行案件数": 2 * d.dead,
                "终本案件数": 2 * d.dead,
                "失信被执行人": np.where(d.dead, "是", "否"),
                "限制高消费": "否",
            }
        ),
    )
    who = np.concatenate([e[0] for e in log])
    day = np.concatenate([np.full(len(e[0]), e[1]) for e in log])
    action = np.concatenate([e[2] for e in log])
    outcome = np.concatenate([e[3] for e in log])
    propensity = np.concatenate([e[4] for e in log])
    hours = rng.integers(9, 18, len(who))
    moment = (
        date(day)
        + " "
        + pd.Series(hours).map("{:02d}:".format)
        + pd.Series(rng.integers(0, 60, len(who))).map("{:02d}:00".format)
    )
    _csv(
        paths["events"],
        pd.DataFrame(
            {
                "案件编号": case_ids[who],
                "债权机构": names[who],
                "时间": moment,
                "处置动作": action,
                "处置人": np.where(np.isin(action, ["voice_call", "sms_warning", "close"]), "system", "M01"),
                "结果": outcome,
                "金额": np.where(outcome == "agreement", d.principal[who], np.nan),
                "决策概率": np.round(propensity, 6) if record_propensity else None,
            }
        ).sort_values(["案件编号", "时间"], kind="stable"),
    )
    moment_utc = pd.Timestamp(snapshot, tz="Asia/Shanghai").tz_convert("UTC")
    truth = truth.assign(case_id=case_ids[truth["i"]], creditor=names[truth["i"]], snapshot=moment_utc)
    truth[["case_id", "creditor", "snapshot", "action", "logging_probability", "p_settle_90d"]].to_csv(
        paths["truth_actions"], index=False
    )
    logging = (
        truth.assign(part=truth["logging_probability"] * truth["p_settle_90d"])
        .groupby(["case_id", "creditor", "snapshot"], as_index=False)["part"]
        .sum()
        .rename(columns={"part": "p_settle_90d"})
    )
    logging.to_csv(paths["truth_snapshot"], index=False)
    return paths
