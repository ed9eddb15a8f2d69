"""Synthetic identities of the simulated debtors: resident ID numbers (real district codes,
valid check character), Chinese person and company names, and mainland mobile numbers.

The check character comes from the product's own ID parser (``ingestion.identifiers``), so the
simulator writes exactly what the importer accepts.
"""

from __future__ import annotations

import numpy as np

from ingestion.identifiers import id_check_characters
from simulator.arrays import digits

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余叶程魏苏吕丁"
GIVEN_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华建文辉力斌宇浩凯鹏晨欣怡婷雪琳佳鑫珍玲峰"
_COMPANY_CITY = ("福州", "厦门", "泉州", "杭州", "深圳", "成都")
_COMPANY_WORD = ("恒盛", "鑫达", "宏远", "信诚", "华泰", "永安", "金源")
_COMPANY_KIND = ("商贸有限公司", "科技有限公司", "建材有限公司", "餐饮管理有限公司")


def id_numbers(
    region: np.ndarray, region_codes: np.ndarray, birth_day: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Unique 18-character resident ID bytes (n, 18).

    ``region`` indexes ``region_codes`` (6-digit district codes); ``birth_day`` is in epoch days.
    """
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
    codes = region_codes[region]
    days = birth_day.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    ymd = (
        (days.astype("datetime64[Y]").astype(np.int64) + 1970) * 10000
        + (months.astype(np.int64) % 12 + 1) * 100
        + (days - months).astype(np.int64)
        + 1
    )
    first17 = np.concatenate([digits(codes, 6), digits(ymd, 8), digits(seq, 3)], axis=1) - 48
    check = id_check_characters(first17.astype(np.int64))
    return np.concatenate([(first17 + 48).astype(np.uint8), check[:, None]], axis=1)


def person_names(n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
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


def company_names() -> list[str]:
    """Every synthetic company name: city, trade word and kind of company."""
    return [c + w + kd for c in _COMPANY_CITY for w in _COMPANY_WORD for kd in _COMPANY_KIND]


def mobile_digits(n: int, rng: np.random.Generator) -> np.ndarray:
    """ASCII bytes (n, 11) of mainland mobile numbers: ``1``, a digit 3-9, nine random digits."""
    return np.concatenate(
        [
            np.full((n, 1), 49, np.uint8),
            digits(rng.integers(3, 10, size=n), 1),
            digits(rng.integers(0, 10**9, size=n), 9),
        ],
        axis=1,
    )
