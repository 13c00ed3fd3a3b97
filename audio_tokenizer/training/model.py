"""One forward module for training either architecture, so DDP wraps a single ``forward``."""
from __future__ import annotations

import torch
from torch import nn

from audio_tokenizer.frame_codec import FrameCodec
from audio_tokenizer.training.losses import quantize


class CodecForTraining(nn.Module):
    """forward(audio [B, 1, T]) -> (audio_hat [B, 1, T'], codes, commitment, codebook, z_e list)."""

    def __init__(self, codec: nn.Module):
        super().__init__()
        self.codec = codec

    def forward(self, audio: torch.Tensor):
        codec = self.codec
        audio = codec.preprocess(audio)
        if isinstance(codec, FrameCodec):
            z = codec.encode_latent(audio)
            z_q, codes, commit, codebook, latents = quantize(codec.quantizer, z)
            audio_hat = codec.decode_latent(z_q, audio.shape[-1])
        else:  # snac.SNAC
            z_q, codes, commit, codebook, latents = quantize(codec.quantizer, codec.encoder(audio))
            audio_hat = codec.decoder(z_q)
        return audio_hat, codes, commit, codebook, latents
