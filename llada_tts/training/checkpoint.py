"""Checkpoints: ``checkpoint-epoch-N/`` = save_pretrained model + tokenizer + resolved config + training state.

Layout of one checkpoint (written to ``.checkpoint-epoch-N.partial`` and renamed when complete)::

    config.json, model.safetensors, tokenizer files      load with llada_tts.model.load_model(dir)
    train_config.yaml                                    the resolved TrainConfig of the run
    trainer_state.json                                   step counters + data position (TrainerState)
    llada_tts.json                                       voices, codec, speaking rate (checkpoint_meta)
    training_state/                                      accelerate.save_state: optimizer, LR
                                                         scheduler, RNG per process (no duplicate
                                                         weights, except FSDP's sharded model)
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import DistributedType

from llada_tts.checkpoint_meta import META_FILE
from llada_tts.config import TrainConfig, to_yaml
from llada_tts.model import save_model
from llada_tts.training.build import checkpoint_meta

CONFIG_FILE = "train_config.yaml"
STATE_FILE = "trainer_state.json"
STATE_DIR = "training_state"
PREFIX = "checkpoint-epoch-"
# settings that fix the meaning of a stored data position: resuming with others would train on other rows
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


def read_state(ckpt: str | Path) -> TrainerState:
    """The TrainerState of a checkpoint folder, or ValueError if it is not a complete checkpoint."""
    path = Path(ckpt) / STATE_FILE
    if not path.is_file() or not (Path(ckpt) / STATE_DIR).is_dir():
        raise ValueError(f"{ckpt} is not a resumable llada-tts checkpoint (no {STATE_FILE} / {STATE_DIR}/)")
    return TrainerState(**json.loads(path.read_text()))


def find_latest(save_folder: str | Path) -> Path | None:
    """The complete checkpoint in ``save_folder`` with the most optimizer updates (None if there is none)."""
    best, best_step = None, -1
    for d in Path(save_folder).glob(f"{PREFIX}*"):
        try:
            step = read_state(d).global_step
        except (ValueError, OSError, json.JSONDecodeError, TypeError):
            continue
        if step > best_step:
            best, best_step = d, step
    return best


def check_resumable(saved: dict, cfg: TrainConfig, num_processes: int, state: TrainerState) -> None:
    """ValueError if the run's data settings differ from the checkpoint's (the position would be wrong)."""
    now = cfg.to_dict()
    changed = [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in RESUME_KEYS if k in saved and saved[k] != now[k]]
    if state.num_processes != num_processes:
        changed.append(f"processes: {state.num_processes} -> {num_processes}")
    if changed:
        raise ValueError("cannot resume exactly, the data order would change: " + "; ".join(changed) +
                         ". Use the checkpoint's settings, or start a new run from it with model_name: <checkpoint>")


def _replace_dir(tmp: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def register_hooks(accelerator: Accelerator) -> None:
    """Keep model weights out of ``save_state`` / ``load_state``: they live in the checkpoint's
    model.safetensors (FSDP still writes its sharded copy, which it needs to reload shards)."""
    if accelerator.distributed_type == DistributedType.FSDP:
        return
    accelerator.register_save_state_pre_hook(lambda models, weights, output_dir: weights.clear())
    accelerator.register_load_state_pre_hook(lambda models, input_dir: models.clear())


def save_checkpoint(accelerator: Accelerator, model, tokenizer, cfg: TrainConfig, state: TrainerState,
                    out_dir: str | Path) -> Path:
    """Write a complete checkpoint atomically; call on every process (they all take part)."""
    out = Path(out_dir).resolve()
    tmp = out.parent / f".{out.name}.partial"
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model) if fsdp else None  # collective under FSDP
    if accelerator.is_main_process:
        extra = {CONFIG_FILE: to_yaml(cfg, header="resolved llada-tts training config"),
                 STATE_FILE: json.dumps(asdict(state), indent=1), META_FILE: checkpoint_meta(cfg).to_json()}
        save_model(accelerator.unwrap_model(model), tmp, tokenizer=tokenizer, extra_files=extra,
                   state_dict=state_dict)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / STATE_DIR))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _replace_dir(tmp, out)
    accelerator.wait_for_everyone()
    return out


def load_training_state(accelerator: Accelerator, ckpt: str | Path) -> None:
    """Restore optimizer, LR scheduler and RNG states (model weights are loaded from the folder itself)."""
    accelerator.load_state(str(Path(ckpt) / STATE_DIR))
