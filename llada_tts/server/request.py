"""Parsing ``POST /v1/audio/speech``: OpenAI's fields checked here, every other field must be a
sampler option (``synthesis.defaults.SAMPLER_KEYS``), checked by the library's one definition
(``check_sampler_options``, via ``LladaTTS.prepare``)."""
from __future__ import annotations

import json
import math

from llada_tts.server.errors import ApiError, bad_request

OPENAI_MODELS = ("tts-1", "tts-1-hd")
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
OPENAI_FIELDS = ("model", "input", "voice", "response_format", "speed", "stream_format", "instructions", "seed")
SPEED_RANGE = (0.25, 4.0)
STREAM_FORMATS = ("audio", "sse")


async def read_json(request, settings) -> dict:
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


def parse_speech(body: dict, state) -> dict:
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
