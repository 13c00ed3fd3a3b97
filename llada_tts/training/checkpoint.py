"""Checkpoints: ``checkpoint-epoch-N/`` = save_pretrained model + tokenizer + resolved config + training state.

Layout of one checkpoint (written to ``.checkpoint-epoch-N.partial`` and renamed when complete)::

    config.json, model.safetensors, tokenizer files      load with llada_tts.model.load_model(dir)
    train_config.yaml                                    the resolved TrainConfig of the run
    trainer_state.json                                   step counters + data position (TrainerState)
    llada_tts.json                                       voices, codec, speaking rate (checkpoint_meta)
    training_state/                                      optimizer, LR scheduler, RNG per process:
                                                         safetensors + JSON, never a pickle
                                                         (audio_tokenizer.training.state); under
                                                         FSDP also fsdp/ (accelerate's sharded model
                                                         and optimizer, read with weights_only=True;
                                                         no *.pkl: a save deletes accelerate's RNG
                                                         pickles, --resume refuses any)

Temp folders of a killed save (``.checkpoint-epoch-N.partial`` / ``.old-XXXXXXXX``) are tidied at the
next start (:func:`clean_save_folder`), only once that start holds the folder's ``run.lock`` (so never
while a live run saves); a complete checkpoint is never removed. ``train_config.yaml`` holds absolute
paths, so ``--resume CHECKPOINT`` means the same run from any working folder (:func:`config_base` reads
the relative paths of older checkpoints).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import DistributedType

from audio_tokenizer.errors import first_line
from audio_tokenizer.fileio import clean_temp_dirs, partial_dir, replace_dir
from audio_tokenizer.training import state as safe_state
from llada_tts.checkpoint_meta import META_FILE
from llada_tts.model import save_model
from llada_tts.training.build import checkpoint_meta
from llada_tts.training.config import TrainConfig, read_file, to_yaml

CONFIG_FILE = "train_config.yaml"
STATE_FILE = "trainer_state.json"
STATE_DIR = "training_state"
FSDP_DIR = "fsdp"  # inside STATE_DIR, FSDP runs only
PREFIX = "checkpoint-epoch-"
TEMP_NAMES = r"checkpoint-epoch-[0-9]+(?:\.[0-9]+)?"  # the final names whose temp folders clean_save_folder removes
# settings that fix the meaning of a stored data position: resuming with others would train on other rows
# restored with AdamW's param groups on resume: a new value here would be ignored
OPTIMIZER_KEYS = ("learning_rate", "weight_decay")
RESUME_KEYS = ("TTS_dataset", "text_QA_dataset", "text_format", "ratio", "voice_type", "max_length",
               "drop_long_rows", "batch_size", "gradient_accumulation_steps", "seed")


@dataclass
class TrainerState:
    """Where training stands after ``global_step`` optimizer updates (saved at update boundaries)."""

    global_step: int = 0  # optimizer updates done
    micro_step: int = 0  # forward/backward passes done (seeds the masks)
    epoch: int = 0  # current epoch, 0-based
    step_in_epoch: int = 0  # batches of ``epoch`` already trained
    steps_per_epoch: int = 0  # batches per epoch (per process)
    next_save: float = 0.0  # epoch progress of the next scheduled checkpoint
    tokens_seen: int = 0  # all processes, fill tokens included
    num_processes: int = 1
    sampler: dict = field(default_factory=dict)

    @property
    def progress(self) -> float:
        """Epochs done as a fraction (2.5 = half way through the third epoch)."""
        return self.epoch + (self.step_in_epoch / self.steps_per_epoch if self.steps_per_epoch else 0.0)


def format_epoch(x: float) -> str:
    """1.0 -> '1', 0.5 -> '0.5', 1/3 -> '0.3333'."""
    return f"{round(float(x), 4):.4f}".rstrip("0").rstrip(".")


def checkpoint_dir(save_folder: str | Path, epoch: float) -> Path:
    return Path(save_folder) / f"{PREFIX}{format_epoch(epoch)}"


def _model_hint(ckpt: str | Path) -> str:
    return f"start a new run from its weights with --model_name {ckpt}"


def read_state(ckpt: str | Path) -> TrainerState:
    """The TrainerState of a checkpoint folder, or ValueError (one line) if it is not a complete,
    loadable checkpoint: missing or damaged trainer_state.json, training state missing, or in the old
    pickled format."""
    path = Path(ckpt) / STATE_FILE
    if not path.is_file() or not (Path(ckpt) / STATE_DIR).is_dir():
        raise ValueError(f"{ckpt} is not a resumable llada-tts checkpoint (no {STATE_FILE} / {STATE_DIR}/)")
    safe_state.check_state(Path(ckpt) / STATE_DIR, model_hint=_model_hint(ckpt))
    check_fsdp_state(ckpt)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        state = TrainerState(**raw)
        if not all(isinstance(getattr(state, k), int) and getattr(state, k) >= 0
                   for k in ("global_step", "micro_step", "epoch", "step_in_epoch", "steps_per_epoch")):
            raise ValueError("counters must be integers >= 0")
        if not isinstance(state.sampler, dict):
            raise ValueError("sampler must be an object")
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: damaged trainer state ({first_line(e)}); resume from another checkpoint") from e
    return state


def find_latest(save_folder: str | Path) -> Path | None:
    """The complete checkpoint in ``save_folder`` with the most optimizer updates (None if there is none)."""
    best, best_step = None, -1
    for d in Path(save_folder).glob(f"{PREFIX}*"):
        try:
            step = read_state(d).global_step
        except (ValueError, OSError):
            continue
        if step > best_step:
            best, best_step = d, step
    return best


def config_base(ckpt: str | Path) -> Path:
    """The folder the checkpoint's train_config.yaml was written from, for its relative paths. Configs written
    now hold absolute paths; in an older one, a relative save_folder such as ``runs/a`` of a checkpoint in
    ``/x/runs/a`` means it was ``/x``. Unknown (absolute or odd save_folder): the current folder."""
    run_dir = Path(ckpt).resolve().parent
    try:
        saved = read_file(Path(ckpt) / CONFIG_FILE).get("save_folder", TrainConfig.save_folder)
    except ValueError:
        return Path.cwd()
    if not isinstance(saved, str) or os.path.isabs(saved) or saved.startswith("~"):
        return Path.cwd()
    parts = Path(os.path.normpath(saved)).parts
    if ".." in parts:
        return Path.cwd()
    if parts == (".",):
        return run_dir
    return Path(*run_dir.parts[:-len(parts)]) if run_dir.parts[-len(parts):] == parts else Path.cwd()


def check_resumable(saved: dict, cfg: TrainConfig, num_processes: int, state: TrainerState) -> None:
    """ValueError if the run's data settings differ from the checkpoint's (the position would be wrong)."""
    now = cfg.to_dict()
    changed = [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in RESUME_KEYS if k in saved and saved[k] != now[k]]
    if state.num_processes != num_processes:
        changed.append(f"processes: {state.num_processes} -> {num_processes}")
    if changed:
        raise ValueError("cannot resume exactly, the data order would change: " + "; ".join(changed) +
                         ". Use the checkpoint's settings, or start a new run from it with model_name: <checkpoint>")
    ignored = [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in OPTIMIZER_KEYS if k in saved and saved[k] != now[k]]
    if ignored:
        raise ValueError("a resumed run continues the checkpoint's optimizer, whose learning rate and weight decay "
                         "would silently win: " + "; ".join(ignored) + ". Use the checkpoint's values, or start a "
                         "new run from its weights with model_name: <checkpoint>")


def old_format_checkpoints(save_folder: str | Path) -> list[Path]:
    """Checkpoints in ``save_folder`` whose training state is in the old pickled format."""
    return sorted(d for d in Path(save_folder).glob(f"{PREFIX}*") if safe_state.is_old_format(d / STATE_DIR))


def run_files(save_folder: str | Path) -> list[Path]:
    """What a run leaves in its save_folder: checkpoints, metrics.jsonl, train_config.yaml."""
    folder = Path(save_folder)
    if not folder.is_dir():
        return []
    found = sorted(d for d in folder.glob(f"{PREFIX}*") if d.is_dir())
    return found + [folder / n for n in ("metrics.jsonl", CONFIG_FILE) if (folder / n).exists()]


def clean_save_folder(save_folder: str | Path) -> list[str]:
    """Remove temp folders a killed save left (``.checkpoint-epoch-N.partial`` / ``.old-*``); one line each.
    Only while holding the folder's run lock: a live run's save in progress looks the same."""
    return clean_temp_dirs(save_folder, TEMP_NAMES)


def check_fsdp_state(ckpt: str | Path) -> None:
    """TrainingStateError (one line) if the checkpoint's FSDP state holds a pickle (``*.pkl``), which
    ``accelerate.load_state`` would unpickle (its RNG file, ``random_states_N.pkl``, with
    ``weights_only=False`` in older accelerate). A save deletes those: our RNG state is in
    ``training_state/rng_N.safetensors``."""
    fsdp = Path(ckpt) / STATE_DIR / FSDP_DIR
    found = sorted(p.relative_to(fsdp).as_posix() for p in fsdp.rglob("*.pkl")) if fsdp.is_dir() else []
    if found:
        raise safe_state.TrainingStateError(
            f"{fsdp} holds pickle files ({', '.join(found[:3])}{' ...' if len(found) > 3 else ''}), which --resume "
            f"does not load because unpickling can run code; {_model_hint(ckpt)}")


def full_state_dict(accelerator: Accelerator, model) -> dict:
    """The consolidated weights of an FSDP model on the main process (collective: call on every process).
    accelerate gathers them with ``offload_to_cpu=True``, which crashes FSDP1 on CPU processes (SIGSEGV
    in torch 2.13); there the weights are already in host memory, so they are gathered without it. The
    gathered dict holds a separate copy per name of a tied weight (embeddings = head): the names are
    pointed back at one tensor, so that save_pretrained stores it once, as without FSDP."""
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if accelerator.device.type != "cpu" or accelerator.is_fsdp2 or not isinstance(model, FSDP):
        state_dict = accelerator.get_state_dict(model)
    else:
        with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT,
                                  FullStateDictConfig(offload_to_cpu=False, rank0_only=True)):
            state_dict = model.state_dict()
    aliases: dict[int, list[str]] = {}
    for name, p in accelerator.unwrap_model(model).named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(name)
    for names in aliases.values():
        present = [n for n in names if n in state_dict]
        for name in present[1:]:
            state_dict[name] = state_dict[present[0]]
    return state_dict


def save_checkpoint(accelerator: Accelerator, model, tokenizer, cfg: TrainConfig, state: TrainerState,
                    out_dir: str | Path, optimizer, scheduler) -> Path:
    """Write a complete checkpoint atomically; call on every process (they all take part)."""
    out = Path(out_dir).resolve()
    tmp = partial_dir(out)
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    state_dict = full_state_dict(accelerator, model) if fsdp else None  # collective under FSDP
    if accelerator.is_main_process:
        extra = {CONFIG_FILE: to_yaml(cfg, header="resolved llada-tts training config"),
                 STATE_FILE: json.dumps(asdict(state), indent=1), META_FILE: checkpoint_meta(cfg).to_json()}
        save_model(accelerator.unwrap_model(model), tmp, tokenizer=tokenizer, extra_files=extra,
                   state_dict=state_dict)
    accelerator.wait_for_everyone()
    if fsdp:  # sharded model + optimizer: accelerate's format (no custom objects registered)
        accelerator.save_state(str(tmp / STATE_DIR / FSDP_DIR))
        accelerator.wait_for_everyone()  # its RNG pickles go: the RNG state is in rng_N.safetensors below
        for p in (tmp / STATE_DIR / FSDP_DIR).glob("*.pkl"):  # (every process: node-local disks too)
            p.unlink(missing_ok=True)
    safe_state.save_state(tmp / STATE_DIR, [] if fsdp else [optimizer], [scheduler], accelerator.scaler,
                          process_index=accelerator.process_index, main=accelerator.is_main_process)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_dir(tmp, out)
    accelerator.wait_for_everyone()
    return out


def init_optimizer_state(optimizer) -> None:
    """Give a fresh optimizer its state tensors (AdamW: step, zero moments) without moving any weight: one
    step with zero gradients at learning rate 0. FSDP's sharded load (accelerate.load_state, through
    torch.distributed.checkpoint) fills only the state entries the optimizer already holds, so on a fresh
    optimizer it would restore no AdamW moments at all and the resumed run would silently differ."""
    import torch

    opt = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
    if opt.state:
        return
    lrs = [group["lr"] for group in opt.param_groups]
    for group in opt.param_groups:
        group["lr"] = 0.0
        for p in group["params"]:
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
    opt.step()
    for group, lr in zip(opt.param_groups, lrs):
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)


def load_training_state(accelerator: Accelerator, ckpt: str | Path, optimizer, scheduler) -> None:
    """Restore optimizer, LR scheduler, gradient scaler and RNG states (model weights are loaded from the
    folder itself); ValueError (one line) when they are missing, damaged or in the old pickled format."""
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    folder = Path(ckpt) / STATE_DIR
    if fsdp:
        check_fsdp_state(ckpt)  # accelerate.load_state never sees a pickle
        init_optimizer_state(optimizer)
        try:
            accelerator.load_state(str(folder / FSDP_DIR))
        except Exception as e:  # noqa: BLE001  truncated shards: one line
            raise ValueError(f"{folder / FSDP_DIR}: damaged FSDP state ({first_line(e)}); "
                             "resume from another checkpoint") from e
    safe_state.load_state(folder, [] if fsdp else [optimizer], [scheduler], accelerator.scaler,
                          process_index=accelerator.process_index, model_hint=_model_hint(ckpt))
