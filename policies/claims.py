"""Claim amounts computed to a date (``policies/claims.yaml``), with the computation shown; and the
limitation period.

For a case overdue since ``D`` and a claim date ``T`` (``d`` = days from D to T, year of
``day_count`` days), principal ``P``, contract rate ``r``:

- interest = P x r x d / day_count;
- penalty interest (罚息) = P x r x ``penalty_markup`` x d / day_count (the overdue surcharge);
- fees as the case file gives them;
- legal cap: interest + penalty + fees at most P x ``legal_cap_annual_rate`` x d / day_count;
  the excess is cut from the penalty first, then the fees, then the interest;
- without a contract rate, the interest and penalty the creditor declared are taken, capped alike;
- what the debtor paid is applied to fees, then penalty and interest, then principal (Civil Code
  art. 561); the rest is the recoverable claim.

Each amount is rounded to the fen (half up). The limitation period (诉讼时效) ends
``limitation_years`` after the overdue date, or after the last agreement or payment when those
restart it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from policies.facts import SHANGHAI_OFFSET_S, Facts, nan_to_num
from policies.schema import Node

DAY_S = 86_400


@dataclass(frozen=True)
class ClaimRules:
    version: str
    legal_cap_annual_rate: float  # fraction a year: interest, penalty and fees together
    penalty_markup: float  # penalty interest as a fraction of the contract rate
    day_count: int  # days in the interest year
    limitation_years: int
    restart_on_settlement: bool  # an agreement or payment restarts the limitation period


def parse_claims(root: Node) -> ClaimRules:
    top = root.mapping(
        allowed=(
            "version",
            "source",
            "legal_cap_annual_rate",
            "penalty_markup",
            "day_count",
            "limitation_years",
            "restart_on_settlement",
        ),
        required=("version", "legal_cap_annual_rate", "penalty_markup", "day_count", "limitation_years"),
    )
    return ClaimRules(
        version=str(top["version"].value),
        legal_cap_annual_rate=top["legal_cap_annual_rate"].number(0, 1),
        penalty_markup=top["penalty_markup"].number(0, 5),
        day_count=int(top["day_count"].number(360, 366)),
        limitation_years=top["limitation_years"].whole(1),
        restart_on_settlement=(top["restart_on_settlement"].flag() if "restart_on_settlement" in top else True),
    )


def fen(values: np.ndarray) -> np.ndarray:
    """CNY amounts rounded to the fen, half up (amounts here are never negative)."""
    return np.floor(np.asarray(values, dtype=np.float64) * 100 + 0.5 + 1e-9) / 100


def local_day(epoch_s: np.ndarray) -> np.ndarray:
    """The calendar day in Asia/Shanghai of epoch seconds, as days since 1970-01-01 (NaN stays)."""
    return np.floor((epoch_s + SHANGHAI_OFFSET_S) / DAY_S)


@dataclass(frozen=True)
class Claims:
    """The claim of every case at its claim date, by component, in CNY (NaN where unknown)."""

    claim_day: np.ndarray  # days since 1970-01-01 (Asia/Shanghai calendar)
    days: np.ndarray  # overdue days at the claim date
    rate: np.ndarray  # contract annual rate, NaN when the case file gives none
    principal: np.ndarray
    interest_full: np.ndarray  # before the legal cap
    penalty_full: np.ndarray
    fees_full: np.ndarray
    cap_total: np.ndarray  # most interest + penalty + fees may come to
    interest: np.ndarray  # after the cap
    penalty: np.ndarray
    fees: np.ndarray
    paid: np.ndarray
    outstanding: np.ndarray  # recoverable claim: capped total minus what was paid

    @property
    def total(self) -> np.ndarray:
        return self.principal + self.interest + self.penalty + self.fees


def compute_claims(facts: Facts, rules: ClaimRules, claim_ts: np.ndarray | None = None) -> Claims:
    """Claims of every case at ``claim_ts`` (epoch seconds; default each case's ``decision_ts``)."""
    claim_day = local_day(facts["decision_ts"] if claim_ts is None else claim_ts)
    overdue_day = local_day(facts["overdue_since_ts"])
    days = np.maximum(nan_to_num(claim_day - overdue_day, nan=0.0), 0.0)
    principal = fen(nan_to_num(facts["principal"], nan=0.0))
    rate = facts["annual_rate"]
    years = days / rules.day_count
    has_rate = ~np.isnan(rate)
    interest_full = np.where(has_rate, fen(principal * nan_to_num(rate) * years), fen(facts["interest"]))
    penalty_full = np.where(
        has_rate, fen(principal * nan_to_num(rate) * rules.penalty_markup * years), fen(facts["penalty"])
    )
    fees_full = fen(facts["fees"])
    cap_total = fen(principal * rules.legal_cap_annual_rate * years)
    excess = np.maximum(interest_full + penalty_full + fees_full - cap_total, 0.0)
    penalty, excess = _take(penalty_full, excess)
    fees, excess = _take(fees_full, excess)
    interest, _ = _take(interest_full, excess)
    paid = fen(facts["paid_amount_total"])
    left = paid.copy()
    remaining = []
    for part in (fees, penalty, interest, principal):  # Civil Code art. 561: costs, interest, principal
        rest, left = _take(part, left)
        remaining.append(rest)
    return Claims(
        claim_day=claim_day,
        days=days,
        rate=rate,
        principal=principal,
        interest_full=interest_full,
        penalty_full=penalty_full,
        fees_full=fees_full,
        cap_total=cap_total,
        interest=interest,
        penalty=penalty,
        fees=fees,
        paid=paid,
        outstanding=fen(np.sum(remaining, axis=0)),
    )


def _take(amount: np.ndarray, budget: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``amount`` less what ``budget`` covers of it, and the budget left."""
    used = np.minimum(amount, budget)
    return fen(amount - used), fen(budget - used)


def limitation_end_day(facts: Facts, rules: ClaimRules) -> np.ndarray:
    """The day (days since 1970-01-01) the limitation period ends: ``limitation_years`` after the
    overdue date, or after the last agreement or payment when that restarts it (NaN if unknown)."""
    start = local_day(facts["overdue_since_ts"])
    if rules.restart_on_settlement:
        settled = local_day(facts["decision_ts"] - facts["days_since_last_settled"] * DAY_S)
        start = np.fmax(start, settled)
    known = ~np.isnan(start)
    out = np.full(facts.n, np.nan)
    if 0 < known.sum() <= 16:  # the service's one case: pandas' DateOffset costs milliseconds
        out[known] = [_years_later(int(day), rules.limitation_years) for day in start[known]]
    elif known.any():
        dates = pd.to_datetime(start[known], unit="D") + pd.DateOffset(years=rules.limitation_years)
        out[known] = (dates - pd.Timestamp("1970-01-01")).days.to_numpy(dtype=np.float64)
    return out


_EPOCH = dt.date(1970, 1, 1)


def _years_later(day: int, years: int) -> float:
    """The day ``years`` calendar years after ``day`` (days since 1970-01-01); 29 February becomes
    28 February in a common year, as pandas' ``DateOffset`` does."""
    date = _EPOCH + dt.timedelta(days=day)
    try:
        moved = date.replace(year=date.year + years)
    except ValueError:
        moved = date.replace(year=date.year + years, day=28)
    return float((moved - _EPOCH).days)


def _date(day: float) -> str:
    return "-" if np.isnan(day) else str(np.datetime64(int(day), "D"))


def computation(claims: Claims, i: int, rules: ClaimRules) -> str:
    """The computation of case ``i``'s claim, in Chinese words and figures (what the court list shows)."""
    p, d = claims.principal[i], claims.days[i]
    basis = f"{d:.0f}/{rules.day_count}"
    if np.isnan(claims.rate[i]):
        lines = [f"无合同利率：按债权人申报利息 {claims.interest_full[i]:,.2f}、罚息 {claims.penalty_full[i]:,.2f}"]
    else:
        r = claims.rate[i]
        lines = [
            f"利息 {p:,.2f} × {r:.2%} × {basis} = {claims.interest_full[i]:,.2f}",
            f"罚息 {p:,.2f} × {r:.2%} × {rules.penalty_markup:g} × {basis} = {claims.penalty_full[i]:,.2f}",
        ]
    lines.append(f"费用 {claims.fees_full[i]:,.2f}")
    charged = claims.interest_full[i] + claims.penalty_full[i] + claims.fees_full[i]
    cap = (
        f"上限 {p:,.2f} × {rules.legal_cap_annual_rate:.2%} × {basis} = {claims.cap_total[i]:,.2f}，"
        f"利息、罚息、费用合计 {charged:,.2f}"
    )
    if charged > claims.cap_total[i]:
        cap += (
            f"，超出 {charged - claims.cap_total[i]:,.2f}，依次核减罚息、费用、利息"
            f"（利息 {claims.interest[i]:,.2f}，罚息 {claims.penalty[i]:,.2f}，费用 {claims.fees[i]:,.2f}）"
        )
    else:
        cap += "，未超上限"
    lines.append(cap)
    lines.append(
        f"合计 {p:,.2f} + {claims.interest[i]:,.2f} + {claims.penalty[i]:,.2f} + {claims.fees[i]:,.2f} = "
        f"{claims.total[i]:,.2f}，已还 {claims.paid[i]:,.2f}（先抵费用、再抵利息、后抵本金），"
        f"截至 {_date(claims.claim_day[i])} 未还 {claims.outstanding[i]:,.2f} 元"
    )
    return "；".join(lines)
