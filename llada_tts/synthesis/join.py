"""Joining chunk waveforms with a short equal-power crossfade, incrementally (for streaming) or at once.

Chunk i's last ``overlap`` samples are crossfaded with chunk i+1's first ones:

    out = ... prev[-k:] * cos(pi/2 * t) + next[:k] * sin(pi/2 * t) ...     t = (arange(k) + 0.5) / k

so the joined length is sum(len(chunk)) - (n_chunks - 1) * k, with k = overlap (shorter when a chunk
is shorter than the overlap). ``Joiner`` emits samples as soon as they are final; concatenating
everything it emits gives exactly ``join(chunks)``.
"""
from __future__ import annotations

import numpy as np

DEFAULT_CROSSFADE_MS = 40.0


def crossfade_samples(sample_rate: int, ms: float = DEFAULT_CROSSFADE_MS) -> int:
    if ms < 0:
        raise ValueError(f"crossfade must be >= 0 ms, got {ms}")
    return int(round(sample_rate * ms / 1000))


def equal_power(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade_out [k], fade_in [k]) with fade_out**2 + fade_in**2 == 1."""
    t = (np.arange(k, dtype=np.float64) + 0.5) / max(k, 1)
    return np.cos(0.5 * np.pi * t).astype(np.float32), np.sin(0.5 * np.pi * t).astype(np.float32)


class Joiner:
    """Incremental crossfade joiner: ``feed`` samples of the current chunk, ``end_chunk`` between
    chunks, ``finish`` at the end. Each call returns the samples that became final (float32)."""

    def __init__(self, overlap: int):
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        self.overlap = overlap
        self.tail: np.ndarray | None = None  # end of the previous chunk, waiting for the crossfade
        self.pending = np.zeros(0, dtype=np.float32)  # current chunk, not yet emitted
        self.emitted = 0

    def _out(self, parts: list[np.ndarray]) -> np.ndarray:
        out = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
        self.emitted += len(out)
        return out

    def feed(self, wave: np.ndarray) -> np.ndarray:
        self.pending = np.concatenate([self.pending, np.asarray(wave, dtype=np.float32)])
        parts = []
        if self.tail is not None and len(self.pending) >= len(self.tail):
            k = len(self.tail)
            fade_out, fade_in = equal_power(k)
            parts.append(self.tail * fade_out + self.pending[:k] * fade_in)
            self.pending, self.tail = self.pending[k:], None
        if self.tail is None and len(self.pending) > self.overlap:
            cut = len(self.pending) - self.overlap
            parts.append(self.pending[:cut])
            self.pending = self.pending[cut:]
        return self._out(parts)

    def end_chunk(self) -> np.ndarray:
        """The current chunk is complete; its held-back end waits for the next chunk."""
        parts = []
        if self.tail is not None:  # a chunk shorter than the previous tail: crossfade what there is
            k = len(self.pending)
            fade_out, fade_in = equal_power(k)
            parts += [self.tail[:-k] if k else self.tail,
                      self.tail[len(self.tail) - k:] * fade_out + self.pending * fade_in]
            self.tail, self.pending = None, np.zeros(0, dtype=np.float32)
        else:
            self.tail, self.pending = self.pending, np.zeros(0, dtype=np.float32)
        return self._out(parts)

    def finish(self) -> np.ndarray:
        parts = [p for p in (self.tail, self.pending) if p is not None]
        self.tail, self.pending = None, np.zeros(0, dtype=np.float32)
        return self._out(parts)


def join(chunks: list[np.ndarray], overlap: int) -> np.ndarray:
    """All chunks joined with ``overlap``-sample equal-power crossfades."""
    j = Joiner(overlap)
    parts = []
    for c in chunks:
        parts += [j.feed(c), j.end_chunk()]
    parts.append(j.finish())
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
