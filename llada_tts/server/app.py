"""The FastAPI app: OpenAI's ``POST /v1/audio/speech`` plus models, voices, health and metrics.

Reference voices (``server.voices``): ``POST /v1/audio/voices`` (multipart: ``name``,
``audio_sample`` file, ``transcript``) encodes a recording once and stores it under the data
folder; ``GET /v1/audio/voices`` lists them with the checkpoint's voices; ``DELETE
/v1/audio/voices/{name}`` removes one; ``/v1/audio/speech`` with ``voice`` = a registered name (or
OpenAI's ``{"id": name}``) continues that voice. Such requests are not batched: each runs as one
``synthesize(..., reference=...)`` call on the model thread (``Scheduler.submit_whole``).

``create_app(tts, settings)`` builds it around a loaded ``LladaTTS``; ``llada-tts serve`` runs it
with uvicorn. Request validation happens on the event loop before admission (cheap, no model
work): OpenAI's fields here, the sampler options (extra body fields: steps, temperature,
cfg_scale, method, cache, ...) by ``synthesis.defaults.check_sampler_options`` via
``LladaTTS.prepare`` — the same code as the CLI and the app. Model work runs in the scheduler's
one worker thread (``server.scheduler``).

``--max-queue`` counts speech requests in progress: a request takes a slot when it is admitted
(after validation and planning) and gives it back when its response is over — last byte sent,
error answered, or client gone — not when its last chunk is sampled (see ``server.scheduler``).
"""
from __future__ import annotations

import hmac
import logging
import time
import uuid
from dataclasses import dataclass, field

from fastapi import Request  # module level: the routes' annotations are resolved from here

from llada_tts.server.audio import MEDIA_TYPES, available_formats
from llada_tts.server.errors import ApiError, bad_request, internal, overloaded
from llada_tts.server.metrics import Metrics
from llada_tts.server.request import OPENAI_MODELS, guess_param, parse_speech, read_json, read_voice_form
from llada_tts.server.scheduler import JobFailed, Scheduler
from llada_tts.server.streams import audio_stream, chunk_error, first_event, sse_stream
from llada_tts.server.voices import MAX_VOICE_BYTES, VoiceStore

log = logging.getLogger("llada_tts.server")


@dataclass
class Settings:
    model_name: str = "llada-tts"
    api_key: str | None = None
    max_batch: int = 8
    batch_wait_ms: float = 20.0
    max_queue: int = 64
    max_input_chars: int = 4096
    max_duration: float | None = 60.0
    max_chunk_chars: int | None = None
    sampler_defaults: dict = field(default_factory=dict)  # option name -> value (server-wide, request overrides)
    data_dir: str = "llada_tts_voices"  # reference voices (created on the first upload)
    max_voice_bytes: int = MAX_VOICE_BYTES  # an uploaded recording's size limit


class State:
    """What the routes share: the model, scheduler, metrics and the draining flag (SIGTERM)."""

    def __init__(self, tts, settings: Settings):
        self.tts, self.settings = tts, settings
        self.metrics = Metrics()
        self.formats = available_formats()
        self.scheduler: Scheduler | None = None
        self.draining = False
        from llada_tts.server.request import OPENAI_VOICES

        self.voices = VoiceStore(settings.data_dir, getattr(tts, "codec_source", None),
                                 reserved=(*tts.voices, *OPENAI_VOICES))


def create_app(tts, settings: Settings | None = None):
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    settings = settings or Settings()
    state = State(tts, settings)

    @asynccontextmanager
    async def lifespan(app):
        state.scheduler = Scheduler(tts, max_batch=settings.max_batch, batch_wait_ms=settings.batch_wait_ms,
                                    max_queue=settings.max_queue, max_duration=settings.max_duration,
                                    metrics=state.metrics)
        state.scheduler.start()
        try:
            yield
        finally:
            await state.scheduler.stop()

    app = FastAPI(title="llada-tts", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.llada = state

    def error_response(e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        if request.url.path == "/v1/audio/speech" and request.method == "POST":
            state.metrics.request_done(e.status)
        return error_response(e)

    @app.exception_handler(HTTPException)
    async def _http_error(request, e: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        return error_response(ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", code=code))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, e):
        return error_response(bad_request(f"invalid request: {e.errors()[:1]}"))

    @app.exception_handler(Exception)
    async def _internal(request, e: Exception):
        err = internal(e, f"{request.method} {request.url.path}")
        if request.url.path == "/v1/audio/speech":
            state.metrics.request_done(500)
        return error_response(err)

    class SpeechResponse(StreamingResponse):
        """The audio stream; however it ends, the request's slot is given back. The stream's own
        ``finally`` does that and counts the request; this covers a stream that never started
        (the client left before the headers went out), which is counted as 499."""

        def __init__(self, job, started: float, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.job, self.started = job, started

        async def __call__(self, scope, receive, send):
            try:
                await super().__call__(scope, receive, send)
            finally:
                try:  # a stream left suspended (send failed) runs its finally now, not at GC
                    await self.body_iterator.aclose()
                finally:
                    if state.scheduler.cancel(self.job):  # the stream never started
                        state.metrics.request_done(499, time.perf_counter() - self.started)

    def authorize(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        ok = hmac.compare_digest(token.strip().encode(), settings.api_key.encode()) and scheme.lower() == "bearer"
        if not ok:
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           type="authentication_error", code="invalid_api_key")

    # --- routes -------------------------------------------------------------------------------------
    @app.get("/health")
    async def health():
        body = {"status": "draining" if state.draining else "ok", "model": settings.model_name,
                "queue_depth": state.scheduler.queue_depth if state.scheduler else 0,
                "active_requests": len(state.scheduler.jobs) if state.scheduler else 0}
        return JSONResponse(body, status_code=503 if state.draining else 200)

    @app.get("/metrics")
    async def metrics(request: Request):
        authorize(request)
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models(request: Request):
        from llada_tts.synthesis.defaults import describe_options

        authorize(request)
        data = [{"id": settings.model_name, "object": "model", "created": 0, "owned_by": "llada-tts",
                 "voices": tts.voices, "response_formats": state.formats,
                 "sampler_options": describe_options(settings.max_duration)}]
        data += [{"id": m, "object": "model", "created": 0, "owned_by": "llada-tts", "alias_of": settings.model_name}
                 for m in OPENAI_MODELS if m != settings.model_name]
        return {"object": "list", "data": data}

    @app.get("/v1/audio/voices")
    async def voices(request: Request):
        authorize(request)
        return {"object": "list", "data": [v.body() for v in state.voices.list()],
                "voices": tts.voices, "default": None if tts.voices else "(no voices: any OpenAI voice name "
                "speaks with the checkpoint's default voice)"}

    @app.post("/v1/audio/voices")
    async def create_voice(request: Request):
        if state.draining:
            raise overloaded("the server is shutting down; retry on another replica", code="shutting_down")
        authorize(request)
        form = await read_voice_form(request, settings)
        try:
            state.voices.check_free(form["name"])
            data = await form["audio"].read()
            if not data:
                raise bad_request("audio_sample is an empty file", param="audio_sample", code="invalid_audio")
            ref = await state.scheduler.run(lambda: _encode_reference(tts, data, form["filename"], form["transcript"]))
            voice = state.voices.save(form["name"], ref)
        finally:
            await form["form"].close()
        log.info("registered reference voice %r (%.2f s)", voice.name, voice.seconds)
        return JSONResponse(voice.body(), status_code=201)

    @app.delete("/v1/audio/voices/{voice_id}")
    async def delete_voice(voice_id: str, request: Request):
        authorize(request)
        state.voices.delete(voice_id)
        return {"id": voice_id, "object": "audio.voice.deleted", "deleted": True}

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        started = time.perf_counter()
        if state.draining:
            raise overloaded("the server is shutting down; retry on another replica", code="shutting_down")
        authorize(request)
        body = await read_json(request, settings)
        req = parse_speech(body, state)
        try:
            run = tts.prepare(req["input"], req["voice"], seed=req["seed"], speed=req["speed"],
                              max_duration=settings.max_duration, **req["chunking"], **req["options"])
        except ValueError as e:  # SynthesisError: the library's one-line message
            raise bad_request(str(e), param=guess_param(str(e), req)) from None
        if req["reference"] is None:
            job = state.scheduler.submit(run)
        else:  # not batched: one synthesize call with the reference, on the model thread
            job = state.scheduler.submit_whole(lambda: _speak_with_reference(tts, req, run.seed, settings))
        request_id = uuid.uuid4().hex[:16]
        try:
            first = await first_event(job, request)
        except BaseException:
            state.scheduler.cancel(job)
            raise
        if first is None:  # the client left before any audio
            state.scheduler.cancel(job)
            state.metrics.request_done(499, time.perf_counter() - started)
            return JSONResponse({}, status_code=499)
        if isinstance(first, JobFailed):
            state.scheduler.cancel(job)
            raise _whole_error(first.error) if job.whole else chunk_error(first.error)
        stream = audio_stream if req["stream_format"] == "audio" else sse_stream
        media = MEDIA_TYPES[req["response_format"]] if req["stream_format"] == "audio" else "text/event-stream"
        return SpeechResponse(job, started, stream(state, job, first, req, started), media_type=media,
                              headers={"x-request-id": request_id, "cache-control": "no-store"})

    return app


class _Audio:
    """A request's whole audio as one chunk of its stream."""

    def __init__(self, wave):
        self.wave = wave


def _speak_with_reference(tts, req: dict, seed: int, settings: Settings) -> _Audio:
    """Model thread: the request's whole text continuing its reference voice (``prepare`` has checked it)."""
    res = tts.synthesize(req["input"], None, reference=req["reference"], seed=seed, speed=req["speed"],
                         max_duration=settings.max_duration, **req["chunking"], **req["options"])
    return _Audio(res.waveform)


def _whole_error(e: BaseException) -> ApiError:
    """A request that runs whole failed before any audio: the library's refusals of its input (exit
    code 2, or a plain ValueError) are 400s (e.g. a reference whose canvas is over the memory cap);
    runtime failures (exit code 1, e.g. no audio: 500 no_audio) and bugs are 500s."""
    from llada_tts.synthesis.errors import LladaTTSError

    runtime = isinstance(e, LladaTTSError) and e.exit_code != 2
    if isinstance(e, ValueError) and not runtime:
        return bad_request(str(e))
    return chunk_error(e)


def _encode_reference(tts, data: bytes, filename: str, transcript: str):
    """Model thread: an uploaded recording (bytes of any soundfile format) + transcript -> ``Reference``.
    A bad recording or transcript is a 400 naming the field."""
    import os
    import re
    import tempfile
    import warnings

    suffix = os.path.splitext(filename or "")[1].lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".audio"
    fd, path = tempfile.mkstemp(prefix="llada-tts-voice-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        with warnings.catch_warnings():  # a trimmed reference carries its note (returned to the client)
            warnings.simplefilter("ignore")
            return tts.reference(path, transcript)
    except ValueError as e:  # SynthesisError: one line naming the problem
        message = str(e).replace(path, filename or "the upload").replace(" (--ref-text)", "")
        param = "transcript" if message.startswith("reference: no transcript") else "audio_sample"
        raise bad_request(message, param=param, code="invalid_audio" if param == "audio_sample" else "invalid_value") \
            from None
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
