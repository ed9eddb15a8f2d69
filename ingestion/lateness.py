"""How long after they happened the ledger's rows were received: history imported as news.

A row counts from when Concord learnt it (``received_at``; NULL for a ``--historical``
backfill, known when it happened). A history file imported without ``--historical`` gets
``received_at`` = the import's time, so every decision before that sees none of it. This module
measures that for one import (to warn) and for the whole ledger (to explain a refusal).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, select

from concord import ledger

LATE_AFTER = pd.Timedelta(days=30)  # received this long after it happened: history, not news
MOSTLY = 0.5  # share of rows above which a table "mostly" holds history received late

# The tables whose rows have a time of their own, and that column.
OWN_TIME = {
    "events": (ledger.Event, "at"),
    "contact_checks": (ledger.ContactCheck, "checked_at"),
    "capacity": (ledger.CapacitySnapshot, "as_of"),
    "litigation": (ledger.LitigationRecord, "as_of"),
}


@dataclass(frozen=True)
class Lateness:
    """Of ``rows``, how many were received more than ``LATE_AFTER`` after they happened, and
    the latest time any of them was received (None when all are backfills)."""

    table: str
    rows: int
    late: int
    last_received: dt.datetime | None

    @property
    def share(self) -> float:
        """Share of the rows received late (0 when there are none)."""
        return self.late / self.rows if self.rows else 0.0

    @property
    def mostly_late(self) -> bool:
        """Whether most rows happened well before they were received."""
        return self.share > MOSTLY

    def advice(self) -> str:
        """One sentence naming the fix."""
        when = f"{self.last_received:%Y-%m-%d}" if self.last_received else "import time"
        return (
            f"{self.share:.0%} of the {self.table} rows happened more than {LATE_AFTER.days} days before they "
            f"were received ({when}), so features treat them as unknown until then; if this is history, "
            f"re-import the file with `--historical` (stored rows are kept, not duplicated, and then count "
            f"from when they happened)"
        )


def lateness(engine: Engine, table: str, batch_id: int | None = None) -> Lateness | None:
    """Lateness of ``table``'s rows (only those last written by ``batch_id`` when given), or
    None for a table without a time of its own (cases, mediators)."""
    if table not in OWN_TIME:
        return None
    model, column = OWN_TIME[table]
    sql = ledger.table(model)
    query = select(sql.c[column], sql.c.received_at)
    if batch_id is not None:
        query = query.where(sql.c.batch_id == batch_id)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).all(), columns=["own", "received_at"])
    if frame.empty:
        return Lateness(table, 0, 0, None)
    own = pd.to_datetime(frame["own"], utc=True)
    received = pd.to_datetime(frame["received_at"], utc=True)
    late = int(((received - own) > LATE_AFTER).sum())
    last = received.max()
    return Lateness(table, len(frame), late, None if pd.isna(last) else last.to_pydatetime())


def history_received_late(engine: Engine) -> Lateness | None:
    """The history table that is most received late (events first on a tie), when most of its
    rows happened well before they were received; else None."""
    worst = None
    for table in OWN_TIME:
        found = lateness(engine, table)
        if found is not None and found.mostly_late and (worst is None or found.share > worst.share):
            worst = found
    return worst
