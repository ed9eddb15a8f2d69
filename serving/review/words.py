"""The review page's words: features, stages and the page's own text in Chinese and English, and
the policy's actions, workflows and risk flags and numbers as the page shows them.

Features are named as a supervisor says them (``monthly_income`` -> 月收入 / monthly income);
windowed contact counts are named from their parts. A feature with no entry keeps its own name,
so a new feature still shows, and a test lists every model feature without a plain name.
"""

from __future__ import annotations

import re
from typing import Any

LANGUAGES = ("zh", "en")

_FEATURES: dict[str, tuple[str, str]] = {
    "creditor_bank": ("债权机构为银行", "creditor is a bank"),
    "creditor_consumer_finance": ("债权机构为消费金融公司", "creditor is a consumer-finance company"),
    "creditor_other": ("其他类型债权机构", "creditor of another kind"),
    "product_credit_card": ("信用卡欠款", "credit-card debt"),
    "product_personal_loan": ("个人借款", "personal loan"),
    "product_consumer_loan": ("消费贷", "consumer loan"),
    "debtor_company": ("债务人为企业", "debtor is a company"),
    "principal": ("本金", "principal"),
    "interest": ("利息", "interest"),
    "penalty": ("罚息", "penalty interest"),
    "fees": ("费用", "fees"),
    "total_claim": ("债权总额", "total claim"),
    "annual_rate": ("年利率", "annual interest rate"),
    "in_scope": ("属于法院小额案件范围", "within the courts' small-claims scope"),
    "has_phone": ("留有手机号", "a phone number is on file"),
    "overdue_since_ts": ("逾期开始日期", "date the debt became overdue"),
    "has_last_payment": ("违约前曾还款", "repaid something before defaulting"),
    "last_payment_gap_days": ("最后还款距逾期天数", "days between last repayment and default"),
    "stage_code": ("案件进展阶段", "how far the case has gone"),
    "reached_7d": ("近7天联系上次数", "times reached in the last 7 days"),
    "reached_30d": ("近30天联系上次数", "times reached in the last 30 days"),
    "attempts_total": ("累计联系次数", "contact attempts so far"),
    "reached_total": ("累计联系上次数", "times reached so far"),
    "ever_reached": ("曾经联系上", "ever reached"),
    "promises_total": ("承诺还款次数", "promises to pay"),
    "settled_total": ("达成协议或还款次数", "agreements or payments"),
    "disputed_total": ("提出异议次数", "disputes raised (异议)"),
    "opted_out_total": ("要求停止联系次数", "requests to stop contact"),
    "paid_amount_total": ("已还金额", "amount repaid so far"),
    "last_reached_ts": ("最近联系上的时间", "when last reached"),
    "last_attempt_ts": ("最近联系的时间", "when last contacted"),
    "refused_total": ("拒绝还款次数", "refusals"),
    "promise_open": ("有未兑现的还款承诺", "an open promise to pay"),
    "first_event_ts": ("开始处置的时间", "when work on the case began"),
    "last_settled_ts": ("最近协议或还款的时间", "when last settled or paid"),
    "phone_failed_total": ("号码无法接通次数", "attempts where the number did not work"),
    "phone_through_total": ("号码通但未联系上次数", "attempts where the number worked but nobody answered"),
    "last_phone_failed": ("最近一次号码无法接通", "the last call or SMS failed"),
    "checks_total": ("号码检测次数", "phone checks"),
    "checks_active": ("号码正常次数", "checks finding the number active"),
    "checks_suspended": ("号码停机次数", "checks finding the number suspended"),
    "checks_vacant": ("空号次数", "checks finding the number vacant"),
    "checks_unknown": ("号码状态未知次数", "checks with unknown status"),
    "repaired_numbers_total": ("失联修复找到的号码数", "numbers found by lost-contact repair"),
    "repair_successes": ("失联修复成功次数", "successful lost-contact repairs"),
    "last_status_active": ("最近检测号码正常", "last check: number active"),
    "last_status_suspended": ("最近检测号码停机", "last check: number suspended"),
    "last_status_vacant": ("最近检测为空号", "last check: number vacant"),
    "last_status_unknown": ("最近检测状态未知", "last check: status unknown"),
    "last_check_ts": ("最近号码检测时间", "when the number was last checked"),
    "last_repair_ts": ("最近修复成功时间", "when last repaired"),
    "defendant_cases": ("被诉案件数", "suits against the debtor"),
    "enforcement_cases": ("被执行案件数", "enforcement cases against the debtor"),
    "terminated_no_assets": ("终本案件数（无财产可执行）", "enforcement ended for want of assets (终本)"),
    "dishonest_listed": ("失信被执行人", "on the dishonest-debtor list"),
    "consumption_restricted": ("限制高消费", "high-consumption restriction"),
    "litigation_as_of_ts": ("涉诉数据日期", "date of the court data"),
    "monthly_income": ("月收入", "monthly income"),
    "income_stability": ("收入稳定性", "income stability"),
    "employment_employed": ("受雇就业", "employed"),
    "employment_self_employed": ("自雇经营", "self-employed"),
    "employment_unemployed": ("无业", "unemployed"),
    "employment_retired": ("退休", "retired"),
    "employment_unknown": ("就业状态未知", "employment unknown"),
    "social_insurance_months": ("社保缴纳月数", "months of social insurance"),
    "has_property": ("有房产", "owns property"),
    "has_vehicle": ("有车辆", "owns a vehicle"),
    "other_debt": ("其他负债", "other debt"),
    "monthly_spend": ("月消费", "monthly spending"),
    "debt_to_income": ("其他负债相当于几个月收入", "other debt in months of income"),
    "spend_to_income": ("消费占收入比例", "spending as a share of income"),
    "capacity_as_of_ts": ("还款能力数据日期", "date of the income data"),
    "days_past_due": ("逾期天数", "days past due"),
    "days_since_last_reached": ("距最近联系上天数", "days since last reached"),
    "days_since_last_attempt": ("距最近联系天数", "days since last contact attempt"),
    "days_since_first_event": ("已处置天数", "days the case has been worked"),
    "days_since_last_settled": ("距最近协议或还款天数", "days since last agreement or payment"),
    "days_since_last_check": ("距最近号码检测天数", "days since the number was checked"),
    "days_since_last_repair": ("距最近修复天数", "days since last repair"),
    "days_since_capacity_as_of": ("还款能力数据已过天数", "age of the income data, days"),
    "days_since_litigation_as_of": ("涉诉数据已过天数", "age of the court data, days"),
    "paid_share": ("已还比例", "share of the claim repaid"),
    "claim_to_income": ("欠款相当于几个月收入", "claim in months of income"),
    "other_debt_to_claim": ("其他负债与本案欠款之比", "other debt per unit of this claim"),
    "mediator_settle_rate": ("调解员历史成功率", "mediator's settle rate"),
    "mediator_settle_rate_30d": ("调解员近30天成功率", "mediator's settle rate, 30 days"),
}
_CHANNELS = {
    "sms": ("短信", "SMS"),
    "voice": ("智能语音", "voice-robot"),
    "mediator": ("调解员", "mediator"),
    "legal": ("法律手段", "legal"),
    "repair": ("失联修复", "repair"),
}
_KINDS = {
    "attempts": ("联系次数", "attempts"),
    "reached": ("联系上次数", "times reached"),
    "found": ("找到号码次数", "numbers found"),
}
_WINDOWED = re.compile(r"^(sms|voice|mediator|legal|repair)_(attempts|reached|found)_(\d+)d$")


def feature_name(name: str, lang: str = "zh") -> str:
    """The feature as a supervisor says it, in ``lang``; the raw name when none is known."""
    en = lang == "en"
    if name in _FEATURES:
        return _FEATURES[name][en]
    match = _WINDOWED.match(name)
    if match:
        channel, kind, days = match.groups()
        if en:
            return f"{_CHANNELS[channel][1]} {_KINDS[kind][1]}, last {days} days"
        return f"近{days}天{_CHANNELS[channel][0]}{_KINDS[kind][0]}"
    return name


def has_plain_name(name: str) -> bool:
    """Whether ``feature_name`` knows the feature (rather than echoing it)."""
    return name in _FEATURES or bool(_WINDOWED.match(name))


STAGES = {
    "new": ("新案", "new"),
    "warning": ("警示督促", "warning"),
    "mediation": ("调解", "mediation"),
    "agreement": ("已达成协议", "agreement"),
    "litigation": ("诉讼", "litigation"),
    "paid": ("已结清", "paid"),
    "written_off": ("预查废核销", "written off"),
    "closed": ("已结案", "closed"),
}


OUTCOMES = {
    "sent": "已发送",
    "delivered": "已送达",
    "failed": "失败（号码不通）",
    "no_answer": "未接听",
    "reached": "已联系上",
    "refused": "拒绝还款",
    "promise_to_pay": "承诺还款",
    "agreement": "达成协议",
    "paid": "已还清",
    "partial_paid": "部分还款",
    "disputed": "提出异议",
    "opted_out": "要求停止联系",
    "certificate_issued": "已出具证明",
    "order_issued": "已发支付令",
    "filed": "已立案",
    "judged": "已判决",
    "closed": "已结案",
}


def outcome_name(outcome: str, lang: str = "zh") -> str:
    """An event outcome (``concord.vocabulary.OUTCOMES``) in words."""
    return OUTCOMES.get(outcome, outcome) if lang == "zh" else outcome.replace("_", " ")


def stage_name(stage: str, lang: str = "zh") -> str:
    """A funnel stage (``features.offline.schemas.STAGES``) in words."""
    return STAGES.get(stage, (stage, stage))[lang == "en"]


# The page's own text: key -> (Chinese, English).
TEXT: dict[str, tuple[str, str]] = {
    "title": ("主管复核", "Supervisor review"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "key": ("访问密钥", "Access key"),
    "login_hint": ("请输入主管角色的访问密钥。", "Enter a supervisor's access key."),
    "bad_key": ("密钥无效或已吊销。", "That key is not valid or has been revoked."),
    "forbidden": ("此页面仅限主管使用，您的密钥角色为：", "This page is for supervisors only; your key's role is: "),
    "queue": ("待复核队列", "Review queue"),
    "funnel": ("漏斗统计", "Funnel"),
    "models": ("模型", "Models"),
    "audit": ("审计记录", "Audit trail"),
    "awaiting": ("待审批建议", "Recommendations awaiting approval"),
    "disputes": ("异议案件", "Disputed cases (异议)"),
    "reviewed": ("已复核", "Reviewed"),
    "creditor": ("债权机构", "Creditor"),
    "stage": ("阶段", "Stage"),
    "action": ("建议动作", "Action"),
    "risk_flag": ("风险标记", "Risk flag"),
    "mediator": ("调解员", "Mediator"),
    "all": ("全部", "All"),
    "filter": ("筛选", "Filter"),
    "case": ("案件", "Case"),
    "created": ("时间", "When"),
    "expected_value": ("预期价值（元）", "Expected value (CNY)"),
    "open": ("查看", "Open"),
    "none_waiting": ("没有待复核的建议。", "Nothing is waiting for review."),
    "no_disputes": ("没有待处理的异议。", "No dispute is waiting."),
    "profile": ("债务人画像（已脱敏）", "Debtor profile (masked)"),
    "scores": ("模型评分", "Scores"),
    "p_reach": ("可联概率", "Chance of reaching the debtor (14 days)"),
    "p_settle": ("和解概率", "Chance of settlement (90 days)"),
    "ranked": ("可选动作（按预期价值排序）", "Eligible actions, by expected value"),
    "blocked": ("被规则阻止的动作", "Actions blocked by rules"),
    "rule": ("规则", "Rule"),
    "reason": ("原因", "Reason"),
    "explanation": ("评分解释", "Why these scores"),
    "log_odds_note": (
        "条形图显示每个特征把模型的原始分数推高或拉低了多少。单位是校准前原始模型的对数几率"
        "（log-odds），不是概率；正值提高、负值降低概率。最后显示校准后的概率。",
        "Each bar shows how much one feature pushed the model's raw score up or down. The units "
        "are the raw model's log-odds, before calibration, not probabilities: positive raises the "
        "chance, negative lowers it. The calibrated probability is shown at the end.",
    ),
    "start": ("平均起点", "starting point (average case)"),
    "others": ("其他特征合计", "all other features"),
    "raw_score": ("原始分数", "raw score"),
    "calibrated": ("校准后概率", "calibrated probability"),
    "value": ("取值", "value"),
    "approve": ("批准", "Approve"),
    "override": ("改为其他动作", "Override"),
    "override_to": ("改为", "Change to"),
    "review_reason": ("理由（必填）", "Reason (required)"),
    "decision": ("复核决定", "Decision"),
    "approval": ("审批状态", "Approval"),
    "pending": ("待审批", "pending"),
    "approved": ("已批准", "approved"),
    "overridden": ("已改判", "overridden"),
    "not_required": ("无需审批", "not required"),
    "sensitive_tag": ("敏感", "sensitive"),
    "dispute_count": ("异议次数", "Disputes raised"),
    "review_note": ("备注（选填）", "Note (optional)"),
    "raises": ("提高概率", "raises the chance"),
    "lowers": ("降低概率", "lowers the chance"),
    "resolve": ("处理异议", "Resolve the dispute"),
    "note": ("处理说明", "Note"),
    "sensitive": (
        "敏感动作，需主管批准后平台方可执行",
        "Sensitive: the platform may act only after a supervisor approves",
    ),
    "back": ("返回队列", "Back to the queue"),
    "claim": ("可追回债权（元）", "Recoverable claim (CNY)"),
    "summary": ("全局特征重要性（SHAP）", "What drives the model overall (SHAP summary)"),
    "evaluation": ("样本外评估", "Out-of-time evaluation"),
    "version": ("版本", "Version"),
    "cases": ("案件数", "Cases"),
    "reach_rate": ("可联率", "Reach rate"),
    "settle_rate": ("和解率", "Settlement rate"),
    "recovered": ("回款金额（元）", "Recovered (CNY)"),
    "by_stage": ("各阶段案件数", "Cases by stage"),
    "kind": ("类型", "Kind"),
    "actor": ("操作人", "Actor"),
    "chain_ok": ("审计链完整", "The audit chain is intact"),
    "chain_broken": ("审计链校验失败", "The audit chain is broken"),
    "no_model": ("尚无冠军模型：请先运行 concord train。", "No champion model yet: run concord train first."),
    "decided_at": ("建议时间", "Recommended at"),
    "policy": ("策略版本", "Policy version"),
    "recorded_by": ("复核人", "Reviewed by"),
    "ineligible": ("当前阶段不可用的动作", "Actions not available now"),
    "masked_id": ("身份证（脱敏）", "ID (masked)"),
    "masked_phone": ("手机（脱敏）", "Phone (masked)"),
    "debtor": ("债务人代号", "Debtor pseudonym"),
    "product": ("业务类型", "Product"),
    "province": ("省份", "Province"),
    "overdue": ("逾期日期", "Overdue since"),
    "income": ("月收入", "Monthly income"),
    "property": ("房产 / 车辆", "Property / vehicle"),
    "litigation": ("涉诉", "Litigation"),
    "events": ("最近处置记录", "Latest events"),
    "outcome": ("结果", "Outcome"),
    "amount": ("金额", "Amount"),
    "yes": ("有", "yes"),
    "no": ("无", "no"),
    "model_version_note": (
        "解释使用建议时记录的特征值和模型版本。",
        "The explanation uses the feature values and the model versions recorded with the recommendation.",
    ),
}


def text(key: str, lang: str = "zh") -> str:
    """The page text ``key`` in ``lang``."""
    return TEXT[key][lang == "en"]


# -- the policy's names and numbers as the page shows them ---------------------------------
def number(value: Any, places: int = 2) -> str:
    """A number as people read it: whole numbers without decimals, '—' for none."""
    if value is None or not isinstance(value, int | float) or value != value:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{places}f}"


def action_name(policy: Any, action: str | None, lang: str) -> str:
    """An action of the policy's catalogue, in words ('—' for none; its own name when unknown)."""
    if not action:
        return "—"
    try:
        zh = policy.catalogue.actions[policy.catalogue.index(action)].zh
    except (KeyError, ValueError, IndexError, AttributeError):
        return action
    return f"{zh}" if lang == "zh" and zh else action.replace("_", " ")


def policy_stage_name(policy: Any, stage: str | None, lang: str) -> str:
    """A workflow stage (``policies/workflow_*.yaml``) or a funnel stage, in words."""
    for workflow in policy.workflows.values():
        if stage in workflow.stages:
            return str(workflow.stages[stage].zh) if lang == "zh" else str(stage).replace("_", " ")
    return stage_name(stage or "", lang)


def workflow_name(policy: Any, workflow: str | None, lang: str) -> str:
    """A workflow of the policy, in words."""
    found = policy.workflows.get(workflow or "")
    return str(found.zh) if found is not None and lang == "zh" else str(workflow or "").replace("_", " ")


def flag_name(policy: Any, flag: str, lang: str) -> str:
    """A court risk flag of the policy: its Chinese name, or in English its reason."""
    for rule in policy.court.flags:
        if rule.id == flag:
            return rule.zh if lang == "zh" else rule.reason
    return flag
