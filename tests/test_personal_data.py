"""Personal data in every file Concord writes: rejected rows that cannot run as formulas and
come back as they were, every file under CONCORD_HOME readable by its owner only after a whole
pipeline, no raw ID number, phone or name outside the ledger, and ``concord doctor``."""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from concord import ledger
from concord.db import make_engine
from serving.cli.app import app
from tests import bank_exports as be
from tests.conftest import SMALL_SEARCH

ROOT = Path(__file__).resolve().parents[1]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
runner = CliRunner()


def test_rejected_rows_cannot_run_as_formulas_and_come_back_as_they_were(settings, tmp_path) -> None:
    cases = be.pool(3)
    planted = {
        "债务人姓名": '=HYPERLINK("http://x","点击")',
        "省份": "-1+2",
        "管辖法院": "+cmd|' /C calc'!A0",
        "业务类型": "@SUM(1+1)",
    }

    def plant(rows: list[list[str]]) -> None:
        be.contract_spellings(rows)
        for header, value in planted.items():
            rows[2][be.HEADER.index(header)] = value

    path = be.text_file(tmp_path, cases, "pool.csv", "utf-8", ",", plant)
    report = tmp_path / "pool.json"
    assert runner.invoke(app, ["import", "cases", str(path), "--report", str(report)]).exit_code == 0
    rejected = tmp_path / "pool.rejected.csv"
    assert [r["row"] for r in json.loads(report.read_text())["rejections"]] == [3]  # @SUM is no product
    # Open the file as a spreadsheet program reads it: no cell may begin like a formula.
    with rejected.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert all(not cell.startswith(FORMULA_STARTS) for row in rows for cell in row)
    header = rows[0]
    assert {h: rows[1][header.index(h)] for h in planted} == {h: "'" + v for h, v in planted.items()}
    assert stat.S_IMODE(rejected.stat().st_mode) == 0o600 and stat.S_IMODE(report.stat().st_mode) == 0o600

    # The clerk corrects the product and sends the file back as it is: the original text is stored.
    rows[1][header.index("业务类型")] = "信用卡透支"
    with rejected.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    again = tmp_path / "again.json"
    assert runner.invoke(app, ["import", "cases", str(rejected), "--report", str(again)]).exit_code == 0
    assert json.loads(again.read_text())["imported"] == 1
    engine = make_engine(settings)
    with engine.connect() as connection:
        stored = connection.execute(
            select(ledger.Case.debtor_name, ledger.Case.province, ledger.Case.court).where(
                ledger.Case.case_id == cases[1].case_id
            )
        ).one()
    engine.dispose()
    assert tuple(stored) == (planted["债务人姓名"], planted["省份"], planted["管辖法院"])


# --------------------------------------------------------------------------- a whole pipeline

AS_OF = "2026-06-30"
TABLES = ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")
BANK_CASES = be.pool(40, seed=21)


@dataclass
class Pipeline:
    home: Path
    world: Path
    bank: Path
    logs: list[Path]


def _bank_export(folder: Path) -> Path:
    """A bank's pool with the rows a clerk's hand leaves: cells shifted left from 主体类型 (the name
    lands in the debtor type, the ID number in the name), and an ID number pasted into 本金."""

    def shift(rows: list[list[str]]) -> None:
        be.contract_spellings(rows)
        row = rows[2]
        at = be.HEADER.index("主体类型")
        rows[2] = row[:at] + row[at + 1 :] + [""]
        rows[4][be.HEADER.index("本金")] = rows[4][be.HEADER.index("身份证号")]

    return be.text_file(folder, BANK_CASES, "海峡银行-十月.csv", "utf-8-sig", ",", shift)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    """Simulate a small world (outside CONCORD_HOME, as a bank's files are), import it and a bank's
    export, build, apply and materialise the features, train, score: the commands of ``make run``
    and after, in one process started with the usual umask 022."""
    root = tmp_path_factory.mktemp("pipeline")
    home, world = root / "home", root / "world"
    bank = _bank_export(root)
    commands = [
        ["simulate", "--cases", "300", "--seed", "5", "--out", str(world)],
        *(["import", table, str(world / f"{table}.csv"), "--historical"] for table in TABLES),
        ["import", "cases", str(bank)],
        ["features", "build"],
        ["features", "apply"],
        ["features", "materialize"],
        ["train", "--as-of", AS_OF],
        ["score", "--as-of", "2026-05-31", "--out", str(home / "scores.csv")],
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")}
    env.update(CONCORD_HOME=str(home), PYTHONPATH=str(ROOT), **SMALL_SEARCH)
    out, err = root / "stdout.txt", root / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "tests.run_commands", json.dumps(commands)],
            cwd=root,
            env=env,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=lambda: os.umask(0o022),
            timeout=1200,
        )
    assert result.returncode == 0, out.read_text()[-3000:] + err.read_text()[-3000:]
    return Pipeline(home, world, bank, [out, err])


def _files(home: Path) -> list[Path]:
    return sorted(path for path in home.rglob("*") if path.is_file())


def test_every_file_under_concord_home_is_readable_by_its_owner_only(pipeline: Pipeline) -> None:
    home = pipeline.home
    names = {path.relative_to(home).as_posix() for path in _files(home)}
    expected = {"concord.db", "pseudonym.key", "mlflow.db", "scores.csv", "features/registry.db", "features/online.db"}
    assert expected <= names, sorted(names)
    for pattern in (
        r"imports/.+\.json",
        r"imports/.+\.rejected\.csv",
        r"features/offline/.+\.parquet",
        r"mlartifacts/.+",
    ):
        assert any(re.fullmatch(pattern, name) for name in names), pattern
    opened = {
        path.relative_to(home).as_posix(): oct(stat.S_IMODE(path.lstat().st_mode))
        for path in [home, *home.rglob("*")]
        if stat.S_IMODE(path.lstat().st_mode) & 0o077
    }
    assert opened == {}, f"{len(opened)} of {len(names)} files and folders readable by others: {opened}"


def _personal_values(pipeline: Pipeline) -> set[str]:
    """Every raw ID number, mobile and person's name the pipeline was given."""
    values: set[str] = set()
    for table in ("cases", "contact_checks", "capacity", "litigation"):
        frame = pd.read_csv(pipeline.world / f"{table}.csv", dtype=str, keep_default_na=False)
        values |= set(frame["id_number"])
        if table == "cases":
            values |= set(frame["phone"]) | set(frame.loc[frame["debtor_type"] == "person", "debtor_name"])
    values |= {value for case in BANK_CASES for value in (case.id_number, case.phone, case.name)}
    return {v for v in values if v and len(v) >= 2}


def _text(path: Path) -> bytes:
    """A file's content as text can be searched: parquet and SQLite decoded, zip archives opened."""
    head = path.read_bytes()[:16]
    if head.startswith(b"PAR1"):
        return pq.read_table(path).to_pandas().to_csv(index=False).encode()
    if head.startswith(b"SQLite format 3\x00"):
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return "\n".join(connection.iterdump()).encode()
        finally:
            connection.close()
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as archive:
            return b"\n".join(archive.read(name) for name in archive.namelist())
    return path.read_bytes()


def test_no_raw_id_number_phone_or_name_outside_the_ledger(pipeline: Pipeline) -> None:
    values = _personal_values(pipeline)
    assert len(values) > 600
    pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)).encode())
    # The ledger keeps the names (the court list needs them); the rejected rows are the clerk's to fix.
    ledger_files = {"concord.db", "concord.db-wal", "concord.db-shm"}
    searched = [p for p in _files(pipeline.home) if p.name not in ledger_files and not p.name.endswith(".rejected.csv")]
    assert len(searched) > 20
    # the search finds them where they are: in the rejected rows and in the files the bank sent
    rejected = next((pipeline.home / "imports").glob("*.rejected.csv"))
    assert pattern.search(_text(rejected)) and pattern.search(_text(pipeline.world / "cases.csv"))
    found = {}
    for path in [*searched, *pipeline.logs]:
        hits = {m.group().decode() for m in pattern.finditer(_text(path))}
        if hits:
            found[str(path.relative_to(path.parents[1]))] = sorted(hits)[:3]
    assert found == {}


def test_doctor_lists_where_personal_data_lives_and_names_a_file_others_can_read(pipeline: Pipeline) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")}
    env.update(CONCORD_HOME=str(pipeline.home), PYTHONPATH=str(ROOT))

    def doctor() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "serving.cli", "doctor"], env=env, capture_output=True, text=True, timeout=120
        )

    healthy = doctor()
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    for place in (
        "case ledger",
        "pseudonym key",
        "import reports and rejected rows",
        "feature store",
        "MLflow runs and registry",
        "MLflow artifacts",
    ):
        assert place in healthy.stdout
    assert str(pipeline.home / "concord.db") in healthy.stdout and "readable by their owner only" in healthy.stdout
    report = next((pipeline.home / "imports").glob("*.rejected.csv"))
    report.chmod(0o644)
    try:
        sick = doctor()
    finally:
        report.chmod(0o600)
    assert sick.returncode == 1
    assert f"file {report} has mode 0644, readable by others than its owner: run chmod 600 '{report}'." in " ".join(
        sick.stderr.split()
    )
