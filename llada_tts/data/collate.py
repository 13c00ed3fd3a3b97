"""Rows -> a padded batch of tensors for masked-diffusion training.

A row is ``{"input_ids": list[int], "prompt_length": int, "kind": "tts" | "text" | "sft"}``.
Each row is filled on the right with its kind's fill token, pad (128263) for TTS and end_of_text
(128009) for text and SFT, up to the longest row *of its own kind* in the batch. That fill is
*content*, not padding: it is maskable and trained, as in LLaDA SFT, so the model learns where
speech and answers end. Past its kind's length (when the batch mixes kinds) a row is padding:
``attention_mask`` 0, never masked, not in the normaliser. So a row's loss weight and what it
attends to never depend on rows of another kind (the trainer's batches hold one kind anyway, see
``llada_tts.data.mixture``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from audio_tokenizer import layout
from llada_tts.diffusion import crop_normalizer

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


def _round_up(n: int, multiple: int | None) -> int:
    return -(-n // multiple) * multiple if multiple else n


def collate(rows: Sequence[dict], pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad ``rows`` into a batch.

    Returns ``input_ids`` [B, L] long, ``attention_mask`` [B, L] long (1 up to the row's kind
    length: the longest row of its kind, rounded up to a multiple of ``pad_to_multiple_of`` when
    given), ``prompt_lengths`` [B] long, ``lengths`` [B] long (the row's own ids; fill follows),
    ``maskable`` [B, L] bool (attended and >= prompt_length), ``normalizer`` [B] float32 (the kind
    length for text: LLaDA pretraining's B*L; kind length - prompt_length for sft and tts: LLaDA
    SFT's answer length, fill included) and ``kind`` [B] long (text 0, sft 1, tts 2). L is the
    longest kind length.
    """
    if not rows:
        raise ValueError("cannot collate an empty batch")
    if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
        raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
    checked = [_check_row(i, r) for i, r in enumerate(rows)]
    kind_length = {}  # kind -> longest row of that kind, rounded up
    for ids, _, kind in checked:
        kind_length[kind] = max(kind_length.get(kind, 0), _round_up(len(ids), pad_to_multiple_of))
    length = max(kind_length.values())
    b = len(checked)
    input_ids = torch.empty((b, length), dtype=torch.long)  # [B, L]
    for i, (ids, _, kind) in enumerate(checked):
        input_ids[i, :len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        input_ids[i, len(ids):] = FILL[kind]
    prompt_lengths = torch.tensor([p for _, p, _ in checked], dtype=torch.long)  # [B]
    kind = torch.tensor([KINDS[k] for _, _, k in checked], dtype=torch.long)  # [B]
    attended = torch.tensor([kind_length[k] for _, _, k in checked], dtype=torch.long)  # [B]
    attention_mask = (torch.arange(length)[None, :] < attended[:, None]).long()  # [B, L]
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "prompt_lengths": prompt_lengths,
        "lengths": torch.tensor([len(ids) for ids, _, _ in checked], dtype=torch.long),
        "maskable": attention_mask.bool() & (torch.arange(length)[None, :] >= prompt_lengths[:, None]),  # [B, L]
        "normalizer": row_normalizer(attention_mask, prompt_lengths, kind),  # [B]
        "kind": kind,
    }


def row_normalizer(attention_mask: torch.Tensor, prompt_lengths: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """Loss normaliser [B] float32 of each row from its attended length (attention_mask [B, L]):
    that length for pretraining text, that length minus the prompt for sft and tts."""
    return crop_normalizer(prompt_lengths, kind == KINDS["text"], attention_mask.sum(dim=1))


def fill_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, L] bool: the trained fill of each row (attended positions past the row's own ids)."""
    pos = torch.arange(batch["input_ids"].shape[1], device=batch["input_ids"].device)[None, :]  # [1, L]
    return batch["attention_mask"].bool() & (pos >= batch["lengths"][:, None])
