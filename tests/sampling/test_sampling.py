"""LLaDA-exact sampling: schedule, Gumbel-max, ``generate`` vs a transcription of the official loop,
and the unified sampler's bad-input errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from llada_tts.sampling import SamplerConfig, add_gumbel_noise, generate, get_num_transfer_tokens, sample
from llada_tts.sampling.schedule import keep_top_k, predict_tokens, select_threshold, select_top_k

VOCAB, MASK = 64, 63


def tiny_model(seed: int = 0, vocab: int = VOCAB) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, is_causal=False,
                      attn_implementation="sdpa", max_position_embeddings=256,
                      initializer_range=0.3)  # large weights: position-dependent, diverse predictions
    return LlamaForCausalLM(cfg).eval()


# --- a straightforward transcription of LLaDA's official generate() (ML-GSAI/LLaDA generate.py) ----
# Differences: random draws come from `generator`; temperature 0 skips the (unused) Gumbel noise.

def ref_gumbel(logits, temperature, generator):
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    noise = torch.rand(logits.shape, dtype=torch.float64, generator=generator)
    return logits.exp() / (-torch.log(noise)) ** temperature


def ref_num_transfer(mask_index, steps):
    mask_num = mask_index.sum(dim=1, keepdim=True)
    base, remainder = mask_num // steps, mask_num % steps
    out = torch.zeros(mask_num.size(0), steps, dtype=torch.int64) + base
    for i in range(mask_num.size(0)):
        out[i, : remainder[i]] += 1
    return out


@torch.no_grad()
def ref_generate(model, prompt, steps, gen_length, block_length, temperature=0.0, cfg_scale=0.0,
                 remasking="low_confidence", mask_id=MASK, generator=None):
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long)
    x[:, : prompt.shape[1]] = prompt.clone()
    prompt_index = x != mask_id
    assert gen_length % block_length == 0
    num_blocks = gen_length // block_length
    assert steps % num_blocks == 0
    steps = steps // num_blocks
    for num_block in range(num_blocks):
        lo = prompt.shape[1] + num_block * block_length
        block_mask_index = x[:, lo: lo + block_length] == mask_id
        num_transfer_tokens = ref_num_transfer(block_mask_index, steps)
        for i in range(steps):
            mask_index = x == mask_id
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                logits = model(torch.cat([x, un_x], dim=0)).logits
                logits, un_logits = torch.chunk(logits, 2, dim=0)
                logits = un_logits + (cfg_scale + 1) * (logits - un_logits)
            else:
                logits = model(x).logits
            x0 = torch.argmax(ref_gumbel(logits, temperature, generator), dim=-1)
            if remasking == "low_confidence":
                p = F.softmax(logits.to(torch.float64), dim=-1)
                x0_p = torch.squeeze(torch.gather(p, dim=-1, index=torch.unsqueeze(x0, -1)), -1)
            else:
                x0_p = torch.rand((x0.shape[0], x0.shape[1]), generator=generator)
            x0_p[:, lo + block_length:] = -np.inf
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -np.inf)
            transfer_index = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                _, select_index = torch.topk(confidence[j], k=num_transfer_tokens[j, i])
                transfer_index[j, select_index] = True
            x[transfer_index] = x0[transfer_index]
    return x


# --- schedule / noise ------------------------------------------------------------------------------

def test_num_transfer_tokens_hand_values():
    m = torch.zeros(3, 12, dtype=torch.bool)
    m[0, :10] = True  # 10 over 4 -> 3 3 2 2
    m[1, :4] = True   # 4 over 4 -> 1 1 1 1
    m[2, :1] = True   # 1 over 4 -> 1 0 0 0
    assert get_num_transfer_tokens(m, 4).tolist() == [[3, 3, 2, 2], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert get_num_transfer_tokens(torch.ones(1, 7, dtype=torch.bool), 3).tolist() == [[3, 2, 2]]
    assert get_num_transfer_tokens(torch.ones(1, 32, dtype=torch.bool), 32).tolist() == [[1] * 32]
    with pytest.raises(ValueError, match="steps"):
        get_num_transfer_tokens(m, 0)


def test_num_transfer_tokens_matches_reference_loop():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(6, 40, generator=g) < 0.6
    for steps in (1, 3, 7, 40, 50):
        assert torch.equal(get_num_transfer_tokens(m, steps), ref_num_transfer(m, steps))


def test_gumbel_noise_temperature_zero_is_identity_and_float64_otherwise():
    logits = torch.randn(2, 3, 5)
    assert add_gumbel_noise(logits, 0.0) is logits
    a = add_gumbel_noise(logits, 0.7, torch.Generator().manual_seed(1))
    b = add_gumbel_noise(logits, 0.7, torch.Generator().manual_seed(1))
    assert a.dtype == torch.float64 and torch.equal(a, b)
    noise = torch.rand(logits.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, logits.double().exp() / (-noise.log()) ** 0.7)


def test_gumbel_max_samples_the_tempered_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5])
    temp, n = 0.8, 40000
    g = torch.Generator().manual_seed(0)
    draws = add_gumbel_noise(logits.expand(n, -1), temp, g).argmax(-1)
    freq = torch.bincount(draws, minlength=4).double() / n
    expected = F.softmax(logits.double() / temp, dim=-1)
    assert torch.allclose(freq, expected, atol=0.01), (freq, expected)


def test_keep_top_k_hand_values():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [5.0, 5.0, 1.0, 5.0]])
    inf = -torch.inf
    assert torch.equal(keep_top_k(logits, 2), torch.tensor([[inf, 3.0, 2.0, inf], [5.0, 5.0, inf, 5.0]]))  # ties kept
    assert torch.equal(keep_top_k(logits, 1), torch.tensor([[inf, 3.0, inf, inf], [5.0, 5.0, inf, 5.0]]))
    assert keep_top_k(logits, None) is logits and keep_top_k(logits, 4) is logits


def test_top_k_samples_the_renormalised_top_k_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5])
    temp, n = 0.8, 40000
    x0, conf = predict_tokens(logits.expand(n, 1, -1), temp, "low_confidence", torch.Generator().manual_seed(0),
                              top_k=2)
    freq = torch.bincount(x0.flatten(), minlength=4).double() / n
    expected = F.softmax(torch.tensor([1.0, -torch.inf, -torch.inf, 0.5], dtype=torch.float64) / temp, dim=-1)
    assert torch.allclose(freq, expected, atol=0.01), (freq, expected)
    # confidence stays the untempered full softmax of the drawn token
    assert torch.allclose(conf.flatten(), F.softmax(logits.double(), dim=-1)[x0.flatten()])


def test_top_k_one_is_greedy_through_the_sampler():
    model = tiny_model(2)
    prompt = torch.randint(0, MASK, (1, 5), generator=torch.Generator().manual_seed(0))
    cfg = SamplerConfig(method="fixed_length", steps=8, gen_length=16, temperature=1.0, top_k=1, mask_id=MASK, seed=3)
    greedy = generate(model, prompt, mask_id=MASK, steps=8, gen_length=16, block_length=16)
    assert torch.equal(sample(model, prompt, cfg).sequences, greedy)


def test_select_top_k_and_threshold():
    conf = torch.tensor([[0.9, 0.2, 0.95, 0.5], [0.1, 0.3, 0.2, 0.05]], dtype=torch.float64)
    masked = torch.tensor([[True, True, False, True], [True, True, True, True]])
    assert select_top_k(conf, masked, torch.tensor([2, 1])).tolist() == [
        [True, False, False, True], [False, True, False, False]]
    # >= 0.5 among masked; row 2 has none above -> its single best
    assert select_threshold(conf, masked, 0.5).tolist() == [
        [True, False, False, True], [False, True, False, False]]
    none_masked = torch.zeros_like(masked)
    assert not select_threshold(conf, none_masked, 0.5).any()


# --- generate == the official algorithm ------------------------------------------------------------

SETTINGS = [
    dict(steps=16, gen_length=16, block_length=16),                      # fixed length
    dict(steps=8, gen_length=16, block_length=16),                       # 2 tokens / step
    dict(steps=5, gen_length=15, block_length=15),                       # 3 / step
    dict(steps=7, gen_length=16, block_length=16),                       # uneven: remainder first
    dict(steps=9, gen_length=24, block_length=8),                        # semi-AR, 3 blocks
    dict(steps=12, gen_length=24, block_length=6),                       # semi-AR, uneven per block
    dict(steps=8, gen_length=16, block_length=8, cfg_scale=1.5),         # CFG
    dict(steps=16, gen_length=16, block_length=4, cfg_scale=0.5),
]


@pytest.mark.parametrize("kw", SETTINGS)
def test_generate_equals_official_loop_low_confidence(kw):
    model = tiny_model(1)
    prompt = torch.randint(0, MASK, (1, 7), generator=torch.Generator().manual_seed(2))
    ours = generate(model, prompt, mask_id=MASK, **kw)
    ref = ref_generate(model, prompt, **kw)
    assert torch.equal(ours, ref)
    assert ours.shape == (1, 7 + kw["gen_length"]) and torch.equal(ours[:, :7], prompt)
    assert len(set(ours[0, 7:].tolist())) >= 4  # diverse output: the order of commits matters


@pytest.mark.parametrize("kw", [dict(steps=16, gen_length=16, block_length=16),
                                dict(steps=12, gen_length=24, block_length=8),
                                dict(steps=8, gen_length=16, block_length=8, cfg_scale=1.0)])
def test_generate_equals_official_loop_random_remasking(kw):
    model = tiny_model(3)
    prompt = torch.randint(0, MASK, (2, 5), generator=torch.Generator().manual_seed(4))
    ours = generate(model, prompt, mask_id=MASK, remasking="random", generator=torch.Generator().manual_seed(7), **kw)
    ref = ref_generate(model, prompt, remasking="random", generator=torch.Generator().manual_seed(7), **kw)
    assert torch.equal(ours, ref)
    other = generate(model, prompt, mask_id=MASK, remasking="random", generator=torch.Generator().manual_seed(8), **kw)
    assert not torch.equal(ours, other)  # the draws matter


def test_generate_batch_of_equal_length_prompts_equals_official():
    model = tiny_model(5)
    prompt = torch.randint(0, MASK, (3, 6), generator=torch.Generator().manual_seed(6))
    kw = dict(steps=12, gen_length=24, block_length=8)
    assert torch.equal(generate(model, prompt, mask_id=MASK, **kw), ref_generate(model, prompt, **kw))


def test_sample_hf_runner_equals_official_loop():
    """The production path (decoder + block-only head) reproduces the official loop token for token."""
    model = tiny_model(9)
    prompt = torch.randint(0, MASK, (1, 6), generator=torch.Generator().manual_seed(1))
    for kw in (dict(steps=8, gen_length=16, block_length=16), dict(steps=12, gen_length=24, block_length=8),
               dict(steps=8, gen_length=16, block_length=8, cfg_scale=1.0)):
        ref = ref_generate(model, prompt, **kw)
        method = "fixed_length" if kw["block_length"] == kw["gen_length"] else "semi_autoregressive_padding"
        res = sample(model, prompt, SamplerConfig(method=method, mask_id=MASK, forbid_mask=False, **kw))
        assert torch.equal(res.sequences, ref)
        assert res.nfe == kw["steps"] * (2 if kw.get("cfg_scale") else 1)  # a CFG step = 2 passes
        assert res.steps == kw["steps"] and res.nfe_cached == 0


def test_forbid_mask_never_emits_the_mask_id():
    model = tiny_model(4)
    bias = torch.zeros(VOCAB)
    bias[MASK] = 0.3  # the mask id wins at some positions (not all)
    model.lm_head.bias = torch.nn.Parameter(bias)
    prompt = torch.randint(0, MASK, (1, 6), generator=torch.Generator().manual_seed(1))
    kw = dict(steps=8, gen_length=16, block_length=16)
    loose = generate(model, prompt, mask_id=MASK, **kw)
    strict = sample(model, prompt, SamplerConfig(method="fixed_length", mask_id=MASK, **kw)).sequences
    assert not (strict == MASK).any()
    assert (loose == MASK).any()  # upstream commits the mask id and leaves those positions masked
    assert torch.equal(loose, ref_generate(model, prompt, **kw))


def test_temperature_sampling_is_seeded_and_differs_from_greedy():
    model = tiny_model(2)
    prompt = torch.randint(0, MASK, (1, 5), generator=torch.Generator().manual_seed(0))
    cfg = SamplerConfig(method="fixed_length", steps=8, gen_length=16, temperature=1.0, mask_id=MASK, seed=3)
    a, b = sample(model, prompt, cfg).sequences, sample(model, prompt, cfg).sequences
    greedy = generate(model, prompt, mask_id=MASK, steps=8, gen_length=16, block_length=16)
    assert torch.equal(a, b) and not torch.equal(a, greedy)
    assert not (a == MASK).any()


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(gen_length=20, block_length=8, steps=4), "multiple of block_length.*gen_length=16 or 24"),
    (dict(gen_length=24, block_length=8, steps=10), r"divisible by the number of blocks \(3 .*steps=9 or 12"),
    (dict(gen_length=16, block_length=16, steps=0), "steps must be >= 1"),
    (dict(gen_length=16, block_length=16, steps=4, remasking="greedy"), "unknown remasking"),
    (dict(gen_length=16, block_length=16, steps=4, temperature=-1.0), "temperature"),
    (dict(gen_length=16, block_length=16, steps=4, cfg_scale=-0.5), "cfg_scale"),
])
def test_generate_bad_input_raises_naming_the_fix(kw, match):
    model = tiny_model()
    with pytest.raises(ValueError, match=match):
        generate(model, torch.tensor([[1, 2, 3]]), mask_id=MASK, **kw)


def test_empty_or_masked_prompt_raises():
    model = tiny_model()
    kw = dict(mask_id=MASK, gen_length=8, block_length=8, steps=4)
    for bad in (torch.zeros(1, 0, dtype=torch.long), [], [[1, 2], []]):
        with pytest.raises(ValueError, match="empty"):
            generate(model, bad, **kw)
    with pytest.raises(ValueError, match="contains the mask id"):
        generate(model, torch.tensor([[1, MASK, 2]]), **kw)
    with pytest.raises(ValueError, match="left-padded"):
        generate(model, torch.tensor([[1, 2, 3]]), attention_mask=torch.tensor([[1, 1, 0]]), **kw)


@pytest.mark.parametrize("kw, match", [
    (dict(method="beam"), "unknown method"),
    (dict(threshold=1.5), "threshold must be in"),
    (dict(threshold=0.9, remasking="random"), "low_confidence"),
    (dict(threshold=0.9, threshold_floor="two"), "threshold_floor"),
    (dict(audio=True, block_length=8, gen_length=16, steps=4), "multiples of 7"),
    (dict(use_cache=True, cache_mode="triple"), "cache_mode"),
    (dict(refresh_every=0), "refresh_every"),
    (dict(threshold=0.9, forbid_mask=False), "threshold decoding needs forbid_mask=True"),
    (dict(use_cache=True, forbid_mask=False), "use_cache needs forbid_mask=True"),
    (dict(temperature=float("nan")), "temperature must be >= 0"),
    (dict(cfg_scale=float("inf")), "cfg_scale must be >= 0"),
    (dict(top_k=0), "top_k must be >= 1"),
])
def test_config_validation(kw, match):
    base = dict(gen_length=32, block_length=8, steps=8, mask_id=MASK)
    with pytest.raises(ValueError, match=match):
        SamplerConfig(**{**base, **kw}).validate()
