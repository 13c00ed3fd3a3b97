"""Pure sampling math shared by every sampler: the unmasking schedule and Gumbel-max sampling.

Both follow LLaDA's reference ``generate.py`` (arXiv:2502.09992) exactly, so a sampler built on them
reproduces the official algorithm token for token at temperature 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def get_num_transfer_tokens(mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """Tokens to commit at each of ``steps`` steps, per row: the linear schedule.

    mask_index [B, L] bool (which positions of the block are masked). LLaDA's noise schedule is
    linear, so each step commits the same expected number of tokens: ``masked // steps`` each, with
    the remainder given one extra to the first steps. Returns [B, steps] int64; each row sums to its
    masked count. Example: 10 masked over 4 steps -> [3, 3, 2, 2].
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    mask_num = mask_index.sum(dim=1, keepdim=True)  # [B, 1]
    base = mask_num // steps
    remainder = mask_num % steps
    step_idx = torch.arange(steps, device=mask_index.device).unsqueeze(0)  # [1, steps]
    return (base + (step_idx < remainder).long()).to(torch.int64)  # [B, steps]


def add_gumbel_noise(logits: torch.Tensor, temperature: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Scores whose argmax samples softmax(logits / temperature): LLaDA's float64 Gumbel-max.

    ``exp(logits) / (-log u)^temperature`` with u ~ U(0, 1) in float64 (low-precision Gumbel noise
    hurts masked-diffusion samples, arXiv:2409.02908). Temperature 0 returns ``logits`` unchanged
    (argmax = greedy) and draws nothing. The noise is drawn from ``generator`` when given.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits
    logits64 = logits.to(torch.float64)
    noise = torch.rand(logits64.shape, dtype=torch.float64, device=logits64.device, generator=generator)
    gumbel = (-torch.log(noise)) ** temperature
    return logits64.exp() / gumbel


def keep_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """``logits`` [..., C] with every score below its row's k-th largest set to -inf (ties with the
    k-th are kept), so sampling draws among the k most likely candidates. None or k >= C: unchanged."""
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # [..., 1]
    return logits.masked_fill(logits < kth, -torch.inf)


def predict_tokens(logits: torch.Tensor, temperature: float, remasking: str,
                   generator: torch.Generator | None = None, random_draw: torch.Tensor | None = None,
                   top_k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted indices and their confidence for every position of ``logits`` [B, n, C].

    x0 [B, n] = argmax of the Gumbel-noised logits (indices into C), drawn among each position's
    ``top_k`` most likely candidates when set (:func:`keep_top_k`). Confidence [B, n] float64 is
    the *un-tempered* softmax probability of x0 ("low_confidence"), or for "random" remasking the
    uniform draws ``random_draw`` [B, n] (drawn here from ``generator`` if not given).
    """
    x0 = torch.argmax(add_gumbel_noise(keep_top_k(logits, top_k), temperature, generator), dim=-1)  # [B, n]
    if remasking == "low_confidence":
        p = F.softmax(logits.to(torch.float64), dim=-1)  # [B, n, C]
        conf = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)  # [B, n]
    elif remasking == "random":
        if random_draw is None:
            random_draw = torch.rand(x0.shape, dtype=torch.float64, device=x0.device, generator=generator)
        conf = random_draw.to(torch.float64)
    else:
        raise ValueError(f"unknown remasking {remasking!r}; use 'low_confidence' or 'random'")
    return x0, conf


def select_top_k(confidence: torch.Tensor, masked: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Commit the ``k[j]`` most confident masked positions of each row j.

    confidence [B, n] float, masked [B, n] bool, k [B] int (<= masked count). Unmasked positions
    never win. Returns transfer [B, n] bool. Uses ``torch.topk`` per row, as LLaDA does.
    """
    conf = torch.where(masked, confidence, torch.full_like(confidence, -torch.inf))
    transfer = torch.zeros_like(masked)
    for j in range(conf.shape[0]):
        kj = int(k[j])
        if kj > 0:
            transfer[j, torch.topk(conf[j], k=kj).indices] = True
    return transfer


def select_threshold(confidence: torch.Tensor, masked: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fast-dLLM parallel decoding: commit every masked position with confidence >= ``threshold``,
    and at least the single most confident one in each row that still has a masked position.

    confidence [B, n], masked [B, n] bool. Returns transfer [B, n] bool.
    """
    conf = torch.where(masked, confidence, torch.full_like(confidence, -torch.inf))
    transfer = masked & (conf >= threshold)
    best = conf.argmax(dim=-1, keepdim=True)  # [B, 1]
    has_mask = masked.any(dim=-1, keepdim=True)  # [B, 1]
    return transfer | (torch.zeros_like(masked).scatter(-1, best, True) & has_mask)
