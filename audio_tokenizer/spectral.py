"""Spectral features in plain torch (no torchaudio): STFT magnitudes and (log-)mel spectrograms.

One definition shared by the frame-rate codec's encoder, the codec training losses and eval-codec.
"""
from __future__ import annotations

import functools
import math

import torch


def _hz_to_mel(f: float) -> float:  # HTK
    return 2595.0 * math.log10(1.0 + f / 700.0)


@functools.lru_cache(maxsize=32)
def _mel_filters_cpu(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    with torch.inference_mode(False):  # cached: an inference tensor would break a later training step
        return _mel_filters(sample_rate, n_fft, n_mels, f_min, f_max)


def _mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    n_freqs = n_fft // 2 + 1
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)  # [F]
    mels = torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)  # [M + 2] band edges
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)  # [M, F] triangles
    fb = fb * (2.0 / (hi - lo))  # Slaney-style area normalisation
    return fb.float()


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
                device=None) -> torch.Tensor:
    """Triangular mel filterbank [n_mels, n_fft // 2 + 1] (HTK mel scale, area-normalised)."""
    fb = _mel_filters_cpu(sample_rate, n_fft, n_mels, float(f_min), float(f_max or sample_rate / 2))
    return fb.to(device) if device is not None else fb


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int | None = None) -> torch.Tensor:
    """|STFT| [B, n_fft // 2 + 1, T // hop + 1] of waves [B, T] (Hann window, centred, reflect pad)."""
    win = win or n_fft
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.abs()


def mel_spectrogram(x: torch.Tensor, sample_rate: int, n_fft: int, hop: int, n_mels: int,
                    win: int | None = None) -> torch.Tensor:
    """Mel power-free (magnitude) spectrogram [B, n_mels, T // hop + 1] of waves [B, T]."""
    mag = stft_magnitude(x, n_fft, hop, win)
    return torch.einsum("mf,bft->bmt", mel_filters(sample_rate, n_fft, n_mels, device=x.device), mag)


def log_mel(x: torch.Tensor, sample_rate: int, n_fft: int, hop: int, n_mels: int, floor: float = 1e-5) -> torch.Tensor:
    """log(max(mel, floor)) [B, n_mels, T // hop + 1]."""
    return torch.log(torch.clamp(mel_spectrogram(x, sample_rate, n_fft, hop, n_mels), min=floor))
