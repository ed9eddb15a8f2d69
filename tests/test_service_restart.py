"""A crash loses no acknowledged event: events are posted while the service is killed with kill -9
(every process at once), the service is started again, and every event it acknowledged is read back
from the audit trail (chain intact) and from the ledger.

Twice: the embedded profile (SQLite ledger, audit in its own SQLite file, SQLite online store) on
the simulated session world, and the production profile (PostgreSQL ledger and audit, Redis online
store) on a world not made by Concord's simulator (``tests/foreign_world.py``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from concord import audit
from concord.settings import Settings
from tests.conftest import copy_world
from tests.service_world import Service, concord, make_key


def _open_case(env: dict[str, str]) -> tuple[str, str]:
    from training.scoring import open_cases

    engine = create_engine(Settings.from_env(env).database_url)
    try:
        row = open_cases(engine, dt.datetime.now(dt.UTC)).iloc[0]
    finally:
        engine.dispose()
    return str(row["case_id"]), str(row["creditor"])


def _utc(value: object) -> dt.datetime:
    """A ledger timestamp (naive UTC; text on SQLite) as aware UTC."""
    stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp


def crash_and_read_back(env: dict[str, str], log: Path) -> None:
    case_id, creditor = _open_case(env)
    key = make_key(env, "platform", "--creditor", creditor)
    service = Service(env, log).start()
    headers = {"Authorization": f"Bearer {key}"}
    first = httpx.post(f"{service.url}/next_best_action", json={"case_id": case_id}, headers=headers, timeout=60)
    assert first.status_code == 200 and first.json()["results"][0]["case_id"] == case_id  # online features read
    acked: list[dict[str, object]] = []
    sent = 0
    stop = threading.Event()

    def platform() -> None:
        nonlocal sent
        with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
            while not stop.is_set():
                event = {
                    "case_id": case_id,
                    "at": (base + dt.timedelta(seconds=sent)).isoformat(),
                    "action": "sms_warning",
                    "actor": "system",
                    "outcome": "delivered",
                }
                sent += 1
                try:
                    answer = client.post("/events", json={"events": [event]})
                except httpx.HTTPError:
                    return  # the service is gone: this event was not acknowledged
                if answer.status_code == 200:
                    acked.append({**event, "seq": answer.json()["events"][0]["seq"]})

    writer = threading.Thread(target=platform)
    writer.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    service.kill9()
    stop.set()
    writer.join(timeout=30)
    assert len(acked) >= 40, f"only {len(acked)} events acknowledged before the crash"

    restarted = Service(env, log).start()  # concord serve imports what the ledger lacks before serving
    try:
        again = httpx.post(f"{restarted.url}/next_best_action", json={"case_id": case_id}, headers=headers, timeout=60)
        assert again.status_code == 200, again.text
        history = again.json()["results"][0]
        assert history["audit_seq"] > max(int(e["seq"]) for e in acked)  # type: ignore[call-overload]
    finally:
        restarted.stop()
    settings = Settings.from_env(env)
    store = audit.audit_engine(settings, migrate=False)
    try:
        verified = audit.verify(store)
        kept = {e.seq: e.payload for e in audit.records(store, kind="event", case_id=case_id, limit=100_000)}
    finally:
        store.dispose()
    assert verified.ok, verified.sentence()
    for event in acked:
        payload = kept.get(int(event["seq"]))  # type: ignore[call-overload]
        assert payload is not None, f"acknowledged event seq {event['seq']} is missing after the crash"
        assert dt.datetime.fromisoformat(str(payload["at"])) == dt.datetime.fromisoformat(str(event["at"]))
    ledger = create_engine(settings.database_url)
    try:
        with ledger.connect() as connection:
            stored = {
                _utc(row[0])
                for row in connection.execute(
                    text(
                        "SELECT e.at FROM events e JOIN cases c ON c.id = e.case_pk JOIN creditors r "
                        "ON r.id = c.creditor_id WHERE c.case_id = :c AND r.name = :r AND e.action = 'sms_warning' "
                        "AND e.actor = 'system'"
                    ),
                    {"c": case_id, "r": creditor},
                )
            }
    finally:
        ledger.dispose()
    missing = [e["at"] for e in acked if dt.datetime.fromisoformat(str(e["at"])) not in stored]
    assert not missing, f"{len(missing)} acknowledged events did not reach the ledger, e.g. {missing[:3]}"
    assert concord(env, "audit", "verify").returncode == 0


def test_kill9_loses_no_acknowledged_event_sqlite(service_world: str, tmp_path) -> None:
    crash_and_read_back(copy_world(service_world, tmp_path), tmp_path / "service.log")


@pytest.mark.services
def test_kill9_loses_no_acknowledged_event_postgresql_redis(production_world: dict[str, str], tmp_path) -> None:
    crash_and_read_back(production_world, tmp_path / "service.log")
