"""Held-out text records for ``llada-tts score``: JSONL in, (prompt ids, scored ids, bytes) rows out.

    records = read_score_records("held_out.jsonl")          # or "-" (stdin); [(where, record)]
    rows = score_rows(records, tokenizer, chat=False)       # [{"where", "prompt", "answer", "bytes", "end_token"}]

Record kinds (the same tokenisation as training, ``llada_tts.data.text``):
    {"text": "..."}                         BOS given; the text + end_of_text scored (``pretrain_ids``)
    {"prompt": "...", "answer": "..."}      the answer scored after BOS + the prompt, as plain text; with
                                            ``chat`` it is the conversation {"messages": [user, assistant]}
    {"messages": [...]} / {"conversations": [...]}   the last assistant turn + end of turn (``sft_row``)
    {"input_ids": [...], "prompt_length": n}         pre-tokenised (no bytes)

``bytes`` counts the UTF-8 bytes of the scored text: the text, the answer, or the last assistant
turn as the chat template renders it (trimmed). ``end_token`` says whether the scored ids end with
an end-of-text / end-of-turn token that is scored too (text and conversation rows): its NLL is in
the row's bound but has no bytes (the probability that the text ends there), so bits per byte is
that token's share above a text-only figure.
"""
from __future__ import annotations

import sys

from audio_tokenizer.text import encode_text
from llada_tts.data.text import checked_ids, jsonl_records, messages_of, pretrain_ids, read_records, sft_row

RECORD_KINDS = "'text', 'prompt' + 'answer', 'messages', 'conversations' or 'input_ids'"


def read_score_records(path: str, stdin=None) -> list[tuple[str, dict]]:
    """[(where, record)] of a .jsonl file, a folder of them or a save_to_disk dataset (``read_records``),
    or of ``stdin`` for "-". ValueError (one line) for a missing file or a line that is not a JSON object."""
    if path != "-":
        try:
            return list(read_records(path))
        except ValueError as e:
            if "invalid JSON" not in str(e):
                raise
            raise ValueError(f"{e}; score reads JSONL: one object a line, e.g. {{\"text\": \"...\"}} or "
                             f"{{\"prompt\": \"...\", \"answer\": \"...\"}}") from None
    return list(jsonl_records(sys.stdin if stdin is None else stdin, "stdin"))


def chat_record(rec: dict) -> dict:
    """A prompt/answer record as the conversation it stands for: {"messages": [user, assistant]}."""
    return {"messages": [{"role": "user", "content": rec["prompt"]}, {"role": "assistant", "content": rec["answer"]}]}


def score_rows(records, tokenizer, chat: bool = False) -> list[dict]:
    """``{"where", "prompt", "answer", "bytes", "end_token"}`` per record (ids lists; bytes None when
    unknown). ``chat``: prompt/answer records go through the chat template exactly as the same data
    written as ``messages`` (the same ids, the same bytes). ValueError (one line, naming the record)."""
    rows = []
    for where, rec in records:
        if isinstance(rec.get("text"), str):
            ids = pretrain_ids({"text": rec["text"]}, tokenizer, where)  # BOS + text + end_of_text
            row = dict(prompt=ids[:1], answer=ids[1:], bytes=len(rec["text"].encode("utf-8")), end_token=True)
        elif isinstance(rec.get("prompt"), str) and isinstance(rec.get("answer"), str):
            if not rec["answer"]:
                raise ValueError(f"{where}: the answer is empty: nothing to score")
            if chat:
                row = _conversation_row(chat_record(rec), tokenizer, where)
            else:
                answer = tokenizer(rec["answer"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
                if not answer:
                    raise ValueError(f"{where}: the answer is empty: nothing to score")
                row = dict(prompt=checked_ids(encode_text(tokenizer, rec["prompt"]), where),
                           answer=checked_ids(answer, where), bytes=len(rec["answer"].encode("utf-8")),
                           end_token=False)
        elif "messages" in rec or "conversations" in rec:
            row = _conversation_row(rec, tokenizer, where)
        elif "input_ids" in rec:
            n = rec.get("prompt_length", 0)
            if not isinstance(n, int) or isinstance(n, bool):
                raise ValueError(f"{where}: prompt_length must be an integer")
            ids = checked_ids(rec["input_ids"], where)
            if not 0 <= n < len(ids):
                raise ValueError(f"{where}: prompt_length {n} for {len(ids)} ids leaves nothing to score")
            row = dict(prompt=ids[:n], answer=ids[n:], bytes=None, end_token=False)
        else:
            raise ValueError(f"{where}: expected {RECORD_KINDS} (keys: {', '.join(map(str, rec)) or 'none'})")
        rows.append(dict(where=where, **{k: v.tolist() if hasattr(v, "tolist") else v for k, v in row.items()}))
    if not rows:
        raise ValueError("no records to score: the input is empty")
    return rows


def _conversation_row(rec: dict, tokenizer, where: str) -> dict:
    """The last assistant turn (+ end of turn) after the rest of the conversation, as SFT trains it."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{where}: a conversation (or --chat) needs a chat template, and this checkpoint's "
                         "tokenizer has none")
    ids, n = sft_row(rec, tokenizer, where)
    content = messages_of(rec, where)[-1]["content"].strip()  # the template trims it
    return dict(prompt=ids[:n], answer=ids[n:], bytes=len(content.encode("utf-8")), end_token=True)
