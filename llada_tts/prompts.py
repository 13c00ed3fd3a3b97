"""Orpheus-style TTS prompts: text (+ voice) -> prompt ids that end at start_of_speech."""
from __future__ import annotations

from audio_tokenizer import layout as L
from llada_tts.vocab import encode_text


def voice_text(text: str, voice: str | None) -> str:
    """Orpheus writes the voice as a prefix: ``"tara: Hello"``; no voice -> the bare text."""
    return f"{voice}: {text}" if voice else text


def tts_prompt(tokenizer, text: str, voice: str | None = None) -> list[int]:
    """[start_of_human, BOS, "voice: text"..., end_of_text, end_of_human, start_of_ai, start_of_speech]"""
    return L.tts_prompt_ids(encode_text(tokenizer, voice_text(text, voice)))


def tts_row(tokenizer, text: str, audio_ids: list[int], voice: str | None = None) -> tuple[list[int], int]:
    """A whole training row (prompt + audio + end_of_speech + end_of_ai) and its prompt length."""
    return L.tts_row_ids(encode_text(tokenizer, voice_text(text, voice)), audio_ids)
