"""Training data: validated TTS rows, packed text / SFT rows, the TTS+text mixture and the collator.

Every row is ``{"input_ids": list[int], "prompt_length": int, "kind": "tts" | "text" | "sft"}``.
ShareGPT / Alpaca conversion lives in :mod:`llada_tts.data.convert` (also a CLI); tiny synthetic rows for
smoke runs, tests and benchmarks in :mod:`llada_tts.data.toy_data` (``python -m llada_tts.data.toy_data``).
"""
from llada_tts.data.collate import FILL, KINDS, collate, fill_positions, row_normalizer
from llada_tts.data.mixture import MixtureDataset, MixtureSampler
from llada_tts.data.text import load_pretrain_rows, load_sft_rows, load_text_rows, pack
from llada_tts.data.tts import load_tts_rows, open_dataset

__all__ = [
    "FILL", "KINDS", "MixtureDataset", "MixtureSampler", "collate", "fill_positions", "load_pretrain_rows",
    "load_sft_rows", "load_text_rows", "load_tts_rows", "open_dataset", "pack", "row_normalizer",
]
