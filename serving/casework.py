"""The service's other answers: a case's explanation and masked profile, the assignment of a batch
of open cases to mediators, and a court's litigation list (JSON or xlsx).

Explanations are LightGBM's ``pred_contrib`` on the fast path (SHAP values in log-odds) with the
feature values; the profile is ``features.profile`` (masked identifiers only); assignment and the
court list decide their cases together from the online store (``policies.online``).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concord import audit
from concord.ledger import utcnow
from serving.auth import Principal
from serving.cases import ApiError, CaseRow, find_case, find_cases, scoped_court
from serving.events import pending_events, synced_through
from serving.recommend import online_one, plain, score_one
from serving.runtime import Runtime
from serving.schemas import (
    AssignedCase,
    AssignResponse,
    CaseError,
    CaseRef,
    Contribution,
    ExplainResponse,
    LitigationListResponse,
    MediatorLoad,
    ModelExplanation,
    ProfileResponse,
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def explain(rt: Runtime, principal: Principal, case_id: str, creditor: str | None) -> ExplainResponse:
    """Every feature's push on both models' scores for one case, with the feature values."""
    champions = rt.require()
    now = utcnow()
    with rt.ledger.connect() as connection:
        case = find_case(connection, principal, case_id, creditor)
    features = online_one(rt, case, now)
    scores, _, rows = score_one(champions, features)
    models = []
    for model, column in (("reachability", "p_reach"), ("settlement", "p_settle")):
        fast = champions.fast[model]
        contributions = fast.contributions(rows[model])[0]
        order = np.argsort(-np.abs(contributions[:-1]), kind="stable")
        models.append(
            ModelExplanation(
                model=model,
                version=champions.versions[model],
                probability=scores[column],
                bias=float(contributions[-1]),
                contributions=[
                    Contribution(
                        feature=fast.names[j], value=plain(float(rows[model][0, j])), log_odds=float(contributions[j])
                    )
                    for j in order
                ],
            )
        )
    return ExplainResponse(case_id=case.case_id, creditor=case.creditor, explained_at=now.isoformat(), models=models)


TIMES = ("at", "checked_at")  # the ledger's naive-UTC timestamps, shown as ISO 8601 UTC


def _scalars(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if key in TIMES and value is not None:
            stamp = pd.Timestamp(value)
            value = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).isoformat()
        out[str(key)] = plain(value)
    return out


def profile(rt: Runtime, principal: Principal, case_id: str, creditor: str | None) -> ProfileResponse:
    """The debtor profile of a case (masked identifiers, no name)."""
    from features.profile import debtor_profile

    with rt.ledger.connect() as connection:
        case = find_case(connection, principal, case_id, creditor)
    found = debtor_profile(rt.settings, case.case_id, case.creditor, engine=rt.ledger, store=rt.store)
    shown = {k: v for k, v in found.case.items() if k not in ("case_pk", "debtor_key")}
    return ProfileResponse(
        case=_scalars(shown),
        features=_scalars(found.features),
        contact_checks=[_scalars(r) for r in found.contact_checks],
        events=[_scalars(r) for r in found.events],
        other_cases=int(found.other_cases),
        features_as_of=found.online_as_of,
        notes=list(found.notes),
    )


def _decided(rt: Runtime, now: dt.datetime, cases: Sequence[CaseRow] | None = None, court: str | None = None) -> Any:
    """Online inputs and the engine's decisions for these cases (or a court's), acknowledged events
    the ledger lacks included."""
    from policies.facts import Facts
    from policies.online import online_case_inputs

    champions = rt.require()
    with rt.ledger.connect() as connection:
        after = synced_through(connection)
    extra = []
    if cases:
        with rt.audit.connect() as connection:
            extra = pending_events(connection, after, [c.case_id for c in cases], [c.creditor for c in cases])
    inputs = online_case_inputs(
        rt.settings,
        rt.ledger,
        rt.store,
        champions.scorer,
        rt.policy_engine.policy.catalogue,
        now,
        case_pks=[c.case_pk for c in cases] if cases is not None else None,
        court=court,
        with_names=court is not None,
        extra_events=extra,
    )
    return inputs, rt.policy_engine.decide(Facts.from_frame(inputs.frame))


def assign_cases(rt: Runtime, principal: Principal, refs: Sequence[CaseRef], save: bool) -> AssignResponse:
    """Assign the given open cases to mediators (best expected recovery within capacity and fit),
    the mediators' loads counting every other open case they hold; audited, and recorded in the
    ledger when ``save``."""
    from policies.assignment import assign, performance_factor
    from policies.staffing import current_mediators, mediator_table, save_assignments
    from training.scoring import open_cases

    now = utcnow()
    errors: list[CaseError] = []
    cases: list[CaseRow] = []
    open_now = set(open_cases(rt.ledger, now)["case_pk"].astype(int))
    with rt.ledger.connect() as connection:
        for i, case in find_cases(connection, principal, refs, errors):
            ref = refs[i]
            if case.case_pk not in open_now:
                errors.append(
                    CaseError(
                        case_id=ref.case_id,
                        creditor=case.creditor,
                        status=409,
                        error=f"case '{case.case_id}' is closed: only open cases are assigned",
                    )
                )
            elif all(c.case_pk != case.case_pk for c in cases):
                cases.append(case)
    policy = rt.policy_engine.policy
    holders = current_mediators(rt.ledger, now, sorted(open_now))
    asked = [c.case_pk for c in cases]
    holders.loc[holders.index.isin(asked)] = ""  # these are being (re)assigned
    mediators = mediator_table(rt.ledger, now, holders)
    mediators["performance"] = performance_factor(
        mediators["cases_worked"].to_numpy(), mediators["cases_settled"].to_numpy(), policy.assignment
    )
    table = pd.DataFrame(columns=["case_pk", "case_id", "creditor", "mediator_id", "expected_recovery", "reason"])
    if cases:
        inputs, decisions = _decided(rt, now, cases)
        frame = inputs.frame
        table = pd.DataFrame(
            {
                "case_pk": frame["case_pk"].to_numpy(),
                "case_id": frame["case_id"].to_numpy(),
                "creditor": frame["creditor"].to_numpy(),
                "province": frame["province"].to_numpy(),
                "product": frame["product"].to_numpy(),
                "expected_recovery": decisions.facts["p_settle"] * decisions.claims.outstanding,
            }
        )
        result = assign(table, mediators, policy.assignment)
        table["mediator_id"], table["reason"] = result.mediator_id, result.reason
        table["expected_recovery"] = np.round(result.expected_recovery, 2)
    assigned = table[table["mediator_id"] != ""]
    loads = mediators[["mediator_id", "capacity", "load"]].rename(columns={"load": "load_before"})
    loads["assigned"] = loads["mediator_id"].map(assigned["mediator_id"].value_counts()).fillna(0).astype(int)
    loads["load_after"] = loads["load_before"] + loads["assigned"]
    loads["expected_recovery"] = (
        loads["mediator_id"].map(assigned.groupby("mediator_id")["expected_recovery"].sum()).fillna(0.0).round(2)
    )
    rows = [
        AssignedCase(
            case_id=str(r.case_id),
            creditor=str(r.creditor),
            mediator_id=str(r.mediator_id) or None,
            expected_recovery=float(r.expected_recovery),
            reason=str(r.reason),
        )
        for r in table.itertuples(index=False)
    ]
    payload = {"assignments": [r.model_dump() for r in rows], "policy_version": policy.version, "saved": save}
    with audit.transaction(rt.audit) as connection:
        seq, _ = audit.append(connection, "assignment", payload, actor=principal.actor)
    if save and len(assigned):
        save_assignments(rt.ledger, assigned, policy.version, now)
    return AssignResponse(
        assignments=rows,
        mediators=[
            MediatorLoad(**{k: plain(v) for k, v in r._asdict().items()}) for r in loads.itertuples(index=False)
        ],
        saved=bool(save and len(assigned)),
        audit_seq=seq,
        errors=errors,
    )


def litigation_sheets(rt: Runtime, principal: Principal, court: str | None) -> tuple[str, dict[str, pd.DataFrame]]:
    """The court's list, one frame per route, decided now from the online store; audited."""
    from policies.cases import known_courts
    from policies.court import court_sheets

    name = scoped_court(principal, court)
    if name not in known_courts(rt.ledger):
        raise ApiError(404, f"no case in the ledger names the court '{name}'", "court")
    now = utcnow()
    inputs, decisions = _decided(rt, now, court=name)
    policy = rt.policy_engine.policy
    names = np.asarray(policy.catalogue.names, dtype=object)
    sheets = court_sheets(
        inputs.frame,
        decisions.facts,
        decisions.claims,
        policy.claims,
        policy.court,
        names[decisions.chosen],
        decisions.value,
        decisions.stage,
        decisions.workflow,
        decisions.limitation_day,
    )
    payload = {
        "court": name,
        "as_of": now.isoformat(),
        "policy_version": policy.version,
        "model_versions": rt.require().versions,
        "sheets": {sheet: [str(v) for v in frame.iloc[:, 0]] for sheet, frame in sheets.items()},
    }
    with audit.transaction(rt.audit) as connection:
        audit.append(connection, "litigation_list", payload, actor=principal.actor)
    return name, sheets


def litigation_json(rt: Runtime, name: str, sheets: dict[str, pd.DataFrame]) -> LitigationListResponse:
    """The list as JSON: rows keyed by the sheet's Chinese headers."""
    return LitigationListResponse(
        court=name,
        as_of=utcnow().isoformat(),
        policy_version=rt.policy_engine.policy.version,
        sheets={sheet: [_scalars(r) for r in frame.to_dict(orient="records")] for sheet, frame in sheets.items()},
    )


def litigation_xlsx(rt: Runtime, sheets: dict[str, pd.DataFrame]) -> bytes:
    """The list as an xlsx workbook (formula-like text neutralised, as every Concord output)."""
    from concord.outputs import write_xlsx

    folder = rt.settings.ensure_home() / "tmp"
    folder.mkdir(exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        path = Path(scratch) / "litigation-list.xlsx"
        write_xlsx(sheets, path)
        return path.read_bytes()
