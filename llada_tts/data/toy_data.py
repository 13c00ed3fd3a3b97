"""Tiny synthetic training data for smoke runs, tests and benchmarks (no audio, no download).

    python -m llada_tts.data.toy_data outputs/tiny      # what recipes/configs/*tiny*.yaml read

TTS rows are real Orpheus-layout rows (prompt from the offline tokenizer, whole SNAC frames,
end_of_speech, end_of_ai) whose audio codes come from a small alphabet, so a tiny model can
visibly learn them in a few dozen steps. Text is short repetitive English.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audio_tokenizer import layout as L
from llada_tts.prompts import tts_row

SENTENCES = ["the cat sat on the mat.", "a dog ran in the park.", "we like to read books.",
             "it is a sunny day.", "she sings a song.", "he drinks warm tea."]
VOICES = ["tara", "leo"]


def toy_tts_rows(tokenizer, n_rows: int = 32, frames: int = 6, codes: int = 4, seed: int = 0,
                 texts: list[str] | None = None, voices: list[str] | None = None) -> dict[str, list]:
    """Columns of ``n_rows`` TTS rows: input_ids, prompt_lengths, attention_mask, data_type, voice, text.

    Frame codes are drawn from ``0 .. codes-1`` per slot (``codes=4096`` for realistic random audio);
    row i says ``texts[i % len(texts)]`` in voice ``voices[i % len(voices)]``.
    """
    texts, voices = texts or SENTENCES, voices or VOICES
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("input_ids", "prompt_lengths", "attention_mask", "data_type",
                                              "voice", "text")}
    for i in range(n_rows):
        text, voice = texts[i % len(texts)], voices[i % len(voices)]
        n = int(frames)
        l0, l1, l2 = (rng.integers(0, codes, size=m * n) for m in (1, 2, 4))
        audio = L.codes_to_tokens((l0, l1, l2)).tolist()
        ids, prompt_length = tts_row(tokenizer, text, audio, voice=voice)
        for key, value in (("input_ids", ids), ("prompt_lengths", prompt_length), ("attention_mask", [1] * len(ids)),
                           ("data_type", "tts"), ("voice", voice), ("text", text)):
            cols[key].append(value)
    return cols


def write_toy_tts(out_dir: str | Path, tokenizer, **kwargs) -> Path:
    """Save :func:`toy_tts_rows` as a ``datasets.save_to_disk`` folder."""
    import datasets

    out = Path(out_dir)
    datasets.Dataset.from_dict(toy_tts_rows(tokenizer, **kwargs)).save_to_disk(str(out))
    return out


def write_toy_text(path: str | Path, n_docs: int = 24) -> Path:
    """Pretraining JSONL: ``{"text": ...}`` documents of a few sentences each."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"text": " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(3))})
             for i in range(n_docs)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_toy_sft(path: str | Path, n_rows: int = 24) -> Path:
    """SFT JSONL in both conversation spellings (role/content and ShareGPT from/value)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n_rows):
        q, a = f"say sentence {i % len(SENTENCES)}", SENTENCES[i % len(SENTENCES)]
        if i % 2:
            rec = {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        else:
            rec = {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_all(out_dir: str | Path, n_rows: int = 32, frames: int = 6) -> dict[str, Path]:
    """tts/ (save_to_disk), text.jsonl and sft.jsonl under ``out_dir``."""
    from llada_tts.vocab import build_offline_tokenizer

    out = Path(out_dir)
    tok = build_offline_tokenizer()
    return {"tts": write_toy_tts(out / "tts", tok, n_rows=n_rows, frames=frames),
            "text": write_toy_text(out / "text.jsonl"), "sft": write_toy_sft(out / "sft.jsonl")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llada_tts.data.toy_data",
                                     description="Write a tiny synthetic TTS dataset, pretraining JSONL and SFT "
                                                 "JSONL for smoke runs (recipes/configs/*tiny*.yaml).")
    parser.add_argument("out_dir", nargs="?", default="outputs/tiny")
    parser.add_argument("--rows", type=int, default=32, help="TTS rows")
    parser.add_argument("--frames", type=int, default=6, help="SNAC frames (7 tokens each) per TTS row")
    args = parser.parse_args(argv)
    for name, path in write_all(args.out_dir, args.rows, args.frames).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
