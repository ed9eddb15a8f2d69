"""The offline tables' schemas and vocabularies: columns and Arrow types of each table, the
channels, creditor and product types, phone statuses, employment values and case stages.

Also the conversions into those column types: numpy arrays into an Arrow table of exactly a
table's schema, small-vocabulary codes into string columns, ledger values into floats and flags.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

TIMESTAMP_FIELD = "event_timestamp"
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
WINDOWS_DAYS = (1, 7, 30)  # the "in the last N days" windows of case_state

TABLE_NAMES = ("contact_repair", "repayment_capacity", "litigation", "case_state", "mediator_performance")

# Contact channels: which actions count as an attempt on which channel.
CHANNELS: dict[str, tuple[str, ...]] = {
    "sms": ("sms_warning", "flash_sms", "similar_case_push"),
    "voice": ("voice_call",),
    "mediator": ("mediator_call", "video_mediation", "online_negotiation", "installment_offer"),
    "legal": (
        "lawyer_letter",
        "asset_preservation",
        "payment_order",
        "file_lawsuit",
        "pre_check_write_off",
        "judicial_confirmation",
        "notarized_agreement",
        "enforcement",
    ),
    "repair": ("contact_repair",),
}
CREDITOR_TYPES = ("bank", "consumer_finance", "other")
PRODUCT_TYPES = ("credit_card", "personal_loan", "consumer_loan")
PHONE_STATUS_VALUES = ("active", "suspended", "vacant", "unknown")
EMPLOYMENT_VALUES = ("employed", "self_employed", "unemployed", "retired", "unknown")

# The furthest stage a case has reached, from its known events (a cumulative maximum).
STAGES = ("new", "warning", "mediation", "agreement", "litigation", "paid", "written_off", "closed")

_I32, _I64, _F64, _STR = pa.int32(), pa.int64(), pa.float64(), pa.string()


def _schema(entity: tuple[str, pa.DataType], features: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema([entity, (TIMESTAMP_FIELD, TIMESTAMP_TYPE), *features])


def contact_repair_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``contact_repair`` with their Arrow types."""
    return [
        ("checks_total", _I32),
        ("checks_active", _I32),
        ("checks_suspended", _I32),
        ("checks_vacant", _I32),
        ("checks_unknown", _I32),
        ("repaired_numbers_total", _I32),
        ("repair_successes", _I32),
        *[(f"last_status_{s}", _I32) for s in PHONE_STATUS_VALUES],
        ("last_check_ts", _F64),
        ("last_repair_ts", _F64),
    ]


def repayment_capacity_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``repayment_capacity``."""
    return [
        ("monthly_income", _F64),
        ("income_stability", _F64),
        *[(f"employment_{e}", _I32) for e in EMPLOYMENT_VALUES],
        ("social_insurance_months", _F64),
        ("has_property", _I32),
        ("has_vehicle", _I32),
        ("other_debt", _F64),
        ("monthly_spend", _F64),
        ("debt_to_income", _F64),
        ("spend_to_income", _F64),
        ("capacity_as_of_ts", _F64),
    ]


def litigation_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``litigation``."""
    return [
        ("defendant_cases", _I32),
        ("enforcement_cases", _I32),
        ("terminated_no_assets", _I32),
        ("dishonest_listed", _I32),
        ("consumption_restricted", _I32),
        ("litigation_as_of_ts", _F64),
    ]


def success_label(channel: str) -> str:
    """What a successful attempt is called per channel: a repair *finds* a working number
    (outcome delivered), every other channel *reaches* the debtor (REACHED_OUTCOMES)."""
    return "found" if channel == "repair" else "reached"


def case_state_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``case_state``."""
    windowed = [
        (f"{ch}_{kind}_{w}d", _I32) for ch in CHANNELS for kind in ("attempts", success_label(ch)) for w in WINDOWS_DAYS
    ]
    return [
        ("creditor_type", _STR),
        *[(f"creditor_{c}", _I32) for c in CREDITOR_TYPES],
        *[(f"product_{p}", _I32) for p in PRODUCT_TYPES],
        ("debtor_company", _I32),
        ("principal", _F64),
        ("interest", _F64),
        ("penalty", _F64),
        ("fees", _F64),
        ("total_claim", _F64),
        ("annual_rate", _F64),
        ("in_scope", _I32),
        ("has_phone", _I32),
        ("overdue_since_ts", _I64),
        ("has_last_payment", _I32),
        ("last_payment_gap_days", _F64),
        ("stage", _STR),
        ("stage_code", _I32),
        *windowed,
        ("reached_7d", _I32),
        ("reached_30d", _I32),
        ("attempts_total", _I32),
        ("reached_total", _I32),
        ("ever_reached", _I32),
        ("promises_total", _I32),
        ("settled_total", _I32),
        ("disputed_total", _I32),
        ("opted_out_total", _I32),
        ("paid_amount_total", _F64),
        ("last_reached_ts", _F64),
        ("last_attempt_ts", _F64),
        ("refused_total", _I32),
        ("promise_open", _I32),
        ("first_event_ts", _F64),
        ("last_settled_ts", _F64),
        ("phone_failed_total", _I32),
        ("phone_through_total", _I32),
        ("last_phone_failed", _I32),
    ]


def mediator_performance_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``mediator_performance``."""
    return [
        ("mediator_cases_total", _I32),
        ("mediator_cases_30d", _I32),
        ("mediator_reached_cases_total", _I32),
        ("mediator_reached_cases_30d", _I32),
        ("mediator_settled_cases_total", _I32),
        ("mediator_settled_cases_30d", _I32),
        ("mediator_actions_30d", _I32),
        ("mediator_settle_rate", _F64),
        ("mediator_settle_rate_30d", _F64),
    ]


SCHEMAS: dict[str, Callable[[], pa.Schema]] = {
    "contact_repair": lambda: _schema(("debtor_key", _STR), contact_repair_columns()),
    "repayment_capacity": lambda: _schema(("debtor_key", _STR), repayment_capacity_columns()),
    "litigation": lambda: _schema(("debtor_key", _STR), litigation_columns()),
    "case_state": lambda: _schema(("case_pk", _I64), case_state_columns()),
    "mediator_performance": lambda: _schema(("mediator_id", _STR), mediator_performance_columns()),
}


# --------------------------------------------------------------------------- Arrow tables of a schema


def to_arrow(columns: dict[str, object], schema: pa.Schema) -> pa.Table:
    """An Arrow table of exactly ``schema`` from numpy arrays (or ready Arrow arrays).

    ``event_timestamp`` is given as epoch seconds; NaN in float columns becomes null.
    """
    arrays = []
    for field_ in schema:
        values = columns[field_.name]
        if isinstance(values, pa.Array):
            array = values if values.type == field_.type else values.cast(field_.type)
        elif field_.name == TIMESTAMP_FIELD:
            array = pa.array(np.asarray(values).astype(np.int64) * 1_000_000, type=field_.type)
        elif pa.types.is_string(field_.type):
            array = pa.array(np.asarray(values, dtype=object), type=field_.type, from_pandas=True)
        else:
            numeric = np.asarray(values).astype(field_.type.to_pandas_dtype(), copy=False)
            array = pa.array(numeric, type=field_.type, from_pandas=True)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema)


def stamp_table(frame: pd.DataFrame, times: np.ndarray, schema: pa.Schema) -> pa.Table:
    """Arrow table of ``schema`` from a DataFrame of the entity and feature columns plus the
    availability times (epoch seconds)."""
    columns: dict[str, object] = {name: frame[name].to_numpy() for name in frame.columns}
    columns[TIMESTAMP_FIELD] = times
    return to_arrow(columns, schema)


def vocabulary_column(values: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """String column from small-vocabulary codes, built in Arrow (no Python strings per row)."""
    return pa.array(values, type=pa.string()).take(pa.array(codes.astype(np.int32)))


class Vocabulary:
    """Strings of a small vocabulary as integer codes, so that membership tests are table lookups
    (``np.isin`` on object arrays costs a hash per row and value)."""

    def __init__(self, values: np.ndarray) -> None:
        self.codes, self.labels = pd.factorize(values)

    def isin(self, members: tuple[str, ...] | str) -> np.ndarray:
        wanted = {members} if isinstance(members, str) else set(members)
        table = np.array([label in wanted for label in self.labels] + [False], dtype=bool)
        return table[self.codes]  # code -1 (missing) reads the trailing False


# --------------------------------------------------------------------------- ledger values as column values


def as_float(series: pd.Series) -> np.ndarray:
    """A ledger column as float64, NaN where missing or not a number."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def as_flag(series: pd.Series) -> np.ndarray:
    """A ledger boolean as an int32 0/1 flag (missing = 0)."""
    return series.fillna(False).astype(bool).to_numpy().astype(np.int32)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` where the denominator is positive, NaN elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)
