"""Values → recorded-prompt ids, following how each caller language really says them.

Pure functions, reading no file: each returns the list of prompt ids to play, in order, for one
language. Every id returned has a recording in that language in the prompt list (the tests check
each composer against sounds/prompts.yaml); ids it declares silent (`null`) there are simply never
emitted, so callers can hand the list straight to the player without filtering.

Readings chosen (and why):

* English cardinals use US style without "and": 123 = "one hundred twenty three". The prompt list
  has no "billion", so English numbers stop at 999,999,999 (`ValueError` above); Mandarin composes
  亿 and 万亿 from its own scale words and goes up to 10**16 - 1.
* Mandarin 两 (`digits/liang`): always before 千, and before 万/亿 when that group is exactly 2
  (两千, 一万两千, 两万, 两亿); before 百 only as the first word of the number (两百, 两百万, but
  一千二百), which is how Chinese bank IVRs read balances. Elsewhere 二 (二十, 十二万, 二元).
* Mandarin 零: one 零 for each run of skipped places, including across 万/亿 groups
  (1005 = 一千零五, 10010 = 一万零一十, 100000005 = 一亿零五); never a trailing 零. A 1 in the tens place
  is 十 at the start of the number (10 = 十, 150000 = 十五万) and 一十 after a higher place
  (110 = 一百一十). `digits/0` (零) is that filler in Mandarin, and "zero" in English.
* Amounts: zh 一千零二十四元五角六分 (零 between 元 and 分 when 角 is zero and there are yuan:
  一元零五分; 零元五角 when there are no yuan). en "one thousand twenty four yuan fifty six fen":
  fen are read as one cardinal, like cents, because "yuan fifty" alone cannot tell 0.05 from 0.50.
* English years are read in pairs ("twenty twenty six", "nineteen hundred"); years with a zero
  tens digit that a pair reading would need an "oh" for (2005, 1905) and whole thousands are read
  as cardinals ("two thousand five"). Mandarin years are digit by digit (二零二六年).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

#: The only currency the prompt list has words for.
CURRENCY = "CNY"

_EN_MAX = 999_999_999  # no "billion" recording
_ZH_MAX = 10**16 - 1  # 亿亿 is not said; 万亿 is the largest composed scale
_CENT = Decimal("0.01")
_DIGIT_SEPARATORS = frozenset(" -")


def _check_language(language: str) -> None:
    if language not in ("en", "zh"):
        raise ValueError(f"unsupported language {language!r} (supported: en, zh)")


def say_digits(value: str, language: str, *, phone: bool = False) -> list[str]:
    """One id per digit, for card/account/phone numbers and codes.

    Spaces and hyphens are ignored (callers pass formatted numbers); anything else is a
    `ValueError` rather than silently dropped, so a letter in an account number is noticed.
    With `phone=True`, Mandarin says 1 as 幺 (`digits/yao`), as Chinese call centres do so that
    一 is not confused with 七 on a narrow-band line.
    """
    _check_language(language)
    one = "digits/yao" if phone and language == "zh" else "digits/1"
    ids: list[str] = []
    for ch in value:
        if ch in _DIGIT_SEPARATORS:
            continue
        if ch not in "0123456789":
            raise ValueError(f"not a digit: {ch!r} in {value!r}")
        ids.append(one if ch == "1" else f"digits/{ch}")
    return ids


def say_number(n: int, language: str) -> list[str]:
    """A cardinal number; negatives are preceded by `minus` (负)."""
    _check_language(language)
    limit = _EN_MAX if language == "en" else _ZH_MAX
    if abs(n) > limit:
        raise ValueError(f"{n} is out of range for {language} (at most {limit:,} either way)")
    if n < 0:
        return ["minus", *say_number(-n, language)]
    if n == 0:
        return ["digits/0"]
    return _en(n) if language == "en" else _zh(n, leading=True)


def _en(n: int) -> list[str]:
    """1..999,999,999 in US English, without "and"."""
    ids: list[str] = []
    for scale, word in ((1_000_000, "digits/million"), (1_000, "digits/thousand")):
        high, n = divmod(n, scale)
        if high:
            ids += [*_en_below_1000(high), word]
    return ids + _en_below_1000(n)


def _en_below_1000(n: int) -> list[str]:
    hundreds, rest = divmod(n, 100)
    ids = [f"digits/{hundreds}", "digits/hundred"] if hundreds else []
    if 0 < rest < 20:
        ids.append(f"digits/{rest}")
    elif rest:
        tens, ones = divmod(rest, 10)
        ids.append(f"digits/{tens * 10}")
        if ones:
            ids.append(f"digits/{ones}")
    return ids


def _zh(n: int, *, leading: bool) -> list[str]:
    """1..10**16-1 in Mandarin; `leading` is True when these are the first words of the number."""
    for scale, word, big_zero in ((10**8, "digits/yi", 10**7), (10**4, "digits/wan", 10**3)):
        if n >= scale:
            high, low = divmod(n, scale)
            ids = ["digits/liang"] if high == 2 else _zh(high, leading=leading)
            ids.append(word)
            if low:
                # A skipped place right below the scale word is said as one 零: 一万零一十, 一亿零五.
                if low < big_zero:
                    ids.append("digits/0")
                ids += _zh(low, leading=False)
            return ids
    return _zh_below_10000(n, leading=leading)


def _zh_below_10000(n: int, *, leading: bool) -> list[str]:
    thousands, hundreds, tens, ones = n // 1000, n // 100 % 10, n // 10 % 10, n % 10
    ids: list[str] = []
    zero_pending = False

    def place(digit: str) -> None:
        nonlocal zero_pending
        if zero_pending:
            ids.append("digits/0")
            zero_pending = False
        ids.append(digit)

    if thousands:
        place("digits/liang" if thousands == 2 else f"digits/{thousands}")
        ids.append("digits/qian")
    if hundreds:
        place("digits/liang" if hundreds == 2 and leading and not ids else f"digits/{hundreds}")
        ids.append("digits/bai")
    elif ids:
        zero_pending = True
    if tens:
        if tens == 1 and (ids or not leading):
            place("digits/1")  # 一百一十五, 一万零一十: 一十 after a higher place
            ids.append(f"digits/{10 + ones}")
            return ids
        if tens == 1:
            place(f"digits/{10 + ones}")  # 10..19 at the start: 十, 十一 … 十九
            return ids
        place(f"digits/{tens * 10}")
    elif ids:
        zero_pending = True
    if ones:
        place(f"digits/{ones}")
    return ids


def say_amount(amount: Decimal, language: str, currency: str = CURRENCY) -> list[str]:
    """A sum of money in yuan, to the fen; negative (overdrawn) amounts start with `minus`.

    Amounts must be exact to the fen: a value with more precision is a `ValueError`, never
    rounded, because a bank must not read out a figure other than the one on the account.
    """
    _check_language(language)
    if currency != CURRENCY:
        raise ValueError(f"unsupported currency {currency!r} (only {CURRENCY})")
    if not amount.is_finite() or amount != amount.quantize(_CENT):
        raise ValueError(f"amount must be a finite number of fen: {amount!r}")
    if amount < 0:
        return ["minus", *say_amount(-amount, language, currency)]
    fen_total = int(amount.quantize(_CENT) * 100)
    yuan, cents = divmod(fen_total, 100)
    ids = [*say_number(yuan, language), "yuan"]
    if language == "en":
        return ids + ([*say_number(cents, language), "fen"] if cents else [])
    jiao, fen = divmod(cents, 10)
    if jiao:
        ids += [f"digits/{jiao}", "jiao"]
    elif fen and yuan:
        ids.append("digits/0")  # 一元零五分
    if fen:
        ids += [f"digits/{fen}", "fen"]
    return ids


def say_date(d: date, language: str, *, with_year: bool = False) -> list[str]:
    """A calendar date: zh 二零二六年十二月一号, en "December first twenty twenty six".

    The year is off by default: an IVR says "your bill is due on December first"; pass
    `with_year=True` when the year is not obvious (e.g. a date in another year).
    """
    _check_language(language)
    month_day = [f"date/month_{d.month}", f"date/day_{d.day}"]
    if not with_year:
        return month_day
    if language == "zh":
        return [*say_digits(str(d.year), language), "date/year", *month_day]
    return [*month_day, *_en_year(d.year)]


def _en_year(year: int) -> list[str]:
    """'twenty twenty six', 'nineteen hundred'; a cardinal where a pair would need 'oh' (2005)."""
    high, low = divmod(year, 100)
    if year < 1000 or year % 1000 == 0 or 0 < low < 10:
        return say_number(year, "en")
    if low == 0:
        return [*say_number(high, "en"), "digits/hundred"]
    return [*say_number(high, "en"), *say_number(low, "en")]
