"""The service's front door (an ASGI middleware around BentoML's app): who may call what, the size
of what they send, one shape for every refusal, and the OpenAPI document of our endpoints.

- ``Authorization: Bearer KEY`` on every API route: none or an unknown key is 401, a role the
  route does not serve is 403 (scopes within a role, such as a platform's own creditor, are
  checked by the endpoint). A key's check is cached for ``KEY_CACHE_SECONDS``: a revoked key stops
  working within that time.
- A body over ``MAX_BODY_BYTES`` is 413 before it is read.
- BentoML's own refusals (a request its pydantic model rejects: ``{"error", "detail": [...]}``,
  or its list-wrapped 4xx) are rewritten as :class:`serving.schemas.ErrorBody`, naming the field.
- ``GET /openapi.json``: BentoML's generated document, trimmed to our endpoints, with the bearer
  scheme and every refusal documented.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import anyio

from serving.auth import ADMIN, COURT, DATA_SCIENTIST, PLATFORM, SUPERVISOR, Principal, authenticate

log = logging.getLogger("concord.service")
MAX_BODY_BYTES = 2 * 1024 * 1024
KEY_CACHE_SECONDS = 10.0
ROUTES: dict[str, tuple[str, ...]] = {
    "/next_best_action": (PLATFORM, SUPERVISOR, ADMIN),
    "/assign": (PLATFORM, SUPERVISOR, ADMIN),
    "/explain": (PLATFORM, SUPERVISOR, DATA_SCIENTIST, ADMIN),
    "/profile": (PLATFORM, SUPERVISOR, ADMIN),
    "/litigation_list": (COURT, SUPERVISOR, ADMIN),
    "/events": (PLATFORM, ADMIN),
    "/reload": (DATA_SCIENTIST, ADMIN),
    "/decision_status": (PLATFORM, SUPERVISOR, ADMIN),
}

Send = Any
Receive = Any


async def _json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _field(loc: Any) -> str | None:
    """A pydantic error location as a field path: ``cases[3].case_id``."""
    out = ""
    for part in loc or ():
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def error_body(status: int, raw: bytes) -> dict[str, Any]:
    """Our error shape for a body BentoML (or Starlette) wrote."""
    try:
        found = json.loads(raw or b"{}")
    except ValueError:
        found = {"error": raw.decode("utf-8", "replace").strip()[:300]}
    if isinstance(found, list):  # BentoML wraps its other 4xx in a list
        found = found[0] if found and isinstance(found[0], dict) else {"error": str(found)[:300]}
    if not isinstance(found, dict):
        found = {"error": str(found)[:300]}
    detail = found.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        field, message = _field(first.get("loc")), str(first.get("msg", "invalid value"))
        if first.get("type") == "extra_forbidden":
            message = "is not a field of this request"
        if first.get("type") == "json_invalid":
            return {"error": f"the request body is not valid JSON ({message})", "field": None}
        more = f" (and {len(detail) - 1} more problems)" if len(detail) > 1 else ""
        return {"error": f"{field or 'the request body'}: {message}{more}", "field": field}
    if "field" in found and "error" in found and set(found) <= {"error", "field"}:
        return found  # already ours
    text = str(found.get("error") or found.get("detail") or "the request was refused")
    return {"error": text if status < 500 else "the service failed on this request; it was logged", "field": None}


class Gate:
    """The ASGI middleware (added with ``NextBestAction.add_asgi_middleware``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._keys: dict[str, tuple[float, Principal | None]] = {}
        self._openapi: bytes | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        if path == "/openapi.json" and scope["method"] == "GET":
            await self._send_openapi(send)
            return
        roles = ROUTES.get(path)
        if roles is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            await _json(
                send,
                413,
                {
                    "error": f"the request body is over {MAX_BODY_BYTES // 1024 // 1024} MiB; "
                    "send fewer cases or events at a time",
                    "field": None,
                },
            )
            return
        try:
            principal = await self._principal(headers.get("authorization", ""))
        except Exception as error:  # the key store is away: refuse clearly rather than hang or 500
            log.error("API keys unreadable: %s", type(error).__name__)
            await _json(send, 503, {"error": "the service cannot check API keys now; try again shortly", "field": None})
            return
        if principal is None:
            await _json(
                send,
                401,
                {
                    "error": "send a valid API key as 'Authorization: Bearer KEY' (made with `concord keys create`)",
                    "field": None,
                },
                [(b"www-authenticate", b"Bearer")],
            )
            return
        if principal.role not in roles:
            await _json(
                send,
                403,
                {
                    "error": f"a {principal.role} key may not call {path}; it serves {', '.join(roles)} keys",
                    "field": None,
                },
            )
            return
        scope.setdefault("state", {})["principal"] = principal
        # Only JSON is accepted: a form or an unnamed body is read as JSON, never as a form
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
        scope["headers"].append((b"content-type", b"application/json"))
        await self.app(scope, receive, _Rewriter(send))

    async def _principal(self, header: str) -> Principal | None:
        scheme, _, raw = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            return None
        digest = hashlib.sha256(raw.strip().encode("utf-8", "replace")).hexdigest()
        cached = self._keys.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        from serving.runtime import current

        runtime = current()
        if runtime is None or runtime.audit is None:
            return None
        principal = await anyio.to_thread.run_sync(authenticate, runtime.audit, raw.strip())
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[digest] = (now + KEY_CACHE_SECONDS, principal)
        return principal

    async def _send_openapi(self, send: Send) -> None:
        if self._openapi is None:
            from serving.openapi import document

            try:
                self._openapi = json.dumps(document(), ensure_ascii=False).encode("utf-8")
            except Exception:  # a bug: say so rather than leave the request hanging
                log.exception("the OpenAPI document could not be built")
                await _json(send, 500, {"error": "the OpenAPI document could not be built", "field": None})
                return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._openapi)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._openapi})


class _Rewriter:
    """Passes responses through, rewriting error bodies that are not already ours."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: dict[str, Any] | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            if message["status"] >= 400:
                self.start = message
                return
            await self.send(message)
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        status = self.start["status"]
        if status >= 500:
            log.error("request failed with status %d", status)
        body = json.dumps(error_body(status, b"".join(self.chunks)), ensure_ascii=False).encode("utf-8")
        headers = [
            (k, v) for k, v in self.start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")
        ]
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *headers,
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})


class _NoInputValues(logging.Filter):
    """BentoML logs a refused request's pydantic error with its traceback, whose text quotes the
    values sent (a phone number typed into the wrong field would reach the log): keep only the
    fields' names, as one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            fields = ", ".join(_field(e.get("loc")) or "body" for e in error.errors(include_input=False)[:5])
            record.msg, record.args = "request refused: invalid %s", (fields,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_validation_logs() -> None:
    """Install :class:`_NoInputValues` on BentoML's request logger (once)."""
    logger = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, _NoInputValues) for f in logger.filters):
        logger.addFilter(_NoInputValues())
