"""What the review page reads and writes: the queue of recommendations, disputed cases (异议)
waiting for a supervisor, and the reviews themselves.

Recommendations and their approval state are the service store's ``decisions`` (``concord.audit``);
disputes are the ledger's events with outcome ``disputed`` after the case's latest resolution
(``dispute_resolutions``). A review changes the decision's row and appends a ``review`` record to
the audit chain in one transaction, so the two never disagree; a decision is reviewed once (a
second reviewer is told who was first). Review records are labels for later: the recommended
action, the action a person chose instead and why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, func, select, text, update

from concord.audit import append
from concord.ledger import Decision, UTCDateTime, table, utcnow

QUEUE_LIMIT = 200
SCAN_LIMIT = 5000  # decisions read to filter by mediator, which lives in the ledger
STATUSES = {
    "pending": ("pending",),
    "reviewed": ("approved", "overridden"),
    "all": ("pending", "approved", "overridden", "not_required"),
}
FILTERS = ("creditor", "stage", "action", "risk_flag", "mediator")
REASON_LIMIT = 2000  # characters


class ReviewRefused(ValueError):
    """A review that cannot be recorded; the message is one sentence for the supervisor."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def queue(audit: Engine, ledger: Engine, status: str = "pending", **filters: str | None) -> list[dict[str, Any]]:
    """Decisions in ``status`` (pending: awaiting approval, oldest first; reviewed; all), matching
    every filter given (``creditor, stage, action`` exactly, ``risk_flag`` among the flags,
    ``mediator``: the one recorded with the decision, else the case's current mediator in the
    ledger). Each row carries ``mediator`` so found."""
    decisions = table(Decision)
    query = select(decisions).where(decisions.c.approval.in_(STATUSES.get(status, STATUSES["pending"])))
    for name in ("creditor", "stage", "action"):
        value = filters.get(name)
        if value:
            query = query.where(decisions.c[name] == value)
    flag = filters.get("risk_flag")
    if flag:
        # risk_flags is '; '-joined: match the whole flag, not a part of another one
        padded = "; " + func.coalesce(decisions.c.risk_flags, "") + ";"
        query = query.where(padded.contains(f"; {flag};"))
    order = decisions.c.created_at.asc() if status == "pending" else decisions.c.created_at.desc()
    mediator = filters.get("mediator")
    with audit.connect() as connection:
        rows = [
            dict(row._mapping)
            for row in connection.execute(query.order_by(order).limit(SCAN_LIMIT if mediator else QUEUE_LIMIT))
        ]
    current = current_mediators(ledger, [(r["case_id"], r["creditor"]) for r in rows if not r["mediator"]])
    for row in rows:
        row["mediator"] = row["mediator"] or current.get((row["case_id"], row["creditor"]), "")
    if mediator:
        rows = [row for row in rows if row["mediator"] == mediator]
    return rows[:QUEUE_LIMIT]


def current_mediators(ledger: Engine, cases: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(case_id, creditor) -> the case's current mediator: its latest Concord assignment, else the
    mediator who last acted on it (``policies.staffing``'s rule), for these cases only."""
    if not cases:
        return {}
    sql = text("""
        SELECT c.case_id, cr.name AS creditor,
               (SELECT a.mediator_id FROM assignments a WHERE a.case_pk = c.id ORDER BY a.id DESC LIMIT 1) AS assigned,
               (SELECT e.actor FROM events e WHERE e.case_pk = c.id AND e.actor <> 'system'
                ORDER BY e.at DESC, e.id DESC LIMIT 1) AS acted
        FROM cases c JOIN creditors cr ON cr.id = c.creditor_id WHERE c.case_id IN :ids
    """).bindparams(bindparam("ids", expanding=True))
    wanted = set(cases)
    with ledger.connect() as connection:
        rows = connection.execute(sql, {"ids": sorted({case_id for case_id, _ in cases})}).all()
    return {
        (r.case_id, r.creditor): str(r.assigned or r.acted or "") for r in rows if (r.case_id, r.creditor) in wanted
    }


def filter_values(audit: Engine) -> dict[str, list[str]]:
    """The values each exact filter can take, from the decisions on record."""
    decisions = table(Decision)
    out: dict[str, list[str]] = {}
    with audit.connect() as connection:
        for name in ("creditor", "stage", "action"):
            column = decisions.c[name]
            out[name] = [
                str(v)
                for (v,) in connection.execute(select(column).where(column.is_not(None)).distinct().order_by(column))
            ]
    return out


def mediator_ids(ledger: Engine) -> list[str]:
    """Every mediator of the ledger (the mediator filter's choices)."""
    with ledger.connect() as connection:
        return [str(v) for (v,) in connection.execute(text("SELECT mediator_id FROM mediators ORDER BY mediator_id"))]


def decision(audit: Engine, decision_id: str) -> dict[str, Any] | None:
    """One decision's current state, or None."""
    decisions = table(Decision)
    with audit.connect() as connection:
        row = connection.execute(select(decisions).where(decisions.c.decision_id == decision_id)).first()
    return dict(row._mapping) if row else None


def latest_decision(audit: Engine, case_id: str, creditor: str) -> dict[str, Any] | None:
    """The case's most recent decision, or None."""
    decisions = table(Decision)
    with audit.connect() as connection:
        row = connection.execute(
            select(decisions)
            .where(decisions.c.case_id == case_id, decisions.c.creditor == creditor)
            .order_by(decisions.c.created_at.desc())
            .limit(1)
        ).first()
    return dict(row._mapping) if row else None


@dataclass(frozen=True)
class Review:
    """A supervisor's verdict on a decision: ``approve`` it, or ``override`` it with ``action``."""

    verdict: str
    action: str | None
    reason: str


def review(
    audit: Engine,
    decision_id: str,
    verdict: Review,
    actor: str,
    *,
    actions: tuple[str, ...],
    blocked: dict[str, tuple[str, ...]],
) -> dict[str, Any]:
    """Record ``verdict`` on the decision (approval and final action) and append it to the audit
    trail, in one transaction; returns the decision's new state.

    ``actions`` are the catalogue's names; ``blocked`` the actions guardrails blocked for this
    recommendation, with their rules (compliance rules are not overridden from this page).

    Raises:
        ReviewRefused: unknown decision (404), reviewed already (409), or a bad verdict (400).
    """
    current = decision(audit, decision_id)
    if current is None:
        raise ReviewRefused(f"no recommendation has the decision id {decision_id!r}", 404)
    reason = verdict.reason.strip()
    if verdict.verdict == "approve":
        if current["approval"] != "pending":
            raise ReviewRefused(_already(current), 409)
        approval, final = "approved", current["action"]
    elif verdict.verdict == "override":
        if current["approval"] not in ("pending", "not_required"):
            raise ReviewRefused(_already(current), 409)
        final = (verdict.action or "").strip()
        if final not in actions:
            raise ReviewRefused(f"the action {final!r} is not in the catalogue; choose one of the list")
        if final == current["action"]:
            raise ReviewRefused("an override must choose another action than the one recommended; approve it instead")
        if final in blocked:
            raise ReviewRefused(
                f"{final} is blocked for this case by the rule {', '.join(blocked[final])}; "
                "a compliance rule cannot be overridden here"
            )
        if not reason:
            raise ReviewRefused("an override needs a reason: say why the recommended action is wrong")
        approval = "overridden"
    else:
        raise ReviewRefused("the verdict must be approve or override")
    if len(reason) > REASON_LIMIT:
        raise ReviewRefused(f"the reason is longer than {REASON_LIMIT} characters")
    now = utcnow()
    decisions = table(Decision)
    payload = {
        "decision_id": decision_id,
        "verdict": verdict.verdict,
        "recommended_action": current["action"],
        "final_action": final,
        "reason": reason,
        "approval_before": current["approval"],
        "approval": approval,
        "stage": current["stage"],
        "sensitive": bool(current["sensitive"]),
        "recommended_at": _iso(current["created_at"]),
        "reviewed_at": now.isoformat(),
    }
    with audit.begin() as connection:
        # The audit append goes first: on SQLite it takes the writer's lock before anything is read.
        append(
            connection,
            "review",
            payload,
            decision_id=decision_id,
            case_id=current["case_id"],
            creditor=current["creditor"],
            actor=actor,
            at=now,
        )
        changed = connection.execute(
            update(decisions)
            .where(decisions.c.decision_id == decision_id, decisions.c.approval == current["approval"])
            .values(approval=approval, final_action=final, reviewed_at=now)
        ).rowcount
        if changed != 1:  # another supervisor was quicker: the append rolls back with this
            raise ReviewRefused(_already(decision(audit, decision_id) or current), 409)
    return {**current, "approval": approval, "final_action": final, "reviewed_at": now}


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else (str(value) if value else None)


def _already(current: dict[str, Any]) -> str:
    return (
        f"this recommendation was already {current['approval']} "
        f"({current.get('final_action') or current['action']}); reload the page"
    )


def open_disputes(ledger: Engine, creditor: str | None = None, case_pk: int | None = None) -> list[dict[str, Any]]:
    """Cases (of ``creditor``, or the one case ``case_pk``) whose latest dispute (异议) came after
    their latest resolution, oldest first: ``case_pk, case_id, creditor, disputed_at, disputes``."""
    sql = """
        SELECT c.id AS case_pk, c.case_id, cr.name AS creditor, MAX(e.at) AS disputed_at, COUNT(*) AS disputes
        FROM events e JOIN cases c ON c.id = e.case_pk JOIN creditors cr ON cr.id = c.creditor_id
        WHERE e.outcome = 'disputed' {creditor}
        GROUP BY c.id, c.case_id, cr.name
        HAVING MAX(e.at) > COALESCE((SELECT MAX(r.resolved_at) FROM dispute_resolutions r
                                     WHERE r.case_pk = c.id), :never)
        ORDER BY MAX(e.at) ASC, c.id
    """
    params: dict[str, Any] = {"never": dt.datetime(1900, 1, 1, tzinfo=dt.UTC)}
    where = ""
    if creditor:
        params["creditor"] = creditor
        where += " AND cr.name = :creditor"
    if case_pk is not None:
        params["case_pk"] = int(case_pk)
        where += " AND e.case_pk = :case_pk"
    # typed: Feast registers a global sqlite3 adapter that would bind a bare datetime as epoch seconds
    query = text(sql.format(creditor=where)).bindparams(bindparam("never", type_=UTCDateTime()))
    with ledger.connect() as connection:
        rows = connection.execute(query, params).fetchmany(QUEUE_LIMIT)
    return [dict(row._mapping) for row in rows]


def resolve(ledger: Engine, audit: Engine, case: dict[str, Any], actor: str, note: str) -> None:
    """Record the supervisor's resolution of the case's open dispute: in the ledger (contact may
    resume, ``policies.history``) and in the audit trail (kind ``review``)."""
    from policies.staffing import resolve_dispute

    note = note.strip()
    if not note:
        raise ReviewRefused("say in the note how the dispute was resolved")
    if len(note) > REASON_LIMIT:
        raise ReviewRefused(f"the note is longer than {REASON_LIMIT} characters")
    now = utcnow()
    with audit.begin() as connection:
        append(
            connection,
            "review",
            {"verdict": "resolve_dispute", "note": note, "resolved_at": now.isoformat()},
            case_id=str(case["case_id"]),
            creditor=str(case["creditor"]),
            actor=actor,
            at=now,
        )
        # The audit record commits only once the ledger has the resolution.
        resolve_dispute(ledger, int(case["case_pk"]), actor, note, at=now)


LABEL_COLUMNS = (
    "decision_id",
    "case_id",
    "creditor",
    "stage",
    "sensitive",
    "recommended_at",
    "reviewed_at",
    "verdict",
    "recommended_action",
    "final_action",
    "reason",
    "reviewer",
    "audit_seq",
)


def review_labels(audit: Engine) -> list[dict[str, Any]]:
    """Every approve or override in the audit trail, oldest first: what Concord recommended, what a
    supervisor chose, why, when and by which key (the labels of human review)."""
    from concord.audit import iter_payloads

    rows = []
    for entry in iter_payloads(audit, "review"):
        payload = entry.payload
        if payload.get("verdict") not in ("approve", "override"):
            continue  # dispute resolutions are reviews of a case, not of a recommendation
        row = {name: payload.get(name) for name in LABEL_COLUMNS}
        row.update(case_id=entry.case_id, creditor=entry.creditor, reviewer=entry.actor, audit_seq=entry.seq)
        rows.append(row)
    return rows
