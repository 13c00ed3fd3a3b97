"""Codec training loop on accelerate (CPU, one GPU, multi-GPU DDP).

Run folder (``output_dir``)::

    run_config.yaml      the resolved CodecTrainConfig (a second run in the folder must match it)
    checkpoint/          config.json + model.safetensors (fp32) + trainer_state.json +
                         training_state/ (optimizer, scheduler, RNG as safetensors + JSON, never a
                         pickle: audio_tokenizer.training.state); replaced atomically
    snapshots/step-N/    fp16 codec folders (snapshot_every), loadable with SnacCodec.from_pretrained
    codec/               the final codec (fp32), written when max_steps is reached
                         (checkpoint/ also holds discriminator.safetensors with adversarial on)
    metrics.jsonl        one JSON line per log / eval
    run.lock             while a run is live (pid, host): a second start into the folder is refused
    runs/                tensorboard: losses, codebook stats, held-out audio

Exact resume: batches are a pure function of (seed, step, process) and every other state is in
the checkpoint, so a run resumed at step k equals an uninterrupted one. Temp folders of a killed save
(``.checkpoint.partial``, ``.codec.old-XXXXXXXX``, ``snapshots/.step-N.partial``) are tidied at the next
start, once it holds run.lock; a NaN / inf loss stops the run before it is logged or saved.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import save_file
from tqdm.auto import tqdm

from audio_tokenizer import typed_config
from audio_tokenizer.codec import SnacCodec, _load_state_dict, _write_checkpoint, build_model, check_config
from audio_tokenizer.errors import first_line
from audio_tokenizer.fileio import LOCK_FILE, clean_temp_dirs, json_line, partial_dir, replace_dir, write_atomic
from audio_tokenizer.training import guard
from audio_tokenizer.training import state as safe_state
from audio_tokenizer.training.config import FREE_KEYS, CodecTrainConfig
from audio_tokenizer.training.data import CropSampler, load_corpus_audio
from audio_tokenizer.training.discriminators import Discriminators, discriminator_loss, generator_losses
from audio_tokenizer.training.losses import dc_loss, mel_losses
from audio_tokenizer.training.model import CodecForTraining
from audio_tokenizer.training.state import NonFiniteLossError

RUN_CONFIG, STATE_FILE, STATE_DIR = "run_config.yaml", "trainer_state.json", "training_state"
DISC_FILE = "discriminator.safetensors"


def _clean_temp(out: Path) -> list[str]:
    """Temp folders a killed save left in the run folder (complete checkpoints are never removed); only
    while holding the folder's run lock."""
    return clean_temp_dirs(out, r"checkpoint|codec") + clean_temp_dirs(out / "snapshots", r"step-[0-9]+")


def _read_step(ckpt: Path) -> int:
    try:
        step = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{ckpt / STATE_FILE}: damaged trainer state ({type(e).__name__}: {first_line(e)}); "
                         "the checkpoint cannot be resumed") from e
    return step


def lr_lambda(cfg: CodecTrainConfig):
    """Linear warmup, constant, then linear decay to final_lr_ratio over the last decay_fraction."""
    decay_start = cfg.max_steps * (1 - cfg.decay_fraction)

    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if step < decay_start:
            return 1.0
        frac = (step - decay_start) / max(cfg.max_steps - decay_start, 1)
        return 1.0 - (1.0 - cfg.final_lr_ratio) * min(frac, 1.0)
    return f


def _model_hint(out: Path) -> str:
    return f"start a new run (new output_dir) from its weights with --model {out / 'checkpoint'}"


def _check_run_folder(cfg: CodecTrainConfig, out: Path, resume: bool) -> None:
    """Refuse to mix two runs in one folder; on resume, refuse an old pickled checkpoint, then settings that
    change the run (a key missing from an older run_config.yaml counts as its default). Reads only."""
    saved_path = out / RUN_CONFIG
    if not saved_path.is_file():
        if resume:
            raise ValueError(f"--resume: {out} holds no codec run")
        if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise ValueError(f"{out} is not empty and holds no codec run; choose a new output_dir")
        return
    if not resume:
        raise ValueError(f"{out} already holds a codec run; pass --resume to continue it, or choose a new output_dir")
    state = out / "checkpoint" / STATE_DIR
    if safe_state.is_old_format(state):  # this message wins over any settings difference
        raise safe_state.TrainingStateError(safe_state.old_format_message(state, _model_hint(out)))
    saved = typed_config.read_yaml(saved_path)
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(CodecTrainConfig)}
    now = cfg.to_dict()
    changed = [f"{k}: {saved.get(k, defaults[k])!r} -> {now[k]!r}" for k in now
               if k not in FREE_KEYS and saved.get(k, defaults[k]) != now[k]]
    if changed:
        raise ValueError("cannot resume: settings differ from the run's: " + "; ".join(changed))


def _load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load a safetensors state dict into ``module`` (fp32); ValueError (one line) when it does not fit."""
    try:
        module.load_state_dict({k: v.float() for k, v in _load_state_dict(path).items()})
    except RuntimeError as e:  # missing / unexpected keys, other shapes: another model's (or an edited) file
        detail = " ".join(str(e).split()).removeprefix("Error(s) in loading state_dict for ")
        raise ValueError(f"{path}: does not fit the model of this run ({detail[:300]})") from e


def _save_codec(folder: Path, config: dict, codec: torch.nn.Module, half: bool = False) -> None:
    tmp = partial_dir(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = codec
    if half:
        model = build_model(config)
        model.load_state_dict(codec.state_dict())
        model = model.half()
    _write_checkpoint(tmp, config, model)
    replace_dir(tmp, folder)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop logged rows past ``step`` (written after the checkpoint a run resumes from)."""
    if path.is_file():
        rows = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= step]
        write_atomic(path, "".join(r + "\n" for r in rows))


class CodecTrainer:
    """Build with a config, call :meth:`train`."""

    def __init__(self, cfg: CodecTrainConfig, resume: bool = False):
        self.cfg, self.out = cfg, Path(cfg.output_dir)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        bad = [f"{k}={v}" for k, v in cfg.to_dict().items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: must be a finite number")
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision)
        _check_run_folder(cfg, self.out, resume)  # refuse first (reads only) ...
        self.run_lock = safe_state.take_run_lock(self.acc, self.out, log=lambda line: print(f"codec_train: {line}"))
        safe_state.build_holding(self, self.run_lock, lambda: self._build(resume))  # ... then tidy and build

    def close(self) -> None:
        """Release output_dir's run lock (done when training ends; idempotent)."""
        if self.run_lock is not None:
            self.run_lock.release()

    def _build(self, resume: bool) -> None:
        cfg = self.cfg
        if self.acc.is_main_process:
            for line in _clean_temp(self.out):
                print(f"codec_train: {line}")
        self.acc.wait_for_everyone()
        set_seed(cfg.seed)
        self.model_config, init_dir = cfg.model_config()
        self.model_config = check_config(self.model_config, source=cfg.model)
        codec = build_model(self.model_config)
        ckpt = self.out / "checkpoint"
        self.resumed = resume and (ckpt / STATE_FILE).is_file()
        if self.resumed:  # before any weights are read: the old pickled format is refused in one line
            safe_state.check_state(ckpt / STATE_DIR, self.acc.process_index, model_hint=_model_hint(self.out))
            self.step = _read_step(ckpt)
        weights = ckpt / "model.safetensors" if self.resumed else (init_dir / "model.safetensors" if init_dir else None)
        if weights is not None:
            _load_weights(codec, weights)
        self.codec = codec
        self.model = CodecForTraining(codec)
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
        self.model, self.opt, self.sched = self.acc.prepare(self.model, opt, sched)
        self.disc = None
        if cfg.adversarial:
            disc = Discriminators(channels=cfg.disc_channels)
            if self.resumed:
                _load_weights(disc, ckpt / DISC_FILE)
            opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_learning_rate or cfg.learning_rate,
                                      betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay)
            sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, lr_lambda(cfg))
            self.disc, self.opt_d, self.sched_d = self.acc.prepare(disc, opt_d, sched_d)
        if self.resumed:  # optimizers, schedulers, scaler, RNG (weights: above)
            safe_state.load_state(ckpt / STATE_DIR, *self._stateful(), self.acc.scaler,
                                  process_index=self.acc.process_index)
        else:
            self.step = 0
        self.saved_step = self.step if self.resumed else None
        waves = load_corpus_audio(cfg.train_data, progress=cfg.progress and self.acc.is_main_process)
        self.sampler = CropSampler(waves, cfg.segment_samples, (cfg.gain_db_min, cfg.gain_db_max), cfg.seed)
        self.eval_waves = (load_corpus_audio(cfg.eval_data, limit=cfg.eval_utterances, progress=False)
                           if cfg.eval_data and cfg.eval_every else [])
        self.usage = guard.UsageTracker(len(self.model_config["vq_strides"]), self.model_config["codebook_size"])
        self.writer = None
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / RUN_CONFIG).write_text(typed_config.to_yaml(cfg, header="resolved codec training config"))
            if self.resumed:
                _truncate_metrics(self.out / "metrics.jsonl", self.step)
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.out / "runs"), purge_step=self.step)

    def _kept(self) -> str:
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"the checkpoint at step {self.saved_step} is kept; --resume continues from it"

    def _stateful(self) -> tuple[list, list]:
        """(optimizers, schedulers) whose state a checkpoint holds."""
        if self.disc is None:
            return [self.opt], [self.sched]
        return [self.opt, self.opt_d], [self.sched, self.sched_d]

    # --- one step -----------------------------------------------------------------------------------
    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        return self.acc.gather(t) if self.acc.num_processes > 1 else t

    def _reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        return self.acc.reduce(t, reduction="mean") if self.acc.num_processes > 1 else t

    def _generator(self, tag: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step * 7 + tag)

    def losses(self, audio: torch.Tensor, adversarial: bool = False):
        """(total loss, parts dict, codes, latents, reconstruction [B, 1, T]) of a batch [B, 1, T]."""
        cfg = self.cfg
        with self.acc.autocast():
            audio_hat, codes, commit, codebook, latents = self.model(audio)
        audio_hat = audio_hat[..., : audio.shape[-1]]
        x, y = audio[:, 0].float(), audio_hat[:, 0].float()
        mel, lin = mel_losses(x, y)
        parts = {"mel": mel, "linear_mel": lin, "wave": (x - y).abs().mean(), "dc": dc_loss(x, y),
                 "commit": commit, "codebook": codebook}
        if adversarial:
            with self.acc.autocast():
                parts["adv"], parts["feature"] = generator_losses(self.disc(audio), self.disc(audio_hat))
        total = sum(getattr(cfg, f"w_{k}") * v for k, v in parts.items())
        return total, parts, codes, latents, audio_hat

    def discriminator_step(self, audio: torch.Tensor, audio_hat: torch.Tensor) -> float:
        """One LSGAN update of the discriminators on real vs (detached) reconstructed audio."""
        self.opt_d.zero_grad(set_to_none=True)
        with self.acc.autocast():
            loss = discriminator_loss(self.disc(audio), self.disc(audio_hat.detach()))
        self.acc.backward(loss)
        self.acc.clip_grad_norm_(self.disc.parameters(), self.cfg.max_grad_norm or float("inf"))
        self.opt_d.step()
        return float(loss.detach())

    def train_step(self) -> dict[str, float]:
        cfg, codec = self.cfg, self.codec
        audio = self.sampler.batch(self.step, cfg.batch_size, self.acc.process_index).to(self.acc.device)
        if self.step == 0 and not self.resumed and cfg.init_codebooks:
            with torch.no_grad():
                *_, latents = self.model(audio)
            guard.init_codebooks(codec.quantizer, [self._gather(z.contiguous()) for z in latents], self._generator(1))
        gan = self.disc is not None and self.step >= cfg.adv_start_step
        total, parts, codes, latents, audio_hat = self.losses(audio, adversarial=gan)
        loss = float(total.detach())
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"loss became {loss} at step {self.step + 1}; stopped without saving "
                                     f"({self._kept()}): lower learning_rate or check the data")
        self.opt.zero_grad(set_to_none=True)
        self.acc.backward(total)
        grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm or float("inf"))
        self.opt.step()
        self.sched.step()
        if self.disc is not None:
            if gan:
                parts["disc"] = torch.tensor(self.discriminator_step(audio, audio_hat))
                if not math.isfinite(float(parts["disc"])):
                    raise NonFiniteLossError(f"discriminator loss became {float(parts['disc'])} at step "
                                             f"{self.step + 1}; stopped without saving ({self._kept()}): "
                                             "lower disc_learning_rate")
            self.sched_d.step()
        if cfg.recenter_rate:
            guard.recenter(codec.quantizer, latents, cfg.recenter_rate, self._reduce_mean)
        self.usage.update([self._gather(c.contiguous()) for c in codes])
        self.step += 1
        out = {k: float(v.detach()) for k, v in parts.items()}
        out.update(loss=loss, grad_norm=float(grad_norm), lr=self.sched.get_last_lr()[0])
        if cfg.restart_every and self.step % cfg.restart_every == 0:
            out.update(guard.code_stats(self.usage.counts))
            restarted = guard.restart_dead_codes(codec.quantizer, self.usage.counts, latents, self._generator(2),
                                                 gather=self._gather)
            out.update({f"restarted_L{i}": n for i, n in enumerate(restarted)})
            self.usage.reset()
        return out

    # --- eval, saving ---------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out whole-utterance round trips: log-mel L1 and codes used per level."""
        self.model.eval()
        counts = guard.UsageTracker(len(self.model_config["vq_strides"]), self.model_config["codebook_size"])
        mels, first = [], None
        for w in self.eval_waves:
            audio = torch.from_numpy(w)[None, None].to(self.acc.device)
            audio_hat, codes, *_ = self.acc.unwrap_model(self.model)(audio)
            y = audio_hat[:, 0, : audio.shape[-1]].float()
            mels.append(float(mel_losses(audio[:, 0], y)[0]))
            counts.update(codes)
            first = y[0].cpu().numpy() if first is None else first
        self.model.train()
        stats = {f"eval_{k}": v for k, v in guard.code_stats(counts.counts).items()}
        stats["eval_mel"] = float(np.mean(mels))
        if self.writer is not None and first is not None:
            self.writer.add_audio("eval/round_trip_0", np.clip(first, -1, 1), self.step, sample_rate=24000)
        return stats

    def save(self) -> None:
        """The resumable checkpoint (atomic: written beside, then renamed)."""
        ckpt = self.out / "checkpoint"
        tmp = partial_dir(ckpt)
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            _write_checkpoint(tmp, self.model_config, self.codec)
            if self.disc is not None:
                state = {k: v.detach().cpu().contiguous()
                         for k, v in self.acc.unwrap_model(self.disc).state_dict().items()}
                save_file(state, str(tmp / DISC_FILE))
            (tmp / STATE_FILE).write_text(json.dumps({"step": self.step}) + "\n")
        self.acc.wait_for_everyone()
        safe_state.save_state(tmp / STATE_DIR, *self._stateful(), self.acc.scaler,
                              process_index=self.acc.process_index, main=self.acc.is_main_process)
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            replace_dir(tmp, ckpt)
        self.acc.wait_for_everyone()
        self.saved_step = self.step

    def _log(self, row: dict) -> None:
        if not self.acc.is_main_process:
            return
        row = {"step": self.step, **row}
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json_line(row) + "\n")
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.writer.add_scalar(k if k.startswith("eval") else f"train/{k}", v, self.step)

    # --- loop -----------------------------------------------------------------------------------------
    def train(self) -> Path:
        try:
            return self._train()
        finally:
            self.close()

    def _train(self) -> Path:
        cfg = self.cfg
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="codec", unit="step",
                   disable=not (cfg.progress and self.acc.is_main_process))
        window, started = [], time.perf_counter()
        try:
            while self.step < cfg.max_steps:
                row = self.train_step()
                window.append(row)
                bar.update(1)
                bar.set_postfix(mel=f"{row['mel']:.3f}", loss=f"{row['loss']:.2f}")
                extra = {k: v for k, v in row.items() if k.startswith(("codes_used", "perplexity", "restarted"))}
                if self.step % cfg.log_every == 0 or extra:
                    mean = {k: float(np.mean([r[k] for r in window])) for k in window[-1] if not k.startswith(
                        ("codes_used", "perplexity", "restarted"))}
                    mean["seconds_per_step"] = (time.perf_counter() - started) / len(window)
                    self._log({**mean, **extra})
                    window, started = [], time.perf_counter()
                if self.eval_waves and self.step % cfg.eval_every == 0:
                    self._log(self.evaluate())
                if cfg.snapshot_every and self.step % cfg.snapshot_every == 0 and self.acc.is_main_process:
                    _save_codec(self.out / "snapshots" / f"step-{self.step}", self.model_config, self.codec, half=True)
                if self.step % cfg.save_every == 0:
                    self.save()
        finally:
            bar.close()
        if self.step % cfg.save_every:
            self.save()
        final = self.out / "codec"
        if self.acc.is_main_process:
            _save_codec(final, self.model_config, self.codec)
            if self.writer is not None:
                self.writer.close()
        self.acc.wait_for_everyone()
        return final


def export_fp16(codec_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write an fp16 copy of a codec folder (the shipped format); it loads with SnacCodec.from_pretrained."""
    codec = SnacCodec.from_pretrained(codec_dir)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_codec(out, codec.config, codec.model, half=True)
    return out
