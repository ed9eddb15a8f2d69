"""Claim amounts a court can check by hand: principal, interest and penalty at the contract rate,
the legal cap, payments applied in the order of the Civil Code, and the limitation date."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from policies.claims import computation, compute_claims, limitation_end_day
from policies.config import load_policy
from policies.facts import Facts

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def at(year: int, month: int, day: int, hour: int = 0) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=SHANGHAI).timestamp()


def test_hand_checked_claim_with_the_legal_cap_and_a_payment() -> None:
    rules = load_policy().claims  # 24 % cap on interest + penalty + fees, penalty 0.5 x the rate, 365 days
    facts = Facts.from_mapping(
        {
            "principal": 10_000.00,
            "annual_rate": 0.18,
            "interest": 999.0,
            "penalty": 999.0,
            "fees": 200.00,
            "overdue_since_ts": at(2023, 1, 1),
            "decision_ts": at(2024, 1, 1, 15),
            "paid_amount_total": 1_000.00,
        }
    )
    claims = compute_claims(facts, rules)
    # 365 days: interest 10,000 x 18 % = 1,800.00; penalty 10,000 x 18 % x 0.5 = 900.00; fees 200.00.
    # Cap 10,000 x 24 % = 2,400.00 < 2,900.00: 500.00 is cut from the penalty, which keeps 400.00.
    assert claims.days[0] == 365
    assert (claims.interest_full[0], claims.penalty_full[0], claims.cap_total[0]) == (1800.00, 900.00, 2400.00)
    assert (claims.interest[0], claims.penalty[0], claims.fees[0]) == (1800.00, 400.00, 200.00)
    assert claims.total[0] == 12_400.00
    # 1,000.00 paid goes to the fees (200), the penalty (400), then the interest (400 of 1,800).
    assert claims.outstanding[0] == 11_400.00
    text = computation(claims, 0, rules)
    assert "利息 10,000.00 × 18.00% × 365/365 = 1,800.00" in text and "费用 200.00" in text
    assert "超出 500.00" in text and "截至 2024-01-01 未还 11,400.00 元" in text


def test_within_the_cap_and_without_a_contract_rate() -> None:
    rules = load_policy().claims
    facts = Facts.from_frame(
        pd.DataFrame(
            {
                "principal": [5_000.00, 5_000.00],
                "annual_rate": [0.10, np.nan],
                "interest": [0.0, 300.0],
                "penalty": [0.0, 150.0],
                "fees": [0.0, 0.0],
                "overdue_since_ts": [at(2024, 3, 1)] * 2,
                "decision_ts": [at(2024, 9, 1, 10)] * 2,
            }
        )
    )
    claims = compute_claims(facts, rules)
    # 184 days at 10 %: 5,000 x 0.10 x 184/365 = 252.05; penalty half of that, 126.03; cap 604.93.
    assert claims.interest[0] == pytest.approx(252.05) and claims.penalty[0] == pytest.approx(126.03)
    assert claims.outstanding[0] == pytest.approx(5_378.08)
    # No rate: the declared interest and penalty, 450.00 in all, within the cap of 604.93.
    assert claims.outstanding[1] == pytest.approx(5_450.00)
    assert "无合同利率" in computation(claims, 1, rules)


def test_limitation_ends_three_years_after_the_overdue_date_or_the_last_payment() -> None:
    rules = load_policy().claims
    facts = Facts.from_frame(
        pd.DataFrame(
            {
                "overdue_since_ts": [at(2023, 2, 28), at(2023, 2, 28)],
                "decision_ts": [at(2025, 6, 1)] * 2,
                "days_since_last_settled": [np.nan, 31.0],
            }
        )
    )
    days = limitation_end_day(facts, rules)
    assert str(np.datetime64(int(days[0]), "D")) == "2026-02-28"
    assert str(np.datetime64(int(days[1]), "D")) == "2028-05-01"  # a payment on 2025-05-01 restarted it
