"""Point-in-time correctness of the feature store, late arrivals included.

A hand-written timeline goes through the real importer with explicit ``received_at`` values,
then ``build_offline_tables`` and Feast's ``get_historical_features`` of both services. Every
assertion is on a value that a latest-value join (or a point-in-time join on the rows' own
dates, ignoring when they arrived) would get wrong; the comments name the wrong value.

Timeline (UTC; dates of snapshots count from 00:00 Asia/Shanghai = 16:00 UTC the day before):

- cases A1 (debtor 1) and B1 (debtor 2), received 2026-01-01 00:00
- capacity of debtor 1: 2025-12-15 income 3000 received 01-02; **2026-01-20 income 8000
  received 03-10 (late)**; 2026-02-15 income 5000 received 02-16
- litigation of debtor 1: 01-05 (backfill) terminated 0; 02-01 terminated 1 received 02-03
- contact checks of debtor 1: 01-03 02:00 vacant (backfill); 01-10 02:00 active, 2 numbers
  repaired, received 01-12
- events of A1: 01-05 02:00 voice no_answer, 01-06 02:00 voice reached, 01-20 02:00 sms
  delivered (backfill); **01-21 02:00 mediator_call reached, received 01-25 00:00 (late)**
- event of B1: 01-08 02:00 sms delivered (backfill)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from concord.db import make_engine
from concord.settings import Settings
from features.offline.build import build_offline_tables
from features.store.config import apply, feature_store
from features.store.retrieval import case_entities, historical_features
from ingestion.importer import import_file

UTC = dt.UTC
DAY = 86_400.0


def id_number(first17: str) -> str:
    """A resident ID number with a valid check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


ID1 = id_number("11010519900307123")
ID2 = id_number("31010419851212045")
PHONE1, PHONE2 = "13800138000", "13900139000"
NAME1, NAME2 = "张三丰", "李四光"
CREDITOR = "测试银行股份有限公司"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def epoch(text: str) -> float:
    return ts(text).timestamp()


def _write(folder: Path, name: str, rows: list[dict[str, object]]) -> Path:
    path = folder / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def import_timeline(settings: Settings, folder: Path) -> dict[str, object]:
    """Import the timeline of the module docstring; returns the entity keys of A1 and B1."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)

    def load(table: str, name: str, rows: list[dict[str, object]], received: str | None) -> None:
        when = None if received is None else ts(received).to_pydatetime()
        report = import_file(table, _write(folder, name, rows), settings, engine, received_at=when)
        assert report.rejected == 0, report.rejections

    case = {
        "creditor": CREDITOR,
        "debtor_type": "person",
        "interest": "300.00",
        "penalty": "100.00",
        "fees": "0.00",
        "annual_rate": "0.18",
        "loan_date": "2024-01-01",
        "court": "测试法院",
    }
    load(
        "cases",
        "cases",
        [
            {
                **case,
                "case_id": "A1",
                "product": "credit_card",
                "debtor_name": NAME1,
                "id_number": ID1,
                "phone": PHONE1,
                "province": "北京市",
                "principal": "5000.00",
                "overdue_since": "2025-12-01",
            },
            {
                **case,
                "case_id": "B1",
                "product": "personal_loan",
                "debtor_name": NAME2,
                "id_number": ID2,
                "phone": PHONE2,
                "province": "上海市",
                "principal": "20000.00",
                "overdue_since": "2025-11-15",
            },
        ],
        "2026-01-01 00:00",
    )
    snapshot = {"employment": "employed", "has_property": "false", "has_vehicle": "true", "other_debt": "6000.00"}
    for name, number, as_of, income, received in (
        ("capacity_s1", ID1, "2025-12-15", "3000.00", "2026-01-02 00:00"),
        ("capacity_s4", ID2, "2025-12-01", "9000.00", None),
        ("capacity_s3", ID1, "2026-02-15", "5000.00", "2026-02-16 00:00"),
        ("capacity_s2", ID1, "2026-01-20", "8000.00", "2026-03-10 00:00"),  # January's, late
    ):
        load("capacity", name, [{**snapshot, "id_number": number, "as_of": as_of, "monthly_income": income}], received)
    lit = {"enforcement_cases": 0, "dishonest_listed": "false", "consumption_restricted": "false"}
    load(
        "litigation",
        "litigation_l1",
        [{**lit, "id_number": ID1, "as_of": "2026-01-05", "defendant_cases": 1, "terminated_no_assets": 0}],
        None,
    )
    load(
        "litigation",
        "litigation_l2",
        [
            {
                **lit,
                "id_number": ID1,
                "as_of": "2026-02-01",
                "defendant_cases": 2,
                "enforcement_cases": 1,
                "terminated_no_assets": 1,
                "dishonest_listed": "true",
            }
        ],
        "2026-02-03 00:00",
    )
    load(
        "contact_checks",
        "checks_c1",
        [{"id_number": ID1, "checked_at": "2026-01-03 02:00:00Z", "phone_status": "vacant", "repaired_numbers": 0}],
        None,
    )
    load(
        "contact_checks",
        "checks_c2",
        [
            {
                "id_number": ID1,
                "checked_at": "2026-01-10 02:00:00Z",
                "phone_status": "active",
                "repaired_numbers": 2,
                "repair_source": "运营商",
            }
        ],
        "2026-01-12 00:00",
    )
    event = {"creditor": CREDITOR, "actor": "system"}
    load(
        "events",
        "events_backfill",
        [
            {**event, "case_id": "A1", "at": "2026-01-05 02:00:00Z", "action": "voice_call", "outcome": "no_answer"},
            {**event, "case_id": "A1", "at": "2026-01-06 02:00:00Z", "action": "voice_call", "outcome": "reached"},
            {**event, "case_id": "A1", "at": "2026-01-20 02:00:00Z", "action": "sms_warning", "outcome": "delivered"},
            {**event, "case_id": "B1", "at": "2026-01-08 02:00:00Z", "action": "sms_warning", "outcome": "delivered"},
        ],
        None,
    )
    load(
        "events",
        "events_late",
        [
            {
                **event,
                "case_id": "A1",
                "at": "2026-01-21 02:00:00Z",
                "actor": "M001",
                "action": "mediator_call",
                "outcome": "reached",
            }
        ],
        "2026-01-25 00:00",
    )
    keys = case_entities(settings, engine=engine)
    engine.dispose()
    assert len(keys) == 2
    return {"A1": keys.iloc[0].to_dict(), "B1": keys.iloc[1].to_dict()}


def _entity_df(case: dict[str, object], stamps: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"case_pk": case["case_pk"], "debtor_key": case["debtor_key"], "event_timestamp": [ts(s) for s in stamps]}
    )


def _settings(home: Path, database_url: str | None = None) -> Settings:
    env = {"CONCORD_HOME": str(home), "CONCORD_PSEUDONYM_KEY": "test-secret"}
    if database_url:
        env["CONCORD_DATABASE_URL"] = database_url
    return Settings.from_env(env)


AS_OF = dt.datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, object]]:
    """The timeline imported into a SQLite ledger, built as of 2026-04-01, applied to a fresh
    registry (shared by the tests of this module: they only read)."""
    root = tmp_path_factory.mktemp("pit")
    settings = _settings(root / "home")
    keys = import_timeline(settings, root / "timeline")
    build_offline_tables(settings, AS_OF)
    apply(settings)
    return settings, keys


STAMPS = [
    "2026-01-02 12:00",
    "2026-01-06 03:00",
    "2026-01-13 01:59:59",
    "2026-01-13 02:00",
    "2026-01-24 00:00",
    "2026-01-25 00:00",
    "2026-02-20 00:00",
    "2026-03-15 00:00",
]


def test_settlement_features_are_those_known_at_each_timestamp(timeline: tuple[Settings, dict[str, object]]) -> None:
    settings, keys = timeline
    store = feature_store(settings)
    out = historical_features(settings, _entity_df(keys["A1"], STAMPS), "settlement_v1", store=store)
    assert list(out["event_timestamp"]) == [ts(s) for s in STAMPS]  # same rows, same order
    row = {s: out.iloc[i] for i, s in enumerate(STAMPS)}

    # Capacity: the January snapshot (8000) arrives only on 03-10, after February's (5000) was
    # known, so it is never the latest. Latest-value join: 5000 everywhere; join on the
    # snapshot's own date: 8000 on 01-24.
    assert [row[s]["monthly_income"] for s in STAMPS] == [3000, 3000, 3000, 3000, 3000, 3000, 5000, 5000]
    assert row["2026-03-15 00:00"]["capacity_as_of_ts"] == epoch("2026-02-14 16:00")
    assert row["2026-01-06 03:00"]["debt_to_income"] == pytest.approx(2.0)

    # Litigation: terminated enforcement (预查废 signal) known only from 02-03.
    assert row["2026-01-06 03:00"]["terminated_no_assets"] == 0
    assert row["2026-01-06 03:00"]["defendant_cases"] == 1
    assert row["2026-02-20 00:00"]["terminated_no_assets"] == 1
    assert row["2026-02-20 00:00"]["dishonest_listed"] == 1

    # Case state before any event: the case is known, nothing attempted yet.
    first = row["2026-01-02 12:00"]
    assert (first["attempts_total"], first["stage"], first["principal"], first["total_claim"]) == (0, "new", 5000, 5400)
    assert np.isnan(first["checks_total"])  # the first phone check is on 01-03

    # The late mediator call (01-21, received 01-25) is unknown on 01-24, known from 01-25 on.
    assert [row[s]["attempts_total"] for s in STAMPS] == [0, 2, 2, 2, 3, 4, 4, 4]
    assert row["2026-01-24 00:00"]["mediator_attempts_7d"] == 0
    assert row["2026-01-24 00:00"]["last_reached_ts"] == epoch("2026-01-06 02:00")
    assert row["2026-01-25 00:00"]["mediator_attempts_7d"] == 1
    assert row["2026-01-25 00:00"]["mediator_reached_7d"] == 1
    assert row["2026-01-25 00:00"]["last_reached_ts"] == epoch("2026-01-21 02:00")
    assert row["2026-01-25 00:00"]["days_since_last_reached"] == pytest.approx(3 + 22 / 24)
    assert row["2026-01-24 00:00"]["stage"] == "mediation"


def test_reachability_windows_step_exactly(timeline: tuple[Settings, dict[str, object]]) -> None:
    settings, keys = timeline
    out = historical_features(settings, _entity_df(keys["A1"], STAMPS), "reachability_v1")
    row = {s: out.iloc[i] for i, s in enumerate(STAMPS)}

    # Voice calls on 01-05 02:00 and 01-06 02:00: one in the last day at 01-06 03:00, two in 7 days.
    assert row["2026-01-06 03:00"][["voice_attempts_1d", "voice_attempts_7d", "voice_reached_7d"]].tolist() == [1, 2, 1]
    # The 01-06 02:00 call leaves the 7-day window at exactly 01-13 02:00, not a second earlier.
    assert row["2026-01-13 01:59:59"]["voice_attempts_7d"] == 1
    assert row["2026-01-13 02:00"]["voice_attempts_7d"] == 0
    assert row["2026-01-13 02:00"]["voice_attempts_30d"] == 2
    # The sms of 01-20 02:00 has left the 30-day window on 02-20 00:00; the mediator call of
    # 01-21 02:00 has not.
    assert row["2026-02-20 00:00"]["sms_attempts_30d"] == 0
    assert row["2026-02-20 00:00"]["mediator_attempts_30d"] == 1
    assert row["2026-03-15 00:00"]["mediator_attempts_30d"] == 0
    assert row["2026-03-15 00:00"][["attempts_total", "reached_total", "ever_reached"]].tolist() == [4, 2, 1]

    # Phone checks: the 01-10 repair arrives on 01-12.
    assert row["2026-01-06 03:00"][["checks_total", "last_status_vacant", "repair_successes"]].tolist() == [1, 1, 0]
    checks = ["checks_total", "last_status_active", "repaired_numbers_total"]
    assert row["2026-01-13 02:00"][checks].tolist() == [2, 1, 2]

    # Ages at decision_ts (= event_timestamp): overdue since 2025-12-01 00:00 Shanghai.
    assert row["2026-01-06 03:00"]["days_past_due"] == pytest.approx(36 + 11 / 24)
    assert row["2026-01-06 03:00"]["days_since_last_attempt"] == pytest.approx(1 / 24)
    assert np.isnan(row["2026-01-02 12:00"]["days_since_last_reached"])


def test_decision_ts_moves_ages_but_not_stored_features(timeline: tuple[Settings, dict[str, object]]) -> None:
    settings, keys = timeline
    frame = _entity_df(keys["A1"], ["2026-01-06 03:00", "2026-01-06 03:00"])
    frame["decision_ts"] = [ts("2026-01-06 03:00"), ts("2026-01-16 03:00")]
    frame["label"] = [0, 1]
    frame.index = [10, 20]
    out = historical_features(settings, frame, "reachability_v1")
    assert out["days_past_due"].tolist() == pytest.approx([36 + 11 / 24, 46 + 11 / 24])
    assert out["attempts_total"].tolist() == [2, 2]
    assert out["label"].tolist() == [0, 1] and list(out.index) == [10, 20]  # carried, in order


def test_entities_do_not_mix_and_unknown_is_missing(timeline: tuple[Settings, dict[str, object]]) -> None:
    settings, keys = timeline
    frame = pd.concat(
        [
            _entity_df(keys["B1"], ["2026-01-06 03:00", "2026-01-13 02:00"]),
            _entity_df(keys["A1"], ["2025-12-20 00:00"]),
        ],
        ignore_index=True,
    )
    out = historical_features(settings, frame, "settlement_v1")
    b_early, b_late, a_before = (out.iloc[i] for i in range(3))
    assert b_early["attempts_total"] == 0 and b_late["sms_attempts_7d"] == 1
    assert b_early["monthly_income"] == 9000 and b_early["product_personal_loan"] == 1
    assert np.isnan(b_early["checks_total"]) and np.isnan(b_early["defendant_cases"])
    # Before the case reached Concord there is no case state at all.
    assert np.isnan(a_before["attempts_total"]) and np.isnan(a_before["principal"])


# pandas warns where a batch of missing on-demand values would change the result's dtypes
@pytest.mark.filterwarnings("error::FutureWarning")
def test_batched_retrieval_equals_one_call(timeline: tuple[Settings, dict[str, object]], monkeypatch) -> None:
    """Entity rows go to Feast in batches of neighbouring cases; the result is the same, in the
    caller's order, whatever the batch size."""
    import features.store.retrieval

    settings, keys = timeline
    frame = pd.concat(
        [_entity_df(keys["B1"], STAMPS[:3]), _entity_df(keys["A1"], STAMPS), _entity_df(keys["B1"], STAMPS[3:])],
        ignore_index=True,
    )
    frame["label"] = range(len(frame))
    whole = historical_features(settings, frame, "settlement_v1")
    monkeypatch.setattr(features.store.retrieval, "HISTORICAL_BATCH_ROWS", 2)
    batched = historical_features(settings, frame, "settlement_v1")
    pd.testing.assert_frame_equal(batched, whole)
    assert batched["label"].tolist() == list(range(len(frame)))


def test_build_as_of_leaves_out_what_arrived_later(
    timeline: tuple[Settings, dict[str, object]], tmp_path: Path
) -> None:
    settings, keys = timeline
    early = _settings(tmp_path / "early", settings.database_url)  # same ledger, own feature store
    paths = build_offline_tables(early, dt.datetime(2026, 1, 24, 12, tzinfo=UTC))
    apply(early)
    case_rows = pd.read_parquet(paths["case_state"])
    assert case_rows["event_timestamp"].max() <= ts("2026-01-24 12:00")
    out = historical_features(early, _entity_df(keys["A1"], ["2026-03-15 00:00"]), "settlement_v1")
    # As of 01-24 12:00 the late mediator call and the February snapshots were unknown.
    assert out.iloc[0]["attempts_total"] == 3
    assert out.iloc[0]["monthly_income"] == 3000
    assert out.iloc[0]["terminated_no_assets"] == 0


@pytest.mark.services
def test_postgresql_ledger_builds_the_same_tables(
    timeline: tuple[Settings, dict[str, object]], postgres_url: str, tmp_path: Path
) -> None:
    """The build reads PostgreSQL (typed dates, timestamps and NUMERIC) exactly as SQLite (text)."""
    sqlite_settings, _ = timeline
    pg = _settings(tmp_path / "pg", postgres_url)
    import_timeline(pg, tmp_path / "timeline")
    pg_paths = build_offline_tables(pg, AS_OF)
    for name, path in pg_paths.items():
        expected = pd.read_parquet(sqlite_settings.home / "features" / "offline" / f"{name}.parquet")
        got = pd.read_parquet(path)
        assert len(got) > 0, name
        key = [got.columns[0], "event_timestamp"]
        pd.testing.assert_frame_equal(
            got.sort_values(key).reset_index(drop=True), expected.sort_values(key).reset_index(drop=True), obj=name
        )
