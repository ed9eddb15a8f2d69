"""A synthetic world of small-amount debt cases that behaves like the published pilots.

No bank can hand us its data, so Concord runs on a simulated world written in exactly the six
contract shapes of CONTRACTS.md (``cases``, ``contact_checks``, ``events``, ``capacity``,
``litigation``, ``mediators``) plus two ground-truth tables that only evaluation reads
(``truth``: hidden traits per case; ``truth_decisions``: exact oracle probabilities at sampled
decision points). ``docs/simulator.md`` is the long version of this docstring.

Hidden traits (per debtor, standard-normal scale, only in ``truth``)
    ``reachability`` z_r, ``capacity`` z_c, ``willingness`` z_w: correlated normals (z_r-z_w 0.3,
    z_c-z_w 0.3, z_r-z_c 0.2), shifted up for bank customers. ``has_assets`` (property or
    vehicle) and ``dead_debt`` (enforcement terminated for want of assets, 终本) follow from z_c.
    ``line_works_at_start`` (the phone number on file works) follows from z_r. Observable traces: phone
    status checks (line), repair results (z_r), income/employment/property snapshots (z_c),
    other debt, last payment, litigation (z_w, z_c) and the event history itself.

Case life
    A case enters the platform on its start day (within the 700 days before ``end``) and is
    worked in *steps*: one decision per step, the next step 3-7 days later (uniform, independent
    of everything else), at a uniform second between 08:00:00 and 19:59:59 local time. The case
    stops at ``close``, at ``start + life_days`` (life 90-180 days, uniform) or at ``end``.
    ``k`` = the number of actions already taken on the case ("attempts so far").

State seen by the logging policy (all observable)
    stage W (warning, never reached) with phone flag none (no number on file) / bad (first check
    not ``active``) / good (``active``, or a repair found a working number); stage M0 (reached)
    or M1 (reached, open promise to pay); stage A0 (agreement signed) or A1 (agreement
    formalised or partly paid); P (paid in full) and C (write-off certificate), both followed by
    ``close``; plus k, principal >= 20,000 CNY ("large") and a litigation snapshot showing
    terminated_no_assets > 0 before the start ("dead debt seen").

Logging policy (stochastic; ``propensity`` = the probability of the action taken)
    Each step draws an action with probability w_a / (sum of w + w_close). Weights:

    - W: sms_warning 1.0 (good) / 0.5 (bad), flash_sms 0.5/0.25, similar_case_push 0.3/0.15,
      voice_call 1.2/0.4 (no number: all four 0); contact_repair 2.0 (none) / 1.2 (bad) /
      good: 0.05 for k < 2 else 0.5; lawyer_letter 0.35 (large 0.7) from k >= 2;
      asset_preservation 0.4 (large) / 0.1 from k >= 3; pre_check_write_off 1.0 from k >= 1
      when dead debt is seen; payment_order 0.3 from k >= 5; close 0.25 (k - 3) for k >= 4,
      certain at k >= 10.
    - M0/M1: mediator_call 1.0 (M1: 1.5), video_mediation 0.35, online_negotiation 0.5,
      installment_offer 0.45 (large 0.7), lawyer_letter 0.3, payment_order 0.25 from k >= 8,
      file_lawsuit 0.2 (large) / 0.05 from k >= 10; close 0.2 (k - 7) for k >= 8, certain at 20.
    - A0: notarized_agreement 0.45, judicial_confirmation 0.35, mediator_call 0.4; close
      certain at k >= 28. A1: mediator_call 1.0; close 0.3 (k - 15) for k >= 16, certain at 28.
    - P, C: close with probability 1.

Effect model (outcome of an action; sigma = logistic)
    Phone channels in W reach the debtor only if the line works: sigma(a_W + beta_a + z_r),
    beta = sms -1.6, flash -1.4, push -2.0, voice 0. lawyer_letter reaches with
    sigma(a_W - 1 + 0.5 z_r + 0.7 z_c), asset_preservation (freeze notice, call-back) with
    sigma(a_W - 1.6 + 0.4 z_r + 2 assets + 0.3 z_c), payment_order sigma(a_W - 1 + 0.4(z_r + z_c)).
    contact_repair finds a working number with sigma(a_rep + 0.9 z_r) (then flag good, line
    works). In M, contact = sigma(a_M + gamma_a + 0.8 z_r + 0.6 promised). Given contact, the case
    settles with sigma(s + 0.9 z_w + 0.5 z_c + h_a) (s = s_M, or s_M - 1 in W, +0.8 if promised)
    where the heterogeneous terms are: installment_offer -0.3 + 2 sigma(2 z_w) sigma(-2 z_c)
    (willing but poor), lawyer_letter -0.3 + 0.9 z_c in M / +0.8 z_c in W (those who can pay),
    asset_preservation +0.6 + 0.5 assets. Otherwise a promise (sigma(-0.5 + 0.7 z_w)) or a
    plain contact (reached / refused). A settlement is ``paid`` (full), ``agreement`` or
    ``partial_paid``. The intercepts a_W, a_M, s_M (per creditor type) and a_rep are calibrated.

Calibration (``calibration_report``), over each case's whole life in the files
    reached = the case has any event outcome in reached, refused, promise_to_pay, agreement,
    paid, partial_paid; settled = any of agreement, paid, partial_paid; repair success = share of
    ``contact_repair`` events whose outcome is ``delivered`` (a working number was found; each
    is mirrored by a ``contact_checks`` row at the same time with repaired_numbers > 0 and a
    repair_source; a failed repair is ``failed`` with repaired_numbers = 0). Targets: bank 33 %
    reached and 53 % settled of reached, consumer finance 20 % and 26 %, repair 25 %.

Oracle (``truth_decisions``)
    Every open step (stage W, M or A) is a decision point with probability 0.375 (about 3 per
    case), independently of the future. p_reach_14d / p_settle_90d are the exact probabilities, under this
    policy and the true hidden state, that an event with a reached-type (settled-type) outcome
    happens at ``at`` in [decision_time, decision_time + 14 (90) days), the decision's own event
    included, and before the case stops (life cap, ``end``). They come from a dynamic
    programme over the policy state (the step gaps are independent of the state, so the
    horizon enters only through the distribution of the sum of gaps); the events in the files
    are draws from the same process.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from concord.vocabulary import ACTIONS, OUTCOMES, REACHED_OUTCOMES, SCOPE_PRINCIPAL_LIMIT, SETTLED_OUTCOMES
from ingestion.contracts import TABLES as CONTRACT_TABLES

TABLES: tuple[str, ...] = ("cases", "contact_checks", "events", "capacity", "litigation", "mediators")
XLSX_MAX_ROWS = 1_048_575  # data rows below the header row of one sheet

# --------------------------------------------------------------------------- world constants

BANKS = ("华夏安和银行信用卡中心", "闽江商业银行信用卡中心", "东海民泰银行股份有限公司")
CONSUMER_FINANCE = ("安信消费金融有限公司", "恒通消费金融有限公司", "青禾消费金融有限公司", "九州消费金融股份有限公司")
CREDITORS = BANKS + CONSUMER_FINANCE
_CREDITOR_PREFIX = ("HXAH", "MJSY", "DHMT", "AXCF", "HTCF", "QHCF", "JZCF")
_BANK_WEIGHTS = np.array([0.5, 0.3, 0.2])
_CF_WEIGHTS = np.array([0.35, 0.3, 0.2, 0.15])
BANK_SHARE = 0.147  # 1,514 of 10,305 pilot cases
PRODUCTS = ("credit_card", "personal_loan", "consumer_loan")
# region code -> (province, court)
REGIONS = (
    ("350102", "福建省", "福州市鼓楼区人民法院"),
    ("350103", "福建省", "福州市台江区人民法院"),
    ("350203", "福建省", "厦门市思明区人民法院"),
    ("350582", "福建省", "晋江市人民法院"),
    ("110105", "北京市", "北京市朝阳区人民法院"),
    ("110108", "北京市", "北京市海淀区人民法院"),
    ("310115", "上海市", "上海市浦东新区人民法院"),
    ("310104", "上海市", "上海市徐汇区人民法院"),
    ("440106", "广东省", "广州市天河区人民法院"),
    ("440304", "广东省", "深圳市福田区人民法院"),
    ("330106", "浙江省", "杭州市西湖区人民法院"),
    ("320106", "江苏省", "南京市鼓楼区人民法院"),
    ("510107", "四川省", "成都市武侯区人民法院"),
    ("420106", "湖北省", "武汉市武昌区人民法院"),
    ("410105", "河南省", "郑州市金水区人民法院"),
    ("370102", "山东省", "济南市历下区人民法院"),
)
_REGION_WEIGHTS = np.array([10, 6, 6, 4, 4, 3, 4, 3, 5, 5, 4, 4, 4, 3, 3, 3], dtype=float)
PROVINCES = tuple(dict.fromkeys(r[1] for r in REGIONS))
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余叶程魏苏吕丁"
GIVEN_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华建文辉力斌宇浩凯鹏晨欣怡婷雪琳佳鑫珍玲峰"
_COMPANY_CITY = ("福州", "厦门", "泉州", "杭州", "深圳", "成都")
_COMPANY_WORD = ("恒盛", "鑫达", "宏远", "信诚", "华泰", "永安", "金源")
_COMPANY_KIND = ("商贸有限公司", "科技有限公司", "建材有限公司", "餐饮管理有限公司")
ORGANISATIONS = (
    "福州市金融纠纷调解中心",
    "融E调在线调解平台",
    "厦门市金融消费纠纷调解中心",
    "上海金融纠纷调解中心",
    "广东金融消费纠纷调解中心",
    "鼓楼区人民调解委员会",
)
_EXTRA_LANGUAGES = ("minnan", "cantonese", "hakka", "wu", "sichuanese")
REPAIR_SOURCES = ("运营商", "电商平台", "物流", "社交平台")
PHONE_STATUSES = ("active", "suspended", "vacant", "unknown")
EMPLOYMENTS = ("employed", "self_employed", "unemployed", "retired", "unknown")

# --------------------------------------------------------------------------- model constants

# Outcome classes of one step (what the state transition depends on), and close.
FAIL, CONTACT, PROMISE, AGREE, PAID, PARTIAL, REPAIR, CERT, CLOSE = range(9)
N_CLASSES = 8  # classes an action other than close can produce
# States. W states are (phone flag, line works): flag 0 none, 1 bad, 2 good.
W_NONE0, W_BAD0, W_BAD1, W_GOOD0, W_GOOD1, M0, M1, A0, A1, ST_PAID, ST_CERT, ST_DONE = range(12)
N_LIVE = 9  # W x5, M0, M1, A0, A1: states from which a reach or a settlement can still happen
W_FLAG = np.array([0, 1, 1, 2, 2])
W_LINE = np.array([0, 0, 1, 0, 1])

W_ACTIONS = (
    "sms_warning",
    "flash_sms",
    "similar_case_push",
    "voice_call",
    "contact_repair",
    "lawyer_letter",
    "asset_preservation",
    "pre_check_write_off",
    "payment_order",
)
M_ACTIONS = (
    "mediator_call",
    "video_mediation",
    "online_negotiation",
    "installment_offer",
    "lawyer_letter",
    "payment_order",
    "file_lawsuit",
)
A0_ACTIONS = ("notarized_agreement", "judicial_confirmation", "mediator_call")
A1_ACTIONS = ("mediator_call",)
MEDIATOR_ACTIONS = frozenset(
    {
        "mediator_call",
        "video_mediation",
        "online_negotiation",
        "installment_offer",
        "notarized_agreement",
        "judicial_confirmation",
        "file_lawsuit",
    }
)
_ACT = {name: i for i, name in enumerate(ACTIONS)}
_OUT = {name: i for i, name in enumerate(OUTCOMES)}
CLOSE_ACTION = _ACT["close"]

# Step-index regimes of the policy: weights change only at these attempt counts.
_W_REGIME = np.array([0, 1, 2, 3, 3, 4])  # index min(k, 5)
_M_REGIME = np.array([0] * 8 + [1, 1, 2])  # index min(k, 10)
W_FORCED_CLOSE, M_FORCED_CLOSE, A_FORCED_CLOSE = 10, 20, 28

_SIM_CHUNK = 65_536  # rows per outcome-probability batch in the simulation
DECISION_SAMPLE_RATE = 0.375  # share of open steps kept in truth_decisions (about 3 per case)
GAP_MIN, GAP_MAX = 3, 7  # days between steps
DAY_START, DAY_SECONDS = 8 * 3600, 12 * 3600  # contact hours 08:00-20:00 local
SHANGHAI_OFFSET = np.timedelta64(8, "h")


@dataclass(frozen=True)
class Calibration:
    """Intercepts tuned so that the pilots' base rates come out (logit scale).

    ``reach_w``/``contact_m``/``settle_m`` are per creditor type (bank, consumer finance);
    ``repair`` is the contact-repair intercept.
    """

    reach_w: tuple[float, float] = (-2.40, -2.785)
    contact_m: tuple[float, float] = (0.6, 0.2)
    settle_m: tuple[float, float] = (-3.34, -4.16)
    repair: float = -1.022


CALIBRATION = Calibration()


@dataclass
class World:
    """A simulated world: the six contract tables and the ground truth behind them."""

    cases: pd.DataFrame
    contact_checks: pd.DataFrame
    events: pd.DataFrame
    capacity: pd.DataFrame
    litigation: pd.DataFrame
    mediators: pd.DataFrame
    truth: pd.DataFrame
    truth_decisions: pd.DataFrame


@dataclass
class _Traits:
    """Per-row inputs of the effect model (one row per case or per decision point)."""

    ct: np.ndarray  # 0 bank, 1 consumer finance
    zr: np.ndarray
    zc: np.ndarray
    zw: np.ndarray
    assets: np.ndarray  # float 0/1
    lpr: np.ndarray  # log(principal / 10,000 CNY)
    large: np.ndarray  # int 0/1: principal >= 20,000 CNY
    dead_seen: np.ndarray  # int 0/1

    def take(self, idx: np.ndarray) -> _Traits:
        """The rows ``idx``."""
        return _Traits(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def _release_memory() -> None:
    """Hand freed heap memory back to the OS (glibc and Arrow's pool keep it otherwise)."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _frame(columns: dict[str, object]) -> pd.DataFrame:
    """A DataFrame that takes the column arrays as they are (no copies: these tables are large)."""
    return pd.DataFrame(columns, copy=False)


def _unique_dtype(categories: pd.Index) -> pd.CategoricalDtype:
    """A categorical dtype over many unique strings, without keeping pandas' hash table."""
    dtype = pd.CategoricalDtype(categories)
    dtype.categories._cache.pop("_engine", None)
    categories._cache.pop("_engine", None)
    return dtype


def _categorical(codes: np.ndarray, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """``Categorical.from_codes`` without keeping the categories' hash table (100 MB per 10^6 strings).

    pandas rebuilds the table lazily if a later lookup needs it.
    """
    values = pd.Categorical.from_codes(codes, dtype=dtype)
    for index in (dtype.categories, values.categories):
        index._cache.pop("_engine", None)
    return values


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------- effect model


def _contact_classes(
    r: np.ndarray, s: np.ndarray, paid_share: np.ndarray, agree_share: np.ndarray, promise: np.ndarray
) -> np.ndarray:
    """Split contact probability ``r`` (n, A) into outcome classes: a (n, A, 8) view.

    ``s`` = P(settle | contact), ``paid_share`` = P(paid in full | settle), ``agree_share`` =
    P(agreement | settle, not paid in full), ``promise`` (n,) = P(promise | contact, no settle).
    """
    out = np.zeros((N_CLASSES,) + r.shape)  # class planes are contiguous
    settle = r * s
    out[PAID] = settle * paid_share
    unpaid = settle - out[PAID]
    out[AGREE] = unpaid * agree_share
    out[PARTIAL] = unpaid - out[AGREE]
    rest = r - settle
    out[PROMISE] = rest * promise[:, None]
    out[CONTACT] = rest - out[PROMISE]
    out[FAIL] = 1 - r
    return out.transpose(1, 2, 0)


def _q_warning(t: _Traits, line: np.ndarray, cal: Calibration) -> np.ndarray:
    """Outcome-class probabilities (n, len(W_ACTIONS), 8) of each warning-stage action."""
    n = len(line)
    ln = line.astype(float)
    aw = np.asarray(cal.reach_w)[t.ct]
    r = np.zeros((n, len(W_ACTIONS)))
    for j, beta in ((0, -1.6), (1, -1.4), (2, -2.0), (3, 0.0)):
        r[:, j] = ln * _sigmoid(aw + beta + t.zr)
    r[:, 5] = _sigmoid(aw - 1.0 + 0.5 * t.zr + 0.7 * t.zc)
    r[:, 6] = _sigmoid(aw - 1.6 + 0.4 * t.zr + 2.0 * t.assets + 0.3 * t.zc)
    r[:, 8] = _sigmoid(aw - 1.0 + 0.4 * t.zr + 0.4 * t.zc)
    h = np.zeros((n, len(W_ACTIONS)))
    h[:, 5] = 0.8 * t.zc
    h[:, 6] = 0.6 + 0.5 * t.assets
    h[:, 8] = 0.3
    base = np.asarray(cal.settle_m)[t.ct] - 1.0 + 0.9 * t.zw + 0.5 * t.zc
    s = _sigmoid(base[:, None] + h)
    paid_share = _sigmoid(-0.5 + 0.9 * t.zc - 0.6 * t.lpr)[:, None]
    out = _contact_classes(r, s, paid_share, np.full((1, 1), 0.7), _sigmoid(-0.6 + 0.7 * t.zw))
    repair = _sigmoid(cal.repair + 0.9 * t.zr)
    out[:, 4, :] = 0.0
    out[:, 4, REPAIR] = repair
    out[:, 4, FAIL] = 1 - repair
    out[:, 7, :] = 0.0
    out[:, 7, CERT] = 1.0
    return out


def _q_mediation(t: _Traits, promised: np.ndarray, cal: Calibration) -> np.ndarray:
    """Outcome-class probabilities (n, len(M_ACTIONS), 8) once the debtor has been reached."""
    n = len(promised)
    m = promised.astype(float)
    gamma = np.zeros((n, len(M_ACTIONS)))
    gamma[:, 1] = -0.6
    gamma[:, 2] = -0.3 + 0.3 * t.zw
    gamma[:, 4] = -0.3 + 0.4 * t.zc
    gamma[:, 5] = -0.5 + 0.4 * t.zc
    gamma[:, 6] = -0.2 + 0.3 * t.zc
    c = _sigmoid((np.asarray(cal.contact_m)[t.ct] + 0.8 * t.zr + 0.6 * m)[:, None] + gamma)
    h = np.zeros((n, len(M_ACTIONS)))
    h[:, 1] = 0.3
    h[:, 2] = 0.2
    h[:, 3] = -0.3 + 2.0 * _sigmoid(2 * t.zw) * _sigmoid(-2 * t.zc)
    h[:, 4] = -0.3 + 0.9 * t.zc
    h[:, 5] = 0.2 * t.zc
    h[:, 6] = 0.4 + 0.5 * t.zc
    base = np.asarray(cal.settle_m)[t.ct] + 0.9 * t.zw + 0.5 * t.zc + 0.8 * m
    s = _sigmoid(base[:, None] + h)
    paid = _sigmoid(-0.5 + 0.9 * t.zc - 0.6 * t.lpr)
    paid_share = np.repeat(paid[:, None], len(M_ACTIONS), axis=1)
    paid_share[:, 3] *= 0.3
    agree_share = np.full((1, len(M_ACTIONS)), 0.6)
    agree_share[0, 3] = 0.85
    return _contact_classes(c, s, paid_share, agree_share, _sigmoid(-0.5 + 0.7 * t.zw))


def _q_agreed(t: _Traits, formalised: bool) -> np.ndarray:
    """Outcome-class probabilities after an agreement: (n, 3, 8) for A0, (n, 1, 8) for A1."""
    n = len(t.zr)
    c = _sigmoid(1.0 + 0.5 * t.zr)
    if not formalised:
        out = np.zeros((n, len(A0_ACTIONS), N_CLASSES))
        out[:, 0:2, CERT] = 0.95
        out[:, 0:2, FAIL] = 0.05
        pay = _sigmoid(-0.5 + 0.8 * t.zc + 0.5 * t.zw)
        out[:, 2, PAID] = c * pay
        out[:, 2, PARTIAL] = c * (1 - pay) * 0.6
        out[:, 2, CONTACT] = c * (1 - pay) * 0.4
        out[:, 2, FAIL] = 1 - c
        return out
    out = np.zeros((n, 1, N_CLASSES))
    pay = _sigmoid(-0.8 + 0.8 * t.zc + 0.6 * t.zw)
    part = _sigmoid(0.5 + 0.8 * t.zw)
    out[:, 0, PAID] = c * pay
    out[:, 0, PARTIAL] = c * (1 - pay) * part
    out[:, 0, CONTACT] = c * (1 - pay) * (1 - part)  # refuses to go on paying: back to mediation
    out[:, 0, FAIL] = 1 - c
    return out


# --------------------------------------------------------------------------- logging policy


@functools.lru_cache(maxsize=1)
def _policy_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unnormalised action weights (close excluded).

    W: [large, dead_seen, flag, regime, action]; M: [large, promised, regime, action];
    A0: [action]; A1: [action].
    """
    w = np.zeros((2, 2, 3, 5, len(W_ACTIONS)))
    for large in (0, 1):
        for dead in (0, 1):
            for flag in (0, 1, 2):
                for reg in range(5):
                    row = w[large, dead, flag, reg]
                    if flag > 0:
                        good = flag == 2
                        row[0] = 1.0 if good else 0.5
                        row[1] = 0.5 if good else 0.25
                        row[2] = 0.3 if good else 0.15
                        row[3] = 1.2 if good else 0.4
                    row[4] = 2.0 if flag == 0 else 1.2 if flag == 1 else (0.05 if reg < 2 else 0.5)
                    row[5] = (0.7 if large else 0.35) if reg >= 2 else 0.0
                    row[6] = (0.4 if large else 0.1) if reg >= 3 else 0.0
                    row[7] = 1.0 if (dead and reg >= 1) else 0.0
                    row[8] = 0.3 if reg >= 4 else 0.0
    mw = np.zeros((2, 2, 3, len(M_ACTIONS)))
    for large in (0, 1):
        for promised in (0, 1):
            for reg in range(3):
                row = mw[large, promised, reg]
                row[:5] = (1.5 if promised else 1.0), 0.35, 0.5, (0.7 if large else 0.45), 0.3
                row[5] = 0.25 if reg >= 1 else 0.0
                row[6] = (0.2 if large else 0.05) if reg >= 2 else 0.0
    return w, mw, np.array([0.45, 0.35, 0.4]), np.array([1.0])


def _close_weight(stage: str, k: np.ndarray) -> np.ndarray:
    """Weight of ``close`` at attempt count ``k``; ``inf`` where closing is certain."""
    kf = k.astype(float)
    if stage == "W":
        w = np.where(k >= 4, 0.25 * (kf - 3), 0.0)
        return np.where(k >= W_FORCED_CLOSE, np.inf, w)
    if stage == "M":
        w = np.where(k >= 8, 0.2 * (kf - 7), 0.0)
        return np.where(k >= M_FORCED_CLOSE, np.inf, w)
    if stage == "A0":
        return np.where(k >= A_FORCED_CLOSE, np.inf, 0.0)
    w = np.where(k >= 16, 0.3 * (kf - 15), 0.0)
    return np.where(k >= A_FORCED_CLOSE, np.inf, w)


def _policy(state: np.ndarray, k: np.ndarray, t: _Traits, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Action probabilities (n, A+1; the last column is close) for rows all in one stage group.

    Returns the probabilities and the catalogue indices of the columns.
    """
    w, mw, a0w, a1w = _policy_tables()
    n = len(state)
    names: tuple[str, ...]
    if group == "W":
        weights = w[t.large, t.dead_seen, W_FLAG[state], _W_REGIME[np.minimum(k, 5)]]
        names, cw = W_ACTIONS, _close_weight("W", k)
    elif group == "M":
        weights = mw[t.large, (state == M1).astype(int), _M_REGIME[np.minimum(k, 10)]]
        names, cw = M_ACTIONS, _close_weight("M", k)
    elif group == "A0":
        weights = np.broadcast_to(a0w, (n, len(a0w)))
        names, cw = A0_ACTIONS, _close_weight("A0", k)
    elif group == "A1":
        weights = np.broadcast_to(a1w, (n, len(a1w)))
        names, cw = A1_ACTIONS, _close_weight("A1", k)
    else:  # P and C
        return np.ones((n, 1)), np.array([CLOSE_ACTION])
    forced = np.isinf(cw)
    total = weights.sum(axis=1) + np.where(forced, 0.0, cw)
    probs = np.empty((n, weights.shape[1] + 1))
    probs[:, :-1] = np.where(forced[:, None], 0.0, weights / total[:, None])
    probs[:, -1] = np.where(forced, 1.0, cw / np.where(forced, 1.0, total))
    return probs, np.array([_ACT[a] for a in names] + [CLOSE_ACTION])


def _outcome_probs(state: np.ndarray, t: _Traits, group: str, cal: Calibration) -> np.ndarray:
    """Outcome-class probabilities (n, A, 8) of every non-close action of the group."""
    if group == "W":
        return _q_warning(t, W_LINE[state], cal)
    if group == "M":
        return _q_mediation(t, state == M1, cal)
    if group == "A0":
        return _q_agreed(t, formalised=False)
    return _q_agreed(t, formalised=True)


# next state after an outcome class, per state (-1: impossible)
_NEXT = np.full((12, 9), -1, dtype=np.int8)
for _s in range(5):
    _NEXT[_s, [FAIL, CONTACT, PROMISE, AGREE, PAID, PARTIAL, REPAIR, CERT, CLOSE]] = (
        _s,
        M0,
        M1,
        A0,
        ST_PAID,
        A1,
        W_GOOD1,
        ST_CERT,
        ST_DONE,
    )
_NEXT[M0, [FAIL, CONTACT, PROMISE, AGREE, PAID, PARTIAL, CLOSE]] = M0, M0, M1, A0, ST_PAID, A1, ST_DONE
_NEXT[M1, [FAIL, CONTACT, PROMISE, AGREE, PAID, PARTIAL, CLOSE]] = M1, M0, M1, A0, ST_PAID, A1, ST_DONE
_NEXT[A0, [FAIL, CONTACT, CERT, PAID, PARTIAL, CLOSE]] = A0, A0, A1, ST_PAID, A1, ST_DONE
_NEXT[A1, [FAIL, CONTACT, PAID, PARTIAL, CLOSE]] = A1, M0, ST_PAID, A1, ST_DONE
_NEXT[ST_PAID, CLOSE] = ST_DONE
_NEXT[ST_CERT, CLOSE] = ST_DONE
del _s


def _group_of(state: np.ndarray) -> np.ndarray:
    """0 W, 1 M, 2 A0, 3 A1, 4 P/C."""
    return np.select([state <= W_GOOD1, state <= M1, state == A0, state == A1], [0, 1, 2, 3], 4)


_GROUPS = ("W", "M", "A0", "A1", "PC")


def _draw(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from each row of ``probs`` with uniforms ``u``; zero-probability columns never win."""
    cum = np.cumsum(probs, axis=1)
    return (cum <= (u * cum[:, -1])[:, None]).sum(axis=1)


# --------------------------------------------------------------------------- the case life


@dataclass
class _Log:
    """Event rows of the simulation, in step order."""

    case: np.ndarray
    day: np.ndarray
    second: np.ndarray
    action: np.ndarray
    outcome: np.ndarray
    amount: np.ndarray
    propensity: np.ndarray
    state: np.ndarray
    k: np.ndarray
    cls: np.ndarray


def _simulate_cases(
    t: _Traits,
    state0: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    claim: np.ndarray,
    cal: Calibration,
    rng: np.random.Generator,
) -> _Log:
    """Run every case's life step by step (vectorised over cases); days are epoch day numbers."""
    n = len(state0)
    state = state0.astype(np.int8).copy()
    k = np.zeros(n, dtype=np.int16)
    day = start.astype(np.int32).copy()
    alive = np.ones(n, dtype=bool)
    agreed = np.zeros(n)
    paid = np.zeros(n)
    fields = list(_Log.__dataclass_fields__)
    parts: dict[str, list[np.ndarray]] = {f: [] for f in fields}
    while True:
        alive &= day <= stop
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        st = state[idx]
        kk = k[idx].astype(np.int64)
        action = np.empty(idx.size, dtype=np.int8)
        cls = np.empty(idx.size, dtype=np.int8)
        prop = np.empty(idx.size)
        groups = _group_of(st)
        u_act, u_cls = rng.random(idx.size), rng.random(idx.size)
        for g, name in enumerate(_GROUPS):
            rows = np.flatnonzero(groups == g)
            if rows.size == 0:
                continue
            tg = t.take(idx[rows])
            probs, names = _policy(st[rows], kk[rows], tg, name)
            choice = _draw(probs, u_act[rows])
            action[rows] = names[choice]
            prop[rows] = probs[np.arange(rows.size), choice]
            closing = choice == probs.shape[1] - 1
            out_cls = np.full(rows.size, CLOSE, dtype=np.int8)
            open_all = np.flatnonzero(~closing) if name != "PC" else np.empty(0, dtype=np.int64)
            for lo in range(0, open_all.size, _SIM_CHUNK):  # bounded memory: q is (rows, actions, 8)
                open_ = open_all[lo : lo + _SIM_CHUNK]
                q = _outcome_probs(st[rows[open_]], tg.take(open_), name, cal)
                out_cls[open_] = _draw(q[np.arange(open_.size), choice[open_]], u_cls[rows[open_]])
            cls[rows] = out_cls
        outcome, amount = _label(idx, st, action, cls, t, claim, agreed, paid, rng)
        second = DAY_START + rng.integers(0, DAY_SECONDS, size=idx.size)
        row: tuple[np.ndarray, ...] = (
            idx.astype(np.int32),
            day[idx].copy(),
            second.astype(np.int32),
            action,
            outcome,
            amount,
            prop,
            st.copy(),
            k[idx].copy(),
            cls,
        )
        for f, value in zip(fields, row, strict=True):
            parts[f].append(value)
        state[idx] = _NEXT[st, cls]
        alive[idx[cls == CLOSE]] = False
        k[idx] += 1
        day[idx] += rng.integers(GAP_MIN, GAP_MAX + 1, size=idx.size).astype(np.int32)
    columns = {}
    for f in fields:  # one column at a time, so the step pieces are freed as we go
        columns[f] = np.concatenate(parts.pop(f))
    return _Log(**columns)


def _label(
    idx: np.ndarray,
    st: np.ndarray,
    action: np.ndarray,
    cls: np.ndarray,
    t: _Traits,
    claim: np.ndarray,
    agreed: np.ndarray,
    paid: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Event outcome label and amount (CNY) for each row; updates agreed/paid amounts per case."""
    m = idx.size
    out = np.full(m, _OUT["failed"], dtype=np.int8)
    u = rng.random(m)
    zw = t.zw[idx]
    act = action.astype(np.int64)
    line = np.where(st <= W_GOOD1, W_LINE[np.minimum(st, 4)], 1)
    fail = cls == FAIL
    phone = np.isin(act, [_ACT["sms_warning"], _ACT["flash_sms"]])
    out[fail & phone & (line == 1)] = np.where(
        u < 0.9, _OUT["delivered"], np.where(u < 0.97, _OUT["sent"], _OUT["opted_out"])
    )[fail & phone & (line == 1)]
    sel = fail & (act == _ACT["similar_case_push"]) & (line == 1)
    out[sel] = _OUT["delivered"]
    sel = fail & (act == _ACT["voice_call"]) & (line == 1)
    out[sel] = np.where(u < 0.95, _OUT["no_answer"], _OUT["opted_out"])[sel]
    out[fail & (act == _ACT["lawyer_letter"])] = _OUT["delivered"]
    out[fail & np.isin(act, [_ACT["asset_preservation"], _ACT["payment_order"]])] = _OUT["order_issued"]
    talk = np.isin(act, [_ACT["mediator_call"], _ACT["video_mediation"], _ACT["online_negotiation"]])
    sel = fail & talk
    in_m = (st == M0) | (st == M1)
    out[sel] = np.where(
        in_m & (u < 0.04), _OUT["disputed"], np.where(in_m & (u > 0.97), _OUT["opted_out"], _OUT["no_answer"])
    )[sel]
    sel = fail & (act == _ACT["installment_offer"])
    out[sel] = np.where(u < 0.05, _OUT["disputed"], _OUT["sent"])[sel]
    sel = fail & (act == _ACT["file_lawsuit"])
    out[sel] = np.where(u < 0.7, _OUT["filed"], _OUT["judged"])[sel]
    # contact: reached or refused (after an agreement: reached in A0, refused in A1)
    sel = cls == CONTACT
    refuse = u < _sigmoid(-0.5 - 0.8 * zw)
    out[sel] = np.where(st == A0, _OUT["reached"], np.where((st == A1) | refuse, _OUT["refused"], _OUT["reached"]))[sel]
    for c, name in (
        (PROMISE, "promise_to_pay"),
        (AGREE, "agreement"),
        (PAID, "paid"),
        (PARTIAL, "partial_paid"),
        (REPAIR, "delivered"),
        (CERT, "certificate_issued"),
        (CLOSE, "closed"),
    ):
        out[cls == c] = _OUT[name]
    amount = np.full(m, np.nan)
    share = rng.uniform(0.6, 1.0, size=m)
    cases_ = idx
    sel = cls == AGREE
    agreed[cases_[sel]] = np.round(claim[cases_[sel]] * share[sel], 2)
    amount[sel] = agreed[cases_[sel]]
    sel = (cls == PARTIAL) & (agreed[cases_] == 0)
    agreed[cases_[sel]] = np.round(claim[cases_[sel]] * share[sel], 2)
    sel = cls == PARTIAL
    base = np.maximum(agreed[cases_] - paid[cases_], 0.0)
    amount[sel] = np.maximum(np.round(base[sel] * (0.1 + 0.3 * u[sel]), 2), 0.01)
    sel = cls == PAID
    rest = np.where(agreed[cases_] > 0, agreed[cases_] - paid[cases_], claim[cases_] * share)
    amount[sel] = np.maximum(np.round(rest[sel], 2), 0.01)
    pay = (cls == PAID) | (cls == PARTIAL)
    paid[cases_[pay]] += amount[pay]
    return out, amount


# --------------------------------------------------------------------------- the oracle


@functools.lru_cache(maxsize=4)
def _gap_sum_tables(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """pmf[j, s] and cdf[j, s] of the sum of j step gaps (days), j = 0..steps."""
    size = GAP_MAX * steps + 2
    pmf = np.zeros((steps + 1, size))
    pmf[0, 0] = 1.0
    gap = np.zeros(GAP_MAX + 1)
    gap[GAP_MIN:] = 1.0 / (GAP_MAX - GAP_MIN + 1)
    for j in range(1, steps + 1):
        pmf[j] = np.convolve(pmf[j - 1], gap)[:size]
    return pmf, np.cumsum(pmf, axis=1)


_AGG = np.zeros((N_CLASSES, 6))  # classes -> [settle, contact, promise, fail, repair, cert]
_AGG[[AGREE, PAID, PARTIAL], 0] = 1
_AGG[CONTACT, 1] = 1
_AGG[PROMISE, 2] = 1
_AGG[FAIL, 3] = 1
_AGG[REPAIR, 4] = 1
_AGG[CERT, 5] = 1
_SET, _CON, _PRO, _FAI, _REP, _CER = range(6)


def _oracle(
    pop: _Population,
    case: np.ndarray,
    state: np.ndarray,
    k: np.ndarray,
    days_left: np.ndarray,
    second: np.ndarray,
    cal: Calibration,
    horizons: tuple[int, int] = (14, 90),
    block: int = 25_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact P(reached-type event within horizons[0] days) and P(settled-type within horizons[1]).

    One row per decision point: its case (row of the case pool), its live state and attempt
    count before the step, the days from the step's day to the last day the case can still
    act (life cap or world end) and the step's second of the day. Windows are [t, t + H days) in event time. Points are
    processed in blocks sharing the stage and the attempt count, so the policy's regime and
    close weight are scalars within a block.
    """
    n = len(state)
    # one int64 key: stage group, then k, then days_left descending
    key = (state > W_GOOD1).astype(np.int64)
    key += state > M1
    key <<= 24
    key |= k
    key <<= 24
    key |= (1 << 24) - 1 - np.minimum(days_left, (1 << 24) - 1)
    order = np.argsort(key, kind="stable").astype(np.int32)
    key = key[order] >> 24
    bounds = np.flatnonzero(key[1:] != key[:-1]) + 1
    del key
    p_reach, p_settle = np.zeros(n), np.zeros(n)
    for group in np.split(order, bounds):
        for lo in range(0, group.size, block):
            rows = group[lo : lo + block]
            p_reach[rows], p_settle[rows] = _oracle_block(
                _case_traits(pop, case[rows]),
                state[rows],
                int(k[rows[0]]),
                days_left[rows].astype(np.int64),
                second[rows].astype(np.int64),
                cal,
                horizons,
            )
    return p_reach, p_settle


def _mix(weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """sum_a weights[n, r, a] q[n, a, c] as a contiguous (r, c, n) array."""
    return np.ascontiguousarray(np.matmul(weights, q).transpose(1, 2, 0))


def _oracle_block(
    t: _Traits,
    state: np.ndarray,
    k0: int,
    days_left: np.ndarray,
    second: np.ndarray,
    cal: Calibration,
    horizons: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """The dynamic programme for points with one stage group and one attempt count k0.

    Points are sorted by days_left descending, so the points whose window still holds step j
    are a prefix. Live states: 0 the W state at the decision (if in W), 1 W good+works (after
    a repair), 2 M0, 3 M1, 4 A0, 5 A1.
    """
    n = len(state)
    w, mw, a0w, a1w = _policy_tables()
    in_w = state[0] <= W_GOOD1
    mix: dict[str, np.ndarray] = {}  # (regime, 6 classes, n) mixtures per live state
    norm: dict[str, np.ndarray] = {}  # (regime, n) sum of non-close weights
    if in_w:
        wt_own = w[t.large, t.dead_seen, W_FLAG[state]]
        wt_good = w[t.large, t.dead_seen, 2]
        mix["Wo"] = _mix(wt_own, _q_warning(t, W_LINE[state], cal) @ _AGG)
        mix["Wg"] = _mix(wt_good, _q_warning(t, np.ones(n, dtype=np.int64), cal) @ _AGG)
        norm["Wo"] = np.ascontiguousarray(wt_own.sum(-1).T)
        norm["Wg"] = np.ascontiguousarray(wt_good.sum(-1).T)
    mt = mw[t.large]
    for m, name in ((0, "M0"), (1, "M1")):
        mix[name] = _mix(mt[:, m], _q_mediation(t, np.full(n, m, dtype=bool), cal) @ _AGG)
        norm[name] = np.ascontiguousarray(mt[:, m].sum(-1).T)
    mix["A0"] = _mix(np.broadcast_to(a0w, (n, 1, len(a0w))), _q_agreed(t, False) @ _AGG)
    mix["A1"] = _mix(np.broadcast_to(a1w, (n, 1, len(a1w))), _q_agreed(t, True) @ _AGG)
    norm["A0"] = np.full((1, n), a0w.sum())
    norm["A1"] = np.full((1, n), a1w.sum())

    h_reach, h_settle = horizons
    steps = h_settle // GAP_MIN + 1
    pmf, cdf = _gap_sum_tables(steps)
    q_before = (second - DAY_START) / DAY_SECONDS  # P(a later step's second falls before this one)
    names = ("Wo", "Wg", "M0", "M1", "A0", "A1")
    mass_s = np.zeros((6, n))
    if in_w:
        mass_s[0] = 1.0
    else:
        for position, s in ((2, M0), (3, M1), (4, A0), (5, A1)):
            mass_s[position, state == s] = 1.0
    mass_r = mass_s.copy()
    p_reach, p_settle = np.zeros(n), np.zeros(n)
    neg_left = -days_left  # ascending, for searchsorted
    for j in range(steps + 1):
        # points whose settle window can still hold step j: S_j >= 3j <= min(days_left, H)
        m = int(np.searchsorted(neg_left, -min(GAP_MIN * j, h_settle), side="right"))
        if m == 0:
            break
        k = k0 + j
        dl, qb = days_left[:m], q_before[:m]
        g_settle = cdf[j, np.minimum(h_settle - 1, dl)] + (dl >= h_settle) * pmf[j, h_settle] * qb
        reach_on = GAP_MIN * j <= h_reach
        g_reach = cdf[j, np.minimum(h_reach - 1, dl)] + (dl >= h_reach) * pmf[j, h_reach] * qb
        regime = {
            "Wo": _W_REGIME[min(k, 5)],
            "Wg": _W_REGIME[min(k, 5)],
            "M0": _M_REGIME[min(k, 10)],
            "M1": _M_REGIME[min(k, 10)],
            "A0": 0,
            "A1": 0,
        }
        kk = np.array([k])
        close = {
            "Wo": _close_weight("W", kk)[0],
            "M0": _close_weight("M", kk)[0],
            "A0": _close_weight("A0", kk)[0],
            "A1": _close_weight("A1", kk)[0],
        }
        close["Wg"], close["M1"] = close["Wo"], close["M0"]
        new_s = np.zeros((6, m))
        new_r = np.zeros((6, m))
        settle_j = np.zeros(m)
        reach_j = np.zeros(m)
        for i, name in enumerate(names):
            if np.isinf(close[name]) or name not in mix:
                continue
            live_s = mass_s[i, :m].any()
            live_r = reach_on and mass_r[i, :m].any()
            if not (live_s or live_r):
                continue
            b = mix[name][regime[name], :, :m]
            inv = 1.0 / (norm[name][regime[name], :m] + close[name])
            if live_s:
                x = mass_s[i, :m] * inv
                settle_j += x * b[_SET]
                _spread(new_s, i, x, b, settle=True)
            if live_r:
                x = mass_r[i, :m] * inv
                reach_j += x * (b[_SET] + b[_CON] + b[_PRO])
                _spread(new_r, i, x, b, settle=False)
        p_settle[:m] += settle_j * g_settle
        p_reach[:m] += reach_j * g_reach
        mass_s, mass_r = new_s, new_r
    return p_reach, p_settle


def _spread(new: np.ndarray, i: int, x: np.ndarray, b: np.ndarray, settle: bool) -> None:
    """Add the non-absorbed outcome mass of live state ``i`` (weights ``x``) to ``new``.

    In the settle chain agreement/paid/partial absorb; in the reach chain every reached-type
    class (settle, contact, promise) absorbs too.
    """
    new[i] += x * b[_FAI]
    if i <= 1:  # W: repair -> W good; contact -> M0; promise -> M1; certificate ends the case
        new[1] += x * b[_REP]
        if settle:
            new[2] += x * b[_CON]
            new[3] += x * b[_PRO]
    elif i == 2 or i == 3:  # M0 / M1
        if settle:
            new[2] += x * b[_CON]
            new[3] += x * b[_PRO]
    elif i == 4:  # A0: certificate -> A1; contact stays
        new[5] += x * b[_CER]
        if settle:
            new[4] += x * b[_CON]
    elif settle:  # A1: contact (refuses to go on paying) -> M0
        new[2] += x * b[_CON]


# --------------------------------------------------------------------------- identities


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """ASCII digit bytes (n, width) of non-negative integers, zero padded."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10 + 48).astype(np.uint8)


def _ascii_strings(matrix: np.ndarray, mask: np.ndarray | None = None) -> pd.Series:
    """A pyarrow-backed string Series from fixed-width ASCII bytes (n, width); ``mask`` = missing."""
    fixed = np.ascontiguousarray(matrix).view(f"S{matrix.shape[1]}").ravel()
    arr = pa.array(fixed, mask=mask).cast(pa.binary()).cast(pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(arr))


def _vocab_strings(vocab: list[str], codes: np.ndarray) -> pd.Series:
    """A pyarrow-backed string Series ``vocab[codes]`` (code -1 = missing)."""
    arr = pa.array(vocab, type=pa.string()).take(pa.array(codes, mask=codes < 0))
    return pd.Series(pd.arrays.ArrowStringArray(arr))


ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)


def id_check_character(first17: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check byte (ASCII) for digit rows (n, 17) of values 0-9."""
    return ID_CHECK[(first17 * ID_WEIGHTS).sum(axis=1) % 11]


def _id_numbers(region: np.ndarray, birth_day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unique 18-character resident ID bytes (n, 18) for region codes and birth days (epoch days)."""
    n = len(region)
    seq = rng.integers(0, 1000, size=n)
    while True:
        key = (region.astype(np.int64) * 100_000 + birth_day) * 1000 + seq
        _, first = np.unique(key, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        seq[dup] = rng.integers(0, 1000, size=int(dup.sum()))
    codes = np.array([int(r[0]) for r in REGIONS])[region]
    days = birth_day.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    ymd = (
        (days.astype("datetime64[Y]").astype(np.int64) + 1970) * 10000
        + (months.astype(np.int64) % 12 + 1) * 100
        + (days - months).astype(np.int64)
        + 1
    )
    digits = np.concatenate([_digits(codes, 6), _digits(ymd, 8), _digits(seq, 3)], axis=1) - 48
    check = id_check_character(digits.astype(np.int64))
    return np.concatenate([(digits + 48).astype(np.uint8), check[:, None]], axis=1)


def _names(n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Chinese person names: a vocabulary and one code per person."""
    sur = rng.integers(0, len(SURNAMES), size=n)
    g1 = rng.integers(0, len(GIVEN_CHARS), size=n)
    g2 = np.where(rng.random(n) < 0.7, rng.integers(0, len(GIVEN_CHARS), size=n), -1)
    code = (sur * (len(GIVEN_CHARS) + 1) + g1) * (len(GIVEN_CHARS) + 1) + (g2 + 1)
    uniq, inverse = np.unique(code, return_inverse=True)
    vocab = []
    for c in uniq.tolist():
        rest, b = divmod(c, len(GIVEN_CHARS) + 1)
        s, a = divmod(rest, len(GIVEN_CHARS) + 1)
        vocab.append(SURNAMES[s] + GIVEN_CHARS[a] + (GIVEN_CHARS[b - 1] if b else ""))
    return vocab, inverse


# --------------------------------------------------------------------------- world generation


def _epoch_day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _days_to_datetime(days: np.ndarray, seconds: np.ndarray | None = None) -> np.ndarray:
    """datetime64[s] from epoch days (negative = missing) and optional seconds of the day."""
    out = days.astype(np.int64) * 86400
    if seconds is not None:
        out = out + seconds
    res = out.astype("datetime64[s]")
    res[days < 0] = np.datetime64("NaT")
    return res


def _round2(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


@dataclass
class _Population:
    """Debtor- and case-level arrays that later phases of the simulation need."""

    # debtors
    company_primary: np.ndarray
    zr: np.ndarray
    zc: np.ndarray
    zw: np.ndarray
    dead: np.ndarray
    has_property: np.ndarray
    has_vehicle: np.ndarray
    income: np.ndarray
    birth: np.ndarray
    ids: pd.CategoricalDtype  # resident ID per debtor (categories in debtor order)
    lit_count: np.ndarray
    lit_first: np.ndarray
    deb_start: np.ndarray
    # cases
    debtor: np.ndarray
    ct: np.ndarray
    creditor: np.ndarray
    company: np.ndarray
    principal: np.ndarray
    claim: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    life: np.ndarray
    has_phone: np.ndarray
    line0: np.ndarray
    status0: np.ndarray
    state0: np.ndarray
    dead_seen: np.ndarray
    in_scope: np.ndarray


def _case_traits(pop: _Population, idx: np.ndarray) -> _Traits:
    """Effect-model inputs of the cases ``idx``."""
    d = pop.debtor[idx]
    principal = pop.principal[idx]
    return _Traits(
        ct=pop.ct[idx].astype(np.int64),
        zr=pop.zr[d],
        zc=pop.zc[d],
        zw=pop.zw[d],
        assets=(pop.has_property[d] | pop.has_vehicle[d]).astype(float),
        lpr=np.log(principal / 10_000),
        large=(principal >= 20_000).astype(np.int64),
        dead_seen=pop.dead_seen[idx].astype(np.int64),
    )


def _draw_cases(n: int, end_day: int, rng: np.random.Generator) -> tuple[_Population, pd.DataFrame]:
    """Debtors, their hidden traits and the case pool (contract table 1)."""
    # ---- debtors and the cases they owe
    n_deb = max(1, int(round(n / 1.03)))
    n_dup = n - n_deb
    ct = (rng.random(n) >= BANK_SHARE).astype(np.int8)
    company_primary = rng.random(n_deb) < 0.003
    person_pool = np.flatnonzero(~company_primary)
    dup_debtors = rng.choice(person_pool, size=min(n_dup, person_pool.size), replace=False)
    slot_debtor = np.concatenate([np.arange(n_deb), dup_debtors])
    n = slot_debtor.size
    ct = ct[:n]
    perm = rng.permutation(n)
    debtor = slot_debtor[perm]
    is_second = perm >= n_deb
    primary_ct = np.zeros(n_deb, dtype=np.int8)
    primary_ct[debtor[~is_second]] = ct[~is_second]
    bank_idx = rng.choice(len(BANKS), size=n, p=_BANK_WEIGHTS / _BANK_WEIGHTS.sum())
    cf_idx = len(BANKS) + rng.choice(len(CONSUMER_FINANCE), size=n, p=_CF_WEIGHTS / _CF_WEIGHTS.sum())
    creditor = np.where(ct == 0, bank_idx, cf_idx).astype(np.int64)
    first_creditor = np.full(n_deb, -1)
    first_creditor[debtor[~is_second]] = creditor[~is_second]
    clash = is_second & (creditor == first_creditor[debtor])  # a second case is at another creditor
    creditor[clash & (ct == 0)] = (creditor[clash & (ct == 0)] + 1) % len(BANKS)
    cf_clash = clash & (ct == 1)
    creditor[cf_clash] = len(BANKS) + (creditor[cf_clash] - len(BANKS) + 1) % len(CONSUMER_FINANCE)
    company = company_primary[debtor]

    # hidden traits per debtor
    corr = np.array([[1.0, 0.2, 0.3], [0.2, 1.0, 0.3], [0.3, 0.3, 1.0]])
    z = rng.standard_normal((n_deb, 3)) @ np.linalg.cholesky(corr).T
    bank_d = primary_ct == 0
    zr = z[:, 0] + 0.3 * bank_d
    zc = z[:, 1] + 0.4 * bank_d
    zw = z[:, 2] + 0.3 * bank_d
    del z
    dead = rng.random(n_deb) < _sigmoid(-3.2 - 1.2 * zc)
    has_property = (rng.random(n_deb) < _sigmoid(-1.0 + 1.3 * zc)) & ~dead
    has_vehicle = (rng.random(n_deb) < _sigmoid(-1.3 + 1.0 * zc)) & ~dead
    income = np.exp(np.log(6000) + 0.55 * zc + 0.2 * bank_d)
    region = rng.choice(len(REGIONS), size=n_deb, p=_REGION_WEIGHTS / _REGION_WEIGHTS.sum())
    birth = rng.integers(_epoch_day(dt.date(1960, 1, 1)), _epoch_day(dt.date(2003, 12, 31)) + 1, size=n_deb)
    d = debtor

    # ---- the case pool
    product = np.where(ct == 0, np.where(rng.random(n) < 0.8, 0, 1), np.where(rng.random(n) < 0.65, 2, 1))
    product[company & (ct == 0)] = 1
    product[company & (ct == 1)] = 2
    kind = [product == 0, (product == 1) & (ct == 0), product == 2]
    median = np.select(kind, [15000.0, 30000.0, 5000.0], 8000.0)
    sigma = np.select(kind, [0.6, 0.8, 0.7], 0.9)
    principal = median * np.exp(sigma * rng.standard_normal(n) + 0.15 * zc[d])
    big_loan = (product == 1) & (rng.random(n) < 0.012 / 0.33)  # out of scope: >= 100,000 CNY
    principal = _round2(np.where(big_loan, rng.uniform(100_000, 300_000, size=n), np.clip(principal, 500, 99_000)))
    del median, sigma, big_loan, kind
    start = end_day - rng.integers(1, 701, size=n)
    overdue = start - rng.integers(30, 401, size=n)
    loan = overdue - rng.integers(60, 1101, size=n)
    rate = np.where(
        product == 0,
        np.where(rng.random(n) < 0.6, 0.1825, rng.uniform(0.12, 0.24, size=n)),
        np.where(ct == 0, rng.uniform(0.07, 0.18, size=n), rng.uniform(0.10, 0.36, size=n)),
    )
    rate = np.round(rate, 4)
    years_overdue = (start - overdue) / 365.0
    interest = _round2(principal * rate * years_overdue)
    penalty = _round2(principal * rate * 0.5 * years_overdue * (rng.random(n) < 0.85))
    fees = _round2(np.where(rng.random(n) < 0.6, rng.uniform(0, 300, size=n), 0.0) * (1 + (ct == 1)))
    claim = principal + interest + penalty + fees
    paid_before = rng.random(n) < _sigmoid(0.3 + 0.8 * zw[d])
    span = np.maximum(1, np.minimum(180, overdue - loan))
    last_payment = np.where(paid_before, overdue - rng.integers(0, span), -1)
    life = rng.integers(90, 181, size=n)
    stop = np.minimum(start + life, end_day)

    # the phone on file and its first status check (what the policy sees)
    has_phone = rng.random(n) >= 0.10
    line0 = has_phone & (rng.random(n) < _sigmoid(0.8 + 1.0 * zr[d]))
    status0 = _phone_status(line0, has_phone, rng)
    flag0 = np.where(~has_phone, 0, np.where((status0 == 0) & ~company, 2, 1))
    state0 = np.select(
        [flag0 == 0, (flag0 == 1) & ~line0, flag0 == 1, ~line0], [W_NONE0, W_BAD0, W_BAD1, W_GOOD0], W_GOOD1
    ).astype(np.int8)

    # litigation snapshot dates (the first one tells the policy about dead debt)
    lit_count = np.where(company_primary, 0, rng.choice(3, size=n_deb, p=[0.3, 0.4, 0.3]))
    deb_start = np.full(n_deb, end_day)
    np.minimum.at(deb_start, debtor, start)
    lit_first = deb_start - rng.integers(1, 61, size=n_deb)
    dead_seen = dead[d] & (lit_count[d] > 0) & (lit_first[d] <= start)

    # ---- identities and the table
    ids = _id_numbers(region, birth, rng)
    names_vocab, name_code = _names(n_deb, rng)
    company_names = [c + w + kd for c in _COMPANY_CITY for w in _COMPANY_WORD for kd in _COMPANY_KIND]
    company_code = rng.integers(0, len(company_names), size=n_deb)
    phone_digits = np.concatenate(
        [
            np.full((n, 1), 49, np.uint8),
            _digits(rng.integers(3, 10, size=n), 1),
            _digits(rng.integers(0, 10**9, size=n), 9),
        ],
        axis=1,
    )
    case_region = np.where(rng.random(n) < 0.85, region[d], rng.integers(0, len(REGIONS), size=n))
    province_code = np.array([PROVINCES.index(r[1]) for r in REGIONS])[case_region]
    province_code = np.where(rng.random(n) < 0.05, -1, province_code)
    court_code = np.where(rng.random(n) < 0.3, -1, case_region)
    cases = _frame(
        {
            "case_id": _case_ids(creditor, n),
            "creditor": pd.Categorical.from_codes(creditor, categories=list(CREDITORS)),
            "product": pd.Categorical.from_codes(product, categories=list(PRODUCTS)),
            "debtor_type": pd.Categorical.from_codes(company.astype(np.int8), categories=["person", "company"]),
            "debtor_name": _vocab_strings(
                names_vocab + company_names, np.where(company, len(names_vocab) + company_code[d], name_code[d])
            ),
            "id_number": _ascii_strings(ids[d], mask=company),
            "phone": _ascii_strings(phone_digits, mask=~has_phone),
            "province": pd.Categorical.from_codes(province_code, categories=list(PROVINCES)),
            "principal": principal,
            "interest": interest,
            "penalty": penalty,
            "fees": fees,
            "annual_rate": rate,
            "loan_date": _days_to_datetime(loan),
            "overdue_since": _days_to_datetime(overdue),
            "last_payment_date": _days_to_datetime(last_payment),
            "court": pd.Categorical.from_codes(court_code, categories=[r[2] for r in REGIONS]),
        }
    )
    pop = _Population(
        company_primary=company_primary,
        zr=zr,
        zc=zc,
        zw=zw,
        dead=dead,
        has_property=has_property,
        has_vehicle=has_vehicle,
        income=income,
        birth=birth,
        ids=_unique_dtype(pd.Index(_ascii_strings(ids).array)),
        lit_count=lit_count,
        lit_first=lit_first,
        deb_start=deb_start,
        debtor=debtor,
        ct=ct,
        creditor=creditor,
        company=company,
        principal=principal,
        claim=claim,
        start=start,
        stop=stop,
        life=life,
        has_phone=has_phone,
        line0=line0,
        status0=status0,
        state0=state0,
        dead_seen=dead_seen,
        in_scope=(product == 0) | (~company & (principal < SCOPE_PRINCIPAL_LIMIT)),
    )
    return pop, cases


def simulate_world(
    n_cases: int, seed: int, end: dt.date = dt.date(2026, 6, 30), calibration: Calibration = CALIBRATION
) -> World:
    """Simulate ``n_cases`` cases and everything the platform would know about them.

    Deterministic per ``seed`` (numpy PCG64). Amounts are CNY, dates are local dates,
    timestamps naive Asia/Shanghai local time except ``truth_decisions.decision_time`` (UTC).
    The phases run in an order that keeps peak memory low (about 1.3 GB for 10^6 cases).
    """
    if n_cases < 1:
        raise ValueError("n_cases must be at least 1")
    rng = np.random.Generator(np.random.PCG64(seed))
    end_day = _epoch_day(end)
    pop, cases = _draw_cases(int(n_cases), end_day, rng)
    case_dtype = _unique_dtype(pd.Index(cases["case_id"].array))
    creditor_dtype = cases["creditor"].dtype
    _release_memory()
    n = len(cases)
    persons = np.flatnonzero(~pop.company_primary)
    # A debtor with two cases gets snapshots through both; a provider reports one per day.
    capacity = _one_per_key(_capacity(persons, pop, end_day, rng), ["id_number", "as_of"])
    litigation = _one_per_key(_litigation(persons, pop, end_day, rng), ["id_number", "as_of"])

    traits = _case_traits(pop, np.arange(n))
    _release_memory()
    log = _simulate_cases(traits, pop.state0, pop.start, pop.stop, pop.claim, calibration, rng)
    del traits
    _release_memory()
    order = np.argsort(log.case, kind="stable")
    for f in _Log.__dataclass_fields__:  # in place, one column at a time
        setattr(log, f, getattr(log, f)[order])
    del order

    n_med = max(5, n // 150)
    mediators = _mediators(n_med, rng)
    mediator_of_case = rng.integers(0, n_med, size=n)
    repair_rows = np.flatnonzero((log.action == _ACT["contact_repair"]) & ~pop.company[log.case])
    repairs = (
        log.case[repair_rows],
        log.day[repair_rows],
        log.second[repair_rows],
        log.outcome[repair_rows] == _OUT["delivered"],
    )
    del repair_rows

    # Each open step is a decision point with a fixed probability: a rule that looks at the
    # future (say "3 steps of each case") would bias the realised outcomes against the oracle.
    live = log.state < N_LIVE
    in_sample = live & (rng.random(live.size) < DECISION_SAMPLE_RATE)
    points = np.flatnonzero(in_sample | (log.k == 0))
    point_case, point_state, point_k = log.case[points], log.state[points], log.k[points]
    point_day, point_second = log.day[points], log.second[points]
    point_sampled = in_sample[points]
    del live, in_sample, points
    reached = np.zeros(n, dtype=bool)
    reached[log.case[np.isin(log.outcome, [_OUT[o] for o in REACHED_OUTCOMES])]] = True
    settled = np.zeros(n, dtype=bool)
    settled[log.case[np.isin(log.outcome, [_OUT[o] for o in SETTLED_OUTCOMES])]] = True
    log.state = log.cls = np.empty(0, dtype=np.int8)  # the events table does not need these
    log.k = np.empty(0, dtype=np.int16)
    days_left = (pop.stop[point_case] - point_day).astype(np.int32)
    p_reach, p_settle = _oracle(pop, point_case, point_state, point_k, days_left, point_second, calibration)
    del days_left
    _release_memory()
    contact_checks = _one_per_key(_contact_checks(repairs, pop, rng), ["id_number", "checked_at"])
    del repairs
    _release_memory()

    sel = point_sampled
    stage_code = np.where(point_state[sel] <= W_GOOD1, 0, np.where(point_state[sel] <= M1, 1, 2))
    truth_decisions = _frame(
        {
            "case_id": _categorical(point_case[sel], case_dtype),
            "creditor": pd.Categorical.from_codes(pop.creditor[point_case[sel]], dtype=creditor_dtype),
            "decision_time": pd.DatetimeIndex(
                _days_to_datetime(point_day[sel], point_second[sel]) - SHANGHAI_OFFSET
            ).tz_localize("UTC"),
            "step": point_k[sel].astype(np.int64),
            "stage": pd.Categorical.from_codes(stage_code, categories=["warning", "mediation", "agreement"]),
            "p_reach_14d": p_reach[sel],
            "p_settle_90d": p_settle[sel],
        }
    )
    del sel, stage_code, point_sampled, point_day, point_second, point_state
    _release_memory()
    first = point_k == 0
    p_first = []
    for p in (p_reach, p_settle):
        column = np.zeros(n)
        column[point_case[first]] = p[first]
        p_first.append(column)
    del p_reach, p_settle, point_case, point_k, first
    _release_memory()
    d = pop.debtor
    truth = _frame(
        {
            "case_id": cases["case_id"].array,
            "creditor": cases["creditor"].array.copy(),
            "creditor_type": pd.Categorical.from_codes(pop.ct, categories=["bank", "consumer_finance"]),
            "reachability": pop.zr[d],
            "capacity": pop.zc[d],
            "willingness": pop.zw[d],
            "has_assets": (pop.has_property | pop.has_vehicle)[d],
            "dead_debt": pop.dead[d],
            "line_works_at_start": pop.line0,
            "start_date": _days_to_datetime(pop.start),
            "life_days": pop.life.astype(np.int64),
            "in_scope": pop.in_scope,
            "reached": reached,
            "settled": settled,
            "p_reach_14d": p_first[0],
            "p_settle_90d": p_first[1],
        }
    )
    del reached, settled, p_first, d
    creditor = pop.creditor
    del pop
    _release_memory()

    events = _events_frame(log, creditor, mediator_of_case, mediators, case_dtype, creditor_dtype)
    del log, mediator_of_case
    _release_memory()
    return World(cases, contact_checks, events, capacity, litigation, mediators, truth, truth_decisions)


def _events_frame(
    log: _Log,
    creditor: np.ndarray,
    mediator_of_case: np.ndarray,
    mediators: pd.DataFrame,
    case_dtype: pd.CategoricalDtype,
    creditor_dtype: pd.CategoricalDtype,
) -> pd.DataFrame:
    """Contract table 3 from the simulation log, releasing the log's columns as they are used."""
    columns: dict[str, object] = {}
    columns["case_id"] = _categorical(log.case, case_dtype)
    columns["creditor"] = pd.Categorical.from_codes(creditor[log.case], dtype=creditor_dtype)
    by_mediator = np.isin(log.action, [_ACT[a] for a in MEDIATOR_ACTIONS])
    actor = np.where(by_mediator, mediator_of_case[log.case] + 1, 0).astype(np.int32)
    del by_mediator
    log.case = np.empty(0, dtype=np.int32)
    columns["at"] = _days_to_datetime(log.day, log.second)
    log.day = log.second = np.empty(0, dtype=np.int32)
    columns["action"] = pd.Categorical.from_codes(log.action, categories=list(ACTIONS))
    columns["actor"] = pd.Categorical.from_codes(actor, categories=["system", *mediators["mediator_id"]])
    del actor
    columns["outcome"] = pd.Categorical.from_codes(log.outcome, categories=list(OUTCOMES))
    log.action = log.outcome = log.state = log.cls = np.empty(0, dtype=np.int8)
    log.k = np.empty(0, dtype=np.int16)
    columns["amount"] = log.amount
    columns["propensity"] = log.propensity
    log.amount = log.propensity = np.empty(0)
    return _frame(columns)


def _case_ids(creditor: np.ndarray, n: int) -> pd.Series:
    """``<creditor prefix><8-digit running number>``, unique within (and across) creditors."""
    order = np.argsort(creditor, kind="stable")
    seq = np.empty(n, dtype=np.int64)
    counts = np.bincount(creditor, minlength=len(CREDITORS))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    seq[order] = np.arange(n) - np.repeat(starts, counts) + 1
    prefix = np.frombuffer("".join(_CREDITOR_PREFIX).encode(), dtype=np.uint8).reshape(len(CREDITORS), 4)
    return _ascii_strings(np.concatenate([prefix[creditor], _digits(seq, 8)], axis=1))


def _phone_status(line: np.ndarray, has_phone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Observed phone status code (index into PHONE_STATUSES): a noisy view of whether the line works."""
    u = rng.random(len(line))
    works = np.select([u < 0.85, u < 0.90], [0, 1], 3)
    broken = np.select([u < 0.12, u < 0.45, u < 0.90], [0, 1, 2], 3)
    return np.where(~has_phone, 3, np.where(line, works, broken)).astype(np.int8)


def _contact_checks(
    repairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], pop: _Population, rng: np.random.Generator
) -> pd.DataFrame:
    """Status checks before and during each person's case, and one row per repair attempt.

    ``repairs`` = (case, day, second, success) of the persons' contact_repair events.
    """
    start, stop, line0, has_phone, status0 = pop.start, pop.stop, pop.line0, pop.has_phone, pop.status0
    n = len(start)
    person_cases = np.flatnonzero(~pop.company)
    c2, day2, sec2, success = repairs
    day2, sec2 = day2.astype(np.int64), sec2.astype(np.int64)
    first_fix = np.full(n, np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(first_fix, c2[success], day2[success])
    # initial check (the status the policy sees), a few days before the first step
    c0 = person_cases
    day0 = start[c0] - rng.integers(1, 4, size=c0.size)
    sec0 = rng.integers(0, 86400, size=c0.size)
    # later checks during the life
    n_later = rng.choice(3, size=c0.size, p=[0.4, 0.4, 0.2])
    c1 = np.repeat(c0, n_later)
    span = np.maximum(stop[c1] - start[c1], 1)
    day1 = start[c1] + (rng.random(c1.size) * span).astype(np.int64)
    sec1 = rng.integers(0, 86400, size=c1.size)
    line1 = line0[c1] | (first_fix[c1] < day1)
    status1 = _phone_status(line1, has_phone[c1] | (first_fix[c1] < day1), rng)
    # repairs
    line2 = line0[c2] | (first_fix[c2] < day2)
    status2 = np.where(success, 0, _phone_status(line2, has_phone[c2] | (first_fix[c2] < day2), rng))
    found = np.where(success, rng.choice([1, 2, 3], size=c2.size, p=[0.7, 0.2, 0.1]), 0)
    source = np.where(success, rng.choice(len(REPAIR_SOURCES), size=c2.size), -1)

    when = np.concatenate([day0 * 86400 + sec0, day1 * 86400 + sec1, day2 * 86400 + sec2])
    del day0, sec0, day1, sec1, sec2, line1, line2
    base = int(when.min()) if when.size else 0
    # one int64 key (debtor, seconds): sorts the rows and finds exact repeats of the table key
    key = (pop.debtor[np.concatenate([c0, c1, c2])].astype(np.int64) << 32) | (when - base)
    del when
    order = np.argsort(key, kind="stable")
    key = key[order]
    keep = np.ones(key.size, dtype=bool)  # (id_number, checked_at) is the key: drop exact repeats
    keep[1:] = key[1:] != key[:-1]
    order, key = order[keep], key[keep]
    status = np.concatenate([status0[c0], status1, status2]).astype(np.int8)[order]
    repaired = np.concatenate([np.zeros(c0.size + c1.size, dtype=np.int64), found])[order]
    src = np.concatenate([np.full(c0.size + c1.size, -1, dtype=np.int8), source.astype(np.int8)])[order]
    del order
    return _frame(
        {
            "id_number": _categorical((key >> 32).astype(np.int32), pop.ids),
            "checked_at": ((key & 0xFFFFFFFF) + base).astype("datetime64[s]"),
            "phone_status": pd.Categorical.from_codes(status, categories=list(PHONE_STATUSES)),
            "repaired_numbers": repaired,
            "repair_source": pd.Categorical.from_codes(src, categories=list(REPAIR_SOURCES)),
        }
    )


def _one_per_key(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The first row of each contract key (the importer rejects a repeated key as a duplicate)."""
    repeated = frame.duplicated(key, keep="first").to_numpy()
    return frame.loc[~repeated].reset_index(drop=True) if repeated.any() else frame


def _capacity(persons: np.ndarray, pop: _Population, end_day: int, rng: np.random.Generator) -> pd.DataFrame:
    """1-3 noisy repayment-capacity snapshots per person: the first before the case starts."""
    ids, deb_start, zc, zw, income = pop.ids, pop.deb_start, pop.zc, pop.zw, pop.income
    has_property, has_vehicle, birth, principal, debtor = (
        pop.has_property,
        pop.has_vehicle,
        pop.birth,
        pop.principal,
        pop.debtor,
    )
    count = rng.choice([1, 2, 3], size=persons.size, p=[0.4, 0.4, 0.2])
    p = np.repeat(persons, count)
    nth = np.arange(p.size) - np.repeat(np.cumsum(count) - count, count)
    first = deb_start[persons] - rng.integers(1, 46, size=persons.size)
    day = np.repeat(first, count) + np.where(nth > 0, nth * rng.integers(20, 100, size=p.size), 0)
    ok = day <= end_day
    p, day, m = p[ok], day[ok], int(ok.sum())
    deb_principal = np.zeros(len(zc))
    deb_principal[debtor] = principal
    age = (day - birth[p]) / 365.25
    e = zc[p] + 0.6 * rng.standard_normal(m)
    employment = np.select([age > 58 + 4 * rng.random(m), e > -0.3, e > -1.0, e > -2.2], [3, 0, 1, 2], 4)
    employment = np.where(rng.random(m) < 0.08, 4, employment)

    def blank(x: np.ndarray, share: float) -> np.ndarray:
        return np.where(rng.random(m) < share, np.nan, x)

    inc = income[p] * np.exp(0.25 * rng.standard_normal(m)) * np.where(employment == 2, 0.35, 1.0)
    months = np.where(np.isin(employment, [0, 3]), np.clip(rng.poisson(np.exp(3.2 + 0.4 * zc[p])), 0, 480), 0)
    months_na = rng.random(m) < 0.2
    flip = rng.random((m, 2)) < 0.03
    return _frame(
        {
            "id_number": _categorical(p, ids),
            "as_of": _days_to_datetime(day),
            "monthly_income": blank(_round2(inc), 0.10),
            "income_stability": blank(np.round(_sigmoid(0.8 * zc[p] + 0.5 * rng.standard_normal(m)), 3), 0.15),
            "employment": pd.Categorical.from_codes(employment, categories=list(EMPLOYMENTS)),
            "social_insurance_months": pd.arrays.IntegerArray(months.astype(np.int64), months_na),
            "has_property": has_property[p] ^ flip[:, 0],
            "has_vehicle": has_vehicle[p] ^ flip[:, 1],
            "other_debt": blank(
                _round2(deb_principal[p] * np.exp(0.3 - 0.5 * zw[p] + 0.8 * rng.standard_normal(m))), 0.2
            ),
            "monthly_spend": blank(_round2(income[p] * rng.uniform(0.4, 1.1, size=m) * np.exp(-0.1 * zw[p])), 0.15),
        }
    )


def _litigation(persons: np.ndarray, pop: _Population, end_day: int, rng: np.random.Generator) -> pd.DataFrame:
    """0-2 court-data snapshots per person; terminated enforcement only for dead debt."""
    ids, lit_count, lit_first, deb_start = pop.ids, pop.lit_count, pop.lit_first, pop.deb_start
    zc, zw, dead = pop.zc, pop.zw, pop.dead
    count = lit_count[persons]
    p = np.repeat(persons, count)
    nth = np.arange(p.size) - np.repeat(np.cumsum(count) - count, count)
    day = np.where(nth == 0, lit_first[p], deb_start[p] + rng.integers(15, 200, size=p.size))
    ok = day <= end_day
    p, day, m = p[ok], day[ok], int(ok.sum())
    defendant = rng.poisson(np.exp(-0.8 - 0.6 * zc[p] - 0.5 * zw[p] + 1.2 * dead[p]))
    terminated = np.where(dead[p], 1 + rng.poisson(0.5, size=m), 0)
    enforcement = np.maximum(rng.binomial(defendant, 0.5), terminated)
    defendant = np.maximum(defendant, enforcement)
    dishonest = (dead[p] & (rng.random(m) < 0.5)) | (rng.random(m) < _sigmoid(-3.5 - 0.8 * zw[p] - 0.5 * zc[p]))
    restricted = dishonest | (rng.random(m) < _sigmoid(-3.0 - zc[p]))
    return _frame(
        {
            "id_number": _categorical(p, ids),
            "as_of": _days_to_datetime(day),
            "defendant_cases": defendant.astype(np.int64),
            "enforcement_cases": enforcement.astype(np.int64),
            "terminated_no_assets": terminated.astype(np.int64),
            "dishonest_listed": dishonest,
            "consumption_restricted": restricted,
        }
    )


def _mediators(n_med: int, rng: np.random.Generator) -> pd.DataFrame:
    """Mediators M0001...: organisation, open-case cap 30-200, languages, products, provinces."""
    width = max(4, len(str(n_med)))
    ids = [f"M{i:0{width}d}" for i in range(1, n_med + 1)]
    extra = rng.random((n_med, len(_EXTRA_LANGUAGES))) < 0.2
    langs = [
        ";".join(["mandarin", *(lang for lang, e in zip(_EXTRA_LANGUAGES, row, strict=True) if e)]) for row in extra
    ]
    prod_mask = rng.random((n_med, len(PRODUCTS))) < 0.6
    products = [";".join(p for p, e in zip(PRODUCTS, row, strict=True) if e) or None for row in prod_mask]
    products = [None if b else p for p, b in zip(products, rng.random(n_med) < 0.3, strict=True)]
    prov_mask = rng.random((n_med, len(PROVINCES))) < 0.15
    provinces = [";".join(p for p, e in zip(PROVINCES, row, strict=True) if e) or None for row in prov_mask]
    provinces = [None if b else p for p, b in zip(provinces, rng.random(n_med) < 0.3, strict=True)]
    return pd.DataFrame(
        {
            "mediator_id": ids,
            "organisation": [ORGANISATIONS[i] for i in rng.integers(0, len(ORGANISATIONS), size=n_med)],
            "capacity": rng.integers(30, 201, size=n_med).astype(np.int64),
            "languages": langs,
            "products": products,
            "provinces": provinces,
        }
    )


# --------------------------------------------------------------------------- writing files

_AMOUNT = pa.decimal128(18, 2)
_KIND_ARROW = {
    "amount": _AMOUNT,
    "rate": pa.decimal128(8, 4),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("s"),
}


def _column_kind(table: str, column: str) -> str:
    kind = CONTRACT_TABLES[table].by_name[column].kind
    if table == "capacity" and column == "income_stability":
        return "stability"
    return {"id_number": "string", "phone": "string", "enum": "string", "list": "string"}.get(kind, kind)


def _arrow_column(series: pd.Series, kind: str) -> pa.Array:
    """One column as typed Arrow, formatted the contract's way (2-place decimals, dates, ...)."""
    if kind == "string":
        if isinstance(series.dtype, pd.CategoricalDtype):
            cats = pa.array(series.cat.categories.array, type=pa.string(), from_pandas=True)
            codes = series.cat.codes.to_numpy()
            return cats.take(pa.array(codes, mask=codes < 0))
        return pa.array(series, type=pa.string(), from_pandas=True)
    if kind in ("amount", "rate"):
        places = 2 if kind == "amount" else 4
        values = np.round(series.to_numpy(dtype=float, na_value=np.nan), places)
        return pa.array(values, from_pandas=True).cast(_KIND_ARROW[kind])
    if kind == "stability":
        values = np.round(series.to_numpy(dtype=float, na_value=np.nan), 3)
        return pa.array(values, from_pandas=True).cast(pa.decimal128(5, 3))
    if kind == "date":
        return pa.array(series.to_numpy().astype("datetime64[D]"), from_pandas=True).cast(pa.date32())
    if kind == "timestamp":
        return pa.array(series.to_numpy().astype("datetime64[s]"), from_pandas=True)
    if kind == "int":
        return pa.array(series, type=pa.int64(), from_pandas=True)
    if kind == "bool":
        return pa.array(series, type=pa.bool_(), from_pandas=True)
    return pa.array(series, type=pa.float64(), from_pandas=True)


def to_arrow(df: pd.DataFrame, table: str) -> pa.Table:
    """A contract table as typed Arrow in contract column order (what write_world writes)."""
    names = [c.name for c in CONTRACT_TABLES[table].columns]
    return pa.table({name: _arrow_column(df[name], _column_kind(table, name)) for name in names})


def _write_csv(df: pd.DataFrame, table: str, path: Path, batch: int = 500_000) -> None:
    names = [c.name for c in CONTRACT_TABLES[table].columns]
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with path.open("wb") as sink:
        sink.write((",".join(names) + "\n").encode("utf-8"))
        for lo in range(0, len(df), batch):
            pacsv.write_csv(to_arrow(df.iloc[lo : lo + batch], table), sink, options)


def _write_xlsx(df: pd.DataFrame, table: str, path: Path) -> None:
    frame = to_arrow(df, table).to_pandas(types_mapper=None, date_as_object=True)
    for column in frame.columns:
        kind = _column_kind(table, column)
        if kind in ("amount", "rate", "stability"):
            frame[column] = frame[column].astype(float)
        elif kind == "bool":
            frame[column] = frame[column].map({True: "true", False: "false"})
        elif kind == "int":
            frame[column] = frame[column].astype("Int64")
    with pd.ExcelWriter(
        path,
        engine="xlsxwriter",
        date_format="yyyy-mm-dd",
        datetime_format="yyyy-mm-dd hh:mm:ss",
        engine_kwargs={"options": {"strings_to_urls": False, "strings_to_numbers": False}},
    ) as writer:
        frame.to_excel(writer, sheet_name=table, index=False)


def write_world(world: World, out_dir: Path, fmt: Literal["csv", "xlsx", "parquet"] = "csv") -> dict[str, Path]:
    """Write the six contract tables as ``<table>.<fmt>`` plus ``truth.parquet`` and ``truth_decisions.parquet``.

    CSV is UTF-8 without BOM, unquoted, dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS``
    (naive Asia/Shanghai), amounts with 2 decimals, booleans ``true``/``false``, lists
    ``;``-separated, blanks for missing values. Returns the path of each file by table name.
    """
    if fmt not in ("csv", "xlsx", "parquet"):
        raise ValueError(f"unknown format '{fmt}': use csv, xlsx or parquet")
    if fmt == "xlsx":
        for table in TABLES:
            rows = len(getattr(world, table))
            if rows > XLSX_MAX_ROWS:
                raise ValueError(
                    f"table '{table}' has {rows:,} rows, more than one xlsx sheet holds "
                    f"({XLSX_MAX_ROWS:,}); write csv or parquet instead"
                )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for table in TABLES:
        df = getattr(world, table)
        path = out_dir / f"{table}.{fmt}"
        if fmt == "csv":
            _write_csv(df, table, path)
        elif fmt == "parquet":
            # Row groups of 100,000 rows: a reader decodes a whole row group at a time, so
            # parallel importers of one big file each hold one group, not the file.
            pq.write_table(to_arrow(df, table), path, row_group_size=100_000)
        else:
            _write_xlsx(df, table, path)
        paths[table] = path
    for name in ("truth", "truth_decisions"):
        path = out_dir / f"{name}.parquet"
        getattr(world, name).to_parquet(path, index=False)
        paths[name] = path
    return paths


# --------------------------------------------------------------------------- calibration

TARGETS = {  # metric -> creditor type -> target share
    "reached_share": {"bank": 493 / 1514, "consumer_finance": 1712 / 8791},
    "settled_of_reached": {"bank": 0.5314, "consumer_finance": 0.2634},
    "settled_share": {"bank": 0.1731, "consumer_finance": 0.0513},
    "repair_success": {"all": 0.25},
}
TOLERANCE = 0.03


def calibration_report(world: World) -> pd.DataFrame:
    """Measured base rates against the pilots' (shares in [0, 1]; tolerance in absolute points).

    Rows: reached_share, settled_of_reached and settled_share per creditor type, and
    repair_success (contact_repair events with outcome ``delivered``) over all cases.
    """
    from concord.vocabulary import creditor_kind

    events, cases = world.events, world.cases
    kinds = cases["creditor"].astype(str).map(creditor_kind).to_numpy()
    index = pd.Index(cases["case_id"].astype(str))
    if isinstance(events["case_id"].dtype, pd.CategoricalDtype):
        codes = _codes_for(events["case_id"], index)
    else:
        codes = index.get_indexer(events["case_id"].astype(str))
    outcome = events["outcome"].astype(str).to_numpy()
    reached = np.zeros(len(cases), dtype=bool)
    reached[codes[np.isin(outcome, REACHED_OUTCOMES)]] = True
    settled = np.zeros(len(cases), dtype=bool)
    settled[codes[np.isin(outcome, SETTLED_OUTCOMES)]] = True
    rows = []
    for kind in ("bank", "consumer_finance"):
        sel = kinds == kind
        measured = {
            "reached_share": reached[sel].mean() if sel.any() else np.nan,
            "settled_of_reached": settled[sel & reached].mean() if (sel & reached).any() else np.nan,
            "settled_share": settled[sel].mean() if sel.any() else np.nan,
        }
        for metric, value in measured.items():
            rows.append((metric, kind, float(value), TARGETS[metric][kind]))
    repairs = events["action"].astype(str).to_numpy() == "contact_repair"
    success = float((outcome[repairs] == "delivered").mean()) if repairs.any() else np.nan
    rows.append(("repair_success", "all", success, TARGETS["repair_success"]["all"]))
    report = pd.DataFrame(rows, columns=["metric", "creditor_type", "measured", "target"])
    report["tolerance"] = TOLERANCE
    report["ok"] = (report["measured"] - report["target"]).abs() <= report["tolerance"]
    return report


def _codes_for(column: pd.Series, index: pd.Index) -> np.ndarray:
    """Row positions in ``index`` of a categorical column's values, via its categories."""
    cat_pos = index.get_indexer(column.cat.categories.astype(str))
    return cat_pos[column.cat.codes.to_numpy()]
