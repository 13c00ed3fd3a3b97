"""Audio-aware decoding: which ids each audio position may take, and how long the canvas is.

The audio region starts right after the prompt (which ends with start_of_speech). Its position j
(0-based) is slot ``j % 7`` of frame ``j // 7`` and may only take ids of that slot's band
(``layout.slot_band``). Stream-end ids (end_of_speech, end_of_ai, pad) may appear

* at a frame boundary (slot 0), where they end the stream after a whole number of frames, and
* anywhere after an already committed stream-end id (the trailing fill).

The mask id is in no band, so it is never emitted. Diffusion commits tokens out of order but never
changes a committed one, so the first stream-end id of a row is always at a slot-0 position: the
audio before it is a whole number of in-band frames (``validate_audio_tokens(...).ok``).
"""
from __future__ import annotations

import math

import torch

from audio_tokenizer import layout as L

# Stream-end ids the sampler may emit in the audio region (end_of_text is text, not audio).
AUDIO_END_IDS = (L.END_OF_SPEECH_ID, L.END_OF_AI_ID, L.PAD_ID)
DEFAULT_CHARS_PER_SECOND = 14.0  # typical read English speech; calibrate per voice


def slot_candidates() -> torch.Tensor:
    """[7, 4099] int64: row s = slot s's 4096 band ids, then the 3 stream-end ids."""
    band = L.AUDIO_OFFSET + L.CODEBOOK_SIZE * torch.arange(L.SLOTS_PER_FRAME).unsqueeze(1) \
        + torch.arange(L.CODEBOOK_SIZE).unsqueeze(0)  # [7, 4096]
    ends = torch.tensor(AUDIO_END_IDS).expand(L.SLOTS_PER_FRAME, -1)  # [7, 3]
    return torch.cat([band, ends], dim=1)


def slots_of(offsets: torch.Tensor | range) -> torch.Tensor:
    """Frame slot (0..6) of each audio-region offset (position minus the region start)."""
    return torch.as_tensor(offsets).long() % L.SLOTS_PER_FRAME


def committed_end_before(audio: torch.Tensor, mask_id: int = L.MASK_ID) -> torch.Tensor:
    """[B, n] bool: is there a committed stream-end id strictly before each audio position?

    audio [B, n]: the audio region of the canvas (masked positions hold ``mask_id``).
    """
    is_end = torch.isin(audio, torch.tensor(AUDIO_END_IDS, device=audio.device)) & (audio != mask_id)
    seen = is_end.long().cumsum(dim=1) - is_end.long()  # ends strictly before
    return seen > 0


def end_allowed(audio: torch.Tensor, mask_id: int = L.MASK_ID, min_frames: int = 0) -> torch.Tensor:
    """[B, n] bool: may each audio position take a stream-end id now (slot 0 of frame >= min_frames,
    or after an end)?"""
    offsets = torch.arange(audio.shape[1], device=audio.device)  # [n]
    frame_start = (offsets % L.SLOTS_PER_FRAME == 0) & (offsets >= min_frames * L.SLOTS_PER_FRAME)
    return committed_end_before(audio, mask_id) | frame_start.unsqueeze(0)


def allowed_ids(offset: int, after_end: bool, vocab_size: int = L.VOCAB_SIZE, min_frames: int = 0) -> torch.Tensor:
    """[vocab_size] bool: the ids audio offset ``offset`` may take (``after_end``: an end precedes;
    no end before frame ``min_frames``)."""
    allowed = torch.zeros(vocab_size, dtype=torch.bool)
    lo, hi = L.slot_band(offset % L.SLOTS_PER_FRAME)
    allowed[lo:hi] = True
    if after_end or (offset % L.SLOTS_PER_FRAME == 0 and offset >= min_frames * L.SLOTS_PER_FRAME):
        allowed[list(AUDIO_END_IDS)] = True
    return allowed


def forbid_ends(cand_logits: torch.Tensor, may_end: torch.Tensor) -> torch.Tensor:
    """Set the stream-end columns (the last 3 candidates) to -inf where ``may_end`` [B, n] is False."""
    n_end = len(AUDIO_END_IDS)
    out = cand_logits.clone()
    out[..., -n_end:] = out[..., -n_end:].masked_fill(~may_end.unsqueeze(-1), -torch.inf)
    return out


def frames_for_duration(seconds: float) -> int:
    """Whole SNAC frames covering ``seconds`` of audio (rounded up): 10 s -> 118 frames."""
    if not seconds > 0:
        raise ValueError(f"duration must be > 0 seconds, got {seconds}")
    return math.ceil(seconds * L.FRAMES_PER_SECOND - 1e-9)


def estimate_frames(text: str, chars_per_second: float = DEFAULT_CHARS_PER_SECOND,
                    margin: float = 1.2) -> int:
    """Canvas size in whole frames for speaking ``text``: len(text) / chars_per_second * margin seconds.

    At least one frame. The margin leaves room for a slower voice; the trailing end_of_speech/pad
    fill trims the rest.
    """
    if chars_per_second <= 0:
        raise ValueError(f"chars_per_second must be > 0, got {chars_per_second}")
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    seconds = len(text.strip()) / chars_per_second * margin
    return max(1, math.ceil(seconds * L.FRAMES_PER_SECOND - 1e-9))


def canvas_frames(text: str, duration: float | None = None,
                  chars_per_second: float = DEFAULT_CHARS_PER_SECOND, margin: float = 1.2) -> int:
    """Frames to generate: from an explicit ``duration`` (seconds) if given, else estimated from the
    text at the voice's ``chars_per_second`` with ``margin``. Canvas tokens = 7 x frames."""
    if duration is not None:
        return frames_for_duration(duration)
    return estimate_frames(text, chars_per_second, margin)


def chars_per_second(texts: list[str], seconds: list[float]) -> float:
    """Calibrate a voice's speaking rate from (transcript, duration) pairs: total chars / total s."""
    if len(texts) != len(seconds) or not texts:
        raise ValueError("need the same, non-zero number of texts and durations")
    total = sum(seconds)
    if total <= 0:
        raise ValueError("total duration must be > 0")
    return sum(len(t.strip()) for t in texts) / total
