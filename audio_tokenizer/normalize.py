"""English written form -> spoken form: numbers and symbols spelled out (one definition).

Used by the synthesis text front end (what the model is asked to say) and by the judge's WER
normaliser (so "84" in a reference and "eighty four" in a transcript, or the reverse, match).
Small and predictable: whitespace, curly quotes, dashes, common symbols, and numbers (integers,
decimals, ordinals, years, currency, percentages) through :mod:`audio_tokenizer.numbers`.
"""
from __future__ import annotations

import re
import unicodedata

from audio_tokenizer.numbers import ONES, is_year_like, number_to_words, year_to_words

_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                      "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals ",
            "#": " number ", "°": " degrees ", "€": " euros ", "£": " pounds ", "$": " dollars "}


# zero-width characters that carry no text: removed everywhere (ZWJ/ZWNJ, which shape some scripts
# and emoji, are kept inside text, but text made only of them and whitespace is still empty)
_ZERO_WIDTH = re.compile("[\u200b\u2060\ufeff\u180e]")


def strip_invisible(text: str) -> str:
    """``text`` without zero-width spaces / word joiners / BOMs, and "" when nothing visible is left.

    "Nothing visible" means only whitespace and Unicode format characters (category Cf, e.g. U+200B,
    U+200C, U+200D, U+2060, U+FEFF). The one definition of "empty text" for the build and ``say``.
    """
    text = _ZERO_WIDTH.sub("", text)
    if all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text):
        return ""
    return text


def ordinal_to_words(n: int) -> str:
    words = number_to_words(n).split(" ")
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _currency(m: re.Match) -> str:
    unit = {"$": ("dollar", "cent"), "€": ("euro", "cent"), "£": ("pound", "penny")}[m.group(1)]
    whole = int(m.group(2).replace(",", ""))
    out = f"{number_to_words(whole)} {unit[0]}{'' if whole == 1 else 's'}"
    if m.group(3):
        cents = int((m.group(3) + "0")[:2])
        sub = unit[1] if cents == 1 else ("pence" if unit[1] == "penny" else unit[1] + "s")
        out += f" and {number_to_words(cents)} {sub}"
    return f" {out} "


def _number(m: re.Match) -> str:
    raw = m.group(0)
    digits = raw.replace(",", "")
    if "." in digits:
        whole, frac = digits.split(".", 1)
        return f" {number_to_words(int(whole))} point {' '.join(ONES[int(d)] for d in frac)} "
    n = int(digits)
    if "," not in raw and len(digits) == 4 and is_year_like(n):
        return f" {year_to_words(n)} "
    return f" {number_to_words(n)} "


def normalize_text(text: str) -> str:
    """Spell out numbers and symbols, normalise quotes/dashes and whitespace ("" if nothing visible)."""
    text = strip_invisible(text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"[\u2013\u2014]", ", ", text)
    text = re.sub(r"([$€£])\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b", _currency, text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: f" {ordinal_to_words(int(m.group(1)))} ", text)
    text = re.sub(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", _number, text)
    for sym, words in _SYMBOLS.items():
        text = text.replace(sym, words)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s+([,.!?;:])", r"\1", text)
