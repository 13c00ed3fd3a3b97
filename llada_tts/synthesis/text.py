"""Text front end: normalise what the model can say, split long text into speakable chunks.

Normalisation is deliberately small and predictable (English): whitespace, common symbols, and
numbers spelled out (integers, decimals, ordinals, years, currency, percentages). Splitting never
drops text: sentence punctuation first, then ``:;``, then ``,``, then spaces, then a hard cut.
"""
from __future__ import annotations

import re

from audio_tokenizer.numbers import ONES, is_year_like, number_to_words, year_to_words

_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                      "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals ",
            "#": " number ", "°": " degrees ", "€": " euros ", "£": " pounds ", "$": " dollars "}


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
    """Spell out numbers and symbols, normalise quotes/dashes and whitespace."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"[\u2013\u2014]", ", ", text)
    text = re.sub(r"([$€£])\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b", _currency, text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: f" {ordinal_to_words(int(m.group(1)))} ", text)
    text = re.sub(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", _number, text)
    for sym, words in _SYMBOLS.items():
        text = text.replace(sym, words)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s+([,.!?;:])", r"\1", text)


_SPLITS = (r"(?<=[.!?\u2026])\s+", r"(?<=[:;])\s+", r"(?<=,)\s+", r"\s+")


def split_text(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into chunks of at most ``max_chars`` characters, at the strongest break possible.

    Sentences are packed greedily up to the budget; an over-long sentence is split at ``:;``, then
    ``,``, then spaces, and a single over-long word is cut hard. Joining the chunks with spaces gives
    back the input with whitespace normalised: nothing is dropped.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    text = re.sub(r"\s+", " ", text).strip()
    return [c for c in _split(text, max_chars, 0) if c]


def _split(text: str, budget: int, level: int) -> list[str]:
    if len(text) <= budget:
        return [text]
    if level == len(_SPLITS):
        return [text[i : i + budget] for i in range(0, len(text), budget)]
    pieces = [p for p in re.split(_SPLITS[level], text) if p]
    chunks: list[str] = []
    for piece in pieces:
        for part in _split(piece, budget, level + 1) if len(piece) > budget else [piece]:
            if chunks and len(chunks[-1]) + 1 + len(part) <= budget:
                chunks[-1] += " " + part
            else:
                chunks.append(part)
    return chunks
