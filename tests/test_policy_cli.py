"""The policy commands over a small simulated world, as an operator runs them: recommendations for
every open case, one case's answer, the assignment (saved, then honoured by the next run), a
court's list in Excel with Chinese headers, and one sentence with exit 2 for an unknown case or court."""

from __future__ import annotations

import datetime as dt
import stat
from collections.abc import Iterator

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from concord.db import make_engine
from concord.settings import Settings
from serving.cli.app import app
from tests.conftest import SMALL_SEARCH

AS_OF = "2026-06-20 10:00"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[Settings]:
    """A 1,500-case world simulated, imported, featurised, trained and promoted with `concord`'s
    own commands, as a user would."""
    home = tmp_path_factory.mktemp("policy-world")
    env = {"CONCORD_HOME": str(home / "home"), "CONCORD_PSEUDONYM_KEY": "policy-test", **SMALL_SEARCH}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("CONCORD_DATABASE_URL", raising=False)
        steps = [
            ("simulate", "--cases", "1500", "--seed", "3", "--out", str(home / "world"), "--format", "parquet"),
            *(
                ("import", table, str(home / "world" / f"{table}.parquet"), "--historical")
                for table in ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")
            ),
            ("features", "build", "--as-of", "2026-06-20"),
            ("features", "apply"),
            ("train", "--model", "all", "--as-of", "2026-06-20"),
        ]
        for step in steps:
            result = run(*step)
            assert result.exit_code == 0, (step, result.output)
        yield Settings.from_env(env)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_recommend_all_one_case_and_an_unknown_case(world, tmp_path) -> None:
    out = tmp_path / "nba.csv"
    result = run("recommend", "--all", "--as-of", AS_OF, "--out", str(out))
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, encoding="utf-8-sig")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(frame) > 50 and frame["case_id"].is_unique
    assert {
        "case_id",
        "creditor",
        "action",
        "expected_value",
        "runner_up_1",
        "runner_up_1_value",
        "blocked",
        "policy_version",
    } <= set(frame.columns)
    assert frame["policy_version"].nunique() == 1 and "recommended actions by stage" in result.output
    case_id = frame["case_id"].iloc[0]
    one = run("recommend", case_id, "--as-of", AS_OF)
    assert one.exit_code == 0, one.output
    assert f"recommended: {frame['action'].iloc[0]}" in one.output and "reason (settlement)" in one.output
    missing = run("recommend", "NO-SUCH-CASE", "--as-of", AS_OF)
    assert missing.exit_code == 2 and "No case 'NO-SUCH-CASE' in the ledger." in missing.output


def test_assign_saves_and_the_next_run_keeps_those_cases(world, tmp_path) -> None:
    out = tmp_path / "assign.csv"
    first = run("assign", "--as-of", AS_OF, "--out", str(out), "--save")
    assert first.exit_code == 0, first.output
    cases = pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False)
    people = pd.read_csv(tmp_path / "assign.mediators.csv", encoding="utf-8-sig")
    assert (people["load_after"] <= people["capacity"]).all()
    assert ((cases["mediator_id"] != "") | cases["reason"].str.startswith("unassigned: ")).all()
    assigned = (cases["mediator_id"] != "").sum()
    assert assigned > 0 and "recorded as run" in first.output
    second = run("assign", "--as-of", AS_OF, "--out", str(tmp_path / "again.csv"))
    assert second.exit_code == 0, second.output
    assert len(pd.read_csv(tmp_path / "again.csv", encoding="utf-8-sig")) == len(cases) - assigned


def test_court_list_in_excel_with_chinese_headers_and_an_unknown_court(world, tmp_path) -> None:
    engine = make_engine(world)
    courts = pd.read_sql_query(
        "SELECT court, COUNT(*) AS n FROM cases WHERE court IS NOT NULL GROUP BY court ORDER BY n DESC", engine
    )
    engine.dispose()
    out = tmp_path / "court.xlsx"
    result = run(
        "litigation-list",
        "--court",
        courts["court"].iloc[0],
        "--out",
        str(out),
        "--as-of",
        AS_OF,
        "--workflow",
        "one_plus_x",
    )
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["立案", "支付令", "预查废"]
    header = [cell.value for cell in book["支付令"][1]]
    assert header[:4] == ["案件编号", "债权机构", "债务人姓名", "身份证号（脱敏）"] and "计算过程" in header
    listed = pd.read_csv(out.with_suffix(".csv"), encoding="utf-8-sig")
    assert set(listed["建议处置"]) <= {"file_lawsuit", "payment_order", "pre_check_write_off"}
    assert all("*" in str(masked) for masked in listed["身份证号（脱敏）"])
    unknown = run("litigation-list", "--court", "火星法院", "--out", str(out), "--as-of", AS_OF)
    assert unknown.exit_code == 2 and "no case in the ledger names the court '火星法院'" in unknown.output
    wrong = run("litigation-list", "--court", "火星法院", "--out", str(tmp_path / "court.pdf"))
    assert wrong.exit_code == 2 and "--out must name an .xlsx file" in wrong.output


def test_a_resolved_dispute_lets_contact_resume(world, tmp_path) -> None:
    from policies.cases import case_pk_of
    from policies.staffing import resolve_dispute

    out = tmp_path / "nba.csv"
    assert run("recommend", "--all", "--as-of", AS_OF, "--out", str(out)).exit_code == 0
    frame = pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False)
    held = frame[frame["blocked"].str.contains(": disputed")].iloc[0]
    before = run("recommend", held["case_id"], "--creditor", held["creditor"], "--as-of", AS_OF)
    assert before.exit_code == 0 and ": disputed (" in before.output.replace("\n", "")
    resolved = run("disputes", "resolve", held["case_id"], "--creditor", held["creditor"], "--by", "supervisor-7")
    assert resolved.exit_code == 0 and "resolved by supervisor-7" in resolved.output
    # The same case, had a supervisor resolved the dispute an hour before the decision:
    engine = make_engine(world)
    resolve_dispute(
        engine,
        case_pk_of(engine, held["case_id"], held["creditor"]),
        "supervisor-7",
        at=dt.datetime(2026, 6, 20, 1, 0, tzinfo=dt.UTC),
    )
    engine.dispose()
    after = run("recommend", held["case_id"], "--creditor", held["creditor"], "--as-of", AS_OF)
    text = after.output.replace("\n", "")
    assert after.exit_code == 0 and ": disputed (" not in text
    held_back = [part.split(":")[0] for part in held["blocked"].split("; ") if part.endswith(": disputed")]
    assert any(f"│ {action}" in text for action in held_back)  # now among the eligible actions
