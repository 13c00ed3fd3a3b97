"""The ``espeak-frames`` front end: one phoneme token per codec frame, from eSpeak NG's own timeline.

A TTS model that reads a phoneme string must still learn which phoneme each audio frame speaks (the
alignment), and a small model on a CPU budget learns that last and slowest. eSpeak NG knows it: its
rules give every phoneme a duration. :func:`frame_phonemes` speaks the text with eSpeak (a few ms),
takes its phoneme events, and samples them at the centre of each 2048-sample frame of the 24 kHz
rendering, so a row's prompt holds exactly one token per audio frame. A model trained this way
(``adapters.FRAMES_KEY``) gets each frame's phoneme added at the frame's positions; its speech
lasts as long as eSpeak's, at eSpeak's rate.

Phonemes are Llama-3 reserved special tokens (one id each, the same in the offline byte tokenizer
and Llama-3's own): id 128028 (``<|reserved_special_token_20|>``) is :data:`FRAME_PHONES` [0] (a
pause), and so on. They enter a prompt as ids (:func:`frame_ids`), never through the tokenizer, which
splits special-token strings in user text. The table only grows at its end, so trained models keep
their meaning.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from audio_tokenizer import espeak
from audio_tokenizer import layout as L

RATE = 175  # eSpeak words per minute: the corpus generator's default, and what the timeline uses
FIRST_ID = 128028  # <|reserved_special_token_20|> (Llama-3 numbering; checked by the tests)
STRESS = "\u02c8\u02cc"  # primary and secondary stress marks

# "" = pause, "?" = a phoneme not in the table (after dropping its stress); the rest as eSpeak NG's
# en voices name them, most frequent first (8,150 corpus sentences, 3 voices).
FRAME_PHONES = (
    '', '?', 'n', 't', 'ə', 'd', 'ɪ', 's', 'ð', 'ɹ', 'l', 'w', 'k', 'm', 'ˈɛ', 'b', 'f', 'z', 'p',
    'ˈɪ', 'ɐ', 'i', 'ɚ', 'h', 'v', 'ˈaɪ', 'ŋ', 'ˈeɪ', 'ˈiː', 'ʃ', 'ˈæ', 'aɪ', 'iː', 'ˈʌ', 'θ',
    'ˈuː', 'ɡ', 'ʊ', 'əl', 'ˈɔː', 'ᵻ', 'æ', 'ɜː', 'ˈɑː', 'j', 'dʒ', 'ˈoʊ', 'ˈa', 'ɾ', 'ˌaɪ', 'ʌ',
    'tʃ', 'ˌɛ', 'ˈɒ', 'ˈɜː', 'ˈɔːɹ', 'ˌaʊ', 'a', 'ˈiə', 'ˌɜː', 'ˌʊ', 'ɑː', 'ˈɔ', 'ɛ', 'ˈəʊ', 'ˌʌ',
    'ˌoʊ', 'ˌeɪ', 'ˌɔːɹ', 'ɛɹ', 'ˌɪɹ', 'oʊ', 'ˌɪ', 'ˌɔː', 'ˈaʊ', 'eɪ', 'uː', 'ˈɑːɹ', 'ˌɒ', 'iə',
    'ˌəʊ', 'ɒ', 'ˌiə', 'əʊ', 'eə', 'ˈɔɪ', 'ˌæ', 'ˈʊ', 'ˌuː', 'ˌɑː', 'ɔː', 'ˈɛɹ', 'ˈaɪə', 'ˌiː',
    'ˌa', 'ˌɔ', 'ʒ', 'ˈʊɹ', 'aʊ', 'ˈeə', 'ˈɪɹ', 'ˈaɪɚ', 'ɔːɹ', 'ɑːɹ', 'ˈʊə', 'ˌɑːɹ', 'ʔ', 'n̩',
    'aɪə', 'ɔɪ', 'ˌʊɹ', 'ɔ', 'ˌɔɪ', 'ʊɹ', 'ˌaɪə', 'aɪɚ', 'ɪɹ', 'r', 'ʊə', 'ɑ̃', 'ˌɛɹ', 'ˈe', 'ˌeə',
    'ˈɚ', 'ˌʊə',
)
PHONE_INDEX = {p: i for i, p in enumerate(FRAME_PHONES)}
ID_RANGE = (FIRST_ID, FIRST_ID + len(FRAME_PHONES))  # [lo, hi): the ids a frame prompt uses
# Phoneme samples per codec frame, by front end. A frame lasts 85 ms and eSpeak's median phoneme
# 70 ms, so sampling frame centres skips 23% of the phonemes (60 held-out sentences); sampling the
# centres of its four 21 ms quarters (the finest SNAC level's step) skips 0.3%.
PER_FRAME = {"espeak-frames": 1, "espeak-quarters": 4}


def phone_index(phoneme: str) -> int:
    """The table index of an eSpeak phoneme: itself, else without stress, else "?"."""
    if phoneme in PHONE_INDEX:
        return PHONE_INDEX[phoneme]
    return PHONE_INDEX.get(phoneme.strip(STRESS), PHONE_INDEX["?"])


def frame_count(samples: int, sample_rate: int) -> int:
    """Codec frames of a rendering of ``samples`` at ``sample_rate`` once resampled to 24 kHz (the
    resampler rounds its length down; the codec pads a partial last frame)."""
    return math.ceil((samples * L.SAMPLE_RATE // sample_rate) / L.SAMPLES_PER_FRAME)


def timeline_frames(events: list[tuple[int, str]], samples: int, sample_rate: int,
                    per_frame: int = 1) -> list[int]:
    """Table indices, ``per_frame`` per frame: the phoneme sounding at the centre of each of a frame's
    ``per_frame`` equal parts (1: the frame's centre), frame by frame.

    events: [(first sample, phoneme)] in time order (at ``sample_rate``); before the first event and
    at events named "" it is a pause.
    """
    starts = np.array([s for s, _ in events], dtype=np.int64)
    names = [phone_index(p) for _, p in events]
    out = []
    for i in range(frame_count(samples, sample_rate) * per_frame):
        centre = (i + 0.5) / per_frame * L.SAMPLES_PER_FRAME * sample_rate / L.SAMPLE_RATE
        k = int(np.searchsorted(starts, centre, side="right")) - 1
        out.append(names[k] if k >= 0 else PHONE_INDEX[""])
    return out


@functools.lru_cache(maxsize=512)
def frame_phonemes(text: str, voice: str = "en-us", rate: int = RATE, per_frame: int = 1) -> tuple[int, ...]:
    """Table indices of ``text`` spoken by eSpeak NG ``voice``, ``per_frame`` per 24 kHz codec frame.

    Deterministic, so cached: planning a chunk's canvas and building its prompt (or a dataset row's
    readable form and its ids) speak the text once."""
    return timed_words(text, voice, rate, per_frame)[0]


@functools.lru_cache(maxsize=256)
def timed_words(text: str, voice: str = "en-us", rate: int = RATE,
                per_frame: int = 1) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """(``frame_phonemes(text, voice, rate, per_frame)``, ((0-based character position in ``text``,
    first frame) per word eSpeak NG spoke)): where each word starts on the same timeline, to the
    nearest frame boundary (eSpeak's word events)."""
    wave, sr, events, words = espeak.synthesize_events(text, voice=voice, rate=rate)
    frame = L.SAMPLES_PER_FRAME * sr / L.SAMPLE_RATE  # samples of eSpeak's rate per codec frame
    starts = tuple((position - 1, round(sample / frame)) for sample, position, _ in words)
    return tuple(timeline_frames(events, len(wave), sr, per_frame)), starts


def speed_rate(speed: float) -> int:
    """eSpeak's words per minute for a speaking ``speed`` (1 = :data:`RATE`); ValueError outside 80..450."""
    rate = round(RATE * float(speed))
    if not 80 <= rate <= 450:
        raise ValueError(f"speed {speed:g} asks eSpeak NG for {rate} words per minute; it speaks 80..450 "
                         f"(speed {80 / RATE:.2f}..{450 / RATE:.2f})")
    return rate


def frame_ids(text: str, voice: str | None = None, speed: float = 1.0, per_frame: int = 1) -> list[int]:
    """The ``espeak-frames`` prompt ids of ``text``: one reserved-token id per frame (``per_frame``
    per frame: ``espeak-quarters`` has 4).

    ``voice`` is the eSpeak voice whose timing the model imitates (``en-us`` when None); ``speed``
    scales eSpeak's rate (so the timeline, and the speech, get shorter or longer). The text is spoken
    as given (eSpeak reads numbers itself), exactly as the corpus generator spoke it."""
    return [FIRST_ID + i for i in frame_phonemes(text, voice or "en-us", speed_rate(speed), per_frame)]


def frame_prompt(text: str, voice: str | None = None, per_frame: int = 1) -> str:
    """A readable form of the same ids: one symbol per sample, "_" for a pause (for logs and errors)."""
    return " ".join(FRAME_PHONES[i] or "_" for i in frame_phonemes(text, voice or "en-us", RATE, per_frame))


def frames_of_ids(ids, per_frame: int = 1) -> int:
    """How many audio frames a prompt's ids describe (its phoneme tokens / ``per_frame``)."""
    lo, hi = ID_RANGE
    return sum(1 for i in ids if lo <= int(i) < hi) // per_frame


assert ID_RANGE[1] <= L.START_OF_SPEECH_ID - 1  # inside Llama-3's reserved special tokens
