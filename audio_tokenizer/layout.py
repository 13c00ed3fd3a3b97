"""The Orpheus / SNAC token layout: one source of truth for every id.

A Llama-3 tokenizer has 128256 ids. Orpheus-TTS appends ``<custom_token_N>`` tokens, so custom
token N has id ``128256 + N``. The first 10 are control tokens, the next 7 x 4096 are audio codes:

    audio id = 128266 + slot * 4096 + code        slot 0..6 within a frame, code 0..4095

A SNAC 24 kHz frame (2048 samples) has 1 level-0 code, 2 level-1 codes and 4 level-2 codes. Frame i
of codes (L0 [n], L1 [2n], L2 [4n]) flattens to the 7 slots

    [L0[i], L1[2i], L2[4i], L2[4i+1], L1[2i+1], L2[4i+2], L2[4i+3]]

We add one id of our own, the diffusion MASK token, right after the audio band (156938), where no
text and no audio can produce it. Orpheus checkpoints have 156940 embedding rows, so the mask row
already exists in them; we size our models the same way (156939 is an unused padding row).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# --- text (Llama-3) -------------------------------------------------------------------------------
TEXT_VOCAB_SIZE = 128256
BOS_ID = 128000  # <|begin_of_text|>
END_OF_TEXT_ID = 128009  # <|eot_id|>, Orpheus ends the text prompt with it

# --- Orpheus control tokens: <custom_token_N> = 128256 + N ----------------------------------------
CUSTOM_TOKEN_OFFSET = TEXT_VOCAB_SIZE
START_OF_SPEECH_ID = 128257
END_OF_SPEECH_ID = 128258
START_OF_HUMAN_ID = 128259
END_OF_HUMAN_ID = 128260
START_OF_AI_ID = 128261
END_OF_AI_ID = 128262
PAD_ID = 128263
NUM_SPECIAL_TOKENS = 10  # custom tokens 0..9 (0, 8 and 9 are unused by Orpheus)

# --- audio ----------------------------------------------------------------------------------------
CODEBOOK_SIZE = 4096
SLOTS_PER_FRAME = 7
SLOT_LEVELS = (0, 1, 2, 2, 1, 2, 2)  # SNAC level of each slot in a frame
AUDIO_OFFSET = CUSTOM_TOKEN_OFFSET + NUM_SPECIAL_TOKENS  # 128266
NUM_AUDIO_TOKENS = SLOTS_PER_FRAME * CODEBOOK_SIZE  # 28672
AUDIO_END = AUDIO_OFFSET + NUM_AUDIO_TOKENS  # 156938, exclusive

# --- ours -----------------------------------------------------------------------------------------
MASK_ID = AUDIO_END  # 156938: the diffusion mask; no text or audio maps here
NUM_CUSTOM_TOKENS = NUM_SPECIAL_TOKENS + NUM_AUDIO_TOKENS  # 28682, as in Orpheus
VOCAB_SIZE = 156940  # embedding rows, as in Orpheus checkpoints (156939 is padding)

SAMPLE_RATE = 24000
SAMPLES_PER_FRAME = 2048
FRAMES_PER_SECOND = SAMPLE_RATE / SAMPLES_PER_FRAME  # 11.71875
TOKENS_PER_SECOND = FRAMES_PER_SECOND * SLOTS_PER_FRAME  # 82.03

# Ids that end an audio stream when they appear in the audio region.
STREAM_END_IDS = (END_OF_SPEECH_ID, END_OF_AI_ID, PAD_ID, END_OF_TEXT_ID)

# Index into each level's code tensor for slot s of frame i: level_index = mult * i + off.
_SLOT_MULT = (1, 2, 4, 4, 2, 4, 4)
_SLOT_OFF = (0, 0, 0, 1, 1, 2, 3)


def custom_token_id(n: int) -> int:
    """Id of Orpheus's ``<custom_token_n>``."""
    return CUSTOM_TOKEN_OFFSET + n


def slot_band(slot: int) -> tuple[int, int]:
    """Half-open id range [lo, hi) that audio slot ``slot`` (0..6) may take."""
    if not 0 <= slot < SLOTS_PER_FRAME:
        raise ValueError(f"slot must be in 0..6, got {slot}")
    lo = AUDIO_OFFSET + slot * CODEBOOK_SIZE
    return lo, lo + CODEBOOK_SIZE


def is_audio_id(ids: torch.Tensor) -> torch.Tensor:
    """Bool tensor: which ids lie anywhere in the audio band."""
    return (ids >= AUDIO_OFFSET) & (ids < AUDIO_END)


def codes_to_tokens(codes: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """SNAC codes -> flat audio token ids.

    codes: (L0 [..., n], L1 [..., 2n], L2 [..., 4n]) integer tensors, codes in 0..4095. Leading batch
    dims are kept. Returns ids [..., 7n] (int64).
    """
    if len(codes) != 3:
        raise ValueError(f"expected 3 SNAC levels, got {len(codes)}")
    l0, l1, l2 = (torch.as_tensor(c).long() for c in codes)
    n = l0.shape[-1]
    if l1.shape[-1] != 2 * n or l2.shape[-1] != 4 * n:
        raise ValueError(
            f"SNAC level lengths must be n, 2n, 4n; got {l0.shape[-1]}, {l1.shape[-1]}, {l2.shape[-1]}"
        )
    for level, c in enumerate((l0, l1, l2)):
        if c.numel() and (c.min() < 0 or c.max() >= CODEBOOK_SIZE):
            raise ValueError(f"SNAC level {level} has codes outside 0..{CODEBOOK_SIZE - 1}")
    l1 = l1.reshape(*l1.shape[:-1], n, 2)
    l2 = l2.reshape(*l2.shape[:-1], n, 4)
    # frames [..., n, 7] in slot order
    frames = torch.stack(
        [l0, l1[..., 0], l2[..., 0], l2[..., 1], l1[..., 1], l2[..., 2], l2[..., 3]], dim=-1
    )
    slot_offsets = AUDIO_OFFSET + CODEBOOK_SIZE * torch.arange(SLOTS_PER_FRAME)
    return (frames + slot_offsets).reshape(*frames.shape[:-2], n * SLOTS_PER_FRAME)


def tokens_to_codes(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat audio token ids [..., 7n] -> SNAC codes (L0 [..., n], L1 [..., 2n], L2 [..., 4n]).

    Strict: raises ValueError if the length is not a whole number of frames or any id lies outside
    its slot's band. Use :func:`validate_audio_tokens` first to repair a generated stream.
    """
    tokens = torch.as_tensor(tokens).long()
    if tokens.shape[-1] % SLOTS_PER_FRAME:
        raise ValueError(f"audio token count {tokens.shape[-1]} is not a multiple of 7 (whole frames)")
    n = tokens.shape[-1] // SLOTS_PER_FRAME
    frames = tokens.reshape(*tokens.shape[:-1], n, SLOTS_PER_FRAME)
    codes = frames - (AUDIO_OFFSET + CODEBOOK_SIZE * torch.arange(SLOTS_PER_FRAME))
    bad = (codes < 0) | (codes >= CODEBOOK_SIZE)
    if bad.any():
        idx = bad.nonzero()[0].tolist()
        raise ValueError(
            f"token {int(frames[tuple(idx)])} at frame {idx[-2]} slot {idx[-1]} is outside that slot's "
            f"band {slot_band(idx[-1])}"
        )
    l0 = codes[..., 0]
    l1 = codes[..., [1, 4]].reshape(*codes.shape[:-2], 2 * n)
    l2 = codes[..., [2, 3, 5, 6]].reshape(*codes.shape[:-2], 4 * n)
    return l0, l1, l2


@dataclass
class StreamReport:
    """What :func:`validate_audio_tokens` found in a generated stream.

    tokens: the repaired audio ids (whole, valid frames only) [7 * frames_kept]
    bad_frames: (frame index, reason) for every dropped frame
    """

    tokens: torch.Tensor
    frames_total: int
    bad_frames: list[tuple[int, str]] = field(default_factory=list)
    trailing_tokens: int = 0  # ids after the last whole frame (dropped)
    ended_by: int | None = None  # the stream-end id that closed the audio, if any

    @property
    def frames_kept(self) -> int:
        return self.tokens.numel() // SLOTS_PER_FRAME

    @property
    def valid_fraction(self) -> float:
        return self.frames_kept / self.frames_total if self.frames_total else 0.0

    @property
    def ok(self) -> bool:
        return not self.bad_frames and self.trailing_tokens == 0


def validate_audio_tokens(ids: torch.Tensor | list[int], strict: bool = False) -> StreamReport:
    """Validate and repair a generated audio stream.

    ``ids`` is the audio region: everything after start_of_speech (if start_of_speech is present,
    the region starts after its first occurrence). The stream ends at the first stream-end id
    (end_of_speech, end_of_ai, pad or end_of_text); what follows is ignored.

    Repair policy (documented in docs/token-layout.md): the region is cut into 7-token frames by *position*;
    a frame with any id outside its slot's band is dropped whole, and later frames keep their
    positions, so one bad id never shifts the frames after it. A trailing partial frame is dropped.
    Every dropped frame is reported. ``strict=True`` raises ValueError instead of repairing.
    """
    ids = torch.as_tensor(ids).long().flatten()
    sos = (ids == START_OF_SPEECH_ID).nonzero()
    if len(sos):
        ids = ids[int(sos[0]) + 1 :]
    ended_by = None
    end = torch.isin(ids, torch.tensor(STREAM_END_IDS)).nonzero()
    if len(end):
        ended_by = int(ids[int(end[0])])
        ids = ids[: int(end[0])]
    n = ids.numel() // SLOTS_PER_FRAME
    trailing = ids.numel() - n * SLOTS_PER_FRAME
    frames = ids[: n * SLOTS_PER_FRAME].reshape(n, SLOTS_PER_FRAME)
    lo = AUDIO_OFFSET + CODEBOOK_SIZE * torch.arange(SLOTS_PER_FRAME)
    bad_slot = (frames < lo) | (frames >= lo + CODEBOOK_SIZE)  # [n, 7]
    bad_frames = []
    for i in bad_slot.any(dim=1).nonzero().flatten().tolist():
        s = int(bad_slot[i].nonzero()[0])
        bad_frames.append((i, f"slot {s} holds id {int(frames[i, s])}, outside {slot_band(s)}"))
    report = StreamReport(
        tokens=frames[~bad_slot.any(dim=1)].flatten(),
        frames_total=n,
        bad_frames=bad_frames,
        trailing_tokens=trailing,
        ended_by=ended_by,
    )
    if strict and not report.ok:
        problems = [f"frame {i}: {why}" for i, why in bad_frames[:5]]
        if trailing:
            problems.append(f"{trailing} trailing ids do not fill a frame")
        raise ValueError("malformed audio stream: " + "; ".join(problems))
    return report


def tts_prompt_ids(text_ids: list[int]) -> list[int]:
    """Orpheus prompt around already tokenised ``BOS + "voice: text"`` ids (BOS included).

    [start_of_human, *text_ids, end_of_text, end_of_human, start_of_ai, start_of_speech]
    """
    return [START_OF_HUMAN_ID, *text_ids, END_OF_TEXT_ID, END_OF_HUMAN_ID, START_OF_AI_ID, START_OF_SPEECH_ID]


def tts_row_ids(text_ids: list[int], audio_ids: list[int]) -> tuple[list[int], int]:
    """A whole Orpheus training row and its prompt length.

    [*tts_prompt_ids(text_ids), *audio_ids, end_of_speech, end_of_ai]
    """
    prompt = tts_prompt_ids(text_ids)
    return [*prompt, *audio_ids, END_OF_SPEECH_ID, END_OF_AI_ID], len(prompt)


def id_table() -> list[tuple[str, str]]:
    """(name, id or range) rows for the id table of docs/token-layout.md."""
    return [
        ("text (Llama-3)", f"0 .. {TEXT_VOCAB_SIZE - 1}"),
        ("begin_of_text (BOS)", str(BOS_ID)),
        ("end_of_text (eot_id)", str(END_OF_TEXT_ID)),
        ("start_of_speech", str(START_OF_SPEECH_ID)),
        ("end_of_speech", str(END_OF_SPEECH_ID)),
        ("start_of_human", str(START_OF_HUMAN_ID)),
        ("end_of_human", str(END_OF_HUMAN_ID)),
        ("start_of_ai", str(START_OF_AI_ID)),
        ("end_of_ai", str(END_OF_AI_ID)),
        ("pad", str(PAD_ID)),
        *[(f"audio slot {s} (SNAC level {SLOT_LEVELS[s]})", f"{slot_band(s)[0]} .. {slot_band(s)[1] - 1}")
          for s in range(SLOTS_PER_FRAME)],
        ("mask (diffusion)", str(MASK_ID)),
        ("unused padding row", str(VOCAB_SIZE - 1)),
    ]
