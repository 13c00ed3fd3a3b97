"""Orpheus-style TTS prompts: text (+ voice) -> prompt ids that end at start_of_speech.

``front_end`` (``audio_tokenizer.espeak.FRONT_ENDS``) says what the prompt holds: the text itself
("text") or eSpeak NG's IPA phonemes of it ("espeak-ipa"); the voice prefix is never converted.
"""
from __future__ import annotations

from audio_tokenizer import layout as L
from audio_tokenizer.text import prompt_ids, prompt_text, timeline_prompt_ids, voice_text  # noqa: F401  (re-exported)
from llada_tts.model.adapters import align_prompt


def tts_prompt(tokenizer, text: str, voice: str | None = None, *, front_end: str = "text",
               multiple: int = 1, speed: float = 1.0) -> list[int]:
    """[start_of_human, BOS, "voice: text"..., end_of_text, end_of_human, start_of_ai, start_of_speech],
    with filler ids in front up to a multiple of ``multiple`` tokens (7 for a frame-phase model:
    ``adapters.prompt_multiple(model.config)``; its training rows were aligned the same way)."""
    ids = L.tts_prompt_ids(prompt_ids(tokenizer, text, voice, front_end, speed))
    return align_prompt(ids, len(ids), multiple)[0]


def tts_timeline_prompt(tokenizer, phone_ids: list[int], voice: str | None = None, *,
                        multiple: int = 1) -> list[int]:
    """:func:`tts_prompt` of a frame-timed checkpoint from its phoneme ids (a spliced timeline)."""
    ids = L.tts_prompt_ids(timeline_prompt_ids(tokenizer, phone_ids, voice))
    return align_prompt(ids, len(ids), multiple)[0]


def tts_row(tokenizer, text: str, audio_ids: list[int], voice: str | None = None, *,
            front_end: str = "text") -> tuple[list[int], int]:
    """A whole training row (prompt + audio + end_of_speech + end_of_ai) and its prompt length."""
    return L.tts_row_ids(prompt_ids(tokenizer, text, voice, front_end), audio_ids)
