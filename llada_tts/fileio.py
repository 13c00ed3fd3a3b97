"""Atomic files (any writer, and text): the one definition lives in :mod:`audio_tokenizer.fileio` (the
lower layer, so the codec tools can use it too); re-exported here for llada-tts code."""
from __future__ import annotations

from audio_tokenizer.fileio import atomic_file, write_atomic

__all__ = ["atomic_file", "write_atomic"]
