"""AR-to-diffusion adaptation in the trainer: the shifted and the annealed losses against hand
computations, the settings through the config and checkpoint, and resume in the middle of an anneal."""
from __future__ import annotations

import copy

import pytest
import torch
from test_training import data, losses, tiny, weights  # noqa: F401  (fixtures and helpers)
from test_training_units import _hand_loss, _masks_every_row, _rows
from transformers import LlamaForCausalLM

from llada_tts.data import collate
from llada_tts.model import adapters, create_model, load_model, tiny_config
from llada_tts.training import Trainer
from llada_tts.training.step import diffusion_step, step_generator


class Call(torch.nn.Module):
    """A stand-in model for the hand loss: ``fn(input_ids, attention_mask) -> logits``."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"logits": self.fn(input_ids, attention_mask)})()


def _batch_and_seed():
    batch = collate(_rows())
    return batch, next(s for s in range(100) if _masks_every_row(batch, s))


@pytest.mark.parametrize("full_logits", [False, True])
def test_the_shifted_loss_is_the_llada_formula_on_logits_moved_one_position(full_logits):
    plain = create_model(tiny_config(), seed=0)
    shifted = adapters.set_shift(copy.deepcopy(plain))
    batch, seed = _batch_and_seed()

    def by_hand(ids, mask):  # logits at i from position i - 1 of the unshifted model
        logits = plain(input_ids=ids, attention_mask=mask).logits
        return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)

    out = diffusion_step(shifted, batch, step_generator(seed, 0, 0, torch.device("cpu")), full_logits=full_logits)
    want, _ = _hand_loss(Call(by_hand), batch, seed)
    unshifted, _ = _hand_loss(plain, batch, seed)
    assert float(out.loss) == pytest.approx(float(want), rel=1e-5)
    assert abs(float(want) - float(unshifted)) > 1e-4  # the shift changes the loss


def test_the_loss_at_anneal_zero_is_the_causal_models_loss():
    bi = create_model(tiny_config(), seed=0)
    causal = LlamaForCausalLM(tiny_config(is_causal=True))
    causal.load_state_dict(bi.state_dict())
    batch, seed = _batch_and_seed()
    gen = step_generator(seed, 0, 0, torch.device("cpu"))
    out = diffusion_step(bi, batch, gen, attention_fraction=0.0)
    want, _ = _hand_loss(causal, batch, seed)
    assert float(out.loss) == pytest.approx(float(want), rel=1e-5)
    full = diffusion_step(bi, batch, step_generator(seed, 0, 0, torch.device("cpu")), attention_fraction=1.0)
    assert float(full.loss) == pytest.approx(float(_hand_loss(bi, batch, seed)[0]), rel=1e-5)
    assert abs(float(full.loss) - float(out.loss)) > 1e-4


def test_resume_in_the_middle_of_an_anneal_continues_it_exactly(data, tmp_path):  # noqa: F811
    kw = dict(attention_anneal_steps=3, shift_logits=True, epochs=1)
    full = Trainer(tiny(data, tmp_path / "a", **kw)).train()
    part = Trainer(tiny(data, tmp_path / "b", **kw)).train(stop_after=2)
    assert part.interrupted and part.state.global_step == 2 < 3 < full.state.global_step + 1
    rest = Trainer(tiny(data, tmp_path / "b", **kw), resume="latest").train()
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(a) == list(range(1, full.state.global_step + 1)) and a == b
    wa, wb = weights(full.checkpoint), weights(rest.checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert adapters.shifts(load_model(full.checkpoint))  # recorded in config.json: samplers and scorers apply it
    Trainer(tiny(data, tmp_path / "c", shift_logits=True, epochs=1)).train(stop_after=2)
    assert losses(tmp_path / "c")[2] != a[2]  # the anneal changed the second update's loss


def test_a_shifted_checkpoint_needs_shift_logits(data, tmp_path):  # noqa: F811
    first = Trainer(tiny(data, tmp_path / "a", shift_logits=True, epochs=1)).train(stop_after=1)
    with pytest.raises(ValueError, match="set shift_logits: true"):
        Trainer(tiny(data, tmp_path / "b", model_name=str(first.checkpoint), epochs=1))
