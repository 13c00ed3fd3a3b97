"""The unified sampler: ``sample(model, prompt_ids, config) -> SampleResult``.

Every method is a loop over blocks of the generated region (fixed_length has one block):

    for each block [start, end):                        (origin first appends the block)
        schedule = linear split of the block's masked count over steps_per_block
        repeat: logits for the block -> CFG -> audio constraints -> Gumbel-max prediction + confidence
                -> commit top-k by schedule (or every confidence >= threshold) -> callbacks

At temperature 0 without cache/threshold/audio and with ``forbid_mask=False`` this is exactly
LLaDA's ``generate()`` (tested token for token against a transcription of it); the only deviation is
that steps whose schedule commits nothing for any row are skipped (they cannot change the canvas).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from audio_tokenizer import layout as L
from llada_tts.data.collate import FILL
from llada_tts.diffusion import mask_prompt
from llada_tts.model import position_ids_from_mask
from llada_tts.sampling.batch import left_pad
from llada_tts.sampling.config import SamplerConfig, SampleResult
from llada_tts.sampling.constraints import end_allowed, forbid_ends, slot_candidates, slots_of
from llada_tts.sampling.runner import FullLogitsRunner, HFRunner, is_hf_causal_lm
from llada_tts.sampling.schedule import get_num_transfer_tokens, predict_tokens, select_threshold, select_top_k


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _make_runner(model, config: SamplerConfig, full_logits: bool):
    if full_logits or not is_hf_causal_lm(model):
        if config.use_cache:
            raise ValueError("use_cache needs a transformers *ForCausalLM model (decoder + lm_head); "
                             "set use_cache=False for other models or full_logits=True")
        return FullLogitsRunner(model, audio=config.audio)
    return HFRunner(model, audio=config.audio, cache_mode=config.cache_mode if config.use_cache else None)


def fill_after(end_ids: torch.Tensor) -> torch.Tensor:
    """The fill that follows each row's first stream-end id (end_ids [B]), per kind as in training
    (``data.FILL``): end_of_text after end_of_text (a text or SFT answer), pad after the end of speech."""
    return torch.where(end_ids == L.END_OF_TEXT_ID, torch.full_like(end_ids, FILL["text"]),
                       torch.full_like(end_ids, FILL["tts"]))


class _Canvas:
    """The growing/denoising sequence and what the model sees (CFG doubles the batch)."""

    def __init__(self, prompt: torch.Tensor, prompt_mask: torch.Tensor | None, config: SamplerConfig):
        self.config, self.P = config, prompt.shape[1]
        self.x = prompt
        self.mask = prompt_mask  # [B, T] or None (no padding)
        self.stopped = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)
        self.fill = torch.full_like(self.stopped, FILL["tts"], dtype=torch.long)  # [B], set when a row stops

    def extend(self, n: int) -> None:
        """Append n positions: masks, or the row's fill for rows that already stopped."""
        b = self.x.shape[0]
        new = torch.full((b, n), self.config.mask_id, dtype=self.x.dtype, device=self.x.device)
        new[self.stopped] = self.fill[self.stopped, None]
        self.x = torch.cat([self.x, new], dim=1)
        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones(b, n)], dim=1)

    def fill_from(self, end: int) -> None:
        """Fill every column from ``end`` on with each row's fill."""
        self.x[:, end:] = self.fill[:, None]

    def model_inputs(self):
        """(input_ids, attention_mask, position_ids) [B or 2B, T]; the CFG half masks the prompt."""
        x, mask = self.x, self.mask
        if self.config.cfg_scale > 0:
            x = torch.cat([x, mask_prompt(x, self.P, self.config.mask_id)], dim=0)
            mask = None if mask is None else torch.cat([mask, mask], dim=0)
        return x, mask, None if mask is None else position_ids_from_mask(mask)

    def update_stopped(self, end: int) -> None:
        """Mark rows holding a stop id before ``end``; a newly stopped row gets its fill
        (``fill_id``, or by kind: :func:`fill_after` its first stop id)."""
        region = self.x[:, self.P:end]  # [B, n]
        is_stop = torch.isin(region, torch.tensor(self.config.stop_ids, device=self.x.device))  # [B, n]
        new = is_stop.any(dim=1) & ~self.stopped  # [B]
        if bool(new.any()):
            first = region.gather(1, is_stop.long().argmax(dim=1, keepdim=True)).squeeze(1)  # [B]
            fill = fill_after(first) if self.config.fill_id is None else torch.full_like(first, self.config.fill_id)
            self.fill = torch.where(new, fill, self.fill)
        self.stopped |= new


def _step_logits(runner, canvas: _Canvas, lo: int, end: int, phase: str) -> torch.Tensor:
    """Guided, constrained logits [B, end - lo, C] for canvas columns [lo, end)."""
    cfg = canvas.config
    inputs, mask, pos = canvas.model_inputs()
    logits = runner(inputs, mask, pos, lo, end, canvas.P, phase)
    if cfg.cfg_scale > 0:
        cond, uncond = logits.chunk(2, dim=0)
        logits = uncond + (cfg.cfg_scale + 1) * (cond - uncond)
    if cfg.audio:
        may_end = end_allowed(canvas.x[:, canvas.P:end], cfg.mask_id, cfg.min_frames)[:, lo - canvas.P:]  # [B, n]
        logits = forbid_ends(logits, may_end)
    elif cfg.forbid_mask and cfg.mask_id < logits.shape[-1]:
        logits = logits.clone()
        logits[..., cfg.mask_id] = -torch.inf
    return logits


@dataclass
class _Counts:
    nfe: int = 0  # forward passes (CFG: 2 per step)
    cached: int = 0  # of which on the KV cache
    steps: int = 0


def _transfer(config: SamplerConfig, conf: torch.Tensor, masked: torch.Tensor, k: torch.Tensor | None) -> torch.Tensor:
    """[B, n] bool: the masked positions to commit this step (top-k, or threshold with a floor of k)."""
    if config.threshold is None:
        return select_top_k(conf, masked, k) & masked
    transfer = select_threshold(conf, masked, config.threshold)
    if k is not None:
        transfer |= select_top_k(conf, masked, torch.minimum(k, masked.sum(1))) & masked
    return transfer


def _decode_block(runner, canvas: _Canvas, start: int, end: int, counts: _Counts, generator, on_step) -> None:
    """Unmask block [start, end) of the canvas in place."""
    config, P = canvas.config, canvas.P
    spb = config.steps_per_block
    # forbid_mask guarantees earlier blocks are complete; otherwise LLaDA keeps every mask left of
    # the block (a committed mask id) in play.
    lo = start if config.forbid_mask else P
    schedule = get_num_transfer_tokens(canvas.x[:, start:end] == config.mask_id, spb)  # [B, spb]
    cand = slot_candidates().to(canvas.x.device)[slots_of(range(lo - P, end - P))] if config.audio else None  # [n, C]
    passes = 2 if config.cfg_scale > 0 else 1
    done = 0  # steps run in this block
    for i in itertools.count():
        masked = canvas.x[:, lo:end] == config.mask_id  # [B, n]
        if config.threshold is None:
            if i == spb:
                return
            k = schedule[:, i]
            if int(k.max()) == 0:  # nothing scheduled for any row: the step could not change x
                continue
        elif not masked.any():
            return
        else:
            k = schedule[:, i] if config.threshold_floor == "schedule" and i < spb else None
        phase = "full"
        if config.use_cache:
            fresh = done == 0 or (config.refresh_every and done % config.refresh_every == 0)
            phase = "refresh" if fresh else "cached"
        logits = _step_logits(runner, canvas, lo, end, phase)  # [B, n, C]
        counts.nfe += passes
        counts.cached += passes if phase == "cached" else 0
        draw = None
        if config.remasking == "random":  # LLaDA draws one uniform per canvas position
            draw = torch.rand(canvas.x.shape, device=canvas.x.device, generator=generator)[:, lo:end]
        x0, conf = predict_tokens(logits, config.temperature, config.remasking, generator, draw, config.top_k)
        if cand is not None:
            x0 = cand[torch.arange(cand.shape[0], device=x0.device), x0]  # candidate index -> id [B, n]
        transfer = _transfer(config, conf, masked, k)
        region = canvas.x[:, lo:end]  # a view: commits land in the canvas
        region[transfer] = x0[transfer]
        counts.steps, done = counts.steps + 1, done + 1
        if on_step is not None:
            on_step(canvas.x)


def _check_init(init, rows: int, config: SamplerConfig, device) -> torch.Tensor:
    """``init`` ([n] or [B, n] ids, n = gen_length) as a [rows, n] tensor on ``device``; ValueError if unusable."""
    if config.method == "semi_autoregressive_origin":
        raise ValueError("init needs the whole canvas up front: use fixed_length or semi_autoregressive_padding")
    init = torch.as_tensor(init, dtype=torch.long).to(device)
    if init.dim() == 1:
        init = init.unsqueeze(0)
    if init.dim() != 2 or init.shape[1] != config.gen_length or init.shape[0] not in (1, rows):
        raise ValueError(f"init must be [{config.gen_length}] or [{rows}, {config.gen_length}] ids "
                         f"(gen_length), got shape {tuple(init.shape)}")
    return init.expand(rows, -1)


@torch.no_grad()
def sample(model, prompt_ids, config: SamplerConfig, *, attention_mask: torch.Tensor | None = None,
           generator: torch.Generator | None = None, on_step=None, full_logits: bool = False,
           progress: bool = False, init: torch.Tensor | None = None) -> SampleResult:
    """Generate ``config.gen_length`` tokens after each prompt by iterative unmasking.

    prompt_ids: [P] or [B, P] ids (with an optional 0/1 ``attention_mask`` marking left padding),
        or a list of id lists of different lengths (left-padded here).
    generator: source of all random draws (Gumbel noise, random remasking); default: a generator
        seeded with ``config.seed``, or torch's global RNG when that is None.
    on_step(x): called after every step with the live canvas [B, T] (clone it to keep it).
    full_logits: use only ``model(x).logits`` (any mask predictor; no KV cache, full-vocab head).
    init: the generated region's starting canvas, [gen_length] or [B, gen_length] ids: ``mask_id``
        where tokens are generated, any other id is fixed (kept as given, seen as context: the kept
        audio of a speech edit, a reference's audio before new speech). Audio ids sit at their frame
        slots (offset j of the region is slot j % 7). Not with semi_autoregressive_origin; with
        ``stop_at_end`` the fixed tail is never overwritten (no early stop). None: all masks.
    Returns a ``SampleResult`` (sequences, nfe, ...).
    """
    config.validate()
    device = _device(model)
    prompt, prompt_mask = left_pad(prompt_ids, attention_mask, config.mask_id, device)
    if generator is None and config.seed is not None:
        generator = torch.Generator(device=device).manual_seed(config.seed)
    runner = _make_runner(model, config, full_logits)
    canvas = _Canvas(prompt, prompt_mask, config)
    origin = config.method == "semi_autoregressive_origin"
    if init is not None:
        init = _check_init(init, prompt.shape[0], config, device)
    if not origin:
        canvas.extend(config.gen_length)
    if init is not None:
        canvas.x[:, canvas.P:] = init
    counts = _Counts()
    for b in tqdm(range(config.num_blocks), desc="blocks", disable=not progress, leave=False):
        start, end = canvas.P + b * config.block, canvas.P + (b + 1) * config.block
        if origin:
            canvas.extend(config.block)
        _decode_block(runner, canvas, start, end, counts, generator, on_step)
        canvas.update_stopped(end)
        if origin and bool(canvas.stopped.all()):
            break
        if config.stop_at_end and init is None and not origin and bool(canvas.stopped.all()) \
                and end < canvas.x.shape[1]:
            canvas.fill_from(end)
            break
    x, P = canvas.x, canvas.P
    mask = canvas.mask if canvas.mask is not None else torch.ones_like(x)
    audio = [L.validate_audio_tokens(row[P:]).tokens for row in x] if config.audio else []
    return SampleResult(sequences=x, attention_mask=mask, prompt_length=P, nfe=counts.nfe,
                        nfe_cached=counts.cached, steps=counts.steps, audio=audio)
