"""``llada_tts.json``: what a checkpoint knows about the speech it was trained on.

    {"voices": ["alice", "bob"],        sorted distinct non-empty voices of the TTS dataset ([] if none)
     "codec": "hubertsiuzdak/snac_24khz",  the codec the TTS dataset was tokenised with (null: unknown)
     "chars_per_second": 14.2,          speaking rate calibrated on the dataset's text/duration (null: unknown)
     "sampler": {"tokens_per_step": 7}, sampler options this checkpoint speaks with by default
                                        (a request's own options win; {} = the global defaults)
     "front_end": "text",               what the prompts held: the text, "espeak-ipa" phonemes of it, or
                                        "espeak-frames" (one eSpeak phoneme per codec frame), or
                                        "espeak-quarters" (one per quarter frame)
     "format_version": 1}

The trainer writes it into every checkpoint; :class:`llada_tts.synthesis.LladaTTS` reads it for the
voice list, the default codec, the canvas length and the prompt front end (a file without
``front_end`` reads as "text"). A checkpoint without it (an Orpheus or converted
Llama model) reads as "nothing recorded".
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from audio_tokenizer.espeak import FRONT_ENDS

META_FILE = "llada_tts.json"
FORMAT_VERSION = 1
BUILD_INFO = "build_info.json"  # written by `python -m audio_tokenizer build` into the dataset folder


@dataclass
class CheckpointMeta:
    voices: list[str] = field(default_factory=list)
    codec: str | None = None
    chars_per_second: float | None = None
    front_end: str = "text"  # one of audio_tokenizer.espeak.FRONT_ENDS
    format_version: int = FORMAT_VERSION
    sampler: dict = field(default_factory=dict)  # default sampler options (checked by the synthesis options table)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def read_meta(ckpt_dir: str | Path) -> CheckpointMeta:
    """The checkpoint's metadata; defaults when it has no ``llada_tts.json``; ValueError if malformed."""
    path = Path(ckpt_dir) / META_FILE
    if not path.is_file():
        return CheckpointMeta()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read checkpoint metadata ({e})") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object")
    voices, codec, cps = raw.get("voices") or [], raw.get("codec"), raw.get("chars_per_second")
    if not isinstance(voices, list) or not all(isinstance(v, str) for v in voices):
        raise ValueError(f"{path}: 'voices' must be a list of strings")
    if codec is not None and not isinstance(codec, str):
        raise ValueError(f"{path}: 'codec' must be a string or null")
    if cps is not None and (isinstance(cps, bool) or not isinstance(cps, (int, float)) or not cps > 0
                            or not math.isfinite(cps)):
        raise ValueError(f"{path}: 'chars_per_second' must be a positive number or null, got {cps!r}")
    front_end = raw.get("front_end", "text")
    if front_end not in FRONT_ENDS:
        raise ValueError(f"{path}: 'front_end' must be one of {', '.join(FRONT_ENDS)}, got {front_end!r}")
    sampler = raw.get("sampler") or {}
    if not isinstance(sampler, dict):
        raise ValueError(f"{path}: 'sampler' must be an object of sampler options, got {sampler!r}")
    return CheckpointMeta(voices=list(voices), codec=codec, chars_per_second=None if cps is None else float(cps),
                          front_end=front_end, format_version=int(raw.get("format_version", FORMAT_VERSION)),
                          sampler=dict(sampler))


def _build_info(dataset_path: str | Path | None) -> dict:
    """The dataset's ``build_info.json`` (in the folder, or next to it); {} if none or unreadable."""
    if dataset_path is None or not Path(dataset_path).is_dir():
        return {}
    for info in (Path(dataset_path) / BUILD_INFO, Path(dataset_path).parent / BUILD_INFO):
        if info.is_file():
            try:
                raw = json.loads(info.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return raw if isinstance(raw, dict) else {}
    return {}


def dataset_codec(dataset_path: str | Path | None) -> str | None:
    """The ``codec`` field of the dataset's ``build_info.json`` (in the folder, or next to it), if any."""
    codec = _build_info(dataset_path).get("codec")
    return codec if isinstance(codec, str) and codec else None


def dataset_front_end(dataset_path: str | Path | None) -> str:
    """The ``front_end`` the dataset was built with (its ``build_info.json``); "text" if not recorded.
    ValueError for a name this version does not know (its prompts could not be reproduced)."""
    front_end = _build_info(dataset_path).get("front_end", "text")
    if front_end not in FRONT_ENDS:
        raise ValueError(f"dataset {dataset_path}: {BUILD_INFO} names an unknown front_end {front_end!r} "
                         f"(known: {', '.join(FRONT_ENDS)})")
    return front_end


def meta_from_columns(columns: dict[str, list], codec: str | None = None, front_end: str = "text") -> CheckpointMeta:
    """Metadata from a TTS dataset's columns: ``voice`` (optional), ``text`` + ``duration`` (optional);
    the speaking rate counts transcript characters whatever the front end (synthesis plans on text)."""
    from llada_tts.sampling import chars_per_second

    voices = sorted({str(v) for v in columns.get("voice") or [] if v is not None and str(v).strip()})
    cps = None
    texts, durations = columns.get("text"), columns.get("duration")
    if texts is not None and durations is not None:
        pairs = [(t, float(d)) for t, d in zip(texts, durations) if t and d is not None and float(d) > 0]
        if pairs:
            cps = round(chars_per_second([t for t, _ in pairs], [d for _, d in pairs]), 4)
    return CheckpointMeta(voices=voices, codec=codec, chars_per_second=cps, front_end=front_end)
