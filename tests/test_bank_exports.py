"""The corpus of real-looking bank exports (``tests/bank_exports.py``): each imports with counts
that add up, the right rows and values, rejections by row and the non-data rows reported, or
is refused with one sentence that says what to do."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from concord import ledger
from concord.db import make_engine
from ingestion.identifiers import LOST_DIGITS
from serving.cli.app import app
from tests import bank_exports as be

runner = CliRunner()
CASES = be.pool()


def run(path: Path, tmp_path: Path, *options: str) -> tuple[int, str, dict]:
    report = tmp_path / f"{path.stem}.json"
    result = runner.invoke(app, ["import", "cases", str(path), "--report", str(report), *options])
    return result.exit_code, result.output, json.loads(report.read_text()) if report.exists() else {}


def stored(settings) -> dict[str, tuple]:
    engine = make_engine(settings)
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                ledger.Case.case_id,
                ledger.Case.debtor_name,
                ledger.Case.product,
                ledger.Case.principal,
                ledger.Case.loan_date,
                ledger.Case.phone_masked,
                ledger.Debtor.id_masked,
            ).join(ledger.Debtor, ledger.Debtor.debtor_key == ledger.Case.debtor_key)
        ).all()
    engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}


def assert_imported_exactly(export: be.Export, report: dict, settings) -> None:
    assert report["rows_read"] == export.rows_read
    assert report["imported"] + report["unchanged"] + report["rejected"] == report["rows_read"]
    assert {r["row"]: r["column"] for r in report["rejections"]} == export.rejected
    assert [(s["first"], s["last"]) for s in report["skipped_rows"]] == export.skipped
    by_id = {c.case_id: c for c in CASES}
    found = stored(settings)
    assert set(found) == export.imported
    for case_id, (name, product, principal, loan_date, phone, id_masked) in found.items():
        case = by_id[case_id]
        assert (name, product, principal, loan_date) == (case.name, case.product, case.principal, case.loan_date)
        assert phone == case.phone[:3] + "****" + case.phone[-4:]
        assert id_masked == case.id_number[:6] + "*" * 10 + case.id_number[-2:]


WRITERS = [
    be.titled_workbook,
    be.note_sheet_first,
    be.unicode_text,
    be.merged_header,
    be.footer_totals,
    be.reordered_with_extras,
    be.legacy_xls,
]


@pytest.mark.parametrize("writer", WRITERS, ids=[w.__name__ for w in WRITERS])
def test_bank_exports_import_as_they_come(settings, tmp_path, writer) -> None:
    export = writer(tmp_path, CASES)
    code, output, report = run(export.path, tmp_path)
    assert code == 0, output
    assert_imported_exactly(export, report, settings)
    assert f"header on row {report['header_row']}" in output
    again = run(export.path, tmp_path)[2]  # re-importing is a no-op
    assert (again["imported"], again["unchanged"]) == (0, len(export.imported))


@pytest.mark.parametrize(
    ("encoding", "delimiter", "detected"),
    [
        ("utf-8", ",", "UTF-8, comma-separated"),
        ("utf-8-sig", ",", "UTF-8 with BOM, comma-separated"),
        ("gbk", ",", "GB18030/GBK, comma-separated"),
        ("utf-8", ";", "UTF-8, semicolon-separated"),
        ("gb18030", "\t", "GB18030/GBK, tab-separated"),
        ("utf-16", "\t", "UTF-16LE with BOM, tab-separated"),
    ],
)
def test_text_exports_are_read_by_their_content(settings, tmp_path, encoding, delimiter, detected) -> None:
    path = be.text_file(tmp_path, CASES, "export.txt", encoding, delimiter)
    code, output, report = run(path, tmp_path)
    assert code == 0, output
    assert report["detected"] == detected and f"read as {detected}" in output
    assert_imported_exactly(be.Export(path, {c.case_id for c in CASES}, len(CASES)), report, settings)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])  # cut into byte ranges; read in one pass
def test_a_text_file_with_a_title_a_footer_and_faulty_rows_reports_rows_as_the_clerk_sees_them(
    settings, tmp_path, encoding: str
) -> None:
    def spoil(rows: list[list[str]]) -> None:
        rows[3][5] = "4.10102E+17"  # row 6 once the two title lines are in: an ID Excel turned into a number
        rows[7][6] = "1.38123E+10"  # row 10: a phone likewise
        rows[9][5] = be.with_check("35010219990231000")  # row 12: checksum holds, 31 February does not
        rows[12][2] = "住房按揭贷款"  # row 15: a product no synonym maps
        rows[:0] = [[be.TITLE] + [""] * 16, [""] * 17]
        rows.extend([[""] * 17, ["合计", "", "", "", "", "", "", "", "123.00"] + [""] * 8])

    path = be.text_file(tmp_path, CASES, "pool.csv", encoding, "," if encoding == "utf-8-sig" else "\t", spoil)
    code, output, report = run(path, tmp_path)
    assert code == 0, output
    reasons = {r["row"]: r["reason"] for r in report["rejections"]}
    assert reasons == {
        6: f"id_number (身份证号) {LOST_DIGITS}",
        10: f"phone (手机号) {LOST_DIGITS}",
        12: "id_number (身份证号) has a birth date that does not exist",
        15: "product (业务类型) is not one of: consumer_loan, credit_card, personal_loan",
    }
    # title and blank line above the header on row 3; data on rows 4-53, a blank row 54, the totals on 55
    assert [(s["first"], s["last"]) for s in report["skipped_rows"]] == [(1, 2), (55, 55)]
    assert (report["rows_read"], report["imported"], report["rejected"]) == (50, 46, 4)


def test_an_id_column_typed_as_numbers_in_excel_is_rejected_not_stored_wrong(settings, tmp_path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(be.HEADER)
    for case in CASES[:3]:
        row = case.cells()
        row[5] = int(case.id_number[:17] + "0")  # what Excel keeps of an ID typed as a number
        sheet.append(row)
    book.save(tmp_path / "numbers.xlsx")
    code, output, report = run(tmp_path / "numbers.xlsx", tmp_path)
    assert code == 0, output
    assert report["rejected"] == 3 and all(LOST_DIGITS in r["reason"] for r in report["rejections"])
    assert stored(settings) == {}


def test_workbooks_without_exactly_one_sheet_of_cases_are_refused_naming_the_sheets(settings, tmp_path) -> None:
    data = [be.HEADER, *(c.cells() for c in CASES[:5])]
    two = be.workbook({"十月": data, "十一月": data}, tmp_path / "two.xlsx")
    code, output, _ = run(two, tmp_path)
    assert code == 2
    assert "several sheets with the columns of the cases table ('十月', '十一月')" in output
    assert "--sheet" in output and "Nothing was imported" in output
    code, output, report = run(two, tmp_path, "--sheet", "十一月")
    assert code == 0 and report["imported"] == 5

    none = be.workbook(
        {"说明": [["填表说明"]], "汇总": [["债权机构", "本金"], [be.CREDITOR, 100]]}, tmp_path / "none.xlsx"
    )
    code, output, _ = run(none, tmp_path)
    assert code == 2
    assert "No sheet of none.xlsx has the columns of the cases table" in output
    assert "sheet '说明' lacks case_id (案件编号)" in output
    assert "sheet '汇总' lacks case_id (案件编号), product (业务类型)" in output


def test_a_creditor_may_spell_its_products_its_own_way(settings, tmp_path, monkeypatch) -> None:
    def own_words(rows: list[list[str]]) -> None:
        for row in rows[1:]:
            row[2] = {"信用卡透支": "卡贷", "个人消费贷款": "分期乐", "个人信用贷款": "个人贷款"}[row[2]]

    path = be.text_file(tmp_path, CASES, "own.csv", "utf-8", ",", own_words)
    code, _, report = run(path, tmp_path)
    assert code == 0 and report["rejected"] == sum(c.product != "personal_loan" for c in CASES)
    config = tmp_path / "synonyms.yaml"
    config.write_text(
        f"""
creditors:
  {be.CREDITOR}:
    values:
      product: {{credit_card: [卡贷], consumer_loan: [分期乐, 个人贷款]}}
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("CONCORD_SYNONYMS", str(config))
    code, output, report = run(path, tmp_path)
    assert code == 0, output
    assert report["rejected"] == 0
    # this creditor's 个人贷款 means a consumer loan; for every other creditor it stays a personal loan
    assert {
        c.case_id: v[1]
        for c, v in zip(CASES, [stored(settings)[c.case_id] for c in CASES], strict=True)
        if c.product == "personal_loan"
    } == {c.case_id: "consumer_loan" for c in CASES if c.product == "personal_loan"}


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (
            "values:\n  product:\n    mortgage: [房贷]\n",
            "values.product.mortgage is not a value of product (consumer_loan, credit_card, personal_loan).",
        ),
        ("values:\n  colour:\n    red: [红]\n", "values.colour is not a contract column with fixed values"),
        ("columns:\n  nickname: [昵称]\n", "columns.nickname is not a contract column."),
        (
            "values:\n  product:\n    credit_card: [卡]\n    consumer_loan: [卡]\n",
            "values.product.consumer_loan spells '卡', which values.product.credit_card spells too.",
        ),
        ("colums:\n  case_id: [案号]\n", "colums is not a section of a synonym file (values, columns, creditors)."),
    ],
)
def test_a_bad_synonym_file_is_refused_naming_the_key(settings, tmp_path, monkeypatch, content, sentence) -> None:
    config = tmp_path / "synonyms.yaml"
    config.write_text(content, encoding="utf-8")
    monkeypatch.setenv("CONCORD_SYNONYMS", str(config))
    path = be.text_file(tmp_path, CASES[:2], "two.csv", "utf-8", ",")
    code, output, _ = run(path, tmp_path)
    assert code == 2
    assert f"synonym file {config}: {sentence}" in " ".join(output.split()).replace(f"{config} :", f"{config}:")


def test_the_clerk_sees_every_rejected_row_in_the_rejected_file_in_the_order_of_the_sheet(settings, tmp_path) -> None:
    export = be.footer_totals(tmp_path, CASES)
    book = openpyxl.load_workbook(export.path)
    book["案件"]["C5"] = "住房按揭贷款"
    book.save(export.path)
    code, _, report = run(export.path, tmp_path)
    assert code == 0 and report["rejected"] == 1
    with (tmp_path / "footer.rejected.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["案件编号"], r["reject_row"], r["reject_column"]) for r in rows] == [(CASES[3].case_id, "5", "product")]
