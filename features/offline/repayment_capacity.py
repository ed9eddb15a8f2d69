"""The ``repayment_capacity`` offline table: per debtor and moment, the latest capacity snapshot
known by then (income, employment, property, other debt, spending and their ratios to income).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.offline.asof import snapshot_table
from features.offline.schemas import EMPLOYMENT_VALUES, SCHEMAS, as_flag, as_float, ratio


def _capacity_columns(chosen: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of the chosen ``capacity_snapshots`` rows (CNY per month, fractions)."""
    income = as_float(chosen["monthly_income"])
    debt = as_float(chosen["other_debt"])
    spend = as_float(chosen["monthly_spend"])
    employment = chosen["employment"].fillna("unknown").to_numpy(dtype=object)
    out = pd.DataFrame({"monthly_income": income, "income_stability": as_float(chosen["income_stability"])})
    for e in EMPLOYMENT_VALUES:
        out[f"employment_{e}"] = (employment == e).astype(np.int32)
    out["social_insurance_months"] = as_float(chosen["social_insurance_months"])
    out["has_property"] = as_flag(chosen["has_property"])
    out["has_vehicle"] = as_flag(chosen["has_vehicle"])
    out["other_debt"] = debt
    out["monthly_spend"] = spend
    out["debt_to_income"] = ratio(debt, income)
    out["spend_to_income"] = ratio(spend, income)
    out["capacity_as_of_ts"] = chosen["_own"].to_numpy()
    return out


def build_repayment_capacity(frame: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Capacity features per debtor and availability time from ``capacity_snapshots`` rows."""
    return snapshot_table(frame, as_of_s, _capacity_columns, SCHEMAS["repayment_capacity"]())
