"""Guards against codebook collapse, and codebook statistics.

snac picks codes by cosine similarity of the projected vectors, so if every projection points one
way (a constant offset dominates at init) a level uses a handful of codes. Three guards, each
measured in shared/notes/codec-cpu-training.md:

- :func:`init_codebooks`: before step 1, every code is set to an encoder projection of real data;
- :func:`recenter`: each step, each level's ``in_proj`` bias -= rate x the batch mean of its
  projections, so the offset cannot build up;
- :class:`UsageTracker` + :func:`restart_dead_codes`: codes unused for ``restart_every`` steps are
  re-seeded from current projections.

Every function takes ``reduce`` / ``gather`` callables so that under DDP all processes apply the same
update (identity on one process).
"""
from __future__ import annotations

import math

import torch


def _flat(z_e: torch.Tensor) -> torch.Tensor:
    return z_e.detach().transpose(1, 2).reshape(-1, z_e.shape[1])  # [B * t, d]


@torch.no_grad()
def init_codebooks(rvq, latents: list[torch.Tensor], generator: torch.Generator, noise: float = 0.01) -> None:
    """Set level i's codebook to random rows of its projections ``latents[i]`` [B, d, t] (+ noise)."""
    for q, z_e in zip(rvq.quantizers, latents):
        flat = _flat(z_e)
        pick = torch.randint(len(flat), (q.codebook_size,), generator=generator)
        std = flat.std(0, keepdim=True).clamp(min=1e-6)
        q.codebook.weight.copy_(flat[pick] + noise * std * torch.randn(flat[pick].shape, generator=generator))


@torch.no_grad()
def recenter(rvq, latents: list[torch.Tensor], rate: float, reduce=lambda t: t) -> None:
    """in_proj bias -= rate x batch mean of the projections (``reduce``: mean over processes)."""
    for q, z_e in zip(rvq.quantizers, latents):
        q.in_proj.bias.sub_(rate * reduce(z_e.detach().mean(dim=(0, 2))))


class UsageTracker:
    """Counts of each code per level since the last :meth:`reset`."""

    def __init__(self, n_levels: int, codebook_size: int):
        self.counts = torch.zeros(n_levels, codebook_size, dtype=torch.long)

    def update(self, codes: list[torch.Tensor]) -> None:
        for level, c in enumerate(codes):
            self.counts[level] += torch.bincount(c.detach().flatten().cpu(), minlength=self.counts.shape[1])

    def reset(self) -> None:
        self.counts.zero_()


def code_stats(counts: torch.Tensor) -> dict[str, float]:
    """Per level: codes used and perplexity (exp of the usage entropy) of a [levels, codes] count table."""
    out = {}
    for level, c in enumerate(counts):
        p = c.double() / max(int(c.sum()), 1)
        entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
        out[f"codes_used_L{level}"] = int((c > 0).sum())
        out[f"perplexity_L{level}"] = math.exp(entropy)
    return out


@torch.no_grad()
def restart_dead_codes(rvq, counts: torch.Tensor, latents: list[torch.Tensor], generator: torch.Generator,
                       gather=lambda t: t, noise: float = 0.01) -> list[int]:
    """Re-seed codes with zero count from random rows of the (gathered) projections; returns the
    number restarted per level. ``generator`` must be seeded alike on every process."""
    restarted = []
    for q, c, z_e in zip(rvq.quantizers, counts, latents):
        dead = (c == 0).nonzero().flatten()
        restarted.append(len(dead))
        if not len(dead):
            continue
        flat = gather(_flat(z_e).contiguous())
        pick = torch.randint(len(flat), (len(dead),), generator=generator)
        std = flat.std(0, keepdim=True).clamp(min=1e-6)
        q.codebook.weight[dead] = (flat[pick] + noise * std * torch.randn(flat[pick].shape, generator=generator)
                                   ).to(q.codebook.weight.dtype)
    return restarted
