"""Evaluation metrics as small pure functions: word error rate, expected duration, aggregates.

WER compares *normalised words*: the text front end's ``normalize_text`` (numbers and symbols
spelled out), lower case, hyphens as spaces, every other punctuation mark dropped (apostrophes
inside a word stay: "don't"). So "It costs $5." and "it costs five dollars" score 0 errors.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from llada_tts.sampling.constraints import DEFAULT_CHARS_PER_SECOND
from llada_tts.synthesis.text import normalize_text

_NOT_WORD = re.compile(r"[^\w' ]+")  # everything but letters, digits, apostrophes and spaces


def normalize_words(text: str) -> list[str]:
    """Words to score: ``"Hello, World-wide!"`` -> ``["hello", "world", "wide"]``."""
    text = normalize_text(text).lower().replace("-", " ").replace("_", " ")
    text = _NOT_WORD.sub(" ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions + deletions + insertions, each cost 1) between sequences."""
    prev = list(range(len(hyp) + 1))  # distance from ref[:0] to hyp[:j]
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edit errors, reference word count) after :func:`normalize_words`."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate = errors / reference words (can exceed 1 with insertions).

    An empty reference scores 0.0 against an empty hypothesis and 1.0 against anything else.
    """
    errors, n = word_errors(reference, hypothesis)
    if n == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / n


def corpus_wer(pairs: Iterable[tuple[int, int]]) -> float | None:
    """Corpus WER from (errors, reference words) pairs: total errors / total words (None if no words)."""
    errors = words = 0
    for e, n in pairs:
        errors, words = errors + e, words + n
    return errors / words if words else None


def expected_duration(text: str, chars_per_second: float = DEFAULT_CHARS_PER_SECOND) -> float:
    """Seconds a voice speaking ``chars_per_second`` needs for the normalised ``text``.

    The same rate estimate the sampler sizes its canvas with (``estimate_frames`` without the
    margin): ``len(normalize_text(text)) / chars_per_second``.
    """
    if not chars_per_second > 0:
        raise ValueError(f"chars_per_second must be > 0, got {chars_per_second}")
    return len(normalize_text(text).strip()) / chars_per_second


def duration_ratio(actual: float, expected: float) -> float | None:
    """actual / expected seconds (1.0 = as long as expected); None when nothing was expected."""
    if not expected or expected <= 0:
        return None
    return actual / expected


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are finite numbers (None and NaN skipped); None if there are none."""
    kept = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(kept) / len(kept) if kept else None


def aggregate(rows: Sequence[dict], keys: Sequence[str]) -> dict[str, float | None]:
    """``{"mean_<key>": mean of row[key] over rows}`` for each key (missing/None values skipped)."""
    return {f"mean_{k}": mean(r.get(k) for r in rows) for k in keys}
