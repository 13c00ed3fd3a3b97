"""Training configuration: one dataclass, loaded from YAML (or JSON) with ``--key value`` overrides.

Keys are those of the earlier LLaDA-TTS scripts (``TTS_dataset``, ``text_QA_dataset``, ``ratio``,
``batch_size`` ...), so existing files keep working; a few older spellings are accepted as aliases
(``output_dir`` -> ``save_folder``, ``model_name_or_path`` -> ``model_name``, ``data_path`` ->
``text_QA_dataset``). An unknown key stops the run with the list of valid keys: nothing is silently
ignored. Keys that only restate the fixed token layout (``pad_token``, ``mask_token_id``) are checked
against it.

Earlier keys that are no fields any more are still read (:mod:`llada_tts.training.earlier_keys`):
``num_audio_tokens`` and ``num_special_tokens`` only restated the layout, so their one valid value is
dropped (any other is an error); ``warmup_ratio`` / ``warmup_steps`` / ``warmup_epochs`` become the one
``warmup`` setting (:mod:`llada_tts.training.warmup`). Each source (the file, then the command line)
gives the warmup once, in either spelling; the command line's replaces the file's.

``ratio`` is the fraction of training **samples** that are text, held over batches (each batch is
all text or all TTS): 0.25 = a quarter of the samples, 0 = TTS only (the default without
``text_QA_dataset``), 1 = text only. With both datasets given it must draw both (0 < ratio < 1).
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from audio_tokenizer import layout as L
from audio_tokenizer.typed_config import coerce_to
from audio_tokenizer.typed_config import parse_overrides as parse_flags
from llada_tts.fileio import write_atomic
from llada_tts.training.earlier_keys import (
    ALIASES,
    FIXED_KEYS,
    LEGACY_KEYS,
    LEGACY_TYPES,
    WARMUP_KEYS,
    map_earlier_keys,
    unwrap_section,
)
from llada_tts.training.warmup import Warmup

log = logging.getLogger(__name__)

SCHEDULERS = ("linear", "cosine", "constant")
PRECISIONS = ("auto", "no", "bf16", "fp16")
TRACKERS = ("tensorboard", "wandb", "none")
TEXT_FORMATS = ("auto", "text", "sft")
# keys that may name a file or folder; OUTPUT_PATHS always do (they may not exist yet)
PATH_KEYS = ("TTS_dataset", "text_QA_dataset", "model_name", "tokenizer_name", "save_folder", "logging_dir")
OUTPUT_PATHS = ("save_folder", "logging_dir")  # legacy files wrap all keys in one of these
RATIO_MEANING = ("ratio is the fraction of training samples that are text: 0.25 = a quarter of them, each batch "
                 "all text or all TTS in that proportion. The earlier scripts' alternating schedules counted text "
                 "batches per TTS batch; for N text batches per TTS batch use ratio = N / (N + 1), so their 1 is "
                 "0.5 here")


def _f(default, help: str, section: str):
    return field(default=default, metadata={"help": help, "section": section})


@dataclass
class TrainConfig:
    """Every setting of a training run (see the sample config for each key's meaning)."""

    # --- data ---
    TTS_dataset: str | None = _f(None, "TTS rows: a datasets.save_to_disk folder "
                                 "(python -m audio_tokenizer) or a hub name", "data")
    text_QA_dataset: str | None = _f(None, "text rows: pretraining JSONL ({text}/{input_ids}) or SFT JSONL "
                                     "(messages/conversations or input_ids+prompt_length); absent = TTS only", "data")
    text_format: str = _f("auto", "how to read text_QA_dataset: auto (look at the first "
                          "record), text (pretraining, packed) or sft", "data")
    ratio: float | None = _f(None, "fraction of training SAMPLES that are text, held over batches (each batch is "
                             "all text or all TTS; N text batches per TTS batch = N/(N+1)); with both datasets "
                             "strictly between 0 and 1, default 0.5", "data")
    voice_type: str = _f("all", "TTS voices to train on: all, or a comma-separated list of "
                         "names from the dataset's voice column", "data")
    max_length: int = _f(2048, "longest row in tokens; a longer row stops the run before training "
                         "(or is dropped with drop_long_rows)", "data")
    drop_long_rows: bool = _f(False, "drop rows longer than max_length (with a warning) instead of stopping", "data")
    random_length_prob: float = _f(0.01, "LLaDA pretraining: chance that a batch's pretraining text rows are cropped "
                                   "to a random length (logged as crops)", "data")
    num_workers: int = _f(0, "DataLoader worker processes", "data")
    # --- model ---
    model_name: str = _f("tiny", "llada-tts checkpoint, plain Llama-3 checkpoint (hub id or folder; vocabulary is "
                         "extended), or a size (tiny, small, 1b, 3b) for a fresh model", "model")
    tokenizer_name: str | None = _f(None, "tokenizer hub id or folder, or 'offline' (byte-level "
                                    "test tokenizer); default: model_name", "model")
    gradient_checkpointing: bool = _f(False, "recompute activations in the backward "
                                      "pass (less memory, ~30% slower)", "model")
    attn_implementation: str = _f("sdpa", "attention kernel: sdpa, eager or flash_attention_2", "model")
    compact_embeddings: bool = _f(False, "fresh model only: embeddings hold only the ~29k rows the offline byte "
                                  "tokenizer, the control tokens and the audio codes use, not 156,940 (the checkpoint "
                                  "and AdamW carry no dead rows; loading for inference restores Orpheus ids)", "model")
    slot_masks: bool = _f(False, "fresh model only: a masked position is fed with one of 7 per-slot mask tokens (its "
                          "SNAC frame phase), and TTS prompts are padded to whole frames", "model")
    audio_loss: str = _f("full", "full: cross-entropy over every id; slot: an audio target over its frame slot's 4096 "
                         "codes + stream ends only, as the sampler decodes (~40x cheaper head for hidden 256)", "model")
    shift_logits: bool = _f(False, "AR-to-diffusion adaptation: predict a masked token from the position before it, "
                            "as an autoregressive head was trained (recorded in config.json; samplers and scorers "
                            "apply it)", "model")
    attention_anneal_steps: int = _f(0, "AR-to-diffusion adaptation: the attention opens from causal to bidirectional "
                                     "over this many optimizer updates (a growing window of future keys); 0 = "
                                     "bidirectional from the start", "model")
    # --- optimisation ---
    epochs: int = _f(1, "passes over the TTS rows (over the text rows for text-only training)", "training")
    max_steps: int | None = _f(None, "stop after this many optimizer updates (all epochs when unset)", "training")
    batch_size: int = _f(8, "rows per process per forward pass", "training")
    gradient_accumulation_steps: int = _f(1, "forward passes per optimizer update", "training")
    number_processes: int | None = _f(None, "expected process count; must match `accelerate launch "
                                      "--num_processes` (unset: whatever was launched)", "training")
    learning_rate: float = _f(5e-5, "peak AdamW learning rate", "training")
    weight_decay: float = _f(0.0, "AdamW weight decay (not applied to norms, biases or embeddings)", "training")
    lr_scheduler_type: str = _f("linear", "linear, cosine or constant, each after a linear warmup", "training")
    warmup: str = _f("0", "linear warmup: optimizer updates (150), a share of all of them (3%) or epochs "
                     "(0.5 epochs)", "training")
    max_grad_norm: float | None = _f(1.0, "clip the gradient norm to this (null or 0: no clipping)", "training")
    mixed_precision: str = _f("auto", "auto (the accelerate launch setting if any, else bf16 on a "
                              "bf16 GPU, else fp32), no, bf16, fp16", "training")
    seed: int = _f(42, "seed for initialisation, data order and masks", "training")
    eps: float = _f(1e-3, "LLaDA forward process: p_mask = (1 - eps) * t + eps", "training")
    prompt_drop_prob: float = _f(0.1, "classifier-free guidance: fraction of TTS rows whose whole text "
                                 "prompt is masked, exactly as the sampler's unconditional pass "
                                 "(cfg_scale) masks it; no loss on it", "training")
    # --- fixed by the token layout (checked) ---
    pad_token: int = _f(L.PAD_ID, "TTS fill token; fixed by the Orpheus layout", "layout")
    mask_token_id: int = _f(L.MASK_ID, "diffusion mask id; fixed by the layout (126336 of "
                            "older scripts is a real Llama-3 token)", "layout")
    # --- saving and logging ---
    save_folder: str = _f("checkpoints_llada_tts", "where checkpoint-epoch-N/ folders and logs go", "output")
    save_epochs: float = _f(1.0, "save every this many epochs (0.5 = twice per epoch)", "output")
    project_name: str = _f("llada-tts", "wandb project name (tensorboard writes to "
                           "<logging_dir or save_folder/runs>/<run_name>)", "output")
    run_name: str = _f("llada-tts-run", "tracker run name", "output")
    report_to: str = _f("tensorboard", "tensorboard, wandb, both (comma-separated) or "
                        "none; metrics.jsonl is always written", "output")
    logging_dir: str | None = _f(None, "tensorboard folder (default: <save_folder>/runs)", "output")
    logging_steps: int = _f(10, "log metrics every this many optimizer updates", "output")

    def __post_init__(self) -> None:
        self.warmup = str(Warmup.parse(self.warmup))  # one spelling, so a saved config reads back equal
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the key for any out-of-range or inconsistent value."""
        def need(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise ValueError(f"{key}: {what}, got {getattr(self, key)!r}")

        for f in dataclasses.fields(self):  # NaN / inf pass every comparison below the wrong way
            value = getattr(self, f.name)
            if isinstance(value, float):
                need(math.isfinite(value), f.name, "must be a finite number")
        need(self.TTS_dataset is not None or self.text_QA_dataset is not None, "TTS_dataset",
             "set TTS_dataset and/or text_QA_dataset")
        need(self.ratio is None or 0.0 <= self.ratio <= 1.0, "ratio",
             "must be in [0, 1] (fraction of samples that are text)")
        need(self.text_format in TEXT_FORMATS, "text_format", f"must be one of {TEXT_FORMATS}")
        need(self.max_length >= 2, "max_length", "must be >= 2")
        need(0.0 <= self.random_length_prob <= 1.0, "random_length_prob", "must be in [0, 1]")
        need(0.0 <= self.prompt_drop_prob <= 1.0, "prompt_drop_prob", "must be in [0, 1]")
        need(self.TTS_dataset is None or self.text_QA_dataset is None or self.ratio is None
             or 0.0 < self.ratio < 1.0, "ratio",
             f"with both TTS_dataset and text_QA_dataset it must be strictly between 0 and 1, else one of them is "
             f"never drawn. {RATIO_MEANING}. To train on one dataset, leave the other out")
        need(self.num_workers >= 0, "num_workers", "must be >= 0")
        need(self.epochs >= 1, "epochs", "must be >= 1")
        need(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be >= 1 or null")
        need(self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", "must be >= 1")
        need(self.number_processes is None or self.number_processes >= 1, "number_processes", "must be >= 1 or null")
        need(self.learning_rate > 0, "learning_rate", "must be > 0")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.lr_scheduler_type in SCHEDULERS, "lr_scheduler_type", f"must be one of {SCHEDULERS}")
        Warmup.parse(self.warmup)  # ValueError naming warmup and its three forms
        need(self.max_grad_norm is None or self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0 or null")
        need(self.mixed_precision in PRECISIONS, "mixed_precision", f"must be one of {PRECISIONS}")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.audio_loss in ("full", "slot"), "audio_loss", "must be full or slot")
        need(self.attention_anneal_steps >= 0, "attention_anneal_steps", "must be >= 0")
        need(0.0 < self.eps <= 1.0, "eps", "must be in (0, 1]")
        need(self.pad_token == L.PAD_ID, "pad_token", f"is fixed at {L.PAD_ID} by the Orpheus layout")
        need(self.mask_token_id == L.MASK_ID, "mask_token_id", f"is fixed at {L.MASK_ID} (a dedicated token; "
             "126336 of older scripts is an ordinary Llama-3 token)")
        need(self.save_epochs > 0, "save_epochs", "must be > 0")
        need(self.logging_steps >= 1, "logging_steps", "must be >= 1")
        bad = [t for t in self.trackers if t not in TRACKERS]
        need(not bad, "report_to", f"must name trackers from {TRACKERS}")

    # --- derived values ---
    @property
    def trackers(self) -> list[str]:
        """report_to as a list without 'none'."""
        names = [t.strip().lower() for t in str(self.report_to).split(",") if t.strip()]
        return [t for t in names if t != "none"]

    @property
    def text_ratio(self) -> float:
        """The ratio in force: the given one, or 0.5 / 0 / 1 from the datasets present."""
        if self.TTS_dataset is None:
            return 1.0
        if self.text_QA_dataset is None:
            return 0.0
        return 0.5 if self.ratio is None else float(self.ratio)

    def resolved(self, base: str | Path | None = None) -> TrainConfig:
        """A copy with derived values filled in (ratio; relative paths made absolute against ``base``, default
        the current folder: see :func:`absolute_path`), warning where a value cannot apply. A run stores this
        in its train_config.yaml, so the run means the same from any folder."""
        base = Path.cwd() if base is None else Path(base)
        out = dataclasses.replace(self, **{k: absolute_path(k, getattr(self, k), base) for k in PATH_KEYS})
        if self.ratio is not None and self.ratio != self.text_ratio:
            log.warning("ratio %s ignored: %s, so the text fraction is %s", self.ratio,
                        "no text_QA_dataset" if self.text_QA_dataset is None else "no TTS_dataset", self.text_ratio)
        out.ratio = self.text_ratio
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def absolute_path(key: str, value, base: Path):
    """``value`` of path key ``key`` as an absolute path when it is a relative local path (against ``base``):
    always for save_folder / logging_dir; for the inputs when ``base / value`` exists or the value starts with
    ./ or ../ (a hub id, a model size such as ``tiny`` or ``offline`` with no such folder stays as it is)."""
    if not isinstance(value, str) or not value or (key == "tokenizer_name" and value == "offline"):
        return value
    if value.startswith("~"):
        value = os.path.expanduser(value)
    if os.path.isabs(value):
        return value
    full = os.path.abspath(os.path.join(base, value))
    if key in OUTPUT_PATHS or value.startswith(("./", "../")) or os.path.exists(full):
        return full
    return value


# --- loading ---------------------------------------------------------------------------------------

def field_types() -> dict[str, object]:
    """Type of every key a config may give: the fields, and the earlier keys that are read but not kept."""
    return {**typing.get_type_hints(TrainConfig), **LEGACY_TYPES}


def valid_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _unknown(key: str, where: str) -> ValueError:
    keys = valid_keys()
    near = difflib.get_close_matches(key, keys + list(ALIASES) + list(LEGACY_KEYS), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ValueError(f"unknown config key {key!r} in {where}{hint}. Valid keys: {', '.join(keys)}; "
                      f"also accepted: {', '.join(f'{a} (= {k})' for a, k in ALIASES.items())}, "
                      f"{', '.join(WARMUP_KEYS)} (= warmup), {', '.join(FIXED_KEYS)} (fixed by the layout)")


def coerce(key: str, value, where: str = "config"):
    """``value`` (from YAML or the command line) as the type of ``key``; ValueError naming the key
    (``typed_config.coerce_to``; a list for a text key, e.g. ``report_to``, is joined with commas)."""
    return coerce_to(field_types()[key], key, value, where, join_lists=True)


def _canonical(key: str, where: str) -> str:
    if key in ALIASES:
        return ALIASES[key]
    if key not in valid_keys() and key not in LEGACY_KEYS:
        raise _unknown(key, where)
    return key


def read_file(path: str | Path, section: str | None = None) -> dict:
    """Raw key -> value mapping of a YAML/JSON config; a legacy ``{"<section>": {...}}`` wrapper is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML/JSON ({e})") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    return unwrap_section(data, path, section)


def parse_overrides(argv: list[str]) -> dict[str, str]:
    """``--key value`` / ``--key=value`` words -> {key: raw string} (argparse, one option per key, alias
    and earlier key; a bare ``--flag`` means true); an unknown key names the nearest valid one."""
    return parse_flags(argv, valid_keys() + list(ALIASES) + list(LEGACY_KEYS), unknown=_unknown)


def build_config(values: dict, overrides: dict | None = None, where: str = "config") -> TrainConfig:
    """TrainConfig from raw values plus command-line overrides (aliases mapped, types coerced, earlier keys
    mapped per source: the command line's warmup replaces the file's, whichever way either spells it)."""
    merged: dict = {}
    for source, raw in ((where, values), ("the command line", overrides or {})):
        given = {}
        for key, value in raw.items():
            canon = _canonical(str(key), source)
            given[canon] = coerce(canon, value, source)
        merged.update(map_earlier_keys(given, source))
    return TrainConfig(**merged)


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                section: str | None = None, base: str | Path | None = None) -> TrainConfig:
    """Load ``path`` (YAML/JSON; None = defaults) and apply ``--key value`` overrides. With ``base``, the file's
    relative paths are made absolute against it (the folder they were written for; overrides are relative to
    the current folder, as :meth:`TrainConfig.resolved` makes them)."""
    values = read_file(path, section) if path is not None else {}
    if base is not None:
        values = {k: absolute_path(ALIASES.get(k, k), v, Path(base)) if ALIASES.get(k, k) in PATH_KEYS else v
                  for k, v in values.items()}
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    return build_config(values, overrides, where=str(path) if path else "defaults")


# --- writing ---------------------------------------------------------------------------------------

def _yaml_value(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def to_yaml(cfg: TrainConfig, comments: bool = True, header: str = "") -> str:
    """YAML text of ``cfg`` grouped by section, each key with its help as a comment."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    section = None
    for f in dataclasses.fields(TrainConfig):
        if comments and f.metadata["section"] != section:
            section = f.metadata["section"]
            lines += ["", f"# --- {section} ---"]
        if comments:
            lines.append(f"# {f.metadata['help']}")
        lines.append(f"{f.name}: {_yaml_value(getattr(cfg, f.name))}")
    return "\n".join(lines).lstrip("\n") + "\n"


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Save the resolved config as YAML (loadable with :func:`load_config`)."""
    return write_atomic(path, to_yaml(cfg, header="resolved llada-tts training config"))


SAMPLE_HEADER = """llada-tts training config (python recipes/{script} --config THIS.yaml [--key value ...])
Any key can be overridden on the command line, e.g. --batch_size 4 --learning_rate 1e-5.
ratio is the fraction of SAMPLES that are text, held over batches: 0.25 = one text batch in four.
prompt_drop_prob trains the unconditional (prompt-masked) input that the sampler's cfg_scale uses."""


def write_sample_config(path: str | Path, values: dict, script: str = "tts_train.py") -> Path:
    """Write a commented sample config: every key with its meaning, ``values`` filled in."""
    return write_atomic(path, to_yaml(TrainConfig(**values), header=SAMPLE_HEADER.format(script=script)))

