"""English number words, shared by the corpus maker (transcripts) and the synthesis text front end,
so a number is spelled the same way in training transcripts and at synthesis time."""
from __future__ import annotations

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))


def number_to_words(n: int) -> str:
    """|n| < 10**15 in English words: 1205 -> 'one thousand two hundred five', -3 -> 'minus three'."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            if head >= 1000 and value == 10**12:
                raise ValueError(f"number too large to read out: {n}")
            return number_to_words(head) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def is_year_like(n: int) -> bool:
    """Four-digit numbers read as years: 1100..2099 except 2000..2009 ('two thousand five')."""
    return 1100 <= n <= 2099 and not 2000 <= n < 2010


def year_to_words(year: int) -> str:
    """A year as read aloud: 1953 -> 'nineteen fifty three', 1905 -> 'nineteen oh five',
    1900 -> 'nineteen hundred', 2005 -> 'two thousand five'."""
    if not is_year_like(year):
        return number_to_words(year)
    hi, lo = divmod(year, 100)
    if lo == 0:
        return number_to_words(hi) + " hundred"
    return number_to_words(hi) + (" oh " if lo < 10 else " ") + number_to_words(lo)
