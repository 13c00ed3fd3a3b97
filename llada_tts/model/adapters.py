"""Three options that keep the checkpoint a stock Llama: compact embeddings, frame-phase masks and
shifted prediction.

All travel in ``config.json`` as extra keys (a plain ``LlamaConfig`` keeps unknown keys), and
:func:`install` (called by ``create_model``, ``load_model`` and :func:`set_shift`) turns them into
hooks on the decoder stack (``model.model``), so every caller (trainer, sampler, KV caches, scorers)
sees the same transformation without knowing about it.

``"llada_rows": [[0, 256], [128000, 156940]]``  compact embeddings
    The embedding matrix holds only these ids, in order (K rows instead of 156,940). A fresh model
    with the offline byte tokenizer uses ~29k rows: for hidden 256 that is 7.5M parameters instead
    of 40M, in the checkpoint and in AdamW's state. Inputs are full (Orpheus) ids; the hook maps
    them to rows. ``load_model`` expands such a checkpoint back to the full vocabulary for
    inference (unused rows are zero), so samplers and scorers index logits by Orpheus ids as usual.

``"llada_slot_masks": [128011, ..., 128017]``  frame phase for masked positions
    Every masked position looks the same to a plain mask predictor, so it has to work out the
    7-slot SNAC phase of a masked audio position from relative distances. Here a mask at position
    p is fed as ``slot_masks[p % 7]`` (seven Llama-3 reserved special tokens), and TTS prompts are
    padded at the front to a multiple of 7 tokens (:func:`align_prompt`), so position p of the
    audio region is slot ``p % 7``. The sampler still writes the one diffusion mask id; only the
    model's input changes. Positions come from ``position_ids`` (or the cache offset), so block
    and KV-cached calls get the same phase as full ones.

``"llada_frame_phones": [128028, 128153]``  frame-aligned phonemes (the ``espeak-frames`` front end)
    The prompt holds one phoneme token per codec frame (ids in ``[lo, hi)``, eSpeak NG's phoneme
    timeline sampled at frame centres: ``audio_tokenizer.frames``). Finding which prompt token an
    audio position speaks is the slowest thing a small TTS model learns; here the hook adds the
    embedding of frame i's phoneme token to the input of every position of audio frame i, so the
    alignment is given. Frame i of a row starts at the position after its start_of_speech. A call
    that starts at position 0 reads the prompts from its own ids and remembers them; a KV-cached call
    (it starts later) uses the ones remembered by the last full call of the same batch size.

``"llada_phones_per_frame": 4``  finer timelines (the ``espeak-quarters`` front end; absent = 1)
    The prompt holds d phoneme tokens per frame, sampled at the centres of the frame's d equal parts.
    Each audio position gets the mean of the phonemes its own SNAC code spans, weighted by overlap
    (:func:`slot_weights`): slot 0 (one code per frame) all d, slots 1 and 4 (two per frame) their
    half, the four finest codes their own quarter. At d = 1 this is the frame phoneme above.

``"llada_shift_logits": true``  shifted prediction (AR-to-diffusion adaptation)
    An autoregressive checkpoint's head reads position i-1 to predict token i. A forward hook on
    the decoder stack moves every hidden state one position right (position 0 keeps its own), so
    the logits at position i come from position i-1, as the AR head was trained, and every loss,
    sampler and scorer that indexes logits by the target position stays unchanged. The one caller
    that must know is a KV-cached step that recomputes only some columns: it also recomputes the
    column before them (``HFRunner``).
"""
from __future__ import annotations

import functools
import logging

import torch

from audio_tokenizer import layout as L

ROWS_KEY = "llada_rows"
SLOT_MASKS_KEY = "llada_slot_masks"
SHIFT_KEY = "llada_shift_logits"
FRAMES_KEY = "llada_frame_phones"
PER_FRAME_KEY = "llada_phones_per_frame"
SLOT_MASK_IDS = tuple(range(128011, 128011 + L.SLOTS_PER_FRAME))  # <|reserved_special_token_3..9|>
FILLER_ID = 128004  # <|finetune_right_pad_id|>: front padding that aligns a prompt to whole frames
# Rows a fresh model with the offline byte tokenizer uses: bytes, Llama-3 specials + Orpheus control
# tokens, the 7 x 4096 audio codes, the mask and the unused last row.
BYTE_ROWS = ((0, 256), (L.BOS_ID, L.VOCAB_SIZE))
COMPACT_BYTE_ROWS = 256 + L.VOCAB_SIZE - L.BOS_ID  # 29196


class _CompactIdsNote(logging.Filter):
    """Drop transformers' warning that a compact config's special ids (full Orpheus ids by design,
    mapped to rows by the input hook) lie outside its vocab_size; other warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Model config:") and "must be `None` or an integer within the vocabulary"
                    in msg and f"and {COMPACT_BYTE_ROWS - 1})" in msg)


logging.getLogger("transformers.configuration_utils").addFilter(_CompactIdsNote())


def row_ids(ranges) -> torch.Tensor:
    """[K] int64: the full ids held by the compact embedding rows, in row order."""
    parts = []
    for lo, hi in ranges:
        if not 0 <= lo < hi <= L.VOCAB_SIZE:
            raise ValueError(f"{ROWS_KEY}: range [{lo}, {hi}) is not inside [0, {L.VOCAB_SIZE})")
        parts.append(torch.arange(lo, hi))
    ids = torch.cat(parts)
    if bool((ids[1:] <= ids[:-1]).any()):
        raise ValueError(f"{ROWS_KEY}: ranges must be sorted and disjoint, got {ranges}")
    return ids


def row_lookup(ranges) -> torch.Tensor:
    """[VOCAB_SIZE] int64: the row of each full id, -1 where the compact model has none."""
    lut = torch.full((L.VOCAB_SIZE,), -1, dtype=torch.long)
    ids = row_ids(ranges)
    lut[ids] = torch.arange(len(ids))
    return lut


def to_rows(ids: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Full ids [...] -> compact rows [...]; ValueError naming an id that has no row."""
    rows = lut.to(ids.device)[ids.clamp(0, L.VOCAB_SIZE - 1)]
    bad = (rows < 0) | (ids < 0) | (ids >= L.VOCAB_SIZE)
    if bool(bad.any()):
        raise ValueError(f"id {int(ids[bad][0])} has no embedding row in this compact model "
                         f"({ROWS_KEY} covers other ids)")
    return rows


def phase_masks(input_ids: torch.Tensor, positions: torch.Tensor, mask_id: int, slot_mask_ids) -> torch.Tensor:
    """input_ids [B, n] with each ``mask_id`` at position p replaced by ``slot_mask_ids[p % 7]``.

    positions [B, n] or [1, n] (rotary positions of the same tokens). Pure; returns a new tensor.
    """
    table = torch.as_tensor(slot_mask_ids, device=input_ids.device)  # [7]
    slot_ids = table[positions.to(input_ids.device).long() % len(table)].expand_as(input_ids)  # [B, n]
    return torch.where(input_ids == mask_id, slot_ids, input_ids)


def frame_table(input_ids: torch.Tensor, positions: torch.Tensor, lo: int,
                hi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(phones [B, F] int64, audio_start [B] int64) of each row of ``input_ids`` [B, n].

    phones[b, i] is row b's i-th prompt token with an id in ``[lo, hi)`` before its first
    start_of_speech (-1 past the row's count); audio_start[b] is the rotary position after that
    start_of_speech (``positions`` [B or 1, n]; -1 for a row without one: no conditioning).
    """
    sos = input_ids == L.START_OF_SPEECH_ID  # [B, n]
    has = sos.any(dim=1)  # [B]
    first = torch.where(has, sos.int().argmax(dim=1), torch.full_like(has, input_ids.shape[1], dtype=torch.long))
    col = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]  # [1, n]
    is_phone = (input_ids >= lo) & (input_ids < hi) & (col < first[:, None]) & has[:, None]  # [B, n]
    count = is_phone.sum(dim=1)  # [B]
    width = max(int(count.max()) if count.numel() else 0, 1)
    phones = torch.full((input_ids.shape[0], width), -1, dtype=torch.long, device=input_ids.device)
    rank = is_phone.long().cumsum(dim=1) - 1  # [B, n] index of each phone token in its row
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(input_ids)
    phones[rows[is_phone], rank[is_phone]] = input_ids[is_phone].long()
    pos = positions.to(input_ids.device).long().expand(input_ids.shape[0], -1)  # [B, n]
    sos_pos = pos.gather(1, first.clamp(max=input_ids.shape[1] - 1)[:, None])[:, 0]  # [B]
    start = torch.where(has, sos_pos + 1, torch.full_like(first, -1))
    return phones, start


@functools.lru_cache(maxsize=8)
def slot_weights(per_frame: int) -> torch.Tensor:
    """[7, per_frame] float: the share of slot s's time span that part q of its frame covers.

    SNAC slot s codes the span [k / 2^l, (k + 1) / 2^l) of its frame (l = its level, k = its index
    among the frame's codes of that level); part q is [q / d, (q + 1) / d). Rows sum to 1. Cached
    (every forward pass of a frame model reads it): callers index it, never write to it. Made outside
    inference mode even when first asked for inside it (sampling), so training can use it later."""
    weights = [[0.0] * per_frame for _ in range(L.SLOTS_PER_FRAME)]
    seen: dict[int, int] = {}
    for slot, level in enumerate(L.SLOT_LEVELS):
        k = seen[level] = seen.get(level, -1) + 1
        a, b = k / 2 ** level, (k + 1) / 2 ** level
        for q in range(per_frame):
            weights[slot][q] = max(0.0, min(b, (q + 1) / per_frame) - max(a, q / per_frame)) / (b - a)
    with torch.inference_mode(False):
        return torch.tensor(weights)


def phones_per_frame(config) -> int:
    """Phoneme tokens per frame in a frame-conditioned model's prompts (``llada_phones_per_frame``, else 1)."""
    return int(getattr(config, PER_FRAME_KEY, None) or 1)


def frame_condition(phones: torch.Tensor, start: torch.Tensor, positions: torch.Tensor,
                    per_frame: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond [B, n, d] int64, weight [B, n, d] float): the phone ids whose embeddings each position
    gets (-1 none) and their weights (0 for none), d = ``per_frame``.

    phones [B, d*F], start [B] (from :func:`frame_table`, as positions); positions [B or 1, n].
    Position p of row b is slot (p - start[b]) % 7 of frame f = (p - start[b]) // 7, and reads
    phones[b, d*f : d*f + d] with that slot's :func:`slot_weights`.
    """
    pos = positions.to(phones.device).long().expand(phones.shape[0], -1)  # [B, n]
    rel = pos - start[:, None]  # [B, n]
    frame = torch.div(rel, L.SLOTS_PER_FRAME, rounding_mode="floor")  # [B, n]
    idx = frame[..., None] * per_frame + torch.arange(per_frame, device=phones.device)  # [B, n, d]
    ok = (start[:, None, None] >= 0) & (idx >= 0) & (idx < phones.shape[1])
    cond = phones.gather(1, idx.clamp(0, phones.shape[1] - 1).flatten(1)).view_as(idx)  # [B, n, d]
    cond = torch.where(ok, cond, torch.full_like(cond, -1))
    weight = slot_weights(per_frame).to(phones.device)[rel.remainder(L.SLOTS_PER_FRAME)]  # [B, n, d]
    return cond, torch.where(cond >= 0, weight, torch.zeros_like(weight))


def align_prompt(ids: list[int], prompt_length: int, multiple: int = L.SLOTS_PER_FRAME) -> tuple[list[int], int]:
    """(ids, prompt_length) with FILLER_ID tokens in front so the prompt is a multiple of ``multiple``."""
    pad = -prompt_length % multiple
    return [FILLER_ID] * pad + list(ids), prompt_length + pad


def prompt_multiple(config) -> int:
    """7 when the model uses frame-phase masks (its TTS prompts must be frame-aligned), else 1."""
    return L.SLOTS_PER_FRAME if getattr(config, SLOT_MASKS_KEY, None) else 1


def compact_config(config, ranges=BYTE_ROWS):
    """``config`` made compact in place: vocab_size = number of rows, the ranges recorded."""
    setattr(config, ROWS_KEY, [list(r) for r in ranges])
    config.vocab_size = len(row_ids(ranges))
    config.pad_token_id = None  # a full id is no row index here; expand_rows restores it
    return config


def _positions(input_ids: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """[B or 1, n] rotary positions the decoder will use for ``input_ids`` (its own rule when None)."""
    pos = kwargs.get("position_ids")
    if pos is not None:
        return pos
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    past = cache.get_seq_length() if cache is not None else 0
    return (torch.arange(input_ids.shape[1], device=input_ids.device) + past)[None]


def _pre_hook(module, args, kwargs):
    config = module.config
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        return None
    slot_masks = getattr(config, SLOT_MASKS_KEY, None)
    if slot_masks:
        ids = phase_masks(ids, _positions(ids, kwargs), getattr(config, "mask_token_id", L.MASK_ID), slot_masks)
    lut = getattr(module, "_llada_row_lookup", None)
    frames = getattr(config, FRAMES_KEY, None)
    cond = _frame_ids(module, ids, kwargs, frames) if frames else None
    if lut is not None:
        ids = to_rows(ids, lut)
    extra = {}
    if cond is not None:  # the decoder takes the summed embeddings instead of ids
        ids, extra = None, {"inputs_embeds": _conditioned_embeddings(module, ids, *cond, lut)}
    if "input_ids" in kwargs or not args:
        kwargs = {**kwargs, "input_ids": ids, **extra}
    else:
        args, kwargs = (ids, *args[1:]), {**kwargs, **extra}
    return args, kwargs


def _frame_ids(module, ids: torch.Tensor, kwargs: dict, frames) -> tuple[torch.Tensor, torch.Tensor]:
    """(phone ids [B, n, d], weights [B, n, d]) to add at each position (:func:`frame_condition`),
    from this call's prompts or remembered ones."""
    positions = _positions(ids, kwargs)
    if int(positions.min()) == 0:
        module._llada_frames = frame_table(ids, positions, int(frames[0]), int(frames[1]))
    table = getattr(module, "_llada_frames", None)
    if table is None or table[0].shape[0] != ids.shape[0]:
        raise ValueError("a frame-conditioned model's cached call needs a full call of the same batch first "
                         f"(it reads the phone tokens of the prompts; {FRAMES_KEY})")
    return frame_condition(*table, positions, phones_per_frame(module.config))


def _conditioned_embeddings(module, rows: torch.Tensor, cond: torch.Tensor, weight: torch.Tensor,
                            lut) -> torch.Tensor:
    """embed(rows) + sum_q weight[..., q] * embed(cond[..., q]) (cond < 0 has weight 0): [B, n, H]."""
    embed = module.embed_tokens
    cond_ids = cond.clamp(min=0)  # [B, n, d]
    cond_rows = to_rows(cond_ids, lut) if lut is not None else cond_ids
    extra = (embed(cond_rows) * weight[..., None].to(embed.weight.dtype)).sum(dim=2)  # [B, n, H]
    return embed(rows) + extra


def shift_right(hidden: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, H] -> [B, T, H] with position i holding position i-1's state (position 0 its own)."""
    return torch.cat([hidden[:, :1], hidden[:, :-1]], dim=1)


def _shift_hook(module, args, output):
    output.last_hidden_state = shift_right(output.last_hidden_state)
    return output


def shifts(model_or_config) -> bool:
    """True when the model predicts token i from position i-1 (``llada_shift_logits``)."""
    config = getattr(getattr(model_or_config, "module", model_or_config), "config", model_or_config)
    return bool(getattr(config, SHIFT_KEY, False))


def set_shift(model, on: bool = True) -> torch.nn.Module:
    """Record shifted prediction in ``model``'s config and install (or remove) its hook."""
    setattr(model.config, SHIFT_KEY, bool(on))
    body = model.model
    hook = getattr(body, "_llada_shift_hook", None)
    if hook is not None and not on:
        hook.remove()
        body._llada_shift_hook = None
    return install(model)


def install(model) -> torch.nn.Module:
    """Register the hooks ``model``'s config asks for on ``model.model`` (idempotent)."""
    body = getattr(model, "model", None)
    if body is None:
        return model
    config = model.config
    if shifts(config) and getattr(body, "_llada_shift_hook", None) is None:
        body._llada_shift_hook = body.register_forward_hook(_shift_hook)
    if getattr(body, "_llada_hook", None) is not None:
        return model
    ranges = getattr(config, ROWS_KEY, None)
    body._llada_row_lookup = row_lookup(ranges) if ranges else None
    body._llada_row_ids = row_ids(ranges) if ranges else None
    if ranges or getattr(config, SLOT_MASKS_KEY, None) or getattr(config, FRAMES_KEY, None):
        body._llada_hook = body.register_forward_pre_hook(_pre_hook, with_kwargs=True)
    return model


def is_compact(model_or_config) -> bool:
    config = getattr(model_or_config, "config", model_or_config)
    return bool(getattr(config, ROWS_KEY, None))


def row_lookup_of(model) -> torch.Tensor | None:
    """The installed full-id -> row table of a compact model (None for a full-vocabulary one)."""
    body = getattr(model, "module", model).model
    return getattr(body, "_llada_row_lookup", None)


def ids_of_rows(model, rows: torch.Tensor) -> torch.Tensor:
    """Head rows -> full ids: the inverse of the installed table (the identity for a full-vocabulary model)."""
    ids = getattr(getattr(model, "module", model).model, "_llada_row_ids", None)
    return rows if ids is None else ids.to(rows.device)[rows]


def uses_byte_rows(ranges) -> bool:
    """True when ``ranges`` (a config's ``llada_rows``) are exactly the offline byte tokenizer's rows."""
    return ranges == [list(r) for r in BYTE_ROWS]


UNUSED_LOGIT = -1e4  # an expanded compact model's logit for ids it has no row for (exp() is 0 in fp16 too)


@torch.no_grad()
def expand_rows(model) -> torch.nn.Module:
    """A compact model made full-vocabulary in place: row k moves to its Orpheus id, other rows are 0.

    Tied or untied heads alike; afterwards the config has no ``llada_rows`` and inputs/logits are
    indexed by full ids directly. The head gets a bias (a non-persistent buffer: checkpoints stay
    stock Llama) of 0 on the kept ids and :data:`UNUSED_LOGIT` elsewhere, so the softmax is the
    compact model's: ids it never had get probability 0, not the share a logit of 0 would take. (A
    finite value, so guidance's ``cond - uncond`` stays 0 there instead of NaN.)
    """
    ranges = getattr(model.config, ROWS_KEY, None)
    if not ranges:
        return model
    ids = row_ids(ranges)
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight

    def grow(weight):
        full = weight.new_zeros((L.VOCAB_SIZE, weight.shape[1]))
        full[ids.to(weight.device)] = weight
        return torch.nn.Parameter(full, requires_grad=weight.requires_grad)

    embed.weight = grow(embed.weight)
    embed.num_embeddings = L.VOCAB_SIZE
    if head is not None:
        head.weight = embed.weight if tied else grow(head.weight)
        head.out_features = L.VOCAB_SIZE
        bias = head.weight.new_full((L.VOCAB_SIZE,), UNUSED_LOGIT)
        old = getattr(head, "bias", None)
        bias[ids.to(bias.device)] = 0.0 if old is None else old.detach()
        if "bias" in head._parameters:
            del head._parameters["bias"]
        head.register_buffer("bias", bias, persistent=False)
    model.config.vocab_size = L.VOCAB_SIZE
    model.config.pad_token_id = L.PAD_ID
    delattr(model.config, ROWS_KEY)
    model.model._llada_row_lookup = model.model._llada_row_ids = None
    return model
