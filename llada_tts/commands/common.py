"""Shared pieces of the subcommands: errors, model/sampler options, loading, output checks, WAV writing."""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from audio_tokenizer.errors import LladaTTSError

DEFAULT_MODEL = "demo"  # the voice shipped in the package (llada_tts/assets/demo_voice)
MODEL_ENV = "LLADA_TTS_MODEL"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class CliError(LladaTTSError):
    """A one-line failure for the user; ``code`` 2 = bad input / usage, 1 = runtime failure."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message, exit_code=code)

    @property
    def code(self) -> int:
        return self.exit_code


# --- argument types -----------------------------------------------------------------------------

def ranged_number(cast, kind: str, ok, rule: str):
    """An argparse type: ``cast(text)`` that must satisfy ``ok(value)`` (``rule`` names the range)."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    return parse


_finite = float("inf")
positive_int = ranged_number(int, "an integer", lambda v: v >= 1, ">= 1")
non_negative_int = ranged_number(int, "an integer", lambda v: v >= 0, ">= 0")
positive_float = ranged_number(float, "a number", lambda v: 0 < v < _finite, "a finite number > 0")


def frame_multiple(text: str) -> int:
    """A block length in tokens: a positive multiple of 7 (whole SNAC frames)."""
    value = positive_int(text)
    if value % 7:
        raise argparse.ArgumentTypeError(f"must be a multiple of 7 (whole SNAC frames), got {value}; "
                                         f"e.g. {max(7, value // 7 * 7)} or {value // 7 * 7 + 7}")
    return value


# --- option groups --------------------------------------------------------------------------------

def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None, metavar="DIR_OR_ID",
                   help=f"checkpoint folder, hub id, or demo (the voice shipped in the package; "
                        f"default: ${MODEL_ENV}, else {DEFAULT_MODEL})")
    g.add_argument("--codec", default=None, metavar="DIR_OR_ID",
                   help="SNAC 24 kHz codec folder or hub id (default: the checkpoint's recorded codec, "
                        "else hubertsiuzdak/snac_24khz)")
    g.add_argument("--device", choices=DEVICES, default="auto", help="where to run (auto: cuda, then mps, then cpu)")
    g.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="model weights dtype (auto: bfloat16 on a bf16-capable GPU or on a CPU with native bf16 "
                        "(AMX), else float32; on a CPU the audio logits stay float32)")


def seed_number(text: str) -> int:
    """A --seed: an integer in 0 .. 2**64 - 1 (what torch's generators take)."""
    from llada_tts.synthesis.defaults import MAX_SEED

    return ranged_number(int, "an integer", lambda v: 0 <= v <= MAX_SEED, f">= 0 and <= {MAX_SEED} (2**64 - 1)")(text)


def add_sampler_arguments(p: argparse.ArgumentParser, options=None) -> None:
    """The sampler flags, one per option of ``synthesis.defaults.SAMPLER_OPTIONS`` (or of ``options``,
    e.g. ``TEXT_SAMPLER_OPTIONS``) that has a flag, with its aliases (help, choices and ranges come from there)."""
    from llada_tts.synthesis.defaults import SAMPLER_OPTIONS

    g = p.add_argument_group("sampler")
    for option in SAMPLER_OPTIONS if options is None else options:
        if option.flag is None:
            continue
        if option.kind == "choice":
            g.add_argument(option.flag, *option.aliases, dest=option.dest, choices=option.choices,
                           default=option.cli_default, help=option.help)
        else:
            g.add_argument(option.flag, *option.aliases, dest=option.dest, type=cli_type(option),
                           default=option.cli_default, metavar=option.metavar, help=option.help)


def cli_type(option):
    """The argparse type of a numeric sampler option: its range, refused at parse time (the caps
    that depend on --max-duration are checked by ``sampler_options``)."""
    if option.kind == "frames":
        return frame_multiple
    low, high = option.low, option.high
    if option.kind == "int":
        if high is not None:  # e.g. generate's --gen-length (at most MAX_GEN_LENGTH)
            return ranged_number(int, "an integer", lambda v: low <= v <= high, f">= {low:g} and <= {high:g}")
        return ranged_number(int, "an integer", lambda v: v >= low, f">= {low:g}")
    if high is None:
        return ranged_number(float, "a number", lambda v: low <= v < _finite, f"a finite number >= {low:g}")
    interval = f"in {'(' if option.low_open else '['}{low:g}, {high:g}]"
    return ranged_number(float, f"a number {interval}",
                         lambda v: (low < v if option.low_open else low <= v) and v <= high, interval)


def sampler_options(args: argparse.Namespace) -> dict:
    """The sampler keyword arguments of ``LladaTTS.synthesize`` from parsed sampler options,
    checked (combinations, caps from --max-duration) before any model is loaded: SynthesisError, exit 2."""
    from llada_tts.synthesis.defaults import DEFAULT_MAX_DURATION, SAMPLER_OPTIONS, check_sampler_options

    opts = {o.name: getattr(args, o.dest, None) for o in SAMPLER_OPTIONS if o.flag is not None}
    return check_sampler_options({k: v for k, v in opts.items() if v is not None},
                                 getattr(args, "max_duration", DEFAULT_MAX_DURATION))


# --- loading --------------------------------------------------------------------------------------

def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise CliError("--device mps: MPS is not available (use --device cpu or auto)")
    return name


def resolve_dtype(name: str, device: str, speech: bool = False):
    """--dtype as a torch dtype. auto: bfloat16 on a bf16-capable GPU; for speech checkpoints also on a
    CPU that multiplies bf16 natively (``model.speech_dtype``); else float32."""
    import torch

    if name == "auto":
        if device == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if speech and device == "cpu":
            from llada_tts.model import speech_dtype

            return speech_dtype(device)
        return torch.float32
    if device == "cpu" and name == "float16":
        raise CliError("--dtype float16 is not supported on CPU; use float32 or bfloat16")
    return getattr(torch, name)


def model_name(args: argparse.Namespace) -> str:
    return args.model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def load_tts(args: argparse.Namespace):
    """``LladaTTS`` from --model/--codec/--device/--dtype."""
    from transformers.utils import logging as hf_logging

    from llada_tts.synthesis import LladaTTS, SynthesisError

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device, speech=True)
    hf_logging.disable_progress_bar()  # our own progress bar is enough
    try:
        return LladaTTS.from_pretrained(model_name(args), codec=args.codec, device=device, dtype=dtype)
    except SynthesisError as e:
        if args.model is None and str(e).startswith("model:"):
            raise SynthesisError(f"{e} (pass --model DIR_OR_ID or set ${MODEL_ENV})") from e
        raise


# --- output files ---------------------------------------------------------------------------------

def check_output_path(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """The output path, after checking (before any slow work) that a file can be created there."""
    out = Path(path).expanduser()
    if str(path) == "" or out.name in ("", ".", ".."):
        raise CliError(f"output path {str(path)!r} is not a file name")
    if out.is_dir():
        raise CliError(f"output path {out} is a folder; give a file name like {out / 'out.wav'}")
    if out.exists() and not overwrite:
        raise CliError(f"{out} exists; choose another name or allow overwriting")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"cannot write {out}: folder {parent} does not exist")
    try:  # the only reliable check: create (and remove) a file in the target folder
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror or e}") from e
    if out.exists() and not os.access(out, os.W_OK):
        raise CliError(f"cannot write {out}: permission denied")
    return out


