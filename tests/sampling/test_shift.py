"""Shifted prediction (AR-to-diffusion adaptation): logits at position i come from position i-1, in
the model (one hook), the reference sampler loop, every sampler method and both KV caches."""
from __future__ import annotations

import pytest
import torch
from test_sampling import MASK, ref_generate, tiny_model

from llada_tts.model import adapters
from llada_tts.model.modeling import position_ids_from_mask
from llada_tts.sampling import SamplerConfig, generate, sample
from llada_tts.sampling.runner import HFRunner


class ShiftedByHand(torch.nn.Module):
    """The reference: an unshifted model whose logits are moved one position right by hand."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, x):
        logits = self.inner(x).logits  # [B, T, V]
        return type("Out", (), {"logits": torch.cat([logits[:, :1], logits[:, :-1]], dim=1)})()


def shifted(seed: int):
    return adapters.set_shift(tiny_model(seed))


def test_shift_right_hand_values():
    h = torch.arange(6.0).view(1, 3, 2)
    assert adapters.shift_right(h).tolist() == [[[0.0, 1.0], [0.0, 1.0], [2.0, 3.0]]]


def test_the_hook_moves_logits_one_position_and_is_recorded_in_the_config(tmp_path):
    plain, model = tiny_model(5), shifted(5)
    x = torch.randint(0, MASK, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = plain(x).logits, model(x).logits
    assert torch.equal(b[:, 1:], a[:, :-1]) and torch.equal(b[:, 0], a[:, 0])
    assert model.config.llada_shift_logits is True and adapters.shifts(model)
    adapters.set_shift(model, False)
    with torch.no_grad():
        assert torch.equal(model(x).logits, a)
    adapters.set_shift(model, True)
    adapters.install(model)  # idempotent: still one shift
    with torch.no_grad():
        assert torch.equal(model(x).logits, b)


def test_a_saved_shifted_model_loads_shifted(tmp_path):
    from llada_tts.model import create_model, load_model, save_model, tiny_config

    model = adapters.set_shift(create_model(tiny_config(), seed=6)).eval()
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    x = torch.randint(0, 1000, (1, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = loaded.eval()(x).logits, model(x).logits
    assert torch.allclose(a, b, atol=1e-5) and torch.equal(a[:, 1], a[:, 0])  # position 1 reads position 0
    assert adapters.shifts(loaded)


@pytest.mark.parametrize("kw", [dict(steps=16, gen_length=16, block_length=16),
                                dict(steps=9, gen_length=24, block_length=8),
                                dict(steps=8, gen_length=16, block_length=8, cfg_scale=1.5)])
def test_shifted_sampler_equals_the_shifted_reference_loop(kw):
    model = shifted(1)
    prompt = torch.randint(0, MASK, (1, 7), generator=torch.Generator().manual_seed(2))
    ref = ref_generate(ShiftedByHand(tiny_model(1)), prompt, **kw)
    assert torch.equal(generate(model, prompt, mask_id=MASK, **kw), ref)  # the official path, model(x).logits
    hf = sample(model, prompt, SamplerConfig(mask_id=MASK, forbid_mask=False, **kw))  # decoder + head runner
    assert torch.equal(hf.sequences, ref)
    unshifted = generate(tiny_model(1), prompt, mask_id=MASK, **kw)
    assert not torch.equal(unshifted, ref)  # the shift changes what is sampled


@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_a_cached_step_on_an_unchanged_canvas_equals_the_refresh(mode, shift):
    """The cached step recomputes only the block (and, shifted, the column before it): on the canvas
    it was refreshed on, its logits equal the full pass's."""
    model = shifted(3) if shift else tiny_model(3)
    runner = HFRunner(model, cache_mode=mode)
    x = torch.randint(0, MASK, (2, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(x)
    mask[1, :4] = 0
    pos = position_ids_from_mask(mask)
    with torch.no_grad():
        full = runner(x, mask, pos, 8, 14, 6, "refresh")
        cached = runner(x, mask, pos, 8, 14, 6, "cached")
        plain = model(x, attention_mask=mask, position_ids=pos).logits[:, 8:14]
    assert torch.allclose(full, plain, atol=1e-5)
    assert torch.allclose(cached, full, atol=1e-4)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_shifted_cache_refreshed_every_step_equals_uncached(mode):
    model = shifted(4)
    base = dict(gen_length=24, block_length=8, steps=24, mask_id=MASK, threshold=0.9)
    prompt = torch.randint(0, MASK, (2, 6), generator=torch.Generator().manual_seed(3))
    plain = sample(model, prompt, SamplerConfig(**base))
    cached = sample(model, prompt, SamplerConfig(use_cache=True, cache_mode=mode, refresh_every=1, **base))
    approx = sample(model, prompt, SamplerConfig(use_cache=True, cache_mode=mode, **base))
    assert torch.equal(plain.sequences, cached.sequences)
    assert approx.nfe_cached > 0 and not (approx.sequences[:, 6:] == MASK).any()
