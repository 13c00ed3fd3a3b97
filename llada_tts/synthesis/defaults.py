"""Synthesis defaults, option choices and caps, importable without torch.

This is the one definition of the user-facing synthesis options: the CLI builds its ``--help`` and
argparse checks from it, the web app its controls' ranges, and every front end (CLI, app, the
Python API, a future server) validates a request's sampler options with ``check_sampler_options``
(``LladaTTS.synthesize`` / ``stream`` call it again, so no path skips it).

Caps (what one request may ask for; derived from the canvas, so memory stays bounded):
    canvas limit   = ``canvas_limit(max_duration)`` tokens: the whole-frame canvas of max_duration
                     seconds (60 s -> 704 frames -> 4928 tokens); no limit when max_duration is None
    steps          1 .. canvas limit; per chunk, capped at the chunk's canvas tokens (a step commits
                   at least one token, so further steps cannot change the result)
    block_length   7 .. canvas limit, a multiple of 7 (whole SNAC frames)
    batch_size     chunks sampled together: rows x canvas tokens <= ``batch_token_limit(max_duration)``
                   = 4 canvas limits (19712 tokens for 60 s); checked once the chunks are planned
    threshold      (0, 1];  temperature, cfg_scale: finite, >= 0;  min_length: [0, 1]
    seed           0 .. MAX_SEED (2**64 - 1, what ``torch.Generator.manual_seed`` takes)

METHODS / REMASKING / CACHE_MODES / THRESHOLD_FLOORS mirror ``llada_tts.sampling.config``, and SLOTS_PER_FRAME /
FRAMES_PER_SECOND mirror ``audio_tokenizer.layout`` (tests check they agree).
"""
from __future__ import annotations

import math
import numbers

from llada_tts.synthesis.errors import SynthesisError

DEFAULT_MAX_CHUNK_CHARS = 180  # ~13 s of speech at 14 chars/s: one Orpheus-sized row
DEFAULT_BLOCK_LENGTH = 7 * 8  # tokens (8 frames, ~0.68 s) per semi-autoregressive block
DEFAULT_TEMPERATURE = 0.5
DEFAULT_BATCH_SIZE = 4  # chunks per sample() call in synthesize (stream: 1)
DEFAULT_MAX_DURATION = 60.0  # seconds of audio per request; longer requests are refused, never cut
METHODS = ("fixed_length", "semi_autoregressive_padding", "semi_autoregressive_origin")
REMASKING = ("low_confidence", "random")
CACHE_MODES = ("prefix", "dual")
CACHES = ("none", *CACHE_MODES)  # the one user-facing KV-cache option: cache = none | prefix | dual
THRESHOLD_FLOORS = ("one", "schedule")

SLOTS_PER_FRAME = 7  # tokens per SNAC frame
FRAMES_PER_SECOND = 24000 / 2048  # 11.71875
MAX_SEED = 2**64 - 1

SAMPLER_KEYS = ("method", "steps", "block_length", "threshold", "cfg_scale", "temperature", "remasking",
                "cache", "use_cache", "cache_mode", "refresh_every", "threshold_floor", "min_length")


def canvas_limit(max_duration: float | None) -> int | None:
    """The most canvas tokens a request may use (None: no limit): the whole-frame canvas of
    ``max_duration`` seconds, 7 x ceil(max_duration x 24000 / 2048). Caps steps and block_length."""
    if max_duration is None:
        return None
    return SLOTS_PER_FRAME * math.ceil(max_duration * FRAMES_PER_SECOND - 1e-9)


def batch_token_limit(max_duration: float | None) -> int | None:
    """The most canvas tokens one sampling call may hold (rows x canvas; None: no limit):
    DEFAULT_BATCH_SIZE canvas limits (60 s -> 4 x 4928 = 19712). batch_size 1 always fits."""
    limit = canvas_limit(max_duration)
    return None if limit is None else DEFAULT_BATCH_SIZE * limit


def check_seed(seed) -> int | None:
    """``seed`` as an int (None stays None), or SynthesisError naming the valid range."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= MAX_SEED:
        raise SynthesisError(f"seed must be an integer >= 0 and <= {MAX_SEED} (2**64 - 1), got {_show(seed)}")
    return int(seed)


def check_max_duration(max_duration) -> float | None:
    """``max_duration`` seconds (None: no limit), or SynthesisError: a finite number > 0."""
    if max_duration is None:
        return None
    if not _is_real(max_duration) or not 0 < max_duration < math.inf:
        raise SynthesisError(f"max_duration must be a finite number of seconds > 0, got {_show(max_duration)}")
    return float(max_duration)


def check_sampler_options(options: dict, max_duration: float | None = DEFAULT_MAX_DURATION) -> dict:
    """Validate a request's sampler options (unknown keys, types, ranges, caps) before any model
    work; return them normalised: None values dropped, whole numbers as int, ``cache`` turned into
    the sampler's ``use_cache`` / ``cache_mode``. ``max_duration`` (seconds, None = no limit) sets
    the canvas limit that caps steps and block_length. Raises SynthesisError (one line)."""
    unknown = sorted(set(options) - set(SAMPLER_KEYS))
    if unknown:
        raise SynthesisError(f"unknown sampler option(s) {unknown}; valid: {', '.join(SAMPLER_KEYS)}")
    limit = canvas_limit(check_max_duration(max_duration))
    where = "" if limit is None else f" (the canvas tokens of max_duration={max_duration:g} s)"
    o = {k: v for k, v in options.items() if v is not None}
    _choice(o, "method", METHODS, "method")
    _choice(o, "remasking", REMASKING, "remasking")
    _choice(o, "cache_mode", CACHE_MODES, "cache mode")
    _choice(o, "cache", CACHES, "cache")
    _choice(o, "threshold_floor", THRESHOLD_FLOORS, "threshold_floor")
    if "steps" in o:
        steps = o["steps"] = _whole(o["steps"], "steps must be an integer >= 1")
        if steps < 1:
            raise SynthesisError(f"steps must be an integer >= 1, got {_show(steps)}")
        if limit is not None and steps > limit:
            raise SynthesisError(f"steps must be at most {limit}{where}: a step commits at least one token, "
                                 f"got {_show(steps)}")
    if "block_length" in o:
        rule = "block_length must be a positive multiple of 7 tokens (whole SNAC frames)"
        bl = o["block_length"] = _whole(o["block_length"], rule)
        if bl < SLOTS_PER_FRAME or bl % SLOTS_PER_FRAME:
            raise SynthesisError(f"{rule}, got {_show(bl)}")
        if limit is not None and bl > limit:
            raise SynthesisError(f"block_length must be at most {limit}{where}, got {_show(bl)}")
    if "refresh_every" in o:
        o["refresh_every"] = _whole(o["refresh_every"], "refresh_every must be an integer >= 1")
        if o["refresh_every"] < 1:
            raise SynthesisError(f"refresh_every must be an integer >= 1, got {_show(o['refresh_every'])}")
    th = o.get("threshold")
    if th is not None and not (_is_real(th) and 0.0 < th <= 1.0):
        raise SynthesisError(f"threshold must be in (0, 1], got {_show(th)}")
    if "temperature" in o and not (_is_real(o["temperature"]) and 0 <= o["temperature"] < math.inf):
        raise SynthesisError(f"temperature must be >= 0 (a finite number), got {_show(o['temperature'])}")
    if "min_length" in o and not (_is_real(o["min_length"]) and 0.0 <= o["min_length"] <= 1.0):
        raise SynthesisError(f"min_length must be in [0, 1] (a fraction of each chunk's estimated length), "
                             f"got {_show(o['min_length'])}")
    if "cfg_scale" in o and not (_is_real(o["cfg_scale"]) and 0 <= o["cfg_scale"] < math.inf):
        raise SynthesisError(f"cfg scale must be >= 0 (0 = no guidance; a finite number), got {_show(o['cfg_scale'])}")
    if "use_cache" in o and not isinstance(o["use_cache"], bool):
        raise SynthesisError(f"use_cache must be true or false, got {_show(o['use_cache'])}")
    if th is not None and o.get("remasking", "low_confidence") != "low_confidence":
        raise SynthesisError("threshold decoding ranks by confidence: use remasking low_confidence")
    if "cache" in o:
        cache = o.pop("cache")
        mode = cache if cache != "none" else None
        if o.get("use_cache", mode is not None) != (mode is not None) or (mode and o.get("cache_mode", mode) != mode):
            raise SynthesisError(f"cache={cache!r} contradicts use_cache={o.get('use_cache')!r} / "
                                 f"cache_mode={o.get('cache_mode')!r}; give only cache (none, prefix or dual)")
        o["use_cache"] = mode is not None
        if mode:
            o["cache_mode"] = mode
    return o


def _is_real(value) -> bool:
    """A real number, not a bool, not NaN (+-inf pass: the range checks refuse them)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or not math.isnan(value)


def _whole(value, rule: str) -> int:
    """``value`` as an int if it is a whole number (3 or 3.0), else SynthesisError ``rule, got ...``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if _is_real(value) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise SynthesisError(f"{rule}, got {_show(value)}")


def _choice(o: dict, key: str, choices: tuple, name: str) -> None:
    if key in o and (not isinstance(o[key], str) or o[key] not in choices):
        raise SynthesisError(f"unknown {name} {o[key]!r}; choose one of {', '.join(choices)}")


def _show(value) -> str:
    """A value for a message, cut short (a hostile value may be huge)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(int(value)) >= 10**20:
        return f"an integer of about {int(abs(int(value)).bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
