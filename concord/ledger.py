"""The case ledger: what Concord knows about creditors, cases, debtors and their history.

SQLAlchemy 2 models; the schema itself is created by the Alembic migrations in
``concord/migrations`` (see :func:`concord.db.upgrade`). The same code runs on SQLite and
PostgreSQL. Conventions:

- Amounts are exact decimals in CNY (``Numeric(18, 2)``), never floats.
- Timestamps are stored as UTC (:class:`UTCDateTime`); dates are calendar dates.
- Debtors are known only by the keyed pseudonym of their ID number plus a masked display
  form. The debtor's name is kept on the case (the court list needs it) and nowhere else.
- Every source row carries ``row_hash`` (its normalised content) so that re-importing an
  unchanged row is a no-op, ``batch_id``, and ``received_at``: when Concord learnt it. A
  historical backfill stores NULL there, meaning "known when it happened"; features then
  treat the row as available at its own time (see ``features/offline/asof.py``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

Money = Numeric(18, 2, asdecimal=True)
HASH = 32  # characters of a row hash or pseudonym

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as naive UTC on every backend and read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """The Core table of a ledger model, typed as one (SQLAlchemy types ``__table__`` loosely)."""
    return Base.metadata.tables[model.__tablename__]


class ImportBatch(Base):
    """One run of ``concord import``: what came in, from where, and how it ended."""

    __tablename__ = "import_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    table_name: Mapped[str] = mapped_column(String(32))
    source_name: Mapped[str] = mapped_column(String(255))
    source_sha256: Mapped[str] = mapped_column(String(64))
    sheet: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)


class Creditor(Base):
    """A bank or consumer-finance company that hands over cases."""

    __tablename__ = "creditors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # bank | consumer_finance | other
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Debtor(Base):
    """A natural person (or company) known only by keyed pseudonym and masked ID."""

    __tablename__ = "debtors"
    debtor_key: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    id_masked: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Case(Base):
    """A defaulted debt in a creditor's pool (contract table ``cases``)."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("creditor_id", "case_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditors.id"))
    case_id: Mapped[str] = mapped_column(String(64), index=True)
    debtor_key: Mapped[str | None] = mapped_column(ForeignKey("debtors.debtor_key"), index=True)
    product: Mapped[str] = mapped_column(String(32))
    debtor_type: Mapped[str] = mapped_column(String(16))
    debtor_name: Mapped[str] = mapped_column(String(255))
    phone_key: Mapped[str | None] = mapped_column(String(HASH))
    phone_masked: Mapped[str | None] = mapped_column(String(16))
    province: Mapped[str | None] = mapped_column(String(64))
    principal: Mapped[Decimal] = mapped_column(Money)
    interest: Mapped[Decimal] = mapped_column(Money)
    penalty: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    annual_rate: Mapped[Decimal | None] = mapped_column(Numeric(9, 6, asdecimal=True))
    loan_date: Mapped[dt.date] = mapped_column(Date)
    overdue_since: Mapped[dt.date] = mapped_column(Date)
    last_payment_date: Mapped[dt.date | None] = mapped_column(Date)
    court: Mapped[str | None] = mapped_column(String(255))
    in_scope: Mapped[bool] = mapped_column(Boolean)
    flags: Mapped[str] = mapped_column(String(255), default="", server_default="")
    stage: Mapped[str] = mapped_column(String(32), default="new", server_default="new")
    row_hash: Mapped[str] = mapped_column(String(HASH))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ContactCheck(Base):
    """A phone-status check or lost-contact repair result (contract ``contact_checks``)."""

    __tablename__ = "contact_checks"
    __table_args__ = (UniqueConstraint("debtor_key", "checked_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    debtor_key: Mapped[str] = mapped_column(ForeignKey("debtors.debtor_key"))
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    phone_status: Mapped[str] = mapped_column(String(16))
    repaired_numbers: Mapped[int] = mapped_column(Integer, default=0)
    repair_source: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(HASH))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class CapacitySnapshot(Base):
    """Repayment-capacity snapshot from a data provider (contract ``capacity``)."""

    __tablename__ = "capacity_snapshots"
    __table_args__ = (UniqueConstraint("debtor_key", "as_of"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    debtor_key: Mapped[str] = mapped_column(ForeignKey("debtors.debtor_key"))
    as_of: Mapped[dt.date] = mapped_column(Date)
    monthly_income: Mapped[Decimal | None] = mapped_column(Money)
    income_stability: Mapped[float | None] = mapped_column(Float)
    employment: Mapped[str] = mapped_column(String(16))
    social_insurance_months: Mapped[int | None] = mapped_column(Integer)
    has_property: Mapped[bool] = mapped_column(Boolean)
    has_vehicle: Mapped[bool] = mapped_column(Boolean)
    other_debt: Mapped[Decimal | None] = mapped_column(Money)
    monthly_spend: Mapped[Decimal | None] = mapped_column(Money)
    row_hash: Mapped[str] = mapped_column(String(HASH))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class LitigationRecord(Base):
    """Court data on a debtor at a date (contract ``litigation``)."""

    __tablename__ = "litigation_records"
    __table_args__ = (UniqueConstraint("debtor_key", "as_of"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    debtor_key: Mapped[str] = mapped_column(ForeignKey("debtors.debtor_key"))
    as_of: Mapped[dt.date] = mapped_column(Date)
    defendant_cases: Mapped[int] = mapped_column(Integer)
    enforcement_cases: Mapped[int] = mapped_column(Integer)
    terminated_no_assets: Mapped[int] = mapped_column(Integer)
    dishonest_listed: Mapped[bool] = mapped_column(Boolean)
    consumption_restricted: Mapped[bool] = mapped_column(Boolean)
    row_hash: Mapped[str] = mapped_column(String(HASH))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Event(Base):
    """A contact attempt or case event from the mediation platform (contract ``events``)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("case_pk", "at", "action", "actor"),
        Index("ix_events_at", "at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    case_pk: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    propensity: Mapped[float | None] = mapped_column(Float)
    row_hash: Mapped[str] = mapped_column(String(HASH))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Mediator(Base):
    """A mediator of a mediation organisation (contract ``mediators``)."""

    __tablename__ = "mediators"
    id: Mapped[int] = mapped_column(primary_key=True)
    mediator_id: Mapped[str] = mapped_column(String(64), unique=True)
    organisation: Mapped[str] = mapped_column(String(255))
    capacity: Mapped[int] = mapped_column(Integer)
    languages: Mapped[str] = mapped_column(Text, default="", server_default="")
    products: Mapped[str] = mapped_column(Text, default="", server_default="")
    provinces: Mapped[str] = mapped_column(Text, default="", server_default="")
    row_hash: Mapped[str] = mapped_column(String(HASH))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ModelAliasChange(Base):
    """Which registered model version held an alias (``champion``, ``challenger``) from when.

    MLflow keeps only the current alias; this is its history, for audits and rollback.
    """

    __tablename__ = "model_alias_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    alias: Mapped[str] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(32))  # None: alias removed
    previous_version: Mapped[str | None] = mapped_column(String(32))
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="")  # JSON: the figures that decided it


class Assignment(Base):
    """A case given to a mediator by ``concord assign`` (append-only: a case's latest row is its
    current mediator), with the expected recovery and the reason the policy gave."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_pk: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    mediator_id: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expected_recovery: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(Text, default="")
    policy_version: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(36), index=True)


class DisputeResolution(Base):
    """A supervisor's resolution of a debtor's dispute (异议) on a case: disputes recorded before
    ``resolved_at`` no longer block contact."""

    __tablename__ = "dispute_resolutions"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_pk: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    resolved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")


class ApiKey(Base):
    """A key of the service (``Authorization: Bearer KEY``): its role and scope, never the key itself
    (``key_hash`` is ``salt$sha256(salt + secret)``; the raw key is shown once when made)."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(32))  # platform | supervisor | court | data_scientist | admin
    creditor: Mapped[str | None] = mapped_column(String(255))
    court: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AuditRecord(Base):
    """One link of the append-only, hash-chained audit trail (``concord/audit.py``): ``hash`` is
    sha256 over ``prev_hash`` and the canonical JSON of the record's other fields."""

    __tablename__ = "audit_records"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32), index=True)  # recommendation | event | review | assignment
    decision_id: Mapped[str | None] = mapped_column(String(64), index=True)
    case_id: Mapped[str | None] = mapped_column(String(64), index=True)
    creditor: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str | None] = mapped_column(String(64))  # key id or role: never a person's data
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Decision(Base):
    """The current state of one recommendation (approval, override, review); the audit chain
    holds every step that led to it."""

    __tablename__ = "decisions"
    decision_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(64), index=True)
    creditor: Mapped[str] = mapped_column(String(255))
    court: Mapped[str | None] = mapped_column(String(255))
    stage: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    sensitive: Mapped[bool] = mapped_column(Boolean)
    approval: Mapped[str] = mapped_column(String(16), index=True)  # not_required | pending | approved | overridden
    final_action: Mapped[str | None] = mapped_column(String(32))
    risk_flags: Mapped[str | None] = mapped_column(Text)
    mediator: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
