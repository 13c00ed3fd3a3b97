"""Offline speech synthesis with eSpeak NG (the ``espeakng-loader`` wheel), through ctypes.

The wheel ships ``libespeak-ng.so`` and ``espeak-ng-data``; nothing is downloaded. Output is eSpeak's
native rate (22050 Hz), mono float32 in [-1, 1].

eSpeak keeps hidden global state between utterances (pitch-flutter phase, gain control) and seeds its
noise generator from the clock, so the same text spoken twice differs slightly. To make every call
reproducible, each call loads a private copy of the library (about 5 ms), seeds the noise with 0,
speaks once, and unloads it.
Calls are serialised by a module lock.

:func:`phonemize` is eSpeak NG's own grapheme-to-phoneme conversion (IPA); :func:`apply_front_end`
turns prompt text into what a model trained with a given front end (:data:`FRONT_ENDS`) reads.
G2P has no hidden randomness, so it keeps one private copy of the library loaded for all calls.
"""
from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import os
import re
import shutil
import tempfile
import threading

import numpy as np

from audio_tokenizer.errors import RuntimeFailure
from audio_tokenizer.normalize import normalize_text

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH = 1, 3
_EE_OK = 0
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit()
_PHONEMES_IPA = 0x02
_PHONEME_EVENTS = 0x0001 | 0x0002  # espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA
_EVENT_LIST_END, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7

# what a TTS prompt holds: the text itself, eSpeak NG's IPA of it, or one phoneme token per codec frame
FRONT_ENDS = ("text", "espeak-ipa", "espeak-frames", "espeak-quarters")
G2P_LANGUAGE = "en-us"  # one G2P language for every voice variant (accents live in the audio)
# clause punctuation kept in the phoneme string (UTF-8 bytes): . , ; : ! ? or an ellipsis, followed by
# optional closing quotes/brackets and then a space or the end of the text ("3.5" and "a,b" do not count)
_MARK = rb"(?:[.,;:!?]|\xe2\x80\xa6)"
_CLOSERS = rb"(?:[\"')\]]|\xe2\x80[\x99\x9d]|\xc2\xbb)*"
_CLAUSE_MARK = re.compile(_MARK + rb"(?=" + _CLOSERS + rb"(?:\s|\Z))")
_FINAL_MARK = re.compile(rb"(" + _MARK + rb")" + _CLOSERS + rb"\s*\Z")

_LOCK = threading.Lock()


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # speak_lib.h espeak_EVENT
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class EspeakError(RuntimeFailure):
    """eSpeak NG could not be loaded or refused a request."""


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, name, NUL)*, NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


def _paths() -> tuple[str, str]:
    """(library path, data path) of the espeakng-loader wheel."""
    try:
        import espeakng_loader

        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except (ImportError, RuntimeError) as e:
        raise EspeakError(f"cannot find eSpeak NG ({e}); install it with `pip install espeakng-loader`") from e


def _load_private(lib_path: str) -> ctypes.CDLL:
    """dlopen a fresh, private copy of the library (its globals start from scratch)."""
    fd, tmp = tempfile.mkstemp(prefix="espeak-ng-", suffix=".so")
    os.close(fd)
    try:
        shutil.copyfile(lib_path, tmp)
        return ctypes.CDLL(tmp)
    finally:
        os.unlink(tmp)  # the mapping stays valid; nothing is left on disk


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p  # a copy of eSpeak's static buffer
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]


@contextlib.contextmanager
def _engine(options: int = 0, phonemes: list | None = None, words: list | None = None):
    """A freshly initialised eSpeak instance: yields (lib, sample_rate, chunks list).

    With ``options=_PHONEME_EVENTS``, ``phonemes`` collects (sample offset, IPA phoneme) pairs;
    ``words`` collects (sample offset, 1-based character position, characters) per spoken word."""
    lib_path, data_path = _paths()
    with _LOCK:
        try:
            lib = _load_private(lib_path)
        except OSError as e:
            raise EspeakError(f"cannot load {lib_path} ({e}); reinstall `espeakng-loader`") from e
        _declare(lib)
        chunks: list[np.ndarray] = []

        def on_audio(wav, n, events):  # int16 chunks; return 0 to keep going
            if wav and n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            i = 0
            while phonemes is not None and events and events[i].type != _EVENT_LIST_END:
                if events[i].type == _EVENT_PHONEME:
                    name = bytes(events[i].id.string).split(b"\0")[0].decode("utf-8", errors="replace")
                    phonemes.append((int(events[i].sample), name))
                elif events[i].type == _EVENT_WORD and words is not None:
                    words.append((int(events[i].sample), int(events[i].text_position), int(events[i].length)))
                i += 1
            return 0

        callback = _CALLBACK(on_audio)
        try:
            sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), options)
            if sr <= 0:
                raise EspeakError(f"espeak_Initialize failed with data path {data_path}")
            lib.espeak_SetSynthCallback(callback)
            lib.espeak_ng_SetRandSeed(0)  # breathy variants add noise, seeded from the clock by default
            yield lib, int(sr), chunks
        finally:
            lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)
            del callback


def _languages(raw: int) -> list[tuple[int, str]]:
    """Parse eSpeak's packed language list into (priority, language) pairs."""
    out, pos = [], raw
    while (prio := ctypes.string_at(pos, 1)[0]) != 0:
        name = ctypes.string_at(pos + 1)
        out.append((prio, name.decode().lower()))
        pos += 2 + len(name)
    return out


def _voice_table(lib) -> list[tuple[str, list[tuple[int, str]]]]:
    """(identifier, [(priority, language)]) for every installed voice."""
    voices = lib.espeak_ListVoices(None)
    table, i = [], 0
    while voices[i]:
        v = voices[i].contents
        table.append((v.identifier.decode(), _languages(v.languages)))
        i += 1
    return table


def _set_voice(lib, voice: str) -> None:
    """Select ``voice`` by file name, else by language (``en-gb`` -> gmw/en); keeps a ``+variant``."""
    base, plus, variant = voice.partition("+")
    if variant and not os.path.isfile(os.path.join(_paths()[1], "voices", "!v", variant)):
        raise ValueError(f"unknown eSpeak voice variant {variant!r} in {voice!r} (try f1..f5, m1..m7)")
    if lib.espeak_SetVoiceByName(voice.encode()) == _EE_OK:
        return
    matches = [(prio, ident) for ident, langs in _voice_table(lib) for prio, lang in langs if lang == base.lower()]
    if matches:
        name = min(matches)[1].rsplit("/", 1)[-1] + plus + variant
        if lib.espeak_SetVoiceByName(name.encode()) == _EE_OK:
            return
    raise ValueError(f"unknown eSpeak voice {voice!r}; see audio_tokenizer.espeak.list_voices()")


def list_voices() -> list[str]:
    """Identifiers of the installed voices (e.g. ``gmw/en-US``); language names like ``en-gb`` work too."""
    with _engine() as (lib, _, _):
        return [ident for ident, _ in _voice_table(lib)]


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Speak ``text``: returns (wave float32 [T], sample_rate), identical for identical arguments.

    voice: an eSpeak voice or language, optionally with a variant (``en-us``, ``en-gb``, ``en-us+f3``).
    rate: words per minute (80..450). pitch: 0..100.
    """
    wave, sr, _ = synthesize_timed(text, voice, rate, pitch)
    return wave, sr


def synthesize_timed(text: str, voice: str = "en-us", rate: int = 175,
                     pitch: int = 50) -> tuple[np.ndarray, int, list[tuple[int, str]]]:
    """:func:`synthesize` plus eSpeak's phoneme timeline: (wave, sample_rate, [(first sample, IPA
    phoneme)...] in time order; ``""`` marks a pause). The audio is the same as :func:`synthesize`'s."""
    wave, sr, phonemes, _ = synthesize_events(text, voice, rate, pitch)
    return wave, sr, phonemes


def synthesize_events(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50):
    """:func:`synthesize_timed` plus eSpeak's word events: (wave, sample_rate, phonemes, [(first
    sample, 1-based character position in ``text``, characters)...] one per spoken word)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text to synthesise must be a non-empty string")
    if not 80 <= rate <= 450:
        raise ValueError(f"rate must be in 80..450 words per minute, got {rate}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch must be in 0..100, got {pitch}")
    data = text.encode("utf-8") + b"\0"
    phonemes: list[tuple[int, str]] = []
    words: list[tuple[int, int, int]] = []
    with _engine(_PHONEME_EVENTS, phonemes, words) as (lib, sr, chunks):
        _set_voice(lib, voice)
        lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise EspeakError(f"espeak_Synth failed with error {err}")
        lib.espeak_Synchronize()
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)  # [T] int16
    return pcm.astype(np.float32) / 32768.0, sr, phonemes, words


_G2P: dict = {}  # the G2P engine: {"lib": CDLL, "language": str}, made on first use (under _LOCK)


def _g2p_engine(language: str) -> ctypes.CDLL:
    """The long-lived G2P copy of the library with ``language`` selected (call holding ``_LOCK``)."""
    if "lib" not in _G2P:
        lib_path, data_path = _paths()
        try:
            lib = _load_private(lib_path)
        except OSError as e:
            raise EspeakError(f"cannot load {lib_path} ({e}); reinstall `espeakng-loader`") from e
        _declare(lib)
        if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT) <= 0:
            raise EspeakError(f"espeak_Initialize failed with data path {data_path}")
        _G2P.update(lib=lib, language=None)
    if _G2P["language"] != language:
        _set_voice(_G2P["lib"], language)
        _G2P["language"] = language
    return _G2P["lib"]


def _clause_marks(data: bytes, ends: list[int]) -> list[str]:
    """The punctuation mark that closed each clause (``""`` if none).

    ``ends[i]``: the byte offset eSpeak had read to after clause i (it reads a little into the next
    clause). A clause's mark is the last clause mark it read; the last
    clause's is only a mark that ends the text.
    """
    marks = [(m.start(), m.group().decode()) for m in _CLAUSE_MARK.finditer(data)]
    out, start = [], 0
    for end in ends[:-1]:
        read = [mark for pos, mark in marks if start <= pos < end]
        out.append(read[-1] if read else "")
        start = end
    final = _FINAL_MARK.search(data, start)
    return [*out, final.group(1).decode() if final else ""]


def phonemize(text: str, language: str = G2P_LANGUAGE) -> str:
    """eSpeak NG's IPA for ``text`` (its own G2P: numbers, abbreviations and stress included).

    Clauses are joined with a space; a clause that ended in punctuation (``. , ; : ! ? …``) keeps
    that mark, so pauses and questions stay visible: ``"Hello, world!"`` -> ``"həlˈoʊ, wˈɜːld!"``.
    Deterministic; ``""`` for text without anything to say. Calls are serialised by the module lock.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    data = text.replace("\0", " ").encode("utf-8")
    if not data.strip():
        return ""
    buf = ctypes.create_string_buffer(data)  # NUL-terminated; eSpeak walks a pointer through it
    ptr = ctypes.c_void_p(ctypes.addressof(buf))
    clauses, ends = [], []
    with _LOCK:
        lib = _g2p_engine(language)
        while ptr.value:  # one clause per call; eSpeak sets the pointer to NULL once the text is used up
            before = ptr.value
            ipa = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA) or b""
            clauses.append(ipa.decode("utf-8", errors="replace"))
            ends.append(min(ptr.value - ctypes.addressof(buf), len(data)) if ptr.value else len(data))
            if ptr.value == before:  # no progress (never seen): stop rather than loop
                break
    parts = [" ".join(c.split()) + mark for c, mark in zip(clauses, _clause_marks(data, ends)) if c.strip()]
    return " ".join(parts)


def apply_front_end(text: str, front_end: str, voice: str | None = None) -> str:
    """``text`` as a model trained with ``front_end`` reads it: unchanged ("text"), or ("espeak-ipa")
    the IPA of its spoken form: numbers and symbols spelled out by ``normalize.normalize_text`` first,
    as synthesis does, so a transcript and a request with the same "$12.50" get the same phonemes."""
    if front_end == "text":
        return text
    if front_end == "espeak-ipa":
        return phonemize(normalize_text(text), G2P_LANGUAGE)
    from audio_tokenizer.frames import PER_FRAME, frame_prompt  # (frames imports this module)

    if front_end in PER_FRAME:  # phoneme tokens per codec frame, timed by ``voice``
        return frame_prompt(text, voice, PER_FRAME[front_end])
    raise ValueError(f"unknown front end {front_end!r}; choose one of {', '.join(FRONT_ENDS)}")
