"""Who may open the review page, and how they prove it: a key typed into the login form (then a
signed session cookie) or ``Authorization: Bearer KEY`` from a tool; CSRF tokens on every form.

The cookie is signed (itsdangerous, through Starlette's ``SessionMiddleware``), HttpOnly and
SameSite=Strict, and holds only the key's id, role, the CSRF token and the language: never the
key. Every request checks again that the key is not revoked. The signing secret is derived from
the deployment's pseudonym key, so every worker of the service signs alike and nothing new must
be configured. Only the supervisor role may open the page: reviewing is the supervisor's duty
(seed 001's dual review), so an admin, who manages keys and models, gets 403 like the others.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from starlette.requests import Request

from concord.settings import Settings

REVIEW_ROLES = ("supervisor",)
SESSION_COOKIE = "concord_review"
SESSION_SECONDS = 8 * 3600  # one working day


@dataclass(frozen=True)
class Visitor:
    """An authenticated caller of the page: the key's id and role, and how it came."""

    key_id: int
    role: str
    via: str  # "session" or "bearer"

    @property
    def actor(self) -> str:
        """The reviewer as the audit trail names them (``serving.auth.Principal.actor``)."""
        return f"key:{self.key_id}:{self.role}"

    @property
    def may_review(self) -> bool:
        return self.role in REVIEW_ROLES


def session_secret(settings: Settings) -> str:
    """The cookie-signing secret: an HMAC of a fixed label under the pseudonym key."""
    return hmac.new(settings.pseudonym_key(), b"concord-review-session-v1", hashlib.sha256).hexdigest()


def bearer_key(request: Request) -> str | None:
    """The key of an ``Authorization: Bearer KEY`` header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def key_is_live(engine: Engine, key_id: int) -> str | None:
    """The role of an unrevoked key, or None."""
    from concord.ledger import ApiKey, table

    keys = table(ApiKey)
    with engine.connect() as connection:
        row = connection.execute(select(keys.c.role, keys.c.revoked_at).where(keys.c.id == key_id)).first()
    return None if row is None or row.revoked_at is not None else str(row.role)


def visitor(request: Request, engine: Engine) -> tuple[Visitor | None, bool]:
    """The caller, and whether they tried to authenticate at all (a bad bearer key is a 401,
    no credentials at all is a redirect to the login form)."""
    from serving.auth import authenticate

    raw = bearer_key(request)
    if raw is not None:
        principal = authenticate(engine, raw)
        return (Visitor(principal.key_id, principal.role, "bearer") if principal else None), True
    session: dict[str, Any] = request.session
    key_id = session.get("key_id")
    if isinstance(key_id, int):
        role = key_is_live(engine, key_id)
        if role is not None:
            return Visitor(key_id, role, "session"), True
        session.pop("key_id", None)
        session.pop("role", None)
    return None, False


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use): every form carries it."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, sent: object) -> bool:
    """Whether a form's token matches the session's (constant time)."""
    expected = request.session.get("csrf")
    return isinstance(expected, str) and isinstance(sent, str) and hmac.compare_digest(expected, sent)


def log_in(request: Request, key_id: int, role: str) -> None:
    """Start a session for the key: a fresh CSRF token, the language kept."""
    lang = request.session.get("lang")
    request.session.clear()
    request.session.update({"key_id": key_id, "role": role, "csrf": secrets.token_urlsafe(32)})
    if lang:
        request.session["lang"] = lang
