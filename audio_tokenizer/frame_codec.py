"""A frame-rate codec with SNAC's 24 kHz token layout (the demo codec's architecture).

SNAC runs its encoder and decoder convolutions at 24,000 samples/s. This model reads log-mel
frames and writes an inverse STFT (Vocos-style), so every layer runs at 94 or 47 frames/s, which
trains far faster per CPU-second. What it keeps from SNAC is the contract the language model sees:

- 24 kHz audio, padded to whole 2048-sample frames; latent at hop 512 (46.875 Hz);
- SNAC's own ``ResidualVectorQuantize`` with ``vq_strides [4, 2, 1]`` and 4096 codes per level,
  so codes are 12 / 23 / 47 Hz and one frame is 7 Orpheus tokens;
- the ``encode(audio) -> [L0, L1, L2]`` / ``decode(codes) -> audio`` / ``preprocess`` methods.

Shapes: audio [B, 1, T] with T = 2048 n; mel [B, n_mels, 8n]; latent [B, dim, 4n]; codes
[B, n], [B, 2n], [B, 4n]; decoded spectrum [B, n_fft/2 + 1, 8n + 1]; audio out [B, 1, T].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from snac.vq import ResidualVectorQuantize
from torch import nn

from audio_tokenizer import spectral

ARCHITECTURE = "frame"
HOP = 256  # STFT hop of the mel input and the iSTFT output (two per latent step)
N_FFT = 1024
DEFAULT_CONFIG = {
    "architecture": ARCHITECTURE, "sampling_rate": 24000, "n_mels": 100, "encoder_dim": 256,
    "encoder_layers": 4, "decoder_dim": 384, "decoder_layers": 8, "mlp_ratio": 3, "latent_layers": 2,
    "codebook_size": 4096, "codebook_dim": 8, "vq_strides": [4, 2, 1],
}


class ConvNeXtBlock(nn.Module):
    """Depthwise conv 7 -> LayerNorm -> MLP, residual with layer scale. x [B, C, T] -> [B, C, T]."""

    def __init__(self, dim: int, mlp_ratio: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x):
        y = self.norm(self.dwconv(x).transpose(1, 2))  # [B, T, C]
        y = self.fc2(F.gelu(self.fc1(y))) * self.gamma
        return x + y.transpose(1, 2)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels of [B, C, T]."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _stack(dim: int, n: int, mlp_ratio: int) -> nn.Sequential:
    return nn.Sequential(*[ConvNeXtBlock(dim, mlp_ratio, 1.0 / max(n, 1)) for _ in range(n)])


class FrameCodec(nn.Module):
    """Log-mel ConvNeXt encoder, SNAC residual VQ, ConvNeXt + iSTFT decoder (see module doc)."""

    def __init__(self, architecture: str = ARCHITECTURE, sampling_rate: int = 24000, n_mels: int = 100,
                 encoder_dim: int = 256, encoder_layers: int = 4, decoder_dim: int = 384,
                 decoder_layers: int = 8, mlp_ratio: int = 3, latent_layers: int = 2,
                 codebook_size: int = 4096, codebook_dim: int = 8, vq_strides=(4, 2, 1)):
        super().__init__()
        if architecture != ARCHITECTURE:
            raise ValueError(f"FrameCodec architecture must be {ARCHITECTURE!r}, got {architecture!r}")
        self.sampling_rate, self.n_mels = sampling_rate, n_mels
        self.vq_strides = list(vq_strides)
        self.hop_length = 2 * HOP  # one latent step = 512 samples, as in SNAC
        self.codebook_size, self.n_codebooks = codebook_size, len(self.vq_strides)
        self.attn_window_size = None
        # encoder: [B, M, 8n] -> [B, E, 8n] -> (stride 2) -> [B, E, 4n]
        self.enc_in = nn.Sequential(nn.Conv1d(n_mels, encoder_dim, 7, padding=3), ChannelNorm(encoder_dim))
        self.enc_blocks = _stack(encoder_dim, encoder_layers, mlp_ratio)
        self.enc_down = nn.Conv1d(encoder_dim, encoder_dim, 4, stride=2, padding=1)
        self.enc_latent = _stack(encoder_dim, latent_layers, mlp_ratio)
        self.enc_out = ChannelNorm(encoder_dim)
        self.quantizer = ResidualVectorQuantize(encoder_dim, codebook_size, codebook_dim, self.vq_strides)
        # decoder: [B, E, 4n] -> [B, D, 4n] -> (x2) -> [B, D, 8n] -> spectrum [B, F, 8n + 1]
        self.dec_in = nn.Conv1d(encoder_dim, decoder_dim, 7, padding=3)
        self.dec_latent = _stack(decoder_dim, latent_layers, mlp_ratio)
        self.dec_up = nn.ConvTranspose1d(decoder_dim, decoder_dim, 4, stride=2, padding=1)
        self.dec_norm = ChannelNorm(decoder_dim)
        self.dec_blocks = _stack(decoder_dim, decoder_layers, mlp_ratio)
        self.dec_out_norm = ChannelNorm(decoder_dim)
        self.head = nn.Conv1d(decoder_dim, N_FFT + 2, 1)  # log-magnitude and phase per bin
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    # --- SNAC-compatible interface ------------------------------------------------------------------
    def preprocess(self, audio):
        """Zero-pad audio [B, 1, T] on the right to whole 2048-sample frames (as SNAC does)."""
        pad_to = self.hop_length * self.vq_strides[0]
        return F.pad(audio, (0, math.ceil(audio.shape[-1] / pad_to) * pad_to - audio.shape[-1]))

    def encode_latent(self, audio):
        """Continuous latent [B, E, 4n] of padded audio [B, 1, 2048 n]."""
        mel = spectral.log_mel(audio[:, 0], self.sampling_rate, N_FFT, HOP, self.n_mels)[..., :-1]  # [B, M, 8n]
        x = self.enc_blocks(self.enc_in(mel))
        return self.enc_out(self.enc_latent(self.enc_down(x)))

    def decode_latent(self, z_q, length: int):
        """Audio [B, 1, length] from quantised latent [B, E, 4n] (length = 2048 n)."""
        x = self.dec_latent(self.dec_in(z_q))
        x = self.dec_out_norm(self.dec_blocks(self.dec_norm(self.dec_up(x))))  # [B, D, 8n]
        x = F.pad(x, (0, 1), mode="replicate")  # [B, D, 8n + 1]: centred iSTFT frames of `length` samples
        log_mag, phase = self.head(x).float().chunk(2, dim=1)  # [B, F, 8n + 1] each
        spec = torch.polar(torch.exp(log_mag.clamp(max=6.0)), phase)
        audio = torch.istft(spec, N_FFT, hop_length=HOP, win_length=N_FFT, window=self.window.float(),
                            center=True, length=length)
        return audio[:, None]

    def forward(self, audio):
        """(audio_hat [B, 1, T'], codes) for audio [B, 1, T] (T' = T padded to 2048 multiples)."""
        audio = self.preprocess(audio)
        z_q, codes = self.quantizer(self.encode_latent(audio))
        return self.decode_latent(z_q, audio.shape[-1]), codes

    def encode(self, audio):
        """[L0 [B, n], L1 [B, 2n], L2 [B, 4n]] for audio [B, 1, T]."""
        _, codes = self.quantizer(self.encode_latent(self.preprocess(audio)))
        return codes

    def decode(self, codes):
        """Audio [B, 1, 2048 n] from [L0 [B, n], L1 [B, 2n], L2 [B, 4n]]."""
        z_q = self.quantizer.from_codes(codes)
        return self.decode_latent(z_q, z_q.shape[-1] * self.hop_length)
