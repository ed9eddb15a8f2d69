"""The OpenAPI document of our endpoints (``GET /openapi.json``): BentoML's generated paths and
schemas, with the bearer-key scheme and every refusal the service gives (400, 401, 403, 404, 409,
413, 503 as :class:`serving.schemas.ErrorBody`) in place of BentoML's generic error models.

OpenAPI 3.1, so that pydantic's ``anyOf [..., {"type": "null"}]`` for optional values is valid.
"""

from __future__ import annotations

from typing import Any

from serving.gate import ROUTES
from serving.schemas import ErrorBody

ERRORS = {
    "400": "Bad request: a field is missing or malformed (named in `field`)",
    "401": "No valid API key: send `Authorization: Bearer KEY`",
    "403": "The key's role may not call this endpoint, or the case or court is outside its scope",
    "404": "Unknown case or court",
    "409": "A case of the request cannot be worked (closed)",
    "413": "Too many cases or events in one request (at most 1,000), or a body over 2 MiB",
    "503": "Not ready: no champion models loaded, the schema is behind, or the database is unavailable",
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DROPPED_SCHEMAS = ("InvalidArgument", "NotFound", "InternalServerError", "TaskStatusResponse")


def document() -> dict[str, Any]:
    """The document, built from the service class (no running service needed)."""
    from _bentoml_sdk.service.openapi import generate_spec

    from serving.service import NextBestAction

    spec: dict[str, Any] = generate_spec(NextBestAction, openapi_version="3.1.0").asdict()
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    paths: dict[str, Any] = {}
    for route in ROUTES:
        operation = spec["paths"][route]["post"]
        generated = {str(code): response for code, response in operation["responses"].items()}
        responses = {"200": generated["200"]}
        responses.update({code: {"description": text, "content": error_ref} for code, text in ERRORS.items()})
        operation["responses"] = responses
        operation["security"] = [{"bearer": []}]
        operation["tags"] = ["Concord"]
        paths[route] = {"post": operation}
    xlsx = {"schema": {"type": "string", "format": "binary"}}
    paths["/litigation_list"]["post"]["responses"]["200"]["content"][XLSX] = xlsx
    schemas = {k: v for k, v in spec["components"]["schemas"].items() if k not in DROPPED_SCHEMAS}
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Concord next-best-action service",
            "version": "1",
            "description": "Decisioning for small-amount financial-dispute mediation: the next best action "
            "for a case, assignment to mediators, explanations, masked profiles, court lists "
            "and the events platforms report. Every recommendation and event is written to a "
            "hash-chained audit trail before the answer.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a key made with `concord keys create`"}
            },
        },
        "security": [{"bearer": []}],
    }
