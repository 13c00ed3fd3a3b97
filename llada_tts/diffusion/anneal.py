"""Attention-mask annealing for AR-to-diffusion adaptation (DiffuLLaMA, Dream).

An autoregressive checkpoint was trained causal. Switching it to full bidirectional attention at
step 0 throws away much of what it knows, so adaptation opens the attention gradually: at optimizer
update u of a K-update anneal, query i sees the keys j <= i + w, a window of w future keys that grows
linearly from 0 (causal) to the whole row (bidirectional) once u >= K:

    fraction(u) = min(1, u / K)         w = ceil(fraction * (L - 1))

The window depends only on the update count, so a resumed run continues the schedule exactly.
"""
from __future__ import annotations

import math

import torch


def anneal_fraction(update: int, steps: int) -> float:
    """The share of future keys open at optimizer update ``update`` (0-based) of a ``steps``-update
    anneal: update / steps, 1 from update ``steps`` on (and always 1 for steps = 0)."""
    if steps < 0 or update < 0:
        raise ValueError(f"need steps >= 0 and update >= 0, got {steps}, {update}")
    return 1.0 if steps == 0 else min(1.0, update / steps)


def future_window(length: int, fraction: float) -> int:
    """Future keys each query may see in a row of ``length`` tokens: ceil(fraction * (length - 1))."""
    return math.ceil(min(max(fraction, 0.0), 1.0) * (length - 1))


def annealed_mask(attention_mask: torch.Tensor, fraction: float, dtype: torch.dtype) -> torch.Tensor:
    """The attention mask for a model at anneal ``fraction``.

    attention_mask [B, L] 0/1 (padding). fraction >= 1: ``attention_mask`` itself (bidirectional;
    the model's usual path). Otherwise an additive [B, 1, L, L] mask in ``dtype``: 0 where query i
    may see key j (j <= i + w and j is not padding), the dtype's lowest finite value elsewhere
    (finite, so a padding query that sees nothing stays finite instead of NaN).
    """
    if fraction >= 1.0:
        return attention_mask
    length = attention_mask.shape[1]
    pos = torch.arange(length, device=attention_mask.device)
    window = (pos[None, :] <= pos[:, None] + future_window(length, fraction))  # [L, L] query x key
    visible = window[None] & attention_mask.bool()[:, None, :]  # [B, L, L]
    mask = torch.zeros(visible.shape, dtype=dtype, device=attention_mask.device)
    return mask.masked_fill(~visible, torch.finfo(dtype).min)[:, None]  # [B, 1, L, L]
