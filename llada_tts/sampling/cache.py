"""Block-wise KV cache for a bidirectional mask predictor (Fast-dLLM, arXiv:2505.22618).

At a refresh (every block start, optionally every few steps) the whole canvas runs through the
model once and every layer's keys/values [B, kv_heads, T, head_dim] are kept. Until the next
refresh, a step runs only

* "prefix": the current block and everything after it, attending to the cached prompt and
  committed blocks;
* "dual": only the current block, attending to the cached prefix *and* the cached (still masked)
  suffix.

Attention is bidirectional, so cached keys/values go stale as the block changes: this is an
approximation, which is why it is refreshed per block. Each step builds a fresh ``DynamicCache``
from the stored tensors, so nothing grows across steps. Rotary positions of the uncached part are
passed explicitly (``position_ids``), and the 2-D padding mask is laid out in the same order as the
keys (cached columns first, then the new ones).
"""
from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache


def cache_kwarg(body) -> str:
    """The decoder's name for its KV-cache argument: ``cache`` where transformers has it (the
    supported name; ``past_key_values`` is deprecated and goes in 5.40), else ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def _columns(mode: str, start: int, end: int, total: int) -> tuple[torch.Tensor, slice]:
    """(cached column indices [K], query slice) for a step on block [start, end) of a canvas."""
    if mode == "prefix":
        return torch.arange(start), slice(start, total)
    if mode == "dual":
        return torch.cat([torch.arange(start), torch.arange(end, total)]), slice(start, end)
    raise ValueError(f"unknown cache mode {mode!r}; use 'prefix' or 'dual'")


class BlockKVCache:
    """Keys/values of the last full forward pass, replayed for cheap within-block steps."""

    def __init__(self, mode: str = "dual"):
        _columns(mode, 0, 0, 0)  # validates the mode
        self.mode = mode
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer ([B, h, T, d], [B, h, T, d])
        self.length = 0
        self._kept: tuple[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] | None = None

    def refresh(self, body, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                position_ids: torch.Tensor | None) -> torch.Tensor:
        """Run ``body`` (the decoder stack) on the whole canvas [B, T]; store its KV; return hidden [B, T, H]."""
        store = DynamicCache()
        out = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=True, **{cache_kwarg(body): store})
        self.kv = [(layer.keys, layer.values) for layer in store.layers]
        self.length = input_ids.shape[1]
        self._kept = None
        return out.last_hidden_state

    def step(self, body, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
             position_ids: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Hidden states [B, end - start, H] of block [start, end), computing only the uncached columns.

        input_ids / attention_mask / position_ids describe the whole current canvas [B, T] (T must
        equal the length at the last refresh).
        """
        total = input_ids.shape[1]
        if not self.kv or total != self.length:
            raise RuntimeError("KV cache is empty or stale (canvas length changed): refresh it first")
        keep, query = _columns(self.mode, start, end, total)
        keep = keep.to(input_ids.device)
        if self._kept is None or self._kept[0] != (start, end):  # gather the cached columns once per block
            self._kept = ((start, end), [(k[:, :, keep], v[:, :, keep]) for k, v in self.kv])
        past = DynamicCache(ddp_cache_data=self._kept[1])  # a fresh cache: the forward appends to it
        mask = None
        if attention_mask is not None:
            mask = torch.cat([attention_mask[:, keep], attention_mask[:, query]], dim=1)  # [B, K + q]
        out = body(input_ids=input_ids[:, query], attention_mask=mask,
                   position_ids=position_ids[:, query], use_cache=True, **{cache_kwarg(body): past})
        return out.last_hidden_state[:, : end - start]
