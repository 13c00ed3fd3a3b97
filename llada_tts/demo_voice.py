"""The demo voice shipped inside the package (``--model demo``, the default), and how it is exported.

``llada_tts/assets/demo_voice/`` is a compact-embedding checkpoint (``model.adapters``) in fp16:
config.json, model.safetensors, llada_tts.json and a README. It carries no tokenizer files: a
checkpoint whose embedding rows are exactly ``adapters.BYTE_ROWS`` was trained with the offline
byte-level tokenizer, which is rebuilt in code (:func:`needs_offline_tokenizer`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from llada_tts.checkpoint_meta import META_FILE
from llada_tts.model import adapters

DEMO_NAME = "demo"
DEMO_DIR = Path(__file__).resolve().parent / "assets" / "demo_voice"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def resolve(name: str) -> str:
    """``"demo"`` -> the shipped voice's folder (unless a local folder named ``demo`` exists); else ``name``."""
    if str(name) == DEMO_NAME and not Path(DEMO_NAME).is_dir():
        if not (DEMO_DIR / "config.json").is_file():
            raise FileNotFoundError(f"no demo voice ships in this installation yet (nothing at {DEMO_DIR})")
        return str(DEMO_DIR)
    return str(name)


def needs_offline_tokenizer(folder: str | Path) -> bool:
    """True for a local checkpoint without tokenizer files whose rows are the byte tokenizer's."""
    folder = Path(folder)
    if any((folder / f).is_file() for f in TOKENIZER_FILES) or not (folder / "config.json").is_file():
        return False
    try:
        rows = json.loads((folder / "config.json").read_text(encoding="utf-8")).get(adapters.ROWS_KEY)
    except (OSError, ValueError):
        return False
    return adapters.uses_byte_rows(rows)


def export_voice(checkpoint: str | Path, out_dir: str | Path, readme: str | None = None,
                 sampler: dict | None = None) -> Path:
    """Write ``checkpoint`` (a trained compact-embedding model) as an fp16 voice folder at ``out_dir``.

    The weights stay compact (no unused rows) and tied; the tokenizer is left out when the offline
    byte tokenizer can rebuild it. ``sampler``: default sampler options recorded in its
    ``llada_tts.json`` (checked first). Written atomically (``save_model``); returns the folder.
    """
    from llada_tts.checkpoint_meta import read_meta
    from llada_tts.model import load_model, save_model
    from llada_tts.synthesis.defaults import check_sampler_options

    checkpoint = Path(checkpoint)
    meta = read_meta(checkpoint)
    if sampler:
        check_sampler_options(dict(sampler))
        meta.sampler = dict(sampler)
    model = load_model(checkpoint, dtype=torch.float32, expand=False).to(torch.float16)
    extra = {META_FILE: meta.to_json()} if (checkpoint / META_FILE).is_file() or sampler else {}
    if readme:
        extra["README.md"] = readme
    out = save_model(model, out_dir, extra_files=extra)
    if not adapters.uses_byte_rows(getattr(model.config, adapters.ROWS_KEY, None)):
        for name in TOKENIZER_FILES + ("chat_template.jinja", "special_tokens_map.json"):
            if (checkpoint / name).is_file():
                shutil.copy2(checkpoint / name, out / name)
    return out
