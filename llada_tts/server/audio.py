"""Response formats: float32 24 kHz pieces -> bytes of a stream, as the pieces arrive.

    pcm   raw 16-bit little-endian mono samples (OpenAI's pcm: 24 kHz)
    wav   a 44-byte RIFF header whose sizes say "unknown" (0xFFFFFFFF, as streamed WAVs do), then PCM
    opus  (Ogg) libsndfile's encoder writing to memory; bytes are sent as the encoder emits them
    flac / mp3  libsndfile's encoders; the file is sent whole when the last chunk is done, because
          their encoders patch the header on close (FLAC's sample count, mp3's Xing frame count) and
          a stream with the first header decodes short or with an unknown length. Stream with pcm,
          wav or opus for the lowest time to first audio.

mp3 / opus are offered only when the installed libsndfile writes them (``available_formats``).
"""
from __future__ import annotations

import io
import struct

import numpy as np

SAMPLE_RATE = 24000
MEDIA_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac", "mp3": "audio/mpeg",
               "opus": "audio/ogg", "aac": "audio/aac"}
FORMATS = ("wav", "pcm", "flac", "mp3", "opus", "aac")  # what OpenAI's API names
_SOUNDFILE = {"flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}
WHOLE_FILE = ("flac", "mp3")  # sent whole at the end (see above)


def to_int16(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def wav_header(sample_rate: int = SAMPLE_RATE) -> bytes:
    """A streaming WAV header: 16-bit mono PCM, RIFF and data sizes 0xFFFFFFFF (unknown)."""
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16) + b"data" + struct.pack("<I", 0xFFFFFFFF))


class Encoder:
    """``feed(piece) -> bytes`` for each float32 piece, ``finish() -> bytes`` once at the end."""

    def __init__(self, fmt: str, sample_rate: int = SAMPLE_RATE):
        self.fmt, self.sample_rate = fmt, sample_rate
        self._started = False
        self._sf = self._buf = None
        self._sent = 0
        if fmt in _SOUNDFILE:
            import soundfile as sf

            container, subtype = _SOUNDFILE[fmt]
            self._buf = io.BytesIO()
            self._sf = sf.SoundFile(self._buf, "w", samplerate=sample_rate, channels=1, format=container,
                                    subtype=subtype)

    def _new_bytes(self) -> bytes:
        data = self._buf.getvalue()
        out, self._sent = data[self._sent:], max(self._sent, len(data))
        return out

    def feed(self, piece: np.ndarray) -> bytes:
        head = b""
        if not self._started:
            self._started = True
            head = wav_header(self.sample_rate) if self.fmt == "wav" else b""
        if self._sf is None:
            return head + to_int16(piece)
        self._sf.write(np.clip(piece, -1.0, 1.0).astype(np.float32))
        self._sf.flush()
        return head if self.fmt in WHOLE_FILE else head + self._new_bytes()

    def finish(self) -> bytes:
        if self._sf is None:
            return b"" if self._started else self.feed(np.zeros(0, np.float32))
        self._sf.close()
        return self._new_bytes()

    def close(self) -> None:
        if self._sf is not None and not self._sf.closed:
            try:
                self._sf.close()
            except Exception:  # noqa: BLE001  abandoned stream: nothing to report
                pass


def available_formats() -> list[str]:
    """The response formats this installation can write (wav, pcm always; the rest if libsndfile can)."""
    out = ["wav", "pcm"]
    for fmt in ("flac", "mp3", "opus"):
        try:
            enc = Encoder(fmt)
            enc.feed(np.zeros(2400, np.float32))
            enc.finish()
            out.append(fmt)
        except Exception:  # noqa: BLE001  this libsndfile lacks the encoder
            continue
    return out
