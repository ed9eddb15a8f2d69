"""Which cases batch scoring covers: the same notion of an open case as the training decisions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from concord.db import make_engine
from ingestion.importer import import_file
from tests.test_features_pit import CREDITOR, _settings, import_timeline
from training.scoring import open_cases


def test_cases_with_an_agreement_stay_open_and_closed_ones_do_not(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    import_timeline(settings, tmp_path / "timeline")
    path = tmp_path / "later.csv"
    event = {"creditor": CREDITOR, "actor": "M001"}
    pd.DataFrame(
        [
            {
                **event,
                "case_id": "B1",
                "at": "2026-02-01 02:00:00Z",
                "action": "installment_offer",
                "outcome": "agreement",
            },
            {**event, "case_id": "A1", "at": "2026-02-10 02:00:00Z", "action": "mediator_call", "outcome": "closed"},
        ]
    ).to_csv(path, index=False)
    engine = make_engine(settings)
    try:
        report = import_file("events", path, settings, engine, received_at=None)
        assert report.imported == 2, report.rejections
        before = open_cases(engine, dt.datetime(2026, 1, 31, tzinfo=dt.UTC))
        after = open_cases(engine, dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    finally:
        engine.dispose()
    assert sorted(before["case_id"]) == ["A1", "B1"]
    assert list(after["case_id"]) == ["B1"]  # B1 is paying off its agreement; A1 is closed
