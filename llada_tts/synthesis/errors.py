"""Errors of the synthesis pipeline: one clear line each, no traceback needed to act on them."""
from __future__ import annotations

from audio_tokenizer.errors import LladaTTSError, UserInputError

__all__ = ["LladaTTSError", "NoAudioError", "SynthesisError", "UserInputError"]


class SynthesisError(UserInputError):
    """Bad input or an unusable checkpoint/codec (the CLI exits 2)."""


class NoAudioError(SynthesisError):
    """The model produced no valid audio frame for a chunk (a runtime failure: the CLI exits 1)."""

    exit_code = 1
