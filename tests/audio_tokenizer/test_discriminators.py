"""Adversarial losses of codec training: DAC's formulas, and the STFT discriminator under bf16."""
from __future__ import annotations

import pytest
import torch

from audio_tokenizer.training.discriminators import (
    BandSTFTDiscriminator,
    Discriminators,
    discriminator_loss,
    generator_losses,
)


def test_feature_matching_sums_every_map_of_every_discriminator_as_dac():
    real = [(torch.zeros(3), [torch.zeros(2), torch.zeros(4)]), (torch.zeros(1), [torch.zeros(5), torch.zeros(1)])]
    fake = [(torch.full((3,), 0.5), [torch.full((2,), 1.0), torch.full((4,), 2.0)]),
            (torch.ones(1), [torch.full((5,), 3.0), torch.full((1,), 4.0)])]
    adv, fm = generator_losses(real, fake)
    assert fm.item() == pytest.approx(1.0 + 2.0 + 3.0 + 4.0)  # a sum over the 4 maps, not their mean
    assert adv.item() == pytest.approx(0.25 + 0.0)
    assert discriminator_loss(real, fake).item() == pytest.approx((1 + 0.25) + (1 + 1))


def test_stft_discriminator_runs_under_bf16_autocast_in_fp32():
    torch.manual_seed(0)
    d = BandSTFTDiscriminator(512, channels=2)
    x = torch.randn(2, 1, 4096)
    ref, _ = d(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, feats = d(x.bfloat16())  # a bf16 decoder output, as under mixed precision on GPU
    assert torch.isfinite(out.float()).all() and len(feats) == 5 * 5
    assert torch.allclose(out.float(), ref, atol=0.1)  # same discriminator, bf16 convs after an fp32 STFT


def test_all_discriminators_give_logits_and_features_per_sub():
    d = Discriminators(periods=(2, 3), fft_sizes=(512,), channels=2)
    outs = d(torch.randn(1, 1, 4096))
    assert len(outs) == 3 and [len(f) for _, f in outs] == [5, 5, 25]
