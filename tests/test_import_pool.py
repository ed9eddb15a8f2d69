"""A 1,000-row Excel pool with faults in about 15% of rows: every row accounted for, every
fault rejected with its row and column, every good row stored once, re-import a no-op."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from sqlalchemy import func, select
from typer.testing import CliRunner

from concord import ledger
from concord.db import make_engine
from serving.cli.app import app
from tests.excel_pool import build_pool

runner = CliRunner()


def test_faulty_excel_pool_imports_exactly(ledger_settings, tmp_path) -> None:
    pool = build_pool(tmp_path / "pool.xlsx")
    assert 0.14 <= len(pool.faults) / pool.rows_read <= 0.17
    report_path = tmp_path / "report.json"

    result = runner.invoke(app, ["import", "cases", str(pool.path), "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["rows_read"] == pool.rows_read
    assert report["imported"] + report["unchanged"] + report["rejected"] == pool.rows_read
    assert report["rejected"] == len(pool.faults)
    assert report["imported"] == len(pool.good)
    rejected = {entry["row"]: entry for entry in report["rejections"]}
    assert {row: entry["column"] for row, entry in rejected.items()} == pool.faults
    assert all(entry["reason"] for entry in rejected.values())
    # Reasons never repeat personal identifiers.
    id_faults = [rejected[row]["reason"] for row, column in pool.faults.items() if column == "id_number"]
    assert id_faults and not any(re.search(r"\d{6,}", reason) for reason in id_faults)
    rejected_csv = tmp_path / "report.rejected.csv"
    assert rejected_csv.exists()
    assert len(rejected_csv.read_text(encoding="utf-8-sig").strip().splitlines()) == len(pool.faults) + 1

    engine = make_engine(ledger_settings)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ledger.Case)) == len(pool.good)
        rows = connection.execute(
            select(
                ledger.Case.case_id,
                ledger.Case.principal,
                ledger.Case.interest,
                ledger.Case.loan_date,
                ledger.Case.overdue_since,
                ledger.Case.phone_masked,
                ledger.Case.product,
                ledger.Debtor.id_masked,
            ).join(ledger.Debtor, ledger.Debtor.debtor_key == ledger.Case.debtor_key)
        ).all()
    for case_id, principal, interest, loan, overdue, phone_masked, product, id_masked in rows:
        expected = pool.good[case_id]
        assert principal == expected["principal"] and isinstance(principal, Decimal)
        assert interest == expected["interest"]
        assert (loan, overdue, product) == (expected["loan_date"], expected["overdue_since"], expected["product"])
        assert (phone_masked[-4:] if phone_masked else None) == expected["phone_tail"]
        assert id_masked.endswith(expected["id_tail"]) and "*" * 10 in id_masked
    engine.dispose()

    again = runner.invoke(app, ["import", "cases", str(pool.path), "--report", str(report_path)])
    assert again.exit_code == 0, again.output
    second = json.loads(report_path.read_text())
    assert (second["imported"], second["unchanged"], second["rejected"]) == (0, len(pool.good), len(pool.faults))


def test_fixed_rejected_rows_can_be_sent_again(settings, tmp_path) -> None:
    pool = build_pool(tmp_path / "pool.xlsx", n=200)
    report_path = tmp_path / "first.json"
    assert runner.invoke(app, ["import", "cases", str(pool.path), "--report", str(report_path)]).exit_code == 0
    rejected_csv = tmp_path / "first.rejected.csv"
    # The clerk's file goes back unchanged: same rows rejected again, nothing else touched.
    again = runner.invoke(app, ["import", "cases", str(rejected_csv), "--report", str(tmp_path / "second.json")])
    assert again.exit_code == 0, again.output
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["rejected"] == len(pool.faults) - 1  # the duplicate's case already exists: now a changed row
    assert second["imported"] == 1
    assert set(second["ignored_columns"]) == {"reject_row", "reject_column", "reject_reason"}
