"""schemathesis over our OpenAPI document (``/openapi.json``) against the running service: for every
endpoint, generated requests (bounded: ``MAX_EXAMPLES`` each) get no 5xx, only documented status
codes and content types, and bodies that match the documented schemas (refusals included).

Requests that follow the schema may still name cases or courts the world does not have: the 404
they get is documented, so schemathesis' "positive data must be accepted" check is left out.
BentoML's own 400 shape is not exempted: the gate rewrites it into ours, which the document names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import copy_world
from tests.service_world import Service, make_key

MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def running(service_world: str, tmp_path_factory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("service-schemathesis")
    env = copy_world(service_world, root)
    key = make_key(env, "admin")
    service = Service(env, root / "service.log").start()
    try:
        yield service.url, key
    finally:
        service.stop()


@pytest.mark.parametrize(
    "route",
    [
        "/next_best_action",
        "/assign",
        "/explain",
        "/profile",
        "/litigation_list",
        "/events",
        "/reload",
        "/decision_status",
    ],
)
def test_our_endpoints_follow_their_document(running: tuple[str, str], route: str) -> None:
    url, key = running
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {
        "/next_best_action",
        "/assign",
        "/explain",
        "/profile",
        "/litigation_list",
        "/events",
        "/reload",
        "/decision_status",
    }
    operation = next(op for op in operations if op.path == route)
    calls = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def generated(case) -> None:
        response = case.call_and_validate(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        )
        calls.append(response.status_code)

    generated()
    assert calls and all(code < 500 for code in calls)
