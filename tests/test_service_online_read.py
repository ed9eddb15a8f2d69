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
    entities = [*cases, {"case_pk": 10**9, "debtor_key": "nobody", "decision_ts": now},
                {"case_pk": cases[0]["case_pk"], "debtor_key": "", "decision_ts": now}]
    expected = {k: v for k, v in online_features(world, entities, SETTLEMENT_V1, store=store).items()
                if k not in ENTITY}
    got = reader.read(entities)
    assert set(got) == set(expected)
    differ = [(name, i, expected[name][i], got[name][i]) for name in expected for i in range(len(entities))
              if not _same(expected[name][i], got[name][i])]
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
        single = np.array([fast.single.predict(matrix[i:i + 1], SingleRow.NORMAL)[0] for i in range(len(matrix))])
        contrib = np.vstack([fast.single.predict(matrix[i:i + 1], SingleRow.CONTRIB) for i in range(len(matrix))])
        np.testing.assert_array_equal(single, fast.booster.predict(matrix, num_threads=1))
        np.testing.assert_array_equal(contrib, fast.booster.predict(matrix, pred_contrib=True, num_threads=1))
        with pytest.raises(ValueError, match="one row of"):
            fast.single.predict(matrix[0, :-1], SingleRow.NORMAL)
