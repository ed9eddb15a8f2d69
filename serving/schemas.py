"""The service's request and response models (pydantic), from which BentoML and our OpenAPI
document are generated: what a platform, a court or a supervisor sends and gets back.

Amounts are CNY, probabilities in [0, 1], timestamps ISO 8601 (naive means Asia/Shanghai, as in
the data contracts). No response carries a raw ID number or phone; only the court list carries
the debtor's name and masked ID number, because the court needs them.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from concord.vocabulary import ACTIONS, OUTCOMES

BATCH_LIMIT = 1000  # cases or events in one request; more is refused with 413

CaseId = Annotated[str, Field(min_length=1, max_length=64, description="the creditor's case id (案件编号)")]
Creditor = Annotated[
    str, Field(min_length=1, max_length=255, description="the creditor (债权机构) as the pool names it")
]
Action = Literal[ACTIONS]  # type: ignore[valid-type]
Outcome = Literal[OUTCOMES]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseRef(Strict):
    """One case: its id, and its creditor when the caller's key is not bound to one."""

    case_id: CaseId
    creditor: Creditor | None = None


class ErrorBody(BaseModel):
    """Every refusal: one sentence, and the request field it is about (when there is one)."""

    error: str
    field: str | None = None


class RankedAction(BaseModel):
    action: str
    expected_value: float = Field(description="CNY")
    p_settle: float = Field(description="P(settled within 90 days | this action now)")
    cost_cny: float
    source: str = Field(description="'prior', or the model that estimated it")
    p_settle_low: float | None = Field(None, description="95 % interval of p_settle (learned actions only)")
    p_settle_high: float | None = None
    value_low: float | None = Field(None, description="CNY, from the interval of p_settle")
    value_high: float | None = None


class BlockedAction(BaseModel):
    action: str
    rules: list[str]
    reasons: list[str]


class IneligibleAction(BaseModel):
    action: str
    why: str


class InstallmentPlan(BaseModel):
    status: str
    term_months: int | None
    monthly_cny: float | None
    covers: float | None
    capacity_cny: float | None


class Reason(BaseModel):
    model: str
    feature: str
    value: float | None
    log_odds: float = Field(description="contribution to the model's raw score; > 0 raises the probability")


class FeatureDifference(BaseModel):
    feature: str
    value: float | None
    log_odds: float = Field(description="its part in the chosen action's log-odds minus the runner-up's")


class Explanation(BaseModel):
    """Why the chosen action and not the runner-up, when a learned action-effect model valued both."""

    chosen: str
    runner_up: str
    value_difference: float = Field(description="CNY")
    p_settle_difference: float
    features: list[FeatureDifference]
    note: str


class Scores(BaseModel):
    p_reach: float
    p_settle: float


class Recommendation(BaseModel):
    """One case's next best action, as decided and audited."""

    decision_id: str
    audit_seq: int = Field(description="the audit record holding this decision (`concord audit verify`)")
    case_id: str
    creditor: str
    decided_at: str
    workflow: str
    stage: str
    action: str
    approval: Literal["not_required", "pending"] = Field(
        description="'pending': a sensitive action a supervisor must approve before it is taken"
    )
    sensitive: bool
    expected_value: float = Field(description="CNY")
    needs_review: bool
    fallback: bool = Field(description="nothing eligible and unblocked was left: wait")
    scores: Scores
    ranked: list[RankedAction]
    blocked: list[BlockedAction]
    ineligible: list[IneligibleAction]
    flags: list[str]
    risk_flags: list[str]
    recoverable_claim: float = Field(description="CNY")
    installment: InstallmentPlan
    reasons: list[Reason]
    policy_version: str
    action_value: str
    model_versions: dict[str, str]
    greedy_action: str = Field(description="the best action by value (differs from `action` when explored)")
    explored: bool = Field(description="exploration drew the action at random among the eligible ones")
    epsilon: float = Field(description="the exploration share applied to this case")
    propensity: float = Field(description="the probability with which `action` was recommended")
    explanation: Explanation | None = None


class CaseError(BaseModel):
    """A case of a batch that got no answer, with the HTTP status it would have had alone."""

    case_id: str
    creditor: str | None
    status: int
    error: str


class NextBestActionResponse(BaseModel):
    """``results`` in the order asked (one for a single case); ``errors`` for the cases of a batch
    that are unknown or outside the key's scope (a single case gets the status itself)."""

    results: list[Recommendation]
    errors: list[CaseError]


class Contribution(BaseModel):
    feature: str
    value: float | None
    log_odds: float


class ModelExplanation(BaseModel):
    model: str
    version: str
    probability: float
    bias: float = Field(description="the model's average raw score (log-odds)")
    contributions: list[Contribution] = Field(description="every feature, largest push first")


class ExplainResponse(BaseModel):
    case_id: str
    creditor: str
    explained_at: str
    models: list[ModelExplanation]


class AssignedCase(BaseModel):
    case_id: str
    creditor: str
    mediator_id: str | None
    expected_recovery: float = Field(description="CNY")
    reason: str


class MediatorLoad(BaseModel):
    mediator_id: str
    capacity: int
    load_before: int
    assigned: int
    load_after: int
    expected_recovery: float


class AssignResponse(BaseModel):
    assignments: list[AssignedCase]
    mediators: list[MediatorLoad]
    saved: bool = Field(description="whether the assignments were recorded in the ledger")
    audit_seq: int
    errors: list[CaseError]


Scalar = str | float | int | bool | None


class ProfileResponse(BaseModel):
    """The debtor profile (画像) of a case: masked identifiers only, never the name."""

    case: dict[str, Scalar]
    features: dict[str, Scalar]
    contact_checks: list[dict[str, Scalar]]
    events: list[dict[str, Scalar]]
    other_cases: int
    features_as_of: str | None
    notes: list[str]


class LitigationListResponse(BaseModel):
    """A court's list: one sheet per route (filing, payment order, pre-check write-off), rows with
    the Chinese headers the xlsx has."""

    court: str
    as_of: str
    policy_version: str
    sheets: dict[str, list[dict[str, Scalar]]]


class EventIn(Strict):
    """What the platform did and what happened (contract table ``events``)."""

    case_id: CaseId
    creditor: Creditor | None = None
    at: dt.datetime = Field(description="when it happened; naive = Asia/Shanghai; kept to the second")
    action: Action
    actor: str = Field(min_length=1, max_length=64, description="mediator id, or 'system'")
    outcome: Outcome
    amount: float | None = Field(default=None, ge=0, le=1e13, description="CNY, for paid, partial_paid, agreement")
    propensity: float | None = Field(
        default=None, gt=0, le=1, description="probability with which the deciding policy chose this action"
    )

    @field_validator("at")
    @classmethod
    def _plausible(cls, value: dt.datetime) -> dt.datetime:
        if not 1990 <= value.year <= 2200:
            raise ValueError("must be a time between 1990 and 2200")
        return value

    @field_validator("amount")
    @classmethod
    def _to_the_fen(cls, value: float | None) -> float | None:
        # the shortest decimal that reads back as the number sent: 12.345 has three places, 10.1 one
        if value is not None and decimal.Decimal(repr(value)).as_tuple().exponent < -2:  # type: ignore[operator]
            raise ValueError(f"{value!r} has more than 2 decimal places: amounts are in CNY to the fen (0.01)")
        return value


class EventAck(BaseModel):
    case_id: str
    creditor: str
    seq: int
    hash: str


class EventsResponse(BaseModel):
    """Every event written to the audit trail before this answer: ``accepted`` of them."""

    accepted: int
    events: list[EventAck]


class ReloadResponse(BaseModel):
    reloaded: bool
    model_versions: dict[str, str]


class NextBestActionRequest(Strict):
    """One case (``case_id``, plus ``creditor`` when the key serves several creditors) or a batch
    (``cases``, at most 1,000): exactly one of the two."""

    case_id: CaseId | None = None
    creditor: Creditor | None = None
    cases: list[CaseRef] | None = None


class CaseRequest(Strict):
    """One case."""

    case_id: CaseId
    creditor: Creditor | None = None


class AssignRequest(Strict):
    """Open cases to assign (at most 1,000); ``save`` records the assignment in the ledger."""

    cases: list[CaseRef]
    save: bool = False


class LitigationListRequest(Strict):
    """A court's list (a court key's own court when ``court`` is left out), as JSON or xlsx."""

    court: Creditor | None = None
    format: Literal["json", "xlsx"] = "json"


class EventsRequest(Strict):
    """Events to record (at most 1,000), all or none."""

    events: list[EventIn]


class ReloadRequest(Strict):
    """Reload the champions if the alias moved, or always with ``force``."""

    force: bool = False


class DecisionStatusRequest(Strict):
    """Recommendations whose approval state the caller wants (at most 1,000 decision ids)."""

    decision_ids: list[Annotated[str, Field(min_length=1, max_length=64)]]


class DecisionStatus(BaseModel):
    """Where a recommendation stands: a sensitive action waits for a supervisor (``pending``); once
    ``approved`` the recommended action may be taken, once ``overridden`` the ``final_action`` instead."""

    decision_id: str
    case_id: str
    creditor: str
    recommended_action: str
    sensitive: bool
    approval: Literal["not_required", "pending", "approved", "overridden"]
    final_action: str | None = Field(description="the action to take; None while pending")
    may_act: bool = Field(description="whether the platform may act now (false while pending)")
    decided_at: str
    reviewed_at: str | None


class DecisionStatusResponse(BaseModel):
    decisions: list[DecisionStatus]
    unknown: list[str] = Field(description="ids of no decision this key may see")
