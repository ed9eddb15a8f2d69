"""An import killed part-way leaves the ledger exactly as it was (one transaction per file)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from concord import ledger
from concord.db import make_engine
from concord.settings import Settings

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def write_pool(path: Path, n: int, prefix: str) -> None:
    lines = ["case_id,creditor,product,debtor_name,id_number,phone,principal,loan_date,overdue_since"]
    for i in range(n):
        body = f"110105{1960 + i % 40}0101{i % 1000:03d}"
        number = body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]
        lines.append(
            f"{prefix}{i},某某消费金融,consumer_loan,某{i},{number},138{i % 10**8:08d},{1000 + i % 9000}.50,"
            "2022-01-01,2023-06-01"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings)
    with engine.connect() as connection:
        result = {
            m.__tablename__: connection.scalar(select(func.count()).select_from(m))
            for m in (ledger.Case, ledger.Debtor, ledger.Creditor, ledger.ImportBatch)
        }
    engine.dispose()
    return result


def writing(settings: Settings) -> bool:
    """True once the importer is inside its transaction, writing rows."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        # Another connection holding the write lock is inside its transaction. (The WAL's size
        # says nothing: with a large page cache, SQLite writes it only as it commits.)
        probe = sqlite3.connect(url.database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            time.sleep(0.5)  # let it write some cases, not only the batch row
            return True
        finally:
            probe.close()
    # Another backend holding a write transaction id has written rows it has not committed.
    engine = create_engine(url)
    with engine.connect() as connection:
        active = connection.scalar(
            text(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and pid <> pg_backend_pid() and backend_xid is not null"
            )
        )
    engine.dispose()
    if active:
        time.sleep(1.0)  # let it write some cases, not only the batch row
    return bool(active)


def test_killed_import_leaves_ledger_unchanged(ledger_settings, tmp_path) -> None:
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    write_pool(small, 50, "S")
    write_pool(big, 150_000, "B")
    env = {
        **os.environ,
        "CONCORD_HOME": str(ledger_settings.home),
        "CONCORD_DATABASE_URL": ledger_settings.database_url,
        "CONCORD_PSEUDONYM_KEY": "test-secret",
    }
    command = [sys.executable, "-m", "serving.cli", "import", "cases"]
    subprocess.run([*command, str(small)], env=env, check=True, capture_output=True)
    before = counts(ledger_settings)
    assert before["cases"] == 50

    process = subprocess.Popen([*command, str(big)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not writing(ledger_settings):
        assert process.poll() is None, "the import finished before it could be killed"
        assert time.monotonic() < deadline, "the import never started writing"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL

    assert counts(ledger_settings) == before
    # The ledger still works: the same file imports in full afterwards.
    subprocess.run([*command, str(big)], env=env, check=True, capture_output=True)
    assert counts(ledger_settings)["cases"] == 50 + 150_000
