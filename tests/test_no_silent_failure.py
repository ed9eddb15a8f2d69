"""No silent failure, as a new user meets it on a world written elsewhere (tests/foreign_world.py).

History imported without ``--historical`` gives every decision no features: ``concord train``
refuses with one sentence naming the fix, registers nothing, and the fix works. A feature the
champion never saw in training but present at scoring is flagged by ``concord score``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.cli.app import app
from tests.foreign_world import build
from training import registry

runner = CliRunner()
TABLES = ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")
SNAPSHOT = "2025-03-01"


@pytest.fixture
def tiny_search(monkeypatch) -> None:
    monkeypatch.setenv("CONCORD_TUNING_TRIALS", "2")
    monkeypatch.setenv("CONCORD_TUNING_SECONDS", "10")


def concord(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def registered_models(settings) -> list[str]:
    return [m.name for m in registry.configure(settings).search_registered_models()]


def test_training_on_history_imported_without_historical_refuses_with_the_fix(
    settings, tmp_path: Path, tiny_search
) -> None:
    paths = build(tmp_path / "world", n_cases=500)
    for table in TABLES:
        concord("import", table, str(paths[table]))  # the natural first try: as if received today
    concord("features", "build")
    concord("features", "apply")
    refused = runner.invoke(app, ["train", "--as-of", SNAPSHOT])
    assert refused.exit_code == 1, refused.output
    assert "have no feature values" in refused.output
    assert "re-import history with `--historical`" in refused.output
    assert "nothing was registered" in refused.output
    assert registered_models(settings) == []

    # The fix the sentence names: the same files again, with --historical.
    for table in TABLES[1:]:
        assert "now count from when they happened" in concord("import", table, str(paths[table]), "--historical")
    concord("features", "build")
    trained = concord("train", "--as-of", SNAPSHOT)
    assert "reachability: version 1" in trained and "settlement: version 1" in trained
    assert sorted(registered_models(settings)) == ["concord-reachability", "concord-settlement"]


def test_the_drift_report_flags_a_feature_absent_in_training_and_present_at_scoring(
    settings, tmp_path: Path, tiny_search
) -> None:
    paths = build(tmp_path / "world", n_cases=500)
    for table in TABLES:
        if table != "capacity":  # the capacity provider's files come later
            concord("import", table, str(paths[table]), *(["--historical"] if table != "mediators" else []))
    concord("features", "build")
    concord("features", "apply")
    concord("train", "--as-of", SNAPSHOT)
    concord("import", "capacity", str(paths["capacity"]), "--historical")
    concord("features", "build")

    out = tmp_path / "scores.csv"
    scored = runner.invoke(app, ["score", "--as-of", SNAPSHOT, "--out", str(out)])
    assert scored.exit_code == 0, scored.output
    drift = pd.read_csv(out.with_name("scores.drift.csv"))
    income = drift[(drift["model"] == "settlement") & (drift["feature"] == "monthly_income")].iloc[0]
    assert income["present_training"] == 0 and income["present_scoring"] > 0.5
    assert income["flag"] == "absent in training, present now"
    assert "warning" in scored.output and "monthly_income" in scored.output
    steady = drift[(drift["model"] == "reachability") & (drift["feature"] == "days_past_due")].iloc[0]
    assert steady["present_training"] > 0.9 and steady["present_scoring"] > 0.9  # trained on it, present now
    assert "present" not in str(steady["flag"])
