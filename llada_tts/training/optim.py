"""AdamW with decoupled weight decay groups, and warmup + linear / cosine / constant schedules (the warmup's
length in updates comes from :class:`llada_tts.training.warmup.Warmup`)."""
from __future__ import annotations

import math
from functools import partial

import torch


def lr_factor(step: int, warmup_steps: int, total_steps: int, kind: str) -> float:
    """Multiplier of the peak learning rate before optimizer update ``step`` (0-based).

    Warmup: (step + 1) / (warmup_steps + 1) for step < warmup_steps, so the first update already
    moves. Then ``linear`` decays to 0 at ``total_steps``, ``cosine`` follows half a cosine to 0,
    ``constant`` stays at 1.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr_scheduler_type must be linear, cosine or constant, got {kind!r}")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices get ``weight_decay``; norms, biases and embeddings get none."""
    no_decay_ids = {id(p) for m in (model.get_input_embeddings(), model.get_output_embeddings())
                    if m is not None for p in m.parameters()}
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or id(p) in no_decay_ids else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float = 0.0,
                    betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters (fp32 master weights; see :func:`param_groups`)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=learning_rate, betas=betas, eps=1e-8)


def build_scheduler(optimizer: torch.optim.Optimizer, kind: str, warmup_steps: int,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR following :func:`lr_factor`; call ``step()`` once per optimizer update."""
    if kind not in ("linear", "cosine", "constant"):
        raise ValueError(f"lr_scheduler_type must be linear, cosine or constant, got {kind!r}")
    if warmup_steps < 0 or total_steps < 1:
        raise ValueError(f"need warmup_steps >= 0 and total_steps >= 1, got {warmup_steps}, {total_steps}")
    fn = partial(lr_factor, warmup_steps=warmup_steps, total_steps=total_steps, kind=kind)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
