"""Events the platform reports to the service: checked, written to the audit trail before the
answer (that is the acknowledgement), then imported into the ledger in the background.

An import may hold the ledger's write lock for minutes; the audit store never waits for it. The
service's background thread (and ``concord events sync``) copies acknowledged events into the
ledger through the importer, as a file ``service-events-<first>-<last>.csv``: the batch's name
records how far the copy went. Until then the decision path adds those events itself
(:func:`pending_events`), so a contact cap counts an attempt reported a second ago.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, select, text

from concord import audit
from concord.ledger import AuditRecord, table
from concord.settings import Settings
from policies.history_one import PastEvent
from serving.auth import Principal
from serving.cases import ApiError, find_case
from serving.schemas import EventIn

log = logging.getLogger("concord.service")
SHANGHAI = ZoneInfo("Asia/Shanghai")
FUTURE_TOLERANCE = dt.timedelta(minutes=5)  # clocks differ a little; an event later than this is refused
_SYNCED = re.compile(r"^service-events-(\d+)-(\d+)\.csv$")


def _utc_second(at: dt.datetime) -> dt.datetime:
    """An event time as aware UTC to the second (naive = Asia/Shanghai, as in the contracts)."""
    aware = at if at.tzinfo else at.replace(tzinfo=SHANGHAI)
    return aware.astimezone(dt.UTC).replace(microsecond=0)


def record_events(
    audit_engine: Engine, ledger: Engine, principal: Principal, events: Sequence[EventIn]
) -> list[tuple[str, str, int, str]]:
    """Check every event (case known and in scope, not in the future), then append them all to the
    audit trail in one transaction: all or none. Returns (case_id, creditor, seq, hash) per event.

    Raises:
        ApiError: naming the event (``events[i].field``) that was refused; nothing is written.
    """
    now = dt.datetime.now(dt.UTC)
    checked = []
    with ledger.connect() as connection:
        for i, event in enumerate(events):
            case = find_case(connection, principal, event.case_id, event.creditor, field=f"events[{i}].case_id")
            at = _utc_second(event.at)
            if at > now + FUTURE_TOLERANCE:
                raise ApiError(400, f"event {i} happened at {at.isoformat()}, in the future", f"events[{i}].at")
            checked.append((case, event, at))
    acks = []
    with audit.transaction(audit_engine) as connection:
        for case, event, at in checked:
            payload = {
                "case_pk": case.case_pk,
                "case_id": case.case_id,
                "creditor": case.creditor,
                "at": at.isoformat(),
                "action": event.action,
                "actor": event.actor,
                "outcome": event.outcome,
                "amount": event.amount,
                "propensity": event.propensity,
            }
            seq, digest = audit.append(
                connection, "event", payload, case_id=case.case_id, creditor=case.creditor, actor=principal.actor
            )
            acks.append((case.case_id, case.creditor, seq, digest))
    return acks


# Built once: SQLAlchemy then finds its compiled form by identity (every one-case request reads it)
_SYNCED_QUERY = text(
    "SELECT source_name FROM import_batches WHERE table_name = 'events' AND source_name LIKE 'service-events-%' "
    "AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
)


def synced_through(connection: Connection) -> int:
    """The last audit seq whose event the ledger has imported (0 when none)."""
    row = connection.execute(_SYNCED_QUERY).first()
    match = _SYNCED.match(row.source_name) if row is not None else None
    return int(match.group(2)) if match else 0


def _past(payload: dict[str, object]) -> PastEvent:
    at = dt.datetime.fromisoformat(str(payload["at"]))
    return PastEvent(
        int(payload["case_pk"]),  # type: ignore[call-overload]
        at.timestamp(),
        str(payload["action"]),
        str(payload["outcome"]),
        str(payload["actor"]),
    )


@functools.cache
def _pending_query() -> Any:
    """Acknowledged events of some cases after an audit seq, oldest first (built once)."""
    records = table(AuditRecord)
    return (
        select(records.c.payload)
        .where(
            records.c.kind == "event",
            records.c.seq > bindparam("after"),
            records.c.case_id.in_(bindparam("case_ids", expanding=True)),
        )
        .order_by(records.c.seq)
    )


def pending_events(
    audit_connection: Connection, after_seq: int, case_ids: Sequence[str], creditors: Sequence[str]
) -> list[PastEvent]:
    """Acknowledged events of these cases that the ledger has not imported yet (after ``after_seq``)."""
    wanted = set(zip(case_ids, creditors, strict=True))
    out = []
    for row in audit_connection.execute(_pending_query(), {"after": after_seq, "case_ids": sorted(set(case_ids))}):
        payload = json.loads(row.payload)
        if (payload["case_id"], payload["creditor"]) in wanted:
            out.append(_past(payload))
    return out


@dataclass(frozen=True)
class SyncResult:
    """What one copy of acknowledged events into the ledger did."""

    events: int
    imported: int
    unchanged: int
    rejected: int
    through_seq: int


def sync_events(settings: Settings, ledger: Engine, audit_engine: Engine, *, limit: int = 50_000) -> SyncResult:
    """Import the acknowledged events the ledger lacks (at most ``limit`` per call), through the
    importer (its checks, its lock, its no-op for rows already stored)."""
    from ingestion.importer import import_file

    with ledger.connect() as connection:
        after = synced_through(connection)
    rows = []
    for entry in audit.iter_payloads(audit_engine, "event", after_seq=after):
        p = entry.payload
        at = dt.datetime.fromisoformat(p["at"]).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            {
                "seq": entry.seq,
                "received": entry.created_at,
                "case_id": p["case_id"],
                "creditor": p["creditor"],
                "at": at,
                "action": p["action"],
                "actor": p["actor"],
                "outcome": p["outcome"],
                "amount": p.get("amount"),
                "propensity": p.get("propensity"),
            }
        )
        if len(rows) >= limit:
            break
    if not rows:
        return SyncResult(0, 0, 0, 0, after)
    frame = pd.DataFrame(rows)
    first, last = int(frame["seq"].iloc[0]), int(frame["seq"].iloc[-1])
    folder = settings.ensure_home() / "imports" / "service"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"service-events-{first}-{last}.csv"
    frame.drop(columns=["seq", "received"]).to_csv(path, index=False, encoding="utf-8")
    path.chmod(0o600)
    # Known to Concord when the service acknowledged them: the latest acknowledgement of the file
    # (never earlier than any of its events' own).
    received = pd.Timestamp(frame["received"].max()).to_pydatetime()
    try:
        report = import_file("events", path, settings, ledger, received_at=received)
    finally:
        path.unlink(missing_ok=True)
    if report.rejected:
        log.warning(
            "%d acknowledged events were rejected by the ledger's import (audit seq %d-%d)",
            report.rejected,
            first,
            last,
        )
    return SyncResult(len(rows), report.imported, report.unchanged, report.rejected, last)
