"""API keys of the service and the roles they carry: made once (the raw key is shown only then),
stored as a salted hash, checked on every request (``Authorization: Bearer KEY``).

A key reads ``ck_<id>_<secret>``: the id finds the row, the secret is compared in constant time
with ``sha256(salt + secret)``. Roles: platform (its creditor's cases only), supervisor, court (its
own court's list only), data_scientist, admin.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from concord.ledger import ApiKey, table, utcnow

PLATFORM = "platform"
SUPERVISOR = "supervisor"
COURT = "court"
DATA_SCIENTIST = "data_scientist"
ADMIN = "admin"
ROLES = (PLATFORM, SUPERVISOR, COURT, DATA_SCIENTIST, ADMIN)

_KEY = re.compile(r"^ck_(\d{1,18})_([A-Za-z0-9_-]{20,128})$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (what the audit trail names), role and scope."""

    key_id: int
    role: str
    creditor: str | None = None
    court: str | None = None

    @property
    def actor(self) -> str:
        """The caller as the audit trail names it: key id and role, no personal data."""
        return f"key:{self.key_id}:{self.role}"


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode("ascii")).hexdigest()


def check_scope(role: str, creditor: str | None, court: str | None) -> None:
    """Refuse a role/scope combination that makes no sense, in one sentence naming the option."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == PLATFORM and not creditor:
        raise ValueError("a platform key serves one creditor's cases: give --creditor NAME")
    if role == COURT and not court:
        raise ValueError("a court key reads its own court's list: give --court NAME")
    if creditor and role != PLATFORM:
        raise ValueError(f"--creditor binds only platform keys, not a {role} key")
    if court and role != COURT:
        raise ValueError(f"--court binds only court keys, not a {role} key")


def create_key(engine: Engine, role: str, creditor: str | None = None, court: str | None = None) -> str:
    """Store a new key for ``role`` (bound to ``creditor`` or ``court`` where the role needs it) and
    return the raw key: it is not stored anywhere and cannot be shown again."""
    check_scope(role, creditor, court)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    keys = table(ApiKey)
    with engine.begin() as connection:
        key_id = connection.execute(
            insert(keys).values(
                key_hash=f"pending:{uuid.uuid4().hex}",
                role=role,
                creditor=creditor or None,
                court=court or None,
                created_at=utcnow(),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        connection.execute(
            update(keys).where(keys.c.id == key_id).values(key_hash=f"{salt.hex()}${_digest(salt, secret)}")
        )
    return f"ck_{key_id}_{secret}"


def authenticate(engine: Engine, raw_key: str) -> Principal | None:
    """The principal of a valid, unrevoked key; None for anything else (malformed, unknown, revoked)."""
    match = _KEY.match(raw_key.strip()) if raw_key else None
    if match is None:
        return None
    key_id, secret = int(match.group(1)), match.group(2)
    keys = table(ApiKey)
    with engine.connect() as connection:
        row = connection.execute(select(keys).where(keys.c.id == key_id)).first()
    if row is None or row.revoked_at is not None or "$" not in row.key_hash:
        return None
    salt_hex, digest = row.key_hash.split("$", 1)
    if not hmac.compare_digest(_digest(bytes.fromhex(salt_hex), secret), digest):
        return None
    return Principal(key_id=row.id, role=row.role, creditor=row.creditor, court=row.court)


def revoke_key(engine: Engine, key_id: int) -> bool:
    """Revoke a key from now on; False when no such unrevoked key exists."""
    keys = table(ApiKey)
    with engine.begin() as connection:
        result = connection.execute(
            update(keys).where(keys.c.id == key_id, keys.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
    return bool(result.rowcount)
