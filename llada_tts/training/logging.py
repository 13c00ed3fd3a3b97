"""Training metrics: an on-device accumulator, tracker set-up (tensorboard / wandb) and the progress bar.

Every logged line also goes to ``<save_folder>/metrics.jsonl`` (main process), which needs no
extra package and is what the tests read. Metrics are accumulated as device tensors and reduced
across processes once per logging interval, so logging costs one collective, not one per step.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, TensorBoardTracker, WandBTracker
from accelerate.utils import is_tensorboard_available, is_wandb_available
from tqdm.auto import tqdm

from audio_tokenizer.fileio import json_line  # one metrics.jsonl format for both trainers
from llada_tts.training.config import TrainConfig

log = logging.getLogger(__name__)

# per-window sums, in this order, reduced across processes in one all-reduce; between "micro_steps"
# and "tokens": the keys of diffusion_step's stats
STATS = ("text_sum", "text_count", "audio_sum", "audio_count", "fill_sum", "fill_count", "all_correct", "all_total",
         "text_correct", "text_total", "audio_correct", "audio_total", "fill_correct", "fill_total",
         "tts_fill", "tts_answer", "tts_rows", "crops", "prompt_drops")
FIELDS = ("loss", "micro_steps", *STATS, "tokens")


class MetricWindow:
    """Sums of step statistics since the last log, kept on the device (no host sync per step)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(FIELDS), dtype=torch.float64, device=self.device)
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, stats: dict[str, torch.Tensor], tokens: int) -> None:
        """Add one forward pass: its loss, loss/accuracy breakdown sums and token count."""
        values = [loss.detach(), torch.ones((), device=self.device)]
        values += [stats[k] for k in STATS]
        values.append(torch.tensor(float(tokens), device=self.device))
        self.sums += torch.stack([v.to(device=self.device, dtype=torch.float64) for v in values])

    def summary(self, accelerator: Accelerator) -> dict[str, float]:
        """Averages over the window and all processes; resets the window."""
        total = accelerator.reduce(self.sums.clone(), reduction="sum") if accelerator.num_processes > 1 else self.sums
        s = dict(zip(FIELDS, total.tolist()))
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.reset()

        def ratio(a: str, b: str) -> float:
            return s[a] / s[b] if s[b] else 0.0

        return {"loss": ratio("loss", "micro_steps"), "loss_text": ratio("text_sum", "text_count"),
                "loss_audio": ratio("audio_sum", "audio_count"), "loss_fill": ratio("fill_sum", "fill_count"),
                "accuracy": ratio("all_correct", "all_total"), "accuracy_text": ratio("text_correct", "text_total"),
                "accuracy_audio": ratio("audio_correct", "audio_total"),
                "accuracy_fill": ratio("fill_correct", "fill_total"),
                "tts_fill_fraction": ratio("tts_fill", "tts_answer"), "tts_rows": s["tts_rows"],
                "prompt_drops": s["prompt_drops"], "crops": s["crops"],
                "masked_tokens": s["all_total"], "tokens": s["tokens"], "tokens_per_s": s["tokens"] / elapsed}


def make_trackers(cfg: TrainConfig) -> list[GeneralTracker]:
    """Tracker instances for ``cfg.report_to``; wandb asked for but missing is an error, a missing
    tensorboard only a warning (metrics.jsonl is still written)."""
    trackers: list[GeneralTracker] = []
    logging_dir = cfg.logging_dir or str(Path(cfg.save_folder) / "runs")
    for name in cfg.trackers:
        if name == "tensorboard":
            if is_tensorboard_available():
                trackers.append(TensorBoardTracker(cfg.run_name, logging_dir))
            else:
                log.warning("report_to asks for tensorboard, which is not installed (pip install tensorboard); "
                            "metrics go to metrics.jsonl only")
        elif name == "wandb":
            if not is_wandb_available():
                raise ValueError("report_to asks for wandb, which is not installed: pip install wandb "
                                 "(or set report_to: tensorboard)")
            trackers.append(WandBTracker(cfg.project_name, name=cfg.run_name))
    return trackers


def _hparams(cfg: TrainConfig) -> dict:
    """Config values as tracker-safe scalars (None -> 'none')."""
    return {k: ("none" if v is None else v) for k, v in cfg.to_dict().items()}


class RunLogger:
    """Sends metric dicts to the trackers, metrics.jsonl and the progress bar (main process only)."""

    def __init__(self, accelerator: Accelerator, cfg: TrainConfig, total_steps: int, initial_step: int = 0):
        self.accelerator = accelerator
        self.main = accelerator.is_main_process
        self.path = Path(cfg.save_folder) / "metrics.jsonl"
        if accelerator.trackers == [] and accelerator.log_with:
            accelerator.init_trackers(cfg.project_name, config=_hparams(cfg))
        self.bar = tqdm(total=total_steps, initial=initial_step, disable=not self.main, unit="step",
                        desc="training", dynamic_ncols=True)
        if self.main:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record ``metrics`` for optimizer update ``step`` (call on every process)."""
        self.accelerator.log(metrics, step=step)
        if not self.main:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json_line({"step": step, **metrics}) + "\n")
        self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", acc=f"{metrics['accuracy']:.3f}",
                             lr=f"{metrics['lr']:.2e}", refresh=False)

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
        self.accelerator.end_training()


def read_metrics(save_folder: str | Path) -> dict[int, dict]:
    """step -> metrics from ``metrics.jsonl`` (the last line wins for a step logged twice after a resume)."""
    out = {}
    path = Path(save_folder) / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        row = json.loads(line)
        out[int(row["step"])] = row
    return out
