"""Evaluation metrics as small pure functions: word error rate, expected duration, aggregates.

WER and its text normalisation are the judge's (:mod:`audio_tokenizer.judge`, re-exported here):
numbers and symbols spelled out, lower case, hyphens as spaces, every other punctuation mark dropped
(apostrophes inside a word stay: "don't"). So "It costs $5." and "it costs five dollars" score 0 errors.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from audio_tokenizer.judge import corpus_wer, edit_distance, normalize_words, wer, word_errors  # noqa: F401  re-exported
from llada_tts.sampling.constraints import DEFAULT_CHARS_PER_SECOND
from llada_tts.synthesis.text import normalize_text


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
