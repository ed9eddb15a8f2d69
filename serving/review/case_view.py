"""One case as the supervisor reviews it: the masked profile, both scores, the ranked and the
blocked actions, the explanation of each score, the reviews so far and any open dispute.

The recommendation shown is the one recorded in the audit trail (kind ``recommendation``): the
feature values, scores and model versions it was decided with. A case with no recommendation
yet (a disputed case) is explained with the current champions on the online features. Nothing
here holds a name, an ID number or a phone number: the ledger's masked forms and the debtor's
pseudonym only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import text

from concord.audit import records
from serving.review import store
from serving.review.context import ReviewContext
from serving.review.explain import Waterfall, waterfall

MODELS = {"reachability": "p_reach", "settlement": "p_settle"}
EVENTS_SHOWN = 10


@dataclass
class CaseView:
    """Everything the case page shows."""

    case: dict[str, Any]
    decision: dict[str, Any] | None
    answer: dict[str, Any]
    scores: dict[str, float | None]
    features: dict[str, Any]
    waterfalls: list[Waterfall]
    events: list[dict[str, Any]]
    reviews: list[Any]
    dispute: dict[str, Any] | None
    recorded: bool  # the explanation uses what the recommendation was decided with
    notes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> dict[str, tuple[str, ...]]:
        """Action -> the rules that blocked it, for this recommendation."""
        return {b["action"]: tuple(b.get("rules", ())) for b in self.answer.get("blocked", [])}


def find_case_row(context: ReviewContext, case_id: str, creditor: str) -> dict[str, Any] | None:
    """The case's ledger row with masked identifiers only (no name), or None."""
    from features.profile import ProfileError, find_case

    try:
        return find_case(context.ledger, case_id, creditor)
    except ProfileError:
        return None


def case_by_pk(context: ReviewContext, case_pk: int) -> dict[str, Any] | None:
    """The case's ledger row by its key, masked (no name), or None."""
    with context.ledger.connect() as connection:
        row = connection.execute(
            text(
                "SELECT c.case_id, cr.name AS creditor FROM cases c JOIN creditors cr "
                "ON cr.id = c.creditor_id WHERE c.id = :pk"
            ),
            {"pk": int(case_pk)},
        ).first()
    return find_case_row(context, str(row.case_id), str(row.creditor)) if row else None


def _events(context: ReviewContext, case_pk: int) -> list[dict[str, Any]]:
    with context.ledger.connect() as connection:
        return [
            dict(r._mapping)
            for r in connection.execute(
                text(
                    "SELECT at, action, actor, outcome, CAST(amount AS FLOAT) AS amount FROM events "
                    "WHERE case_pk = :pk ORDER BY at DESC, id DESC"
                ),
                {"pk": case_pk},
            ).fetchmany(EVENTS_SHOWN)
        ]


def recorded_recommendation(context: ReviewContext, decision_id: str) -> dict[str, Any] | None:
    """The payload of the decision's ``recommendation`` audit record, or None."""
    found = records(context.audit, kind="recommendation", decision_id=decision_id, limit=1)
    return found[-1].payload if found else None


def _answer_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The engine's answer (``policies.answers.Recommendation.to_dict``) inside a payload."""
    for key in ("recommendation", "answer"):
        if isinstance(payload.get(key), dict):
            return dict(payload[key])
    return dict(payload)


def _scores_of(payload: dict[str, Any], answer: dict[str, Any]) -> dict[str, float | None]:
    found = payload.get("scores")
    scores: dict[str, Any] = found if isinstance(found, dict) else {}
    out: dict[str, float | None] = {}
    for column in MODELS.values():
        value = scores.get(column, payload.get(column, answer.get(column)))
        out[column] = None if value is None else float(value)
    return out


def _live_features(context: ReviewContext, case: dict[str, Any]) -> dict[str, Any]:
    from features.repo import SETTLEMENT_V1
    from features.store.retrieval import online_features

    row = {"case_pk": int(case["case_pk"]), "debtor_key": case.get("debtor_key") or ""}
    online = online_features(context.settings, [row], SETTLEMENT_V1, store=context.feature_store)
    return {name: values[0] for name, values in online.items()}


def _frame(features: dict[str, Any]) -> pd.DataFrame:
    clean = {k: (math.nan if v is None else v) for k, v in features.items() if not isinstance(v, str)}
    return pd.DataFrame([clean])


def build(context: ReviewContext, case: dict[str, Any], decision: dict[str, Any] | None, lang: str) -> CaseView:
    """The case page's content for ``case`` (a :func:`find_case_row` row) and its decision."""
    notes: list[str] = []
    payload = recorded_recommendation(context, decision["decision_id"]) if decision else None
    answer = _answer_of(payload) if payload else {}
    features = payload.get("features") if payload and isinstance(payload.get("features"), dict) else None
    recorded = features is not None
    versions = dict(answer.get("model_versions") or (payload.get("model_versions") if payload else None) or {})
    if features is None:
        try:
            features = _live_features(context, case)
        except Exception as error:  # the page still shows the ledger's facts
            notes.append(f"online features unavailable ({type(error).__name__})")
            features = {}
        versions = {}
    scores = _scores_of(payload or {}, answer)
    waterfalls: list[Waterfall] = []
    frame = _frame(features)
    for name, column in MODELS.items():
        try:
            model, version = context.model(name, versions.get(name))
        except LookupError as error:
            notes.append(str(error))
            continue
        if frame.empty or not len(frame.columns):
            continue
        explained = waterfall(name, version, model, frame, lang)
        waterfalls.append(explained)
        if scores.get(column) is None:
            scores[column] = explained.probability
    reviews = [
        r
        for r in records(context.audit, kind="review", case_id=str(case["case_id"]), limit=50)
        if r.creditor == case["creditor"]
    ]
    disputes = store.open_disputes(context.ledger, case_pk=int(case["case_pk"]))
    return CaseView(
        case=case,
        decision=decision,
        answer=answer,
        scores=scores,
        features=features,
        waterfalls=waterfalls,
        events=_events(context, int(case["case_pk"])),
        reviews=reviews,
        dispute=disputes[0] if disputes else None,
        recorded=recorded,
        notes=notes,
    )


def local_time(value: Any) -> str:
    """A UTC timestamp (aware, naive or text) in Asia/Shanghai, to the minute."""
    if value is None or value == "":
        return "—"
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M")
