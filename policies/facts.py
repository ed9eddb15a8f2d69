"""Case facts: the named values workflows, guardrails, priors and flags read, one array per fact.

A :class:`Facts` holds one value per case for every fact, as numpy arrays, so that the same code
decides for a million cases (a DataFrame of them) or for one (a mapping: the service's online
features plus the case's history and scores), without pandas on the one-case path. Facts come
from four places, by name:

- the models' features (``features/FEATURES.md``): ``stage_code``, ``ever_reached``,
  ``disputed_total``, ``monthly_income``, ``terminated_no_assets``, the ages ``days_*`` ...;
- the ledger's case row: ``case_id``, ``creditor``, ``court``, ``province``, ``product``;
- the contact history (:mod:`policies.history`): per-debtor counts by channel today and in the
  last 7 days, opt-outs by channel, open disputes, the streak of failed phone attempts, how
  often each action was taken; when a history fact is absent it falls back on a conservative
  reading of the features (documented in :data:`FALLBACKS`);
- the scores ``p_reach`` and ``p_settle``, and ``decision_ts`` (epoch seconds, UTC).

Derived facts (:data:`DERIVED`) are computed from those on first use. Comparisons on a missing
value (NaN) are false; counts and flags that are missing count as 0 (:data:`ZERO_FILLED`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

TEXT_FACTS = ("case_id", "creditor", "court", "province", "product", "stage", "debtor_key")
FEATURE_CHANNELS = ("sms", "voice", "mediator", "legal", "repair")
STAGE_CODES = {
    "new": 0,
    "warning": 1,
    "mediation": 2,
    "agreement": 3,
    "litigation": 4,
    "paid": 5,
    "written_off": 6,
    "closed": 7,
}
SHANGHAI_OFFSET_S = 8 * 3600  # China keeps UTC+8 all year
REQUIRED = ("p_reach", "p_settle", "decision_ts")

# Numeric facts read as they are; missing counts and flags are 0, amounts and ages stay NaN.
ZERO_FILLED = (
    "debtor_company",
    "has_phone",
    "interest",
    "penalty",
    "fees",
    "paid_amount_total",
    "stage_code",
    "ever_reached",
    "reached_total",
    "promises_total",
    "promise_open",
    "settled_total",
    "disputed_total",
    "opted_out_total",
    "refused_total",
    "attempts_total",
    "phone_failed_total",
    "phone_through_total",
    "last_phone_failed",
    "last_status_active",
    "last_status_vacant",
    "last_status_suspended",
    "last_status_unknown",
    "checks_total",
    "repair_successes",
    "has_property",
    "has_vehicle",
    "terminated_no_assets",
    "dishonest_listed",
    "consumption_restricted",
    "defendant_cases",
    "enforcement_cases",
    "has_last_payment",
    "in_scope",
    *(f"{ch}_{kind}_{w}d" for ch in FEATURE_CHANNELS for kind in ("attempts", "reached") for w in (1, 7, 30)),
)
KEPT_MISSING = (
    "principal",
    "total_claim",
    "annual_rate",
    "monthly_income",
    "monthly_spend",
    "other_debt",
    "income_stability",
    "days_past_due",
    "days_since_last_reached",
    "days_since_last_attempt",
    "days_since_first_event",
    "days_since_last_settled",
    "claim_to_income",
    "overdue_since_ts",
    "p_reach",
    "p_settle",
    "decision_ts",
    "dispute_open",
    "failed_streak",
    "certificates_issued",
)

# The same names as sets, for the membership tests of every first read of a fact (a tuple is
# scanned name by name: ~100 facts a case, ~75 names in ZERO_FILLED)
TEXT_FACT_SET, _ZERO, _MISSING = frozenset(TEXT_FACTS), frozenset(ZERO_FILLED), frozenset(KEPT_MISSING)

Derivation = Callable[["Facts"], np.ndarray]


def history_fact_names(channels: Sequence[str], actions: Sequence[str]) -> tuple[str, ...]:
    """Names of the contact-history facts for these channels and actions (see policies.history)."""
    per_channel = (
        "attempts_today",
        "unanswered_today",
        "connected_today",
        "attempts_week",
        "connected_week",
        "attempts_ever",
    )
    return (
        *(f"{ch}_{kind}" for ch in channels for kind in per_channel),
        *(f"opted_out_{ch}" for ch in channels),
        *(f"count_{a}" for a in actions),
        "dispute_open",
        "failed_streak",
        "certificates_issued",
    )


def _fallback(name: str) -> Derivation | None:
    """A conservative reading of the features for a history fact the caller did not give.

    Rolling 24-hour feature counts stand for calendar-day counts (never fewer), the case's own
    7-day counts for the debtor's, any opt-out for every channel, any dispute for an open one.
    """
    channel, _, kind = name.partition("_")
    if (
        kind
        in ("attempts_today", "connected_today", "unanswered_today", "attempts_week", "connected_week", "attempts_ever")
        and channel in FEATURE_CHANNELS
    ):
        window = {"today": "1d", "week": "7d", "ever": "30d"}[kind.split("_")[1]]
        attempts = f"{channel}_attempts_{window}"
        reached = f"{channel}_reached_{window}" if channel != "repair" else None
        if kind.startswith("attempts"):
            return lambda f: f[attempts]
        if kind.startswith("connected"):
            return (lambda f: f[reached]) if reached else (lambda f: np.zeros(f.n))
        return (lambda f: np.maximum(f[attempts] - f[reached], 0.0)) if reached else (lambda f: f[attempts])
    if name.startswith("opted_out_") and name != "opted_out_total":  # the total is a feature: never its own fallback
        return lambda f: (f["opted_out_total"] > 0).astype(float)
    if name == "dispute_open":
        return lambda f: (f["disputed_total"] > 0).astype(float)
    if name == "failed_streak":
        # Every phone attempt failed and nobody was ever reached: all of them form the streak;
        # otherwise only the last one is known to have failed.
        return lambda f: np.where(
            (f["phone_through_total"] == 0) & (f["reached_total"] == 0), f["phone_failed_total"], f["last_phone_failed"]
        )
    if name == "certificates_issued":
        return lambda f: (f["stage_code"] == STAGE_CODES["written_off"]).astype(float)
    return None


def _ages_or_zero(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values)


DERIVED: dict[str, tuple[Derivation, str]] = {
    "line_works": (
        lambda f: (
            (f["has_phone"] > 0)
            & (f["last_phone_failed"] == 0)
            & (f["last_status_vacant"] == 0)
            & (f["last_status_suspended"] == 0)
        ).astype(float),
        "1 when a number is on file and neither the last check nor the last attempt found it dead",
    ),
    "number_invalid": (lambda f: 1.0 - f["line_works"], "1 when the debtor's number is missing or dead"),
    "days_without_callback": (
        lambda f: _ages_or_zero(
            np.where(f["ever_reached"] > 0, f["days_since_last_reached"], f["days_since_first_event"])
        ),
        "days since the debtor last answered (since work began if never): 0 if unknown",
    ),
    "dead_debt": (
        lambda f: (f["terminated_no_assets"] > 0).astype(float),
        "1 when enforcement elsewhere ended for want of assets (终本): the 预查废 signal",
    ),
    "finished": (
        lambda f: (f["stage_code"] >= STAGE_CODES["paid"]).astype(float),
        "1 when the case is paid in full, written off or closed",
    ),
    "paid_in_full": (lambda f: (f["stage_code"] == STAGE_CODES["paid"]).astype(float), "1 when paid in full"),
    "agreement_signed": (
        lambda f: (f["stage_code"] == STAGE_CODES["agreement"]).astype(float),
        "1 when an agreement is signed and the case is not paid off",
    ),
    "certificate_issued": (
        lambda f: (f["certificates_issued"] > 0).astype(float),
        "1 when a pre-check write-off certificate (预查废) was issued",
    ),
    "mediation_attempts": (lambda f: f["mediator_attempts_ever"], "mediator actions taken so far"),
    "local_minute": (
        lambda f: np.floor(np.mod(f["decision_ts"] + SHANGHAI_OFFSET_S, 86_400) / 60),
        "minute of the day at decision_ts in Asia/Shanghai (0-1439)",
    ),
}


class FactError(KeyError):
    """A fact the engine needs is neither given nor derivable (for example, no scores)."""


class Facts:
    """One value per case for every fact, as numpy arrays; derived facts computed on first use."""

    def __init__(self, columns: Mapping[str, Any], n: int) -> None:
        self._raw = dict(columns)
        self.n = n
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Facts:
        """Facts of every row of ``frame`` (columns named as the facts; timestamps become epoch s)."""
        columns: dict[str, Any] = {}
        for name in frame.columns:
            series = frame[name]
            if pd.api.types.is_datetime64_any_dtype(series):
                columns[name] = _epoch_seconds(series)
            elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
                columns[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                columns[name] = series.to_numpy()
        return cls(columns, len(frame))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Facts:
        """Facts of one case from a mapping of fact name to value (None where unknown; a
        datetime becomes epoch seconds)."""
        return cls({name: [_plain(value)] for name, value in values.items()}, 1)

    def has(self, name: str) -> bool:
        """Whether ``name`` was given (not derived or filled)."""
        return name in self._raw or name in self._cache

    def set(self, name: str, values: np.ndarray) -> None:
        """Give the fact ``name`` these values (the engine adds claims and limitation dates)."""
        self._cache[name] = np.asarray(values)

    def text(self, name: str) -> np.ndarray:
        """A text fact as an object array ('' where missing)."""
        if name not in self._cache:
            raw = self._raw.get(name)
            if raw is None:
                self._cache[name] = np.full(self.n, "", dtype=object)
            else:
                values = np.asarray(raw, dtype=object)
                self._cache[name] = np.where(pd.isna(values), "", values).astype(object)
        return self._cache[name]

    def __getitem__(self, name: str) -> np.ndarray:
        """A numeric fact as float64 (flags 0/1), given, derived or filled."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        if name in TEXT_FACT_SET:
            return self.text(name)
        if name in self._raw:
            values = _floats(self._raw[name], name)
        elif name == "stage_code" and "stage" in self._raw:
            values = np.array([STAGE_CODES.get(str(s), 0) for s in self.text("stage")], dtype=np.float64)
        elif name in DERIVED:
            values = np.asarray(DERIVED[name][0](self), dtype=np.float64)
        elif (fallback := _fallback(name)) is not None:
            values = np.asarray(fallback(self), dtype=np.float64)
        elif name in REQUIRED:
            raise FactError(f"the cases lack '{name}', which the policy engine needs")
        else:
            values = np.full(self.n, np.nan if name in _MISSING else 0.0)
        if name in _ZERO or name.startswith(("count_", "opted_out_")):
            values = np.where(np.isnan(values), 0.0, values)
        self._cache[name] = values
        return values

    def subset(self, rows: np.ndarray) -> Facts:
        """The facts of the rows ``rows`` (an index array)."""
        columns = {
            name: np.asarray(raw, dtype=object if _is_text(raw) else None)[rows] for name, raw in self._raw.items()
        }
        out = Facts(columns, len(rows))
        out._cache = {name: values[rows] for name, values in self._cache.items()}
        return out


_FLOAT_MAX = float(np.finfo(np.float64).max)


def nan_to_num(values: Any, nan: float = 0.0) -> np.ndarray:
    """``np.nan_to_num(values, nan=nan)`` for float arrays (NaN to ``nan``, infinities to the
    largest finite floats), in four ufunc calls: numpy's own costs about ten times as much on the
    one-case path, where the engine calls it a dozen times per answer."""
    x = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(x), nan, np.minimum(np.maximum(x, -_FLOAT_MAX), _FLOAT_MAX))


def _plain(value: Any) -> Any:
    """Datetimes as epoch seconds, a missing time as None, anything else as it is."""
    if value is pd.NaT:
        return None
    return value.timestamp() if isinstance(value, dt.datetime) else value


def _is_text(raw: Any) -> bool:
    array = np.asarray(raw)
    return array.dtype == object or array.dtype.kind in "US"


def _floats(raw: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        converted = pd.to_numeric(pd.Series(np.asarray(raw, dtype=object)), errors="coerce")
        return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _epoch_seconds(series: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(series, utc=True)
    seconds = stamps.dt.as_unit("ns").astype("int64").to_numpy() / 1e9
    return np.where(stamps.isna().to_numpy(), np.nan, seconds)


def known_facts(channels: Sequence[str], actions: Sequence[str]) -> tuple[str, ...]:
    """Every fact name a policy condition may use, for a catalogue's channels and actions."""
    names = (
        *TEXT_FACTS,
        *ZERO_FILLED,
        *KEPT_MISSING,
        *DERIVED,
        *history_fact_names(channels, actions),
        "recoverable_claim",
        "days_to_limitation",
    )
    return tuple(dict.fromkeys(names))
