"""Installment offers sized to what the debtor can carry (``policies/offers.yaml``).

Monthly capacity, in CNY, from the repayment-capacity profile::

    min(income x max_debt_service_ratio - other_debt / other_debt_term_months,
        (income - spending) x disposable_share)         x unstable_income_factor when stability is low

The offer is the shortest term of ``terms_months`` whose monthly amount (the recoverable claim
divided by the term, rounded up to ``round_to_cny``) fits the capacity. When even the longest
term does not fit, the offer is the longest term at the capacity, and says what share of the
claim it covers (a partial settlement for a supervisor to approve). No income estimate, or a
capacity under ``min_monthly_cny``, means no offer, and the answer says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.facts import Facts, nan_to_num
from policies.schema import Node

FULL, PARTIAL, NO_INCOME, TOO_LITTLE, NOTHING_OWED = "full", "partial", "no_income", "below_minimum", "nothing_owed"


@dataclass(frozen=True)
class OfferRules:
    version: str
    terms_months: tuple[int, ...]
    max_debt_service_ratio: float
    other_debt_term_months: int
    disposable_share: float
    min_monthly_cny: float
    round_to_cny: float
    unstable_income_below: float
    unstable_income_factor: float


def parse_offers(root: Node) -> OfferRules:
    keys = (
        "terms_months",
        "max_debt_service_ratio",
        "other_debt_term_months",
        "disposable_share",
        "min_monthly_cny",
        "round_to_cny",
        "unstable_income_below",
        "unstable_income_factor",
    )
    top = root.mapping(allowed=("version", "source", *keys), required=("version", *keys))
    terms = sorted({item.whole(1) for item in top["terms_months"].sequence()})
    if not terms:
        raise top["terms_months"].fail("give at least one term")
    return OfferRules(
        version=str(top["version"].value),
        terms_months=tuple(terms),
        max_debt_service_ratio=top["max_debt_service_ratio"].number(0, 1),
        other_debt_term_months=top["other_debt_term_months"].whole(1),
        disposable_share=top["disposable_share"].number(0, 1),
        min_monthly_cny=top["min_monthly_cny"].number(minimum=0),
        round_to_cny=top["round_to_cny"].number(minimum=0.01),
        unstable_income_below=top["unstable_income_below"].number(0, 1),
        unstable_income_factor=top["unstable_income_factor"].number(0, 1),
    )


@dataclass(frozen=True)
class Offers:
    """Per case: the offer's status, term in months, monthly amount and share of the claim covered."""

    status: np.ndarray  # object: full, partial, no_income, below_minimum, nothing_owed
    term_months: np.ndarray  # NaN when there is no offer
    monthly_cny: np.ndarray
    covers: np.ndarray  # share of the recoverable claim the plan repays
    capacity_cny: np.ndarray  # monthly capacity estimated from the profile


def monthly_capacity(facts: Facts, rules: OfferRules) -> np.ndarray:
    """What the debtor can pay a month, CNY (NaN without an income estimate)."""
    income = facts["monthly_income"]
    other = nan_to_num(facts["other_debt"], nan=0.0) / rules.other_debt_term_months
    spend = facts["monthly_spend"]
    by_ratio = income * rules.max_debt_service_ratio - other
    by_budget = np.where(np.isnan(spend), by_ratio, (income - spend) * rules.disposable_share)
    capacity = np.maximum(np.minimum(by_ratio, by_budget), 0.0)
    unstable = facts["income_stability"] < rules.unstable_income_below
    return np.where(unstable, capacity * rules.unstable_income_factor, capacity)


def size_offers(facts: Facts, rules: OfferRules, amount: np.ndarray) -> Offers:
    """Offers for repaying ``amount`` CNY per case (the recoverable claim)."""
    capacity = monthly_capacity(facts, rules)
    step = rules.round_to_cny
    terms = np.array(rules.terms_months, dtype=np.float64)
    monthly = np.ceil(amount[:, None] / terms[None, :] / step) * step  # (cases, terms)
    fits = monthly <= capacity[:, None]
    first = np.argmax(fits, axis=1)
    any_fit = fits.any(axis=1)
    n = facts.n
    term = np.where(any_fit, terms[first], terms[-1])
    pay = np.where(any_fit, monthly[np.arange(n), first], np.floor(nan_to_num(capacity) / step) * step)
    with np.errstate(divide="ignore", invalid="ignore"):
        covers = np.where(any_fit, 1.0, np.minimum(pay * terms[-1] / amount, 1.0))
    status = np.where(any_fit, FULL, PARTIAL).astype(object)
    status[np.isnan(capacity)] = NO_INCOME
    status[~np.isnan(capacity) & (nan_to_num(capacity) < rules.min_monthly_cny)] = TOO_LITTLE
    status[~(amount > 0)] = NOTHING_OWED
    offered = np.isin(status, [FULL, PARTIAL])
    return Offers(
        status=status,
        term_months=np.where(offered, term, np.nan),
        monthly_cny=np.where(offered, pay, np.nan),
        covers=np.where(offered, covers, np.nan),
        capacity_cny=capacity,
    )
