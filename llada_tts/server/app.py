"""The FastAPI app: OpenAI's ``POST /v1/audio/speech`` plus models, voices, health and metrics.

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
from llada_tts.server.request import OPENAI_MODELS, guess_param, parse_speech, read_json
from llada_tts.server.scheduler import Scheduler
from llada_tts.server.streams import audio_stream, chunk_error, first_event, sse_stream

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


class State:
    """What the routes share: the model, scheduler, metrics and the draining flag (SIGTERM)."""

    def __init__(self, tts, settings: Settings):
        self.tts, self.settings = tts, settings
        self.metrics = Metrics()
        self.formats = available_formats()
        self.scheduler: Scheduler | None = None
        self.draining = False


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
        if request.url.path == "/v1/audio/speech":
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
        return {"voices": tts.voices, "default": None if tts.voices else "(no voices: any OpenAI voice name "
                "speaks with the checkpoint's default voice)"}

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
        job = state.scheduler.submit(run)
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
        if first[0] == "error":
            state.scheduler.cancel(job)
            raise chunk_error(first[1])
        stream = audio_stream if req["stream_format"] == "audio" else sse_stream
        media = MEDIA_TYPES[req["response_format"]] if req["stream_format"] == "audio" else "text/event-stream"
        return SpeechResponse(job, started, stream(state, job, first, req, started), media_type=media,
                              headers={"x-request-id": request_id, "cache-control": "no-store"})

    return app
