"""Adversarial losses as in DAC's recipe (which SNAC derives from): multi-period and multi-band
STFT discriminators, least-squares GAN losses and feature matching.

Every discriminator maps audio [B, 1, T] to (logits, features): logits any shape, features a list
of intermediate activations. ``channels`` scales their width (DAC uses 32; CPU runs use less).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))  # DAC's STFT bands (fractions)


def _conv2d(cin, cout, kernel, stride=(1, 1), padding=(0, 0)):
    return weight_norm(nn.Conv2d(cin, cout, kernel, stride, padding))


class PeriodDiscriminator(nn.Module):
    """Audio folded to [B, 1, T / p, p] (HiFi-GAN MPD), 2-D convs along time."""

    def __init__(self, period: int, channels: int = 32):
        super().__init__()
        self.period = period
        widths = [1, channels, channels * 4, channels * 16, channels * 32]
        self.convs = nn.ModuleList(_conv2d(a, b, (5, 1), (3, 1), (2, 0)) for a, b in zip(widths, widths[1:]))
        self.convs.append(_conv2d(widths[-1], widths[-1], (5, 1), (1, 1), (2, 0)))
        self.post = _conv2d(widths[-1], 1, (3, 1), (1, 1), (1, 0))

    def forward(self, x):  # x [B, 1, T]
        pad = (-x.shape[-1]) % self.period
        x = F.pad(x, (0, pad), mode="reflect").reshape(x.shape[0], 1, -1, self.period)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            feats.append(x)
        return self.post(x), feats


class BandSTFTDiscriminator(nn.Module):
    """Complex STFT [B, 2, frames, bins] split into frequency bands, a conv stack per band (DAC MRD)."""

    def __init__(self, n_fft: int, channels: int = 32):
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        self.bands = [(int(lo * bins), int(hi * bins)) for lo, hi in BANDS]

        def stack():
            return nn.ModuleList([
                _conv2d(2, channels, (3, 9), (1, 1), (1, 4)),
                _conv2d(channels, channels, (3, 9), (1, 2), (1, 4)),
                _conv2d(channels, channels, (3, 9), (1, 2), (1, 4)),
                _conv2d(channels, channels, (3, 9), (1, 2), (1, 4)),
                _conv2d(channels, channels, (3, 3), (1, 1), (1, 1)),
            ])
        self.stacks = nn.ModuleList(stack() for _ in self.bands)
        self.post = _conv2d(channels, 1, (3, 3), (1, 1), (1, 1))

    def forward(self, x):  # x [B, 1, T]
        with torch.autocast(x.device.type, enabled=False):  # FFTs run in fp32 (cuFFT has no bf16)
            x = x.float()
            window = torch.hann_window(self.n_fft, device=x.device)
            spec = torch.stft(x[:, 0], self.n_fft, self.n_fft // 4, window=window, return_complex=True)  # [B, F, N]
            spec = torch.view_as_real(spec).permute(0, 3, 2, 1)  # [B, 2, N, F]
        feats, outs = [], []
        for (lo, hi), stack in zip(self.bands, self.stacks):
            h = spec[..., lo:hi]
            for conv in stack:
                h = F.leaky_relu(conv(h), 0.1)
                feats.append(h)
            outs.append(h)
        return self.post(torch.cat(outs, dim=-1)), feats


class Discriminators(nn.Module):
    """All sub-discriminators; forward returns a list of (logits, features)."""

    def __init__(self, periods=(2, 3, 5, 7, 11), fft_sizes=(2048, 1024, 512), channels: int = 32):
        super().__init__()
        self.subs = nn.ModuleList([PeriodDiscriminator(p, channels) for p in periods]
                                  + [BandSTFTDiscriminator(n, channels) for n in fft_sizes])

    def forward(self, x):
        return [d(x) for d in self.subs]


def discriminator_loss(real_out, fake_out) -> torch.Tensor:
    """LSGAN: sum over discriminators of mean (1 - D(real))^2 + mean D(fake)^2 (fake detached by caller)."""
    return sum(((1 - r) ** 2).mean() + (f ** 2).mean() for (r, _), (f, _) in zip(real_out, fake_out))


def generator_losses(real_out, fake_out) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarial, feature matching) as DAC's ``GANLoss.generator_loss``: the sum over
    discriminators of mean (1 - D(fake))^2, and the SUM over every discriminator's feature maps of the
    mean L1 between real (detached) and reconstructed features (so DAC's weights carry over)."""
    adv = sum(((1 - f) ** 2).mean() for f, _ in fake_out)
    fm = sum((r.detach() - f).abs().mean()
             for (_, real_feats), (_, fake_feats) in zip(real_out, fake_out)
             for r, f in zip(real_feats, fake_feats))
    return adv, fm
