"""Audio file I/O: load any soundfile-readable file as mono float32 at a target rate, save 16-bit WAV.

Waves are numpy float32 arrays: mono ``[T]``, multi-channel channels-last ``[T, C]`` (the layout
soundfile reads and writes). Every failure on a file raises :class:`AudioError` naming the file.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audio_tokenizer.errors import UserInputError, first_line

RESAMPLE_QUALITY = "HQ"  # soxr high quality (the library default; "VHQ" is slower, inaudibly better)
WAV_SUBTYPE = "PCM_16"  # save_wav default: 16-bit PCM, what every player and dataset tool reads


class AudioError(UserInputError):
    """An audio file or array that cannot be used (missing, unreadable, empty, non-finite...)."""


def to_mono(wave: np.ndarray) -> np.ndarray:
    """Mono float32 ``[T]`` from ``[T]`` or channels-last ``[T, C]`` (mean over channels)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 1:
        return wave
    if wave.ndim == 2:
        return wave.mean(axis=1, dtype=np.float32)
    raise AudioError(f"expected audio of shape [T] or [T, C], got {wave.shape}")


def resample(wave: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``[T]`` or channels-last ``[T, C]`` float audio from ``sr_in`` to ``sr_out`` Hz (soxr HQ).

    Returns float32 with about ``T * sr_out / sr_in`` samples (soxr rounds down); a copy when the
    rates are equal.
    """
    for name, rate in (("sr_in", sr_in), ("sr_out", sr_out)):
        if int(rate) != rate or rate <= 0:
            raise AudioError(f"{name} must be a positive whole number of Hz, got {rate}")
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim not in (1, 2):
        raise AudioError(f"expected audio of shape [T] or [T, C], got {wave.shape}")
    if int(sr_in) == int(sr_out):
        return wave.copy()
    out = soxr.resample(wave, int(sr_in), int(sr_out), quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(out, dtype=np.float32)


def header_duration(source) -> float | None:
    """Seconds of audio in a file (a path or a binary file object), read from its header only.

    Nothing is decoded, so an hour-long file costs no memory. None when the header cannot be read
    or gives no length (the caller then decodes and reports the real error).
    """
    try:
        info = sf.info(source if hasattr(source, "read") else str(source))
    except Exception:  # noqa: BLE001  unreadable header: let the decoder name the problem
        return None
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    if not info.samplerate or info.frames <= 0:
        return None
    return info.frames / info.samplerate


def load_audio(path: str | os.PathLike, target_sr: int = 24000) -> np.ndarray:
    """Read any soundfile-readable file as mono float32 ``[T]`` at ``target_sr`` Hz.

    Channels are averaged, then the wave is resampled (soxr HQ). Raises :class:`AudioError` naming
    the file when it is missing, not a file, empty, unreadable/corrupt, has 0 samples, or holds
    NaN/infinite samples.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: audio file not found")
    if not path.is_file():
        raise AudioError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [T, C]
    except Exception as e:  # noqa: BLE001  soundfile raises LibsndfileError/RuntimeError/TypeError
        reason = first_line(e)
        raise AudioError(f"{path}: cannot read audio ({reason})") from e
    if wave.shape[0] == 0:
        raise AudioError(f"{path}: audio has 0 samples")
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: audio has NaN or infinite samples")
    return resample(to_mono(wave), sr, target_sr)


def save_wav(path: str | os.PathLike, wave: np.ndarray, sample_rate: int, subtype: str = WAV_SUBTYPE) -> Path:
    """Atomically write ``wave`` (``[T]`` or ``[T, C]``, clipped to [-1, 1]) as a WAV file.

    Default: 16-bit PCM (``subtype="FLOAT"`` writes 32-bit float). The file is written to a hidden
    temp file in the same directory and moved into place with ``os.replace``, so readers never see
    a partial file and a failed write leaves any previous file untouched. Returns the path.
    """
    path = Path(path)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim not in (1, 2) or wave.shape[0] == 0:
        raise AudioError(f"{path}: expected non-empty audio of shape [T] or [T, C], got {wave.shape}")
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: refusing to save audio with NaN or infinite samples")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(f"{path}: sample_rate must be a positive whole number of Hz, got {sample_rate}")
    parent = path.parent
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist (create it first)"
        raise AudioError(f"cannot write {path}: {parent} {why}")
    if not os.access(parent, os.W_OK):
        raise AudioError(f"cannot write {path}: directory {parent} is not writable")
    tmp = parent / f".{path.name}.{secrets.token_hex(6)}.tmp"  # same filesystem, so os.replace is atomic
    try:
        sf.write(str(tmp), np.clip(wave, -1.0, 1.0), int(sample_rate), subtype=subtype, format="WAV")
        os.replace(tmp, path)
    except Exception as e:  # noqa: BLE001  any failure: drop the temp file, keep the old target
        tmp.unlink(missing_ok=True)
        reason = first_line(e)
        raise AudioError(f"cannot write {path}: {reason}") from e
    return path
