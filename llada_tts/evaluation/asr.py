"""Pluggable speech recognition for intelligibility checks: ``get_asr(spec)``.

The backends live in :mod:`audio_tokenizer.judge` (one judge for the TTS and the codec tools); this
module re-exports them under their llada-tts names. Default spec: ``"auto"`` (Whisper tiny.en when the
``[eval]`` extra is installed, else pocketsphinx, else none).
"""
from __future__ import annotations

from audio_tokenizer.judge import (
    ASR,
    ASR_CHOICES,
    ASR_RATE,
    ASRError,
    FasterWhisperASR,
    PocketSphinxASR,
    bundled_whisper_model,
    get_asr,
    parse_asr_spec,
    resolve_asr_spec,
    to_16k,
    whisper_available,
)

__all__ = ["ASR", "ASR_CHOICES", "ASR_RATE", "ASRError", "FasterWhisperASR", "PocketSphinxASR",
           "bundled_whisper_model", "get_asr", "parse_asr_spec", "resolve_asr_spec", "to_16k", "whisper_available"]
