"""The audit trail: append-only, hash-chained records of every recommendation, event and review,
and the service's store that holds it (with the API keys and the decisions' current state).

Each record's ``hash`` is sha256 over the previous record's hash and the canonical JSON of its
own fields, so changing, inserting or deleting a record breaks the chain at that point
(:func:`verify`). Appends are serialised: a transaction-scoped advisory lock on PostgreSQL, the
single SQLite writer (``BEGIN IMMEDIATE``) on SQLite. Beside a SQLite ledger the store is its own
file (``home/audit.db``, WAL): an import holding the ledger's write lock never delays an audit write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.engine import make_url

from concord.ledger import AuditRecord, Decision, table, utcnow
from concord.settings import Settings

GENESIS = "0" * 64  # the prev_hash of the first record
_AUDIT_LOCK_KEY = 0x61756469745F6C  # "audit_l": PostgreSQL advisory lock of the chain's writers
KINDS = ("recommendation", "event", "review", "assignment", "litigation_list", "key", "reload")


def audit_url(settings: Settings) -> str:
    """URL of the service's store: ``CONCORD_AUDIT_URL``, else the PostgreSQL ledger itself, else
    ``home/audit.db`` beside a SQLite ledger."""
    if settings.audit_url:
        return settings.audit_url
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        return f"sqlite:///{settings.home / 'audit.db'}"
    return settings.database_url


def audit_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    """An engine on the service's store (API keys, audit records, decisions), migrated unless told
    not to (service workers pass ``migrate=False``: ``concord serve`` migrates before they start)."""
    from concord.db import make_engine

    return make_engine(dataclasses.replace(settings, database_url=audit_url(settings)), migrate=migrate)


_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_GUARD = threading.Lock()


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction on the service's store, one at a time per store in this process.

    Threads of a worker queue on a lock here rather than in SQLite's busy handler, which sleeps
    1, 2, 5 ... up to 100 ms between tries and turned a few milliseconds of contention into
    hundreds. Processes writing a SQLite store through here (the service's workers) then queue on
    :func:`concord.db.write_turn`; others (the CLI) still meet at the database's own lock."""
    from concord.db import write_turn

    with _WRITERS_GUARD:
        lock = _WRITERS.setdefault(engine.url.render_as_string(hide_password=False), threading.Lock())
    with lock, write_turn(engine), engine.begin() as connection:
        yield connection


@dataclass(frozen=True)
class _Statements:
    """The append path's statements, built once: SQLAlchemy then finds each compiled form in its
    cache by identity instead of building and hashing a new statement per record."""

    add_record: Any
    add_decision: Any


@functools.cache
def _statements() -> _Statements:
    return _Statements(add_record=insert(table(AuditRecord)), add_decision=insert(table(Decision)))


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot be written to the audit trail")


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 text; dates ISO, decimals as strings.
    Floats that are not finite are refused (JSON has no NaN)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_plain)


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 hex of ``prev_hash`` followed by the canonical JSON of ``fields``."""
    return hashlib.sha256((prev_hash + canonical(fields)).encode("utf-8")).hexdigest()


def _fields(
    seq: int,
    created_at: dt.datetime,
    kind: str,
    decision_id: str | None,
    case_id: str | None,
    creditor: str | None,
    actor: str | None,
    payload: str,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "created_at": created_at.astimezone(dt.UTC).isoformat(),
        "kind": kind,
        "decision_id": decision_id,
        "case_id": case_id,
        "creditor": creditor,
        "actor": actor,
        "payload": payload,
    }


def _take_writer_lock(connection: Connection) -> None:
    """Serialise appends to the chain for the rest of this transaction."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_AUDIT_LOCK_KEY})")
        return
    if connection.dialect.name == "sqlite":
        driver = connection.connection.driver_connection
        # pysqlite begins a deferred transaction at the first write; a chain read before it
        # could be stale. BEGIN IMMEDIATE takes the single writer's lock first (waiting for it
        # under busy_timeout). Inside a transaction that already wrote, the lock is held.
        if driver is not None and not driver.in_transaction:
            driver.execute("BEGIN IMMEDIATE")


_LAST = f"SELECT seq, hash FROM {AuditRecord.__tablename__} ORDER BY seq DESC LIMIT 1"


def _last(connection: Connection) -> tuple[int, str] | None:
    """The chain's last (seq, hash), read under the writer lock straight from the driver's cursor
    (plain SQL, no parameters: a fifth of an append's CPU went to SQLAlchemy's statement path)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_LAST)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return (int(row[0]), str(row[1])) if row is not None else None


def append(
    connection: Connection,
    kind: str,
    payload: dict[str, Any],
    *,
    decision_id: str | None = None,
    case_id: str | None = None,
    creditor: str | None = None,
    actor: str | None = None,
    at: dt.datetime | None = None,
) -> tuple[int, str]:
    """Append one record to the chain in ``connection``'s transaction; return its (seq, hash).

    Call it first in a transaction, or after the transaction's first write (on SQLite a
    transaction that only read before may hold a stale snapshot and fail to write). The record
    is durable when the caller commits. ``actor`` is a key id or a role, never a person's data.
    """
    if kind not in KINDS:
        raise ValueError(f"audit kind must be one of {', '.join(KINDS)}, not {kind!r}")
    _take_writer_lock(connection)
    statements = _statements()
    last = _last(connection)
    seq, prev_hash = (last[0] + 1, last[1]) if last is not None else (1, GENESIS)
    created_at = (at or utcnow()).astimezone(dt.UTC)
    text = canonical(payload)
    fields = _fields(seq, created_at, kind, decision_id, case_id, creditor, actor, text)
    digest = record_hash(prev_hash, fields)
    connection.execute(
        statements.add_record,
        {
            "seq": seq,
            "created_at": created_at,
            "kind": kind,
            "decision_id": decision_id,
            "case_id": case_id,
            "creditor": creditor,
            "actor": actor,
            "payload": text,
            "prev_hash": prev_hash,
            "hash": digest,
        },
    )
    return seq, digest


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: ``ok`` with ``count`` records, or the first broken ``seq`` and why."""

    ok: bool
    count: int
    broken_seq: int | None = None
    reason: str = ""
    head_hash: str = GENESIS

    def sentence(self) -> str:
        """One sentence for people."""
        if self.ok:
            return f"audit chain OK: {self.count} records, head {self.head_hash[:16]}"
        return f"audit chain BROKEN at seq {self.broken_seq}: {self.reason}"


def verify(engine: Engine, *, chunk: int = 5000) -> Verification:
    """Recompute the chain from the first record: OK with the count, or the first broken seq."""
    records = table(AuditRecord)
    expected_prev, expected_seq, count = GENESIS, 1, 0
    with engine.connect() as connection:
        last_seq = 0
        while True:
            rows = connection.execute(
                select(records).where(records.c.seq > last_seq).order_by(records.c.seq).limit(chunk)
            ).all()
            if not rows:
                break
            for row in rows:
                if row.seq != expected_seq:
                    return Verification(
                        False, count, row.seq, f"expected seq {expected_seq} next, found {row.seq} (records missing)"
                    )
                if row.prev_hash != expected_prev:
                    return Verification(False, count, row.seq, "its prev_hash is not the previous record's hash")
                fields = _fields(
                    row.seq,
                    row.created_at,
                    row.kind,
                    row.decision_id,
                    row.case_id,
                    row.creditor,
                    row.actor,
                    row.payload,
                )
                if record_hash(row.prev_hash, fields) != row.hash:
                    return Verification(False, count, row.seq, "its content does not match its hash (altered)")
                expected_prev, expected_seq, count = row.hash, row.seq + 1, count + 1
            last_seq = rows[-1].seq
    return Verification(True, count, head_hash=expected_prev)


@dataclass(frozen=True)
class Entry:
    """One audit record as read back, its payload parsed."""

    seq: int
    created_at: dt.datetime
    kind: str
    decision_id: str | None
    case_id: str | None
    creditor: str | None
    actor: str | None
    payload: dict[str, Any]
    hash: str


def records(
    engine: Engine,
    *,
    kind: str | None = None,
    case_id: str | None = None,
    decision_id: str | None = None,
    creditor: str | None = None,
    limit: int = 100,
) -> list[Entry]:
    """The latest ``limit`` records matching every filter given, oldest first."""
    table_ = table(AuditRecord)
    query = select(table_).order_by(table_.c.seq.desc()).limit(limit)
    for column, value in (("kind", kind), ("case_id", case_id), ("decision_id", decision_id), ("creditor", creditor)):
        if value is not None:
            query = query.where(table_.c[column] == value)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        Entry(r.seq, r.created_at, r.kind, r.decision_id, r.case_id, r.creditor, r.actor, json.loads(r.payload), r.hash)
        for r in reversed(rows)
    ]


def iter_payloads(engine: Engine, kind: str, *, after_seq: int = 0, chunk: int = 5000) -> Iterator[Entry]:
    """Every record of ``kind`` after ``after_seq``, oldest first (read in chunks)."""
    table_ = table(AuditRecord)
    with engine.connect() as connection:
        while True:
            rows = connection.execute(
                select(table_)
                .where(table_.c.kind == kind, table_.c.seq > after_seq)
                .order_by(table_.c.seq)
                .limit(chunk)
            ).all()
            if not rows:
                return
            for r in rows:
                yield Entry(
                    r.seq,
                    r.created_at,
                    r.kind,
                    r.decision_id,
                    r.case_id,
                    r.creditor,
                    r.actor,
                    json.loads(r.payload),
                    r.hash,
                )
            after_seq = rows[-1].seq


def record_decision(
    connection: Connection,
    *,
    decision_id: str,
    case_id: str,
    creditor: str,
    court: str | None,
    stage: str,
    action: str,
    sensitive: bool,
    risk_flags: str | None = None,
    mediator: str | None = None,
    at: dt.datetime | None = None,
) -> str:
    """Insert the current state of a new recommendation; return its approval: ``pending`` for a
    sensitive action (a supervisor must approve or override it), else ``not_required``."""
    approval = "pending" if sensitive else "not_required"
    connection.execute(
        _statements().add_decision,
        {
            "decision_id": decision_id,
            "case_id": case_id,
            "creditor": creditor,
            "court": court,
            "stage": stage,
            "action": action,
            "sensitive": sensitive,
            "approval": approval,
            "final_action": None if sensitive else action,
            "risk_flags": risk_flags or None,
            "mediator": mediator,
            "created_at": at or utcnow(),
            "reviewed_at": None,
        },
    )
    return approval
