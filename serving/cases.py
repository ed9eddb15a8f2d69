"""Finding the case a request names, within the caller's scope, and the refusals the service
gives (:class:`ApiError`: an HTTP status, one sentence, the field it is about).

A platform key serves one creditor: its cases only, whatever the request says. A court key reads
its own court's list only. Other roles name the creditor when several creditors use a case id.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, TextClause, text

from serving.auth import COURT, PLATFORM, Principal


class ApiError(Exception):
    """A refusal: ``status`` (4xx, or 503), one sentence, and the request ``field`` it is about."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True)
class CaseRow:
    """The ledger's facts of a case that the decision path reads (no personal data)."""

    case_pk: int
    case_id: str
    creditor: str
    debtor_key: str
    court: str | None
    province: str | None
    product: str

    def facts(self) -> dict[str, object]:
        """The case facts the policy engine reads."""
        return {
            "case_pk": self.case_pk,
            "case_id": self.case_id,
            "creditor": self.creditor,
            "debtor_key": self.debtor_key,
            "court": self.court,
            "province": self.province,
            "product": self.product,
        }


_FIND = (
    "SELECT c.id AS case_pk, c.case_id, cr.name AS creditor, COALESCE(c.debtor_key, '') AS debtor_key, "
    "c.court, c.province, c.product FROM cases c JOIN creditors cr ON cr.id = c.creditor_id "
    "WHERE c.case_id = :case_id"
)


@functools.cache
def _find_query(by_creditor: bool) -> TextClause:
    """The case lookup, with or without the creditor's name (built once: its compiled form is reused)."""
    return text(_FIND + " AND cr.name = :creditor" if by_creditor else _FIND)


def scoped_creditor(principal: Principal, creditor: str | None, field: str = "creditor") -> str | None:
    """The creditor a request is about: a platform key's own creditor (refusing another named in
    the request), or the one named."""
    if principal.role == PLATFORM:
        if creditor is not None and creditor != principal.creditor:
            raise ApiError(403, f"this key serves the cases of '{principal.creditor}' only, not of '{creditor}'", field)
        return principal.creditor
    return creditor


def scoped_court(principal: Principal, court: str | None) -> str:
    """The court a list is for: a court key's own court (refusing another), or the one named."""
    if principal.role == COURT:
        if court is not None and court != principal.court:
            raise ApiError(403, f"this key reads the list of '{principal.court}' only, not of '{court}'", "court")
        assert principal.court is not None
        return principal.court
    if not court:
        raise ApiError(400, "name the court whose list you want", "court")
    return court


def find_case(
    connection: Connection, principal: Principal, case_id: str, creditor: str | None, field: str = "case_id"
) -> CaseRow:
    """The case the request names, within the key's scope.

    Raises:
        ApiError: 404 unknown case, 403 another creditor's case, 400 a case id several creditors use
            and no creditor named.
    """
    wanted = scoped_creditor(principal, creditor, field.replace("case_id", "creditor"))
    params = {"case_id": case_id}
    if wanted is not None:
        params["creditor"] = wanted
    rows = connection.execute(_find_query(wanted is not None), params).all()
    if not rows:
        where = f" of creditor '{wanted}'" if wanted else ""
        raise ApiError(404, f"no case '{case_id}'{where} in the ledger", field)
    if len(rows) > 1:
        names = ", ".join(sorted(str(r.creditor) for r in rows))
        raise ApiError(
            400,
            f"case '{case_id}' exists at several creditors ({names}): name one in 'creditor'",
            field.replace("case_id", "creditor"),
        )
    r = rows[0]
    return CaseRow(
        int(r.case_pk), str(r.case_id), str(r.creditor), str(r.debtor_key or ""), r.court, r.province, str(r.product)
    )


def find_cases(
    connection: Connection, principal: Principal, refs: Sequence[Any], errors: list[Any]
) -> Iterator[tuple[int, CaseRow]]:
    """Each case of a batch (``refs``: ``case_id`` and ``creditor``) found in the caller's scope,
    with its index; a case not found is appended to ``errors`` as a ``CaseError`` and skipped."""
    from serving.schemas import CaseError

    for i, ref in enumerate(refs):
        try:
            case = find_case(connection, principal, ref.case_id, ref.creditor, field=f"cases[{i}].case_id")
        except ApiError as error:
            errors.append(
                CaseError(case_id=ref.case_id, creditor=ref.creditor, status=error.status, error=error.message)
            )
            continue
        yield i, case
