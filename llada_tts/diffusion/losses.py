"""Masked-diffusion loss (LLaDA pretraining and SFT in one formula) and its text/audio breakdown.

    weighted_ce[b, l] = CE(logits[b, l], targets[b, l]) / p_mask[b, l]   if masked[b, l], else 0
    loss = mean_b( sum_l weighted_ce[b, l] / normalizer[b] )

normalizer = L for every row is LLaDA pretraining's sum / (B * L); normalizer = answer length (the
positions after the prompt, trailing fill included) is LLaDA SFT's loss. Cross-entropy is computed
in float32 on the masked positions only, so the [B, L, V] logits are never upcast as a whole.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> None:
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, L, V], got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape[:2] or masked.shape != logits.shape[:2]:
        raise ValueError(f"targets {tuple(targets.shape)} and masked {tuple(masked.shape)} must both be "
                         f"[B, L] = {tuple(logits.shape[:2])}")
    if masked.dtype != torch.bool:
        raise ValueError(f"masked must be a bool tensor, got {masked.dtype}")


def masked_diffusion_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    masked: torch.Tensor,
    p_mask: torch.Tensor,
    normalizer: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss scalar and weighted_ce [B, L] float32 (0 at unmasked positions).

    logits [B, L, V] (any float dtype), targets [B, L] int (the clean ids), masked [B, L] bool,
    p_mask [B, L], normalizer [B] > 0. A batch with nothing masked gives a loss of exactly 0 that
    still backpropagates (zero gradients).
    """
    _check(logits, targets, masked)
    b, seq_len, _ = logits.shape
    if p_mask.shape != (b, seq_len):
        raise ValueError(f"p_mask must be [B, L] = {(b, seq_len)}, got {tuple(p_mask.shape)}")
    if normalizer.shape != (b,):
        raise ValueError(f"normalizer must be [B] = ({b},), got {tuple(normalizer.shape)}")
    normalizer = normalizer.to(device=logits.device, dtype=torch.float32)
    if bool((normalizer <= 0).any()):
        raise ValueError("normalizer must be > 0 for every row (answer length or sequence length)")
    ce = F.cross_entropy(logits[masked].float(), targets[masked].long(), reduction="none")  # [N]
    weighted_ce = torch.zeros((b, seq_len), dtype=torch.float32, device=logits.device)
    weighted_ce = weighted_ce.masked_scatter(masked, ce / p_mask[masked].float())  # [B, L]
    loss = (weighted_ce.sum(dim=1) / normalizer).mean()
    return loss, weighted_ce


def audio_positions(targets: torch.Tensor, audio_lo: int, audio_hi: int) -> torch.Tensor:
    """Bool [B, L]: targets in the audio band [audio_lo, audio_hi) (pass layout.AUDIO_OFFSET/AUDIO_END)."""
    if audio_lo >= audio_hi:
        raise ValueError(f"audio range must be non-empty, got [{audio_lo}, {audio_hi})")
    return (targets >= audio_lo) & (targets < audio_hi)


def _kinds(targets: torch.Tensor, masked: torch.Tensor, audio_lo: int, audio_hi: int,
           fill: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Masked positions [B, L] bool split three ways: ``fill`` (the given fill positions), ``audio``
    (targets in [audio_lo, audio_hi)) and ``text`` (every other target: words and control tokens
    such as end_of_speech)."""
    fill = masked & (torch.zeros_like(masked) if fill is None else fill.bool())
    audio = audio_positions(targets, audio_lo, audio_hi) & masked & ~fill
    return {"text": masked & ~audio & ~fill, "audio": audio, "fill": fill}


def loss_breakdown(
    weighted_ce: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor, audio_lo: int, audio_hi: int,
    fill: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-token loss on masked text vs audio vs fill targets, for logging (detached).

    weighted_ce [B, L] (or plain per-token CE) is 0 off the mask; ``fill`` [B, L] bool marks the
    positions after each row's own tokens (the collator's fill; None = no fill), ``audio`` =
    other targets in [audio_lo, audio_hi), ``text`` = every other target (words and control tokens
    such as end_of_speech). Returns float32 scalars ``{text,audio,fill}_sum`` (sums of weighted_ce),
    ``{text,audio,fill}_count`` (masked tokens) and ``{text,audio,fill}_loss`` = sum / count, 0
    where the count is 0. Sums and counts add up across processes;
    ``text_sum + audio_sum + fill_sum == weighted_ce[masked].sum()``.
    """
    if weighted_ce.shape != targets.shape or masked.shape != targets.shape:
        raise ValueError("weighted_ce, targets and masked must all be [B, L]")
    w = weighted_ce.detach().float()
    out = {}
    for name, sel in _kinds(targets, masked, audio_lo, audio_hi, fill).items():
        total = (w * sel).sum()
        count = sel.sum().float()
        out[f"{name}_sum"] = total
        out[f"{name}_count"] = count
        out[f"{name}_loss"] = total / count.clamp(min=1.0)
    return out


def restricted_ce(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, slots: torch.Tensor,
                  slot_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of masked tokens whose candidates are restricted by their frame slot.

    hidden [N, H] (the decoder's output at N masked positions), weight [K, H] (the output head),
    targets [N] (rows of ``weight``), slots [N] (0..6 for an audio-region position, -1 for any other:
    scored over all K rows), slot_rows [7, C] (the rows slot s may take: its 4096 codes + stream ends).
    An audio target is scored over its slot's C rows only, as the sampler decodes it; for hidden 256
    that is ~1M multiply-adds per token instead of ~40M for the 156,940-row head.

    Returns ce [N] float32 and pred [N] (the argmax row among each token's candidates). ValueError
    when an audio target is not among its slot's candidates (a malformed frame).
    """
    n = targets.shape[0]
    ce = hidden.new_zeros(n, dtype=torch.float32)
    pred = torch.empty_like(targets)
    for s in slots.unique().tolist():
        sel = (slots == s).nonzero().squeeze(1)  # [n_s]
        rows = slot_rows[s] if s >= 0 else None
        logits = F.linear(hidden[sel], weight if rows is None else weight[rows]).float()  # [n_s, C or K]
        target = targets[sel]
        if rows is not None:
            hit = rows[None, :] == target[:, None]  # [n_s, C]
            if not bool(hit.any(dim=1).all()):
                bad = int(target[~hit.any(dim=1)][0])
                raise ValueError(f"target row {bad} is not a candidate of frame slot {s}: malformed audio frame")
            target = hit.long().argmax(dim=1)
        ce = ce.index_put((sel,), F.cross_entropy(logits, target, reduction="none"))
        best = logits.detach().argmax(dim=1)
        pred = pred.index_put((sel,), best if rows is None else rows[best])
    return ce, pred
