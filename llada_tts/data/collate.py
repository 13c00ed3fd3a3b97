"""Rows -> a padded batch of tensors for masked-diffusion training.

A row is ``{"input_ids": list[int], "prompt_length": int, "kind": "tts" | "text" | "sft"}``.
Rows are padded on the right to the batch's longest row with their kind's fill token: pad
(128263) for TTS, end_of_text (128009) for text and SFT. The fill is *content*, not padding: it
is maskable and trained, as in LLaDA SFT, so the model learns where speech and answers end. Hence
``attention_mask`` is all ones.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from audio_tokenizer import layout

KINDS = {"text": 0, "sft": 1, "tts": 2}  # kind name -> id in the batch's ``kind`` tensor
FILL = {"text": layout.END_OF_TEXT_ID, "sft": layout.END_OF_TEXT_ID, "tts": layout.PAD_ID}


def _check_row(i: int, row: dict) -> tuple[list[int], int, str]:
    try:
        ids, prompt_length, kind = row["input_ids"], int(row["prompt_length"]), row["kind"]
    except KeyError as e:
        raise ValueError(f"row {i} has no {e.args[0]!r}: rows need input_ids, prompt_length and kind") from e
    if kind not in KINDS:
        raise ValueError(f"row {i} has kind {kind!r}; expected one of {sorted(KINDS)}")
    if len(ids) == 0:
        raise ValueError(f"row {i} has no input_ids")
    if kind == "text" and prompt_length != 0:
        raise ValueError(f"row {i} is kind 'text' with prompt_length {prompt_length}; text rows have no "
                         "prompt (use kind 'sft' for prompt/answer rows)")
    if kind != "text" and not 0 <= prompt_length < len(ids):
        raise ValueError(f"row {i} ({kind}) has prompt_length {prompt_length} for {len(ids)} ids; it must "
                         "leave at least one answer token")
    return ids, prompt_length, kind


def collate(rows: Sequence[dict], pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad ``rows`` into a batch.

    Returns ``input_ids`` [B, L] long, ``attention_mask`` [B, L] long (all ones),
    ``prompt_lengths`` [B] long, ``maskable`` [B, L] bool (position >= prompt_length),
    ``normalizer`` [B] float32 (L for text: LLaDA pretraining's B*L; L - prompt_length for sft and
    tts: LLaDA SFT's answer length, fill included) and ``kind`` [B] long (text 0, sft 1, tts 2).
    L is the longest row, rounded up to a multiple of ``pad_to_multiple_of`` when given.
    """
    if not rows:
        raise ValueError("cannot collate an empty batch")
    if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
        raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
    checked = [_check_row(i, r) for i, r in enumerate(rows)]
    length = max(len(ids) for ids, _, _ in checked)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    b = len(checked)
    input_ids = torch.empty((b, length), dtype=torch.long)  # [B, L]
    for i, (ids, _, kind) in enumerate(checked):
        n = len(ids)
        input_ids[i, :n] = torch.as_tensor(ids, dtype=torch.long)
        input_ids[i, n:] = FILL[kind]
    prompt_lengths = torch.tensor([p for _, p, _ in checked], dtype=torch.long)  # [B]
    kind = torch.tensor([KINDS[k] for _, _, k in checked], dtype=torch.long)  # [B]
    is_text = kind == KINDS["text"]
    normalizer = torch.where(is_text, torch.full((b,), float(length)), (length - prompt_lengths).float())
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones((b, length), dtype=torch.long),
        "prompt_lengths": prompt_lengths,
        "maskable": torch.arange(length)[None, :] >= prompt_lengths[:, None],  # [B, L]
        "normalizer": normalizer.to(torch.float32),  # [B]
        "kind": kind,
    }
