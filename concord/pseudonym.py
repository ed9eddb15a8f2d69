"""Keyed pseudonyms and masked display forms for personal identifiers.

Raw ID numbers and phone numbers never leave the import step: features, logs, MLflow and
explanations see only the keyed pseudonym (HMAC-SHA256 under the deployment's secret), and
people see only the masked form.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

PSEUDONYM_LENGTH = 32  # hex characters (128 bits): collisions are negligible at any scale


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """Keyed pseudonym of one identifier; ``kind`` ("id", "phone") separates namespaces."""
    digest = hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_LENGTH]


def pseudonyms(key: bytes, kind: str, values: Iterable[str]) -> list[str]:
    """Pseudonyms of many identifiers (same order); each distinct value is hashed once."""
    cache: dict[str, str] = {}
    out = []
    for value in values:
        hashed = cache.get(value)
        if hashed is None:
            hashed = cache[value] = pseudonym(key, kind, value)
        out.append(hashed)
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
