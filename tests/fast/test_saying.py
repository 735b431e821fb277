"""Numbers, amounts, dates and digits as recorded-prompt ids, in English and Mandarin.

The tables pin the readings a caller hears (written out as the prompts' own texts, so a reviewer
can read them); the properties prove that every id emitted has a recording in that language and
that the words, read back by an independent parser, mean the number that was asked for.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from functools import cache

import pytest

from agi_app.flows.saying import say_amount, say_date, say_digits, say_number
from agi_app.media.voice import load_prompt_texts
from tests.support.prompts import PROMPTS_FILE

TEXTS = load_prompt_texts(PROMPTS_FILE)


@cache
def known_ids(language: str) -> frozenset[str]:
    """Ids the checkout's prompt list records in `language` (ids declared `null` there are excluded)."""
    return frozenset(pid for pid, by_lang in TEXTS.items() if by_lang[language] is not None)


def spoken(ids: list[str], language: str) -> str:
    """What the caller hears: en words joined by spaces, zh characters run together."""
    words = [TEXTS[i][language] for i in ids]
    assert None not in words, f"silent id emitted in {language}: {ids}"
    return (" " if language == "en" else "").join(w for w in words if w)


def assert_known(ids: list[str], language: str) -> None:
    missing = [i for i in ids if i not in known_ids(language)]
    assert not missing, f"{language}: ids without a recording: {missing}"


NUMBERS = [
    (0, "zero", "零"),
    (7, "seven", "七"),
    (10, "ten", "十"),
    (11, "eleven", "十一"),
    (15, "fifteen", "十五"),
    (20, "twenty", "二十"),
    (21, "twenty one", "二十一"),
    (100, "one hundred", "一百"),
    (101, "one hundred one", "一百零一"),
    (110, "one hundred ten", "一百一十"),
    (115, "one hundred fifteen", "一百一十五"),
    (200, "two hundred", "两百"),
    (1000, "one thousand", "一千"),
    (1005, "one thousand five", "一千零五"),
    (1010, "one thousand ten", "一千零一十"),
    (1200, "one thousand two hundred", "一千二百"),
    (2000, "two thousand", "两千"),
    (2222, "two thousand two hundred twenty two", "两千二百二十二"),
    (10000, "ten thousand", "一万"),
    (10010, "ten thousand ten", "一万零一十"),
    (12000, "twelve thousand", "一万两千"),
    (20000, "twenty thousand", "两万"),
    (100000, "one hundred thousand", "十万"),
    (150000, "one hundred fifty thousand", "十五万"),
    (120000, "one hundred twenty thousand", "十二万"),
    (1000000, "one million", "一百万"),
    (2000000, "two million", "两百万"),
    (100000005, "one hundred million five", "一亿零五"),
    (100100000, "one hundred million one hundred thousand", "一亿零一十万"),
    (
        123456789,
        "one hundred twenty three million four hundred fifty six thousand seven hundred eighty nine",
        "一亿两千三百四十五万六千七百八十九",
    ),
    (999999999, "nine hundred ninety nine million nine hundred ninety nine thousand nine hundred ninety nine",
     "九亿九千九百九十九万九千九百九十九"),
    (-42, "minus forty two", "负四十二"),
    (-1005, "minus one thousand five", "负一千零五"),
]


@pytest.mark.parametrize(("n", "en", "zh"), NUMBERS)
def test_say_number(n: int, en: str, zh: str) -> None:
    assert spoken(say_number(n, "en"), "en") == en
    assert spoken(say_number(n, "zh"), "zh") == zh


def test_mandarin_goes_beyond_english_range() -> None:
    """No "billion" recording: English stops at 999,999,999; Mandarin composes 亿 and 万亿."""
    assert spoken(say_number(1_000_001_000, "zh"), "zh") == "十亿零一千"
    assert spoken(say_number(2 * 10**12, "zh"), "zh") == "两万亿"
    with pytest.raises(ValueError):
        say_number(1_000_000_000, "en")
    with pytest.raises(ValueError):
        say_number(-1_000_000_000, "en")
    with pytest.raises(ValueError):
        say_number(10**16, "zh")


def test_mandarin_ten_uses_whole_word_at_start_only() -> None:
    """十五 at the start, 一 + 十五 (一十五) after a higher place."""
    assert say_number(15, "zh") == ["digits/15"]
    assert say_number(115, "zh") == ["digits/1", "digits/bai", "digits/1", "digits/15"]


AMOUNTS = [
    ("0", "zero yuan", "零元"),
    ("0.50", "zero yuan fifty fen", "零元五角"),
    ("0.05", "zero yuan five fen", "零元五分"),
    ("1.05", "one yuan five fen", "一元零五分"),
    ("100", "one hundred yuan", "一百元"),
    ("100.00", "one hundred yuan", "一百元"),
    ("1024.50", "one thousand twenty four yuan fifty fen", "一千零二十四元五角"),
    ("1024.56", "one thousand twenty four yuan fifty six fen", "一千零二十四元五角六分"),
    ("-35.20", "minus thirty five yuan twenty fen", "负三十五元二角"),
    ("-0.00", "zero yuan", "零元"),
]


@pytest.mark.parametrize(("amount", "en", "zh"), AMOUNTS)
def test_say_amount(amount: str, en: str, zh: str) -> None:
    assert spoken(say_amount(Decimal(amount), "en"), "en") == en
    assert spoken(say_amount(Decimal(amount), "zh"), "zh") == zh


@pytest.mark.parametrize("bad", ["1.005", "NaN", "Infinity"])
def test_say_amount_refuses_what_it_cannot_say_exactly(bad: str) -> None:
    with pytest.raises(ValueError):
        say_amount(Decimal(bad), "zh")


def test_say_amount_only_yuan() -> None:
    with pytest.raises(ValueError, match="currency"):
        say_amount(Decimal("1"), "en", currency="USD")


DATES = [
    (date(2026, 12, 1), "December first", "十二月一号", "December first twenty twenty six", "二零二六年十二月一号"),
    (date(2026, 3, 2), "March second", "三月二号", "March second twenty twenty six", "二零二六年三月二号"),
    (date(2025, 1, 3), "January third", "一月三号", "January third twenty twenty five", "二零二五年一月三号"),
    (date(2030, 5, 21), "May twenty-first", "五月二十一号", "May twenty-first twenty thirty", "二零三零年五月二十一号"),
    (date(1999, 7, 31), "July thirty-first", "七月三十一号", "July thirty-first nineteen ninety nine",
     "一九九九年七月三十一号"),
    (date(2005, 6, 9), "June ninth", "六月九号", "June ninth two thousand five", "二零零五年六月九号"),
    (date(2000, 2, 29), "February twenty-ninth", "二月二十九号", "February twenty-ninth two thousand",
     "二零零零年二月二十九号"),
    (date(1900, 10, 10), "October tenth", "十月十号", "October tenth nineteen hundred", "一九零零年十月十号"),
]


@pytest.mark.parametrize(("d", "en", "zh", "en_year", "zh_year"), DATES)
def test_say_date(d: date, en: str, zh: str, en_year: str, zh_year: str) -> None:
    assert spoken(say_date(d, "en"), "en") == en
    assert spoken(say_date(d, "zh"), "zh") == zh
    assert spoken(say_date(d, "en", with_year=True), "en") == en_year
    assert spoken(say_date(d, "zh", with_year=True), "zh") == zh_year


def test_say_digits() -> None:
    assert spoken(say_digits("95001", "en"), "en") == "nine five zero zero one"
    assert spoken(say_digits("95001", "zh"), "zh") == "九五零零一"
    assert spoken(say_digits("138-0013 8000", "zh", phone=True), "zh") == "幺三八零零幺三八零零零"
    assert say_digits("11", "en", phone=True) == ["digits/1", "digits/1"]  # 幺 is Mandarin only
    assert say_digits("", "en") == []
    with pytest.raises(ValueError):
        say_digits("12a4", "zh")
    with pytest.raises(ValueError):
        say_digits("１２", "zh")  # full-width digits: not what the keypad sends


def test_unknown_language() -> None:
    with pytest.raises(ValueError):
        say_number(1, "fr")


# --- properties ---------------------------------------------------------------------------------

_EN_SMALL = {TEXTS[f"digits/{i}"]["en"]: i for i in [*range(20), *range(20, 100, 10)]}
_ZH_DIGITS = {**{TEXTS[f"digits/{i}"]["zh"]: i for i in range(10)}, "两": 2, "幺": 1}
_ZH_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}


def parse_en(text: str) -> int:
    """An independent reading of English number words back into an int."""
    words = text.split()
    sign = -1 if words[:1] == ["minus"] else 1
    total = current = 0
    for word in words[1:] if sign < 0 else words:
        if word == "hundred":
            current *= 100
        elif word in ("thousand", "million"):
            total += current * (1000 if word == "thousand" else 1_000_000)
            current = 0
        else:
            current += _EN_SMALL[word]
    return sign * (total + current)


def parse_zh(text: str) -> int:
    """An independent reading of Mandarin numerals (up to 亿) back into an int."""
    sign = -1 if text.startswith("负") else 1
    total = section = digit = 0
    for ch in text.removeprefix("负"):
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
        elif ch in _ZH_SMALL_UNITS:
            section += (digit or 1) * _ZH_SMALL_UNITS[ch]
            digit = 0
        elif ch == "万":
            total += (section + digit) * 10_000
            section = digit = 0
        elif ch == "亿":
            total = (total + section + digit) * 10**8
            section = digit = 0
        else:
            raise AssertionError(f"unexpected character {ch!r} in {text!r}")
    return sign * (total + section + digit)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_number_is_recorded_and_means_itself(language: str) -> None:
    for n in [*range(0, 100_001, 7), *range(-1000, 0, 37), 123_456_789, 999_999_999, 200_000_000]:
        ids = say_number(n, language)
        assert_known(ids, language)
        text = spoken(ids, language)
        if language == "en":
            assert parse_en(text) == n, (n, text)
            assert n == 0 or "zero" not in text.split(), (n, text)
        else:
            assert parse_zh(text) == n, (n, text)
            assert n == 0 or not text.endswith("零"), (n, text)
            assert "零零" not in text, (n, text)
            assert not text.removeprefix("负").startswith("一十"), (n, text)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_amount_and_date_is_recorded(language: str) -> None:
    for fen in range(-2_000, 300_000, 13):
        assert_known(say_amount(Decimal(fen) / 100, language), language)
    day = date(2024, 1, 1)  # a leap year: every month_N and day_N
    while day.year == 2024:
        assert_known(say_date(day, language), language)
        assert_known(say_date(day, language, with_year=True), language)
        day += timedelta(days=1)
    for year in (1900, 1905, 1999, 2000, 2009, 2010, 2026, 2100):
        assert_known(say_date(date(year, 1, 1), language, with_year=True), language)
    assert_known(say_digits("0123456789", language, phone=True), language)


def test_known_ids_excludes_silent_ids() -> None:
    """`null` ids are silent in that language, so the composers must never need them."""
    assert "digits/hundred" in known_ids("en") and "digits/hundred" not in known_ids("zh")
    assert "date/year" in known_ids("zh") and "date/year" not in known_ids("en")
