"""The simulated population: creditors, regions and products, the debtors' hidden traits
(reachability, capacity, willingness, assets, dead debt) and the case pool (contract table 1).

Hidden traits are only in the ``truth`` table; what the platform sees of them is drawn here
(the phone on file and its first status check) and in ``records.py`` (later checks, capacity
and litigation snapshots). ``docs/simulator.md`` gives the distributions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from concord.vocabulary import SCOPE_PRINCIPAL_LIMIT
from simulator.arrays import (
    ascii_strings,
    days_to_datetime,
    digits,
    epoch_day,
    frame,
    round2,
    sigmoid,
    unique_dtype,
    vocab_strings,
)
from simulator.identities import company_names, id_numbers, mobile_digits, person_names
from simulator.states import W_BAD0, W_BAD1, W_GOOD0, W_GOOD1, W_NONE0

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
PHONE_STATUSES = ("active", "suspended", "vacant", "unknown")
FIRST_START_DAYS = 700  # cases enter the platform within the last 700 days before the world's end


@dataclass
class Traits:
    """Per-row inputs of the effect model (one row per case or per decision point)."""

    ct: np.ndarray  # 0 bank, 1 consumer finance
    zr: np.ndarray  # hidden reachability, standard-normal scale
    zc: np.ndarray  # hidden capacity
    zw: np.ndarray  # hidden willingness
    assets: np.ndarray  # float 0/1
    lpr: np.ndarray  # log(principal / 10,000 CNY)
    large: np.ndarray  # int 0/1: principal >= 20,000 CNY
    dead_seen: np.ndarray  # int 0/1

    def take(self, idx: np.ndarray) -> Traits:
        """The rows ``idx``."""
        return Traits(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


@dataclass
class Population:
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


def case_traits(pop: Population, idx: np.ndarray) -> Traits:
    """Effect-model inputs of the cases ``idx``."""
    d = pop.debtor[idx]
    principal = pop.principal[idx]
    return Traits(
        ct=pop.ct[idx].astype(np.int64),
        zr=pop.zr[d],
        zc=pop.zc[d],
        zw=pop.zw[d],
        assets=(pop.has_property[d] | pop.has_vehicle[d]).astype(float),
        lpr=np.log(principal / 10_000),
        large=(principal >= 20_000).astype(np.int64),
        dead_seen=pop.dead_seen[idx].astype(np.int64),
    )


def case_ids(creditor: np.ndarray, n: int) -> pd.Series:
    """``<creditor prefix><8-digit running number>``, unique within (and across) creditors."""
    order = np.argsort(creditor, kind="stable")
    seq = np.empty(n, dtype=np.int64)
    counts = np.bincount(creditor, minlength=len(CREDITORS))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    seq[order] = np.arange(n) - np.repeat(starts, counts) + 1
    prefix = np.frombuffer("".join(_CREDITOR_PREFIX).encode(), dtype=np.uint8).reshape(len(CREDITORS), 4)
    return ascii_strings(np.concatenate([prefix[creditor], digits(seq, 8)], axis=1))


def phone_status(line: np.ndarray, has_phone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Observed phone status code (index into PHONE_STATUSES): a noisy view of whether the line works."""
    u = rng.random(len(line))
    works = np.select([u < 0.85, u < 0.90], [0, 1], 3)
    broken = np.select([u < 0.12, u < 0.45, u < 0.90], [0, 1, 2], 3)
    return np.where(~has_phone, 3, np.where(line, works, broken)).astype(np.int8)


def draw_cases(n: int, end_day: int, rng: np.random.Generator) -> tuple[Population, pd.DataFrame]:
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
    dead = rng.random(n_deb) < sigmoid(-3.2 - 1.2 * zc)
    has_property = (rng.random(n_deb) < sigmoid(-1.0 + 1.3 * zc)) & ~dead
    has_vehicle = (rng.random(n_deb) < sigmoid(-1.3 + 1.0 * zc)) & ~dead
    income = np.exp(np.log(6000) + 0.55 * zc + 0.2 * bank_d)
    region = rng.choice(len(REGIONS), size=n_deb, p=_REGION_WEIGHTS / _REGION_WEIGHTS.sum())
    birth = rng.integers(epoch_day(dt.date(1960, 1, 1)), epoch_day(dt.date(2003, 12, 31)) + 1, size=n_deb)
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
    principal = round2(np.where(big_loan, rng.uniform(100_000, 300_000, size=n), np.clip(principal, 500, 99_000)))
    del median, sigma, big_loan, kind
    start = end_day - rng.integers(1, FIRST_START_DAYS + 1, size=n)
    overdue = start - rng.integers(30, 401, size=n)
    loan = overdue - rng.integers(60, 1101, size=n)
    rate = np.where(
        product == 0,
        np.where(rng.random(n) < 0.6, 0.1825, rng.uniform(0.12, 0.24, size=n)),
        np.where(ct == 0, rng.uniform(0.07, 0.18, size=n), rng.uniform(0.10, 0.36, size=n)),
    )
    rate = np.round(rate, 4)
    years_overdue = (start - overdue) / 365.0
    interest = round2(principal * rate * years_overdue)
    penalty = round2(principal * rate * 0.5 * years_overdue * (rng.random(n) < 0.85))
    fees = round2(np.where(rng.random(n) < 0.6, rng.uniform(0, 300, size=n), 0.0) * (1 + (ct == 1)))
    claim = principal + interest + penalty + fees
    paid_before = rng.random(n) < sigmoid(0.3 + 0.8 * zw[d])
    span = np.maximum(1, np.minimum(180, overdue - loan))
    last_payment = np.where(paid_before, overdue - rng.integers(0, span), -1)
    life = rng.integers(90, 181, size=n)
    stop = np.minimum(start + life, end_day)

    # the phone on file and its first status check (what the policy sees)
    has_phone = rng.random(n) >= 0.10
    line0 = has_phone & (rng.random(n) < sigmoid(0.8 + 1.0 * zr[d]))
    status0 = phone_status(line0, has_phone, rng)
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
    ids = id_numbers(region, np.array([int(r[0]) for r in REGIONS]), birth, rng)
    names_vocab, name_code = person_names(n_deb, rng)
    companies = company_names()
    company_code = rng.integers(0, len(companies), size=n_deb)
    phone_digits = mobile_digits(n, rng)
    case_region = np.where(rng.random(n) < 0.85, region[d], rng.integers(0, len(REGIONS), size=n))
    province_code = np.array([PROVINCES.index(r[1]) for r in REGIONS])[case_region]
    province_code = np.where(rng.random(n) < 0.05, -1, province_code)
    court_code = np.where(rng.random(n) < 0.3, -1, case_region)
    cases = frame(
        {
            "case_id": case_ids(creditor, n),
            "creditor": pd.Categorical.from_codes(creditor, categories=list(CREDITORS)),
            "product": pd.Categorical.from_codes(product, categories=list(PRODUCTS)),
            "debtor_type": pd.Categorical.from_codes(company.astype(np.int8), categories=["person", "company"]),
            "debtor_name": vocab_strings(
                names_vocab + companies, np.where(company, len(names_vocab) + company_code[d], name_code[d])
            ),
            "id_number": ascii_strings(ids[d], mask=company),
            "phone": ascii_strings(phone_digits, mask=~has_phone),
            "province": pd.Categorical.from_codes(province_code, categories=list(PROVINCES)),
            "principal": principal,
            "interest": interest,
            "penalty": penalty,
            "fees": fees,
            "annual_rate": rate,
            "loan_date": days_to_datetime(loan),
            "overdue_since": days_to_datetime(overdue),
            "last_payment_date": days_to_datetime(last_payment),
            "court": pd.Categorical.from_codes(court_code, categories=[r[2] for r in REGIONS]),
        }
    )
    pop = Population(
        company_primary=company_primary,
        zr=zr,
        zc=zc,
        zw=zw,
        dead=dead,
        has_property=has_property,
        has_vehicle=has_vehicle,
        income=income,
        birth=birth,
        ids=unique_dtype(pd.Index(ascii_strings(ids).array)),
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
