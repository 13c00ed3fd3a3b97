"""Prompt batching: one or many prompts -> a left-padded [B, P] tensor and its padding mask."""
from __future__ import annotations

import torch


def _check_left_padded(mask: torch.Tensor) -> None:
    """Each row of a 0/1 mask [B, P] must be zeros then ones, with at least one 1."""
    if (mask.sum(dim=1) == 0).any():
        raise ValueError("a prompt is empty (its attention_mask row is all zeros): pass at least one token")
    if (mask[:, 1:] < mask[:, :-1]).any():
        raise ValueError("prompts must be left-padded (attention_mask rows like 0 0 1 1 1): the generated "
                         "region follows every prompt directly; re-pad on the left")


def left_pad(prompt_ids, attention_mask: torch.Tensor | None, mask_id: int,
             device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
    """(ids [B, P] int64, mask [B, P] int64 or None when nothing is padded).

    prompt_ids: [P] or [B, P] ids (left padding marked by ``attention_mask``), or a list of id
    lists of any lengths. Padding holds ``mask_id`` (a valid id for every mask predictor; padding is
    masked out of attention, so its value never matters). Real prompt tokens must not be ``mask_id``.
    """
    if isinstance(prompt_ids, (list, tuple)) and prompt_ids and isinstance(prompt_ids[0], (list, tuple, torch.Tensor)):
        if attention_mask is not None:
            raise ValueError("pass either a list of prompts (padded here) or a tensor with attention_mask, not both")
        rows = [torch.as_tensor(r, dtype=torch.long).flatten() for r in prompt_ids]
        width = max(r.numel() for r in rows)
        ids = torch.full((len(rows), width), mask_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            if r.numel():
                ids[j, width - r.numel():] = r
                attention_mask[j, width - r.numel():] = 1
    else:
        ids = torch.as_tensor(prompt_ids, dtype=torch.long)
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
            attention_mask = None if attention_mask is None else torch.as_tensor(attention_mask).reshape(1, -1)
        if ids.dim() != 2:
            raise ValueError(f"prompt_ids must be [P], [B, P] or a list of id lists, got shape {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ValueError("prompt is empty: pass at least one token (e.g. llada_tts.prompts.tts_prompt(...))")
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask, dtype=torch.long)
        if attention_mask.shape != ids.shape:
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != prompt shape {tuple(ids.shape)}")
        _check_left_padded(attention_mask)
        ids = ids.masked_fill(attention_mask == 0, mask_id)
        if bool(attention_mask.all()):
            attention_mask = None
    real = ids if attention_mask is None else ids[attention_mask.bool()]
    if (real == mask_id).any():
        raise ValueError(f"the prompt contains the mask id {mask_id}: prompts must be fully observed "
                         "(tokenise user text with split_special_tokens=True)")
    return ids.to(device), None if attention_mask is None else attention_mask.to(device)
