"""The service's one-case feature read (``serving.online.OnlineReader``) returns what Feast's
``get_online_features`` of ``settlement_v1`` returns: every feature, value and type, for every
case of the session world, a case with no stored features and a case without a debtor."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from concord.settings import Settings
from features.repo import SETTLEMENT_V1
from features.store.config import feature_store
from features.store.retrieval import online_features
from serving.online import OnlineReader
from tests.conftest import copy_world
from tests.test_service_fast_path import every_case

ENTITY = ("case_pk", "debtor_key", "decision_ts")


@pytest.fixture(scope="module")
def world(service_world: str, tmp_path_factory) -> Settings:
    return Settings.from_env(copy_world(service_world, tmp_path_factory.mktemp("online-read")))


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def test_reader_equals_feast_for_every_case(world: Settings) -> None:
    store = feature_store(world, serving=True)
    reader = OnlineReader(store, SETTLEMENT_V1)
    assert reader.supported()
    # a moment with microseconds (Feast's request data keeps whole seconds), an unknown case, no debtor
    now = dt.datetime.now(dt.UTC).replace(microsecond=987654)
    cases = every_case(world, now)
    entities = [
        *cases,
        {"case_pk": 10**9, "debtor_key": "nobody", "decision_ts": now},
        {"case_pk": cases[0]["case_pk"], "debtor_key": "", "decision_ts": now},
    ]
    expected = {
        k: v for k, v in online_features(world, entities, SETTLEMENT_V1, store=store).items() if k not in ENTITY
    }
    got = reader.read(entities)
    assert set(got) == set(expected)
    differ = [
        (name, i, expected[name][i], got[name][i])
        for name in expected
        for i in range(len(entities))
        if not _same(expected[name][i], got[name][i])
    ]
    assert differ == []
    # one case at a time, as the service asks, gives the same as the batch
    for i in range(0, len(entities), 97):
        one = reader.read([entities[i]])
        assert all(_same(one[name][0], got[name][i]) for name in got)
    # the ages and ratios are there, not all missing
    assert sum(v is not None for v in got["days_past_due"]) > len(cases) // 2
    assert sum(v is not None for v in got["paid_share"]) > len(cases) // 2
    assert all(v is None for name in got for v in [got[name][len(cases)]])  # the unknown case


def test_single_row_c_api_equals_booster_predict(world: Settings) -> None:
    """``models.fast_path.SingleRow`` (LightGBM's single-row C entry point) gives ``Booster.predict``'s
    values exactly, probabilities and contributions, for every case's online features."""
    import numpy as np

    from models.fast_path import FastOdds, SingleRow
    from training.scoring import champion

    entities = every_case(world, dt.datetime.now(dt.UTC))
    values = OnlineReader(feature_store(world, serving=True), SETTLEMENT_V1).read(entities)
    for name in ("reachability", "settlement"):
        fast = FastOdds(champion(world, name)[0])
        assert fast.single is not None
        matrix = np.vstack([fast.row({k: v[i] for k, v in values.items()}) for i in range(len(entities))])
        assert np.isnan(matrix).any()  # missing values take the trees' default branches too
        single = np.array([fast.single.predict(matrix[i : i + 1], SingleRow.NORMAL)[0] for i in range(len(matrix))])
        contrib = np.vstack([fast.single.predict(matrix[i : i + 1], SingleRow.CONTRIB) for i in range(len(matrix))])
        np.testing.assert_array_equal(single, fast.booster.predict(matrix, num_threads=1))
        np.testing.assert_array_equal(contrib, fast.booster.predict(matrix, pred_contrib=True, num_threads=1))
        with pytest.raises(ValueError, match="one row of"):
            fast.single.predict(matrix[0, :-1], SingleRow.NORMAL)


def test_skipped_round_trips_are_feasts() -> None:
    """Where the reader skips Feast's protobuf round trip (int64 and text join keys, the request's
    datetimes, finite doubles), it gives what the round trip gives, value and type."""
    from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
    from feast.value_type import ValueType

    from serving.online import _python

    shanghai = dt.timezone(dt.timedelta(hours=8))
    samples = {
        ValueType.INT64: [[0], [7, -1], [2**63 - 1], [-(2**63)], [2**40, 3]],
        ValueType.STRING: [[""], ["abc", "债务人"], ["0123456789abcdef" * 4]],
        ValueType.UNKNOWN: [
            [dt.datetime(2026, 11, 29, 3, 30, 15, 987654, tzinfo=dt.UTC)],
            [dt.datetime(2026, 11, 29, 3, 30, 15)],  # naive: UTC, as Feast reads it
            [dt.datetime(2026, 11, 29, 11, 30, 15, 1, tzinfo=shanghai)],
            [dt.datetime(1960, 1, 1, 0, 0, 0, 500000, tzinfo=dt.UTC)],
            [dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(2038, 1, 19, 3, 14, 8)],
        ],
        ValueType.DOUBLE: [[0.0, -1.5, None], [1e300]],
    }
    for value_type, lists in samples.items():
        for values in lists:
            feast = [feast_value_type_to_python_type(v) for v in python_values_to_proto_values(values, value_type)]
            ours = _python(list(values), value_type)
            assert len(ours) == len(feast) and all(_same(a, b) for a, b in zip(ours, feast, strict=True)), (
                value_type,
                values,
                ours,
                feast,
            )
