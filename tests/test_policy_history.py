"""Contact-history facts the guardrails count, from a debtor's events: per debtor across creditors,
per calendar day in Asia/Shanghai, the streak of failed attempts, opt-outs, disputes until a
supervisor resolves them."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from policies.config import load_policy
from policies.history import contact_facts
from tests.policy_cases import SHANGHAI

CATALOGUE = load_policy().catalogue
DECISION = dt.datetime(2026, 5, 20, 10, 0, tzinfo=SHANGHAI)


def facts(events: list[tuple], resolutions: list[tuple] | None = None) -> pd.DataFrame:
    """History facts of cases 1 and 2 (debtor d1, two creditors) and 3 (debtor d2) at DECISION."""
    cases = pd.DataFrame(
        {"case_pk": [1, 2, 3], "debtor_key": ["d1", "d1", "d2"], "decision_ts": [pd.Timestamp(DECISION)] * 3}
    )
    raw = pd.DataFrame(
        [(pk, {1: "d1", 2: "d1", 3: "d2"}[pk], at, action, outcome) for pk, at, action, outcome in events],
        columns=["case_pk", "debtor_key", "at", "action", "outcome"],
    )
    raw["at"] = pd.to_datetime(raw["at"], utc=True)
    fixes = pd.DataFrame(resolutions or [], columns=["case_pk", "resolved_at"])
    fixes["resolved_at"] = pd.to_datetime(fixes["resolved_at"], utc=True)
    return contact_facts(cases, raw, CATALOGUE, fixes).set_axis([1, 2, 3])


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 5, day, hour, minute, tzinfo=SHANGHAI)


def test_calls_count_per_debtor_across_creditors_and_per_local_calendar_day() -> None:
    out = facts(
        [
            (1, local(20, 0, 30), "voice_call", "no_answer"),  # today, Shanghai time
            (2, local(20, 9, 0), "voice_call", "reached"),  # the same debtor's other case
            (1, local(19, 23, 30), "voice_call", "no_answer"),  # yesterday evening: not today
            (3, local(20, 9, 30), "voice_call", "no_answer"),  # another debtor
            (1, local(20, 10, 30), "voice_call", "no_answer"),  # after the decision: not known yet
        ]
    )
    for pk in (1, 2):
        assert out.loc[pk, "voice_attempts_today"] == 2
        assert out.loc[pk, "voice_connected_today"] == 1
        assert out.loc[pk, "voice_unanswered_today"] == 1
        assert out.loc[pk, "voice_attempts_week"] == 3
    assert out.loc[3, "voice_attempts_today"] == 1
    assert (out.loc[1, "voice_attempts_ever"], out.loc[2, "voice_attempts_ever"]) == (2, 1)


def test_failed_streak_counts_the_latest_failures_in_a_row() -> None:
    out = facts(
        [
            (1, local(10, 10), "voice_call", "failed"),
            (1, local(11, 10), "sms_warning", "delivered"),
            (1, local(12, 10), "voice_call", "failed"),
            (1, local(13, 10), "sms_warning", "failed"),
            (1, local(14, 10), "evidence_deposit", "sent"),  # contacts nobody: not an attempt
            (1, local(15, 10), "voice_call", "failed"),
            (2, local(15, 10), "voice_call", "reached"),
        ]
    )
    assert out.loc[1, "failed_streak"] == 3
    assert out.loc[2, "failed_streak"] == 0


def test_opt_outs_are_per_channel_and_per_debtor() -> None:
    out = facts([(1, local(3, 10), "sms_warning", "opted_out")])
    assert out.loc[1, "opted_out_sms"] == 1 and out.loc[2, "opted_out_sms"] == 1
    assert out.loc[1, "opted_out_voice"] == 0 and out.loc[3, "opted_out_sms"] == 0


def test_a_dispute_stays_open_until_a_supervisor_resolves_it() -> None:
    disputed = [(1, local(5, 10), "mediator_call", "disputed"), (2, local(5, 10), "mediator_call", "disputed")]
    out = facts(disputed, resolutions=[(1, local(6, 9))])
    assert out.loc[1, "dispute_open"] == 0 and out.loc[2, "dispute_open"] == 1
    again = facts([*disputed, (1, local(7, 10), "voice_call", "disputed")], resolutions=[(1, local(6, 9))])
    assert again.loc[1, "dispute_open"] == 1
    later = facts(disputed, resolutions=[(1, local(21, 9))])  # resolved after the decision: not yet
    assert later.loc[1, "dispute_open"] == 1


def test_actions_and_certificates_are_counted_per_case() -> None:
    out = facts(
        [
            (1, local(1, 10), "pre_check_write_off", "certificate_issued"),
            (1, local(2, 10), "lawyer_letter", "sent"),
            (1, local(3, 10), "lawyer_letter", "delivered"),
        ]
    )
    assert out.loc[1, "certificates_issued"] == 1 and out.loc[1, "count_lawyer_letter"] == 2
    assert out.loc[2, "count_lawyer_letter"] == 0
