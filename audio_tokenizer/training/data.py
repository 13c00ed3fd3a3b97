"""Training audio: every wav of a corpus in memory, random crops with random gain.

A batch is a pure function of (seed, step, process): resuming at step k draws exactly the crops an
uninterrupted run would have drawn, with no data-loader state to save.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from audio_tokenizer import audio_io
from audio_tokenizer.corpus import read_metadata


def load_corpus_audio(folder, limit: int | None = None, progress: bool = True) -> list[np.ndarray]:
    """Mono float32 24 kHz waves [T_i] of a metadata.csv corpus (malformed rows are an error)."""
    rows = read_metadata(folder)
    bad = [r for r in rows if r.error]
    if bad:
        raise ValueError(f"{folder}: {bad[0].error}")
    rows = rows[:limit] if limit else rows
    return [audio_io.load_audio(r.audio) for r in tqdm(rows, desc="loading audio", unit="utt", disable=not progress)]


class CropSampler:
    """Random fixed-length crops (zero-padded when an utterance is shorter) with random gain."""

    def __init__(self, waves: list[np.ndarray], segment: int, gain_db: tuple[float, float], seed: int):
        if not waves:
            raise ValueError("no training audio")
        self.waves, self.segment, self.gain_db, self.seed = waves, segment, gain_db, seed

    def batch(self, step: int, batch_size: int, process: int = 0) -> torch.Tensor:
        """Crops [batch_size, 1, segment] for ``step`` on ``process``."""
        rng = np.random.default_rng([self.seed, step, process])
        out = np.zeros((batch_size, 1, self.segment), dtype=np.float32)
        for i, k in enumerate(rng.integers(len(self.waves), size=batch_size)):
            w = self.waves[k]
            start = int(rng.integers(max(len(w) - self.segment, 0) + 1))
            piece = w[start: start + self.segment]
            out[i, 0, : len(piece)] = piece * 10 ** (rng.uniform(*self.gain_db) / 20)
        return torch.from_numpy(out)
