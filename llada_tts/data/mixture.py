"""Mixed TTS + text batches: a deterministic, resumable, distributed batch sampler.

``ratio`` is the fraction of *samples* that are text: 0.25 = a quarter of the samples, 0 = TTS
only, 1 = text only. It is held over batches, not inside them: every batch is all text or all
TTS (on every rank at once), and step ``s`` of an epoch is a text step when

    ceil((s + 1) * ratio) - ceil(s * ratio) == 1

(exact rational arithmetic). After N steps ceil(N * ratio) of them were text, so the text fraction
is within 1 / N of ratio, and every epoch starts with a text step: a given text set is always
drawn. One kind per batch keeps a TTS row's fill and loss weight independent of the (packed,
``max_length``-long) text rows, and keeps text batches packed without TTS rows padded to their
length. The earlier scripts' alternating schedules counted text batches per TTS batch: N of them
per TTS batch is ``ratio = N / (N + 1)`` here.

An epoch is one pass over the TTS rows in a fresh order (over the text rows when ratio == 1). The
other source is an endless stream of reshuffled passes that continues across epochs, so a large
text corpus is not restarted every epoch. Like ``DistributedSampler``, every rank computes the same
global order and takes its own slice of each step, so ranks see distinct rows and run the same
number of steps. Everything is a pure function of (seed, epoch, step), which makes resuming exact.
"""
from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import torch

_TTS, _TEXT_EPOCH, _TEXT_STREAM = 0, 1, 2  # permutation stream tags
BATCHING = "one kind per batch"  # stored in the state: a position of another schedule cannot be resumed


class MixtureSampler:
    """Yields, per step, this rank's batch as a list of ``(source, index)``, source "tts" or "text".

    ``batch_size`` is per rank. ``drop_last=True`` leaves out the last TTS rows that cannot fill a
    global step; ``drop_last=False`` fills that step by wrapping around to the epoch's first rows.
    Use as ``DataLoader(MixtureDataset(tts, text), batch_sampler=sampler, collate_fn=collate)``.
    """

    def __init__(self, n_tts: int, n_text: int, ratio: float, batch_size: int, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, drop_last: bool = True):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio is the fraction of samples that are text and must be in [0, 1], got {ratio}")
        if batch_size < 1 or num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need batch_size >= 1, num_replicas >= 1 and 0 <= rank < num_replicas; got "
                             f"{batch_size}, {num_replicas}, {rank}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        if n_tts < 0 or n_text < 0:
            raise ValueError("row counts must be >= 0")
        if ratio < 1 and n_tts == 0:
            raise ValueError(f"ratio {ratio} asks for TTS rows but there are none; use ratio=1 for text only")
        if ratio > 0 and n_text == 0:
            raise ValueError(f"ratio {ratio} asks for text rows but there are none; use ratio=0 for TTS only")
        self.n_tts, self.n_text, self.ratio, self.batch_size = int(n_tts), int(n_text), float(ratio), int(batch_size)
        self.seed, self.num_replicas, self.rank, self.drop_last = int(seed), int(num_replicas), int(rank), drop_last
        self._r = Fraction(self.ratio).limit_denominator(10**6)
        self.text_primary = self.ratio == 1.0
        self.epoch, self.step = 0, 0
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._steps = self._count_steps()
        if self._steps == 0:
            raise ValueError(f"{self._n_primary} {'text' if self.text_primary else 'TTS'} rows cannot fill one "
                             f"step of {num_replicas} x {batch_size}; lower batch_size or pass drop_last=False")

    # --- the schedule: pure functions of the step ------------------------------------------------
    def text_steps_before(self, step: int) -> int:
        """Text steps among the epoch's first ``step`` steps: ceil(step * ratio)."""
        return -(-step * self._r.numerator // self._r.denominator)

    def text_before(self, step: int) -> int:
        """Text samples per rank in the epoch's first ``step`` batches: B * ceil(step * ratio)."""
        return self.batch_size * self.text_steps_before(step)

    @property
    def text_fraction(self) -> float:
        """The text fraction of one epoch's samples (ratio, up to 1 / steps per epoch)."""
        return self.text_steps_before(self._steps) / self._steps

    @property
    def _n_primary(self) -> int:
        return self.n_text if self.text_primary else self.n_tts

    def _primary_before(self, step: int) -> int:
        """Primary-source samples used by all ranks in the epoch's first ``step`` batches."""
        per_rank = step * self.batch_size - (0 if self.text_primary else self.text_before(step))
        return self.num_replicas * per_rank

    def _count_steps(self) -> int:
        """Steps in one pass over the primary source: the most that do not exceed it (drop_last) or
        the fewest that cover it, the last step wrapping around (not drop_last); 0 when not even one
        step's worth of primary rows exists."""
        n, hi = self._n_primary, 1
        while self._primary_before(hi) < n:
            hi *= 2
        lo = 0  # invariant: _primary_before(lo) < n or lo == 0; _primary_before(hi) >= n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self._primary_before(mid) < n else (lo, mid)
        if not self.drop_last:
            return hi
        if self._primary_before(hi) > n:
            return lo if self._primary_before(lo) > 0 else 0  # text steps alone are no epoch
        while self._primary_before(hi + 1) == n:  # trailing steps that need no TTS row still fit
            hi += 1
        return hi

    def _perm(self, tag: int, key: int, n: int) -> np.ndarray:
        if (tag, key) not in self._cache:
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[(tag, key)] = np.random.default_rng([self.seed, tag, key]).permutation(n)
        return self._cache[(tag, key)]

    def batch(self, epoch: int, step: int) -> list[tuple[str, int]]:
        """This rank's batch at (epoch, step): all TTS or all text rows."""
        if not 0 <= step < self._steps:
            raise ValueError(f"step must be in 0..{self._steps - 1}, got {step}")
        b, reps, rank = self.batch_size, self.num_replicas, self.rank
        if self.text_primary:
            perm = self._perm(_TEXT_EPOCH, epoch, self.n_text)
            start = reps * step * b + rank * b
            return [("text", int(perm[p % self.n_text])) for p in range(start, start + b)]
        k = self.text_before(step + 1) - self.text_before(step)
        m = b - k
        perm = self._perm(_TTS, epoch, self.n_tts)
        start = self._primary_before(step) + rank * m
        out = [("tts", int(perm[p % self.n_tts])) for p in range(start, start + m)]
        # text: one endless stream of reshuffled passes, continuing across epochs
        start = reps * (epoch * self.text_before(self._steps) + self.text_before(step)) + rank * k
        for q in range(start, start + k):
            cycle, i = divmod(q, self.n_text)
            out.append(("text", int(self._perm(_TEXT_STREAM, cycle, self.n_text)[i])))
        return out

    # --- sampler protocol --------------------------------------------------------------------------
    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        return self._steps

    def __iter__(self) -> Iterator[list[tuple[str, int]]]:
        """This rank's batches from the stored step to the end of the epoch; then moves to the next epoch."""
        while self.step < self._steps:
            batch = self.batch(self.epoch, self.step)
            self.step += 1
            yield batch
        self.epoch, self.step = self.epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first step; the current epoch keeps its position (resume)."""
        if epoch != self.epoch:
            self.epoch, self.step = int(epoch), 0

    def _config(self) -> dict:
        return {"seed": self.seed, "n_tts": self.n_tts, "n_text": self.n_text, "ratio": self.ratio,
                "batch_size": self.batch_size, "num_replicas": self.num_replicas, "drop_last": self.drop_last,
                "batching": BATCHING}

    def state_dict(self, step: int | None = None) -> dict:
        """``{"epoch", "step", ...settings}``. ``step`` counts batches handed out; a DataLoader with
        workers prefetches ahead, so pass the number of batches actually trained this epoch instead."""
        return {"epoch": self.epoch, "step": self.step if step is None else int(step), **self._config()}

    def load_state_dict(self, state: dict) -> None:
        """Continue at the stored (epoch, step); ValueError if the data or batch settings changed."""
        if "epoch" not in state or "step" not in state:
            raise ValueError(f"not a MixtureSampler state (keys: {', '.join(state)}); expected epoch and step")
        state = {"batching": "mixed", **state}  # states written before one kind per batch
        changed = [f"{k} {state[k]!r} -> {v!r}" for k, v in self._config().items() if k in state and state[k] != v]
        if changed:
            raise ValueError("cannot resume the data order: " + ", ".join(changed) +
                             " (the stored position means something else now)")
        if not 0 <= int(state["step"]) <= self._steps:
            raise ValueError(f"stored step {state['step']} is outside 0..{self._steps}")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])


class MixtureDataset(torch.utils.data.Dataset):
    """Maps ``(source, index)`` keys from :class:`MixtureSampler` to rows of the TTS / text datasets."""

    def __init__(self, tts=None, text=None):
        self.sources = {"tts": tts, "text": text}

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources.values() if s is not None)

    def __getitem__(self, key: tuple[str, int]) -> dict:
        source, index = key
        if self.sources.get(source) is None:
            raise ValueError(f"no {source!r} rows were given, but the sampler asked for one")
        return self.sources[source][index]
