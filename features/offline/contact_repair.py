"""The ``contact_repair`` offline table: per debtor and moment, what the phone checks and the
repair vendor's records known by then say (checks by status, the latest status, repairs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.offline.asof import epoch_seconds, grouped_cummax, latest_by_own_time, sort_source
from features.offline.schemas import PHONE_STATUS_VALUES, SCHEMAS, stamp_table


def build_contact_repair(frame: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Contact-repair features per debtor and availability time from ``contact_checks`` rows
    (columns debtor_key, checked_at, phone_status, repaired_numbers, received_at)."""
    src = sort_source(frame, "debtor_key", epoch_seconds(frame["checked_at"]), as_of_s)
    f, ent = src.frame, src.ent
    block_start = np.searchsorted(ent, ent, side="left")

    def running(indicator: np.ndarray) -> np.ndarray:
        total = np.cumsum(indicator.astype(np.int64))
        before = np.where(block_start > 0, total[np.maximum(block_start - 1, 0)], 0)
        return (total - before).astype(np.int32)

    status = f["phone_status"].to_numpy(dtype=object)
    repaired = f["repaired_numbers"].fillna(0).to_numpy(dtype=np.int64)
    success = repaired > 0
    latest = latest_by_own_time(src)
    own = f["_own"].to_numpy()
    repair_time = np.where(success, own, -1.0)
    # latest successful repair known so far: cummax of (time + 1), 0 = none
    last_repair = grouped_cummax(ent, np.where(success, repair_time + 1, 0).astype(np.int64)) - 1
    out = pd.DataFrame({"debtor_key": src.keys[ent]})
    out["checks_total"] = running(np.ones(len(f), dtype=bool))
    for s in ("active", "suspended", "vacant", "unknown"):
        out[f"checks_{s}"] = running(status == s)
    out["repaired_numbers_total"] = running(repaired) if len(f) else np.zeros(0, np.int32)
    out["repair_successes"] = running(success)
    for s in PHONE_STATUS_VALUES:
        out[f"last_status_{s}"] = (status[latest] == s).astype(np.int32)
    out["last_check_ts"] = own[latest]
    out["last_repair_ts"] = np.where(last_repair >= 0, last_repair.astype(np.float64), np.nan)
    rows = src.rows
    return stamp_table(out.iloc[rows].reset_index(drop=True), src.avail[rows], SCHEMAS["contact_repair"]())
