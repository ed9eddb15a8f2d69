"""The ``litigation`` offline table: per debtor and moment, the latest court-data snapshot known
by then (cases as defendant, enforcement, terminated for no assets, dishonest list, restrictions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.offline.asof import snapshot_table
from features.offline.schemas import SCHEMAS, as_flag


def _litigation_columns(chosen: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of the chosen ``litigation_records`` rows (counts and flags)."""
    out = pd.DataFrame()
    for name in ("defendant_cases", "enforcement_cases", "terminated_no_assets"):
        out[name] = chosen[name].fillna(0).to_numpy().astype(np.int32)
    out["dishonest_listed"] = as_flag(chosen["dishonest_listed"])
    out["consumption_restricted"] = as_flag(chosen["consumption_restricted"])
    out["litigation_as_of_ts"] = chosen["_own"].to_numpy()
    return out


def build_litigation(frame: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Litigation features per debtor and availability time from ``litigation_records`` rows."""
    return snapshot_table(frame, as_of_s, _litigation_columns, SCHEMAS["litigation"]())
