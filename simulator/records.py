"""The records that data providers and the mediation organisation send about the simulated
debtors: contact-repair checks, repayment-capacity and litigation snapshots, and mediators.

Contract tables 2, 4, 5 and 6: noisy, point-in-time traces of the hidden traits (the first
snapshot before the case starts), one row per contract key.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.arrays import categorical, days_to_datetime, frame, round2, sigmoid
from simulator.population import PHONE_STATUSES, PRODUCTS, PROVINCES, Population, phone_status

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
EMPLOYMENTS = ("employed", "self_employed", "unemployed", "retired", "unknown")


def contact_checks(
    repairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], pop: Population, rng: np.random.Generator
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
    status1 = phone_status(line1, has_phone[c1] | (first_fix[c1] < day1), rng)
    # repairs
    line2 = line0[c2] | (first_fix[c2] < day2)
    status2 = np.where(success, 0, phone_status(line2, has_phone[c2] | (first_fix[c2] < day2), rng))
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
    return frame(
        {
            "id_number": categorical((key >> 32).astype(np.int32), pop.ids),
            "checked_at": ((key & 0xFFFFFFFF) + base).astype("datetime64[s]"),
            "phone_status": pd.Categorical.from_codes(status, categories=list(PHONE_STATUSES)),
            "repaired_numbers": repaired,
            "repair_source": pd.Categorical.from_codes(src, categories=list(REPAIR_SOURCES)),
        }
    )


def one_per_key(table: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The first row of each contract key (the importer rejects a repeated key as a duplicate)."""
    repeated = table.duplicated(key, keep="first").to_numpy()
    return table.loc[~repeated].reset_index(drop=True) if repeated.any() else table


def capacity_snapshots(persons: np.ndarray, pop: Population, end_day: int, rng: np.random.Generator) -> pd.DataFrame:
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
    return frame(
        {
            "id_number": categorical(p, ids),
            "as_of": days_to_datetime(day),
            "monthly_income": blank(round2(inc), 0.10),
            "income_stability": blank(np.round(sigmoid(0.8 * zc[p] + 0.5 * rng.standard_normal(m)), 3), 0.15),
            "employment": pd.Categorical.from_codes(employment, categories=list(EMPLOYMENTS)),
            "social_insurance_months": pd.arrays.IntegerArray(months.astype(np.int64), months_na),
            "has_property": has_property[p] ^ flip[:, 0],
            "has_vehicle": has_vehicle[p] ^ flip[:, 1],
            "other_debt": blank(
                round2(deb_principal[p] * np.exp(0.3 - 0.5 * zw[p] + 0.8 * rng.standard_normal(m))), 0.2
            ),
            "monthly_spend": blank(round2(income[p] * rng.uniform(0.4, 1.1, size=m) * np.exp(-0.1 * zw[p])), 0.15),
        }
    )


def litigation_snapshots(persons: np.ndarray, pop: Population, end_day: int, rng: np.random.Generator) -> pd.DataFrame:
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
    dishonest = (dead[p] & (rng.random(m) < 0.5)) | (rng.random(m) < sigmoid(-3.5 - 0.8 * zw[p] - 0.5 * zc[p]))
    restricted = dishonest | (rng.random(m) < sigmoid(-3.0 - zc[p]))
    return frame(
        {
            "id_number": categorical(p, ids),
            "as_of": days_to_datetime(day),
            "defendant_cases": defendant.astype(np.int64),
            "enforcement_cases": enforcement.astype(np.int64),
            "terminated_no_assets": terminated.astype(np.int64),
            "dishonest_listed": dishonest,
            "consumption_restricted": restricted,
        }
    )


def mediators(n_med: int, rng: np.random.Generator) -> pd.DataFrame:
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
