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
    settings = state.settings
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
    voice, reference = speech_voice(body.get("voice"), state)
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
                seed=seed, options=options, chunking=chunking, reference=reference)


def speech_voice(voice, state) -> tuple[str | None, object]:
    """``voice`` of a speech request -> (the checkpoint's voice name or None, a registered reference
    voice's ``Reference`` or None). A registered voice is named as it was registered, or as
    OpenAI's custom voice object ``{"id": name}``; it speaks with the checkpoint's default voice tag."""
    tts, store = state.tts, state.voices
    if isinstance(voice, dict):
        voice_id = voice.get("id")
        if set(voice) != {"id"} or not isinstance(voice_id, str):
            raise bad_request(f"voice must be a voice name or {{\"id\": NAME}}, got {_short(voice)}", param="voice",
                              code="unknown_voice")
        if voice_id in tts.voices:
            return voice_id, None
        if voice_id not in store:
            raise bad_request(f"unknown voice id {_short(voice_id)}; registered reference voices: "
                              f"{_names(store.names())}", param="voice", code="unknown_voice")
        return None, store.load(voice_id)
    if isinstance(voice, str) and voice not in tts.voices and voice not in OPENAI_VOICES and voice in store:
        return None, store.load(voice)
    registered = store.names()
    also = f"; registered reference voices: {_names(registered)}" if registered else ""
    if tts.voices:
        if voice not in tts.voices:
            raise bad_request(f"unknown voice {_short(voice)}; this model has: {', '.join(tts.voices)}{also}",
                              param="voice", code="unknown_voice")
        return voice, None
    if voice not in (None, "", *OPENAI_VOICES):
        raise bad_request(f"unknown voice {_short(voice)}; this model has no named voices: omit voice or use one of "
                          f"OpenAI's ({', '.join(OPENAI_VOICES)}) for its default voice{also}", param="voice",
                          code="unknown_voice")
    return None, None


async def read_voice_form(request, settings) -> dict:
    """``POST /v1/audio/voices``'s multipart form, read whole within the size limit (413 past it):
    ``{"name", "audio" (an UploadFile), "filename", "transcript", "form"}`` (close ``form`` after).
    Fields: ``name``; the recording as ``audio_sample`` (OpenAI's name) or ``audio``; ``transcript``
    (or ``text``); ``type`` must be ``audio_sample`` when given; OpenAI's ``consent`` is ignored."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    from llada_tts.server.voices import VoiceStore

    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise bad_request("POST /v1/audio/voices takes multipart/form-data with the fields name, audio_sample (the "
                          "recording) and transcript (what it says)", code="invalid_content_type")
    limit = settings.max_voice_bytes + 65536 + 4 * settings.max_input_chars
    length = request.headers.get("content-length")
    mib = settings.max_voice_bytes / 2**20
    too_big = (f"the upload is over the limit ({f'{mib:g} MiB' if mib >= 1 else f'{settings.max_voice_bytes} bytes'} "
               "of audio)")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, too_big, param="audio_sample", code="file_too_large")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise ApiError(413, too_big, param="audio_sample", code="file_too_large")
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": bytes(data), "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=2, max_fields=16)
    except Exception as e:  # noqa: BLE001  starlette's MultiPartException / a malformed body
        raise bad_request(f"the multipart body could not be read ({type(e).__name__}: {str(e)[:80]})",
                          code="invalid_form") from None
    try:
        name = form.get("name")
        if name is None:
            raise bad_request("name is missing: the name to register the voice under", param="name",
                              code="invalid_name")
        VoiceStore.check_name(name)
        kind = form.get("type", "audio_sample")
        if kind != "audio_sample":
            raise bad_request(f"type must be audio_sample (a recording and its transcript), got {_short(kind)}",
                              param="type")
        audio = form.get("audio_sample", form.get("audio"))
        if not isinstance(audio, UploadFile):
            raise bad_request("audio_sample is missing or not a file: upload the recording as a multipart file",
                              param="audio_sample", code="invalid_audio")
        if audio.size is not None and audio.size > settings.max_voice_bytes:
            raise ApiError(413, too_big, param="audio_sample", code="file_too_large")
        transcript = form.get("transcript", form.get("text"))
        if not isinstance(transcript, str) or not transcript.strip():
            raise bad_request("transcript is missing: give the words the recording says", param="transcript")
        if len(transcript) > settings.max_input_chars:
            raise ApiError(413, f"transcript has {len(transcript)} characters, more than the limit of "
                           f"{settings.max_input_chars}", param="transcript", code="input_too_long")
    except BaseException:
        await form.close()
        raise
    return {"name": name, "audio": audio, "filename": audio.filename or "", "transcript": transcript.strip(),
            "form": form}


def _names(names: list[str], n: int = 20) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "") if names else "none"


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
        if name in req["options"] and (message.startswith(f"{option.what} ")
                                       or message.startswith(f"unknown {option.what} ")
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
