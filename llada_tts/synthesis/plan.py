"""Planning a synthesis: text -> chunks -> canvas sizes and sampler settings (pure functions, no model)."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

from audio_tokenizer import layout as L
from llada_tts.sampling import SamplerConfig, canvas_frames
from llada_tts.synthesis.defaults import (  # noqa: F401  (re-exported: the one definition lives in defaults)
    DEFAULT_BLOCK_LENGTH,
    DEFAULT_MAX_CHUNK_CHARS,
    DEFAULT_TEMPERATURE,
    SAMPLER_KEYS,
    check_max_duration,
    check_sampler_options,
)
from llada_tts.synthesis.errors import SynthesisError
from llada_tts.synthesis.text import normalize_text, split_text

TOKENS_PER_STEP = 2  # default steps = canvas tokens / 2
CANVAS_MARGIN = 1.2  # canvas = estimated speech length x margin (the model ends the speech early)


@dataclass(frozen=True)
class ChunkPlan:
    text: str
    frames: int  # estimated speech frames (before rounding up to whole blocks)


def plan_chunks(text: str, *, duration: float | None, chars_per_second: float, max_chunk_chars: int,
                max_duration: float | None, frames_of: Callable[[str], int] | None = None) -> list[ChunkPlan]:
    """Normalise and split ``text``; size each chunk's canvas; refuse (never cut) over-long requests.

    ``frames_of``: for a checkpoint whose prompt fixes the speech length (``espeak-frames`` /
    ``espeak-quarters``), a chunk's exact frame count; its canvas is that plus one frame for the
    stream end, and ``duration`` cannot apply."""
    if not isinstance(text, str):
        raise SynthesisError(f"text must be a string, got {type(text).__name__}")
    if not isinstance(max_chunk_chars, int) or max_chunk_chars < 1:
        raise SynthesisError(f"max_chunk_chars must be an integer >= 1, got {max_chunk_chars!r}")
    if not 0 < chars_per_second < math.inf:
        raise SynthesisError(f"speaking rate must be > 0 chars/s (speed > 0, finite), got {chars_per_second!r}")
    if duration is not None and not 0 < duration < math.inf:
        raise SynthesisError(f"duration must be > 0 seconds (a finite number), got {duration!r}")
    max_duration = check_max_duration(max_duration)
    norm = normalize_text(text)
    if not norm:
        raise SynthesisError("text is empty: nothing to say")
    pieces = split_text(norm, max_chunk_chars)
    if frames_of is not None:
        if duration is not None:
            raise SynthesisError("this checkpoint speaks at eSpeak NG's timing (frame-timed phoneme prompts): "
                                 "duration cannot be set; leave it out")
        frames = [frames_of(p) + 1 for p in pieces]
    elif duration is None:
        frames = [canvas_frames(p, None, chars_per_second, CANVAS_MARGIN) for p in pieces]
    else:  # the requested length, shared out by characters
        total = canvas_frames(norm, duration)
        frames = share_out(total, [len(p) for p in pieces])
    seconds = sum(frames) / L.FRAMES_PER_SECOND
    if max_duration is not None and seconds > max_duration:
        raise SynthesisError(f"the request needs up to {seconds:.1f} s of audio ({len(norm)} characters), more "
                             f"than max_duration={max_duration:g} s; shorten the text or raise the limit "
                             "(--max-duration)")
    return [ChunkPlan(p, f) for p, f in zip(pieces, frames)]


def share_out(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` frames in proportion to ``weights`` (largest remainder: the parts sum to
    ``total``), at least 1 each."""
    quotas = [total * w / sum(weights) for w in weights]
    parts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(parts)), key=lambda i: parts[i] - quotas[i])
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return [max(1, p) for p in parts]


def sampler_config(frames: int, options: dict, seed: int | None = None) -> SamplerConfig:
    """SamplerConfig for a canvas of at least ``frames`` frames: rounded up to whole blocks, steps
    rounded up to a multiple of the block count (default: one step per ``tokens_per_step`` = 2 canvas
    tokens) and capped at the canvas tokens (a step commits at least one token: more steps cannot
    change the result).
    ``options`` as returned by ``check_sampler_options``."""
    o = dict(options)
    min_frames = math.floor(o.pop("min_length", 0.0) * frames)  # no end of speech before this
    method = o.pop("method", "semi_autoregressive_padding")
    block = o.pop("block_length", None) or DEFAULT_BLOCK_LENGTH
    steps = o.pop("steps", None)
    tokens_per_step = o.pop("tokens_per_step", None) or TOKENS_PER_STEP
    if method == "fixed_length":
        gen_length = L.SLOTS_PER_FRAME * frames
        num_blocks, block = 1, gen_length
    else:
        block_frames = block // L.SLOTS_PER_FRAME
        num_blocks = math.ceil(frames / block_frames)
        gen_length = num_blocks * block
    if steps is None:
        steps = max(1, gen_length // tokens_per_step)
    steps = min(max(num_blocks, math.ceil(steps / num_blocks) * num_blocks), gen_length)
    known = {f.name for f in fields(SamplerConfig)}
    kwargs = {k: v for k, v in o.items() if k in known}
    kwargs.setdefault("temperature", DEFAULT_TEMPERATURE)
    return SamplerConfig(method=method, steps=int(steps), gen_length=gen_length, block_length=block, audio=True,
                         min_frames=min_frames, seed=seed, **kwargs).validate()
