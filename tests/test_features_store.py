"""The feature store end to end: apply, materialise, online reads of both services on SQLite and
on the real Redis, training/serving parity, incremental materialisation, and personal data
kept out of feature tables and the profile.

Uses the hand-written timeline of ``test_features_pit`` (see its docstring).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import math
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from concord.db import make_engine
from concord.pseudonym import mask_id_number, mask_phone
from concord.settings import Settings
from features.offline import build
from features.offline.build import build_offline_tables, latest_path, offline_path
from features.offline.schemas import TABLE_NAMES
from features.profile import debtor_profile, render
from features.repo import REACHABILITY_V1, SETTLEMENT_V1
from features.store.config import apply, feature_store
from features.store.materialisation import materialize
from features.store.retrieval import historical_features, online_features
from ingestion.importer import import_file
from tests.test_features_pit import (
    CREDITOR,
    ID1,
    ID2,
    NAME1,
    NAME2,
    PHONE1,
    PHONE2,
    _settings,
    import_timeline,
)

AS_OF = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
DECISION = dt.datetime(2026, 4, 1, 9, 30, tzinfo=dt.UTC)
SERVICES = (REACHABILITY_V1, SETTLEMENT_V1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, dict[str, object]]]:
    """The timeline in a SQLite ledger, built as of 2026-04-01, applied and materialised."""
    root = tmp_path_factory.mktemp("store")
    settings = _settings(root / "home")
    keys = import_timeline(settings, root / "timeline")
    build_offline_tables(settings, AS_OF)
    apply(settings)
    done = materialize(settings, dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert {run.end for run in done.values()} == {AS_OF}  # capped at the build's as_of
    return settings, keys


def _rows(keys: dict[str, dict[str, object]]) -> list[dict[str, object]]:
    return [
        {"case_pk": keys[c]["case_pk"], "debtor_key": keys[c]["debtor_key"], "decision_ts": DECISION}
        for c in ("A1", "B1")
    ]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def assert_online_matches_training(
    settings: Settings, keys: dict[str, dict[str, object]], project: str = "concord"
) -> dict[str, dict[str, list[object]]]:
    """Online values of each service equal the historical ones at the build's as_of."""
    store = feature_store(settings, project)
    frame = pd.DataFrame(_rows(keys)).assign(event_timestamp=AS_OF)
    results = {}
    for service in SERVICES:
        online = online_features(settings, _rows(keys), service, project, store=store)
        training = historical_features(settings, frame, service, project, store=store)
        features = [c for c in training.columns if c not in ("case_pk", "debtor_key", "event_timestamp", "decision_ts")]
        assert set(features) <= set(online), service
        for name in features:
            for got, expected in zip(online[name], training[name], strict=True):
                if _missing(expected):
                    assert _missing(got), (service, name)
                elif isinstance(expected, str):
                    assert got == expected, (service, name)
                else:
                    assert got == pytest.approx(float(expected)), (service, name)
        results[service] = online
    return results


def test_sqlite_online_features_of_both_services(world: tuple[Settings, dict[str, dict[str, object]]]) -> None:
    settings, keys = world
    results = assert_online_matches_training(settings, keys)
    settlement, reachability = results[SETTLEMENT_V1], results[REACHABILITY_V1]
    # case A1, debtor 1 (first row): values known at 2026-04-01
    assert settlement["monthly_income"][0] == 5000
    assert settlement["attempts_total"][0] == 4 and settlement["reached_total"][0] == 2
    assert settlement["terminated_no_assets"][0] == 1
    assert reachability["checks_total"][0] == 2 and reachability["last_status_active"][0] == 1
    assert reachability["days_since_last_reached"][0] == pytest.approx(
        (DECISION - dt.datetime(2026, 1, 21, 2, tzinfo=dt.UTC)).total_seconds() / 86400
    )
    assert "monthly_income" not in reachability  # the reachability model does not see capacity
    # case B1, debtor 2: no phone checks or litigation at all
    assert settlement["monthly_income"][1] == 9000
    assert settlement["checks_total"][1] is None and settlement["defendant_cases"][1] is None


def test_unknown_entities_come_back_empty(world: tuple[Settings, dict[str, dict[str, object]]]) -> None:
    settings, _ = world
    online = online_features(settings, [{"case_pk": 999_999, "debtor_key": None}], REACHABILITY_V1)
    assert online["attempts_total"] == [None] and online["checks_total"] == [None]


def test_materialize_is_incremental(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    import_timeline(settings, tmp_path / "timeline")
    build_offline_tables(settings, AS_OF)
    apply(settings)
    first = materialize(settings)
    assert first["case_state"].entities == 2
    assert materialize(settings) == {}  # nothing new since the build
    # A call on A1 reaches Concord on 04-10; rebuilt as of 04-15, only A1 is written again.
    path = tmp_path / "late_event.csv"
    pd.DataFrame(
        [
            {
                "case_id": "A1",
                "creditor": CREDITOR,
                "at": "2026-04-09 02:00:00Z",
                "action": "voice_call",
                "actor": "system",
                "outcome": "no_answer",
            }
        ]
    ).to_csv(path, index=False)
    engine = make_engine(settings)
    import_file("events", path, settings, engine, received_at=dt.datetime(2026, 4, 10, tzinfo=dt.UTC))
    engine.dispose()
    build_offline_tables(settings, dt.datetime(2026, 4, 15, tzinfo=dt.UTC))
    second = materialize(settings)
    assert second["case_state"].entities == 1
    assert second["case_state"].start == AS_OF
    assert "repayment_capacity" not in second or second["repayment_capacity"].entities == 0
    keys = pd.read_parquet(offline_path(settings, "case_state"))
    a1 = int(keys["case_pk"].min())
    online = online_features(settings, [{"case_pk": a1, "debtor_key": ""}], REACHABILITY_V1)
    assert online["attempts_total"] == [5]
    assert online["voice_attempts_7d"] == [1]  # 04-09 02:00 is within 7 days of the 04-15 build


def test_parallel_build_writes_the_same_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks built by worker processes give the same tables, and the ``.latest`` companions
    hold each entity's last row."""
    monkeypatch.setattr(build, "PARALLEL_MIN_CHUNKS", 2)
    settings = _settings(tmp_path / "home")
    import_timeline(settings, tmp_path / "timeline")
    build_offline_tables(settings, AS_OF, workers=1)
    inline = {name: pq.read_table(offline_path(settings, name)) for name in TABLE_NAMES}
    build_offline_tables(settings, AS_OF, chunk_cases=1, workers=2)  # one case per chunk
    assert json.loads((offline_path(settings, "x").parent / "manifest.json").read_text())["workers"] == 2
    for name in TABLE_NAMES:
        entity = (
            "mediator_id" if name == "mediator_performance" else "case_pk" if name == "case_state" else ("debtor_key")
        )
        table = pq.read_table(offline_path(settings, name))
        order = [(entity, "ascending"), ("event_timestamp", "ascending")]
        assert table.sort_by(order).equals(inline[name].sort_by(order)), name
        latest = pq.read_table(latest_path(settings, name)).to_pandas()
        expected = table.to_pandas().sort_values([entity, "event_timestamp"]).groupby(entity).tail(1)
        pd.testing.assert_frame_equal(
            latest.sort_values(entity).reset_index(drop=True),
            expected.sort_values(entity).reset_index(drop=True),
            check_dtype=False,
        )  # origin rows made the whole table's ints nullable


@pytest.mark.services
def test_redis_online_features_of_both_services(
    world: tuple[Settings, dict[str, dict[str, object]]], redis_url: str, tmp_path: Path
) -> None:
    sqlite_settings, keys = world
    settings = dataclasses.replace(_settings(tmp_path / "home", sqlite_settings.database_url), redis_url=redis_url)
    project = f"concord_test_{uuid.uuid4().hex[:10]}"  # keys of parallel runs never collide
    store = feature_store(settings, project)
    assert store.config.online_store.type == "redis"
    try:
        build_offline_tables(settings, AS_OF)
        apply(settings, project, store=store)
        materialize(settings, project=project, store=store)
        results = assert_online_matches_training(settings, keys, project)
        assert results[SETTLEMENT_V1]["attempts_total"] == [4, 1]
    finally:
        store.teardown()  # removes this project's keys from Redis
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match=f"*{project}*".encode(), count=1000))
    finally:
        client.close()


def _forbidden() -> list[str]:
    """Raw identifiers and names, and their masked forms: none may enter a feature table."""
    raw = [ID1, ID2, PHONE1, PHONE2, NAME1, NAME2]
    return raw + [mask_id_number(i) for i in (ID1, ID2)] + [mask_phone(p) for p in (PHONE1, PHONE2)]


def test_feature_tables_hold_no_identifiers_or_names(world: tuple[Settings, dict[str, dict[str, object]]]) -> None:
    settings, _ = world
    forbidden = _forbidden()
    for table in TABLE_NAMES:
        frame = pq.read_table(offline_path(settings, table)).to_pandas()
        assert not {"debtor_name", "id_number", "phone", "id_masked", "phone_masked", "phone_key"} & set(frame.columns)
        text_columns = frame.select_dtypes(include="object")
        for column in text_columns:
            values = set(text_columns[column].dropna().astype(str))
            assert not any(f in v for v in values for f in forbidden), (table, column)
        raw = offline_path(settings, table).read_bytes()
        assert not any(f.encode() in raw for f in forbidden), table
    online = (settings.home / "features" / "online.db").read_bytes()
    assert not any(f.encode() in online for f in forbidden)


def test_profile_shows_masked_identifiers_only(world: tuple[Settings, dict[str, dict[str, object]]]) -> None:
    settings, _ = world
    profile = debtor_profile(settings, "A1")
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(render(profile))
    text = console.export_text()
    assert mask_id_number(ID1) in text and mask_phone(PHONE1) in text
    for secret in (ID1, PHONE1, NAME1):
        assert secret not in text
    assert "预查废" in text  # terminated enforcement for want of assets (终本) is known by 04-01
    assert "mediator_call" in text and "M001" in text  # the last events
    assert profile.pre_check_write_off


def _documented_names(markdown: str) -> set[str]:
    """Feature names in the first column of FEATURES.md's tables, ``{a,b}`` patterns expanded."""
    import itertools
    import re

    from features.offline.schemas import CHANNELS

    names: set[str] = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", markdown, flags=re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", cell):
            name = name.replace("{channel}", "{" + ",".join(CHANNELS) + "}")
            parts = re.split(r"\{([^}]*)\}", name)
            choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
            names.update("".join(combo) for combo in itertools.product(*choices))
    return names


def test_every_feature_is_documented(tmp_path: Path) -> None:
    from features.repo.views import feature_views

    documented = _documented_names((Path(__file__).parent.parent / "features" / "FEATURES.md").read_text())
    for view in feature_views(_settings(tmp_path)).values():
        missing = {f.name for f in view.features} - documented
        assert not missing, f"{view.name}: {sorted(missing)} missing from features/FEATURES.md"


def test_cli_build_apply_materialize_profile(
    world: tuple[Settings, dict[str, dict[str, object]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from serving.cli.app import features_app
    from serving.cli.features import profile_command

    settings, _ = world
    monkeypatch.setenv("CONCORD_HOME", str(tmp_path / "cli"))  # own feature store, same ledger
    monkeypatch.setenv("CONCORD_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONCORD_PSEUDONYM_KEY", "test-secret")
    monkeypatch.delenv("CONCORD_REDIS_URL", raising=False)
    runner = CliRunner()
    for args in (["build", "--as-of", "2026-04-01T08:00"], ["apply"], ["materialize"]):
        result = runner.invoke(features_app, args)
        assert result.exit_code == 0, result.output
    assert "case_state: 2 entities" in result.output
    assert "2026-04-01 00:00" in result.output  # --as-of 08:00 Shanghai = 00:00 UTC
    assert (tmp_path / "cli" / "features" / "repo" / "feature_store.yaml").exists()
    bad = runner.invoke(features_app, ["build", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "--as-of" in bad.output

    profile = typer.Typer()
    profile.command()(profile_command)
    shown = runner.invoke(profile, ["A1", "--creditor", CREDITOR], terminal_width=160)
    assert shown.exit_code == 0, shown.output
    assert mask_id_number(ID1) in shown.output and ID1 not in shown.output and NAME1 not in shown.output
    missing = runner.invoke(profile, ["NOPE"])
    assert missing.exit_code == 2 and "No case 'NOPE'" in missing.output
