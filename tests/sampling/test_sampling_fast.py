"""Fast decoding: threshold parallel decoding, block KV cache, batched left-padded generation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from llada_tts.model import position_ids_from_mask
from llada_tts.sampling import SamplerConfig, generate, sample
from llada_tts.sampling.cache import BlockKVCache

VOCAB, MASK = 64, 63


def tiny_model(seed: int = 0, peak: float = 1.0) -> LlamaForCausalLM:
    """Tiny bidirectional Llama; ``peak`` scales the final norm, i.e. the logits (confident model)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, is_causal=False,
                      attn_implementation="sdpa", max_position_embeddings=256,
                      initializer_range=0.3)  # large weights: position-dependent, diverse predictions
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.norm.weight.mul_(peak)
    return model


def prompts(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, MASK, (n,), generator=g).tolist() for n in lengths]


@torch.no_grad()
def ref_threshold(model, prompt, gen_length, block_length, threshold):
    """Transcription of Fast-dLLM's threshold decoding (no cache, temperature 0, mask id forbidden)."""
    x = torch.cat([prompt, torch.full((1, gen_length), MASK)], dim=1)
    P, nfe = prompt.shape[1], 0
    for b in range(gen_length // block_length):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        while (x[:, lo:hi] == MASK).any():
            logits = model(x).logits
            logits[..., MASK] = -torch.inf
            nfe += 1
            x0 = logits.argmax(-1)
            conf = F.softmax(logits.double(), -1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            mask_index = x == MASK
            mask_index[:, hi:] = False
            conf = torch.where(mask_index, conf, -torch.inf)
            order = torch.argsort(conf[0], descending=True)
            n_masked = int(mask_index.sum())
            chosen = [order[0]] + [i for i in order[1:n_masked] if conf[0, i] >= threshold]
            for i in chosen:
                x[0, i] = x0[0, i]
    return x, nfe


# --- threshold --------------------------------------------------------------------------------------

def test_threshold_equals_fast_dllm_rule_and_saves_steps():
    model = tiny_model(1, peak=20.0)
    prompt = torch.tensor(prompts([6])[0]).unsqueeze(0)
    ref, ref_nfe = ref_threshold(model, prompt, 32, 8, 0.9)
    res = sample(model, prompt, SamplerConfig(gen_length=32, block_length=8, steps=32, threshold=0.9, mask_id=MASK))
    assert torch.equal(res.sequences, ref) and res.nfe == ref_nfe
    assert 4 <= res.nfe < 32  # several tokens per step on a confident model, >= 1 step per block
    flat = sample(tiny_model(1), prompt, SamplerConfig(gen_length=32, block_length=8, steps=32, threshold=0.9,
                                                       mask_id=MASK))
    assert flat.nfe == 32  # an unsure model commits exactly one token per step


def test_threshold_one_commits_one_token_per_step_like_low_confidence_steps_eq_length():
    model = tiny_model(2)
    prompt = torch.tensor([prompts([5])[0]])
    a = sample(model, prompt, SamplerConfig(gen_length=16, block_length=8, steps=16, threshold=1.0, mask_id=MASK))
    b = sample(model, prompt, SamplerConfig(gen_length=16, block_length=8, steps=16, mask_id=MASK))
    assert torch.equal(a.sequences, b.sequences) and a.nfe == b.nfe == 16


def test_threshold_with_schedule_floor_is_bounded_by_the_schedule():
    prompt = torch.tensor([prompts([5])[0]])
    base = dict(gen_length=32, block_length=8, steps=16, mask_id=MASK)
    unsure = tiny_model(2)
    ref = sample(unsure, prompt, SamplerConfig(**base))
    floor = sample(unsure, prompt, SamplerConfig(threshold=1.0, threshold_floor="schedule", **base))
    assert torch.equal(floor.sequences, ref.sequences) and floor.nfe == ref.nfe == 16  # nothing reaches 1.0
    sure = tiny_model(2, peak=20.0)
    canvases = [torch.cat([prompt, torch.full((1, 32), MASK)], dim=1)]
    res = sample(sure, prompt, SamplerConfig(threshold=0.9, threshold_floor="schedule", **base),
                 on_step=lambda x: canvases.append(x.clone()))
    for before, after in zip(canvases, canvases[1:]):
        left = (before[0, 5:].view(4, 8) == MASK).sum(1)  # masked per block
        block = int((left > 0).nonzero()[0])
        assert int(left[block] - (after[0, 5:].view(4, 8)[block] == MASK).sum()) >= min(2, int(left[block]))
    assert res.nfe < 16 and not (res.generated == MASK).any()
    one = sample(sure, prompt, SamplerConfig(threshold=0.9, **base))
    assert res.nfe <= one.nfe


# --- KV cache --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_cached_block_hidden_states_equal_a_full_pass(mode):
    """On an unchanged canvas the cached step reproduces the full pass (positions, masks right),
    with left padding."""
    model = tiny_model(3)
    x = torch.randint(0, MASK, (2, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(x)
    mask[1, :4] = 0
    pos = position_ids_from_mask(mask)
    with torch.no_grad():
        full = model.model(input_ids=x, attention_mask=mask, position_ids=pos).last_hidden_state
        cache = BlockKVCache(mode)
        refreshed = cache.refresh(model.model, x, mask, pos)
        block = cache.step(model.model, x, mask, pos, 8, 14)
        block_again = cache.step(model.model, x, mask, pos, 8, 14)  # nothing grew
    assert torch.allclose(refreshed, full, atol=1e-6)
    assert torch.allclose(block, full[:, 8:14], atol=1e-5)
    assert torch.equal(block, block_again)
    assert all(k.shape[2] == 20 for k, _ in cache.kv)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("extra", [dict(threshold=0.9), dict(cfg_scale=1.0), dict()])
def test_cache_refreshed_every_step_equals_uncached(mode, extra):
    model = tiny_model(4, peak=20.0)
    base = dict(gen_length=24, block_length=8, steps=24, mask_id=MASK, **extra)
    plain = sample(model, prompts([7, 4]), SamplerConfig(**base))
    cached = sample(model, prompts([7, 4]), SamplerConfig(use_cache=True, cache_mode=mode, refresh_every=1, **base))
    assert torch.equal(plain.sequences, cached.sequences)
    assert cached.nfe == plain.nfe and cached.nfe_cached == 0


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_block_cache_counts_passes_and_completes(mode):
    model = tiny_model(5)
    cfg = SamplerConfig(gen_length=24, block_length=8, steps=12, mask_id=MASK, use_cache=True, cache_mode=mode,
                        cfg_scale=0.5)
    res = sample(model, prompts([6]), cfg)
    assert res.steps == 12 and res.nfe == 24  # CFG: 2 passes per step
    assert res.nfe_cached == 24 - 3 * 2  # all but the one refresh per block (x2 for CFG)
    assert not (res.generated == MASK).any()
    uncached = sample(model, prompts([6]), SamplerConfig(**{**cfg.__dict__, "use_cache": False}))
    agree = (res.generated == uncached.generated).float().mean()
    assert agree > 0.5  # an approximation, but close (exact agreement is measured in the benchmark)


def test_cache_requires_a_transformers_model():
    model = tiny_model(0)
    with pytest.raises(ValueError, match="use_cache"):
        sample(model, prompts([4]), SamplerConfig(gen_length=8, block_length=8, steps=4, mask_id=MASK,
                                                  use_cache=True), full_logits=True)


# --- batching --------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [dict(), dict(cfg_scale=1.0), dict(threshold=0.9),
                                   dict(use_cache=True, threshold=0.9)])
def test_left_padded_batch_equals_each_prompt_alone(extra):
    model = tiny_model(6, peak=20.0)
    cfg = SamplerConfig(gen_length=16, block_length=8, steps=8, mask_id=MASK, **extra)
    ps = prompts([9, 5])
    batch = sample(model, ps, cfg)
    assert batch.sequences.shape == (2, 9 + 16) and batch.attention_mask[1, :4].sum() == 0
    for j, p in enumerate(ps):
        alone = sample(model, p, cfg)
        assert torch.equal(batch.generated[j], alone.generated[0]), j
        assert batch.sequences[j, 9 - len(p):9].tolist() == p


def test_generate_left_padded_batch_equals_each_prompt_alone():
    model = tiny_model(7)
    ps = prompts([3, 8])
    kw = dict(mask_id=MASK, steps=8, gen_length=16, block_length=8)
    batch = generate(model, ps, **kw)
    for j, p in enumerate(ps):
        assert torch.equal(batch[j, 8:], generate(model, p, **kw)[0, len(p):])


def test_generate_returns_the_callers_left_padding():
    model = tiny_model(7)
    ps = prompts([3, 8])
    kw = dict(mask_id=MASK, steps=8, gen_length=16, block_length=8)
    ids = torch.zeros(2, 8, dtype=torch.long)  # the caller pads with 0
    mask = torch.zeros(2, 8, dtype=torch.long)
    for j, p in enumerate(ps):
        ids[j, 8 - len(p):], mask[j, 8 - len(p):] = torch.tensor(p), 1
    out = generate(model, ids, attention_mask=mask, **kw)
    assert torch.equal(out[:, :8], ids)  # padding included: zeros, not mask ids
    assert torch.equal(out[:, 8:], generate(model, ps, **kw)[:, 8:])  # the padding value never matters
    listed = generate(model, ps, **kw)  # a list is padded here: the documented convention is the mask id
    assert listed[0, :5].tolist() == [MASK] * 5 and listed[0, 5:8].tolist() == ps[0]


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_kv_cache_uses_the_supported_cache_argument(mode):
    """No deprecated ``past_key_values`` (removed in transformers 5.40): the cache path warns nothing."""
    import warnings

    model = tiny_model(5)
    cfg = SamplerConfig(gen_length=16, block_length=8, steps=8, mask_id=MASK, use_cache=True, cache_mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        res = sample(model, prompts([6]), cfg)
    assert res.nfe_cached > 0


def test_transformers_has_an_upper_bound():
    import re
    from pathlib import Path

    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("transformers"))
    upper = re.search(r"<\s*([\d.]+)", spec)
    assert upper and tuple(map(int, upper.group(1).split("."))) <= (5, 40), spec
