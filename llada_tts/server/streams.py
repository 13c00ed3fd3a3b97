"""Speech responses: the job's chunks, joined with the library's crossfade, as an audio byte
stream (chunked transfer) or OpenAI's SSE events (``speech.audio.delta`` / ``speech.audio.done``)."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

from llada_tts.server.audio import Encoder
from llada_tts.server.errors import ApiError, internal
from llada_tts.server.scheduler import JobDone, JobEvent, JobFailed

log = logging.getLogger("llada_tts.server")


def chunk_error(e: BaseException) -> ApiError:
    from llada_tts.synthesis.errors import NoAudioError

    if isinstance(e, NoAudioError):  # the model's failure on this text, in the library's own words
        return ApiError(500, str(e), type="server_error", code="no_audio")
    return internal(e, "speech batch")


async def first_event(job, request, poll: float = 0.25) -> JobEvent | None:
    """The job's first event, or None when the client disconnects while it waits."""
    getter = asyncio.ensure_future(job.events.get())
    try:
        while True:
            done, _ = await asyncio.wait({getter}, timeout=poll)
            if done:
                return getter.result()
            if await request.is_disconnected():
                return None
    finally:
        if not getter.done():
            getter.cancel()


async def _events(state, job, first: JobEvent, req: dict, started: float):
    """Float32 pieces from the job's chunks, joined with the library's crossfade; raises
    ``_StreamFailed`` on a ``JobFailed`` event."""
    from llada_tts.synthesis.join import Joiner, crossfade_samples

    tts = state.tts
    joiner = Joiner(crossfade_samples(tts.sample_rate, tts.crossfade_ms))
    event = first
    while True:
        if isinstance(event, JobFailed):
            raise _StreamFailed(event.error)
        if isinstance(event, JobDone):
            last = joiner.finish()
            if len(last):
                yield last
            return
        for piece in (joiner.feed(event.audio.wave), joiner.end_chunk()):  # a ChunkReady
            if len(piece):
                yield piece
        event = await job.events.get()


class _StreamFailed(Exception):
    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


async def _encoded(state, job, first, req: dict, started: float, encoder, counted: list):
    """The request's audio through ``encoder``, as byte pieces (the encoder's tail last); counts audio
    seconds and time to first byte in the metrics, and the samples in ``counted[0]``."""
    first_byte = False
    async for piece in _events(state, job, first, req, started):
        data = encoder.feed(piece)
        counted[0] += len(piece)
        state.metrics.audio(len(piece) / state.tts.sample_rate)
        if data:
            if not first_byte:
                first_byte = True
                state.metrics.first_byte(time.perf_counter() - started)
            yield data
    tail = encoder.finish()
    if tail:
        yield tail


async def audio_stream(state, job, first, req: dict, started: float):
    encoder = Encoder(req["response_format"], state.tts.sample_rate)
    status = 200
    try:
        async for data in _encoded(state, job, first, req, started, encoder, [0]):
            yield data
    except _StreamFailed as e:  # headers are sent: end the stream abruptly (the client sees a broken transfer)
        status = 500
        err = chunk_error(e.cause)
        log.error("speech stream failed after its first chunk: %s", err.message)
        raise
    except (asyncio.CancelledError, GeneratorExit):
        status = 499
        raise
    finally:
        encoder.close()
        state.scheduler.cancel(job)
        state.metrics.request_done(status, time.perf_counter() - started)


def _sse(obj: dict) -> bytes:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


async def sse_stream(state, job, first, req: dict, started: float):
    encoder = Encoder(req["response_format"], state.tts.sample_rate)
    status, counted = 200, [0]
    try:
        try:
            async for data in _encoded(state, job, first, req, started, encoder, counted):
                yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
        except _StreamFailed as e:
            status = 500
            yield _sse({"type": "error", **chunk_error(e.cause).body()})
            return
        frames = round(counted[0] / 2048)
        yield _sse({"type": "speech.audio.done",
                    "usage": {"input_tokens": len(req["input"]), "output_tokens": 7 * frames,
                              "total_tokens": len(req["input"]) + 7 * frames}})
    except (asyncio.CancelledError, GeneratorExit):
        status = 499
        raise
    finally:
        encoder.close()
        state.scheduler.cancel(job)
        state.metrics.request_done(status, time.perf_counter() - started)
