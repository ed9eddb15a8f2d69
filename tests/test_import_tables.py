"""The other five contract tables, file-level refusals, and what a re-import changes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from concord import ledger
from concord.db import make_engine
from ingestion.contracts import TABLES
from ingestion.table_file import read_table
from serving.cli.app import app
from tests.excel_pool import id_number

runner = CliRunner()
ID_A = "11010519491231002X"
ID_B = "350102199003070012"


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8-sig")
    return path


def run_import(table: str, path: Path, tmp_path: Path) -> dict:
    report = tmp_path / f"{path.stem}.json"
    result = runner.invoke(app, ["import", table, str(path), "--report", str(report)])
    assert result.exit_code == 0, result.output
    return json.loads(report.read_text())


def count(settings, model) -> int:
    engine = make_engine(settings)
    with engine.connect() as connection:
        value = connection.scalar(select(func.count()).select_from(model))
    engine.dispose()
    return value


@pytest.fixture
def cases_csv(tmp_path: Path) -> Path:
    return write(
        tmp_path / "cases.csv",
        f"""
case_id,creditor,product,debtor_name,id_number,phone,principal,loan_date,overdue_since
C1,华夏安和银行信用卡中心,credit_card,张三,{ID_A},13812345678,5000,2023-01-01,2024-01-01
C2,安信消费金融有限公司,consumer_loan,李四,{ID_B},,8000.5,2023-02-01,2024-02-01
""",
    )


def test_all_six_tables_import_with_chinese_headers(ledger_settings, tmp_path, cases_csv) -> None:
    assert run_import("cases", cases_csv, tmp_path)["imported"] == 2
    checks = write(
        tmp_path / "checks.csv",
        f"""
身份证号,查询时间,号码状态,修复号码数,修复来源
{ID_A},2024-03-01 10:00:00,正常,0,
{ID_B},2024/3/2 11:30,空号,2,运营商
{ID_B},2024/3/2 11:30,停机,0,
{ID_A},2024-03-05T10:00:00+08:00,unknown,,
""",
    )
    report = run_import("contact_checks", checks, tmp_path)
    assert (report["imported"], report["rejected"]) == (3, 1)
    assert [(r["row"], r["column"]) for r in report["rejections"]] == [(4, "checked_at")]  # same key as row 3

    events = write(
        tmp_path / "events.csv",
        """
案件编号,债权机构,时间,处置动作,处置人,结果,金额,决策概率
C1,华夏安和银行信用卡中心,2024-03-01 09:00,sms_warning,system,delivered,,0.5
C1,华夏安和银行信用卡中心,2024-03-02 10:00,mediator_call,M001,paid,"1,000.00",0.25
C9,华夏安和银行信用卡中心,2024-03-02 10:00,mediator_call,M001,reached,,
C2,安信消费金融有限公司,2024-03-03 10:00,teleport,system,sent,,
C2,安信消费金融有限公司,2024-03-03 10:00,voice_call,system,no_answer,,1.5
""",
    )
    report = run_import("events", events, tmp_path)
    assert report["imported"] == 2
    assert {r["row"]: r["column"] for r in report["rejections"]} == {4: "case_id", 5: "action", 6: "propensity"}

    capacity = write(
        tmp_path / "capacity.csv",
        f"""
身份证号,日期,月收入,收入稳定性,就业状态,社保月数,有房产,有车辆,其他负债,月消费
{ID_A},2024-01-31,"8,000",0.8,employed,36,是,否,1200,3000
{ID_B},2024-01-31,,,unemployed,,false,false,,
{ID_B},2024-02-29,3000,1.2,unemployed,,false,false,,
""",
    )
    report = run_import("capacity", capacity, tmp_path)
    assert (report["imported"], report["rejected"]) == (2, 1)
    assert report["rejections"][0]["column"] == "income_stability"

    litigation = write(
        tmp_path / "litigation.csv",
        f"""
身份证号,日期,被诉案件数,被执行案件数,终本案件数,失信被执行人,限制高消费
{ID_A},2024-01-31,1,0,0,否,否
{ID_B},2024-01-31,3,2,2,是,是
""",
    )
    assert run_import("litigation", litigation, tmp_path)["imported"] == 2

    mediators = write(
        tmp_path / "mediators.csv",
        """
调解员编号,调解组织,在办上限,语言,擅长业务,服务地区
M001,福州金融纠纷调解中心,120,mandarin;minnan,信用卡;consumer_loan,福建省
M002,福州金融纠纷调解中心,0,mandarin,,
M003,福州金融纠纷调解中心,80,mandarin、cantonese,mortgage,
""",
    )
    report = run_import("mediators", mediators, tmp_path)
    assert (report["imported"], report["rejected"]) == (1, 2)
    assert [r["column"] for r in report["rejections"]] == ["capacity", "products"]

    for model, expected in (
        (ledger.Case, 2),
        (ledger.ContactCheck, 3),
        (ledger.Event, 2),
        (ledger.CapacitySnapshot, 2),
        (ledger.LitigationRecord, 2),
        (ledger.Mediator, 1),
        (ledger.Debtor, 2),
    ):
        assert count(ledger_settings, model) == expected, model
    engine = make_engine(ledger_settings)
    with engine.connect() as connection:
        mediator = connection.execute(select(ledger.Mediator)).one()
        assert (mediator.languages, mediator.products) == ("mandarin;minnan", "credit_card;consumer_loan")
        stamp = connection.scalar(select(ledger.ContactCheck.checked_at).order_by(ledger.ContactCheck.checked_at))
        assert stamp.isoformat() == "2024-03-01T02:00:00+00:00"  # naive input is Shanghai time
    engine.dispose()


def test_changed_rows_are_updated_and_others_unchanged(settings, tmp_path, cases_csv) -> None:
    run_import("cases", cases_csv, tmp_path)
    changed = write(tmp_path / "cases2.csv", cases_csv.read_text(encoding="utf-8-sig").replace("8000.5", "8100.50"))
    report = run_import("cases", changed, tmp_path)
    assert (report["inserted"], report["updated"], report["unchanged"]) == (0, 1, 1)
    assert count(settings, ledger.Case) == 2


def test_out_of_scope_cases_are_flagged_not_dropped(settings, tmp_path) -> None:
    pool = write(
        tmp_path / "scope.csv",
        f"""
case_id,creditor,product,debtor_type,debtor_name,id_number,principal,loan_date,overdue_since
S1,某银行,personal_loan,person,甲,{ID_A},150000,2023-01-01,2024-01-01
S2,某银行,credit_card,person,乙,{ID_B},150000,2023-01-01,2024-01-01
S3,某银行,personal_loan,企业,某某公司,91350100MA2XXXXX1X,5000,2023-01-01,2024-01-01
S4,某银行,personal_loan,person,丙,{id_number(__import__("random").Random(1))},99999.99,2023-01-01,2024-01-01
""",
    )
    report = run_import("cases", pool, tmp_path)
    assert (report["imported"], report["flagged"], report["flags"]) == (4, 2, {"out_of_scope": 2})


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.parquet", b"x", "bad.parquet is not a parquet file, as its name says"),
        ("bad.xlsx", b"case_id,creditor\nA,B\n", "bad.xlsx is not an xlsx workbook, as its name says"),
        ("bad.xlsx", b"PAR1\x00\x00", "bad.xlsx is not an xlsx workbook, as its name says: its content is a parquet"),
    ],
)
def test_files_whose_content_is_not_what_their_name_says_are_refused(
    settings, tmp_path, cases_csv, name: str, content: bytes, expected: str
) -> None:
    run_import("cases", cases_csv, tmp_path)
    bad = tmp_path / name
    bad.write_bytes(content)
    result = runner.invoke(app, ["import", "cases", str(bad)])
    assert result.exit_code == 2
    assert expected in result.output and "Nothing was imported" in result.output
    assert count(settings, ledger.Case) == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"%PDF-1.4 \x00\x01 binary", "is not a spreadsheet"),
        (b"case_id,creditor\nA,B\n", "lacks the required columns"),
        ("case_id,案件编号,creditor\n".encode(), "appears twice"),
        (b"", "is empty"),
        (
            b"case_id,creditor,product,debtor_name,principal,loan_date,overdue_since\n"
            b'"C1,Bank,credit_card,Zhang,100,2024-01-01,2024-06-01\n',
            "is not a readable CSV file: Error tokenizing data. C error: EOF inside string starting at row 1. "
            "Nothing was imported.",
        ),
        (
            b"case_id,creditor,product,debtor_name,principal,loan_date,overdue_since\n"
            b"C1,Bank,credit_card,Zhang,100,2024-01-01,2024-06-01\n"
            b"C2,Bank,credit_card,Li,100,2024-01-01,2024-06-01,x,y\n",
            "is not a readable CSV file: row 3 has more fields than its header (7). Nothing was imported.",
        ),
    ],
)
def test_unreadable_files_are_refused_whole(settings, tmp_path, cases_csv, content: bytes, expected: str) -> None:
    run_import("cases", cases_csv, tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = runner.invoke(app, ["import", "cases", str(bad)])
    assert result.exit_code == 2
    assert expected in result.output and "Nothing was imported" in result.output
    assert count(settings, ledger.Case) == 2
    assert count(settings, ledger.ImportBatch) == 1


def test_unknown_sheet_and_table_are_refused(settings, tmp_path, cases_csv) -> None:
    workbook = tmp_path / "pool.xlsx"
    pd.read_csv(cases_csv).to_excel(workbook, sheet_name="cases", index=False)
    result = runner.invoke(app, ["import", "cases", str(workbook), "--sheet", "nope"])
    assert result.exit_code == 2 and "no sheet named 'nope'" in result.output and "cases" in result.output
    assert runner.invoke(app, ["import", "cases", str(workbook), "--sheet", "cases"]).exit_code == 0
    result = runner.invoke(app, ["import", "loans", str(cases_csv)])
    assert result.exit_code == 2 and "Unknown table" in result.output


def test_parquet_files_import_like_csv(settings, tmp_path, cases_csv) -> None:
    frame = pd.read_csv(cases_csv, dtype=str)
    frame["principal"] = frame["principal"].astype(float)
    frame["loan_date"] = pd.to_datetime(frame["loan_date"])
    path = tmp_path / "cases.parquet"
    frame.to_parquet(path)
    report = run_import("cases", path, tmp_path)
    assert report["imported"] == 2
    csv_again = run_import("cases", cases_csv, tmp_path)
    assert csv_again["unchanged"] == 2  # same content, whatever the file format


def test_parquet_timestamp_left_empty_reads_as_an_empty_cell(tmp_path) -> None:
    # An empty timestamp cell comes out of pandas as NaT, which once crashed the import.
    frame = pd.DataFrame(
        {
            "id_number": ["A1", "A2", "A3"],
            "checked_at": pd.to_datetime(["2025-03-01 09:30:00", None, "2025-03-02 10:00:00"]),
            "phone_status": "valid",
        }
    )
    path = tmp_path / "contact_checks.parquet"
    frame.to_parquet(path)
    (chunk,) = read_table(path, TABLES["contact_checks"]).chunks()
    assert chunk.frame["checked_at"].tolist() == ["2025-03-01 09:30:00", "", "2025-03-02 10:00:00"]
    assert chunk.rows.tolist() == [2, 3, 4]


@pytest.mark.parametrize(
    ("table", "header", "row"),
    [
        ("contact_checks", "id_number,checked_at,phone_status", "{id},2024-03-01 10:00:00,active"),
        ("capacity", "id_number,as_of,monthly_income", "{id},2024-03-01,5000"),
        ("litigation", "id_number,as_of,defendant_cases", "{id},2024-03-01,1"),
    ],
)
def test_debtor_rows_without_an_id_number_are_rejected(settings, tmp_path, cases_csv, table, header, row) -> None:
    assert run_import("cases", cases_csv, tmp_path)["imported"] == 2
    path = write(tmp_path / f"{table}.csv", "\n".join([header, row.format(id=ID_A), row.format(id="")]))
    report = run_import(table, path, tmp_path)
    assert (report["imported"], report["rejected"]) == (1, 1)
    assert [(r["row"], r["column"]) for r in report["rejections"]] == [(3, "id_number")]
    assert "required" in report["rejections"][0]["reason"]


def test_a_file_whose_every_row_is_rejected_stores_nothing_and_reports_them(settings, tmp_path, cases_csv) -> None:
    assert run_import("cases", cases_csv, tmp_path)["imported"] == 2
    path = write(
        tmp_path / "checks.csv",
        "id_number,checked_at,phone_status\n"
        f"{ID_A},not a time,active\n{ID_B},2024-03-01,teleported\n,2024-03-01,active",
    )
    report = run_import("contact_checks", path, tmp_path)
    assert (report["rows_read"], report["imported"], report["rejected"]) == (3, 0, 3)
    assert count(settings, ledger.ContactCheck) == 0


def test_parquet_with_pandas_nullable_columns_reads_missing_as_empty(settings, tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "case_id": ["N1", "N2"],
            "creditor": ["华夏安和银行信用卡中心"] * 2,
            "product": ["credit_card"] * 2,
            "debtor_name": ["张三", "李四"],
            "id_number": [ID_A, ID_B],
            "phone": pd.array(["13812345678", pd.NA], dtype="string"),
            "principal": pd.array([5000, 8000], dtype="Int64"),
            "interest": pd.array([pd.NA, 12], dtype="Int64"),
            "loan_date": ["2023-01-01"] * 2,
            "overdue_since": ["2024-01-01"] * 2,
        }
    )
    path = tmp_path / "cases.parquet"
    frame.to_parquet(path)
    report = run_import("cases", path, tmp_path)
    assert (report["imported"], report["rejected"]) == (2, 0), report["rejections"]
    engine = make_engine(settings)
    with engine.connect() as connection:
        rows = dict(connection.execute(select(ledger.Case.case_id, ledger.Case.phone_key)).all())
    engine.dispose()
    assert rows["N1"] is not None and rows["N2"] is None  # <NA> is no phone, not a bad one


def test_connections_check_foreign_keys_again_after_an_import(settings, cases_csv, monkeypatch) -> None:
    # The import's own transaction skips SQLite's row-by-row foreign-key checks; the pooled
    # connection it leaves behind must check them again, after a success and after a failure.
    from sqlalchemy import exc

    import ingestion.importer
    from ingestion.importer import import_file

    engine = make_engine(settings)
    assert import_file("cases", cases_csv, settings, engine).imported == 2

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingestion.importer, "store", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_file("cases", cases_csv, settings, engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with pytest.raises(exc.IntegrityError):
            connection.exec_driver_sql(
                "INSERT INTO cases (creditor_id, case_id, product, debtor_type, debtor_name, principal, interest,"
                " penalty, fees, loan_date, overdue_since, in_scope, row_hash, batch_id, updated_at)"
                " VALUES (999, 'X1', 'credit_card', 'person', 'x', 1, 0, 0, 0, '2024-01-01', '2024-02-01', 1,"
                " 'h', 999, '2024-03-01 00:00:00')"
            )


def test_indexes_of_an_empty_table_are_built_again_after_an_import(settings, cases_csv, tmp_path) -> None:
    # An import into an empty SQLite table builds its plain indexes once at the end.
    engine = make_engine(settings)
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
    with engine.connect() as connection:
        before = connection.exec_driver_sql(query).all()
    assert ("ix_cases_debtor_key", "CREATE INDEX ix_cases_debtor_key ON cases (debtor_key)") in before
    assert run_import("cases", cases_csv, tmp_path)["imported"] == 2
    assert run_import("cases", cases_csv, tmp_path)["unchanged"] == 2
    with engine.connect() as connection:
        assert connection.exec_driver_sql(query).all() == before
