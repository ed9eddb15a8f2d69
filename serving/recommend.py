"""The next best action in the service: one case on the fast path, or a batch decided together,
each decision written to the audit trail (with its ``decisions`` row) before the answer leaves.

One case: the case row (one indexed read), its online features (one Feast read of
``settlement_v1``), both champions' scores and reasons on the fast path (``models.fast_path``),
the contact history from the ledger plus acknowledged events not yet imported
(``policies.history_one``), then the policy engine. A batch reads the online store once for all
its cases and lets the engine enforce per-debtor caps across them.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from concord import audit
from concord.ledger import utcnow
from features.repo import SETTLEMENT_V1
from features.store.retrieval import online_features
from policies.history_one import ledger_events, one_case_facts, resolution_times
from policies.scores import Reason
from serving.auth import Principal
from serving.cases import ApiError, CaseRow, find_case, find_cases
from serving.events import pending_events, synced_through
from serving.runtime import Champions, Runtime
from serving.schemas import CaseError, CaseRef, Recommendation

ENTITY_KEYS = ("case_pk", "debtor_key", "decision_ts")
TOP_REASONS = 3


_AS_IS = frozenset((str, int, bool, type(None)))


def plain(value: Any) -> Any:
    """A value JSON can carry: numpy scalars as Python, NaN as None, dates as ISO text."""
    kind = type(value)
    if kind in _AS_IS:  # most features and history facts: nothing to do
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def online_one(rt: Runtime, case: CaseRow, now: dt.datetime) -> dict[str, Any]:
    """The case's online features (every view of ``settlement_v1``) at ``now``: one read of each
    stored view (``serving.online``), or Feast's ``get_online_features`` where that reader does not
    apply."""
    entity = [{"case_pk": case.case_pk, "debtor_key": case.debtor_key, "decision_ts": now}]
    reader = rt.online
    if reader is not None and reader.supported():
        return {name: column[0] for name, column in reader.read(entity).items()}
    values = online_features(rt.settings, entity, SETTLEMENT_V1, store=rt.store)
    return {name: column[0] for name, column in values.items() if name not in ENTITY_KEYS}


def score_one(
    champions: Champions, features: dict[str, Any]
) -> tuple[dict[str, float], tuple[Reason, ...], dict[str, np.ndarray]]:
    """Both scores, the top reasons of each model and each model's feature row."""
    scores, reasons, rows = {}, [], {}
    for model, column in (("reachability", "p_reach"), ("settlement", "p_settle")):
        fast = champions.fast[model]
        row = fast.row(features)
        rows[model] = row
        scores[column] = float(fast.probability(row)[0])
        contributions = fast.contributions(row)[0, :-1]
        for j in np.argsort(-np.abs(contributions), kind="stable")[:TOP_REASONS]:
            value = row[0, j]
            reasons.append(
                Reason(
                    model, fast.names[j], None if np.isnan(value) else float(value), round(float(contributions[j]), 4)
                )
            )
    return scores, tuple(reasons), rows


def _audit_payload(
    decision_id: str,
    case: CaseRow,
    body: dict[str, Any],
    features: dict[str, Any],
    history: dict[str, Any],
    scores: dict[str, float],
    approval: str,
) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "case_pk": case.case_pk,
        "case_id": case.case_id,
        "creditor": case.creditor,
        "court": case.court,
        "decided_at": body["decided_at"],
        "action": body["action"],
        "approval": approval,
        "workflow": body["workflow"],
        "stage": body["stage"],
        "expected_value": body["expected_value"],
        "features": {k: plain(v) for k, v in features.items()},
        "history": {k: plain(v) for k, v in history.items()},
        "scores": scores,
        "model_versions": body["model_versions"],
        "policy_version": body["policy_version"],
        "action_value": body["action_value"],
        "ranked": body["ranked"],
        "blocked": body["blocked"],
        "flags": list(body["flags"]),
        "risk_flags": list(body["risk_flags"]),
        "reasons": body["reasons"],
        "greedy_action": body["greedy_action"],
        "explored": body["explored"],
        "epsilon": body["epsilon"],
        "propensity": body["propensity"],
        "explanation": body["explanation"],
    }


def _write(
    rt: Runtime,
    principal: Principal,
    items: Sequence[tuple[CaseRow, Any, dict[str, Any], dict[str, Any], dict[str, float]]],
) -> list[Recommendation]:
    """Audit every decision and record its state, in one transaction; then the answers."""
    catalogue = rt.policy_engine.policy.catalogue
    staged = []
    with audit.transaction(rt.audit) as connection:
        for case, answer, features, history, scores in items:
            decision_id = uuid.uuid4().hex
            sensitive = bool(catalogue[answer.action].sensitive) and not answer.fallback
            approval = "pending" if sensitive else "not_required"
            body = answer.to_dict()
            payload = _audit_payload(decision_id, case, body, features, history, scores, approval)
            seq, _ = audit.append(
                connection,
                "recommendation",
                payload,
                decision_id=decision_id,
                case_id=case.case_id,
                creditor=case.creditor,
                actor=principal.actor,
            )
            audit.record_decision(
                connection,
                decision_id=decision_id,
                case_id=case.case_id,
                creditor=case.creditor,
                court=case.court,
                stage=answer.stage,
                action=answer.action,
                sensitive=sensitive,
                risk_flags="; ".join(answer.risk_flags) or None,
            )
            staged.append((decision_id, seq, approval, sensitive, body, scores))
    out = []
    for decision_id, seq, approval, sensitive, body, scores in staged:
        body.update(decision_id=decision_id, audit_seq=seq, approval=approval, sensitive=sensitive, scores=scores)
        out.append(Recommendation.model_validate(body))
    return out


def recommend_one(rt: Runtime, principal: Principal, case_id: str, creditor: str | None) -> Recommendation:
    """The next best action for one case, audited."""
    champions = rt.require()
    now = utcnow()
    with rt.ledger.connect() as connection:
        case = find_case(connection, principal, case_id, creditor)
        after = synced_through(connection)
        past = ledger_events(connection, case.case_pk, case.debtor_key, now)
        resolved = resolution_times(connection, case.case_pk, now)
    with rt.audit.connect() as connection:
        past += pending_events(connection, after, [case.case_id], [case.creditor])
    features = online_one(rt, case, now)
    scores, reasons, _ = score_one(champions, features)
    history = one_case_facts(case.case_pk, now.timestamp(), past, rt.policy_engine.policy.catalogue, resolved)
    facts = {**features, **case.facts(), **history, **scores, "decision_ts": now}
    answer = rt.policy_engine.recommend_one(facts, reasons=reasons, model_versions=champions.versions)
    return _write(rt, principal, [(case, answer, features, history, scores)])[0]


def recommend_batch(
    rt: Runtime, principal: Principal, refs: Sequence[CaseRef]
) -> tuple[list[Recommendation], list[CaseError]]:
    """The next best action for each case of a batch, decided together (per-debtor caps hold across
    it); unknown or out-of-scope cases are listed in the errors, not answered."""
    from policies.answers import batch_answers
    from policies.facts import Facts
    from policies.online import online_case_inputs

    champions = rt.require()
    now = utcnow()
    cases: list[CaseRow] = []
    errors: list[CaseError] = []
    seen: dict[int, int] = {}
    with rt.ledger.connect() as connection:
        for i, case in find_cases(connection, principal, refs, errors):
            if case.case_pk in seen:
                raise ApiError(
                    400,
                    f"cases[{i}] repeats cases[{seen[case.case_pk]}]: ask for each case once",
                    f"cases[{i}].case_id",
                )
            seen[case.case_pk] = i
            cases.append(case)
        after = synced_through(connection)
    if not cases:
        return [], errors
    with rt.audit.connect() as connection:
        extra = pending_events(connection, after, [c.case_id for c in cases], [c.creditor for c in cases])
    policy_engine = rt.policy_engine
    inputs = online_case_inputs(
        rt.settings,
        rt.ledger,
        rt.store,
        champions.scorer,
        policy_engine.policy.catalogue,
        now,
        case_pks=[c.case_pk for c in cases],
        extra_events=extra,
    )
    frame = inputs.frame
    decisions = policy_engine.decide(Facts.from_frame(frame))
    reasons = champions.scorer.reasons(inputs.features, top=TOP_REASONS)
    answers = batch_answers(decisions, policy_engine, reasons, champions.versions)
    by_pk = {int(pk): i for i, pk in enumerate(frame["case_pk"])}
    history_names = [
        c
        for c in frame.columns
        if c.startswith(("count_", "opted_out_"))
        or "_today" in c
        or "_week" in c
        or c.endswith("_ever")
        or c in ("dispute_open", "failed_streak", "certificates_issued")
    ]
    items = []
    for case in cases:
        i = by_pk[case.case_pk]
        row = frame.iloc[i]
        features = {k: inputs.features.iloc[i][k] for k in inputs.features.columns}
        items.append(
            (
                case,
                answers[i],
                features,
                {k: row[k] for k in history_names},
                {"p_reach": float(row["p_reach"]), "p_settle": float(row["p_settle"])},
            )
        )
    return _write(rt, principal, items), errors
