"""Two imports into one ledger at once, in two processes, on SQLite and PostgreSQL: both
succeed (the second waits for the first), and the ledger holds every row once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from concord import ledger
from concord.db import ledger_write_lock, make_engine
from tests.bank_exports import HEADER, pool

ROOT = Path(__file__).resolve().parents[1]


def _pool_file(path: Path, creditor: str, cases: int, seed: int) -> Path:
    rows = [c.text() for c in pool(cases, seed)]
    frame = pd.DataFrame(rows, columns=HEADER)
    frame["债权机构"] = creditor
    frame.to_csv(path, index=False)
    return path


def _start(file: Path, report: Path, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = tmp_path / f"{report.stem}.out", tmp_path / f"{report.stem}.err"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "import", "cases", str(file), "--report", str(report)],
        env=env,
        cwd=tmp_path,
        stdout=out.open("wb"),
        stderr=err.open("wb"),
    )
    return process, out, err


def test_two_imports_at_once_both_succeed_and_store_every_row_once(ledger_settings, tmp_path) -> None:
    # Two creditors' pools, and the first pool twice (the same rows arriving from two clerks at once).
    first = _pool_file(tmp_path / "first.csv", "海峡银行信用卡中心", 1500, seed=1)
    second = _pool_file(tmp_path / "second.csv", "闽江消费金融有限公司", 1500, seed=2)
    engine = make_engine(ledger_settings)
    runs = []
    with ledger_write_lock(engine):  # held here until all three are waiting: they must overlap
        for name, file in (("a", first), ("b", second), ("c", first)):
            runs.append((name, *_start(file, tmp_path / f"{name}.json", tmp_path)))
        deadline = time.monotonic() + 120
        while not all("waiting for another import" in err.read_text() for _, _, _, err in runs):
            assert time.monotonic() < deadline, [err.read_text() for *_, err in runs]
            assert all(process.poll() is None for _, process, _, _ in runs), [err.read_text() for *_, err in runs]
            time.sleep(0.2)
    for _, process, _, err in runs:
        assert process.wait(timeout=300) == 0, err.read_text()
    reports = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name, *_ in runs}
    assert reports["b"]["imported"] == 1500
    # whichever of the two copies of the first pool went first imported it; the other found it unchanged
    assert sorted((reports[n]["imported"], reports[n]["unchanged"]) for n in "ac") == [(0, 1500), (1500, 0)]
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ledger.Case)) == 3000
        distinct = select(ledger.Case.creditor_id, ledger.Case.case_id).distinct().subquery()
        assert connection.scalar(select(func.count()).select_from(distinct)) == 3000
        batches = connection.execute(select(ledger.ImportBatch.rows_read, ledger.ImportBatch.finished_at)).all()
        assert len(batches) == 3 and all(rows == 1500 and done is not None for rows, done in batches)
        debtors = connection.scalar(select(func.count()).select_from(ledger.Debtor))
    engine.dispose()
    ids = {c.id_number for seed in (1, 2) for c in pool(1500, seed)}
    assert debtors == len(ids)
