"""The next best action as a supervisor would check it: guardrails block what the rules forbid and
say which rule did; workflows route cases; the answer is the same for the same inputs; one case
and a batch agree; installment plans fit the debtor's means."""

from __future__ import annotations

import numpy as np
import pytest

from policies.config import load_policy
from policies.engine import PolicyEngine
from tests.policy_cases import case, frame, local

CONTACT_ACTIONS = {
    "sms_warning",
    "flash_sms",
    "similar_case_push",
    "voice_call",
    "contact_repair",
    "mediator_call",
    "video_mediation",
    "online_negotiation",
    "installment_offer",
    "lawyer_letter",
}


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(load_policy())


@pytest.fixture(scope="module")
def chain() -> PolicyEngine:
    return PolicyEngine(load_policy().with_workflow("one_plus_x"))


def one(engine: PolicyEngine, **facts):
    return engine.recommend_one(case(engine.policy.catalogue, **facts))


def blocked(answer) -> dict[str, tuple[str, ...]]:
    return {b.action: b.rules for b in answer.blocked}


def test_no_contact_at_night_and_the_rule_is_named(engine) -> None:
    night = one(engine, decision_ts=local(23, 30))
    assert night.action not in CONTACT_ACTIONS
    assert blocked(night)["voice_call"] == ("quiet_hours",)
    assert night.stage == "warning" and night.action == "wait" and not night.fallback
    assert one(engine, decision_ts=local(7, 59)).action == "wait"
    assert one(engine, decision_ts=local(8, 0)).action in CONTACT_ACTIONS


def test_daily_dial_caps_per_debtor(engine) -> None:
    unanswered = one(engine, voice_unanswered_today=6, voice_attempts_today=6)
    assert "unanswered_dials_per_day" in blocked(unanswered)["voice_call"]
    assert unanswered.action != "voice_call"
    reached = one(
        engine,
        stage="mediation",
        stage_code=2,
        ever_reached=1,
        reached_total=1,
        days_since_last_reached=0.1,
        mediator_connected_today=2,
        voice_connected_today=1,
    )
    assert "connected_calls_per_day" in blocked(reached)["mediator_call"]
    assert reached.action not in {"mediator_call", "video_mediation", "online_negotiation", "installment_offer"}


def test_a_batch_gives_a_debtor_no_more_calls_than_the_cap_allows(engine) -> None:
    catalogue = engine.policy.catalogue
    mediation = {
        "stage": "mediation",
        "stage_code": 2,
        "ever_reached": 1,
        "reached_total": 1,
        "days_since_last_reached": 0.1,
        "mediator_connected_today": 2,
    }
    rows = [
        case(catalogue, case_id="A", p_settle=0.20, **mediation),
        case(catalogue, case_id="B", p_settle=0.10, **mediation),
        case(catalogue, case_id="C", debtor_key="d2", p_settle=0.10, **mediation),
    ]
    out = engine.recommend(frame(rows)).set_index("case_id")
    calls = {"mediator_call", "video_mediation", "online_negotiation", "installment_offer", "voice_call"}
    assert out.loc["A", "action"] in calls  # the more valuable case of debtor d1 keeps the last call
    assert out.loc["B", "action"] not in calls
    assert "connected_calls_per_day" in out.loc["B", "blocked"]
    assert out.loc["C", "action"] in calls  # another debtor: their own allowance


def test_third_party_contact_only_when_the_number_is_dead_or_attempts_failed(engine) -> None:
    assert blocked(one(engine))["contact_repair"] == ("third_party",)
    assert "contact_repair" not in blocked(one(engine, has_phone=0))
    assert "contact_repair" not in blocked(one(engine, failed_streak=3))
    assert "contact_repair" in blocked(one(engine, failed_streak=2))


def test_a_disputed_case_is_not_contacted_until_resolved(chain) -> None:
    disputed = one(
        chain,
        stage="mediation",
        stage_code=2,
        ever_reached=1,
        reached_total=1,
        dispute_open=1,
        disputed_total=1,
        days_since_last_reached=2.0,
    )
    assert disputed.action not in CONTACT_ACTIONS
    assert all("disputed" in blocked(disputed)[a] for a in ("mediator_call", "lawyer_letter"))
    # In the 1+X chain an ignored payment order and an open dispute lead to a suit, which is no contact.
    suit = one(
        chain,
        stage="litigation",
        stage_code=4,
        dispute_open=1,
        disputed_total=1,
        count_payment_order=1,
        days_since_first_event=70.0,
        attempts_total=6,
        p_settle=0.3,
        principal=60_000.0,
        has_property=1,
    )
    assert suit.stage == "litigation" and suit.action == "file_lawsuit"
    assert "needs_review" in suit.flags


def test_opted_out_channel_only(engine) -> None:
    answer = one(engine, opted_out_sms=1)
    rules = blocked(answer)
    assert all(rules[a] == ("opted_out",) for a in ("sms_warning", "flash_sms", "similar_case_push"))
    assert "voice_call" not in rules


def test_out_of_scope_cases_get_no_court_action_and_are_flagged(chain) -> None:
    answer = one(chain, in_scope=0, product="personal_loan", principal=150_000.0, terminated_no_assets=1)
    assert "out_of_scope" in answer.flags
    assert answer.action != "pre_check_write_off" and answer.stage == "mediation"


def test_dead_debt_goes_to_pre_check_write_off_in_the_chain_and_no_suit_after(chain) -> None:
    dead = one(chain, terminated_no_assets=2)
    assert dead.stage == "pre_check" and dead.action == "pre_check_write_off"
    written_off = one(chain, stage="written_off", stage_code=6, certificates_issued=1, terminated_no_assets=2)
    assert written_off.stage == "done" and written_off.action == "close"
    after = one(
        chain,
        stage="litigation",
        stage_code=4,
        certificates_issued=1,
        count_payment_order=1,
        dispute_open=1,
        days_since_first_event=70.0,
        attempts_total=6,
    )
    assert after.action != "file_lawsuit"


def test_no_payment_order_before_mediation_or_thirty_silent_days(engine) -> None:
    early = one(engine, stage="litigation", stage_code=4, count_lawyer_letter=1, days_since_first_event=10)
    ineligible = {i.action: i.why for i in early.ineligible}
    assert early.stage != "filing" and "payment_order" in ineligible
    late = one(
        engine, count_lawyer_letter=1, days_since_first_event=70, attempts_total=9, p_settle=0.3, principal=60_000.0
    )
    assert late.stage == "filing"
    assert "payment_order" in {r.action for r in late.ranked}


def test_same_inputs_same_answer_in_any_order_and_alone(engine) -> None:
    catalogue = engine.policy.catalogue
    rng = np.random.default_rng(3)
    rows = [
        case(
            catalogue,
            case_id=f"C{i}",
            debtor_key=f"d{i % 7}",
            p_settle=float(rng.uniform(0.001, 0.4)),
            p_reach=float(rng.uniform(0, 1)),
            has_phone=float(rng.random() < 0.8),
            ever_reached=float(rng.random() < 0.5),
            principal=float(rng.uniform(1000, 90_000)),
        )
        for i in range(40)
    ]
    first = engine.recommend(frame(rows)).set_index("case_id")
    again = engine.recommend(frame(rows[::-1])).set_index("case_id").loc[first.index]
    assert first.drop(columns="blocked").equals(again.drop(columns="blocked"))
    assert (first["blocked"] == again["blocked"]).all()
    alone = one(engine, **{k: v for k, v in rows[5].items() if k != "debtor_key"}, debtor_key="solo")
    assert alone.action == first.loc["C5", "action"]
    assert alone.expected_value == pytest.approx(first.loc["C5", "expected_value"], abs=0.01)
    assert alone.policy_version == first.loc["C5", "policy_version"] == engine.policy.version


def test_installment_plan_fits_what_the_debtor_can_carry(engine) -> None:
    # 12,000 CNY owed; income 8,000, spending 3,000: capacity min(8,000 x 0.5, 5,000 x 0.6) = 3,000 a month.
    plan = one(engine, annual_rate=None, overdue_since_ts=local(10), principal=12_000.0).installment
    assert (plan.status, plan.term_months, plan.monthly_cny, plan.capacity_cny) == ("full", 6, 2000.0, 3000.0)
    # Too little for the longest term: the longest term at the capacity, covering part of the claim.
    poor = one(
        engine,
        annual_rate=None,
        overdue_since_ts=local(10),
        principal=120_000.0,
        monthly_income=4000.0,
        monthly_spend=3000.0,
    ).installment
    assert (poor.status, poor.term_months, poor.monthly_cny) == ("partial", 36, 600.0)
    assert poor.covers == pytest.approx(600 * 36 / 120_000)
    assert one(engine, monthly_income=None).installment.status == "no_income"


def test_a_value_estimator_plugs_in_without_changing_callers() -> None:
    from policies.action_value import ActionEstimates

    policy = load_policy()

    class LettersOnly:
        name, version = "test-model", "1"

        def estimate(self, facts, catalogue):
            p = np.full((facts.n, len(catalogue.actions)), 0.01)
            p[:, catalogue.index("lawyer_letter")] = 0.9
            return ActionEstimates(
                catalogue.names,
                p,
                facts["recoverable_claim"],
                catalogue.costs(),
                ("test-model",) * len(catalogue.actions),
            )

    answer = PolicyEngine(policy, LettersOnly()).recommend_one(
        case(policy.catalogue, count_lawyer_letter=0, days_since_first_event=40, attempts_total=5)
    )
    assert answer.stage == "pre_litigation" and answer.action == "lawyer_letter"
    assert answer.action_value == "test-model:1" and answer.ranked[0].source == "test-model"


def test_no_contact_after_settlement_even_where_a_workflow_would_allow_it() -> None:
    import dataclasses

    policy = load_policy()
    five = policy.workflows["five_level"]
    done = dataclasses.replace(five.stages["done"], actions=("mediator_call", "credit_repair", "close"))
    loose = dataclasses.replace(
        policy,
        workflows={**policy.workflows, "five_level": dataclasses.replace(five, stages={**five.stages, "done": done})},
    )
    answer = PolicyEngine(loose).recommend_one(case(policy.catalogue, stage="paid", stage_code=5, p_settle=0.9))
    assert answer.stage == "done" and answer.action == "credit_repair"
    assert blocked(answer)["mediator_call"] == ("after_settlement",)
