"""Text front end: normalise what the model can say, split long text into speakable chunks.

Normalisation is deliberately small and predictable (English): whitespace, common symbols, and
numbers spelled out (integers, decimals, ordinals, years, currency, percentages). Splitting never
drops text: sentence punctuation first, then ``:;``, then ``,``, then spaces, then a hard cut.
"""
from __future__ import annotations

import re

from audio_tokenizer.normalize import normalize_text, ordinal_to_words, strip_invisible  # noqa: F401  (re-exported)
from audio_tokenizer.numbers import number_to_words  # noqa: F401  (re-exported)

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
