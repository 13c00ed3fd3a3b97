"""Create, load, convert and save the bidirectional Llama mask predictor.

The model is a stock ``LlamaForCausalLM`` whose config says ``is_causal=False``: transformers 5.x
then builds a bidirectional (padding-only) mask for eager and sdpa attention alike. Logits are
``[B, L, V]`` with V = ``layout.VOCAB_SIZE``; compute diffusion losses from them yourself (the
``labels=`` path of HF shifts labels by one, which is wrong for a mask predictor).

Checkpoints are the HF ``save_pretrained`` layout (``config.json`` + ``model.safetensors``), written
atomically by :func:`save_model` and read by :func:`load_model` without remote code.
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from audio_tokenizer import layout as L
from audio_tokenizer.fileio import atomic_dir
from audio_tokenizer.hub import local_folder
from llada_tts.model import adapters

logger = logging.getLogger(__name__)

def _make_bidirectional(config: LlamaConfig, source: str = "") -> LlamaConfig:
    """Set ``is_causal=False`` (warning when a causal checkpoint is repurposed) and the mask id."""
    if getattr(config, "is_causal", True) is not False:
        if source:
            logger.warning("%s is a causal Llama checkpoint; using it with bidirectional attention "
                           "(is_causal=False) as a mask predictor", source)
        config.is_causal = False
    mask_id = getattr(config, "mask_token_id", None)
    if mask_id is None:
        config.mask_token_id = L.MASK_ID
    elif mask_id != L.MASK_ID:
        raise ValueError(f"{source or 'config'} has mask_token_id {mask_id}, but llada-tts uses "
                         f"{L.MASK_ID} (layout.MASK_ID); this checkpoint is from another system")
    return config


def create_model(config: LlamaConfig, seed: int = 0, dtype: torch.dtype | None = None) -> LlamaForCausalLM:
    """A randomly initialised bidirectional model (same seed, same weights; global RNG untouched)."""
    config = _make_bidirectional(copy.deepcopy(config))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    adapters.install(model)
    return model.to(dtype) if dtype is not None else model


# --- resolving and loading ------------------------------------------------------------------------

def _check_local_dir(path: Path) -> str:
    """The checkpoint folder as a string, or FileNotFoundError when it has no safetensors weights."""
    if not any((path / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json")):
        hint = " (only PyTorch .bin weights: re-save with safetensors)" if any(path.glob("*.bin")) else ""
        raise FileNotFoundError(f"{path} has no model.safetensors weights{hint}")
    return str(path)


def _load_config(name_or_dir: str | os.PathLike) -> tuple[str, LlamaConfig]:
    """(source, config) for a local directory or hub id; clear errors for missing or non-Llama ones."""
    name = str(name_or_dir)
    local = local_folder(name, "config.json", "model directory")
    source = name if local is None else _check_local_dir(local)
    try:
        raw, _ = LlamaConfig.get_config_dict(source, trust_remote_code=False)
    except OSError as e:
        raise FileNotFoundError(f"{name!r} is neither a local model directory nor a reachable Hugging Face "
                                f"hub model (offline? typo?): {e}") from e
    if raw.get("model_type") != "llama":
        raise ValueError(f"{name} has model_type {raw.get('model_type')!r}; llada-tts needs a 'llama' checkpoint")
    config = LlamaConfig.from_dict(raw)
    config._name_or_path = source
    return source, config


def _from_pretrained(source: str, config: LlamaConfig, dtype, attn_implementation: str) -> LlamaForCausalLM:
    kwargs = {"dtype": dtype} if dtype is not None else {}
    return LlamaForCausalLM.from_pretrained(source, config=config, attn_implementation=attn_implementation,
                                            use_safetensors=True, trust_remote_code=False, **kwargs)


def fast_cpu_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in AMX tiles (Intel Xeon since Sapphire Rapids). There a
    bf16 linear layer of the demo voice's size runs ~5x faster than float32 (measured); elsewhere bf16
    (like fp16) is emulated and slower, and AVX-512 BF16 alone is not measured, so it counts as no."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe is not None and probe())


def speech_dtype(device) -> torch.dtype | None:
    """The dtype a speech checkpoint runs in by default on ``device``: on a CPU bfloat16 where
    :func:`fast_cpu_bf16`, else float32 (the sampler keeps the audio logits in float32 either way);
    elsewhere None, the checkpoint's own."""
    if torch.device(device).type != "cpu":
        return None
    return torch.bfloat16 if fast_cpu_bf16() else torch.float32


def load_model(name_or_dir: str | os.PathLike, dtype: torch.dtype | None = None, device=None,
               attn_implementation: str = "sdpa", expand: bool = True) -> LlamaForCausalLM:
    """Load a llada-tts (or Orpheus-sized Llama) checkpoint as a bidirectional mask predictor.

    A compact-embedding checkpoint (``llada_rows`` in its config, see :mod:`adapters`) comes back
    with the full 156,940-row vocabulary unless ``expand=False`` (the trainer keeps it compact).
    """
    source, config = _load_config(name_or_dir)
    compact = adapters.is_compact(config)
    if compact:
        rows = len(adapters.row_ids(getattr(config, adapters.ROWS_KEY)))  # validates the ranges
        if rows != config.vocab_size:
            raise ValueError(f"{name_or_dir}: {adapters.ROWS_KEY} lists {rows} ids for {config.vocab_size} "
                             "embedding rows; the checkpoint is inconsistent")
    elif config.vocab_size < L.VOCAB_SIZE - 1:
        raise ValueError(
            f"{name_or_dir} has {config.vocab_size} embedding rows, but llada-tts needs {L.VOCAB_SIZE} "
            f"(Llama-3 text + Orpheus audio codes + mask {L.MASK_ID}); convert it first with "
            f"llada_tts.model.from_llama({str(name_or_dir)!r})")
    _make_bidirectional(config, source)
    model = adapters.install(_from_pretrained(source, config, dtype, attn_implementation))
    if compact and expand:
        adapters.expand_rows(model)
    return model.to(device) if device is not None else model


# --- converting a plain Llama-3 checkpoint --------------------------------------------------------

def _grow_rows(weight: torch.Tensor, rows: int, noise: torch.Tensor | None) -> torch.nn.Parameter:
    """[V0, H] -> [rows, H]: old rows kept, new rows = mean of the old rows (+ noise [rows-V0, H])."""
    old_rows, hidden = weight.shape
    grown = weight.new_empty((rows, hidden))
    grown[:old_rows] = weight
    fill = weight.float().mean(0, keepdim=True).expand(rows - old_rows, hidden)
    if noise is not None:
        fill = fill + noise.to(fill.device)
    grown[old_rows:] = fill.to(weight.dtype)
    return torch.nn.Parameter(grown, requires_grad=weight.requires_grad)


@torch.no_grad()
def grow_vocab(model: LlamaForCausalLM, rows: int = L.VOCAB_SIZE, noise_std: float = 0.0,
               seed: int = 0) -> LlamaForCausalLM:
    """Resize input embeddings (and an untied lm_head) to ``rows``; new rows start at the row mean."""
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    old_rows, hidden = embed.weight.shape
    if rows <= old_rows:
        return model
    tied = head.weight is embed.weight
    noise = None
    if noise_std > 0:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((rows - old_rows, hidden), generator=gen) * noise_std
    embed.weight = _grow_rows(embed.weight, rows, noise)
    embed.num_embeddings = rows
    head.weight = embed.weight if tied else _grow_rows(head.weight, rows, noise)
    head.out_features = rows
    model.config.vocab_size = rows
    model.vocab_size = rows
    return model


def from_llama(name_or_dir: str | os.PathLike, dtype: torch.dtype | None = None, seed: int = 0,
               noise_std: float = 0.0, attn_implementation: str = "sdpa") -> LlamaForCausalLM:
    """A bidirectional llada-tts model from any Llama-3-vocabulary checkpoint (hub id or directory).

    Embeddings (and an untied lm_head) grow to ``layout.VOCAB_SIZE`` rows; each new row is the mean
    of the existing rows, plus N(0, noise_std^2) noise from ``seed`` when ``noise_std > 0`` (default:
    mean only, deterministic). A checkpoint that already has the audio rows (Orpheus) keeps them.
    """
    source, config = _load_config(name_or_dir)
    if config.vocab_size < L.TEXT_VOCAB_SIZE:
        raise ValueError(f"{name_or_dir} has {config.vocab_size} embedding rows; from_llama needs a "
                         f"Llama-3 vocabulary ({L.TEXT_VOCAB_SIZE} rows or more)")
    _make_bidirectional(config, source)
    model = _from_pretrained(source, config, dtype, attn_implementation)
    grow_vocab(model, L.VOCAB_SIZE, noise_std=noise_std, seed=seed)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = L.PAD_ID
    return model


# --- saving ---------------------------------------------------------------------------------------

def _write_extra(root: Path, extra_files: dict[str, str | bytes]) -> None:
    for rel, content in extra_files.items():
        rel_path = Path(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts or not rel_path.parts:
            raise ValueError(f"extra file name must be a relative path inside the checkpoint, got {rel!r}")
        target = root / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


def save_model(model: LlamaForCausalLM, out_dir: str | os.PathLike, tokenizer=None,
               extra_files: dict[str, str | bytes] | None = None, state_dict: dict | None = None) -> Path:
    """Atomically write ``model`` (+ tokenizer, extra files) as a save_pretrained directory.

    Everything goes to a sibling temp dir first, which is then renamed to ``out_dir``; an existing
    ``out_dir`` is renamed aside, replaced, then deleted, so readers never see a half-written
    checkpoint. Under accelerate, call on the main process with ``accelerator.unwrap_model(model)``
    (and ``state_dict=accelerator.get_state_dict(model)`` for FSDP/DeepSpeed).
    """
    if getattr(model.config, "is_causal", True) is not False:
        raise ValueError("refusing to save a causal model as a llada-tts checkpoint: "
                         "set model.config.is_causal = False (create_model/load_model do)")
    out = Path(out_dir).expanduser().resolve()
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        _write_extra(tmp, extra_files or {})
        _same_mode_as_config(Path(tmp))
    return out


def _same_mode_as_config(folder: Path) -> None:
    """transformers writes the weights owner-only (0600) and config.json per the umask (0644): give
    every file the config's mode, so a checkpoint or an exported voice is readable as a whole."""
    mode = (folder / "config.json").stat().st_mode & 0o777
    for f in folder.rglob("*"):
        if f.is_file():
            f.chmod(mode)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """{"total", "embedding", "non_embedding"}; tied weights are counted once."""
    emb = {id(p): p for m in (model.get_input_embeddings(), model.get_output_embeddings())
           if m is not None for p in m.parameters()}
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for p in emb.values())
    return {"total": total, "embedding": embedding, "non_embedding": total - embedding}


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L] 0/1 mask -> [B, L] positions counting real tokens only (0 on leading padding).

    Pass these with left-padded batches so each sequence sees the same rotary positions as unpadded.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
