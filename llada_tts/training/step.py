"""One masked-diffusion training step on a collated batch: noise, predict, weighted cross-entropy.

    batch -> [random-length crop, pretraining text only] -> forward_process (mask maskable positions)
          -> model(noisy).logits [B, L, V] -> masked_diffusion_loss (normalised per row)

Text rows get LLaDA's pretraining loss (normaliser L) or SFT loss (normaliser = answer length);
TTS rows the SFT-style prompt-preserving loss (the text prompt is never masked). The mask draw
comes from a generator seeded by (seed, micro step, rank), so a resumed run draws the same masks.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from audio_tokenizer import layout as L
from llada_tts.data import KINDS
from llada_tts.diffusion import (
    audio_positions,
    crop_normalizer,
    forward_process,
    loss_breakdown,
    masked_diffusion_loss,
    random_length_crop,
)


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, differentiable
    stats: dict[str, torch.Tensor]  # detached sums/counts (loss_breakdown + accuracy_breakdown)
    tokens: int  # B * L of the (possibly cropped) batch


def step_generator(seed: int, micro_step: int, rank: int, device: torch.device) -> torch.Generator:
    """A generator for one step's random draws, a pure function of (seed, micro_step, rank)."""
    state = np.random.SeedSequence([int(seed), int(micro_step), int(rank)]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen


def maybe_crop(batch: dict[str, torch.Tensor], prob: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """LLaDA's 1% random-length crop, applied only to batches made entirely of pretraining text."""
    if prob <= 0 or not bool((batch["kind"] == KINDS["text"]).all()):
        return batch
    cropped = random_length_crop(batch["input_ids"], prob=prob, generator=generator)  # [B, L']
    length = cropped.shape[1]
    if length == batch["input_ids"].shape[1]:
        return batch
    out = dict(batch)
    out["input_ids"] = cropped
    for key in ("attention_mask", "maskable"):
        out[key] = batch[key][:, :length]
    out["normalizer"] = crop_normalizer(batch["prompt_lengths"], batch["kind"] == KINDS["text"], length).to(
        batch["normalizer"].device)
    return out


@contextlib.contextmanager
def head_on(model: torch.nn.Module, positions: torch.Tensor):
    """Inside, the output head sees only ``hidden[positions]`` ([1, N, H]), so ``logits`` is [1, N, V].

    A forward pre-hook on the (unwrapped) lm_head: the module tree, parameter names and the DDP/FSDP
    wrapper's forward are untouched, and the head's matmul, its backward and the cross-entropy run
    on the N masked positions instead of all B * L.
    """
    head = getattr(model, "module", model).get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda _, args: (args[0][positions][None], *args[1:]))
    try:
        yield
    finally:
        handle.remove()


def diffusion_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator,
                   mask_id: int = L.MASK_ID, eps: float = 1e-3, random_length_prob: float = 0.0,
                   full_logits: bool = False) -> StepOutput:
    """Loss and detached statistics of ``model`` on ``batch`` (a ``llada_tts.data.collate`` output on the device).

    Logits are computed for the masked positions only (the loss needs no others) unless
    ``full_logits``; both give the same loss (see tests/test_training_units.py).
    """
    batch = maybe_crop(batch, random_length_prob, generator)
    targets = batch["input_ids"]  # [B, L]
    noisy, masked, p_mask = forward_process(targets, batch["maskable"], mask_id, eps=eps, generator=generator)
    if full_logits:
        logits = model(input_ids=noisy, attention_mask=batch["attention_mask"]).logits  # [B, L, V]
        loss, weighted_ce = masked_diffusion_loss(logits, targets, masked, p_mask, batch["normalizer"])
        sel_targets, sel_masked, token_wce = targets, masked, weighted_ce
        pred = logits.detach()[masked].argmax(dim=-1)  # [N]
    else:
        with head_on(model, masked):
            logits = model(input_ids=noisy, attention_mask=batch["attention_mask"]).logits  # [1, N, V]
        # one pseudo-row holding every masked token: folding normalizer[b] * B into p_mask keeps
        # loss = mean_b(sum_l CE / p_mask / normalizer[b]) exactly
        scale = batch["normalizer"].float()[masked.nonzero(as_tuple=True)[0]] * targets.shape[0]  # [N]
        sel_targets = targets[masked][None]  # [1, N]
        sel_masked = torch.ones_like(sel_targets, dtype=torch.bool)
        one = torch.ones(1, device=targets.device)
        loss, weighted_ce = masked_diffusion_loss(logits, sel_targets, sel_masked, (p_mask[masked] * scale)[None], one)
        token_wce = weighted_ce * scale[None]  # CE / p_mask per masked token [1, N]
        pred = logits.detach()[0].argmax(dim=-1)  # [N]
    with torch.no_grad():
        stats = loss_breakdown(token_wce, sel_targets, sel_masked, L.AUDIO_OFFSET, L.AUDIO_END)
        stats.update(accuracy_counts(pred, targets[masked]))
    return StepOutput(loss=loss, stats=stats, tokens=targets.numel())


def accuracy_counts(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{all,text,audio}_{correct,total}`` for predictions and targets of masked tokens ([N] each)."""
    hit = pred == target
    audio = audio_positions(target, L.AUDIO_OFFSET, L.AUDIO_END)  # [N]
    n = torch.tensor(target.numel(), device=target.device)
    return {"all_correct": hit.sum(), "all_total": n, "text_correct": (hit & ~audio).sum(),
            "text_total": (~audio).sum(), "audio_correct": (hit & audio).sum(), "audio_total": audio.sum()}


def masked_accuracies(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> dict[str, torch.Tensor]:
    """``diffusion.accuracy_breakdown`` with one argmax instead of three gathers of the logits."""
    return accuracy_counts(logits.detach()[masked].argmax(dim=-1), targets[masked])


def batch_to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move every tensor of a collated batch to ``device`` (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
