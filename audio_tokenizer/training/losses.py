"""Codec training losses: multi-scale mel (log and linear magnitude), waveform, DC, and the VQ
commitment / codebook terms that snac's quantizer does not return.

All take target ``x`` and reconstruction ``y`` as waves [B, T] at 24 kHz.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from audio_tokenizer import spectral

SAMPLE_RATE = 24000
MEL_SCALES = ((512, 128, 64), (1024, 256, 100), (2048, 512, 128))  # (n_fft, hop, n_mels)


def mel_losses(x: torch.Tensor, y: torch.Tensor, scales=MEL_SCALES) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-mel L1, linear-mel L1), each averaged over ``scales``. The linear term divides each
    scale by the target's per-item 99th percentile (EnCodec-style), so loudness errors count."""
    log_l1, lin_l1 = x.new_zeros(()), x.new_zeros(())
    for n_fft, hop, n_mels in scales:
        mx = spectral.mel_spectrogram(x, SAMPLE_RATE, n_fft, hop, n_mels)  # [B, M, F]
        my = spectral.mel_spectrogram(y, SAMPLE_RATE, n_fft, hop, n_mels)
        log_l1 = log_l1 + (torch.log(mx.clamp(min=1e-5)) - torch.log(my.clamp(min=1e-5))).abs().mean()
        scale = torch.quantile(mx.flatten(1), 0.99, dim=1).clamp(min=1e-5)[:, None, None]  # [B, 1, 1]
        lin_l1 = lin_l1 + ((mx - my).abs() / scale).mean()
    return log_l1 / len(scales), lin_l1 / len(scales)


def dc_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Absolute error of each item's mean (the mel terms are blind to DC)."""
    return (x.mean(-1) - y.mean(-1)).abs().mean()


def quantize(rvq, z: torch.Tensor):
    """snac ``ResidualVectorQuantize.forward`` on latent z [B, D, 4n], plus its losses.

    Returns (z_q [B, D, 4n], codes [[B, n], [B, 2n], [B, 4n]], commitment, codebook, z_e list) where
    the losses compare each level's projected vectors z_e [B, d, t] with the raw code vectors that
    replace them (as DAC does), and z_e feeds the collapse guard.
    """
    z_q, residual = torch.zeros_like(z), z
    codes, latents = [], []
    commit, codebook = z.new_zeros(()), z.new_zeros(())
    for q in rvq.quantizers:
        r = F.avg_pool1d(residual, q.stride, q.stride) if q.stride > 1 else residual
        z_e = q.in_proj(r)  # [B, d, t]
        z_code, idx = q.decode_latents(z_e)  # nearest code by cosine; raw code vectors [B, d, t]
        commit = commit + F.mse_loss(z_e, z_code.detach())
        codebook = codebook + F.mse_loss(z_code, z_e.detach())
        z_i = q.out_proj(z_e + (z_code - z_e).detach())  # straight-through
        if q.stride > 1:
            z_i = z_i.repeat_interleave(q.stride, dim=-1)
        z_q, residual = z_q + z_i, residual - z_i
        codes.append(idx)
        latents.append(z_e)
    return z_q, codes, commit, codebook, latents
