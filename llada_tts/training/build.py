"""What a run is made of: the tokenizer, the model and the validated datasets named by a TrainConfig."""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError

from audio_tokenizer import layout as L
from audio_tokenizer.errors import first_line
from llada_tts.checkpoint_meta import CheckpointMeta, dataset_codec, dataset_front_end, meta_from_columns
from llada_tts.data import load_text_rows, load_tts_rows, open_dataset
from llada_tts.model import SIZES, adapters, config_for_size, create_model, from_llama, load_model
from llada_tts.training.config import TrainConfig
from llada_tts.vocab import build_offline_tokenizer, load_tokenizer

log = logging.getLogger(__name__)


def is_fresh_size(model_name: str) -> bool:
    """True when ``model_name`` names a size to initialise from scratch (and no such folder exists)."""
    return model_name in SIZES and not Path(model_name).exists()


def build_tokenizer(cfg: TrainConfig):
    """The tokenizer: ``tokenizer_name`` ('offline' = byte-level test tokenizer), else ``model_name``."""
    name = cfg.tokenizer_name or cfg.model_name
    if name == "offline":
        return build_offline_tokenizer()
    if is_fresh_size(name):
        raise ValueError(f"model_name {name!r} is a fresh model with no tokenizer: set tokenizer_name to a "
                         "Llama-3 tokenizer (hub id or folder), or 'offline' for the byte-level test tokenizer")
    return load_tokenizer(name)


def _raw_config(name: str) -> dict:
    """config.json of a checkpoint (local folder or hub id) as a dict; ValueError when unreadable."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model_name {name}: folder has no config.json (not a save_pretrained model)")
        try:
            raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"model_name {name}: cannot read config.json ({first_line(e)})") from e
    else:
        from transformers import PretrainedConfig

        try:
            raw, _ = PretrainedConfig.get_config_dict(name)
        except OSError as e:
            raise ValueError(f"model_name {name!r} is neither a local folder nor a reachable hub model "
                             f"(offline? typo?); sizes for a fresh model: {sorted(SIZES)}") from e
    return raw if isinstance(raw, dict) else {}


def _vocab_size(name: str) -> int:
    """Embedding rows of a checkpoint (local folder or hub id), read from its config only."""
    raw = _raw_config(name)
    kind = raw.get("model_type") if isinstance(raw, dict) else None
    rows = raw.get("vocab_size") if isinstance(raw, dict) else None
    if kind != "llama" or isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"model_name {name}: not a Llama model (config.json has model_type {kind!r}"
                         f"{'' if rows is not None else ', no vocab_size'}); give a llada-tts or Llama-3 checkpoint, "
                         f"or a size for a fresh model: {sorted(SIZES)}")
    return rows


def build_model(cfg: TrainConfig, model_name: str | None = None) -> torch.nn.Module:
    """fp32 bidirectional model: a fresh size, a llada-tts checkpoint, or a Llama-3 checkpoint whose
    vocabulary is extended (decided by its embedding rows)."""
    name = model_name or cfg.model_name
    from audio_tokenizer.frames import PER_FRAME

    front_end = dataset_front_end(cfg.TTS_dataset) if cfg.TTS_dataset is not None else None
    frames = PER_FRAME.get(front_end, 0)  # phoneme tokens per frame in the data's prompts (0: none)
    if is_fresh_size(name):
        config = config_for_size(name, compact=cfg.compact_embeddings, slot_masks=cfg.slot_masks,
                                 frame_phones=frames, attn_implementation=cfg.attn_implementation)
        model = create_model(config, seed=cfg.seed)
    else:
        try:
            if _vocab_size(name) >= L.VOCAB_SIZE - 1 or adapters.ROWS_KEY in _raw_config(name):
                model = load_model(name, dtype=torch.float32, attn_implementation=cfg.attn_implementation,
                                   expand=False)
            else:
                log.info("%s has a Llama-3 vocabulary: extending it with the audio and mask rows", name)
                model = from_llama(name, dtype=torch.float32, seed=cfg.seed,
                                   attn_implementation=cfg.attn_implementation)
        except (SafetensorError, OSError, KeyError) as e:  # a truncated / damaged weights file
            raise ValueError(f"{name}: cannot load the model weights, the checkpoint is damaged or incomplete "
                             f"({type(e).__name__}: {first_line(e)})") from e
    if frames and not getattr(model.config, adapters.FRAMES_KEY, None):
        raise ValueError(f"{cfg.TTS_dataset} was built with --front-end {front_end}, but {name} does not read "
                         f"frame phonemes ({adapters.FRAMES_KEY}); train a fresh size on it, or rebuild the data")
    if frames and adapters.phones_per_frame(model.config) != frames:  # same phonemes, finer timeline
        log.info("%s reads %d phoneme(s) per frame, %s has %d: it learns the data's", name,
                 adapters.phones_per_frame(model.config), cfg.TTS_dataset, frames)
        setattr(model.config, adapters.PER_FRAME_KEY, frames)
    if cfg.shift_logits != adapters.shifts(model):
        if not cfg.shift_logits:
            raise ValueError(f"{name} predicts shifted (llada_shift_logits); set shift_logits: true to train it")
        adapters.set_shift(model)  # recorded in config.json, so every sampler and scorer applies it
    model.config.use_cache = False  # no KV cache in training (and none makes sense bidirectionally)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    return model


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute decoder-layer activations in backward (non-reentrant); transformers 5.x spelling first."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def filter_voices(ds, voice_type: str):
    """Rows of ``ds`` whose ``voice`` column is in the comma-separated ``voice_type`` ('all' keeps all)."""
    if voice_type.strip().lower() == "all":
        return ds
    wanted = {v.strip() for v in voice_type.split(",") if v.strip()}
    if "voice" not in ds.column_names:
        raise ValueError(f"voice_type {voice_type!r} needs a 'voice' column in TTS_dataset "
                         f"(columns: {', '.join(ds.column_names)}); use voice_type: all")
    voices = ds["voice"]
    keep = [i for i, v in enumerate(voices) if v in wanted]
    if not keep:
        raise ValueError(f"voice_type {voice_type!r} matches no row; voices in TTS_dataset: "
                         f"{', '.join(sorted(set(map(str, voices)))[:20])}")
    return ds.select(keep)


def prompt_multiple(cfg: TrainConfig, model_name: str | None = None) -> int:
    """7 when the model to train feeds frame-phase masks (TTS prompts must be frame-aligned), else 1."""
    name = model_name or cfg.model_name
    if is_fresh_size(name):
        return L.SLOTS_PER_FRAME if cfg.slot_masks else 1
    return L.SLOTS_PER_FRAME if _raw_config(name).get(adapters.SLOT_MASKS_KEY) else 1


def align_rows(ds, multiple: int):
    """TTS rows with FILLER ids in front of each prompt so it spans whole frames (no-op for 1)."""
    if multiple == 1:
        return ds

    def align(row):
        ids, length = adapters.align_prompt(row["input_ids"], row["prompt_length"], multiple)
        return {"input_ids": ids, "prompt_length": length}

    return ds.map(align, desc="aligning prompts to frames")


def load_datasets(cfg: TrainConfig, tokenizer, progress: bool = True, multiple: int = 1):
    """(tts rows or None, text rows or None), validated; ValueError naming the row/column on bad data."""
    tts = text = None
    if cfg.TTS_dataset is not None:
        source = cfg.TTS_dataset
        if cfg.voice_type.strip().lower() != "all":
            source = filter_voices(open_dataset(cfg.TTS_dataset), cfg.voice_type)
        try:
            tts = align_rows(load_tts_rows(source, cfg.max_length, drop_long=cfg.drop_long_rows,
                                           progress=progress), multiple)
        except ValueError as e:
            raise ValueError(f"TTS_dataset {cfg.TTS_dataset}: {e}") from e
        except (IndexError, OSError) as e:  # datasets cannot load_from_disk a folder with 0 rows (0 shards)
            raise ValueError(f"TTS_dataset {cfg.TTS_dataset}: cannot be read ({type(e).__name__}: {e}); "
                             "is it an empty or incomplete save_to_disk folder?") from e
    if cfg.text_QA_dataset is not None:
        try:
            text = load_text_rows(cfg.text_QA_dataset, tokenizer, cfg.max_length, kind=cfg.text_format,
                                  drop_long=cfg.drop_long_rows, progress=progress)
        except ValueError as e:
            raise ValueError(f"text_QA_dataset {cfg.text_QA_dataset}: {e}") from e
    return tts, text


def checkpoint_meta(cfg: TrainConfig) -> CheckpointMeta:
    """``llada_tts.json`` for this run: voices / codec / speaking rate of the (voice-filtered) TTS dataset."""
    if cfg.TTS_dataset is None:
        return CheckpointMeta()
    return _dataset_meta(cfg.TTS_dataset, cfg.voice_type)


@functools.lru_cache(maxsize=4)
def _dataset_meta(tts_dataset: str, voice_type: str) -> CheckpointMeta:
    ds = open_dataset(tts_dataset)
    if voice_type.strip().lower() != "all":
        ds = filter_voices(ds, voice_type)
    cols = {k: ds[k] for k in ("voice", "text", "duration") if k in ds.column_names}
    return meta_from_columns(cols, codec=dataset_codec(tts_dataset), front_end=dataset_front_end(tts_dataset))
