"""``concord profile CASE_ID``: the debtor profile (画像) as a mediator reads it.

Four sections: reachability evidence (phone checks, repairs, attempts and answers by channel),
repayment capacity, litigation (with the 预查废 pre-check write-off signal when enforcement was
terminated for want of assets), and the last ten events. Features come from the online store
(service ``settlement_v1``, which spans every debtor and case view), the case facts and the
event history from the ledger.

Personal data: only masked identifiers (``350102**********1X``, ``138****5678``) are shown;
the debtor's name, raw ID and phone numbers never are.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from rich.console import Console, Group
from rich.table import Table
from sqlalchemy import Engine, text

from concord.settings import Settings
from features.offline.schemas import CHANNELS
from features.repo import SETTLEMENT_V1

SHANGHAI = ZoneInfo("Asia/Shanghai")
HISTORY_EVENTS = 10
CONTACT_CHECKS_SHOWN = 5


class ProfileError(LookupError):
    """The case cannot be identified (unknown, or ambiguous without ``--creditor``)."""


@dataclass
class DebtorProfile:
    """Everything the profile shows; identifiers are masked forms only."""

    case: dict[str, Any]
    features: dict[str, Any]
    contact_checks: list[dict[str, Any]]
    events: list[dict[str, Any]]
    other_cases: int
    online_as_of: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pre_check_write_off(self) -> bool:
        """预查废 signal: the debtor has enforcement cases terminated for want of assets (终本)."""
        value = self.features.get("terminated_no_assets")
        return value is not None and not _missing(value) and value > 0


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _local(value: Any) -> str:
    """A naive-UTC timestamp from the ledger (text or datetime) in Asia/Shanghai, to the minute."""
    if _missing(value):
        return "-"
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.tz_convert(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _epoch_local(value: Any) -> str:
    if _missing(value):
        return "-"
    return dt.datetime.fromtimestamp(float(value), SHANGHAI).strftime("%Y-%m-%d %H:%M")


def find_case(engine: Engine, case_id: str, creditor: str | None = None) -> dict[str, Any]:
    """The case row (masked identifiers, no name) by the creditor's ``case_id``.

    Raises:
        ProfileError: no such case, or several creditors use that case_id and none was named.
    """
    sql = """
        SELECT c.id AS case_pk, c.case_id, cr.name AS creditor, cr.kind AS creditor_kind, c.debtor_key,
               d.id_masked, c.phone_masked, c.product, c.debtor_type, c.province,
               CAST(c.principal AS FLOAT) AS principal, CAST(c.interest AS FLOAT) AS interest,
               CAST(c.penalty AS FLOAT) AS penalty, CAST(c.fees AS FLOAT) AS fees,
               CAST(c.annual_rate AS FLOAT) AS annual_rate, c.loan_date, c.overdue_since, c.last_payment_date,
               c.court, c.in_scope, c.flags, c.stage
        FROM cases c JOIN creditors cr ON cr.id = c.creditor_id
        LEFT JOIN debtors d ON d.debtor_key = c.debtor_key
        WHERE c.case_id = :case_id
    """
    params: dict[str, Any] = {"case_id": case_id}
    if creditor:
        sql += " AND cr.name = :creditor"
        params["creditor"] = creditor
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(text(sql), params)]
    if not rows:
        where = f" of creditor '{creditor}'" if creditor else ""
        raise ProfileError(f"No case '{case_id}'{where} in the ledger.")
    if len(rows) > 1:
        names = ", ".join(sorted(str(r["creditor"]) for r in rows))
        raise ProfileError(f"Case '{case_id}' exists at several creditors ({names}); name one with --creditor.")
    return rows[0]


def _ledger_history(engine: Engine, case: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    with engine.connect() as conn:
        events = [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "SELECT at, action, actor, outcome, CAST(amount AS FLOAT) AS amount FROM events "
                    "WHERE case_pk = :pk ORDER BY at DESC, id DESC"
                ),
                {"pk": case["case_pk"]},
            ).fetchmany(HISTORY_EVENTS)
        ]
        checks: list[dict[str, Any]] = []
        others = 0
        if case["debtor_key"]:
            checks = [
                dict(r._mapping)
                for r in conn.execute(
                    text(
                        "SELECT checked_at, phone_status, repaired_numbers, repair_source FROM contact_checks "
                        "WHERE debtor_key = :key ORDER BY checked_at DESC"
                    ),
                    {"key": case["debtor_key"]},
                ).fetchmany(CONTACT_CHECKS_SHOWN)
            ]
            others = int(
                conn.execute(
                    text("SELECT COUNT(*) FROM cases WHERE debtor_key = :key AND id <> :pk"),
                    {"key": case["debtor_key"], "pk": case["case_pk"]},
                ).scalar_one()
            )
    return events, checks, others


def debtor_profile(
    settings: Settings,
    case_id: str,
    creditor: str | None = None,
    *,
    engine: Engine | None = None,
    store: Any = None,
    project: str | None = None,
) -> DebtorProfile:
    """Assemble the profile of the case's debtor from the ledger and the online store.

    Raises:
        ProfileError: the case cannot be identified.
    """
    from concord.db import make_engine
    from features.offline.build import built_as_of
    from features.store.config import feature_store
    from features.store.retrieval import online_features

    own = engine is None
    engine = engine or make_engine(settings)
    try:
        case = find_case(engine, case_id, creditor)
        events, checks, others = _ledger_history(engine, case)
    finally:
        if own:
            engine.dispose()
    notes: list[str] = []
    features: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"project": project} if project else {}
    try:
        fs = store or feature_store(settings, **kwargs)
        row = {"case_pk": case["case_pk"], "debtor_key": case["debtor_key"] or ""}
        online = online_features(settings, [row], SETTLEMENT_V1, store=fs, **kwargs)
        features = {name: values[0] for name, values in online.items()}
    except Exception as error:  # the profile still shows the ledger's facts without features
        notes.append(
            f"online features unavailable ({type(error).__name__}); run `concord features build`, "
            "`apply` and `materialize`."
        )
    as_of = built_as_of(settings)
    if features and _missing(features.get("attempts_total")):
        notes.append("this case has no online features yet (not materialised).")
    for name in ("debtor_key",):
        case.pop(name, None)
    return DebtorProfile(
        case=case,
        features=features,
        contact_checks=checks,
        events=events,
        other_cases=others,
        online_as_of=as_of.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if as_of else None,
        notes=notes,
    )


def _fmt(value: Any, unit: str = "", places: int = 0) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        text_value = f"{value:,.{places}f}"
    else:
        text_value = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text_value}{unit}"


def _yes(value: Any) -> str:
    return "-" if _missing(value) else ("yes" if value else "no")


def render(profile: DebtorProfile) -> Group:
    """The profile as rich tables, in the order a mediator reads it."""
    c, f = profile.case, profile.features
    head = Table(title=f"Case {c['case_id']} · {c['creditor']}", show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    total = sum(float(c[k] or 0) for k in ("principal", "interest", "penalty", "fees"))
    for label, value in (
        ("ID (masked) 身份证", c.get("id_masked") or "-"),
        ("phone (masked) 手机", c.get("phone_masked") or "-"),
        ("product 业务类型", c["product"]),
        ("creditor type", c["creditor_kind"]),
        ("province 省份", c.get("province") or "-"),
        (
            "claim 债权",
            f"{total:,.2f} CNY = principal {c['principal']:,.2f} + interest {c['interest']:,.2f}"
            f" + penalty {c['penalty']:,.2f} + fees {c['fees']:,.2f}",
        ),
        ("overdue since 逾期日期", f"{c['overdue_since']} ({_fmt(f.get('days_past_due'), ' days', 0)} past due)"),
        ("in scope", "yes" if c["in_scope"] else f"no ({c.get('flags') or 'out_of_scope'})"),
        ("stage (from events)", f"{f.get('stage') or '-'}"),
        ("other cases of this debtor", str(profile.other_cases)),
    ):
        head.add_row(label, value)

    reach = Table(title="Reachability 可联", title_justify="left")
    for column in ("channel", "attempts 1d / 7d / 30d", "reached (repair: found) 1d / 7d / 30d"):
        reach.add_column(column)
    for channel in CHANNELS:
        success = "found" if channel == "repair" else "reached"
        reach.add_row(
            channel,
            " / ".join(_fmt(f.get(f"{channel}_attempts_{w}d")) for w in (1, 7, 30)),
            " / ".join(_fmt(f.get(f"{channel}_{success}_{w}d")) for w in (1, 7, 30)),
        )
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    last_status = next((s for s in ("active", "suspended", "vacant", "unknown") if f.get(f"last_status_{s}") == 1), "-")
    for label, value in (
        ("attempts / reached so far", f"{_fmt(f.get('attempts_total'))} / {_fmt(f.get('reached_total'))}"),
        (
            "last reached",
            f"{_epoch_local(f.get('last_reached_ts'))} ({_fmt(f.get('days_since_last_reached'), ' days ago', 0)})",
        ),
        ("last attempt", _epoch_local(f.get("last_attempt_ts"))),
        (
            "phone checks 号码检测",
            f"{_fmt(f.get('checks_total'))} (active {_fmt(f.get('checks_active'))}, "
            f"suspended {_fmt(f.get('checks_suspended'))}, vacant {_fmt(f.get('checks_vacant'))})",
        ),
        ("last phone status", last_status),
        (
            "repairs 失联修复",
            f"{_fmt(f.get('repair_successes'))} successful, {_fmt(f.get('repaired_numbers_total'))} numbers found",
        ),
        (
            "promises / disputes / opt-outs",
            f"{_fmt(f.get('promises_total'))} / {_fmt(f.get('disputed_total'))} / {_fmt(f.get('opted_out_total'))}",
        ),
    ):
        summary.add_row(label, value)
    checks = Table(title="Latest phone checks", title_justify="left")
    for column in ("checked (Shanghai)", "status", "repaired numbers", "source"):
        checks.add_column(column)
    for row in profile.contact_checks:
        checks.add_row(
            _local(row["checked_at"]),
            row["phone_status"],
            str(row["repaired_numbers"]),
            row.get("repair_source") or "-",
        )

    capacity = Table(title="Repayment capacity 还款能力", show_header=False, title_justify="left")
    capacity.add_column(style="bold")
    capacity.add_column()
    employment = next(
        (e for e in ("employed", "self_employed", "unemployed", "retired", "unknown") if f.get(f"employment_{e}") == 1),
        "-",
    )
    for label, value in (
        ("snapshot of", _epoch_local(f.get("capacity_as_of_ts"))[:10]),
        ("monthly income 月收入", _fmt(f.get("monthly_income"), " CNY", 2)),
        ("income stability", _fmt(f.get("income_stability"), "", 2)),
        ("employment", employment),
        ("social insurance months", _fmt(f.get("social_insurance_months"), "", 0)),
        ("property / vehicle", f"{_yes(f.get('has_property'))} / {_yes(f.get('has_vehicle'))}"),
        ("other debt 其他负债", _fmt(f.get("other_debt"), " CNY", 2)),
        ("monthly spend 月消费", _fmt(f.get("monthly_spend"), " CNY", 2)),
        ("other debt / income", _fmt(f.get("debt_to_income"), " months of income", 1)),
    ):
        capacity.add_row(label, value)

    lit = Table(title="Litigation 涉诉", show_header=False, title_justify="left")
    lit.add_column(style="bold")
    lit.add_column()
    for label, value in (
        ("snapshot of", _epoch_local(f.get("litigation_as_of_ts"))[:10]),
        ("defendant cases 被诉", _fmt(f.get("defendant_cases"))),
        ("enforcement cases 被执行", _fmt(f.get("enforcement_cases"))),
        ("terminated, no assets 终本", _fmt(f.get("terminated_no_assets"))),
        ("dishonest list 失信", _yes(f.get("dishonest_listed"))),
        ("consumption restricted 限高", _yes(f.get("consumption_restricted"))),
    ):
        lit.add_row(label, value)
    if profile.pre_check_write_off:
        lit.add_row(
            "[bold red]预查废 signal[/]",
            "[red]enforcement terminated for want of assets: consider a pre-check write-off "
            "certificate instead of litigation[/]",
        )

    history = Table(title=f"Last {HISTORY_EVENTS} events 处置记录", title_justify="left")
    for column in ("at (Shanghai)", "action", "actor", "outcome", "amount CNY"):
        history.add_column(column)
    for event in profile.events:
        history.add_row(
            _local(event["at"]), event["action"], event["actor"], event["outcome"], _fmt(event.get("amount"), "", 2)
        )

    parts: list[Any] = [head, reach, summary, checks, capacity, lit, history]
    footer = (
        f"features as of {profile.online_as_of} (Asia/Shanghai)" if profile.online_as_of else "features never built"
    )
    parts.append(footer)
    parts.extend(f"note: {note}" for note in profile.notes)
    return Group(*parts)


def print_profile(profile: DebtorProfile, console: Console | None = None) -> None:
    """Print the profile to the console (stdout by default)."""
    (console or Console()).print(render(profile))
