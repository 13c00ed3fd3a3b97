"""The spellings of earlier configs that are no fields of :class:`~llada_tts.training.config.TrainConfig`,
read so that the files users already have keep loading (and the runs they saved keep resuming):

* aliases (:data:`ALIASES`): ``output_dir`` = ``save_folder``, ``model_name_or_path`` = ``model_name`` ...;
* ``{"pretraining" | "sft" | "tts": {...}}`` wrappers of the earlier scripts (:func:`unwrap_section`);
* ``num_audio_tokens`` / ``num_special_tokens`` (:data:`FIXED_KEYS`): they only restated the layout, so
  their one value is dropped and any other is an error;
* ``warmup_ratio`` / ``warmup_steps`` / ``warmup_epochs``: the one ``warmup`` setting
  (:mod:`llada_tts.training.warmup`). Each source (the file, the command line) gives the warmup once, in
  either spelling; the later source's replaces the earlier's.
"""
from __future__ import annotations

import logging
from pathlib import Path

from audio_tokenizer import layout as L
from llada_tts.training.warmup import FORMS as WARMUP_FORMS
from llada_tts.training.warmup import LEGACY_KEYS as WARMUP_KEYS
from llada_tts.training.warmup import from_legacy

log = logging.getLogger(__name__)

ALIASES = {  # older spelling -> key
    "model_name_or_path": "model_name", "output_dir": "save_folder", "data_path": "text_QA_dataset",
    "train_data_path": "text_QA_dataset", "text_dataset": "text_QA_dataset", "tts_dataset": "TTS_dataset",
    "num_epochs": "epochs",
}
FIXED_KEYS = {"num_audio_tokens": (L.NUM_AUDIO_TOKENS, "7 x 4096"),  # earlier key -> (its only value, why)
              "num_special_tokens": (L.NUM_SPECIAL_TOKENS, "the Orpheus control tokens")}
LEGACY_TYPES = {"warmup_ratio": float, "warmup_steps": int | None, "warmup_epochs": float | None,
                "num_audio_tokens": int, "num_special_tokens": int}  # earlier keys, read but not fields
LEGACY_KEYS = tuple(LEGACY_TYPES)
SECTIONS = ("pretraining", "sft", "tts")  # the earlier scripts' wrappers

__all__ = ["ALIASES", "FIXED_KEYS", "LEGACY_KEYS", "LEGACY_TYPES", "SECTIONS", "WARMUP_KEYS", "map_earlier_keys",
           "unwrap_section"]


def unwrap_section(data: dict, path: str | Path, section: str | None) -> dict:
    """``data`` of a config file, a ``{"<section>": {...}}`` wrapper (plus an optional ``model`` block)
    unwrapped: ``section``, or the only one there is; ValueError when a file holds several."""
    wrapped = [k for k in data if k in SECTIONS and isinstance(data[k], dict)]
    if not wrapped:
        return data
    pick = section if section in wrapped else (wrapped[0] if len(wrapped) == 1 else None)
    if pick is None or len(data) != 1 and set(data) - {pick, "model"}:
        raise ValueError(f"{path}: has sections {wrapped}; keep one section (or flat keys) per file")
    data = {**data.get("model", {}), **data[pick]}
    if "name_or_path" in data:
        data["model_name"] = data.pop("name_or_path")
    return data


def map_earlier_keys(values: dict, where: str) -> dict:
    """``values`` (coerced, canonical keys of one source) with the earlier keys mapped: a fixed layout key
    dropped when it holds its one value (else ValueError), the warmup keys turned into ``warmup``."""
    out = dict(values)
    for key, (value, why) in FIXED_KEYS.items():
        if key in out and out.pop(key) != value:
            raise ValueError(f"{key}: is fixed at {value} ({why}), got {values[key]!r} in {where}; "
                             "leave the key out")
    earlier = {k: out.pop(k) for k in WARMUP_KEYS if k in out}
    given = [k for k, v in earlier.items() if v is not None]
    if "warmup" in out and given:
        raise ValueError(f"warmup: {where} gives it twice, as warmup and as {' and '.join(given)}; keep only "
                         f"warmup: {WARMUP_FORMS}")
    try:
        rule = from_legacy(**earlier)
    except ValueError as e:
        raise ValueError(f"{e} (in {where})") from None
    if rule is not None:
        if earlier.get("warmup_ratio") and rule.unit != "fraction":
            log.warning("warmup_ratio %s in %s is ignored: %s is set (as in the earlier scripts); warmup is %s",
                        earlier["warmup_ratio"], where, " and ".join(k for k in given if k != "warmup_ratio"), rule)
        out["warmup"] = str(rule)
    return out
