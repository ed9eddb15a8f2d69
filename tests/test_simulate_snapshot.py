"""The simulator's truth at a snapshot (truth_snapshot, truth_actions), its effect profiles and
the option of histories without propensities."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES
from simulator import profiles
from simulator.world import World, simulate_world
from simulator.writers import TABLES, write_world

PHONE_CHANNELS = {"sms_warning", "flash_sms", "similar_case_push", "voice_call"}
WARNING_ACTIONS = {
    *PHONE_CHANNELS,
    "contact_repair",
    "lawyer_letter",
    "asset_preservation",
    "pre_check_write_off",
    "payment_order",
}
MEDIATION_ACTIONS = {
    "mediator_call",
    "video_mediation",
    "online_negotiation",
    "installment_offer",
    "lawyer_letter",
    "payment_order",
    "file_lawsuit",
}
STAGE_ACTIONS = {
    "warning": WARNING_ACTIONS,
    "mediation": MEDIATION_ACTIONS,
    "agreement": {"notarized_agreement", "judicial_confirmation", "mediator_call"},
}


@pytest.fixture(scope="module")
def world() -> World:
    return simulate_world(100_000, seed=4)


@pytest.fixture(scope="module")
def contrasting() -> World:
    return simulate_world(60_000, seed=4, effects="contrasting")


def _local_moment(world: World) -> pd.Timestamp:
    return world.truth_snapshot["snapshot"].iloc[0].tz_convert("Asia/Shanghai").tz_localize(None)


def _actions(world: World) -> pd.DataFrame:
    actions = world.truth_actions
    return actions.assign(case_id=actions["case_id"].astype(str), action=actions["action"].astype(str))


def _events_after(world: World) -> pd.DataFrame:
    events = world.events
    events = events.assign(case_id=events["case_id"].astype(str), action=events["action"].astype(str))
    return events[events["at"] >= _local_moment(world)]


def _realised(world: World, cases: pd.Series, days: int, outcomes: tuple[str, ...]) -> np.ndarray:
    """Whether each case had an event with one of ``outcomes`` in [snapshot, snapshot + days)."""
    after = _events_after(world)
    hits = after[after["outcome"].isin(outcomes) & (after["at"] < _local_moment(world) + pd.Timedelta(days=days))]
    return cases.isin(set(hits["case_id"])).to_numpy()


def _best_actions(world: World) -> pd.Series:
    """The action with the highest p_settle_90d per open case, where the actions differ at all."""
    actions = _actions(world)
    spread = actions.groupby("case_id")["p_settle_90d"].agg(lambda p: p.max() - p.min())
    choice = actions[actions["case_id"].isin(spread.index[spread > 0])]
    return choice.loc[choice.groupby("case_id")["p_settle_90d"].idxmax()].set_index("case_id")["action"]


# --------------------------------------------------------------------------- the snapshot


def test_snapshot_defaults_to_90_days_before_the_end_at_local_midnight(world: World) -> None:
    snapshot = world.truth_snapshot
    assert list(snapshot.columns) == ["case_id", "creditor", "snapshot", "step", "stage", "p_reach_14d", "p_settle_90d"]
    assert list(world.truth_actions.columns) == [
        "case_id",
        "creditor",
        "snapshot",
        "action",
        "logging_probability",
        "p_reach_14d",
        "p_settle_90d",
    ]
    assert (snapshot["snapshot"] == pd.Timestamp("2026-03-31 16:00", tz="UTC")).all()  # 2026-04-01 00:00 +08:00
    assert snapshot["case_id"].is_unique and 0.03 < len(snapshot) / len(world.cases) < 0.15
    # open: started before the snapshot, not closed before it
    start = world.truth.set_index(world.truth["case_id"].astype(str))["start_date"]
    assert (start.loc[snapshot["case_id"].astype(str)] < pd.Timestamp("2026-04-01")).all()
    events = world.events[world.events["at"] < _local_moment(world)]
    closed = set(events.loc[events["outcome"] == "closed", "case_id"].astype(str))
    assert not closed & set(snapshot["case_id"].astype(str))
    other = simulate_world(2_000, seed=4, snapshot=dt.date(2026, 1, 15))
    assert (other.truth_snapshot["snapshot"] == pd.Timestamp("2026-01-14 16:00", tz="UTC")).all()
    with pytest.raises(ValueError, match="snapshot 2026-07-01"):
        simulate_world(100, seed=1, snapshot=dt.date(2026, 7, 1))


def test_snapshot_probabilities_match_realised_outcomes(world: World) -> None:
    snapshot = world.truth_snapshot
    cases = snapshot["case_id"].astype(str)
    for days, outcomes, column in ((14, REACHED_OUTCOMES, "p_reach_14d"), (90, SETTLED_OUTCOMES, "p_settle_90d")):
        label = _realised(world, cases, days, outcomes)
        p = snapshot[column].to_numpy()
        assert abs(p.mean() - label.mean()) < 0.015, (column, p.mean(), label.mean())
        assert p[label].mean() > 3 * p[~label].mean()


# --------------------------------------------------------------------------- the actions


def test_actions_averaged_with_the_logging_policy_reproduce_the_snapshot(world: World) -> None:
    actions = _actions(world)
    weighted = (
        actions.assign(
            reach=actions["logging_probability"] * actions["p_reach_14d"],
            settle=actions["logging_probability"] * actions["p_settle_90d"],
        )
        .groupby("case_id")[["logging_probability", "reach", "settle"]]
        .sum()
    )
    snapshot = world.truth_snapshot.set_index(world.truth_snapshot["case_id"].astype(str))
    weighted = weighted.loc[snapshot.index]
    np.testing.assert_allclose(weighted["logging_probability"], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(weighted["reach"], snapshot["p_reach_14d"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(weighted["settle"], snapshot["p_settle_90d"], rtol=0, atol=1e-12)
    assert (actions.loc[actions["action"] == "wait", "logging_probability"] == 0).all()
    assert (actions.loc[actions["action"] == "close", ["p_reach_14d", "p_settle_90d"]] == 0).all().all()


def test_logging_probability_is_the_propensity_of_the_action_taken_next(world: World) -> None:
    following = _events_after(world).groupby("case_id").head(1)
    taken = _actions(world).merge(following[["case_id", "action", "propensity"]], on=["case_id", "action"])
    assert len(taken) == following["case_id"].isin(world.truth_snapshot["case_id"].astype(str)).sum() > 1000
    np.testing.assert_allclose(taken["propensity"], taken["logging_probability"], rtol=0, atol=1e-12)


def test_the_action_taken_next_predicts_what_happens(world: World) -> None:
    # Given the case, the action the policy happens to take next shifts the outcome by exactly
    # p_action - p_snapshot in expectation: realised - p_snapshot regressed on that has slope 1.
    # (Closing is left out: it would pass even if every other action had the snapshot's odds.)
    following = _events_after(world).groupby("case_id").head(1)
    taken = _actions(world).merge(following[["case_id", "action"]], on=["case_id", "action"])
    closing = taken["action"] == "close"
    assert closing.sum() > 100 and (taken.loc[closing, ["p_reach_14d", "p_settle_90d"]] == 0).all().all()
    taken = taken[~closing]
    snapshot = world.truth_snapshot.set_index(world.truth_snapshot["case_id"].astype(str))
    # Bounds are about 3 standard errors here (0.08 for reach; 0.33 for settlement, whose
    # differences between actions are small): wrong per-action odds give a slope near 0.
    for days, outcomes, column, low, high in (
        (14, REACHED_OUTCOMES, "p_reach_14d", 0.75, 1.25),
        (90, SETTLED_OUTCOMES, "p_settle_90d", 0.3, 2.0),
    ):
        label = _realised(world, taken["case_id"], days, outcomes)
        base = snapshot.loc[taken["case_id"], column].to_numpy()
        shift = taken[column].to_numpy() - base
        slope = float((shift * (label - base)).sum() / (shift * shift).sum())
        assert low < slope < high, (column, slope)


def test_a_case_gets_rows_only_for_the_actions_its_state_allows(world: World) -> None:
    actions = _actions(world)
    snapshot = world.truth_snapshot.assign(case_id=world.truth_snapshot["case_id"].astype(str))
    by_case = actions.groupby("case_id")["action"].agg(set)
    stage = snapshot.set_index("case_id")["stage"].astype(str)
    for case_id, allowed in by_case.items():
        assert {"close", "wait"} <= allowed
        rest = allowed - {"close", "wait"}
        expected = STAGE_ACTIONS.get(stage[case_id], set())
        assert rest <= expected, (case_id, stage[case_id], rest)
    # no number on file and none found by a repair: nothing can be sent
    cases = world.cases.set_index(world.cases["case_id"].astype(str))
    events = world.events[world.events["at"] < _local_moment(world)]
    repaired = set(
        events.loc[(events["action"] == "contact_repair") & (events["outcome"] == "delivered"), "case_id"].astype(str)
    )
    warning = stage.index[stage == "warning"]
    silent = [c for c in warning if pd.isna(cases.at[c, "phone"]) and c not in repaired]
    assert len(silent) > 50
    assert not any(by_case[c] & PHONE_CHANNELS for c in silent)
    assert all(by_case[c] >= PHONE_CHANNELS for c in warning if pd.notna(cases.at[c, "phone"]))
    # the write-off certificate only for dead debt (enforcement terminated for want of assets)
    dead = world.truth.set_index(world.truth["case_id"].astype(str))["dead_debt"]
    offered = [c for c in warning if "pre_check_write_off" in by_case[c]]
    assert offered and dead.loc[offered].all()
    assert dead.loc[warning].sum() == len(offered)
    # paid in full or written off: only close (or wait), and nothing more can happen
    done = stage.index[stage.isin(["paid", "written_off"])]
    assert len(done) > 0 and all(by_case[c] == {"close", "wait"} for c in done)
    assert (snapshot.set_index("case_id").loc[done, ["p_reach_14d", "p_settle_90d"]] == 0).all().all()


# --------------------------------------------------------------------------- effect profiles


def test_in_the_contrasting_world_no_action_is_best_for_most_debtors(contrasting: World) -> None:
    best = _best_actions(contrasting)
    assert len(best) > 2000
    assert best.value_counts(normalize=True).iloc[0] < 0.5
    # visible groups: stage, and whether a capacity snapshot before the snapshot showed assets
    moment = _local_moment(contrasting)
    capacity = contrasting.capacity[contrasting.capacity["as_of"] < moment]
    seen = set(capacity.loc[capacity["has_property"] | capacity["has_vehicle"], "id_number"].astype(str))
    cases = contrasting.cases.set_index(contrasting.cases["case_id"].astype(str)).loc[best.index]
    stage = contrasting.truth_snapshot.set_index(contrasting.truth_snapshot["case_id"].astype(str))["stage"]
    groups = pd.DataFrame(
        {
            "stage": stage.loc[best.index].astype(str).to_numpy(),
            "assets_seen": cases["id_number"].astype(str).isin(seen).to_numpy(),
            "best": best.to_numpy(),
        }
    )
    modal = groups.groupby(["stage", "assets_seen"])["best"].agg(lambda b: b.mode()[0])
    assert modal.loc[("warning", True)] != modal.loc[("warning", False)]
    assert modal.loc[("mediation", True)] != modal.loc[("mediation", False)]


def test_contrasting_effects_suit_the_willing_poor_and_the_able_unwilling(world: World, contrasting: World) -> None:
    for w, lawyer_for_able_unwilling in ((contrasting, True), (world, False)):
        best = _best_actions(w)
        truth = w.truth.set_index(w.truth["case_id"].astype(str)).loc[best.index]
        stage = w.truth_snapshot.set_index(w.truth_snapshot["case_id"].astype(str))["stage"].loc[best.index]
        mediation = (stage == "mediation").to_numpy()
        willing_poor = mediation & (truth["willingness"] > 0.5).to_numpy() & (truth["capacity"] < -0.5).to_numpy()
        able_unwilling = mediation & (truth["capacity"] > 0.5).to_numpy() & (truth["willingness"] < -0.5).to_numpy()
        assert willing_poor.sum() > 20 and able_unwilling.sum() > 20
        assert (best[willing_poor] == "installment_offer").mean() > 0.8
        share = (best[able_unwilling] == "lawyer_letter").mean()
        assert share > 0.8 if lawyer_for_able_unwilling else share < 0.5


def test_an_unknown_profile_or_a_bad_key_is_refused_by_name(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="unknown effect profile 'gentle'"):
        simulate_world(100, seed=1, effects="gentle")
    bad = tmp_path / "profiles.yaml"
    bad.write_text(
        "odd:\n  mediation:\n    settle:\n      installment_offer: {intercept: 1.0, wealth: 2.0}\n", encoding="utf-8"
    )
    monkeypatch.setattr(profiles, "PROFILES_FILE", bad)
    profiles._load_file.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"mediation\.settle\.installment_offer\.wealth is not a feature"):
            profiles.effect_profile("odd")
    finally:
        monkeypatch.undo()
        profiles._load_file.cache_clear()


# --------------------------------------------------------------------------- propensity and the command


def test_no_propensity_leaves_the_column_empty_and_the_files_import(tmp_path: Path, settings) -> None:
    from concord.db import make_engine
    from ingestion.importer import import_file

    with_p = simulate_world(400, seed=9)
    without = simulate_world(400, seed=9, record_propensity=False)
    assert without.events["propensity"].isna().all() and with_p.events["propensity"].notna().all()
    pd.testing.assert_frame_equal(with_p.events.drop(columns="propensity"), without.events.drop(columns="propensity"))
    paths = write_world(without, tmp_path / "world")
    header, first = paths["events"].read_text(encoding="utf-8").splitlines()[:2]
    assert header.endswith(",propensity") and first.endswith(",")
    engine = make_engine(settings)
    for table in ("cases", "events"):
        report = import_file(table, paths[table], settings, engine)
        assert report.rejected == 0 and report.rows_read == len(getattr(without, table)), report
    engine.dispose()


def test_simulate_command_takes_snapshot_effects_and_no_propensity(tmp_path: Path) -> None:
    from serving.cli.app import app

    out = tmp_path / "world"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--cases",
            "500",
            "--seed",
            "3",
            "--out",
            str(out),
            "--format",
            "parquet",
            "--snapshot",
            "2026-02-01",
            "--effects",
            "contrasting",
            "--no-propensity",
        ],
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {f"{t}.parquet" for t in TABLES} | {
        "truth.parquet",
        "truth_decisions.parquet",
        "truth_snapshot.parquet",
        "truth_actions.parquet",
    }
    assert pd.read_parquet(out / "events.parquet")["propensity"].isna().all()
    snapshot = pd.read_parquet(out / "truth_snapshot.parquet")
    assert (snapshot["snapshot"] == pd.Timestamp("2026-01-31 16:00", tz="UTC")).all()
    expected = simulate_world(500, seed=3, snapshot=dt.date(2026, 2, 1), effects="contrasting")
    expected_snapshot = expected.truth_snapshot.astype({"case_id": str, "creditor": str})
    pd.testing.assert_frame_equal(
        snapshot.astype({"case_id": str, "creditor": str}),
        expected_snapshot,
        check_dtype=False,
        check_categorical=False,
    )
    bad = CliRunner().invoke(app, ["simulate", "--cases", "50", "--out", str(tmp_path / "x"), "--effects", "gentle"])
    assert bad.exit_code == 2 and "--effects must be one of default, contrasting" in bad.output
