"""``SynthesisRequest``: the arguments of one synthesize / stream / prepare call, as given.

``LladaTTS._prepare`` validates a request and resolves it into a run (planned chunks, checked
sampler options, a drawn seed); nothing here is checked yet.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from llada_tts.synthesis.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHUNK_CHARS, DEFAULT_MAX_DURATION


@dataclass(frozen=True)
class SynthesisRequest:
    """What to say and how (see ``LladaTTS.synthesize`` for each field's meaning)."""

    text: str
    voice: str | None = None
    seed: int | None = None  # None: draw one
    duration: float | None = None  # seconds of canvas for the whole text (None: estimated)
    speed: float = 1.0
    max_duration: float | None = DEFAULT_MAX_DURATION
    max_chunk_chars: int = DEFAULT_MAX_CHUNK_CHARS
    batch_size: int = DEFAULT_BATCH_SIZE  # chunks per sample() call
    progress: bool = False  # a tqdm bar over the denoising steps
    options: dict = field(default_factory=dict)  # sampler options (``check_sampler_options``)
