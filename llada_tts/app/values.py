"""The widgets' values as the library's arguments (text, seed, sampler options, recordings) and its
waveforms as the widgets' (int16 PCM). Plain translations: the library checks the values."""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

NO_VOICE = "(none)"


def check_text(text: str | None, max_chars: int) -> str:
    """The stripped text, or ValueError with the message the user sees."""
    text = (text or "").strip()
    if not text:
        raise ValueError("Please type some text to speak.")
    if len(text) > max_chars:
        raise ValueError(f"The text is {len(text)} characters long; the limit is {max_chars}. "
                         "Shorten it or split it into several requests.")
    return text


def to_int16(wave: np.ndarray) -> np.ndarray:
    """float waveform in [-1, 1] -> int16 PCM, clipped (gradio would peak-normalise floats instead)."""
    import numpy as np

    return (np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype(np.int16)

def sampler_options(method=None, steps=None, block_length=None, threshold=None, cfg_scale=None,
                    temperature=None, remasking=None, use_cache=None, cache=None) -> dict:
    """The widgets' values as ``tts.synthesize`` sampler options; empty or 0 steps/threshold = default.

    Only a translation: whole floats become ints (a Number box sends 12.0), anything else is passed
    on as it is, and ``synthesize`` checks it (``synthesis.defaults.check_sampler_options``: the one
    place that names the range and the caps)."""
    out = dict(method=method or None, remasking=remasking or None,
               steps=_whole(steps) if steps else None,  # 0 / empty: one step per 2 canvas tokens
               block_length=_whole(block_length) if block_length else None,
               threshold=_real(threshold) if threshold else None,  # 0: threshold decoding off
               cfg_scale=_real(cfg_scale), temperature=_real(temperature),
               use_cache=None if use_cache is None else bool(use_cache),
               cache=None if cache in (None, "", "none") else cache)  # "none" = the default, no cache
    return {k: v for k, v in out.items() if v is not None}


def _whole(value):
    """12.0 -> 12; any other value unchanged (inf, nan, 1.5 and strings are refused by the checker)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _real(value):
    return float(value) if isinstance(value, float) else value  # numpy floats -> float; the rest as is


def seed_value(seed) -> int | None:
    """The Seed box's value as ``synthesize``'s seed: None (random) when empty or negative; a
    SynthesisError naming the valid range for anything else that is not a whole number in range."""
    from llada_tts.synthesis.defaults import MAX_SEED
    from llada_tts.synthesis.errors import SynthesisError

    if seed is None or seed == "":
        return None
    if isinstance(seed, (int, float)) and not isinstance(seed, bool) and math.isfinite(seed):
        if seed < 0:
            return None
        if float(seed).is_integer() and int(seed) <= MAX_SEED:
            return int(seed)
    shown = f"{seed:g}" if isinstance(seed, float) else repr(seed)[:40]
    raise SynthesisError(f"seed must be -1 (random) or a whole number from 0 to {MAX_SEED} (2**64 - 1), got {shown}")


def audio_input(value) -> tuple[object, int | None] | None:
    """A gradio Audio value as ``(audio, sample_rate)`` for the library: ``(sample_rate, samples)``
    (type="numpy") -> (samples, sample_rate); a path -> (path, None); None / empty -> None."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return (value, None) if str(value) else None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        sr, samples = value
        return samples, sr
    if isinstance(value, dict) and value.get("path"):  # a FileData dict (gradio's API clients)
        return value["path"], None
    return value, None  # anything else: the library names what is wrong with it
