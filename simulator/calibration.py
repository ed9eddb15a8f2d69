"""Calibration of the simulated world: the intercepts tuned to the published pilots
(``Calibration``) and the report that measures a world against the pilots' base rates.

Only intercepts are tuned; no outcome is forced. Targets and definitions are in
``docs/simulator.md`` (calibration) and ``/shared/DOMAIN.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES, creditor_kind

if TYPE_CHECKING:
    from simulator.world import World


@dataclass(frozen=True)
class Calibration:
    """Intercepts tuned so that the pilots' base rates come out (logit scale).

    ``reach_w``/``contact_m``/``settle_m`` are per creditor type (bank, consumer finance);
    ``repair`` is the contact-repair intercept.
    """

    reach_w: tuple[float, float] = (-2.40, -2.785)
    contact_m: tuple[float, float] = (0.6, 0.2)
    settle_m: tuple[float, float] = (-3.34, -4.16)
    repair: float = -1.022


CALIBRATION = Calibration()


TARGETS = {  # metric -> creditor type -> target share
    "reached_share": {"bank": 493 / 1514, "consumer_finance": 1712 / 8791},
    "settled_of_reached": {"bank": 0.5314, "consumer_finance": 0.2634},
    "settled_share": {"bank": 0.1731, "consumer_finance": 0.0513},
    "repair_success": {"all": 0.25},
}
TOLERANCE = 0.03


def calibration_report(world: World) -> pd.DataFrame:
    """Measured base rates against the pilots' (shares in [0, 1]; tolerance in absolute points).

    Rows: reached_share, settled_of_reached and settled_share per creditor type, and
    repair_success (contact_repair events with outcome ``delivered``) over all cases.
    """
    events, cases = world.events, world.cases
    kinds = cases["creditor"].astype(str).map(creditor_kind).to_numpy()
    index = pd.Index(cases["case_id"].astype(str))
    if isinstance(events["case_id"].dtype, pd.CategoricalDtype):
        codes = _case_positions(events["case_id"], index)
    else:
        codes = index.get_indexer(events["case_id"].astype(str))
    outcome = events["outcome"].astype(str).to_numpy()
    reached = np.zeros(len(cases), dtype=bool)
    reached[codes[np.isin(outcome, REACHED_OUTCOMES)]] = True
    settled = np.zeros(len(cases), dtype=bool)
    settled[codes[np.isin(outcome, SETTLED_OUTCOMES)]] = True
    rows = []
    for kind in ("bank", "consumer_finance"):
        sel = kinds == kind
        measured = {
            "reached_share": reached[sel].mean() if sel.any() else np.nan,
            "settled_of_reached": settled[sel & reached].mean() if (sel & reached).any() else np.nan,
            "settled_share": settled[sel].mean() if sel.any() else np.nan,
        }
        for metric, value in measured.items():
            rows.append((metric, kind, float(value), TARGETS[metric][kind]))
    repairs = events["action"].astype(str).to_numpy() == "contact_repair"
    success = float((outcome[repairs] == "delivered").mean()) if repairs.any() else np.nan
    rows.append(("repair_success", "all", success, TARGETS["repair_success"]["all"]))
    report = pd.DataFrame(rows, columns=["metric", "creditor_type", "measured", "target"])
    report["tolerance"] = TOLERANCE
    report["ok"] = (report["measured"] - report["target"]).abs() <= report["tolerance"]
    return report


def _case_positions(column: pd.Series, index: pd.Index) -> np.ndarray:
    """Row positions in ``index`` of a categorical column's values, via its categories."""
    cat_pos = index.get_indexer(column.cat.categories.astype(str))
    return cat_pos[column.cat.codes.to_numpy()]
