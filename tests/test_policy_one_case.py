"""One case decided alone gives, field for field, the answer the batch path gives that case: the
service decides one case at a time (``PolicyEngine.recommend_one``), ``concord recommend`` and the
service's batches decide many together (``batch_answers``), and the one-case shortcuts (each
guardrail's hits kept from the decision, the answer turned into plain data without deep copies,
NaN filled without ``np.nan_to_num``) must not change a thing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from policies.answers import batch_answers, batch_frame
from policies.conditions import Comparison
from policies.config import load_policy
from policies.court import flag_text, risk_flags
from policies.engine import PolicyEngine
from policies.facts import Facts, nan_to_num
from tests.policy_cases import case, frame, local

STAGES = (
    ("new", 0),
    ("warning", 1),
    ("mediation", 2),
    ("agreement", 3),
    ("litigation", 4),
    ("paid", 5),
    ("written_off", 6),
)


def varied_cases(engine: PolicyEngine, n: int, seed: int) -> list[dict]:
    """Cases spread over what the rules read: stages, hours (quiet hours), contact counts (caps),
    opt-outs, disputes, dead lines, incomes missing or small, claims with and without a rate."""
    catalogue = engine.policy.catalogue
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        stage, code = STAGES[int(rng.integers(len(STAGES)))]
        overrides = {
            "case_id": f"C{i}",
            "debtor_key": f"d{i}",
            "stage": stage,
            "stage_code": float(code),
            "decision_ts": local(int(rng.integers(24)), int(rng.integers(60)), day=int(rng.integers(1, 28))),
            "p_settle": float(rng.uniform(0.0005, 0.6)),
            "p_reach": float(rng.uniform(0, 1)),
            "has_phone": float(rng.random() < 0.8),
            "last_phone_failed": float(rng.random() < 0.3),
            "ever_reached": float(rng.random() < 0.5),
            "days_since_first_event": float(rng.integers(0, 400)),
            "principal": float(rng.uniform(500, 300_000)),
            "in_scope": float(rng.random() < 0.7),
            "annual_rate": float(rng.uniform(0.05, 0.3)) if rng.random() < 0.7 else None,
            "interest": float(rng.uniform(0, 5000)),
            "penalty": float(rng.uniform(0, 2000)),
            "monthly_income": float(rng.uniform(500, 20_000)) if rng.random() < 0.8 else None,
            "monthly_spend": float(rng.uniform(300, 9000)) if rng.random() < 0.7 else None,
            "other_debt": float(rng.uniform(0, 50_000)) if rng.random() < 0.6 else None,
            "income_stability": float(rng.uniform(0, 1)),
            "has_property": float(rng.random() < 0.3),
            "terminated_no_assets": float(rng.random() < 0.1),
            "dispute_open": float(rng.random() < 0.1),
            "failed_streak": float(rng.integers(0, 6)),
            "certificates_issued": float(rng.random() < 0.05),
            "agreement_signed": None,
            "days_since_last_settled": float(rng.integers(0, 90)) if rng.random() < 0.3 else None,
            "days_since_last_reached": float(rng.integers(0, 60)) if rng.random() < 0.5 else None,
        }
        for channel in catalogue.contact_channels:
            overrides[f"{channel}_attempts_today"] = float(rng.integers(0, 4))
            overrides[f"{channel}_connected_today"] = float(rng.integers(0, 2))
            overrides[f"{channel}_attempts_week"] = float(rng.integers(0, 12))
            overrides[f"opted_out_{channel}"] = float(rng.random() < 0.1)
        rows.append(case(catalogue, **{k: v for k, v in overrides.items() if k != "agreement_signed"}))
    return rows


@pytest.mark.parametrize("workflow", [None, "one_plus_x"])
def test_one_case_alone_equals_its_answer_in_a_batch(workflow) -> None:
    policy = load_policy() if workflow is None else load_policy().with_workflow(workflow)
    engine = PolicyEngine(policy)
    rows = varied_cases(engine, 300, seed=11)
    together = batch_answers(engine.decide(Facts.from_frame(frame(rows))), engine, [()] * len(rows), {"m": "1"})
    seen = set()
    for row, batch in zip(rows, together, strict=True):
        alone = engine.recommend_one(row, model_versions={"m": "1"})
        assert alone.to_dict() == batch.to_dict(), row["case_id"]
        seen.add((alone.action, bool(alone.blocked)))
    assert len({action for action, _ in seen}) >= 5 and (any(b for _, b in seen))  # the cases really vary


def test_to_dict_is_asdict() -> None:
    engine = PolicyEngine(load_policy())
    for row in varied_cases(engine, 60, seed=5):
        answer = engine.recommend_one(row, reasons=(), model_versions={"m": "1"})
        assert answer.to_dict() == dataclasses.asdict(answer)
        assert answer.to_dict() is not answer.to_dict()


def test_nan_to_num_is_numpys() -> None:
    values = np.array([0.0, -1.5, np.nan, np.inf, -np.inf, 1e308, -1e-300, 7.0])
    for nan in (0.0, -np.inf, 3.5):
        np.testing.assert_array_equal(nan_to_num(values, nan=nan), np.nan_to_num(values, nan=nan))
    np.testing.assert_array_equal(nan_to_num(values[2:3]), np.nan_to_num(values[2:3]))


def test_one_case_flags_are_the_batch_tables() -> None:
    """A one-case answer's flags and risk flags, worked out on plain values, are the batch table's
    ``flags`` and ``flag_text`` of the batch's risk flags, case for case."""
    policy = load_policy()
    # every action sensitive, so that needs_review joins out_of_scope in the flags
    actions = tuple(dataclasses.replace(a, sensitive=True) for a in policy.catalogue.actions)
    engine = PolicyEngine(dataclasses.replace(policy, catalogue=dataclasses.replace(policy.catalogue, actions=actions)))
    rows = varied_cases(engine, 300, seed=13)
    cases = frame(rows)
    decisions = engine.decide(Facts.from_frame(cases))
    table = batch_frame(decisions, engine, cases)
    raised = flag_text(risk_flags(decisions.facts, engine.policy.court), engine.policy.court)
    answers = batch_answers(decisions, engine, [()] * len(rows), {"m": "1"})
    for i, answer in enumerate(answers):
        assert answer.flags == tuple(f for f in str(table["flags"].iloc[i]).split("; ") if f), rows[i]["case_id"]
        assert answer.risk_flags == tuple(f for f in str(raised[i]).split("; ") if f), rows[i]["case_id"]
    assert sum(len(a.flags) > 1 for a in answers) > 0 and sum(len(a.risk_flags) > 1 for a in answers) > 0
    assert {f for a in answers for f in a.flags} >= {"out_of_scope", "needs_review"}


def test_a_condition_on_one_case_is_its_row_of_the_batch() -> None:
    """Every condition of the policy (preconditions, workflow transitions, court flags) gives one
    case alone (the plain-float comparison) what it gives that case's row in a batch (numpy)."""
    policy = load_policy()
    engine = PolicyEngine(policy)
    facts = Facts.from_frame(frame(varied_cases(engine, 300, seed=17)))
    engine.decide(facts)  # the claim facts the court's flags read
    conditions = [
        *(a.requires for a in policy.catalogue.actions),
        *(f.when for f in policy.court.flags),
        *(t.when for w in policy.workflows.values() for s in w.stages.values() for t in s.transitions),
    ]
    together = [c.evaluate(facts) for c in conditions]
    for i in range(facts.n):
        one = facts.subset(np.array([i]))
        for condition, batch in zip(conditions, together, strict=True):
            alone = condition.evaluate(one)
            assert alone.dtype == bool and alone.tolist() == [bool(batch[i])], (condition.describe(), i)


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
@pytest.mark.parametrize("value", [2, 2.0, True, 0, -1.5, "x"])
def test_a_comparison_on_one_case_is_numpys(op: str, value: object) -> None:
    if op not in ("==", "!=") and isinstance(value, str):
        return  # refused when the policy is read
    comparison = Comparison("principal", op, value)
    numbers = [np.nan, -1.5, 0.0, 1.0, 2.0, 3.0, np.inf, -np.inf, None]
    facts = Facts({"principal": numbers}, len(numbers))
    batch = comparison.evaluate(facts)
    for i, number in enumerate(numbers):
        assert comparison.evaluate(Facts({"principal": [number]}, 1)).tolist() == [bool(batch[i])], number


def test_prior_estimates_of_one_case_are_its_row_of_the_batch() -> None:
    """The priors' values for one case alone (its shifts summed on Python floats) are, bit for
    bit, its row of a batch's (summed with numpy)."""
    engine = PolicyEngine(load_policy())
    catalogue = engine.policy.catalogue
    facts = Facts.from_frame(frame(varied_cases(engine, 300, seed=19)))
    engine.decide(facts)  # the recoverable claim the values read
    batch = engine.action_value.estimate(facts, catalogue)
    for i in range(facts.n):
        one = engine.action_value.estimate(facts.subset(np.array([i])), catalogue)
        np.testing.assert_array_equal(one.p_settle, batch.p_settle[i : i + 1])
        np.testing.assert_array_equal(one.value, batch.value[i : i + 1])
    assert np.unique(batch.p_settle.round(6)).size > 100
