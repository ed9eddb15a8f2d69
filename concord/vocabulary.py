"""The domain's shared words: the action catalogue, event outcomes, and the courts' scope rule.

Every stage (ingestion, features, training, policies, the simulator) reads them from here, once.
"""

from __future__ import annotations

OUTCOMES = (
    "sent",
    "delivered",
    "failed",
    "no_answer",
    "reached",
    "refused",
    "promise_to_pay",
    "agreement",
    "paid",
    "partial_paid",
    "disputed",
    "opted_out",
    "certificate_issued",
    "order_issued",
    "filed",
    "judged",
    "closed",
)
ACTIONS = (
    "evidence_deposit",
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
    "judicial_confirmation",
    "pre_check_write_off",
    "asset_preservation",
    "notarized_agreement",
    "payment_order",
    "file_lawsuit",
    "enforcement",
    "criminal_referral",
    "credit_repair",
    "wait",
    "close",
)
# Outcomes that mean a person was reached, and those that mean the debt was (being) settled.
REACHED_OUTCOMES = ("reached", "refused", "promise_to_pay", "agreement", "paid", "partial_paid")
SETTLED_OUTCOMES = ("agreement", "paid", "partial_paid")

SCOPE_PRINCIPAL_LIMIT = 100_000  # CNY: courts' small-claims scope for loans to persons


def creditor_kind(name: str) -> str:
    """Creditor type from its registered name: ``bank``, ``consumer_finance`` or ``other``."""
    lowered = name.lower()
    if "消费金融" in name or "consumer finance" in lowered or "小额贷款" in name:
        return "consumer_finance"
    if "银行" in name or "bank" in lowered or "信用卡中心" in name:
        return "bank"
    return "other"


def in_scope(product: str, debtor_type: str, principal: float) -> bool:
    """Courts' scope: credit-card disputes, or loans to a person below 100,000 CNY."""
    return product == "credit_card" or (debtor_type == "person" and principal < SCOPE_PRINCIPAL_LIMIT)
