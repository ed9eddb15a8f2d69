"""Properties over random cases and contact histories (hypothesis), checked against the shipped
policy's rules written out here independently of the engine:

- no recommendation breaks a guardrail, counting the whole batch against each debtor's caps;
- the same inputs give the same answer, in any order;
- no mediator is given more than their room; every open case is assigned or reported with why.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from concord.vocabulary import ACTIONS, OUTCOMES, REACHED_OUTCOMES
from policies.action_value import ActionEstimates
from policies.assignment import assign
from policies.config import load_policy
from policies.engine import PolicyEngine
from policies.history import contact_facts
from tests.policy_cases import SHANGHAI, case

POLICY = load_policy()


class RandomValue:
    """Any estimator at all: a random value per case and action (seeded by the case id, so that
    the order of the cases does not change it). Guardrails must hold whatever the values say."""

    name, version = "random", "1"

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def estimate(self, facts, catalogue) -> ActionEstimates:
        p = np.stack(
            [
                np.random.default_rng([self.seed, int(c[1:])]).random(len(catalogue.actions))
                for c in facts.text("case_id")
            ]
        )
        return ActionEstimates(
            catalogue.names, p, np.full(facts.n, 1000.0), catalogue.costs(), ("random",) * len(catalogue.actions)
        )


CHANNEL = {a.name: a.channel for a in POLICY.catalogue.actions}
CONTACT = {a.name: a.contact for a in POLICY.catalogue.actions}
COURT_ACTIONS = {
    "asset_preservation",
    "payment_order",
    "file_lawsuit",
    "judicial_confirmation",
    "pre_check_write_off",
    "enforcement",
}
NO_SUIT_AFTER_CERTIFICATE = {"asset_preservation", "payment_order", "file_lawsuit", "enforcement", "lawyer_letter"}
STAGES = ("new", "warning", "mediation", "agreement", "litigation", "paid", "written_off", "closed")

# Many calls today (the day caps), answered or not, some events in the week, a few older.
events_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.one_of(st.sampled_from(["voice_call", "mediator_call"]), st.sampled_from(ACTIONS)),
        st.one_of(st.sampled_from(["reached", "no_answer", "failed"]), st.sampled_from(OUTCOMES)),
        st.one_of(st.floats(0.0, 0.3), st.floats(0.0, 9.0)),
    ),
    max_size=80,
)
# A burst of calls on one channel to the first case's debtor in the last hour: the day caps are reached.
calls_strategy = st.tuples(
    st.sampled_from(["voice_call", "mediator_call"]),
    st.lists(st.sampled_from(["reached", "no_answer", "no_answer", "failed", "promise_to_pay"]), max_size=10),
).map(lambda burst: [(0, burst[0], outcome, 0.01) for outcome in burst[1]])
case_strategy = st.fixed_dictionaries(
    {
        "debtor": st.integers(0, 2),
        "stage": st.sampled_from((*STAGES, "agreement", "agreement", "mediation")),
        "in_scope": st.booleans(),
        "has_phone": st.booleans(),
        "dead": st.booleans(),
        "p_settle": st.floats(0.0, 0.6),
        "p_reach": st.floats(0.0, 1.0),
        "principal": st.floats(100.0, 200_000.0),
        "ever_reached": st.booleans(),
        "days_worked": st.floats(0.0, 200.0),
        "settled_days": st.one_of(st.none(), st.floats(0.0, 60.0)),
        "resolved": st.booleans(),
    }
)


def build(cases: list[dict], events: list[tuple], hour: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """A batch of cases with their history facts; the raw events; the decision time."""
    decision = dt.datetime(2026, 5, 20, hour, 17, tzinfo=SHANGHAI)
    rows = []
    for i, c in enumerate(cases):
        rows.append(
            case(
                POLICY.catalogue,
                case_id=f"C{i}",
                debtor_key=f"d{c['debtor']}",
                stage=c["stage"],
                stage_code=float(STAGES.index(c["stage"])),
                in_scope=float(c["in_scope"]),
                has_phone=float(c["has_phone"]),
                terminated_no_assets=float(c["dead"]),
                p_settle=c["p_settle"],
                p_reach=c["p_reach"],
                principal=c["principal"],
                ever_reached=float(c["ever_reached"]),
                reached_total=float(c["ever_reached"]),
                days_since_last_reached=1.0 if c["ever_reached"] else None,
                days_since_first_event=c["days_worked"],
                days_since_last_settled=c["settled_days"],
                attempts_total=float(c["days_worked"] // 5),
                decision_ts=decision.timestamp(),
            )
        )
    frame = pd.DataFrame(rows)
    frame["case_pk"] = np.arange(len(frame))
    raw = pd.DataFrame(
        [
            (pk, f"d{cases[pk]['debtor']}", decision - dt.timedelta(days=back), action, outcome)
            for pk, action, outcome, back in events
            if pk < len(cases)
        ],
        columns=["case_pk", "debtor_key", "at", "action", "outcome"],
    )
    raw["at"] = pd.to_datetime(raw["at"], utc=True)
    history_cases = frame[["case_pk", "debtor_key"]].assign(decision_ts=pd.Timestamp(decision))
    resolutions = pd.DataFrame({"case_pk": [i for i, c in enumerate(cases) if c["resolved"]]})
    resolutions["resolved_at"] = pd.Timestamp(decision - dt.timedelta(days=4.5))
    history = contact_facts(history_cases, raw, POLICY.catalogue, resolutions)
    frame = frame.drop(columns=[c for c in history.columns if c in frame.columns]).join(history)
    return frame, raw, decision.timestamp()


def check_guardrails(
    frame: pd.DataFrame, out: pd.DataFrame, raw: pd.DataFrame, decision: float, cases: list[dict]
) -> None:
    """The shipped rules, written out from the raw events; fails on the first broken one."""
    local = dt.datetime.fromtimestamp(decision, SHANGHAI)
    night = local.hour >= 22 or local.hour < 8
    raw = raw[raw["at"] < pd.Timestamp(decision, unit="s", tz="UTC")].copy()
    raw["channel"] = raw["action"].map(CHANNEL)
    raw["contact"] = raw["action"].map(CONTACT)
    raw["today"] = raw["at"].dt.tz_convert("Asia/Shanghai").dt.date == local.date()
    raw["connected"] = raw["outcome"].isin(REACHED_OUTCOMES)
    calls = raw[raw["today"] & (raw["contact"] != "none") & raw["channel"].isin(["voice", "mediator"])]
    chosen = out.set_index("case_id")["action"]
    for i, c in enumerate(cases):
        action = chosen[f"C{i}"]
        own = raw[raw["case_pk"] == i].sort_values("at", kind="stable")
        debtor = raw[raw["debtor_key"] == f"d{c['debtor']}"]
        contact = CONTACT[action] != "none"
        assert not (night and contact), ("quiet_hours", action)
        finished = STAGES.index(c["stage"]) >= STAGES.index("paid")
        assert not (finished and contact), ("after_settlement", action)
        disputes = own[own["outcome"] == "disputed"]["at"]
        resolved_at = pd.Timestamp(decision - 4.5 * 86400, unit="s", tz="UTC") if c["resolved"] else None
        open_dispute = len(disputes) and (resolved_at is None or disputes.max() > resolved_at)
        assert not (open_dispute and contact), ("disputed", action)
        opted = set(debtor[(debtor["outcome"] == "opted_out") & (debtor["contact"] != "none")]["channel"])
        assert not (contact and CHANNEL[action] in opted), ("opted_out", action)
        assert not (not c["in_scope"] and action in COURT_ACTIONS), ("scope", action)
        certificate = (own["outcome"] == "certificate_issued").any()
        assert not (certificate and action in NO_SUIT_AFTER_CERTIFICATE), ("write_off_certificate", action)
        honoured = c["stage"] == "agreement" and c["settled_days"] is not None and c["settled_days"] <= 35
        assert not (
            honoured and (contact or action in {"asset_preservation", "payment_order", "file_lawsuit", "enforcement"})
        ), ("agreement_honoured", action)
        if CONTACT[action] == "third_party":
            phone = own[own["channel"].isin(["sms", "voice", "mediator"]) & (own["contact"] != "none")]
            streak = 0
            for outcome in phone["outcome"][::-1]:
                if outcome != "failed":
                    break
                streak += 1
            dead_line = not c["has_phone"]  # the cases' last check found the line active
            assert dead_line or streak >= 3, ("third_party", action, streak)
    # Caps, counting the batch's own recommendations per debtor.
    picked = pd.DataFrame(
        {
            "debtor": [f"d{c['debtor']}" for c in cases],
            "action": chosen.loc[[f"C{i}" for i in range(len(cases))]].to_numpy(),
        }
    )
    picked["channel"] = picked["action"].map(CHANNEL)
    picked = picked[picked["action"].map(CONTACT) != "none"]
    for debtor, mine in picked.groupby("debtor"):
        history = calls[calls["debtor_key"] == debtor]
        dials = mine[mine["channel"].isin(["voice", "mediator"])]
        assert history["connected"].sum() + len(dials) <= 3 or dials.empty, ("connected_calls_per_day", debtor)
        for channel, group in dials.groupby("channel"):
            unanswered = (~history[history["channel"] == channel]["connected"]).sum()
            assert unanswered + len(group) <= 6, ("unanswered_dials_per_day", debtor, channel)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cases=st.lists(case_strategy, min_size=1, max_size=8),
    events=events_strategy,
    calls=calls_strategy,
    hour=st.integers(0, 23),
    chain=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_no_recommendation_breaks_a_guardrail_and_order_does_not_matter(
    cases, events, calls, hour, chain, seed
) -> None:
    frame, raw, decision = build(cases, events + calls, hour)
    policy = POLICY.with_workflow("one_plus_x") if chain else POLICY
    engine = PolicyEngine(policy, RandomValue(seed) if seed % 4 else None)  # mostly random values, some priors
    out = engine.recommend(frame)
    check_guardrails(frame, out, raw, decision, cases)
    shuffled = frame.sample(frac=1.0, random_state=seed)
    again = engine.recommend(shuffled).set_index("case_id").loc[out["case_id"]].reset_index()
    assert again.equals(out)


mediator_strategy = st.fixed_dictionaries(
    {
        "capacity": st.integers(1, 30),
        "load": st.integers(0, 35),
        "provinces": st.sampled_from([None, "福建省", "福建省;广东省", "北京市"]),
        "products": st.sampled_from([None, "credit_card", "personal_loan;consumer_loan"]),
        "languages": st.sampled_from(["mandarin", "mandarin;minnan", "mandarin;cantonese"]),
        "performance": st.floats(0.7, 1.3),
    }
)
assignee_strategy = st.fixed_dictionaries(
    {
        "province": st.sampled_from(["福建省", "广东省", "北京市", "四川省", None]),
        "product": st.sampled_from(["credit_card", "personal_loan", "consumer_loan"]),
        "expected_recovery": st.floats(0.0, 50_000.0),
    }
)


@settings(max_examples=80, deadline=None)
@given(mediators=st.lists(mediator_strategy, max_size=12), cases=st.lists(assignee_strategy, max_size=120))
def test_no_mediator_over_capacity_and_every_case_assigned_or_reported(mediators, cases) -> None:
    people = pd.DataFrame(mediators, columns=list(mediator_strategy.wrapped_strategy.mapping))
    people.insert(0, "mediator_id", [f"M{i:03d}" for i in range(len(people))])
    work = pd.DataFrame(cases, columns=list(assignee_strategy.wrapped_strategy.mapping))
    result = assign(work, people, POLICY.assignment)
    counts = pd.Series(result.mediator_id[result.mediator_id != ""]).value_counts()
    room = (people["capacity"] - people["load"]).clip(lower=0).set_axis(people["mediator_id"])
    balance = np.ceil(POLICY.assignment.balance_factor * len(work) * people["capacity"] / people["capacity"].sum())
    for mediator, taken in counts.items():
        assert taken <= room[mediator] and taken <= balance.set_axis(people["mediator_id"])[mediator]
    for i, mediator in enumerate(result.mediator_id):
        if mediator:
            served = people.set_index("mediator_id").loc[mediator, "provinces"]
            assert served is None or work.loc[i, "province"] in served.split(";")
            assert result.reason[i].startswith("best expected recovery")
        else:
            assert result.reason[i].startswith("unassigned: ")
    # Nobody left out while a mediator who could take them has room.
    if (result.mediator_id == "").any():
        left = counts.reindex(room.index, fill_value=0)
        free = people[(room - left).to_numpy() > 0]
        for i in np.flatnonzero(result.mediator_id == ""):
            province = work.loc[i, "province"]
            fits = free["provinces"].isna() | free["provinces"].fillna("").str.split(";").map(
                lambda served, p=province: p in served
            )
            limited = (
                left.loc[free["mediator_id"]] >= balance.set_axis(people["mediator_id"]).loc[free["mediator_id"]]
            ).to_numpy()
            assert not (fits.to_numpy() & ~limited).any(), (i, province)
    again = assign(work, people, POLICY.assignment)
    assert (again.mediator_id == result.mediator_id).all()
