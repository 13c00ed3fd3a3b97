"""The mixed text + TTS masked-diffusion trainer (epoch-based, resumable) on accelerate.

One process on CPU, one GPU, DDP or FSDP: whatever ``accelerate launch`` set up. Each process
builds the same global data order (``MixtureSampler``) and takes its own slice of every step, so
the DataLoader is not handed to accelerate for sharding. Gradient accumulation is explicit (no
gradient sync until the last pass of a group), and checkpoints are taken only at optimizer-update
boundaries, which is what makes ``--resume`` exact.

A fresh run refuses a save_folder that already holds a run (unless ``overwrite``), a resumed run refuses
a checkpoint of another folder, a second run into a folder that a live run holds (``run.lock``) is
refused before anything there is touched, temp folders of a killed save are tidied at start, and a
non-finite loss stops the run (:class:`NonFiniteLossError`) before it is logged or saved.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import signal
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed

from audio_tokenizer.training.state import NonFiniteLossError, build_holding, take_run_lock
from llada_tts.data import MixtureDataset, MixtureSampler, collate
from llada_tts.diffusion.anneal import anneal_fraction
from llada_tts.training import checkpoint as ckpt
from llada_tts.training.build import build_model, build_tokenizer, load_datasets, prompt_multiple
from llada_tts.training.config import TrainConfig, load_config, save_config
from llada_tts.training.logging import MetricWindow, RunLogger, make_trackers
from llada_tts.training.optim import build_optimizer, build_scheduler
from llada_tts.training.step import batch_to, diffusion_step, step_generator
from llada_tts.training.warmup import Warmup

log = logging.getLogger(__name__)


def resolve_precision(setting: str) -> str | None:
    """``auto``: the accelerate launch setting if any, else bf16 on a bf16 GPU, else fp32 ('no')."""
    if setting != "auto":
        return setting
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None  # let the launcher's config decide
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def fsdp_requested() -> bool:
    """True when the launcher asked for FSDP (``accelerate launch`` with ``distributed_type: FSDP``)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def make_accelerator(mixed_precision: str) -> Accelerator:
    """The run's Accelerator. Without CUDA (``cpu=True``), processes started by torchrun form a gloo group
    (MULTI_CPU); accelerate then ignores an FSDP launch config and would train plain DDP, so an FSDP launch
    on CPU is switched to FSDP here (accelerate's plugin, from the launcher's ``FSDP_*`` settings). Under FSDP
    with bf16 the buffers (RoPE's ``inv_freq``) stay fp32, as in DDP and at inference; accelerate's default
    policy would round them to bf16."""
    acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=resolve_precision(mixed_precision))
    if fsdp_requested() and acc.distributed_type == DistributedType.MULTI_CPU:
        from accelerate.state import PartialState
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin()
        if acc.mixed_precision != "no":
            plugin.set_mixed_precision(acc.mixed_precision)
        acc.state.fsdp_plugin = plugin
        acc.state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        acc.state.device = PartialState._shared_state["device"] = torch.device("cpu")  # FSDP: not 'cpu:0'
    if fsdp_requested() and acc.distributed_type != DistributedType.FSDP and acc.num_processes > 1:
        raise ValueError(f"the launcher asked for FSDP but accelerate set up {acc.distributed_type}; "
                         "refusing to train without FSDP")
    if acc.distributed_type == DistributedType.FSDP:
        plugin = acc.state.fsdp_plugin
        policy = plugin.mixed_precision_policy  # FSDP1's MixedPrecision (a dataclass) has buffer_dtype
        if getattr(policy, "buffer_dtype", None) not in (None, torch.float32):
            plugin.mixed_precision_policy = dataclasses.replace(policy, buffer_dtype=torch.float32)
    return acc


class FiniteWatch:
    """The first optimizer update whose loss (or gradient norm) was NaN or inf, kept on the device so
    that watching costs no host sync per step; :meth:`check` syncs (at logging and before saving)."""

    def __init__(self, device: torch.device):
        self.first = torch.full((), -1, dtype=torch.long, device=device)

    def add(self, value: torch.Tensor, update: int) -> None:
        bad = ~torch.isfinite(value.detach()).all() & (self.first < 0)
        self.first = torch.where(bad, torch.full_like(self.first, update), self.first)

    def check(self, accelerator: Accelerator, last: Path | None) -> None:
        first = self.first
        if accelerator.num_processes > 1:  # collective: every process calls check at the same points
            first = accelerator.gather(first[None]).max()
        update = int(first.item())
        if update >= 0:
            kept = f"the last checkpoint is {last}" if last else "no checkpoint was written"
            raise NonFiniteLossError(f"loss became NaN or inf at optimizer update {update}; stopped without saving "
                                     f"({kept}): lower learning_rate, check the data, or keep max_grad_norm set")


@dataclass
class TrainResult:
    state: ckpt.TrainerState
    checkpoint: Path | None  # the last checkpoint written
    interrupted: bool  # stopped early by Ctrl-C / SIGTERM / stop_after (resumable)


class Trainer:
    """Build everything from ``cfg`` (and ``resume``: a checkpoint folder, or 'latest'), then :meth:`train`.

    ``full_logits``: compute logits at every position instead of the masked ones only (the same loss;
    for benchmarks and checks, see :func:`diffusion_step`)."""

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None, overwrite: bool = False,
                 full_logits: bool = False):
        self.cfg = cfg.resolved()
        self.full_logits = full_logits
        c = self.cfg
        self.accelerator = make_accelerator(c.mixed_precision)
        acc = self.accelerator
        if c.audio_loss == "slot" and acc.distributed_type == DistributedType.FSDP:
            raise ValueError("audio_loss: slot does not run under FSDP (its loss reads the output head's weight "
                             "outside the forward pass, where FSDP holds only this process's shard of it): use "
                             "audio_loss: full, or launch with DDP (recipes/accelerate/ddp.yaml)")
        if c.number_processes is not None and c.number_processes != acc.num_processes:
            raise ValueError(f"number_processes is {c.number_processes} but this run has {acc.num_processes} "
                             f"process(es): launch with `accelerate launch --num_processes {c.number_processes} ...` "
                             "or remove number_processes")
        self.run_lock = self._prepare_folder(resume, overwrite)
        build_holding(self, self.run_lock, lambda: self._build(resume))

    def close(self) -> None:
        """Release save_folder's run lock (done when training ends; idempotent)."""
        if self.run_lock is not None:
            self.run_lock.release()

    def _build(self, resume) -> None:
        c, acc = self.cfg, self.accelerator
        # trackers only now, holding the lock: older accelerate opens tensorboard's folder in save_folder at once
        acc.log_with = make_trackers(c)
        set_seed(c.seed)
        self.resume_dir = self._find_resume(resume)
        self.tokenizer = build_tokenizer(c)
        with acc.main_process_first():
            multiple = prompt_multiple(c, str(self.resume_dir) if self.resume_dir else None)
            tts, text = load_datasets(c, self.tokenizer, progress=acc.is_main_process, multiple=multiple)
        self.sampler = MixtureSampler(len(tts) if tts is not None else 0, len(text) if text is not None else 0,
                                      c.ratio, c.batch_size, seed=c.seed, num_replicas=acc.num_processes,
                                      rank=acc.process_index, drop_last=True)
        self._check_text_fraction()
        self.loader = torch.utils.data.DataLoader(MixtureDataset(tts, text), batch_sampler=self.sampler,
                                                  collate_fn=collate, num_workers=c.num_workers,
                                                  pin_memory=acc.device.type == "cuda")
        self.state = ckpt.TrainerState(steps_per_epoch=len(self.sampler), next_save=c.save_epochs,
                                       num_processes=acc.num_processes)
        self.updates_per_epoch = math.ceil(len(self.sampler) / c.gradient_accumulation_steps)
        self.total_steps = c.epochs * self.updates_per_epoch
        if c.max_steps is not None:
            self.total_steps = min(self.total_steps, c.max_steps)
        model = build_model(c, model_name=str(self.resume_dir) if self.resume_dir else None)
        optimizer = build_optimizer(model, c.learning_rate, c.weight_decay)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        warmup = Warmup.parse(c.warmup).updates(self.total_steps, self.updates_per_epoch)
        self.scheduler = build_scheduler(self.optimizer, c.lr_scheduler_type, warmup, self.total_steps)
        if self.resume_dir is not None:
            self._restore(self.resume_dir)
        self.stop_requested = False
        self.watch = FiniteWatch(acc.device)
        self.last_checkpoint = self.resume_dir

    # --- set-up helpers ---------------------------------------------------------------------------
    def _check_text_fraction(self) -> None:
        """Warn when an epoch is too short for ``ratio`` (each epoch starts with a text batch)."""
        got, want = self.sampler.text_fraction, self.cfg.ratio
        if 0 < want < 1 and abs(got - want) > max(0.05, 0.25 * want):
            log.warning("ratio %s: an epoch has only %d batches, so %.0f%% of its samples are text; more TTS rows "
                        "(or a smaller batch_size) bring it closer to ratio", want, len(self.sampler), 100 * got)

    def _prepare_folder(self, resume, overwrite: bool):
        """Refuse a used save_folder (fresh run) or a checkpoint of another folder (resume); then take the
        folder's run lock (refused while a live run holds it), and only then tidy a killed save's temp folders
        and, with ``overwrite``, clear the earlier run. Returns the lock (main process) or None."""
        acc, folder = self.accelerator, Path(self.cfg.save_folder)
        if resume is not None and str(resume) != "latest" and Path(resume).resolve().parent != folder.resolve():
            raise ValueError(f"--resume {resume}: that checkpoint belongs to the run in "
                             f"{Path(resume).resolve().parent}, but save_folder is {folder}; a resumed run continues "
                             "in its own folder (leave save_folder out, or start a new run from its weights with "
                             f"--model_name {resume})")
        used = [] if resume is not None else ckpt.run_files(folder)
        if used and not overwrite:
            raise ValueError(f"save_folder {folder} already holds a run ({', '.join(p.name for p in used[:3])}"
                             f"{' ...' if len(used) > 3 else ''}): continue it with --resume, replace it with "
                             "--overwrite_output_dir, or choose another save_folder")
        lock = take_run_lock(acc, folder, log=lambda line: log.warning("%s", line))
        try:
            if acc.is_main_process:
                for line in ckpt.clean_save_folder(folder):
                    log.warning("%s", line)
                if used:
                    extra = [folder / "runs"] if self.cfg.logging_dir is None and (folder / "runs").is_dir() else []
                    for p in used + extra:
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
                    log.warning("--overwrite_output_dir: removed the earlier run in %s (%d checkpoint(s))", folder,
                                sum(p.is_dir() for p in used))
            acc.wait_for_everyone()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return lock

    def _find_resume(self, resume) -> Path | None:
        if resume is None:
            return None
        if str(resume) == "latest":
            found = ckpt.find_latest(self.cfg.save_folder)
            if found is None:
                old = ckpt.old_format_checkpoints(self.cfg.save_folder)
                if old:
                    ckpt.read_state(old[-1])  # the one-line "old pickled format" error
                raise ValueError(f"--resume: no resumable checkpoint in {self.cfg.save_folder}")
            return found
        ckpt.read_state(resume)  # ValueError now if it is not a complete checkpoint
        return Path(resume)

    def _restore(self, path: Path) -> None:
        state = ckpt.read_state(path)
        base = ckpt.config_base(path)  # older checkpoints: paths relative to the run's first folder
        saved = load_config(path / ckpt.CONFIG_FILE, base=base).resolved(base).to_dict()
        ckpt.check_resumable(saved, self.cfg, self.accelerator.num_processes, state)
        self.sampler.load_state_dict({**state.sampler, "epoch": state.epoch, "step": state.step_in_epoch})
        ckpt.load_training_state(self.accelerator, path, self.optimizer, self.scheduler)
        self.state = state
        self.accelerator.print(f"resumed from {path} at update {state.global_step} "
                               f"(epoch {state.epoch + 1}, batch {state.step_in_epoch})")

    # --- signals ------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self.stop_requested:  # second Ctrl-C: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.stop_requested = True
        self.accelerator.print("\nstopping after this optimizer update; a resumable checkpoint will be saved "
                               "(Ctrl-C again to abort without saving)")

    def _should_stop(self, stop_after: int | None) -> bool:
        """Stop flag agreed by all processes (any process asking is enough)."""
        flag = self.stop_requested or (stop_after is not None and self.state.global_step >= stop_after)
        if self.accelerator.num_processes > 1:
            t = torch.tensor([float(flag)], device=self.accelerator.device)
            flag = bool(self.accelerator.reduce(t, reduction="sum").item() > 0)
        return flag

    # --- the loop -----------------------------------------------------------------------------------
    def save(self, epoch_label: float) -> Path:
        out = ckpt.checkpoint_dir(self.cfg.save_folder, epoch_label)
        self.state.sampler = self.sampler.state_dict(step=self.state.step_in_epoch)
        self.state.sampler["epoch"] = self.state.epoch
        self.watch.check(self.accelerator, self.last_checkpoint)  # never save weights a NaN has reached
        path = ckpt.save_checkpoint(self.accelerator, self.model, self.tokenizer, self.cfg, self.state, out,
                                    self.optimizer, self.scheduler)
        self.last_checkpoint = path
        self.accelerator.print(f"saved {path}")
        return path

    def _update(self, window: MetricWindow, logger: RunLogger) -> float | None:
        """Clip, step the optimizer and scheduler; returns the gradient norm when clipping."""
        c, acc = self.cfg, self.accelerator
        grad_norm = None
        if c.max_grad_norm:
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
            if acc.scaler is None and isinstance(grad_norm, torch.Tensor):  # fp16 skips inf steps by design
                self.watch.add(grad_norm, self.state.global_step + 1)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.global_step += 1
        logger.advance()
        if self.state.global_step % c.logging_steps == 0 or self.state.global_step == self.total_steps:
            self.watch.check(acc, self.last_checkpoint)  # before a NaN reaches metrics.jsonl
            metrics = window.summary(acc)
            self.state.tokens_seen += int(metrics["tokens"])
            metrics.update(lr=lr, epoch=self.state.progress)
            if grad_norm is not None:
                metrics["grad_norm"] = float(grad_norm)
            logger.log(metrics, self.state.global_step)
        return grad_norm

    def train(self, stop_after: int | None = None) -> TrainResult:
        """Train to ``epochs`` / ``max_steps``; ``stop_after`` updates (or Ctrl-C) stops early with a
        resumable checkpoint. Returns the final state and the last checkpoint."""
        run = self.updates(stop_after)
        while True:
            try:
                next(run)
            except StopIteration as done:
                return done.value

    def updates(self, stop_after: int | None = None) -> Generator[ckpt.TrainerState, None, TrainResult]:
        """:meth:`train` as a generator that yields the state after every optimizer update
        (checkpoints, logging and stopping included) and returns the :class:`TrainResult`
        (``result = yield from trainer.updates()``, or :meth:`train`)."""
        c, acc, st = self.cfg, self.accelerator, self.state
        if acc.is_main_process:
            save_config(c, Path(c.save_folder) / ckpt.CONFIG_FILE)
        logger = RunLogger(acc, c, self.total_steps, st.global_step)
        window = MetricWindow(acc.device)
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        last, last_step, interrupted = self.resume_dir, (st.global_step if self.resume_dir else -1), False
        k = c.gradient_accumulation_steps
        self.model.train()
        try:
            while st.epoch < c.epochs and st.global_step < self.total_steps and not interrupted:
                self.sampler.set_epoch(st.epoch)
                pos = st.step_in_epoch
                for batch in self.loader:
                    group_start = pos - pos % k
                    group = min(k, st.steps_per_epoch - group_start)
                    boundary = pos + 1 == group_start + group
                    sync = contextlib.nullcontext() if boundary else acc.no_sync(self.model)
                    with sync:
                        batch = batch_to(batch, acc.device)
                        gen = step_generator(c.seed, st.micro_step, acc.process_index, acc.device)
                        out = diffusion_step(self.model, batch, gen, c.mask_token_id, c.eps, c.random_length_prob,
                                             full_logits=self.full_logits, prompt_drop_prob=c.prompt_drop_prob,
                                             audio_loss=c.audio_loss, attention_fraction=anneal_fraction(
                                                 st.global_step, c.attention_anneal_steps))
                        acc.backward(out.loss / group)
                    window.add(out.loss, out.stats, out.tokens)
                    self.watch.add(out.loss, st.global_step + 1)
                    st.micro_step += 1
                    pos += 1
                    if not boundary:
                        continue
                    st.step_in_epoch = pos
                    self._update(window, logger)
                    if st.step_in_epoch == st.steps_per_epoch:
                        st.epoch, st.step_in_epoch = st.epoch + 1, 0
                    if self._should_stop(stop_after) and st.global_step < self.total_steps:
                        last, last_step, interrupted = self.save(st.progress), st.global_step, True
                        break
                    while st.progress >= st.next_save - 1e-9:
                        label, st.next_save = st.next_save, st.next_save + c.save_epochs
                        if st.progress - label < c.save_epochs - 1e-9:  # one save covers skipped labels
                            last, last_step = self.save(label), st.global_step
                    yield st
                    if st.global_step >= self.total_steps or st.step_in_epoch == 0:
                        break  # done, or epoch finished: the sampler starts the next one
            if not interrupted and last_step != st.global_step:
                last = self.save(st.progress)
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            logger.close()
            self.close()
        return TrainResult(state=st, checkpoint=last, interrupted=interrupted)
