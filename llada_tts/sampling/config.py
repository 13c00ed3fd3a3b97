"""Sampler settings and results: ``SamplerConfig`` (validated up front) and ``SampleResult``."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from audio_tokenizer import layout as L

METHODS = ("fixed_length", "semi_autoregressive_padding", "semi_autoregressive_origin")
REMASKING = ("low_confidence", "random")
THRESHOLD_FLOORS = ("one", "schedule")
CACHE_MODES = ("prefix", "dual")


@dataclass
class SamplerConfig:
    """How to turn a prompt into ``gen_length`` tokens by iterative unmasking.

    method: "fixed_length" (one block = the whole canvas), "semi_autoregressive_padding" (whole
        canvas masked, decoded block by block left to right) or "semi_autoregressive_origin" (the
        canvas grows one block at a time and stops once a row holds a ``stop_ids`` token).
    steps: denoising steps over all of gen_length (split evenly over the blocks); at most one step per
        token is run (``steps_per_block`` is capped at the block length), since each step commits one.
    block_length: tokens per block (ignored by fixed_length); a whole number of 7-token frames when
        ``audio`` is on. gen_length must be a multiple of it.
    temperature: Gumbel-max sampling temperature (0 = greedy). top_k: sample each token among its
        k most likely candidates (None = all; no effect at temperature 0). cfg_scale: classifier-free guidance
        w; the unconditional pass masks the whole prompt, logits = u + (w + 1)(c - u).
    remasking: which predictions to commit at a step: "low_confidence" (most confident first) or
        "random". threshold: if set, commit every masked token of the block with confidence >=
        threshold (at least one per step) instead of the step schedule (needs low_confidence).
    threshold_floor: the fewest tokens a threshold step commits: "one" (Fast-dLLM) or "schedule"
        (never fewer than the linear schedule, so NFE <= steps even for an unsure model).
    use_cache: block-wise KV cache (Fast-dLLM): "prefix" caches the prompt and committed blocks,
        "dual" also the masked blocks after the current one; refreshed at every block start and
        every ``refresh_every`` steps (None: block starts only). An approximation, not exact.
    audio: constrain the generated region to valid SNAC frames (see ``constraints``).
    min_frames: with ``audio``, no stream-end id before this many whole frames (0 = none): keeps a
        model that prefers to stop at once from returning (almost) no audio.
    forbid_mask: never emit ``mask_id`` (the official LLaDA loop does not forbid it: off in
        ``generate``). stop_ids: what ends a row for origin / ``stop_at_end``.
    stop_at_end: semi_autoregressive_padding stops early once every row holds a stop id before the
        current block, filling the rest of each row with its fill.
    fill_id: what fills a row after it stopped (stop_at_end, and origin's later blocks). None (the
        default) = per kind, as in training: end_of_text after an end_of_text (text and SFT
        answers), pad after the end of speech.
    seed: seeds the sampling generator when no generator is passed to ``sample``.
    """

    method: str = "semi_autoregressive_padding"
    steps: int = 128
    gen_length: int = 128
    block_length: int = 32
    temperature: float = 0.0
    top_k: int | None = None
    cfg_scale: float = 0.0
    remasking: str = "low_confidence"
    threshold: float | None = None
    threshold_floor: str = "one"
    use_cache: bool = False
    cache_mode: str = "dual"
    refresh_every: int | None = None
    audio: bool = False
    min_frames: int = 0
    mask_id: int = L.MASK_ID
    forbid_mask: bool = True
    stop_ids: tuple[int, ...] = L.STREAM_END_IDS
    fill_id: int | None = None
    stop_at_end: bool = False
    seed: int | None = None

    @property
    def block(self) -> int:
        """The effective block length (gen_length for fixed_length)."""
        return self.gen_length if self.method == "fixed_length" else self.block_length

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block

    @property
    def steps_per_block(self) -> int:
        """Steps run per block, capped at the block length: a step commits at least one token, so
        further steps are no-ops (the result is the same; the cap keeps ``steps`` from sizing memory)."""
        return min(self.steps // self.num_blocks, self.block)

    def validate(self) -> SamplerConfig:
        """Raise ValueError naming the fix for any inconsistent setting; return self."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.remasking not in REMASKING:
            raise ValueError(f"unknown remasking {self.remasking!r}; choose one of {REMASKING}")
        if self.gen_length < 1:
            raise ValueError(f"gen_length must be >= 1, got {self.gen_length}")
        if self.block < 1:
            raise ValueError(f"block_length must be >= 1, got {self.block}")
        if self.gen_length % self.block:
            lo = self.gen_length // self.block * self.block
            raise ValueError(f"gen_length ({self.gen_length}) must be a multiple of block_length "
                             f"({self.block}): use gen_length={lo or self.block} or {lo + self.block}, "
                             f"or a block_length that divides {self.gen_length}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}: use at least one step per block "
                             f"(steps={self.num_blocks})")
        if self.steps % self.num_blocks:
            lo = self.steps // self.num_blocks * self.num_blocks
            raise ValueError(f"steps ({self.steps}) must be divisible by the number of blocks "
                             f"({self.num_blocks} = gen_length / block_length): use steps="
                             f"{lo or self.num_blocks} or {lo + self.num_blocks}")
        if not 0 <= self.temperature < math.inf:
            raise ValueError(f"temperature must be >= 0 (a finite number), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {self.top_k}")
        if not 0 <= self.cfg_scale < math.inf:
            raise ValueError(f"cfg_scale must be >= 0 (0 = no guidance; a finite number), got {self.cfg_scale}")
        if self.threshold is not None:
            if not 0.0 < self.threshold <= 1.0:
                raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
            if self.remasking != "low_confidence":
                raise ValueError("threshold decoding ranks by confidence: use remasking='low_confidence'")
        if self.threshold is not None and not self.forbid_mask:
            raise ValueError("threshold decoding needs forbid_mask=True (a committed mask id would never finish)")
        if self.use_cache and not self.forbid_mask:
            raise ValueError("use_cache needs forbid_mask=True")
        if self.threshold_floor not in THRESHOLD_FLOORS:
            raise ValueError(f"unknown threshold_floor {self.threshold_floor!r}; choose one of {THRESHOLD_FLOORS}")
        if self.cache_mode not in CACHE_MODES:
            raise ValueError(f"unknown cache_mode {self.cache_mode!r}; choose one of {CACHE_MODES}")
        if self.refresh_every is not None and self.refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1 or None, got {self.refresh_every}")
        if self.min_frames < 0 or (self.min_frames and not self.audio):
            raise ValueError(f"min_frames must be >= 0 and needs audio=True, got {self.min_frames}")
        if self.min_frames * L.SLOTS_PER_FRAME > self.gen_length:
            raise ValueError(f"min_frames ({self.min_frames}) is longer than the canvas "
                             f"({self.gen_length // L.SLOTS_PER_FRAME} frames): lower it or raise gen_length")
        if self.audio:
            f = L.SLOTS_PER_FRAME
            if self.block % f or self.gen_length % f:
                raise ValueError(f"audio decoding works in whole 7-token frames: gen_length "
                                 f"({self.gen_length}) and block_length ({self.block}) must be "
                                 f"multiples of 7, e.g. block_length={max(f, self.block // f * f)}")
            if self.mask_id != L.MASK_ID:
                raise ValueError(f"audio decoding uses the layout's mask id {L.MASK_ID}, got {self.mask_id}")
        return self


@dataclass
class SampleResult:
    """What ``sample`` returns.

    sequences [B, P + n]: left-padded prompt + generated canvas (n = gen_length, or fewer for
        semi_autoregressive_origin when every row stopped early).
    attention_mask [B, P + n]: 0 on left padding.
    prompt_length: P (the padded prompt width); the generated region is ``sequences[:, P:]``.
    nfe: model forward passes per sample (a CFG step is 2 passes: conditional + unconditional);
        nfe_cached of them ran on the KV cache (a block or suffix instead of the whole canvas).
    steps: denoising steps taken (commits); equals nfe without CFG.
    audio: per row, the generated audio up to its first stream-end id, as
        ``layout.validate_audio_tokens`` keeps it (``audio=True`` only; always whole valid frames).
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int
    nfe: int
    nfe_cached: int
    steps: int
    audio: list[torch.Tensor] = field(default_factory=list)

    @property
    def generated(self) -> torch.Tensor:
        """[B, n] the generated region."""
        return self.sequences[:, self.prompt_length:]
