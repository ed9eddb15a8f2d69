"""The court list (``policies/court.yaml``): for one court, the cases the policy proposes for filing,
payment order or pre-check write-off, each with its risk flags and its claim computed to a date.

A case is on the list when the engine recommends one of the court routes for it (``routes``: the
action and its sheet's name). Risk flags are conditions over case facts (terminated enforcement
elsewhere, dishonest-debtor list, many concurrent suits, possible fraud referral, limitation
period near, low enforcement odds), each with an id, a Chinese label and a reason. The sheets use
Chinese headers; the debtor's name and masked ID number are on the list because the court needs
them, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from policies.catalogue import Catalogue
from policies.claims import ClaimRules, Claims, computation, local_day
from policies.conditions import Condition, parse_condition
from policies.facts import Facts
from policies.schema import Node


@dataclass(frozen=True)
class RiskFlag:
    id: str
    zh: str
    reason: str
    when: Condition


@dataclass(frozen=True)
class CourtRules:
    version: str
    routes: dict[str, str]  # action -> sheet name, in sheet order
    flags: tuple[RiskFlag, ...]


def parse_court(root: Node, catalogue: Catalogue, known: tuple[str, ...]) -> CourtRules:
    top = root.mapping(allowed=("version", "routes", "flags"), required=("version", "routes", "flags"))
    routes = {}
    for action, sheet in top["routes"].items():
        if action not in catalogue.names:
            raise sheet.fail(f"'{action}' is not in the action catalogue")
        routes[action] = sheet.text()
    flags = []
    for item in top["flags"].sequence():
        keys = item.mapping(allowed=("id", "zh", "reason", "when"), required=("id", "zh", "reason", "when"))
        flags.append(
            RiskFlag(
                id=keys["id"].text(),
                zh=keys["zh"].text(),
                reason=keys["reason"].text(),
                when=parse_condition(keys["when"], known),
            )
        )
    return CourtRules(version=str(top["version"].value), routes=routes, flags=tuple(flags))


def risk_flags(facts: Facts, rules: CourtRules) -> np.ndarray:
    """(cases x flags) True where the flag is raised."""
    if not rules.flags:
        return np.zeros((facts.n, 0), dtype=bool)
    return np.column_stack([flag.when.evaluate(facts) for flag in rules.flags])


def flag_text(raised: np.ndarray, rules: CourtRules, chinese: bool = False) -> np.ndarray:
    """Per case, the raised flags joined by '; ' (ids, or Chinese labels), '' when none."""
    labels = [flag.zh if chinese else flag.id for flag in rules.flags]
    out = np.full(raised.shape[0], "", dtype=object)
    for j, label in enumerate(labels):
        hit = raised[:, j]
        out[hit] = np.where(out[hit] == "", label, out[hit] + "; " + label)
    return out


HEADERS = {
    "case_id": "案件编号",
    "creditor": "债权机构",
    "debtor_name": "债务人姓名",
    "id_masked": "身份证号（脱敏）",
    "product": "业务类型",
    "overdue_since": "逾期日期",
    "claim_date": "计算日期",
    "principal": "本金",
    "interest": "利息",
    "penalty": "罚息",
    "fees": "费用",
    "paid": "已还金额",
    "claim": "诉请金额",
    "computation": "计算过程",
    "limitation_ends": "诉讼时效届满日",
    "risk_flags": "风险提示",
    "route": "建议处置",
    "expected_value": "预期价值（元）",
    "stage": "流程阶段",
    "workflow": "流程",
}


def court_sheets(
    cases: pd.DataFrame,
    facts: Facts,
    claims: Claims,
    claim_rules: ClaimRules,
    rules: CourtRules,
    chosen: np.ndarray,
    expected_value: np.ndarray,
    stage: np.ndarray,
    workflow: np.ndarray,
    limitation_day: np.ndarray,
) -> dict[str, pd.DataFrame]:
    """One frame per route (sheet name -> rows with Chinese headers) for the cases in ``cases``
    (which carries ``debtor_name`` and ``id_masked``); ``chosen`` is each case's recommended action."""
    raised = risk_flags(facts, rules)
    flags = flag_text(raised, rules, chinese=True)
    sheets = {}
    for action, sheet in rules.routes.items():
        rows = np.flatnonzero(chosen == action)
        frame = pd.DataFrame(
            {
                "case_id": cases["case_id"].to_numpy()[rows],
                "creditor": cases["creditor"].to_numpy()[rows],
                "debtor_name": cases["debtor_name"].to_numpy()[rows],
                "id_masked": cases["id_masked"].to_numpy()[rows],
                "product": cases["product"].to_numpy()[rows],
                "overdue_since": [_day(d) for d in local_day(facts["overdue_since_ts"])[rows]],
                "claim_date": [_day(d) for d in claims.claim_day[rows]],
                "principal": claims.principal[rows],
                "interest": claims.interest[rows],
                "penalty": claims.penalty[rows],
                "fees": claims.fees[rows],
                "paid": claims.paid[rows],
                "claim": claims.outstanding[rows],
                "computation": [computation(claims, int(i), claim_rules) for i in rows],
                "limitation_ends": [_day(d) for d in limitation_day[rows]],
                "risk_flags": flags[rows],
                "route": action,
                "expected_value": np.round(expected_value[rows], 2),
                "stage": stage[rows],
                "workflow": workflow[rows],
            }
        )
        sheets[sheet] = frame.sort_values("case_id", kind="stable").rename(columns=HEADERS).reset_index(drop=True)
    return sheets


def _day(day: float) -> str:
    return "" if np.isnan(day) else str(np.datetime64(int(day), "D"))
