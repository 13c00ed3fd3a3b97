"""SNAC 24 kHz codec: safe loading (local folder or hub id), audio -> Orpheus audio ids -> audio.

Only the 24 kHz layout is accepted (hop 512, vq_strides [4, 2, 1], 4096 codes per level): one
coarse frame is 2048 samples = 7 audio ids (see :mod:`audio_tokenizer.layout`). Weights load with
safetensors or ``torch.load(weights_only=True)``, never pickle.
"""
from __future__ import annotations

import inspect
import json
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from snac import SNAC
from snac.layers import NoiseBlock

from audio_tokenizer import audio_io, frame_codec, layout
from audio_tokenizer.errors import first_line
from audio_tokenizer.fileio import atomic_dir
from audio_tokenizer.frame_codec import FrameCodec
from audio_tokenizer.hub import local_folder

DEFAULT_CODEC = "hubertsiuzdak/snac_24khz"
DEMO_NAME = "demo"  # the codec shipped in the package (a local folder of this name wins)
DEMO_DIR = Path(__file__).resolve().parent / "assets" / "demo_codec"
CONFIG_NAME, SAFETENSORS_NAME, BIN_NAME = "config.json", "model.safetensors", "pytorch_model.bin"
MAX_CHANNELS = 16  # a 2-D input with more "channels" than this is rejected as ambiguous
SNAC_24KHZ_CONFIG = {  # hubertsiuzdak/snac_24khz
    "sampling_rate": 24000, "encoder_dim": 48, "encoder_rates": [2, 4, 8, 8], "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2], "attn_window_size": None, "codebook_size": 4096, "codebook_dim": 8,
    "vq_strides": [4, 2, 1], "noise": True, "depthwise": True,
}
TINY_CONFIG = {**SNAC_24KHZ_CONFIG, "encoder_dim": 8, "decoder_dim": 32}  # same token layout, ~0.3 M params


def _model_class(config: dict):
    return FrameCodec if config.get("architecture") == frame_codec.ARCHITECTURE else SNAC


def build_model(config: dict) -> torch.nn.Module:
    """A fresh (random) model of a checked config: ``snac.SNAC``, or :class:`FrameCodec` when
    ``config["architecture"] == "frame"`` (the demo codec's frame-rate architecture)."""
    cfg = check_config(config)
    return _model_class(cfg)(**cfg)


def check_config(config: dict, source: str = "codec config") -> dict:
    """The full model kwargs (defaults filled in); ValueError unless they give the 24 kHz token layout."""
    cls = _model_class(config)
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"{source}: unknown {cls.__name__} config keys {unknown}")
    cfg = {**defaults, **config}
    cfg["vq_strides"] = list(cfg["vq_strides"])
    want = {"sampling_rate": layout.SAMPLE_RATE, "hop (product of encoder_rates)": 512,
            "upsampling (product of decoder_rates)": 512, "vq_strides": [4, 2, 1],
            "codebook_size": layout.CODEBOOK_SIZE, "encode padding multiple": layout.SAMPLES_PER_FRAME}
    if cls is FrameCodec:  # its hop (2 x 256) and iSTFT upsampling are fixed by construction
        want = {k: want[k] for k in ("sampling_rate", "vq_strides", "codebook_size")}
        found = {k: cfg[k] for k in want}
    else:
        window = cfg["attn_window_size"] or 1
        found = {
            "sampling_rate": cfg["sampling_rate"],
            "hop (product of encoder_rates)": math.prod(cfg["encoder_rates"]),
            "upsampling (product of decoder_rates)": math.prod(cfg["decoder_rates"]),
            "vq_strides": list(cfg["vq_strides"]),
            "codebook_size": cfg["codebook_size"],
            "encode padding multiple": math.prod(cfg["encoder_rates"]) * math.lcm(cfg["vq_strides"][0], window),
        }
    bad = [f"{k} is {found[k]}, expected {want[k]}" for k in want if found[k] != want[k]]
    if bad:
        raise ValueError(f"{source}: not the SNAC 24 kHz token layout ({'; '.join(bad)}); "
                         f"use {DEFAULT_CODEC} or a checkpoint with its config")
    return cfg


_NOISE = threading.local()  # .generator: this thread's seeded decode generator, if any


class _SeedableNoiseBlock(NoiseBlock):
    """SNAC's NoiseBlock drawing from this thread's seeded generator when one is set (same ops and
    state-dict keys as NoiseBlock, so outputs equal stock SNAC after ``torch.manual_seed``)."""

    def forward(self, x):  # x [B, C, T]
        generator = getattr(_NOISE, "generator", None)
        if generator is None:
            return super().forward(x)
        noise = torch.randn((x.shape[0], 1, x.shape[2]), generator=generator, device=x.device, dtype=x.dtype)
        return x + noise * self.linear(x)


@dataclass(frozen=True)
class EncodedAudio:
    """SNAC codes of one utterance: L0 [n], L1 [2n], L2 [4n] (int64, CPU) and its 24 kHz length."""

    codes: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    length: int  # samples at 24 kHz before padding to whole frames; decode(..., length=length) trims to it

    @property
    def frames(self) -> int:
        return int(self.codes[0].shape[-1])

    def tokens(self) -> torch.Tensor:
        """Orpheus audio ids [7n]."""
        return layout.codes_to_tokens(self.codes)


class SnacCodec:
    """A SNAC 24 kHz model with Orpheus-token encode/decode. Build with :meth:`from_pretrained`."""

    def __init__(self, model: torch.nn.Module, config: dict, device: str | torch.device = "cpu"):
        self.config = check_config(config)
        if model.sampling_rate != self.config["sampling_rate"] or list(model.vq_strides) != self.config["vq_strides"]:
            raise ValueError("model and config disagree on sampling_rate / vq_strides")
        for m in model.modules():  # lets decode(seed=...) use a local generator, not the global RNG
            if type(m) is NoiseBlock:
                m.__class__ = _SeedableNoiseBlock
        self.model = model.to(device).eval()

    # --- loading / saving --------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike = DEFAULT_CODEC, device: str | torch.device = "cpu",
                        revision: str | None = None, cache_dir: str | None = None,
                        local_files_only: bool = False) -> SnacCodec:
        """Load from a local folder (config.json + model.safetensors or pytorch_model.bin), a hub id, or
        ``"demo"``: the codec shipped inside this package (unless a local folder ``demo`` exists)."""
        config_path, weights_path = _resolve_files(str(name_or_dir), revision, cache_dir, local_files_only)
        try:
            config = json.loads(Path(config_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{config_path}: cannot read codec config ({e})") from e
        if not isinstance(config, dict):
            raise ValueError(f"{config_path}: codec config must be a JSON object")
        config = check_config(config, source=str(config_path))
        model = build_model(config)
        state = {k: v.float() for k, v in _load_state_dict(Path(weights_path)).items()}  # fp16 files too
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:  # missing / unexpected keys or shape mismatches
            detail = [ln.strip() for ln in str(e).splitlines() if ln.strip()][-1]
            raise ValueError(f"{weights_path}: weights do not match {config_path} ({detail[:300]})") from e
        return cls(model, config, device)

    def save_pretrained(self, save_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write config.json + model.safetensors atomically (temp folder, then rename)."""
        with atomic_dir(save_dir, overwrite) as tmp:
            _write_checkpoint(tmp, self.config, self.model)
        return Path(save_dir)

    # --- properties --------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return layout.SAMPLE_RATE

    @property
    def samples_per_frame(self) -> int:
        return layout.SAMPLES_PER_FRAME

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def frames_for_samples(self, n_samples: int) -> int:
        """Frames (7 ids each) that encode gives for ``n_samples`` samples at 24 kHz."""
        return math.ceil(n_samples / layout.SAMPLES_PER_FRAME)

    # --- encode ------------------------------------------------------------------------------------
    def encode(self, wave, sample_rate: int) -> EncodedAudio:
        """Encode one utterance: ``wave`` is mono [T] or channels-last [T, C] (numpy or torch) at
        ``sample_rate`` Hz; it is mixed to mono, resampled to 24 kHz and zero-padded to whole frames."""
        return self._encode_24k([self._prepare(wave, sample_rate)])[0]

    def encode_tokens(self, wave, sample_rate: int) -> torch.Tensor:
        """Orpheus audio ids [7n] (n = ceil(T_24k / 2048)) for one utterance."""
        return self.encode(wave, sample_rate).tokens()

    def encode_batch(self, waves, sample_rate: int) -> list[EncodedAudio]:
        """Encode mono utterances (a list of [T_i] or a [B, T] array) in one forward pass.

        Shorter items are zero-padded to the longest; their last frames can then differ slightly
        from a solo :meth:`encode` (the encoder's convolutions see padding activations, not edges).
        """
        if isinstance(waves, (np.ndarray, torch.Tensor)) and waves.ndim != 2:
            raise ValueError(f"encode_batch expects a list of [T] waves or a [B, T] array, got {tuple(waves.shape)}")
        return self._encode_24k([self._prepare(w, sample_rate, mono_only=True) for w in waves])

    def _encode_24k(self, prepared: list[np.ndarray]) -> list[EncodedAudio]:
        """Encode mono float32 24 kHz waves [T_i], zero-padded to the longest, in one forward pass."""
        if not prepared:
            return []
        lengths = [len(w) for w in prepared]
        n_max = self.frames_for_samples(max(lengths))
        batch = np.zeros((len(prepared), 1, n_max * layout.SAMPLES_PER_FRAME), dtype=np.float32)  # [B, 1, T]
        for i, w in enumerate(prepared):
            batch[i, 0, : len(w)] = w
        with torch.inference_mode():
            codes = self.model.encode(torch.from_numpy(batch).to(self.device))  # [B, n], [B, 2n], [B, 4n]
        if [c.shape[-1] for c in codes] != [n_max, 2 * n_max, 4 * n_max]:
            raise RuntimeError(f"SNAC returned code lengths {[c.shape[-1] for c in codes]} for {n_max} frames")
        out = []
        for i, t in enumerate(lengths):
            n = self.frames_for_samples(t)
            out.append(EncodedAudio(tuple(c[i, : (1 << lvl) * n].cpu().clone() for lvl, c in enumerate(codes)), t))
        return out

    def _prepare(self, wave, sample_rate: int, mono_only: bool = False) -> np.ndarray:
        """Mono float32 [T] at 24 kHz from [T] / [T, C] numpy or torch audio; ValueError if unusable."""
        if isinstance(wave, torch.Tensor):
            wave = wave.detach().float().cpu().numpy()
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim == 2 and not mono_only and wave.shape[1] <= MAX_CHANNELS and wave.shape[1] < wave.shape[0]:
            wave = audio_io.to_mono(wave)
        if wave.ndim != 1:
            raise ValueError(f"expected mono audio [T]{'' if mono_only else ' or channels-last [T, C]'}, got shape "
                             f"{wave.shape}; for [C, T] pass wave.T, for a batch use encode_batch")
        if wave.size == 0:
            raise ValueError("cannot encode empty audio (0 samples)")
        if not np.isfinite(wave).all():
            raise ValueError("cannot encode audio with NaN or infinite samples")
        return audio_io.resample(wave, sample_rate, layout.SAMPLE_RATE)

    # --- decode ------------------------------------------------------------------------------------
    def decode(self, tokens, seed: int | None = None, length: int | None = None) -> np.ndarray:
        """Whole-utterance waveform float32 [n * 2048] (or [length]) from Orpheus audio ids [7n].

        Ids are checked strictly (ValueError on a partial frame or an id outside its slot band; repair
        a generated stream with ``layout.validate_audio_tokens`` first). ``seed`` fixes SNAC's decoder
        noise with a local generator; ``seed=None`` draws from torch's global RNG like stock SNAC.
        """
        tokens = torch.as_tensor(tokens).detach().cpu()
        if tokens.ndim != 1 or tokens.is_floating_point():
            raise ValueError(f"decode expects integer audio ids [7n], got {tokens.dtype} {tuple(tokens.shape)}")
        return self.decode_codes(layout.tokens_to_codes(tokens), seed=seed, length=length)

    def decode_codes(self, codes, seed: int | None = None, length: int | None = None) -> np.ndarray:
        """Waveform float32 [n * 2048] (or [length]) from SNAC codes (L0 [n], L1 [2n], L2 [4n])."""
        codes = [torch.as_tensor(c).detach().cpu().long() for c in codes]
        if any(c.ndim != 1 for c in codes):
            raise ValueError(f"decode_codes expects 1-D codes per level, got shapes {[tuple(c.shape) for c in codes]}")
        layout.codes_to_tokens(codes)  # raises ValueError on a bad level count, length or code
        n = codes[0].numel()
        if length is not None and not 0 <= length <= n * layout.SAMPLES_PER_FRAME:
            raise ValueError(f"length {length} is outside 0..{n * layout.SAMPLES_PER_FRAME} ({n} frames)")
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        with torch.inference_mode(), self._seeded_noise(seed):
            audio = self.model.decode([c[None].to(self.device) for c in codes])  # [1, 1, T]
        if audio.shape[-1] != n * layout.SAMPLES_PER_FRAME:
            raise RuntimeError(f"SNAC decoded {audio.shape[-1]} samples for {n} frames")
        wave = audio[0, 0].float().cpu().numpy()
        return wave if length is None else wave[:length].copy()

    @contextmanager
    def _seeded_noise(self, seed: int | None):
        if seed is None:
            yield
            return
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        _NOISE.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        try:
            yield
        finally:
            _NOISE.generator = None


def create_random_codec(out_dir: str | os.PathLike, size: str = "tiny", seed: int = 0,
                        overwrite: bool = False) -> Path:
    """Write an UNTRAINED random-init SNAC with the exact 24 kHz token layout to ``out_dir``.

    ``size="tiny"`` (encoder_dim 8, decoder_dim 32: fast tests) or ``"full"`` (the snac_24khz
    architecture: benchmarks). Its audio is noise; use it for plumbing, never for listening.
    """
    configs = {"tiny": TINY_CONFIG, "full": SNAC_24KHZ_CONFIG}
    if size not in configs:
        raise ValueError(f"size must be one of {sorted(configs)}, got {size!r}")
    config = dict(configs[size])
    with torch.random.fork_rng(devices=[]):  # leaves the caller's RNG state alone
        torch.manual_seed(seed)
        model = SNAC(**config)
    with atomic_dir(out_dir, overwrite) as tmp:
        _write_checkpoint(tmp, config, model)
        (tmp / "README.md").write_text(
            f"# UNTRAINED random SNAC codec ({size})\n\nRandom initialisation (seed {seed}) of the SNAC 24 kHz "
            "architecture with the exact Orpheus token layout (24 kHz, hop 512, vq_strides [4, 2, 1], 4096 codes).\n"
            "It produces noise, not speech: use it for tests, benchmarks and offline plumbing only.\n"
            f"For real audio use `{DEFAULT_CODEC}`.\n", encoding="utf-8")
    return Path(out_dir)


def _resolve_files(name: str, revision, cache_dir, local_files_only) -> tuple[str, str]:
    """(config path, weights path) from a local folder, the shipped demo codec, or a hub id."""
    if name == DEMO_NAME and not Path(name).expanduser().is_dir():
        if not (DEMO_DIR / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"the demo codec is missing from this installation ({DEMO_DIR})")
        local = DEMO_DIR
    else:
        local = local_folder(name, CONFIG_NAME, "codec folder")  # None: a hub id
    if local is not None:
        for weights in (SAFETENSORS_NAME, BIN_NAME):
            if (local / weights).is_file():
                return str(local / CONFIG_NAME), str(local / weights)
        raise FileNotFoundError(f"codec folder {local} has neither {SAFETENSORS_NAME} nor {BIN_NAME}")
    from huggingface_hub import hf_hub_download

    kw = dict(repo_id=name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    try:
        config_path = hf_hub_download(filename=CONFIG_NAME, **kw)
        for weights in (SAFETENSORS_NAME, BIN_NAME):
            try:
                return config_path, hf_hub_download(filename=weights, **kw)
            except Exception as e:  # noqa: BLE001  missing file: try the next weights name
                last = e
        raise last
    except Exception as e:  # noqa: BLE001  hub, network and cache errors all mean "cannot fetch"
        raise OSError(f"{name!r} is not a local folder and cannot be fetched from the Hugging Face hub "
                      f"({first_line(e)}); pass a local codec folder") from e


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  corrupt/unsafe files
        raise ValueError(f"{path}: cannot read codec weights ({first_line(e)})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return state


def _write_checkpoint(folder: Path, config: dict, model: torch.nn.Module) -> None:
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / SAFETENSORS_NAME), metadata={"format": "pt"})


