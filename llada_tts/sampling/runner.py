"""How the sampler gets logits for one block from a model.

Two runners, same call: ``runner(input_ids, attention_mask, position_ids, lo, end, region_start,
phase) -> logits [B, end - lo, C]`` for canvas columns [lo, end).

* ``FullLogitsRunner`` needs nothing but ``model(x).logits`` (any mask predictor): the official
  LLaDA path, used by ``generate``. No KV cache.
* ``HFRunner`` drives a transformers ``*ForCausalLM`` (decoder ``.model`` + output embeddings): it
  projects only the block's hidden states onto the vocabulary, supports the block KV cache, and with
  audio constraints projects each position onto its slot's 4099 candidates only (the same softmax
  as masking every other id to -inf, at ~1/38 of the head cost).

With ``audio=True`` the last axis C indexes ``constraints.slot_candidates()[slot]``; otherwise it is
the vocabulary. ``phase`` is "full" (no cache), "refresh" (full pass that refills the cache) or
"cached" (uncached columns only).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from audio_tokenizer import layout as L
from llada_tts.model import adapters
from llada_tts.sampling.cache import BlockKVCache
from llada_tts.sampling.constraints import slot_candidates, slots_of


class FullLogitsRunner:
    """Logits from ``model(x).logits`` (plus padding mask / positions only when there is padding)."""

    def __init__(self, model, audio: bool = False):
        self.model, self.audio = model, audio

    def __call__(self, input_ids, attention_mask, position_ids, lo, end, region_start, phase="full"):
        if phase != "full":
            raise ValueError("FullLogitsRunner has no KV cache: use the HF runner (full_logits=False)")
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask, "position_ids": position_ids}
        logits = self.model(input_ids, **kwargs).logits[:, lo:end]  # [B, n, V]
        if not self.audio:
            return logits
        cand = slot_candidates().to(logits.device)[slots_of(range(lo - region_start, end - region_start))]
        return torch.gather(logits, -1, cand.unsqueeze(0).expand(logits.shape[0], -1, -1)).float()  # [B, n, C]


def is_hf_causal_lm(model) -> bool:
    """True for a transformers ``*ForCausalLM`` with a decoder stack ``.model`` and an lm_head."""
    return (hasattr(model, "model") and callable(getattr(model, "get_output_embeddings", None))
            and model.get_output_embeddings() is not None)


class HFRunner:
    """Decoder stack + a head restricted to the block (and to slot candidates for audio)."""

    def __init__(self, model, audio: bool = False, cache_mode: str | None = None):
        if not is_hf_causal_lm(model):
            raise ValueError("HFRunner needs a transformers *ForCausalLM (a .model decoder and an lm_head); "
                             "pass full_logits=True for other mask predictors")
        self.body = model.model
        head = model.get_output_embeddings()
        self.weight, self.bias = head.weight, getattr(head, "bias", None)  # [V, H], [V] | None
        self.audio = audio
        self.shift = adapters.shifts(model)  # the decoder's hook shifts states; cached steps must know
        self.cache = BlockKVCache(cache_mode) if cache_mode else None
        if audio:
            if self.weight.shape[0] < L.AUDIO_END:
                raise ValueError(f"audio decoding needs the {L.VOCAB_SIZE}-row llada-tts vocabulary, "
                                 f"the model has {self.weight.shape[0]} rows")
            cand = slot_candidates().to(self.weight.device)  # [7, C]
            # On a CPU the candidate rows are float32 even for a bf16 body (the CPU default where bf16 is
            # native): the logits rank candidates and confidences. A GPU keeps the model's dtype (a
            # float32 copy of an Orpheus-3B head would be ~350 MB per call).
            dtype = torch.float32 if self.weight.device.type == "cpu" else self.weight.dtype
            self.cand_weight = self.weight[cand].to(dtype)  # [7, C, H]
            self.cand_bias = None if self.bias is None else self.bias[cand].to(dtype)  # [7, C]

    def _hidden(self, input_ids, attention_mask, position_ids, lo, end, phase):
        if phase == "full":
            out = self.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
            return out.last_hidden_state[:, lo:end]
        if self.cache is None:
            raise ValueError(f"phase {phase!r} needs a runner built with a cache_mode")
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).expand(input_ids.shape[0], -1)
        if phase == "refresh":
            return self.cache.refresh(self.body, input_ids, attention_mask, position_ids)[:, lo:end]
        if phase == "cached":
            if self.shift:  # logits at lo come from position lo - 1: recompute that column too
                return self.cache.step(self.body, input_ids, attention_mask, position_ids, lo - 1, end)[:, 1:]
            return self.cache.step(self.body, input_ids, attention_mask, position_ids, lo, end)
        raise ValueError(f"unknown phase {phase!r}")

    def __call__(self, input_ids, attention_mask, position_ids, lo, end, region_start, phase="full"):
        hidden = self._hidden(input_ids, attention_mask, position_ids, lo, end, phase)  # [B, n, H]
        if not self.audio:
            return F.linear(hidden, self.weight, self.bias)  # [B, n, V]
        hidden = hidden.to(self.cand_weight.dtype)
        slots = slots_of(range(lo - region_start, end - region_start)).to(hidden.device)  # [n]
        out = hidden.new_empty(*hidden.shape[:2], self.cand_weight.shape[1])  # [B, n, C]
        for s in slots.unique().tolist():
            cols = (slots == s).nonzero().squeeze(1)
            bias = None if self.cand_bias is None else self.cand_bias[s]
            out[:, cols] = F.linear(hidden[:, cols], self.cand_weight[s], bias)
        return out
