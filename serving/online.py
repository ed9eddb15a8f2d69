"""Online features of a few cases on the service's fast path: what ``get_online_features`` of a
feature service returns, for a fraction of its cost.

Feast's generic read of ``settlement_v1`` for one case cost about 25 ms of Python: it parses every
feature reference of the service again for each on-demand view, turns the whole response into a
dict once per view, and converts every value to protobuf and back. This reader does the same
steps once: the service's stored views are read with the provider's ``online_read`` (the call
Feast makes per view), their values converted as Feast's own ``feast_value_type_to_python_type``
converts them (plain scalars read straight from the proto), and each on-demand view's registered
python-mode function is called on the same inputs Feast gives it (its sources' features, the join
keys and the request data, the request data after the same protobuf round trip), its outputs cast
through the view's declared types. The plan (views, keys, types) is built once per registry
version. A test holds the result equal to Feast's ``get_online_features`` for every case of a world.

A service whose on-demand views are not python-mode transformations (pandas, aggregations,
written to the online store) is not handled here: :meth:`OnlineReader.supported` is False and the
caller uses Feast's own read.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from feast import FeatureStore, FeatureView, OnDemandFeatureView
from feast.errors import FeatureViewNotFoundException
from feast.type_map import (
    NULL_TIMESTAMP_INT_VALUE,
    feast_value_type_to_python_type,
    python_values_to_proto_values,
)
from feast.value_type import ValueType

from features.store.retrieval import feature_service, online_entity_rows


@dataclass(frozen=True)
class _Stored:
    view: FeatureView
    join_keys: tuple[tuple[str, ValueType], ...]
    features: tuple[tuple[str, ValueType], ...]


@dataclass(frozen=True)
class _OnDemand:
    udf: Callable[[dict[str, list[Any]]], dict[str, list[Any]]]
    sources: tuple[str, ...]  # stored views whose features (all those read) it is given
    inputs: tuple[str, ...]  # the features it declares
    outputs: tuple[tuple[str, ValueType], ...]


@dataclass(frozen=True)
class _Plan:
    stamp: object
    stored: tuple[_Stored, ...]
    on_demand: tuple[_OnDemand, ...]
    request: tuple[str, ...]  # request fields the on-demand views need
    supported: bool


def _plan(store: FeatureStore, service_name: str, stamp: object) -> _Plan:
    service = feature_service(store, service_name)
    registry, project = store.registry, store.project
    stored: list[_Stored] = []
    on_demand: list[_OnDemand] = []
    request: list[str] = []
    supported = True
    for projection in service.feature_view_projections:
        wanted = [f.name for f in projection.features]
        try:
            view: Any = registry.get_feature_view(projection.name, project, allow_cache=True)
        except FeatureViewNotFoundException:  # not a stored view: an on-demand one
            view = registry.get_on_demand_feature_view(projection.name, project, allow_cache=True)
        if isinstance(view, OnDemandFeatureView):
            if (
                view.mode != "python"
                or view.singleton
                or view.aggregations
                or view.write_to_online_store
                or projection.name_alias
                or view.feature_transformation is None
            ):
                supported = False
                continue
            types = {f.name: f.dtype.to_value_type() for f in view.features}
            sources = tuple(p.name for p in view.source_feature_view_projections.values())
            inputs = tuple(f.name for p in view.source_feature_view_projections.values() for f in p.features)
            fields = [f.name for s in view.source_request_sources.values() for f in s.schema]
            request += [f for f in fields if f not in request]
            on_demand.append(
                _OnDemand(view.feature_transformation.udf, sources, inputs, tuple((n, types[n]) for n in wanted))
            )
            continue
        if projection.name_alias or projection.join_key_map:
            supported = False
            continue
        types = {f.name: f.dtype.to_value_type() for f in view.features}
        keys = tuple((f.name, f.dtype.to_value_type()) for f in view.entity_columns)
        stored.append(_Stored(view, keys, tuple((n, types[n]) for n in wanted)))
    read = {part.view.name: {name for name, _ in part.features} for part in stored}
    for view in on_demand:  # Feast would read a source the service lacks: leave such a service to Feast
        given = set().union(*(read.get(name, set()) for name in view.sources))
        supported = supported and set(view.inputs) <= given
    return _Plan(stamp, tuple(stored), tuple(on_demand), tuple(request), supported)


# Proto fields whose value Feast's feast_value_type_to_python_type returns as it is (text too,
# unless the feature is typed as a UUID, which Feast parses)
_AS_IS = frozenset(("double_val", "float_val", "int64_val", "int32_val", "bool_val", "bytes_val"))
_UUIDS = frozenset((ValueType.UUID, ValueType.TIME_UUID))


def _value(proto: Any, value_type: ValueType) -> Any:
    """``feast_value_type_to_python_type(proto, value_type)``, with the plain scalars (nearly every
    feature) taken straight from the proto instead of through Feast's twenty type checks."""
    field = proto.WhichOneof("val")
    if field is None:
        return None
    if field in _AS_IS or (field == "string_val" and value_type not in _UUIDS):
        return getattr(proto, field)
    return feast_value_type_to_python_type(proto, value_type)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _python(values: list[Any], value_type: ValueType) -> list[Any]:
    """Values as Feast's response gives them: to protobuf with ``value_type`` and back. Where the
    round trip is known without making it, it is skipped: finite floats and None of a DOUBLE
    feature, int64 join keys and text ones come back as they are, and the request's datetimes
    (typed UNKNOWN: Feast infers a UNIX timestamp) come back in UTC, cut to the whole second."""
    if value_type == ValueType.DOUBLE and all(v is None or (type(v) is float and math.isfinite(v)) for v in values):
        return list(values)
    if value_type == ValueType.INT64 and all(type(v) is int and _INT64_MIN <= v <= _INT64_MAX for v in values):
        return list(values)
    if value_type == ValueType.STRING and all(type(v) is str for v in values):
        return list(values)
    if value_type == ValueType.UNKNOWN and values and all(type(v) is dt.datetime for v in values):
        return [_whole_seconds(v) for v in values]
    return [feast_value_type_to_python_type(v) for v in python_values_to_proto_values(values, value_type)]


def _whole_seconds(value: dt.datetime) -> dt.datetime | None:
    """A datetime's round trip through Feast's UNIX_TIMESTAMP value: a naive one read as UTC,
    whole seconds (``int`` of its timestamp), back as an aware UTC datetime (Feast's null
    timestamp as None)."""
    if value.utcoffset() is None:
        value = value.replace(tzinfo=dt.UTC)
    seconds = int(value.timestamp())
    return None if seconds == NULL_TIMESTAMP_INT_VALUE else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


class OnlineReader:
    """The online features of a feature service for given entity rows (``case_pk``,
    ``debtor_key``, ``decision_ts``), as ``FeatureStore.get_online_features(...).to_dict()``
    returns them without the entity and request columns."""

    def __init__(self, store: FeatureStore, service_name: str) -> None:
        self.store = store
        self.service_name = service_name
        self._plan: _Plan | None = None
        self._lock = threading.Lock()

    def plan(self) -> _Plan:
        """The read plan of the registry version the store holds (built again when it changes)."""
        stamp = getattr(self.store.registry, "cached_registry_proto_created", None)
        plan = self._plan
        if plan is None or stamp is None or plan.stamp != stamp:
            with self._lock:
                plan = _plan(self.store, self.service_name, stamp)
                self._plan = plan
        return plan

    def supported(self) -> bool:
        """Whether every on-demand view of the service is one this reader runs."""
        return self.plan().supported

    def read(self, entity_rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        """Feature name -> one value per entity row (None where unknown)."""
        plan = self.plan()
        rows = online_entity_rows(entity_rows)
        provider = self.store._get_provider()  # Feast's own read goes through the same provider call
        config = self.store.config
        columns: dict[str, list[Any]] = {}
        by_view: dict[str, dict[str, list[Any]]] = {}
        join_values: dict[str, list[Any]] = {}
        entity_keys: dict[tuple[tuple[str, ValueType], ...], list[Any]] = {}
        for part in plan.stored:
            for key, key_type in part.join_keys:
                if key not in join_values:
                    join_values[key] = _python([row[key] for row in rows], key_type)
            keys = entity_keys.get(part.join_keys)
            if keys is None:  # views joined on the same keys share the rows' entity keys
                keys = entity_keys[part.join_keys] = [_entity_key(part, row) for row in rows]
            names = [name for name, _ in part.features]
            found = provider.online_read(config=config, table=part.view, entity_keys=keys, requested_features=names)
            own = by_view[part.view.name] = {}
            for name, value_type in part.features:
                own[name] = columns[name] = [
                    None if data is None or name not in data else _value(data[name], value_type) for _, data in found
                ]
        request = {name: _python([row[name] for row in rows], ValueType.UNKNOWN) for name in plan.request}
        for view in plan.on_demand:
            given = {**join_values, **request}
            for source in view.sources:
                given.update(by_view[source])
            out = view.udf(given)
            for name, value_type in view.outputs:
                columns[name] = _python(list(out[name]), value_type)
        return columns


def _entity_key(part: _Stored, row: dict[str, Any]) -> Any:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto

    names = [key for key, _ in part.join_keys]
    values = [python_values_to_proto_values([row[key]], value_type)[0] for key, value_type in part.join_keys]
    return EntityKeyProto(join_keys=names, entity_values=values)
