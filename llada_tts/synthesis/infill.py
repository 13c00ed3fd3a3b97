"""Shared mechanics of sampling around fixed audio (speech editing, reference prompts).

A canvas whose audio region is partly given: ``sample(..., init=canvas)`` generates only the
``MASK`` positions and keeps every other id, so given frames come back token for token.

    load_wave(audio, sample_rate)              path or array -> mono float32 [T] at 24 kHz
    infill_config(frames, masked, options)     SamplerConfig: each block gets the steps a plain
                                               canvas of ``masked`` frames gives its blocks
    canvas_init(head, gen_length, end=...)     [gen_length] ids: head, then the stream end or masks
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import torch

from audio_tokenizer import layout as L
from audio_tokenizer.errors import first_line
from llada_tts.data.collate import FILL
from llada_tts.sampling import SamplerConfig
from llada_tts.synthesis.errors import SynthesisError
from llada_tts.synthesis.plan import sampler_config

SILENCE_DBFS = -60.0  # RMS below this: no usable speech


def load_wave(audio, sample_rate: int | None = None, what: str = "audio") -> np.ndarray:
    """Mono float32 [T] at 24 kHz from a file path (any soundfile format) or an array ([T] or
    channels-last [T, C], float in [-1, 1] or integer PCM) at ``sample_rate`` Hz. SynthesisError
    (one line, naming ``what``) for a missing, unreadable, empty or non-finite input."""
    from audio_tokenizer.audio_io import AudioError, load_audio, resample, to_mono

    try:
        if isinstance(audio, (str, os.PathLike)):
            return load_audio(audio, L.SAMPLE_RATE)
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        wave = np.asarray(audio)
        if np.issubdtype(wave.dtype, np.integer):  # PCM (e.g. a Gradio upload): full scale -> 1.0
            wave = wave.astype(np.float32) / float(np.iinfo(wave.dtype).max)
        if not np.issubdtype(wave.dtype, np.number) or wave.ndim not in (1, 2) or wave.size == 0:
            raise AudioError(f"expected non-empty audio samples [T] or [T, C], got {wave.dtype} {wave.shape}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise AudioError(f"an audio array needs its sample_rate (a positive integer), got {sample_rate!r}")
        wave = to_mono(wave.astype(np.float32))
        if not np.isfinite(wave).all():
            raise AudioError("audio has NaN or infinite samples")
        return resample(wave, int(sample_rate), L.SAMPLE_RATE)
    except AudioError as e:
        raise SynthesisError(f"{what}: {first_line(e)}") from e


def rms_dbfs(wave: np.ndarray) -> float:
    """Loudness of a wave [T]: RMS in dB relative to full scale (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0
    return 20 * np.log10(rms) if rms > 0 else -np.inf


def infill_config(frames: int, masked: int, options: dict, min_frames: int) -> SamplerConfig:
    """SamplerConfig for a canvas of ``frames`` audio frames plus room for the stream end, of which
    ``masked`` frames are generated. ``steps`` keeps its per-block meaning: each block gets the
    steps a plain canvas of ``masked`` frames gives its blocks (blocks with nothing masked cost no
    forward pass). No stream-end id before frame ``min_frames``."""
    if options.get("method") == "semi_autoregressive_origin":
        raise SynthesisError("semi_autoregressive_origin grows an empty canvas; sampling around given audio "
                             "needs method fixed_length or semi_autoregressive_padding")
    per_block = sampler_config(max(1, masked), options).steps_per_block
    blocks = sampler_config(frames + 1, {**options, "steps": 1}).num_blocks
    config = sampler_config(frames + 1, {**options, "steps": per_block * blocks})
    return replace(config, min_frames=min_frames).validate()


def canvas_init(head: torch.Tensor, gen_length: int, end: bool) -> torch.Tensor:
    """[gen_length] ids: ``head`` [7k] (audio ids and MASKs), then ``end=True``: end_of_speech,
    end_of_ai and pad fill, as a training row ends (the length is fixed); ``end=False``: masks (the
    model decides where the speech ends)."""
    fill = FILL["tts"] if end else L.MASK_ID
    init = torch.full((gen_length,), fill, dtype=torch.long)  # [gen_length]
    init[: head.numel()] = head
    if end:
        init[head.numel() : head.numel() + 2] = torch.tensor([L.END_OF_SPEECH_ID, L.END_OF_AI_ID])
    return init
