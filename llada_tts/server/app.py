"""The FastAPI app: OpenAI's ``POST /v1/audio/speech`` plus models, voices, health and metrics.

``create_app(tts, settings)`` builds it around a loaded ``LladaTTS``; ``llada-tts serve`` runs it
with uvicorn. Request validation happens on the event loop before admission (cheap, no model
work): OpenAI's fields here, the sampler options (extra body fields: steps, temperature,
cfg_scale, method, cache, ...) by ``synthesis.defaults.check_sampler_options`` via
``LladaTTS.prepare`` — the same code as the CLI and the app. Model work runs in the scheduler's
one worker thread (``server.scheduler``).
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field

from fastapi import Request  # module level: the routes' annotations are resolved from here

from llada_tts.server.audio import MEDIA_TYPES, Encoder, available_formats
from llada_tts.server.errors import ApiError, bad_request, internal, overloaded
from llada_tts.server.metrics import Metrics
from llada_tts.server.scheduler import Scheduler

log = logging.getLogger("llada_tts.server")

OPENAI_MODELS = ("tts-1", "tts-1-hd")
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
OPENAI_FIELDS = ("model", "input", "voice", "response_format", "speed", "stream_format", "instructions", "seed")
SPEED_RANGE = (0.25, 4.0)
STREAM_FORMATS = ("audio", "sse")


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
        return StreamingResponse(stream(state, job, first, req, started), media_type=media,
                                 headers={"x-request-id": request_id, "cache-control": "no-store"})

    return app


# --- request parsing ------------------------------------------------------------------------------------

async def read_json(request, settings: Settings) -> dict:
    """The JSON body (an object), refusing bodies far over the input limit (413) before reading them."""
    limit = 4 * settings.max_input_chars + 65536
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"request body of {length} bytes is over the limit ({limit} bytes)", param="input",
                       code="request_too_large")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise ApiError(413, f"request body is over the limit ({limit} bytes)", param="input",
                           code="request_too_large")
    try:
        body = json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: hostile nesting
        raise bad_request("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_json")
    return body


def parse_speech(body: dict, state: State) -> dict:
    """OpenAI's fields checked here; every other field is a sampler option (checked by the library)."""
    settings, tts = state.settings, state.tts
    model = body.get("model")
    if not isinstance(model, str) or model not in (*OPENAI_MODELS, settings.model_name):
        raise bad_request(f"unknown model {_short(model)}; this server speaks as "
                          f"{', '.join(dict.fromkeys((settings.model_name, *OPENAI_MODELS)))}",
                          param="model", code="model_not_found")
    text = body.get("input")
    if not isinstance(text, str):
        raise bad_request(f"input must be a string, got {_short(text)}", param="input")
    if len(text) > settings.max_input_chars:
        raise ApiError(413, f"input has {len(text)} characters, more than the limit of {settings.max_input_chars} "
                       "(--max-input-chars); split the text into several requests", param="input",
                       code="input_too_long")
    if not text.strip():
        raise bad_request("input is empty: nothing to say", param="input")
    voice = body.get("voice")
    if tts.voices:
        if voice not in tts.voices:
            raise bad_request(f"unknown voice {_short(voice)}; this model has: {', '.join(tts.voices)}",
                              param="voice", code="unknown_voice")
    elif voice not in (None, "", *OPENAI_VOICES):
        raise bad_request(f"unknown voice {_short(voice)}; this model has no named voices: omit voice or use one of "
                          f"OpenAI's ({', '.join(OPENAI_VOICES)}) for its default voice", param="voice",
                          code="unknown_voice")
    else:
        voice = None
    default_format = "mp3" if "mp3" in state.formats else "wav"
    fmt = body.get("response_format", default_format)
    if fmt not in state.formats:
        raise bad_request(f"response_format {_short(fmt)} is not available here; available: "
                          f"{', '.join(state.formats)}", param="response_format", code="unsupported_format")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or \
            not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise bad_request(f"speed must be a number in [{SPEED_RANGE[0]:g}, {SPEED_RANGE[1]:g}], got {_short(speed)}",
                          param="speed")
    stream_format = body.get("stream_format", "audio")
    if stream_format not in STREAM_FORMATS:
        raise bad_request(f"stream_format must be one of {', '.join(STREAM_FORMATS)}, got {_short(stream_format)}",
                          param="stream_format")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("instructions must be a string (this model does not use them)", param="instructions")
    seed = body.get("seed")
    if seed is not None:
        from llada_tts.synthesis.defaults import check_seed

        try:
            seed = check_seed(seed)
        except ValueError as e:
            raise bad_request(str(e), param="seed") from None
    from llada_tts.synthesis.defaults import SAMPLER_KEYS

    extras = {k: v for k, v in body.items() if k not in OPENAI_FIELDS}
    unknown = sorted(k for k in extras if k not in SAMPLER_KEYS)
    if unknown:  # only sampler options pass to the library (never its other keywords: duration, max_duration ...)
        raise bad_request(f"unknown field(s) {_short(unknown)}; valid: {', '.join(OPENAI_FIELDS)} and the sampler "
                          f"options {', '.join(SAMPLER_KEYS)}", param=unknown[0] if len(unknown) == 1 else None,
                          code="unknown_field")
    options = merge_options(settings.sampler_defaults, extras)
    chunking = {} if settings.max_chunk_chars is None else {"max_chunk_chars": settings.max_chunk_chars}
    return dict(input=text, voice=voice, response_format=fmt, speed=float(speed), stream_format=stream_format,
                seed=seed, options=options, chunking=chunking)


def merge_options(defaults: dict, request: dict) -> dict:
    """The server's defaults overridden by the request's options (a request's ``cache`` replaces the
    defaults' older use_cache / cache_mode spelling and vice versa). Unknown names stay, so the
    library's check refuses them."""
    merged = dict(defaults)
    if {"cache", "use_cache", "cache_mode"} & set(request):
        for k in ("cache", "use_cache", "cache_mode"):
            merged.pop(k, None)
    merged.update(request)
    return merged


def guess_param(message: str, req: dict) -> str | None:
    """The request field a library message is about (its first word), when it names one."""
    from llada_tts.synthesis.defaults import OPTIONS

    if message.startswith("unknown sampler option"):
        return None
    for name, option in OPTIONS.items():
        if name in req["options"] and (message.startswith(f"{option.what} ") or message.startswith(f"unknown {option.what} ")
                                       or f"{name}=" in message):
            return name
    if message.startswith(("text is empty", "the request needs")):
        return "input"
    if "voice" in message:
        return "voice"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def chunk_error(e: BaseException) -> ApiError:
    from llada_tts.synthesis.errors import NoAudioError

    if isinstance(e, NoAudioError):  # the model's failure on this text, in the library's own words
        return ApiError(500, str(e), type="server_error", code="no_audio")
    return internal(e, "speech batch")


# --- responses ------------------------------------------------------------------------------------------

async def first_event(job, request, poll: float = 0.25):
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


async def _events(state: State, job, first, req: dict, started: float):
    """(piece | None at the end) from the job's chunks, joined with the library's crossfade."""
    from llada_tts.synthesis.join import Joiner, crossfade_samples

    tts = state.tts
    joiner = Joiner(crossfade_samples(tts.sample_rate, tts.crossfade_ms))
    event = first
    while True:
        kind, value = event
        if kind == "error":
            raise _StreamFailed(value)
        if kind == "done":
            last = joiner.finish()
            if len(last):
                yield last
            return
        for piece in (joiner.feed(value.wave), joiner.end_chunk()):
            if len(piece):
                yield piece
        event = await job.events.get()


class _StreamFailed(Exception):
    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


async def audio_stream(state: State, job, first, req: dict, started: float):
    encoder = Encoder(req["response_format"], state.tts.sample_rate)
    status, first_byte = 200, False
    try:
        async for piece in _events(state, job, first, req, started):
            data = encoder.feed(piece)
            state.metrics.audio(len(piece) / state.tts.sample_rate)
            if data:
                if not first_byte:
                    first_byte = True
                    state.metrics.first_byte(time.perf_counter() - started)
                yield data
        tail = encoder.finish()
        if tail:
            yield tail
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


async def sse_stream(state: State, job, first, req: dict, started: float):
    encoder = Encoder(req["response_format"], state.tts.sample_rate)
    status, first_byte, samples = 200, False, 0
    try:
        try:
            async for piece in _events(state, job, first, req, started):
                data = encoder.feed(piece)
                samples += len(piece)
                state.metrics.audio(len(piece) / state.tts.sample_rate)
                if data:
                    if not first_byte:
                        first_byte = True
                        state.metrics.first_byte(time.perf_counter() - started)
                    yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
            tail = encoder.finish()
            if tail:
                yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(tail).decode()})
        except _StreamFailed as e:
            status = 500
            yield _sse({"type": "error", **chunk_error(e.cause).body()})
            return
        frames = round(samples / 2048)
        yield _sse({"type": "speech.audio.done", "usage": {"input_tokens": len(req["input"]), "output_tokens": 7 * frames,
                                                           "total_tokens": len(req["input"]) + 7 * frames}})
    except (asyncio.CancelledError, GeneratorExit):
        status = 499
        raise
    finally:
        encoder.close()
        state.scheduler.cancel(job)
        state.metrics.request_done(status, time.perf_counter() - started)
