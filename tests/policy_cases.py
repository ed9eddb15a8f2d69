"""Cases as the policy engine sees them, for tests: every fact given (history facts included, so
no conservative fallback stands in for them), overridable one by one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from policies.catalogue import Catalogue
from policies.facts import history_fact_names

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MORNING = dt.datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)


def local(hour: int, minute: int = 0, day: int = 10) -> float:
    """Epoch seconds of 2026-03-<day> hour:minute in Asia/Shanghai."""
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI).timestamp()


def case(catalogue: Catalogue, **overrides: Any) -> dict[str, Any]:
    """A reachable warning-stage debtor with a working phone, a 10,000 CNY credit-card debt at 18 %,
    overdue since 2025-03-10, nothing in its history that blocks anything."""
    facts: dict[str, Any] = {name: 0.0 for name in history_fact_names(catalogue.contact_channels, catalogue.names)}
    facts.update(
        {
            "case_id": "C1",
            "creditor": "闽江商业银行信用卡中心",
            "debtor_key": "d1",
            "court": "晋江市人民法院",
            "province": "福建省",
            "product": "credit_card",
            "stage": "warning",
            "stage_code": 1.0,
            "in_scope": 1.0,
            "has_phone": 1.0,
            "last_status_active": 1.0,
            "principal": 10_000.0,
            "interest": 0.0,
            "penalty": 0.0,
            "fees": 0.0,
            "annual_rate": 0.18,
            "overdue_since_ts": dt.datetime(2025, 3, 10, tzinfo=SHANGHAI).timestamp(),
            "paid_amount_total": 0.0,
            "attempts_total": 2.0,
            "ever_reached": 0.0,
            "reached_total": 0.0,
            "days_since_first_event": 6.0,
            "days_since_last_reached": None,
            "days_since_last_settled": None,
            "monthly_income": 8000.0,
            "monthly_spend": 3000.0,
            "other_debt": 0.0,
            "income_stability": 0.8,
            "has_property": 0.0,
            "terminated_no_assets": 0.0,
            "disputed_total": 0.0,
            "p_reach": 0.3,
            "p_settle": 0.05,
            "decision_ts": MORNING.timestamp(),
        }
    )
    facts.update(overrides)
    return facts


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Cases as a batch DataFrame."""
    return pd.DataFrame(rows)
