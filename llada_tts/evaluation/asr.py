"""Pluggable speech recognition for intelligibility checks: ``get_asr(spec)``.

Every backend has ``name`` and ``transcribe(waveform [T] float32, sample_rate) -> str``. Specs:

    "none"                      no ASR (``get_asr`` returns None)
    "pocketsphinx"              CMU PocketSphinx, US English model shipped in the wheel (offline,
                                fast, weak: ~0.8 WER even on clean eSpeak speech, a smoke signal only)
    "faster-whisper:DIR"        a local CTranslate2 Whisper model folder (``pip install faster-whisper``)

Backends are imported only when asked for, so neither package is a hard dependency.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from audio_tokenizer.audio_io import resample

ASR_CHOICES = ("none", "pocketsphinx", "faster-whisper:DIR")
ASR_RATE = 16000  # both backends want 16 kHz mono


class ASRError(ValueError):
    """An ASR spec that cannot be used (unknown name, missing package or model folder)."""


class ASR(Protocol):
    name: str

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> str: ...


def to_16k(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 [T] at 16 kHz, clipped to [-1, 1] (soxr resampling)."""
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected mono audio [T], got shape {wave.shape}")
    return np.clip(resample(wave, sample_rate, ASR_RATE), -1.0, 1.0)


class PocketSphinxASR:
    """CMU PocketSphinx with its default US English acoustic model, language model and dictionary."""

    name = "pocketsphinx"

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise ASRError("--asr pocketsphinx needs the pocketsphinx package: pip install pocketsphinx") from e
        self._decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> str:
        wave = to_16k(waveform, sample_rate)
        if wave.size == 0:
            return ""
        pcm = (wave * 32767.0).astype(np.int16).tobytes()  # 16-bit little-endian PCM
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


class FasterWhisperASR:
    """A local faster-whisper (CTranslate2) model folder, greedy English decoding on the CPU."""

    def __init__(self, model_dir: str | os.PathLike, device: str = "cpu", compute_type: str = "int8"):
        folder = Path(model_dir).expanduser()
        if not folder.is_dir():
            raise ASRError(f"--asr faster-whisper:{model_dir}: {folder} is not a folder; pass a local "
                           "CTranslate2 Whisper model folder (one holding model.bin)")
        if not (folder / "model.bin").is_file():
            raise ASRError(f"--asr faster-whisper:{model_dir}: no model.bin in {folder}; it is not a "
                           "faster-whisper model folder")
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise ASRError("--asr faster-whisper:DIR needs the faster-whisper package: "
                           "pip install faster-whisper") from e
        self.name = f"faster-whisper:{folder}"
        self._model = WhisperModel(str(folder), device=device, compute_type=compute_type)

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> str:
        wave = to_16k(waveform, sample_rate)
        if wave.size == 0:
            return ""
        segments, _info = self._model.transcribe(wave, language="en", beam_size=1, vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()


def parse_asr_spec(spec: str) -> tuple[str, str | None]:
    """``"pocketsphinx"`` -> ("pocketsphinx", None); ``"faster-whisper:DIR"`` -> ("faster-whisper", DIR).

    Raises :class:`ASRError` naming the valid choices for anything else.
    """
    raw = (spec or "").strip()
    name, sep, arg = raw.partition(":")
    name = name.strip().lower()
    if name in ("none", "pocketsphinx") and not sep:
        return name, None
    if name == "faster-whisper":
        if not arg.strip():
            raise ASRError("--asr faster-whisper needs a local model folder: faster-whisper:/path/to/model")
        return name, arg.strip()
    if name in ("none", "pocketsphinx"):
        raise ASRError(f"--asr {name} takes no argument, got {raw!r}")
    raise ASRError(f"unknown ASR {raw!r}; choose one of: {', '.join(ASR_CHOICES)}")


def get_asr(spec: str) -> ASR | None:
    """The backend for ``spec`` (see module doc); None for "none". Raises :class:`ASRError`."""
    name, arg = parse_asr_spec(spec)
    if name == "none":
        return None
    if name == "pocketsphinx":
        return PocketSphinxASR()
    return FasterWhisperASR(arg)
