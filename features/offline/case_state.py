"""The ``case_state`` offline table: per case and change point, the case file's facts, its stage,
and contact attempts and answers by channel in 1-, 7- and 30-day windows and in total.

Built a chunk of cases at a time (``features/offline/build.py`` reads the chunks) with numpy:
searchsorted on case-sorted event times, so memory grows with the chunk, not the ledger.
Everything that depends on the request time itself (days past due, days since the last contact)
is left to the on-demand view ``case_ages`` (``features/repo/views.py``), computed from the
stored epoch features and the request's ``decision_ts``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES
from features.offline.asof import (
    DAY,
    SPAN,
    ActiveCounter,
    asof,
    availability,
    date_seconds,
    epoch_seconds,
    grouped_cummax,
    sorted_unique,
    take,
    window_end,
)
from features.offline.schemas import (
    CHANNELS,
    CREDITOR_TYPES,
    PRODUCT_TYPES,
    SCHEMAS,
    STAGES,
    TIMESTAMP_FIELD,
    WINDOWS_DAYS,
    Vocabulary,
    as_flag,
    as_float,
    success_label,
    to_arrow,
    vocabulary_column,
)

# Which events move a case to which stage (see STAGES).
_LITIGATION_ACTIONS = ("payment_order", "file_lawsuit", "enforcement")
_LITIGATION_OUTCOMES = ("order_issued", "filed", "judged")
_AGREEMENT_ACTIONS = ("notarized_agreement", "judicial_confirmation")


def _event_codes(action_values: np.ndarray, outcome_values: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over events: per channel, reached/settled outcomes, stage rank."""
    action, outcome = Vocabulary(action_values), Vocabulary(outcome_values)
    masks = {ch: action.isin(actions) for ch, actions in CHANNELS.items()}
    attempt = np.zeros(len(action_values), dtype=bool)
    for mask in masks.values():
        attempt |= mask
    reached = outcome.isin(REACHED_OUTCOMES)
    settled = outcome.isin(SETTLED_OUTCOMES)
    rank = np.where(attempt, 1, 0)
    rank = np.where(reached | outcome.isin("promise_to_pay"), 2, rank)
    formalised = action.isin(_AGREEMENT_ACTIONS) & ~outcome.isin(("failed", "refused", "disputed"))
    rank = np.where(outcome.isin(("agreement", "partial_paid")) | formalised, 3, rank)
    rank = np.where(action.isin(_LITIGATION_ACTIONS) & outcome.isin(_LITIGATION_OUTCOMES), 4, rank)
    rank = np.where(outcome.isin("paid"), 5, rank)
    rank = np.where(action.isin("pre_check_write_off") & outcome.isin("certificate_issued"), 6, rank)
    rank = np.where(action.isin("close"), 7, rank)
    return {
        "attempt": attempt,
        "reached": reached,
        "settled": settled,
        "rank": rank.astype(np.int64),
        "delivered": outcome.isin("delivered"),
        "promise": outcome.isin("promise_to_pay"),
        "disputed": outcome.isin("disputed"),
        "opted_out": outcome.isin("opted_out"),
        "refused": outcome.isin("refused"),
        "failed": outcome.isin("failed"),
        "through": outcome.isin(("delivered", "sent", "no_answer")),
        "paid": outcome.isin(("paid", "partial_paid")),
        **masks,
    }


def build_case_state(cases: pd.DataFrame, events: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Case-state rows for a chunk of cases.

    ``cases``: case_pk, creditor_kind, product, debtor_type, has_phone, principal, interest,
    penalty, fees, annual_rate, in_scope, overdue_since, last_payment_date, received_at. ``events``: case_pk, at,
    action, outcome, amount, received_at (events of these cases only). One row per case and
    change point: the case becoming known, every event becoming known, and every event leaving
    a 1-, 7- or 30-day window, up to ``as_of``.
    """
    cases = cases.sort_values("case_pk", kind="stable").reset_index(drop=True)
    pks = cases["case_pk"].to_numpy(dtype=np.int64)
    n_cases = len(pks)
    overdue = date_seconds(cases["overdue_since"])
    case_received = epoch_seconds(cases["received_at"])

    at = epoch_seconds(events["at"])
    avail = availability(at, epoch_seconds(events["received_at"]))
    ev_case = np.searchsorted(pks, events["case_pk"].to_numpy(dtype=np.int64))
    # The case is known from its import, or (a historical backfill) from its overdue date; its
    # own events prove it existed when they became known (the ledger keeps only the last version).
    first_event = np.full(n_cases, np.inf)
    np.minimum.at(first_event, ev_case, avail)
    case_avail = np.fmin(np.where(np.isnan(case_received), overdue, case_received), first_event)
    case_avail = np.where(np.isfinite(case_avail), case_avail, overdue)
    known_case = case_avail <= as_of_s
    known_event = (avail <= as_of_s) & known_case[ev_case]
    ev_case, at, avail = ev_case[known_event], at[known_event], avail[known_event]
    action = events["action"].to_numpy(dtype=object)[known_event]
    outcome = events["outcome"].to_numpy(dtype=object)[known_event]
    amount = pd.to_numeric(events["amount"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)[known_event]

    # Change points, clipped to the case's availability, deduplicated per case.
    points = [avail, *[at + w * DAY for w in WINDOWS_DAYS]]
    cp_case = np.concatenate([ev_case] * len(points) + [np.flatnonzero(known_case)])
    cp_time = np.concatenate([*points, case_avail[known_case]])
    cp_time = np.maximum(cp_time, case_avail[cp_case])
    keep = cp_time <= as_of_s
    query = sorted_unique(cp_case[keep].astype(np.int64) * SPAN + cp_time[keep].astype(np.int64))
    q_case = query // SPAN
    q_time = query - q_case * SPAN

    codes = _event_codes(action, outcome)
    out: dict[str, object] = {"case_pk": pks[q_case], TIMESTAMP_FIELD: q_time}
    kind = cases["creditor_kind"].fillna("other").to_numpy(dtype=object)
    product = cases["product"].to_numpy(dtype=object)
    principal, interest, penalty, fees = (as_float(cases[c]) for c in ("principal", "interest", "penalty", "fees"))
    kind_code = np.select(
        [kind == c for c in CREDITOR_TYPES], range(len(CREDITOR_TYPES)), CREDITOR_TYPES.index("other")
    )
    out["creditor_type"] = vocabulary_column(CREDITOR_TYPES, kind_code[q_case])
    for c in CREDITOR_TYPES:
        out[f"creditor_{c}"] = (kind == c).astype(np.int32)[q_case]
    for p in PRODUCT_TYPES:
        out[f"product_{p}"] = (product == p).astype(np.int32)[q_case]
    out["debtor_company"] = (cases["debtor_type"].to_numpy(dtype=object) == "company").astype(np.int32)[q_case]
    for name, values in (("principal", principal), ("interest", interest), ("penalty", penalty), ("fees", fees)):
        out[name] = values[q_case]
    out["total_claim"] = np.round(principal + interest + penalty + fees, 2)[q_case]
    out["annual_rate"] = as_float(cases["annual_rate"])[q_case]
    out["in_scope"] = as_flag(cases["in_scope"])[q_case]
    out["has_phone"] = as_flag(cases["has_phone"])[q_case]
    out["overdue_since_ts"] = overdue.astype(np.int64)[q_case]
    # The debtor's last repayment before the default (a case-file fact): whether there was one, and
    # how long before the overdue date.
    last_payment = date_seconds(cases["last_payment_date"])
    out["has_last_payment"] = (~np.isnan(last_payment)).astype(np.int32)[q_case]
    out["last_payment_gap_days"] = ((overdue - last_payment) / DAY)[q_case]

    # As-of lookups over events sorted by (case, availability).
    order = np.lexsort((at, avail, ev_case))
    s_case, s_avail, s_at = ev_case[order], avail[order], at[order]
    found = asof(s_case, s_avail, q_case, q_time)
    stage = grouped_cummax(s_case, codes["rank"][order])
    stage_code = take(stage, found, 0).astype(np.int32)
    out["stage_code"] = stage_code
    out["stage"] = vocabulary_column(STAGES, stage_code)

    counter = ActiveCounter(ev_case, avail, query)
    ends = {w: window_end(at, avail, w) for w in WINDOWS_DAYS}
    repaired = codes["reached"] | codes["delivered"]
    for ch in CHANNELS:
        success = codes[ch] & (repaired if ch == "repair" else codes["reached"])
        for label, mask in (("attempts", codes[ch]), (success_label(ch), success)):
            for w in WINDOWS_DAYS:
                out[f"{ch}_{label}_{w}d"] = counter.window(mask, ends[w])
    attempts, reached = codes["attempt"], codes["reached"]
    out["reached_7d"] = counter.window(reached, ends[7])
    out["reached_30d"] = counter.window(reached, ends[30])
    for name, mask in (
        ("attempts_total", attempts),
        ("reached_total", reached),
        ("promises_total", codes["promise"]),
        ("settled_total", codes["settled"]),
        ("disputed_total", codes["disputed"]),
        ("opted_out_total", codes["opted_out"]),
        ("refused_total", codes["refused"]),
    ):
        out[name] = counter.total(mask)
    out["ever_reached"] = (np.asarray(out["reached_total"]) > 0).astype(np.int32)

    paid = codes["paid"] & ~np.isnan(amount)
    cents = np.where(paid, np.round(np.nan_to_num(amount) * 100), 0).astype(np.int64)[order]
    running = np.cumsum(cents)
    block_start = np.searchsorted(s_case, s_case, side="left")
    before = np.where(block_start > 0, running[np.maximum(block_start - 1, 0)], 0)
    out["paid_amount_total"] = take(running - before, found, 0).astype(np.float64) / 100

    for name, mask in (
        ("last_reached_ts", reached),
        ("last_attempt_ts", attempts),
        ("last_settled_ts", codes["settled"]),
    ):
        latest = grouped_cummax(s_case, np.where(mask[order], s_at + 1, 0).astype(np.int64)) - 1
        value = take(latest, found, -1).astype(np.float64)
        out[name] = np.where(value >= 0, value, np.nan)
    # An open promise: the debtor's latest answer (by ``at``) was a promise to pay. The low bit of
    # 2 * at + promise carries the answer of the latest contact through the running maximum.
    answer = np.where(reached[order], 2 * s_at.astype(np.int64) + 2 + codes["promise"][order], 0)
    latest_answer = take(grouped_cummax(s_case, answer.astype(np.int64)), found, 0)
    out["promise_open"] = (latest_answer % 2).astype(np.int32)
    # The phone line: messages and calls that could not get through (failed) say the number does
    # not work; those delivered or rung without an answer say it works.
    phone = codes["sms"] | codes["voice"]
    out["phone_failed_total"] = counter.total(phone & codes["failed"])
    out["phone_through_total"] = counter.total(phone & codes["through"])
    last_phone = np.where(phone[order], 2 * s_at.astype(np.int64) + 2 + codes["failed"][order], 0)
    latest_phone = take(grouped_cummax(s_case, last_phone.astype(np.int64)), found, 0)
    out["last_phone_failed"] = (latest_phone % 2).astype(np.int32)
    # First event known: the running maximum of (SPAN - 1 - at) is the running minimum of ``at``.
    earliest = (SPAN - 1) - grouped_cummax(s_case, (SPAN - 1) - s_at.astype(np.int64))
    first = take(earliest, found, -1).astype(np.float64)
    out["first_event_ts"] = np.where(found.found, first, np.nan)

    return to_arrow(out, SCHEMAS["case_state"]())
