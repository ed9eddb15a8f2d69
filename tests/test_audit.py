"""The audit trail: hash chain, tamper evidence, concurrent appends, and API keys (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
from sqlalchemy import text

from concord.audit import GENESIS, append, audit_engine, audit_url, record_decision, records, verify
from serving.auth import ADMIN, COURT, PLATFORM, authenticate, create_key, revoke_key
from tests.service_world import ROOT, concord

# One writer process, as a service worker appends (``concord serve`` runs two).
_WRITER = textwrap.dedent("""
    import sys
    from concord import audit
    from concord.settings import get_settings

    engine = audit.audit_engine(get_settings(), migrate=False)
    for i in range(int(sys.argv[2])):
        with audit.transaction(engine) as connection:
            audit.append(connection, "event", {"writer": sys.argv[1], "i": i})
""")


def test_store_beside_a_sqlite_ledger_is_its_own_file(settings):
    assert audit_url(settings).endswith("/audit.db")
    assert audit_url(settings) != settings.database_url


def test_chain_appends_verifies_and_shows_tampering(ledger_settings):
    engine = audit_engine(ledger_settings)
    assert verify(engine).ok and verify(engine).count == 0
    hashes = []
    for i in range(5):
        with engine.begin() as connection:
            seq, digest = append(
                connection,
                "event",
                {"i": i, "amount": "12.50"},
                case_id=f"C{i}",
                creditor="Bank A",
                actor="key:1:platform",
            )
            hashes.append(digest)
        assert seq == i + 1
    result = verify(engine)
    assert result.ok and result.count == 5 and result.head_hash == hashes[-1]
    back = records(engine, case_id="C3")
    assert [e.payload for e in back] == [{"i": 3, "amount": "12.50"}]
    assert records(engine, kind="event", limit=2)[0].seq == 4  # the latest two, oldest first
    with engine.begin() as connection:
        first = connection.execute(text("SELECT prev_hash FROM audit_records WHERE seq = 1")).scalar_one()
        assert first == GENESIS
        connection.execute(text("UPDATE audit_records SET payload = :p WHERE seq = 3"), {"p": '{"i":99}'})
    broken = verify(engine)
    assert not broken.ok and broken.broken_seq == 3 and "altered" in broken.reason
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_records WHERE seq = 3"))
    assert verify(engine).broken_seq == 4
    engine.dispose()


def test_concurrent_appends_keep_one_chain(ledger_settings):
    engine = audit_engine(ledger_settings)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                with engine.begin() as connection:
                    append(connection, "event", {"writer": n, "i": i})
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = verify(engine)
    assert result.ok and result.count == 100
    engine.dispose()


def test_two_processes_appending_at_once_keep_one_chain(ledger_settings):
    """Two service workers write the chain at the same time: every record lands once, in one
    chain that ``concord audit verify`` accepts."""
    audit_engine(ledger_settings).dispose()  # migrated here, as ``concord serve`` does before its workers
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(n), "150"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    engine = audit_engine(ledger_settings, migrate=False)
    assert verify(engine).count == 300
    assert sorted((r.payload["writer"], r.payload["i"]) for r in records(engine, limit=1000)) == sorted(
        (str(n), i) for n in range(2) for i in range(150)
    )
    engine.dispose()
    result = concord({}, "audit", "verify")
    assert result.returncode == 0 and "audit chain OK: 300 records" in result.stdout, result.stdout + result.stderr


def test_decision_approval_follows_sensitivity(settings):
    engine = audit_engine(settings)
    with engine.begin() as connection:
        assert (
            record_decision(
                connection,
                decision_id="d1",
                case_id="C1",
                creditor="B",
                court=None,
                stage="litigation",
                action="payment_order",
                sensitive=True,
            )
            == "pending"
        )
        assert (
            record_decision(
                connection,
                decision_id="d2",
                case_id="C1",
                creditor="B",
                court=None,
                stage="warning",
                action="sms_warning",
                sensitive=False,
            )
            == "not_required"
        )
        rows = dict(connection.execute(text("SELECT decision_id, approval FROM decisions")).all())
    assert rows == {"d1": "pending", "d2": "not_required"}


def test_keys_are_stored_hashed_and_checked(ledger_settings):
    engine = audit_engine(ledger_settings)
    raw = create_key(engine, PLATFORM, creditor="Bank A")
    principal = authenticate(engine, raw)
    assert principal is not None and principal.role == PLATFORM and principal.creditor == "Bank A"
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT key_hash FROM api_keys")).scalar_one()
    assert raw.split("_", 2)[2] not in stored
    assert authenticate(engine, raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert authenticate(engine, "nonsense") is None
    assert authenticate(engine, "") is None
    court = create_key(engine, COURT, court="Court X")
    assert authenticate(engine, court).court == "Court X"
    assert revoke_key(engine, principal.key_id)
    assert authenticate(engine, raw) is None
    with pytest.raises(ValueError, match="--creditor"):
        create_key(engine, PLATFORM)
    with pytest.raises(ValueError, match="--court"):
        create_key(engine, ADMIN, court="Court X")
    with pytest.raises(ValueError, match="role must be one of"):
        create_key(engine, "root")
    engine.dispose()
