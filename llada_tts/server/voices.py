"""Reference voices: ``POST /v1/audio/voices`` registers one, ``/v1/audio/speech`` speaks with it.

A reference voice is a recording plus its transcript, encoded once with the server's codec into a
``synthesis.reference.Reference`` (``LladaTTS.reference``). Speech with it continues the recording's
voice: each chunk's prompt starts with the transcript and its canvas with the recording's codec ids.

Storage: one file per voice under the server's data folder (``--data-dir``, created on the first
upload), ``DATA_DIR/NAME.safetensors``: the codec ids (``tokens``, int64 [7n]) and, in the header's
metadata, the transcript, the codec it was encoded with, its length, the trimming note and the
creation time. safetensors holds tensors and strings only: nothing in it is ever executed (no
pickle). A file is written under a temporary name and renamed, so a reader never sees half of one.

Names match ``NAME_PATTERN`` (letters, digits, ``_`` and ``-``; 1 to 64), so a name is always a safe
file name. They are case-sensitive, but a name that differs from a registered one only in case is
refused (it would be the same file on a case-insensitive file system), and so are the checkpoint's
voice names and OpenAI's built-in ones (``voice`` would be ambiguous).
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llada_tts.fileio import atomic_file
from llada_tts.server.errors import ApiError, bad_request

log = logging.getLogger("llada_tts.server")

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
SUFFIX = ".safetensors"
FORMAT = "llada-tts-reference-voice/1"
MAX_VOICE_BYTES = 10 * 1024 * 1024  # an upload's audio file (OpenAI's limit for voice samples)


@dataclass(frozen=True)
class StoredVoice:
    """A registered voice as listed (no tokens)."""

    name: str
    transcript: str
    seconds: float
    created_at: int
    note: str = ""

    def body(self) -> dict:
        """OpenAI's ``audio.voice`` object (``id`` = the name) plus this server's fields."""
        return {"id": self.name, "object": "audio.voice", "name": self.name, "type": "audio_sample",
                "created_at": self.created_at, "transcript": self.transcript, "seconds": round(self.seconds, 3),
                "note": self.note or None}


def codec_id(codec: str | None) -> str | None:
    """The codec a voice's ids belong to: an existing folder as its absolute path, else the name."""
    if not codec:
        return None
    path = Path(str(codec)).expanduser()
    return str(path.resolve()) if path.exists() else str(codec)


class VoiceStore:
    """The voices under ``root`` (a folder created on the first ``save``), for the codec ``codec``."""

    def __init__(self, root: str | os.PathLike, codec: str | None = None, reserved=()):
        self.root = Path(root).expanduser()
        self.codec = codec_id(codec)
        self.reserved = {str(r).lower(): str(r) for r in reserved}
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple, object]] = {}  # name -> ((mtime_ns, size), Reference)

    # --- names --------------------------------------------------------------------------------------
    @staticmethod
    def check_name(name) -> str:
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
            raise bad_request(f"name must be 1 to 64 letters, digits, '_' or '-', got {shown}", param="name",
                              code="invalid_name")
        return name

    def names(self) -> list[str]:
        """The registered names, sorted (files whose names are not valid voice names are ignored)."""
        try:
            entries = os.listdir(self.root)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n[: -len(SUFFIX)] for n in entries if n.endswith(SUFFIX)
                      and NAME_PATTERN.fullmatch(n[: -len(SUFFIX)]))

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self.names()

    def check_free(self, name: str) -> None:
        """409 when ``name`` (or the same name in another case) is a checkpoint / OpenAI voice or registered."""
        if name.lower() in self.reserved:
            raise ApiError(409, f"voice {name!r} is a built-in voice name ({self.reserved[name.lower()]!r}); "
                           "choose another name", param="name", code="voice_exists")
        same = [n for n in self.names() if n.lower() == name.lower()]
        if same:
            raise ApiError(409, f"voice {same[0]!r} is already registered; delete it first "
                           f"(DELETE /v1/audio/voices/{same[0]}) or choose another name", param="name",
                           code="voice_exists")

    def _path(self, name: str) -> Path:
        return self.root / f"{self.check_name(name)}{SUFFIX}"

    # --- reading ------------------------------------------------------------------------------------
    def describe(self, name: str) -> StoredVoice:
        from safetensors import safe_open

        with safe_open(str(self._path(name)), framework="numpy") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a llada-tts reference voice (format {meta.get('format')!r})")
        return StoredVoice(name, meta.get("transcript", ""), float(meta.get("seconds", 0.0)),
                           int(meta.get("created_at", 0)), meta.get("note", ""))

    def list(self) -> list[StoredVoice]:
        out = []
        for name in self.names():
            try:
                out.append(self.describe(name))
            except Exception as e:  # noqa: BLE001  a damaged file is skipped, not a failed listing
                log.warning("voice file %s is unreadable, skipped: %s", self._path(name), e)
        return out

    def load(self, name: str):
        """The ``Reference`` of a registered voice (cached until its file changes). 404 when it is not
        registered; 400 when it was encoded with another codec; 500 when its file is damaged."""
        from llada_tts.server.errors import internal
        from llada_tts.synthesis.reference import Reference

        if name not in self:
            raise ApiError(404, f"no reference voice {name!r}", param="voice", code="voice_not_found")
        path = self._path(name)
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
            with self._lock:
                cached = self._cache.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
            tokens = load_file(str(path), device="cpu")["tokens"]
            if meta.get("format") != FORMAT or tokens.dim() != 1 or tokens.numel() == 0 or tokens.numel() % 7:
                raise ValueError(f"not a llada-tts reference voice (format {meta.get('format')!r}, "
                                 f"tokens {tuple(tokens.shape)})")
        except (OSError, ValueError, KeyError) as e:
            raise internal(e, f"reading voice file {path}") from None
        codec = meta.get("codec") or None
        if self.codec and codec and codec != self.codec:
            raise bad_request(f"reference voice {name!r} was encoded with another codec ({Path(codec).name}) than "
                              f"this server's ({Path(self.codec).name}); register its recording again",
                              param="voice", code="voice_codec_mismatch")
        ref = Reference(meta.get("transcript", ""), tokens.long(), meta.get("note", ""))
        with self._lock:
            self._cache[name] = (key, ref)
        return ref

    # --- writing ------------------------------------------------------------------------------------
    def save(self, name: str, reference) -> StoredVoice:
        """Store ``reference`` as ``name`` (atomically; 409 if the name is taken meanwhile)."""
        from safetensors.torch import save_file

        with self._lock:
            self.check_free(name)
            self.root.mkdir(parents=True, exist_ok=True)
            voice = StoredVoice(name, reference.text, float(reference.seconds), int(time.time()), reference.note)
            meta = {"format": FORMAT, "transcript": voice.transcript, "seconds": f"{voice.seconds:.6f}",
                    "created_at": str(voice.created_at), "note": voice.note, "codec": self.codec or ""}
            with atomic_file(self._path(name)) as tmp:
                save_file({"tokens": reference.tokens.detach().cpu().long().contiguous()}, str(tmp), metadata=meta)
            self._cache.pop(name, None)
        return voice

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self:
                raise ApiError(404, f"no reference voice {name!r}", param="voice_id", code="voice_not_found")
            self._path(name).unlink(missing_ok=True)
            self._cache.pop(name, None)
