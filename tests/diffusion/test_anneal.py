"""Attention-mask annealing: causal at update 0, bidirectional from update K, monotone in between."""
from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llada_tts.diffusion.anneal import anneal_fraction, annealed_mask, future_window

MIN = torch.finfo(torch.float32).min


def visible(mask: torch.Tensor) -> torch.Tensor:
    return mask[:, 0] == 0  # [B, L, L] bool


def test_fraction_and_window_hand_values():
    assert [anneal_fraction(u, 4) for u in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert anneal_fraction(0, 0) == 1.0
    assert [future_window(9, f) for f in (0.0, 0.1, 0.5, 1.0)] == [0, 1, 4, 8]
    with pytest.raises(ValueError):
        anneal_fraction(-1, 4)


def test_causal_at_zero_bidirectional_at_k_and_monotone():
    pad = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    m0 = annealed_mask(pad, anneal_fraction(0, 10), torch.float32)
    assert m0.shape == (2, 1, 6, 6) and m0.dtype == torch.float32
    assert torch.equal(visible(m0)[0], causal)
    assert torch.equal(visible(m0)[1], causal & pad[1].bool()[None, :])  # padding keys stay hidden
    assert set(m0.unique().tolist()) == {0.0, MIN}  # finite: no NaN for a query that sees nothing
    assert annealed_mask(pad, anneal_fraction(10, 10), torch.float32) is pad  # the usual 2-D padding mask
    before = visible(m0)
    for u in range(1, 10):
        now = visible(annealed_mask(pad, anneal_fraction(u, 10), torch.float32))
        assert bool((now | ~before).all()), u  # a key once visible stays visible
        before = now
    assert bool((before[0] == torch.ones(6, 6, dtype=torch.bool)).all())  # u = 9: ceil(0.9 * 5) = 5: all


def test_a_causal_anneal_mask_makes_a_bidirectional_model_causal():
    """At fraction 0 the bidirectional model computes what the same weights compute as a causal LM."""
    torch.manual_seed(0)
    kw = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=64, attn_implementation="sdpa")
    bi = LlamaForCausalLM(LlamaConfig(is_causal=False, **kw)).eval()
    ar = LlamaForCausalLM(LlamaConfig(is_causal=True, **kw)).eval()
    ar.load_state_dict(bi.state_dict())
    x = torch.randint(0, 64, (2, 10))
    ones = torch.ones_like(x)
    with torch.no_grad():
        causal = bi(x, attention_mask=annealed_mask(ones, 0.0, torch.float32)).logits
        assert torch.allclose(causal, ar(x).logits, atol=1e-5)
        full = bi(x, attention_mask=annealed_mask(ones, 1.0, torch.float32)).logits
        assert torch.allclose(full, bi(x).logits, atol=1e-6)
        assert not torch.allclose(causal, full, atol=1e-3)
