"""History imported as news, and its correction: ``concord import`` of old rows without
``--historical`` warns with the fix, and re-importing the same file with ``--historical`` makes
the stored rows count from when they happened, without losing or duplicating any."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import func, select
from typer.testing import CliRunner

from concord import ledger
from concord.db import make_engine
from serving.cli.app import app
from tests.foreign_world import build

runner = CliRunner()


def stored(settings, model) -> tuple[int, int]:
    """(rows, rows with a received_at) of a ledger table."""
    sql = ledger.table(model)
    engine = make_engine(settings)
    with engine.connect() as connection:
        rows = connection.scalar(select(func.count()).select_from(sql))
        received = connection.scalar(select(func.count(sql.c.received_at)))
    engine.dispose()
    return rows, received


def test_history_imported_as_news_warns_and_a_historical_reimport_corrects_it(ledger_settings, tmp_path: Path) -> None:
    paths = build(tmp_path / "world", n_cases=60, history_days=240)
    for table in ("mediators", "cases"):
        assert runner.invoke(app, ["import", table, str(paths[table])]).exit_code == 0
    first = runner.invoke(app, ["import", "events", str(paths["events"])])
    assert first.exit_code == 0, first.output
    assert "--historical" in first.output and "warning" in first.output
    events = len(pd.read_csv(paths["events"]))
    assert stored(ledger_settings, ledger.Event) == (events, events)

    again = runner.invoke(app, ["import", "events", str(paths["events"]), "--historical"])
    assert again.exit_code == 0, again.output
    assert "warning" not in again.output
    assert f"unchanged {events:,} (of which {events:,} now count from when they happened)" in again.output
    assert stored(ledger_settings, ledger.Event) == (events, 0)  # nothing lost, nothing twice, all backfill

    # Receiving the same rows once more, as news, does not make them later again.
    third = runner.invoke(app, ["import", "events", str(paths["events"])])
    assert third.exit_code == 0 and "now count" not in third.output
    assert stored(ledger_settings, ledger.Event) == (events, 0)


def test_recent_rows_imported_as_news_do_not_warn(settings, tmp_path: Path) -> None:
    paths = build(tmp_path / "world", n_cases=40, history_days=240)
    frame = pd.read_csv(paths["events"])
    shift = pd.Timestamp.now() - pd.to_datetime(frame["时间"]).max()  # the last event happened a moment ago
    frame["时间"] = (pd.to_datetime(frame["时间"]) + shift.floor("D")).dt.strftime("%Y-%m-%d %H:%M:%S")
    frame = frame[pd.to_datetime(frame["时间"]) > pd.Timestamp.now() - pd.Timedelta(days=20)]
    recent = tmp_path / "recent.csv"
    frame.to_csv(recent, index=False)
    for table in ("mediators", "cases"):
        assert runner.invoke(app, ["import", table, str(paths[table])]).exit_code == 0
    result = runner.invoke(app, ["import", "events", str(recent)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
