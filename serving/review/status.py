"""The approval state of recommendations, as the platform reads it (``decision_status``): whether a
sensitive action was approved, overridden with another action, or still waits for a supervisor.

A platform key sees its own creditor's decisions only; a decision it may not see is reported as
unknown, like one that does not exist, so that ids cannot be probed across creditors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from concord.ledger import Decision, table
from serving.auth import PLATFORM, Principal

# What the platform may do with a decision in each approval state.
MAY_ACT = {"not_required": True, "approved": True, "overridden": True, "pending": False}


def decision_statuses(
    audit: Engine, principal: Principal, decision_ids: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The state of each decision the key may see (in the order asked), and the ids it cannot."""
    decisions = table(Decision)
    wanted = list(dict.fromkeys(decision_ids))
    with audit.connect() as connection:
        rows = {
            row.decision_id: row
            for row in connection.execute(select(decisions).where(decisions.c.decision_id.in_(wanted)))
        }
    found, unknown = [], []
    for decision_id in wanted:
        row = rows.get(decision_id)
        if row is None or (principal.role == PLATFORM and row.creditor != principal.creditor):
            unknown.append(decision_id)
            continue
        found.append(
            {
                "decision_id": row.decision_id,
                "case_id": row.case_id,
                "creditor": row.creditor,
                "recommended_action": row.action,
                "sensitive": bool(row.sensitive),
                "approval": row.approval,
                "final_action": row.final_action,
                "may_act": MAY_ACT.get(row.approval, False),
                "decided_at": row.created_at.isoformat(),
                "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
            }
        )
    return found, unknown
