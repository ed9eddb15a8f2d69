"""Keyed pseudonyms and masked display forms for personal identifiers.

Raw ID numbers and phone numbers never leave the import step: features, logs, MLflow and
explanations see only the keyed pseudonym, and people see only the masked form.

The pseudonym is keyed BLAKE2b (a MAC by design, RFC 7693) under a 32-byte key derived from
the deployment's secret: without the secret nobody can recompute a pseudonym from an ID
number, and the same number always maps to the same pseudonym within a deployment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

PSEUDONYM_LENGTH = 32  # hex characters (128 bits): collisions are negligible at any scale


def _mac_key(secret: bytes, kind: str) -> bytes:
    # One key per kind of identifier, so an ID number and a phone never share a pseudonym.
    return hashlib.sha256(b"concord-pseudonym:" + kind.encode() + b":" + secret).digest()


def pseudonym(secret: bytes, kind: str, value: str) -> str:
    """Keyed pseudonym of one identifier; ``kind`` ("id", "phone") separates namespaces."""
    return pseudonyms(secret, kind, [value])[0]


def pseudonyms(secret: bytes, kind: str, values: Iterable[str]) -> list[str]:
    """Pseudonyms of many identifiers (same order)."""
    keyed = hashlib.blake2b(key=_mac_key(secret, kind), digest_size=PSEUDONYM_LENGTH // 2).copy
    out = []
    for value in values:  # a copy of the keyed state: the key block is hashed once, not per value
        mac = keyed()
        mac.update(value.encode())
        out.append(mac.hexdigest())
    return out


def mask_id_number(value: str) -> str:
    """``350102199001011234`` -> ``350102**********34``: region code and last two kept."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 8) + value[-2:]


def mask_phone(value: str) -> str:
    """``13812345678`` -> ``138****5678``."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]
