"""Feast entities: who or what a feature row is about.

- ``debtor``: the natural person (or company) behind one or more cases, by the keyed pseudonym
  of the ID number (``debtor_key``, 32 hex characters). Never the ID number itself.
- ``case``: one defaulted debt, by the ledger's primary key (``case_pk``, int64; the creditor's
  own ``case_id`` is unique only within a creditor).
- ``mediator``: a mediator, by the organisation's ``mediator_id``.
"""

from __future__ import annotations

from feast import Entity, ValueType


def debtor() -> Entity:
    """The debtor, joined on ``debtor_key`` (keyed pseudonym of the ID number)."""
    return Entity(
        name="debtor",
        join_keys=["debtor_key"],
        value_type=ValueType.STRING,
        description="A debtor, by the keyed pseudonym of the ID number (never the number itself).",
    )


def case() -> Entity:
    """The case, joined on ``case_pk`` (the ledger's int64 primary key of ``cases``)."""
    return Entity(
        name="case",
        join_keys=["case_pk"],
        value_type=ValueType.INT64,
        description="A defaulted debt, by the ledger's primary key cases.id.",
    )


def mediator() -> Entity:
    """The mediator, joined on ``mediator_id``."""
    return Entity(
        name="mediator",
        join_keys=["mediator_id"],
        value_type=ValueType.STRING,
        description="A mediator, by the mediation organisation's mediator_id.",
    )


def all_entities() -> dict[str, Entity]:
    """The three entities by name."""
    return {entity.name: entity for entity in (debtor(), case(), mediator())}
