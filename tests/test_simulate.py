"""The synthetic world: contract shapes, identities, calibration, effects and the oracle."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES
from ingestion.contracts import TABLES as CONTRACT_TABLES
from simulator.calibration import calibration_report
from simulator.world import World, simulate_world
from simulator.writers import TABLES, TRUTH_TABLES, XLSX_MAX_ROWS, write_world

ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECK = "10X98765432"


def contract_columns(table: str) -> list[str]:
    return [column.name for column in CONTRACT_TABLES[table].columns]


def id_checksum_ok(number: str) -> bool:
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return False
    digits = np.array([int(c) for c in number[:17]])
    return ID_CHECK[int((digits * ID_WEIGHTS).sum() % 11)] == number[17]


@pytest.fixture(scope="module")
def small() -> World:
    return simulate_world(2_000, seed=7)


@pytest.fixture(scope="module")
def calibrated() -> dict[int, World]:
    return {seed: simulate_world(20_000, seed=seed) for seed in (1, 2, 3)}


# --------------------------------------------------------------------------- shapes


def test_tables_have_exactly_the_contract_columns(small: World) -> None:
    for table in TABLES:
        assert list(getattr(small, table).columns) == contract_columns(table), table


def test_same_seed_gives_byte_identical_csv(tmp_path: Path) -> None:
    first = write_world(simulate_world(1_500, seed=11), tmp_path / "a")
    second = write_world(simulate_world(1_500, seed=11), tmp_path / "b")
    other = write_world(simulate_world(1_500, seed=12), tmp_path / "c")
    for table in TABLES:
        assert first[table].read_bytes() == second[table].read_bytes(), table
    assert first["events"].read_bytes() != other["events"].read_bytes()


def test_csv_is_written_in_the_contract_formats(small: World, tmp_path: Path) -> None:
    paths = write_world(small, tmp_path)
    assert set(paths) == {*TABLES, *TRUTH_TABLES}
    assert paths["truth"].suffix == ".parquet"
    for table in TABLES:
        text = paths[table].read_text(encoding="utf-8")
        assert text.splitlines()[0] == ",".join(contract_columns(table))
    cases = pd.read_csv(paths["cases"], dtype=str, keep_default_na=False)
    amount = re.compile(r"^\d+\.\d{2}$")
    for column in ("principal", "interest", "penalty", "fees"):
        assert cases[column].str.match(amount).all(), column
    for column in ("loan_date", "overdue_since"):
        assert cases[column].str.match(r"^\d{4}-\d{2}-\d{2}$").all()
    events = pd.read_csv(paths["events"], dtype=str, keep_default_na=False)
    assert events["at"].str.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").all()
    paid = events["outcome"].isin(["paid", "partial_paid", "agreement"])
    assert events.loc[paid, "amount"].str.match(amount).all()
    assert (events.loc[~paid, "amount"] == "").all()
    litigation = pd.read_csv(paths["litigation"], dtype=str, keep_default_na=False)
    assert set(litigation["dishonest_listed"]) <= {"true", "false"}
    mediators = pd.read_csv(paths["mediators"], dtype=str, keep_default_na=False)
    assert mediators["languages"].str.match(r"^mandarin(;[a-z]+)*$").all()


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_write_world_round_trips_with_pandas(small: World, tmp_path: Path, fmt: str) -> None:
    paths = write_world(small, tmp_path, fmt=fmt)  # type: ignore[arg-type]
    for table in TABLES:
        path = paths[table]
        assert path.suffix == f".{fmt}"
        if fmt == "csv":
            back = pd.read_csv(path, dtype={"id_number": str, "phone": str, "case_id": str})
        elif fmt == "xlsx":
            back = pd.read_excel(path, dtype={"id_number": str, "phone": str, "case_id": str})
        else:
            back = pd.read_parquet(path)
        original = getattr(small, table)
        assert list(back.columns) == contract_columns(table)
        assert len(back) == len(original), table
    cases = (pd.read_csv if fmt == "csv" else pd.read_excel if fmt == "xlsx" else pd.read_parquet)(
        paths["cases"], **({} if fmt == "parquet" else {"dtype": {"id_number": str, "phone": str}})
    )
    assert cases["case_id"].astype(str).tolist() == small.cases["case_id"].astype(str).tolist()
    ids = cases["id_number"].where(cases["id_number"].notna(), None).tolist()
    assert ids == small.cases["id_number"].astype(object).where(small.cases["id_number"].notna(), None).tolist()
    np.testing.assert_allclose(cases["principal"].astype(float), small.cases["principal"], atol=0.005)
    loan = pd.to_datetime(cases["loan_date"].astype(str))
    assert (loan.dt.date == small.cases["loan_date"].dt.date).all()
    truth = pd.read_parquet(paths["truth_decisions"])
    assert len(truth) == len(small.truth_decisions)


def test_xlsx_refuses_a_table_longer_than_a_sheet(small: World, tmp_path: Path) -> None:
    huge = dataclasses.replace(small, events=pd.DataFrame(index=range(XLSX_MAX_ROWS + 1)))
    with pytest.raises(ValueError, match="events"):
        write_world(huge, tmp_path, fmt="xlsx")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- identities and values


def test_ids_phones_and_debtors(calibrated: dict[int, World]) -> None:
    cases = calibrated[1].cases
    persons = cases[cases["debtor_type"] == "person"]
    ids = persons["id_number"].astype(str)
    assert all(id_checksum_ok(number) for number in ids)
    assert ids.str.endswith("X").mean() > 0.05
    birth_years = ids.str.slice(6, 10).astype(int)
    assert birth_years.between(1960, 2003).all()
    phones = cases["phone"].dropna().astype(str)
    assert phones.str.fullmatch(r"1[3-9]\d{9}").all()
    assert 0.07 < cases["phone"].isna().mean() < 0.13
    companies = cases[cases["debtor_type"] == "company"]
    assert len(companies) > 0 and companies["id_number"].isna().all()
    per_debtor = persons.groupby(ids).agg(n=("case_id", "size"), creditors=("creditor", "nunique"))
    assert 0.015 < (per_debtor["n"] == 2).mean() < 0.045
    assert (per_debtor.loc[per_debtor["n"] == 2, "creditors"] == 2).all()
    assert persons.groupby("debtor_name").size().max() < len(persons)  # names are not all alike
    for table in ("contact_checks", "capacity", "litigation"):
        assert set(calibrated[1].__getattribute__(table)["id_number"].astype(str)) <= set(ids), table


def test_case_pool_values(calibrated: dict[int, World]) -> None:
    cases = calibrated[1].cases
    kinds = np.where(cases["creditor"].astype(str).str.contains("银行"), "bank", "consumer_finance")
    assert 0.12 < (kinds == "bank").mean() < 0.18
    assert cases["creditor"].astype(str).str.contains("银行|消费金融").all()
    assert set(cases.loc[kinds == "bank", "product"]) == {"credit_card", "personal_loan"}
    assert set(cases.loc[kinds != "bank", "product"]) == {"consumer_loan", "personal_loan"}
    assert cases["annual_rate"].between(0.07, 0.36).all()
    for column in ("interest", "penalty", "fees"):
        assert (cases[column] >= 0).all()
    assert (cases["loan_date"] < cases["overdue_since"]).all()
    lp = cases["last_payment_date"].dropna()
    assert ((lp >= cases.loc[lp.index, "loan_date"]) & (lp <= cases.loc[lp.index, "overdue_since"])).all()
    out_of_scope = ~(
        (cases["product"] == "credit_card") | ((cases["debtor_type"] == "person") & (cases["principal"] < 100_000))
    )
    assert 0.005 < out_of_scope.mean() < 0.025
    bank_cards = cases.loc[(kinds == "bank") & (cases["product"] == "credit_card"), "principal"].median()
    consumer = cases.loc[kinds != "bank", "principal"].median()
    assert 5_000 < bank_cards < 50_000 and 1_000 < consumer < 20_000


def test_events_follow_the_logging_policy(calibrated: dict[int, World]) -> None:
    world = calibrated[1]
    events = world.events
    assert ((events["propensity"] > 0) & (events["propensity"] <= 1)).all()
    hours = events["at"].dt.hour
    assert hours.between(8, 19).all()
    actors = set(events["actor"].astype(str))
    assert actors <= {"system", *world.mediators["mediator_id"]}
    per_case = len(events) / len(world.cases)
    assert 6 <= per_case <= 10
    by_case = events.groupby(events["case_id"].astype(str), sort=False)["at"]
    assert by_case.apply(lambda at: at.is_monotonic_increasing).all()
    life_days = (by_case.max() - by_case.min()).dt.days
    assert life_days.max() <= 180
    assert set(events["amount"].notna().groupby(events["outcome"].astype(str)).any().loc[lambda s: s].index) == {
        "agreement",
        "paid",
        "partial_paid",
    }
    write_offs = events["action"] == "pre_check_write_off"
    dead = world.truth.set_index("case_id")["dead_debt"]
    assert dead.loc[events.loc[write_offs, "case_id"].astype(str)].all()
    assert len(world.mediators) == max(5, len(world.cases) // 150)
    assert world.mediators["capacity"].between(30, 200).all()


def test_repairs_are_mirrored_in_contact_checks(calibrated: dict[int, World]) -> None:
    world = calibrated[1]
    repairs = world.events[world.events["action"] == "contact_repair"]
    assert set(repairs["outcome"].astype(str)) == {"delivered", "failed"}
    found = world.contact_checks[world.contact_checks["repaired_numbers"] > 0]
    assert found["repair_source"].notna().all()
    persons = world.cases.set_index("case_id")["debtor_type"] == "person"
    delivered = repairs[repairs["outcome"] == "delivered"]
    assert len(found) == persons.loc[delivered["case_id"].astype(str)].sum()


# --------------------------------------------------------------------------- calibration


def test_calibration_within_tolerance_for_seeds_1_2_3(calibrated: dict[int, World]) -> None:
    for seed, world in calibrated.items():
        report = calibration_report(world)
        assert list(report.columns) == ["metric", "creditor_type", "measured", "target", "tolerance", "ok"]
        assert report["ok"].all(), f"seed {seed}:\n{report}"


# --------------------------------------------------------------------------- effects


def _after_first_reach(world: World) -> pd.DataFrame:
    """Events with the case's hidden traits and whether the debtor had been reached before."""
    events = world.events.assign(case_id=world.events["case_id"].astype(str))
    traits = world.truth.assign(case_id=world.truth["case_id"].astype(str)).set_index("case_id")
    events = events.join(traits[["capacity", "willingness", "has_assets"]], on="case_id")
    reach = events["outcome"].isin(REACHED_OUTCOMES).astype(int)
    events["reached_before"] = reach.groupby(events["case_id"]).cumsum() - reach > 0
    events["settles"] = events["outcome"].isin(SETTLED_OUTCOMES)
    events["reaches"] = events["outcome"].isin(REACHED_OUTCOMES)
    return events


def test_actions_act_differently_on_different_debtors(calibrated: dict[int, World]) -> None:
    events = pd.concat([_after_first_reach(w) for w in calibrated.values()], ignore_index=True)
    mediation = events[events["reached_before"]]
    high = mediation["capacity"] > mediation["capacity"].median()

    def rate(action: str, mask: pd.Series, column: str = "settles") -> float:
        rows = mediation[(mediation["action"] == action) & mask]
        return float(rows[column].mean())

    # Comparator: video mediation, chosen by the policy exactly like the two actions tested (a
    # mediator call is also the payment follow-up after an agreement, so it settles more).
    # lawyer letter: raises settlement for those who can pay, lowers it for the others
    uplift_high = rate("lawyer_letter", high) - rate("video_mediation", high)
    uplift_low = rate("lawyer_letter", ~high) - rate("video_mediation", ~high)
    assert rate("lawyer_letter", high) > 1.5 * rate("lawyer_letter", ~high)
    assert uplift_high > 0.02 and uplift_low < 0
    # installment offer: works for the willing but poor
    willing_poor = (mediation["willingness"] > 0) & (mediation["capacity"] < 0)
    gain_wp = rate("installment_offer", willing_poor) - rate("video_mediation", willing_poor)
    gain_rest = rate("installment_offer", ~willing_poor) - rate("video_mediation", ~willing_poor)
    assert gain_wp > 0.02 and gain_wp > gain_rest + 0.02
    # asset preservation: call-backs mostly from debtors with assets
    warning = events[~events["reached_before"] & (events["action"] == "asset_preservation")]
    assert (
        warning.loc[warning["has_assets"], "reaches"].mean() > 2 * warning.loc[~warning["has_assets"], "reaches"].mean()
    )


def test_repair_success_raises_later_reach(calibrated: dict[int, World]) -> None:
    events = _after_first_reach(calibrated[1])
    repaired = events["action"].eq("contact_repair") & events["outcome"].eq("delivered")
    events["repaired_before"] = repaired.groupby(events["case_id"]).cumsum() - repaired > 0
    calls = events[(events["action"] == "voice_call") & ~events["reached_before"]]
    had_repair = calls["case_id"].isin(events.loc[events["action"] == "contact_repair", "case_id"])
    after = calls[had_repair & calls["repaired_before"]]["reaches"].mean()
    before = calls[had_repair & ~calls["repaired_before"]]["reaches"].mean()
    assert after > 2 * before


# --------------------------------------------------------------------------- ground truth


def _realised(world: World, horizon_days: int, outcomes: tuple[str, ...]) -> np.ndarray:
    """Whether an event with one of ``outcomes`` happened in [t, t + horizon) after each decision."""
    points = world.truth_decisions
    local = points["decision_time"].dt.tz_convert("Asia/Shanghai").dt.tz_localize(None)
    frame = pd.DataFrame({"case_id": points["case_id"].astype(str), "t": local, "i": np.arange(len(points))})
    hits = world.events[world.events["outcome"].isin(outcomes)]
    hits = pd.DataFrame({"case_id": hits["case_id"].astype(str), "at": hits["at"]})
    merged = frame.merge(hits, on="case_id")
    inside = (merged["at"] >= merged["t"]) & (merged["at"] < merged["t"] + pd.Timedelta(days=horizon_days))
    label = np.zeros(len(points), dtype=bool)
    label[merged.loc[inside, "i"].unique()] = True
    return label


def test_truth_tables(calibrated: dict[int, World]) -> None:
    world = calibrated[2]
    truth, points = world.truth, world.truth_decisions
    assert len(truth) == len(world.cases)
    assert set(truth["creditor_type"]) == {"bank", "consumer_finance"}
    for column in ("reachability", "capacity", "willingness", "p_reach_14d", "p_settle_90d"):
        assert truth[column].notna().all()
    assert 2.0 < len(points) / len(world.cases) < 4.0
    assert str(points["decision_time"].dt.tz) == "UTC"
    for column in ("p_reach_14d", "p_settle_90d"):
        assert points[column].between(0, 1).all()
    # capacity leaves a trace in the observable income
    capacity = world.capacity.assign(id_number=world.capacity["id_number"].astype(str))
    income = capacity.groupby("id_number")["monthly_income"].mean()
    hidden = truth.assign(id_number=world.cases["id_number"].astype(str)).dropna(subset=["id_number"])
    joined = hidden.set_index("id_number")["capacity"].groupby(level=0).first().to_frame().join(income).dropna()
    assert joined.corr(method="spearman").iloc[0, 1] > 0.5


def test_oracle_probabilities_match_realised_outcomes(calibrated: dict[int, World]) -> None:
    from sklearn.metrics import roc_auc_score

    for seed in (1, 3):
        world = calibrated[seed]
        for horizon, outcomes, column in (
            (14, REACHED_OUTCOMES, "p_reach_14d"),
            (90, SETTLED_OUTCOMES, "p_settle_90d"),
        ):
            label = _realised(world, horizon, outcomes)
            p = world.truth_decisions[column].to_numpy()
            assert abs(p.mean() - label.mean()) < 0.01, (seed, column, p.mean(), label.mean())
            high = p > 0.5
            assert abs(p[high].mean() - label[high].mean()) < 0.03
            assert roc_auc_score(label, p) > 0.8


def test_contract_keys_are_unique_so_every_row_imports() -> None:
    # Found by `make run`: a debtor with two cases got two capacity snapshots on one day.
    from ingestion.contracts import TABLES

    world = simulate_world(3000, seed=1)
    for name in ("cases", "contact_checks", "capacity", "litigation", "events", "mediators"):
        frame = getattr(world, name)
        assert not frame.duplicated(list(TABLES[name].key)).any(), name
