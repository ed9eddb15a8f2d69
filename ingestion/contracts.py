"""The six contract tables of CONTRACTS.md as data: columns, Chinese aliases, types, keys;
and :class:`ContractError`, raised for a file that cannot be imported as one of them.

The importer, the simulator's tests and the documentation read these specs; a column rule
lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from concord.vocabulary import ACTIONS, OUTCOMES

Kind = Literal[
    "string",
    "amount",
    "date",
    "timestamp",
    "enum",
    "int",
    "float",
    "bool",
    "id_number",
    "phone",
    "list",
    "rate",
]

PRODUCTS = {
    "credit_card": "credit_card",
    "信用卡": "credit_card",
    "personal_loan": "personal_loan",
    "个人借款": "personal_loan",
    "个人贷款": "personal_loan",
    "consumer_loan": "consumer_loan",
    "消费贷": "consumer_loan",
    "消费贷款": "consumer_loan",
}
DEBTOR_TYPES = {
    "person": "person",
    "自然人": "person",
    "个人": "person",
    "company": "company",
    "企业": "company",
    "公司": "company",
}
PHONE_STATUSES = {
    "active": "active",
    "正常": "active",
    "suspended": "suspended",
    "停机": "suspended",
    "vacant": "vacant",
    "空号": "vacant",
    "unknown": "unknown",
    "未知": "unknown",
}
EMPLOYMENT = {
    "employed": "employed",
    "在职": "employed",
    "受雇": "employed",
    "self_employed": "self_employed",
    "自雇": "self_employed",
    "个体": "self_employed",
    "unemployed": "unemployed",
    "失业": "unemployed",
    "无业": "unemployed",
    "retired": "retired",
    "退休": "retired",
    "unknown": "unknown",
    "未知": "unknown",
}


class ContractError(Exception):
    """A file that cannot be imported as a whole; the message is one sentence for a user."""


@dataclass(frozen=True)
class Column:
    """One contract column: English name, Chinese alias, kind and rules."""

    name: str
    alias: str
    kind: Kind
    required: bool = False
    default: str | None = None
    choices: dict[str, str] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    personal: bool = False  # never echoed in messages


@dataclass(frozen=True)
class Table:
    """A contract table: its columns and the key that identifies a row."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""
    by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {column.name: column for column in self.columns})

    def label(self, name: str) -> str:
        """``principal (本金)``: how a column is named to a user."""
        return f"{name} ({self.by_name[name].alias})"


def _enum(values: tuple[str, ...]) -> dict[str, str]:
    return {value: value for value in values}


CASES = Table(
    "cases",
    (
        Column("case_id", "案件编号", "string", required=True),
        Column("creditor", "债权机构", "string", required=True),
        Column("product", "业务类型", "enum", required=True, choices=PRODUCTS),
        Column("debtor_type", "主体类型", "enum", default="person", choices=DEBTOR_TYPES),
        Column("debtor_name", "债务人姓名", "string", required=True, personal=True),
        Column("id_number", "身份证号", "id_number", personal=True),
        Column("phone", "手机号", "phone", personal=True),
        Column("province", "省份", "string"),
        Column("principal", "本金", "amount", required=True),
        Column("interest", "利息", "amount", default="0.00"),
        Column("penalty", "罚息", "amount", default="0.00"),
        Column("fees", "费用", "amount", default="0.00"),
        Column("annual_rate", "年利率", "rate"),
        Column("loan_date", "放款日期", "date", required=True),
        Column("overdue_since", "逾期日期", "date", required=True),
        Column("last_payment_date", "最后还款日期", "date"),
        Column("court", "管辖法院", "string"),
    ),
    key=("creditor", "case_id"),
    description="case pool, sent by a creditor",
)

CONTACT_CHECKS = Table(
    "contact_checks",
    (
        Column("id_number", "身份证号", "id_number", required=True, personal=True),
        Column("checked_at", "查询时间", "timestamp", required=True),
        Column("phone_status", "号码状态", "enum", required=True, choices=PHONE_STATUSES),
        Column("repaired_numbers", "修复号码数", "int", default="0"),
        Column("repair_source", "修复来源", "string"),
    ),
    key=("id_number", "checked_at"),
    description="contact-repair records, from a telecom or repair vendor",
)

EVENTS = Table(
    "events",
    (
        Column("case_id", "案件编号", "string", required=True),
        Column("creditor", "债权机构", "string", required=True),
        Column("at", "时间", "timestamp", required=True),
        Column("action", "处置动作", "enum", required=True, choices=_enum(ACTIONS)),
        Column("actor", "处置人", "string", required=True),
        Column("outcome", "结果", "enum", required=True, choices=_enum(OUTCOMES)),
        Column("amount", "金额", "amount"),
        Column("propensity", "决策概率", "float", low=0.0, high=1.0, low_open=True),
    ),
    key=("creditor", "case_id", "at", "action", "actor"),
    description="contact attempts and case events, from the mediation platform",
)

CAPACITY = Table(
    "capacity",
    (
        Column("id_number", "身份证号", "id_number", required=True, personal=True),
        Column("as_of", "日期", "date", required=True),
        Column("monthly_income", "月收入", "amount"),
        Column("income_stability", "收入稳定性", "float", low=0.0, high=1.0),
        Column("employment", "就业状态", "enum", default="unknown", choices=EMPLOYMENT),
        Column("social_insurance_months", "社保月数", "int"),
        Column("has_property", "有房产", "bool", default="false"),
        Column("has_vehicle", "有车辆", "bool", default="false"),
        Column("other_debt", "其他负债", "amount"),
        Column("monthly_spend", "月消费", "amount"),
    ),
    key=("id_number", "as_of"),
    description="repayment-capacity snapshots, from a data provider",
)

LITIGATION = Table(
    "litigation",
    (
        Column("id_number", "身份证号", "id_number", required=True, personal=True),
        Column("as_of", "日期", "date", required=True),
        Column("defendant_cases", "被诉案件数", "int", default="0"),
        Column("enforcement_cases", "被执行案件数", "int", default="0"),
        Column("terminated_no_assets", "终本案件数", "int", default="0"),
        Column("dishonest_listed", "失信被执行人", "bool", default="false"),
        Column("consumption_restricted", "限制高消费", "bool", default="false"),
    ),
    key=("id_number", "as_of"),
    description="litigation records, from court data",
)

MEDIATORS = Table(
    "mediators",
    (
        Column("mediator_id", "调解员编号", "string", required=True),
        Column("organisation", "调解组织", "string", required=True),
        Column("capacity", "在办上限", "int", required=True, low=1),
        Column("languages", "语言", "list"),
        Column("products", "擅长业务", "list", choices=PRODUCTS),
        Column("provinces", "服务地区", "list"),
    ),
    key=("mediator_id",),
    description="mediators, from the mediation organisation",
)

TABLES: dict[str, Table] = {
    table.name: table for table in (CASES, CONTACT_CHECKS, EVENTS, CAPACITY, LITIGATION, MEDIATORS)
}
