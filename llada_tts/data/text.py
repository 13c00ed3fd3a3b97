"""Text rows for mixed training: pretraining text (packed) and SFT conversations.

Pretraining JSONL, one document per line: ``{"text": "..."}`` (tokenised as BOS + text + EOS) or
``{"input_ids": [...]}`` (used as is). Documents are concatenated and cut into ``max_length``
chunks: rows ``{"input_ids", "prompt_length": 0, "kind": "text"}``.

SFT JSONL, one example per line: ``{"input_ids": [...], "prompt_length": n}``, or a conversation
``{"messages": [{"role", "content"}, ...]}`` / ``{"conversations": [{"from", "value"}, ...]}``
(ShareGPT; ``role``/``content`` keys are accepted there too) rendered with the tokenizer's chat
template. The prompt is everything before the last assistant turn's content (its header
included), so only the answer (and its end-of-turn token) is masked: rows ``{"input_ids",
"prompt_length", "kind": "sft"}``.

``path`` may be a .jsonl file, a folder of .jsonl files (read in name order) or a
``save_to_disk`` dataset folder with the same fields as columns.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audio_tokenizer import layout
from audio_tokenizer.text import encode_text

log = logging.getLogger(__name__)

ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "model": "assistant",
         "chatgpt": "assistant", "bard": "assistant", "system": "system"}
SFT_KEYS = ("messages", "conversations", "prompt_length")


def read_records(path: str | Path) -> Iterator[tuple[str, dict]]:
    """(where, record) for each JSONL line or dataset row; ``where`` names the file and line."""
    path = Path(path)
    if path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
        from llada_tts.data.tts import open_dataset

        for i, row in enumerate(open_dataset(path)):
            if "prompt_lengths" in row and "prompt_length" not in row:  # our TTS builder's column name
                row["prompt_length"] = row.pop("prompt_lengths")
            yield f"{path} row {i}", row
        return
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise ValueError(f"{path}: no such .jsonl file, folder of .jsonl files or save_to_disk dataset")
    for f in files:
        with open(f, encoding="utf-8") as fh:
            yield from jsonl_records(fh, str(f))


def jsonl_records(lines, where: str):
    """Yield ("WHERE line N", record) for each non-blank JSON-object line of ``lines``; ValueError
    naming the line for invalid JSON or a non-object."""
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where} line {n}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where} line {n}: expected a JSON object, got {type(record).__name__}")
        yield f"{where} line {n}", record


def checked_ids(ids, where: str) -> np.ndarray:
    """ids as int64 [N], or ValueError: not a non-empty list of ints, out of range, or the mask id."""
    arr = np.asarray(ids)
    if not isinstance(ids, (list, tuple, np.ndarray)) or arr.ndim != 1 or arr.size == 0 or (
            arr.dtype.kind not in "iu"):
        raise ValueError(f"{where}: input_ids must be a non-empty list of integers")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 0) | (arr >= layout.VOCAB_SIZE) | (arr == layout.MASK_ID))
    if len(bad):
        raise ValueError(f"{where}: input_ids position {int(bad[0])} holds {int(arr[bad[0]])}, which is "
                         f"outside 0..{layout.VOCAB_SIZE - 1} or the diffusion mask id {layout.MASK_ID}")
    return arr


def _need_tokenizer(tokenizer, where: str, what: str) -> None:
    if tokenizer is None:
        raise ValueError(f"{where}: {what} needs a tokenizer; pass one (or pre-tokenised input_ids)")


def pretrain_ids(record: dict, tokenizer, where: str, eos_id: int = layout.END_OF_TEXT_ID) -> np.ndarray:
    """One document's ids: BOS + text + EOS for ``{"text"}``, the ids for ``{"input_ids"}``."""
    if isinstance(record.get("text"), str):
        _need_tokenizer(tokenizer, where, "a 'text' record")
        return checked_ids(encode_text(tokenizer, record["text"]) + [eos_id], where)
    if "input_ids" in record:
        return checked_ids(record["input_ids"], where)
    raise ValueError(f"{where}: expected a 'text' string or an 'input_ids' list (keys: {', '.join(record)})")


def messages_of(record: dict, where: str) -> list[dict]:
    """Chat messages ``[{"role", "content"}]`` of a messages/conversations record, ending in an answer."""
    key = "messages" if "messages" in record else "conversations"
    turns = record.get(key)
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{where}: {key!r} must be a non-empty list of turns")
    messages = []
    for j, turn in enumerate(turns):
        role_key, text_key = ("from", "value") if isinstance(turn, dict) and "from" in turn else ("role", "content")
        if not isinstance(turn, dict) or not isinstance(turn.get(text_key), str) or role_key not in turn:
            raise ValueError(f"{where}: {key}[{j}] must be an object with {role_key!r} and a {text_key!r} string")
        role = ROLES.get(str(turn[role_key]).lower())
        if role is None:
            raise ValueError(f"{where}: {key}[{j}] has role {turn[role_key]!r}; expected one of {sorted(ROLES)}")
        messages.append({"role": role, "content": turn[text_key]})
    if messages[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the conversation must end with an assistant turn (the answer to learn)")
    return messages


def _template_ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        add_generation_prompt=add_generation_prompt)
    return list(out["input_ids"])


def sft_row(record: dict, tokenizer, where: str) -> tuple[np.ndarray, int]:
    """(ids [N], prompt_length) of one SFT record; the prompt ends where the last answer starts."""
    if "messages" in record or "conversations" in record:
        _need_tokenizer(tokenizer, where, "a conversation")
        messages = messages_of(record, where)
        full = _template_ids(tokenizer, messages, add_generation_prompt=False)
        prompt = _template_ids(tokenizer, messages[:-1], add_generation_prompt=True)
        if full[: len(prompt)] != prompt:
            raise ValueError(f"{where}: the chat template renders the prompt differently inside the whole "
                             "conversation, so the answer start cannot be found")
        ids, prompt_length = checked_ids(full, where), len(prompt)
    elif "input_ids" in record and "prompt_length" in record:
        ids, prompt_length = checked_ids(record["input_ids"], where), record["prompt_length"]
        if not isinstance(prompt_length, int) or isinstance(prompt_length, bool):
            raise ValueError(f"{where}: prompt_length must be an integer")
    else:
        raise ValueError(f"{where}: expected 'messages', 'conversations' or 'input_ids' + 'prompt_length' "
                         f"(keys: {', '.join(record)})")
    if not 0 <= prompt_length < len(ids):
        raise ValueError(f"{where}: prompt_length {prompt_length} for {len(ids)} ids leaves no answer")
    return ids, prompt_length


def _rows(chunks: list[np.ndarray], prompt_lengths: list[int], kind: str):
    import datasets
    import pyarrow as pa

    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    values = np.concatenate(chunks).astype(np.int32) if chunks else np.zeros(0, np.int32)
    ids = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))
    return datasets.Dataset.from_dict({"input_ids": ids, "prompt_length": np.asarray(prompt_lengths, np.int64),
                                       "kind": [kind] * len(chunks)})


def pack(docs: list[np.ndarray], max_length: int, drop_remainder: bool = False) -> list[np.ndarray]:
    """Concatenate documents and cut the stream into ``max_length`` chunks (last one shorter unless dropped)."""
    stream = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    n = len(stream) // max_length if drop_remainder else -(-len(stream) // max_length)
    return [stream[i * max_length:(i + 1) * max_length] for i in range(n)]


def load_pretrain_rows(path, tokenizer, max_length: int, eos_id: int = layout.END_OF_TEXT_ID,
                       drop_remainder: bool = False, progress: bool = True):
    """Packed pretraining rows ``{"input_ids", "prompt_length": 0, "kind": "text"}`` (a ``datasets.Dataset``)."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    docs = [pretrain_ids(r, tokenizer, where, eos_id)
            for where, r in tqdm(read_records(path), desc="tokenising text", unit=" docs", disable=not progress)]
    chunks = pack(docs, max_length, drop_remainder)
    if not chunks:
        raise ValueError(f"{path}: no text to train on" + (" (shorter than one max_length chunk)" if docs else ""))
    return _rows(chunks, [0] * len(chunks), "text")


def load_sft_rows(path, tokenizer, max_length: int, drop_long: bool = False, progress: bool = True):
    """SFT rows ``{"input_ids", "prompt_length", "kind": "sft"}``; rows over ``max_length`` raise or are dropped."""
    rows, prompts, dropped = [], [], 0
    for where, record in tqdm(read_records(path), desc="tokenising SFT", unit=" rows", disable=not progress):
        ids, prompt_length = sft_row(record, tokenizer, where)
        if len(ids) > max_length:
            if not drop_long:
                raise ValueError(f"{where}: {len(ids)} ids > max_length {max_length}; raise max_length or "
                                 "pass drop_long=True to leave such rows out")
            dropped += 1
            continue
        rows.append(ids)
        prompts.append(prompt_length)
    if dropped:
        log.warning("dropped %d of %d SFT rows longer than max_length %d", dropped, dropped + len(rows), max_length)
    if not rows:
        raise ValueError(f"{path}: no SFT rows to train on")
    return _rows(rows, prompts, "sft")


def detect_kind(path) -> str:
    """'sft' if the first record is a conversation or has a prompt_length, else 'text'."""
    for _, record in read_records(path):
        return "sft" if any(k in record for k in SFT_KEYS) else "text"
    raise ValueError(f"{path}: no records")


def load_text_rows(path, tokenizer, max_length: int, kind: str = "auto", drop_long: bool = False,
                   progress: bool = True):
    """Pretraining ('text') or SFT ('sft') rows from ``path``; ``kind='auto'`` looks at the first record."""
    kind = detect_kind(path) if kind == "auto" else kind
    if kind == "text":
        return load_pretrain_rows(path, tokenizer, max_length, progress=progress)
    if kind == "sft":
        return load_sft_rows(path, tokenizer, max_length, drop_long=drop_long, progress=progress)
    raise ValueError(f"kind must be 'auto', 'text' or 'sft', got {kind!r}")
