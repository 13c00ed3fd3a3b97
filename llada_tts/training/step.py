"""One masked-diffusion training step on a collated batch: noise, predict, weighted cross-entropy.

    batch -> [random-length crop of the pretraining text rows] -> forward_process (mask maskable
          positions) -> [prompt dropout of TTS rows] -> model(noisy).logits -> masked_diffusion_loss

Text rows get LLaDA's pretraining loss (normaliser L) or SFT loss (normaliser = answer length);
TTS rows the SFT-style prompt-preserving loss (the text prompt is never a target). For
``prompt_drop_prob`` of the TTS rows the whole prompt is replaced by mask ids in the input, with
``diffusion.mask_prompt``, the function the sampler's unconditional CFG pass uses. All random
draws come from a generator seeded by (seed, micro step, rank), so a resumed run draws the same.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from audio_tokenizer import layout as L
from llada_tts.data import KINDS, fill_positions, row_normalizer
from llada_tts.diffusion import (
    audio_positions,
    forward_process,
    loss_breakdown,
    mask_prompt,
    masked_diffusion_loss,
    random_length,
    restricted_ce,
)
from llada_tts.diffusion.anneal import annealed_mask
from llada_tts.model import adapters
from llada_tts.sampling.constraints import slot_candidates


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, differentiable
    stats: dict[str, torch.Tensor]  # detached sums/counts (loss_breakdown, accuracy_counts, batch_counts)
    tokens: int  # B * L of the (possibly cropped) batch


def step_generator(seed: int, micro_step: int, rank: int, device: torch.device) -> torch.Generator:
    """A generator for one step's random draws, a pure function of (seed, micro_step, rank)."""
    state = np.random.SeedSequence([int(seed), int(micro_step), int(rank)]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen


def crop_text_rows(batch: dict[str, torch.Tensor], prob: float,
                   generator: torch.Generator) -> tuple[dict[str, torch.Tensor], bool]:
    """LLaDA's random-length crop on the batch's pretraining text rows, wherever they are.

    With probability ``prob`` the text rows are cut to a length drawn from {1, ..., their kind
    length}; positions past it become padding (not attended, not maskable, out of the normaliser),
    and columns no row attends any more are dropped. Other rows are untouched. Returns (batch,
    whether it was cropped); no draw is made when ``prob`` is 0 or there is no text row.
    """
    text = batch["kind"] == KINDS["text"]  # [B]
    if prob <= 0 or not bool(text.any()):
        return batch, False
    width = int(batch["attention_mask"][text].sum(dim=1).max())
    length = random_length(width, prob, generator)
    if length == width:
        return batch, False
    out = dict(batch)
    cut = text[:, None] & (torch.arange(batch["input_ids"].shape[1], device=text.device)[None, :] >= length)  # [B, L]
    out["attention_mask"] = batch["attention_mask"].masked_fill(cut, 0)
    out["maskable"] = batch["maskable"] & ~cut
    out["normalizer"] = row_normalizer(out["attention_mask"], batch["prompt_lengths"], batch["kind"])
    keep = int(out["attention_mask"].sum(dim=0).nonzero().max()) + 1  # columns some row still attends
    for key in ("input_ids", "attention_mask", "maskable"):
        out[key] = out[key][:, :keep]
    return out, True


def drop_prompts(noisy: torch.Tensor, batch: dict[str, torch.Tensor], prob: float, mask_id: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask the whole prompt of each TTS row with probability ``prob`` (classifier-free guidance).

    noisy [B, L] (the forward process's output). Returns (noisy with the dropped prompts masked by
    ``diffusion.mask_prompt``, dropped [B] bool). Prompt positions are never maskable, so no loss
    is taken on them. One uniform per row is always drawn.
    """
    u = torch.rand(noisy.shape[0], generator=generator, device=generator.device).to(noisy.device)  # [B]
    dropped = (u < prob) & (batch["kind"] == KINDS["tts"])  # [B]
    lengths = torch.where(dropped, batch["prompt_lengths"], torch.zeros_like(batch["prompt_lengths"]))  # [B]
    return mask_prompt(noisy, lengths, mask_id), dropped


def batch_counts(batch: dict[str, torch.Tensor], cropped: bool, dropped: torch.Tensor) -> dict[str, torch.Tensor]:
    """Counts for logging: TTS fill and answer positions (their ratio is the TTS padding fraction),
    TTS rows, crops (0 or 1) and dropped prompts."""
    tts = batch["kind"] == KINDS["tts"]  # [B]
    fill = fill_positions(batch)  # [B, L]
    return {"tts_fill": fill[tts].sum(), "tts_answer": batch["maskable"][tts].sum(), "tts_rows": tts.sum(),
            "crops": torch.tensor(int(cropped), device=tts.device), "prompt_drops": dropped.sum()}


@contextlib.contextmanager
def head_on(model: torch.nn.Module, positions: torch.Tensor, identity: bool = False):
    """Inside, the output head sees only ``hidden[positions]`` ([1, N, H]), so ``logits`` is [1, N, V].

    A forward pre-hook on the (unwrapped) lm_head: the module tree, parameter names and the DDP/FSDP
    wrapper's forward are untouched, and the head's matmul, its backward and the cross-entropy run
    on the N masked positions instead of all B * L. ``identity``: the head returns those hidden
    states unchanged ([1, N, H]), for a loss that applies the head weight itself (:func:`restricted_ce`).
    """
    head = getattr(model, "module", model).get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda _, args: (args[0][positions][None], *args[1:]))
    if identity:
        head.forward = lambda hidden: hidden  # instance attribute: shadows the class's forward
    try:
        yield
    finally:
        handle.remove()
        if identity:
            del head.forward


def audio_slots(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, L] int64: the frame slot (0..6) of each answer position of a TTS row, -1 elsewhere."""
    pos = torch.arange(batch["input_ids"].shape[1], device=batch["input_ids"].device)[None, :]  # [1, L]
    offset = pos - batch["prompt_lengths"][:, None]  # [B, L]
    answer = (offset >= 0) & (batch["kind"] == KINDS["tts"])[:, None]
    return torch.where(answer, offset % L.SLOTS_PER_FRAME, torch.full_like(offset, -1))


def _slot_loss(model, noisy, attn, batch, masked, target_rows):
    """(ce [N], pred [N] head rows) of the masked tokens (``target_rows`` [N]: their targets as rows of
    the head), audio ones scored over their slot's candidates."""
    with head_on(model, masked, identity=True):
        hidden = model(input_ids=noisy, attention_mask=attn).logits[0]  # [N, H]
    lut = adapters.row_lookup_of(model)
    cand = slot_candidates().to(target_rows.device)  # [7, C] ids
    cand = cand if lut is None else adapters.to_rows(cand, lut)  # [7, C] rows
    weight = getattr(model, "module", model).get_output_embeddings().weight
    return restricted_ce(hidden, weight, target_rows, audio_slots(batch)[masked], cand)


def diffusion_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator,
                   mask_id: int = L.MASK_ID, eps: float = 1e-3, random_length_prob: float = 0.0,
                   full_logits: bool = False, prompt_drop_prob: float = 0.0, audio_loss: str = "full",
                   attention_fraction: float = 1.0) -> StepOutput:
    """Loss and detached statistics of ``model`` on ``batch`` (a ``llada_tts.data.collate`` output on the device).

    Logits are computed for the masked positions only (the loss needs no others) unless
    ``full_logits``; both give the same loss (see tests/training/test_training_units.py). ``audio_loss``
    "slot" scores each masked audio-region target over its frame slot's 4096 codes + stream ends
    only (:func:`restricted_ce`), the candidates the sampler decodes from; "full" over every id.
    A compact-embedding model's head has rows, not ids: targets are mapped to rows either way.
    ``attention_fraction`` < 1: the attention is annealed (AR-to-diffusion adaptation): each position
    sees only that share of the keys after it (:func:`llada_tts.diffusion.anneal.annealed_mask`).
    """
    if audio_loss not in ("full", "slot"):
        raise ValueError(f"audio_loss must be 'full' or 'slot', got {audio_loss!r}")
    batch, cropped = crop_text_rows(batch, random_length_prob, generator)
    attn = batch["attention_mask"]  # [B, L]; while annealing, [B, 1, L, L]
    if attention_fraction < 1.0:
        attn = annealed_mask(attn, attention_fraction, next(getattr(model, "module", model).parameters()).dtype)
    targets = batch["input_ids"]  # [B, L]
    noisy, masked, p_mask = forward_process(targets, batch["maskable"], mask_id, eps=eps, generator=generator)
    noisy, dropped = drop_prompts(noisy, batch, prompt_drop_prob, mask_id, generator)
    lut = adapters.row_lookup_of(model)
    loss_targets = targets if lut is None else adapters.to_rows(targets, lut)  # [B, L] head rows
    # per masked token [N]: folding normalizer[b] * B into p_mask keeps
    # loss = mean_b(sum_l CE / p_mask / normalizer[b]) exactly when every masked token sits in one row
    scale = batch["normalizer"].float()[masked.nonzero(as_tuple=True)[0]] * targets.shape[0]  # [N]
    if audio_loss == "slot":
        ce, pred = _slot_loss(model, noisy, attn, batch, masked, loss_targets[masked])
        pred = adapters.ids_of_rows(model, pred)  # [N]
        token_wce = (ce / p_mask[masked])[None]  # CE / p_mask per masked token [1, N]
        loss = (token_wce[0] / scale).sum()  # = mean_b(sum_l CE / p_mask / normalizer[b])
        sel_targets = targets[masked][None]
        sel_masked = torch.ones_like(sel_targets, dtype=torch.bool)
    elif full_logits:
        logits = model(input_ids=noisy, attention_mask=attn).logits  # [B, L, V]
        loss, weighted_ce = masked_diffusion_loss(logits, loss_targets, masked, p_mask, batch["normalizer"])
        sel_targets, sel_masked, token_wce = targets, masked, weighted_ce
        pred = adapters.ids_of_rows(model, logits.detach()[masked].argmax(dim=-1))  # [N]
    else:
        with head_on(model, masked):
            logits = model(input_ids=noisy, attention_mask=attn).logits  # [1, N, V]
        # one pseudo-row holding every masked token, its p_mask scaled (see `scale` above)
        sel_targets = targets[masked][None]  # [1, N]
        sel_masked = torch.ones_like(sel_targets, dtype=torch.bool)
        one = torch.ones(1, device=targets.device)
        loss, weighted_ce = masked_diffusion_loss(logits, loss_targets[masked][None], sel_masked,
                                                  (p_mask[masked] * scale)[None], one)
        token_wce = weighted_ce * scale[None]  # CE / p_mask per masked token [1, N]
        pred = adapters.ids_of_rows(model, logits.detach()[0].argmax(dim=-1))  # [N]
    with torch.no_grad():
        fill = fill_positions(batch)  # [B, L]
        sel_fill = fill if full_logits else fill[masked][None]
        stats = loss_breakdown(token_wce, sel_targets, sel_masked, L.AUDIO_OFFSET, L.AUDIO_END, fill=sel_fill)
        stats.update(accuracy_counts(pred, targets[masked], fill[masked]))
        stats.update(batch_counts(batch, cropped, dropped))
    return StepOutput(loss=loss, stats=stats, tokens=targets.numel())


def accuracy_counts(pred: torch.Tensor, target: torch.Tensor,
                    fill: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``{all,text,audio,fill}_{correct,total}`` for predictions and targets of masked tokens ([N]
    each; ``fill`` [N] bool marks fill targets); the split is ``diffusion.loss_breakdown``'s."""
    hit = pred == target
    fill = torch.zeros_like(hit) if fill is None else fill
    audio = audio_positions(target, L.AUDIO_OFFSET, L.AUDIO_END) & ~fill  # [N]
    text = ~audio & ~fill
    n = torch.tensor(target.numel(), device=target.device)
    out = {"all_correct": hit.sum(), "all_total": n}
    for name, sel in (("text", text), ("audio", audio), ("fill", fill)):
        out[f"{name}_correct"], out[f"{name}_total"] = (hit & sel).sum(), sel.sum()
    return out


def batch_to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move every tensor of a collated batch to ``device`` (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
