"""Block-level streaming: audio for each frame of a chunk as soon as the sampler has committed it.

``sample`` runs in a worker thread; its ``on_step`` callback reports the committed prefix of the
audio region (every position up to the first still-masked one, cut at a stream-end id). The main
thread decodes each newly completed span with SNAC context frames on both sides and keeps only the
span's own samples:

    decode frames [e - CONTEXT, f)   keep frames [e, f - HOLD)   (the last HOLD frames wait for their
                                                                   right context; the chunk's end does not)

The tokens are exactly those ``synthesize`` samples (same generator, batch of one). The waveform
is a windowed decode, so it matches the whole-chunk decode only approximately at span edges (SNAC's
decoder is convolutional and adds seeded noise per decode call).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from audio_tokenizer import layout as L
from llada_tts.sampling import SampleResult, sample

CONTEXT_FRAMES = 4  # SNAC frames of left context decoded with (and dropped from) each span
HOLD_FRAMES = 2  # frames kept back until their right context exists


def committed_frames(region: torch.Tensor, mask_id: int = L.MASK_ID) -> tuple[int, bool]:
    """(whole frames committed from the start of the audio region, whether the audio is complete).

    region [n]: the canvas after the prompt. Counts positions before the first mask, stopping at the
    first stream-end id (which the audio constraints only allow at a frame boundary). Complete: a
    stream end is committed, or the whole region is.
    """
    masked = (region == mask_id).nonzero()
    m = int(masked[0]) if len(masked) else region.numel()
    ends = torch.isin(region[:m], torch.tensor(L.STREAM_END_IDS, device=region.device)).nonzero()
    if len(ends):
        return int(ends[0]) // L.SLOTS_PER_FRAME, True
    return m // L.SLOTS_PER_FRAME, m == region.numel()


@dataclass(frozen=True)
class StreamedChunk:
    """What ``stream_chunk`` returns once its chunk is sampled."""

    result: SampleResult  # the sample() call's output (batch of one): the caller validates and decodes it
    emitted: int  # frames already yielded as audio; the caller decodes the rest (frames emitted ..)


@dataclass(frozen=True)
class _Finished:
    """The worker's last message: sample()'s result, or the exception it raised."""

    result: SampleResult | None = None
    error: BaseException | None = None


def stream_chunk(model, codec, prompt: list[int], config, generator,
                 seed: int) -> Generator[np.ndarray, None, StreamedChunk]:
    """Sample one chunk in a worker thread.

    Yields float32 samples [n] of each newly final span (frames [emitted, committed - HOLD_FRAMES)),
    in order; returns a ``StreamedChunk`` (``done = yield from stream_chunk(...)``) with the sample()
    result and how many frames were yielded. Re-raises the worker's exception.
    """
    q: queue.Queue = queue.Queue()  # canvases [n] (torch.Tensor), then one _Finished
    P = len(prompt)

    def on_step(x):  # worker thread: x [1, P + n]
        q.put(x[0, P:].clone())

    def work():
        try:
            q.put(_Finished(result=sample(model, [prompt], config, generator=generator, on_step=on_step)))
        except BaseException as e:  # noqa: BLE001  re-raised in the caller's thread
            q.put(_Finished(error=e))

    thread = threading.Thread(target=work, name="llada-tts-sampler", daemon=True)
    thread.start()
    emitted = 0  # frames already yielded
    while not isinstance(item := q.get(), _Finished):
        while not q.empty() and isinstance(q.queue[0], torch.Tensor):  # only the newest canvas matters
            item = q.get()
        frames, _ = committed_frames(item)
        upto = frames - HOLD_FRAMES
        if upto > emitted:
            yield decode_span(codec, item[: frames * L.SLOTS_PER_FRAME], emitted, upto, seed)
            emitted = upto
    thread.join()
    if item.error is not None:
        raise item.error
    return StreamedChunk(item.result, emitted)


def decode_span(codec, tokens: torch.Tensor, start: int, stop: int, seed: int,
                context: int = CONTEXT_FRAMES) -> np.ndarray:
    """Samples of frames [start, stop) of ``tokens`` [7 * n] (valid audio ids), decoded together with
    up to ``context`` frames on each side that exist in ``tokens``."""
    n = tokens.numel() // L.SLOTS_PER_FRAME
    lo, hi = max(0, start - context), min(n, stop + context)
    wave = codec.decode(tokens[lo * L.SLOTS_PER_FRAME : hi * L.SLOTS_PER_FRAME], seed=seed)
    spf = L.SAMPLES_PER_FRAME
    return wave[(start - lo) * spf : (stop - lo) * spf]
