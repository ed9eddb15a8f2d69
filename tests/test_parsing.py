"""Property-based tests of the value parsers: every spelling the contract allows parses to
the same canonical value, and faulty values are refused with a reason."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ingestion import identifiers, parsing

FULL_WIDTH = str.maketrans("0123456789.,", "０１２３４５６７８９．，")


def column(*values: object) -> pd.Series:
    return parsing.normalise_text(pd.Series(list(values), dtype=object))


amounts = st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2, allow_nan=False)


def spellings(value: Decimal) -> list[str]:
    plain = f"{value:.2f}"
    grouped = f"{value:,.2f}"
    short = format(value.normalize(), "f") if value != 0 else "0"
    return [plain, grouped, "¥" + grouped, "￥" + plain, plain.translate(FULL_WIDTH), short, f" {grouped} "]


@given(amounts)
def test_every_amount_spelling_parses_to_the_exact_decimal(value: Decimal) -> None:
    parsed = parsing.parse_amount(column(*spellings(value)))
    assert parsed.errors.isna().all(), parsed.errors.tolist()
    assert {Decimal(v) for v in parsed.values} == {value}
    assert all(v == f"{value:.2f}" for v in parsed.values)


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2))
def test_negative_amounts_are_refused(value: Decimal) -> None:
    parsed = parsing.parse_amount(column(f"-{value}"))
    assert parsed.errors.iloc[0] == "must not be negative"
    assert parsed.values.isna().all()


@given(st.text(alphabet="abcxyz元整十百千", min_size=1, max_size=6))
def test_words_are_not_amounts(text: str) -> None:
    parsed = parsing.parse_amount(column(text))
    assert parsed.errors.notna().all()


@given(st.decimals(min_value=0, max_value=10000, places=3).filter(lambda d: d != d.quantize(Decimal("0.01"))))
def test_amounts_are_never_rounded_on_the_way_in(value: Decimal) -> None:
    parsed = parsing.parse_amount(column(str(value)))
    assert parsed.errors.iloc[0] == "has more than 2 decimal places"


dates = st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2099, 12, 31))


@given(dates)
def test_every_date_spelling_parses_to_the_same_day(day: dt.date) -> None:
    serial = (day - dt.date(1899, 12, 30)).days
    spelled = [
        day.isoformat(),
        f"{day.year}/{day.month}/{day.day}",
        f"{day.year}年{day.month}月{day.day}日",
        str(serial),
        f"{day:%Y%m%d}",
        f"{day.isoformat()} 00:00:00",
    ]
    parsed = parsing.parse_date(column(*spelled))
    assert parsed.errors.isna().all(), parsed.errors.tolist()
    assert {value.date() for value in parsed.values} == {day}


@given(
    st.integers(min_value=2000, max_value=2030),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=29, max_value=40),
)
def test_impossible_days_are_refused(year: int, month: int, day: int) -> None:
    try:
        dt.date(year, month, day)
    except ValueError:
        parsed = parsing.parse_date(column(f"{year}-{month:02d}-{day:02d}"))
        assert parsed.errors.notna().all()


@given(
    st.datetimes(min_value=dt.datetime(1995, 1, 1), max_value=dt.datetime(2090, 1, 1)).map(
        lambda t: t.replace(microsecond=0)
    )
)
def test_naive_timestamps_are_shanghai_time_stored_as_utc(moment: dt.datetime) -> None:
    parsed = parsing.parse_timestamp(
        column(moment.strftime("%Y-%m-%d %H:%M:%S"), moment.strftime("%Y/%m/%d %H:%M:%S") + "+08:00")
    )
    assert parsed.errors.isna().all()
    expected = pd.Timestamp(moment - dt.timedelta(hours=8), tz="UTC")
    assert list(parsed.values) == [expected, expected]


WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def with_check(body: str) -> str:
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]


# region code, a birth date that exists (not in the future), sequence number
id_bodies = st.builds(
    lambda region, birth, seq: f"{region}{birth:%Y%m%d}{seq}",
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)),
    st.text(alphabet="0123456789", min_size=3, max_size=3),
)


@given(id_bodies)
def test_valid_id_numbers_pass_in_either_case(body: str) -> None:
    number = with_check(body)
    parsed = identifiers.parse_id_number(column(number, number.lower(), f" {number} "))
    assert parsed.errors.isna().all()
    assert set(parsed.values) == {number}


@given(id_bodies, st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_one_changed_digit_fails_the_checksum(body: str, position: int, shift: int) -> None:
    number = with_check(body)
    digit = (int(number[position]) + shift) % 10
    mutated = number[:position] + str(digit) + number[position + 1 :]
    parsed = identifiers.parse_id_number(column(mutated))
    assert parsed.errors.iloc[0] == "fails the ID number checksum"


@given(st.text(alphabet="0123456789X", min_size=0, max_size=30).filter(lambda s: len(s) != 18 and s))
def test_wrong_length_ids_are_refused(text: str) -> None:
    assert identifiers.parse_id_number(column(text)).errors.notna().all()


@given(id_bodies, st.sampled_from(["19990231", "20230229", "19991301", "19990100", "18991231"]))
def test_id_numbers_whose_birth_date_does_not_exist_are_refused(body: str, birth: str) -> None:
    number = with_check(body[:6] + birth + body[14:])
    parsed = identifiers.parse_id_number(column(number), dt.date(2026, 11, 1))
    assert parsed.errors.iloc[0] == "has a birth date that does not exist"
    assert parsed.values.isna().all()


def test_id_numbers_born_in_the_future_are_refused_and_leap_days_accepted() -> None:
    future, leap = with_check("35010220270101123"), with_check("35010220000229123")
    parsed = identifiers.parse_id_number(column(future, leap), dt.date(2026, 11, 1))
    assert parsed.errors.tolist()[0] == "has a birth date in the future"
    assert parsed.values.tolist()[1] == leap


def test_numbers_excel_turned_into_scientific_notation_are_refused_as_lost_digits() -> None:
    ids = identifiers.parse_id_number(column("4.10102E+17", "4.10102199003071E+17", "3.5e17"))
    phones = identifiers.parse_phone(column("1.38123E+10", "13812345678"))
    assert set(ids.errors) == {identifiers.LOST_DIGITS}
    assert phones.errors.tolist()[0] == identifiers.LOST_DIGITS and phones.values.tolist()[1] == "13812345678"
    assert "Excel" in identifiers.LOST_DIGITS and "text" in identifiers.LOST_DIGITS


mobiles = st.builds(
    lambda second, rest: f"1{second}{rest}",
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
)


@given(mobiles)
def test_mobile_spellings_normalise_to_eleven_digits(number: str) -> None:
    spaced = f"{number[:3]} {number[3:7]} {number[7:]}"
    parsed = identifiers.parse_phone(
        column(number, "+86" + number, "+86 " + spaced, "86" + number, number[:3] + "-" + number[3:])
    )
    assert parsed.errors.isna().all()
    assert set(parsed.values) == {number}


@given(
    st.text(alphabet="0123456789", min_size=1, max_size=14).filter(
        lambda s: not (len(s) == 11 and s[0] == "1" and s[1] in "3456789")
    )
)
@hsettings(max_examples=200)
def test_non_mobiles_are_refused(text: str) -> None:
    if text.startswith("86") and len(text) == 13 and text[2] == "1" and text[3] in "3456789":
        return  # a country code in front of a mobile is fine
    assert identifiers.parse_phone(column(text)).errors.notna().all()


def test_rates_accept_fractions_and_percentages() -> None:
    parsed = parsing.parse_rate(column("0.18", "18%", "18.5 %", "1.5", "abc"))
    assert parsed.values.tolist()[:3] == ["0.180000", "0.180000", "0.185000"]
    assert parsed.errors.notna().tolist() == [False, False, False, True, True]


def test_enums_accept_chinese_aliases_and_refuse_others() -> None:
    from ingestion.contracts import PRODUCTS

    parsed = parsing.parse_enum(column("信用卡", "Credit_Card", "消费贷", "mortgage"), PRODUCTS)
    assert parsed.values.tolist()[:3] == ["credit_card", "credit_card", "consumer_loan"]
    # the accepted values are listed; the refused one is not repeated (it may be a name in the wrong column)
    assert parsed.errors.iloc[3] == "is not one of: consumer_loan, credit_card, personal_loan"


def test_a_column_of_whole_percentages_parses() -> None:
    # Found by a foreign file: every rate written "18%" made the column integer-typed.
    parsed = parsing.parse_rate(column("18%", "24%", "36%"))
    assert parsed.errors.isna().all()
    assert parsed.values.tolist() == ["0.180000", "0.240000", "0.360000"]


def test_mixed_date_spellings_parse_alike_and_keep_the_year_bounds() -> None:
    column = pd.Series(
        ["2024-03-05", "2024/3/5", "1800-01-01", "2024-03-05 14:30:00", "2024年3月6日", None], dtype=object
    )
    dates = parsing.parse_date(column)
    assert [str(v)[:10] for v in dates.values[:2]] == ["2024-03-05", "2024-03-05"]
    assert dates.errors.notna().tolist() == [False, False, True, True, False, False]
    stamps = parsing.parse_timestamp(column)
    assert str(stamps.values[3]) == "2024-03-05 06:30:00+00:00"
    assert stamps.errors.notna().tolist() == [False, False, True, False, False, False]
