"""CodecTrainConfig: every setting of a codec training run (flat YAML + ``--key value``)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from audio_tokenizer import typed_config
from audio_tokenizer.codec import SNAC_24KHZ_CONFIG, TINY_CONFIG
from audio_tokenizer.frame_codec import DEFAULT_CONFIG as FRAME_CONFIG

opt = typed_config.option
PRESETS = {
    # frame-rate codec (log-mel ConvNeXt encoder, iSTFT decoder): the demo codec, 7.9 M parameters
    "frame": {**FRAME_CONFIG, "decoder_dim": 256},
    "frame-tiny": {**FRAME_CONFIG, "n_mels": 32, "encoder_dim": 32, "encoder_layers": 1, "decoder_dim": 32,
                   "decoder_layers": 1, "latent_layers": 1, "mlp_ratio": 2},
    # snac.SNAC: the CPU width measured in shared notes (2.7 M), the released architecture, a tiny one
    "snac-cpu": {**SNAC_24KHZ_CONFIG, "encoder_dim": 16, "decoder_dim": 384},
    "snac_24khz": dict(SNAC_24KHZ_CONFIG),
    "snac-tiny": dict(TINY_CONFIG),
}
# keys that only change logging / saving / stopping: a resumed run may change them
FREE_KEYS = ("max_steps", "log_every", "save_every", "snapshot_every", "eval_every", "eval_utterances",
             "threads", "progress", "tensorboard")


@dataclass
class CodecTrainConfig:
    """A codec training run; see ``python recipes/codec_train.py --help``."""

    train_data: str = opt("", "corpus folder with metadata.csv + wavs/ (python -m audio_tokenizer corpus)", "data")
    eval_data: str | None = opt(None, "held-out corpus folder for the periodic eval (mel L1, codes used)", "data")
    segment_samples: int = opt(24576, "crop length in samples at 24 kHz, a multiple of 2048 (24576 = 1.02 s)", "data")
    batch_size: int = opt(16, "crops per process per step", "data")
    gain_db_min: float = opt(-12.0, "random gain range, lower end in dB", "data")
    gain_db_max: float = opt(0.0, "random gain range, upper end in dB", "data")
    model: str = opt("frame", f"preset ({', '.join(PRESETS)}), a config.json, or a codec folder to start from", "model")
    learning_rate: float = opt(8e-4, "peak AdamW learning rate", "optim")
    adam_beta1: float = opt(0.8, "AdamW beta1", "optim")
    adam_beta2: float = opt(0.99, "AdamW beta2", "optim")
    weight_decay: float = opt(0.0, "AdamW weight decay", "optim")
    warmup_steps: int = opt(100, "linear warmup steps", "optim")
    decay_fraction: float = opt(0.15, "linear decay to final_lr_ratio over this last fraction of max_steps", "optim")
    final_lr_ratio: float = opt(0.1, "learning rate at the end, as a fraction of the peak", "optim")
    max_steps: int = opt(6000, "optimizer steps", "optim")
    max_grad_norm: float = opt(1000.0, "gradient clip (0 = none)", "optim")
    mixed_precision: str = opt("no", "no, bf16 (GPU) or fp16", "optim")
    w_mel: float = opt(1.0, "multi-scale log-mel L1", "loss")
    w_linear_mel: float = opt(10.0, "multi-scale linear-magnitude mel L1 (each scale over its 99th percentile)", "loss")
    w_wave: float = opt(0.0, "waveform L1", "loss")
    w_dc: float = opt(10.0, "absolute mean (DC) error", "loss")
    w_commit: float = opt(0.25, "VQ commitment (encoder to code)", "loss")
    w_codebook: float = opt(1.0, "VQ codebook (code to encoder)", "loss")
    adversarial: bool = opt(False, "multi-period + multi-band STFT discriminators with "
                            "feature matching (DAC); slow on CPU", "gan")
    adv_start_step: int = opt(0, "turn the adversarial losses on at this step "
                              "(reconstruction-only warm-up before)", "gan")
    w_adv: float = opt(0.07, "LSGAN generator loss (DAC's 1 : 15 against mel, for w_mel 1)", "gan")
    w_feature: float = opt(0.13, "discriminator feature matching L1 (DAC's 2 : 15 against mel)", "gan")
    disc_channels: int = opt(32, "discriminator width (DAC: 32)", "gan")
    disc_learning_rate: float | None = opt(None, "discriminator AdamW learning rate (default: learning_rate)", "gan")
    init_codebooks: bool = opt(True, "initialise every codebook from encoder outputs on data before step 1", "guard")
    recenter_rate: float = opt(0.1, "per step, each level's in_proj bias -= "
                               "rate x batch mean of its projections", "guard")
    restart_every: int = opt(100, "every N steps, re-seed codes unused in those N "
                             "steps from encoder outputs (0 = off)", "guard")
    output_dir: str = opt("outputs/codec", "run folder: checkpoint/, "
                          "snapshots/, codec/ (final), metrics.jsonl", "output")
    log_every: int = opt(25, "log losses and codebook stats every N steps", "output")
    save_every: int = opt(200, "write the resumable checkpoint every N steps", "output")
    snapshot_every: int = opt(0, "also keep an fp16 codec folder snapshots/step-N every N steps (0 = off)", "output")
    eval_every: int = opt(500, "held-out eval every N steps (0 = off)", "output")
    eval_utterances: int = opt(16, "held-out utterances in the periodic eval", "output")
    tensorboard: bool = opt(True, "write tensorboard logs (losses, codebook stats, audio) to output_dir/runs", "output")
    progress: bool = opt(True, "show a progress bar", "output")
    seed: int = opt(0, "seed for initialisation, crops and gains", "run")
    threads: int = opt(0, "torch CPU threads (0 = torch's default)", "run")

    def __post_init__(self):
        def need(ok, key, what):
            if not ok:
                raise ValueError(f"{key} must be {what}, got {getattr(self, key)!r}")
        need(bool(self.train_data), "train_data", "a corpus folder (set --train_data)")
        need(self.segment_samples >= 2048 and self.segment_samples % 2048 == 0, "segment_samples",
             "a positive multiple of 2048")
        for key in ("batch_size", "max_steps", "log_every", "save_every"):
            need(getattr(self, key) >= 1, key, ">= 1")
        need(self.disc_channels >= 1, "disc_channels", ">= 1")
        need(self.disc_learning_rate is None or self.disc_learning_rate > 0, "disc_learning_rate", "> 0 or null")
        for key in ("adv_start_step", "warmup_steps", "restart_every", "snapshot_every", "eval_every",
                    "eval_utterances", "threads"):
            need(getattr(self, key) >= 0, key, ">= 0")
        need(self.learning_rate > 0, "learning_rate", "> 0")
        need(0 <= self.decay_fraction <= 1, "decay_fraction", "in [0, 1]")
        need(0 < self.final_lr_ratio <= 1, "final_lr_ratio", "in (0, 1]")
        need(self.gain_db_min <= self.gain_db_max <= 0, "gain_db_max", ">= gain_db_min and <= 0")
        need(self.mixed_precision in ("no", "bf16", "fp16"), "mixed_precision", "no, bf16 or fp16")
        for key in ("w_adv", "w_feature", "w_mel", "w_linear_mel", "w_wave", "w_dc", "w_commit", "w_codebook",
                    "recenter_rate", "max_grad_norm"):
            need(getattr(self, key) >= 0, key, ">= 0")

    def model_config(self) -> tuple[dict, Path | None]:
        """(codec config, folder to load weights from or None) for ``model``."""
        if self.model in PRESETS:
            return dict(PRESETS[self.model]), None
        path = Path(self.model)
        if path.is_dir() and (path / "config.json").is_file():
            return json.loads((path / "config.json").read_text()), path
        if path.is_file():
            return json.loads(path.read_text()), None
        raise ValueError(f"model must be a preset ({', '.join(PRESETS)}), a config.json or a codec folder; "
                         f"got {self.model!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(path=None, overrides=None) -> CodecTrainConfig:
    return typed_config.load(CodecTrainConfig, path, overrides)
