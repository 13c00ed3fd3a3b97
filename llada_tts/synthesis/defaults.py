"""Synthesis defaults, option choices and caps, importable without torch.

This is the one definition of the user-facing sampler options: ``SAMPLER_OPTIONS`` (one ``Option``
row per option: kind, range, cap, CLI flag, help) and ``SamplerOptions``, the typed dataclass
validated on construction. The CLI builds its sampler flags, ``--help`` and argparse ranges from
the rows (``commands.common.add_sampler_arguments``), the web app its controls' ranges and choices,
a server can publish ``describe_options()``; every front end (CLI, app, the Python API, a future
server) validates a request with ``check_sampler_options`` (= ``SamplerOptions(...).to_kwargs()``),
and ``LladaTTS.synthesize`` / ``stream`` call it again, so no path skips it. Adding a sampler
option: one row here (``SamplerOptions`` gets its field from the row), and its implementation in
``SamplerConfig`` / ``sample``.
Text generation (``llada-tts generate``) uses ``TEXT_SAMPLER_OPTIONS``: the same rows where the
meaning is the same (plus the earlier scripts' spellings as aliases), a ``gen_length`` row, and
steps / block_length as plain token counts (no audio canvas), checked by ``check_text_sampler_options``.

Caps (what one request may ask for; derived from the canvas, so memory stays bounded):
    canvas limit   = ``canvas_limit(max_duration)`` tokens: the whole-frame canvas of max_duration
                     seconds (60 s -> 704 frames -> 4928 tokens); no limit when max_duration is None
    steps          1 .. canvas limit; per chunk, capped at the chunk's canvas tokens (a step commits
                   at least one token, so further steps cannot change the result)
    block_length   7 .. canvas limit, a multiple of 7 (whole SNAC frames)
    batch_size     chunks sampled together: rows x canvas tokens <= ``batch_token_limit(max_duration)``
                   = 4 canvas limits (19712 tokens for 60 s); checked once the chunks are planned
    threshold      (0, 1];  temperature, cfg_scale: finite, >= 0;  min_length: [0, 1];  top_k: >= 1
    seed           0 .. MAX_SEED (2**64 - 1, what ``torch.Generator.manual_seed`` takes)

METHODS / REMASKING / CACHE_MODES / THRESHOLD_FLOORS mirror ``llada_tts.sampling.config``, and SLOTS_PER_FRAME /
FRAMES_PER_SECOND mirror ``audio_tokenizer.layout`` (tests check they agree).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import InitVar, dataclass, field, make_dataclass, replace

from llada_tts.synthesis.errors import SynthesisError

DEFAULT_MAX_CHUNK_CHARS = 180  # ~13 s of speech at 14 chars/s: one Orpheus-sized row
DEFAULT_BLOCK_LENGTH = 7 * 8  # tokens (8 frames, ~0.68 s) per semi-autoregressive block
DEFAULT_TEMPERATURE = 0.5
DEFAULT_BATCH_SIZE = 4  # chunks per sample() call in synthesize (stream: 1)
DEFAULT_MAX_DURATION = 60.0  # seconds of audio per request; longer requests are refused, never cut
METHODS = ("fixed_length", "semi_autoregressive_padding", "semi_autoregressive_origin")
REMASKING = ("low_confidence", "random")
CACHE_MODES = ("prefix", "dual")
CACHES = ("none", *CACHE_MODES)  # the one user-facing KV-cache option: cache = none | prefix | dual
THRESHOLD_FLOORS = ("one", "schedule")

SLOTS_PER_FRAME = 7  # tokens per SNAC frame
FRAMES_PER_SECOND = 24000 / 2048  # 11.71875
MAX_SEED = 2**64 - 1

def canvas_limit(max_duration: float | None) -> int | None:
    """The most canvas tokens a request may use (None: no limit): the whole-frame canvas of
    ``max_duration`` seconds, 7 x ceil(max_duration x 24000 / 2048). Caps steps and block_length."""
    if max_duration is None:
        return None
    return SLOTS_PER_FRAME * math.ceil(max_duration * FRAMES_PER_SECOND - 1e-9)


def batch_token_limit(max_duration: float | None) -> int | None:
    """The most canvas tokens one sampling call may hold (rows x canvas; None: no limit):
    DEFAULT_BATCH_SIZE canvas limits (60 s -> 4 x 4928 = 19712). batch_size 1 always fits."""
    limit = canvas_limit(max_duration)
    return None if limit is None else DEFAULT_BATCH_SIZE * limit


def check_seed(seed) -> int | None:
    """``seed`` as an int (None stays None), or SynthesisError naming the valid range."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= MAX_SEED:
        raise SynthesisError(f"seed must be an integer >= 0 and <= {MAX_SEED} (2**64 - 1), got {_show(seed)}")
    return int(seed)


def check_max_duration(max_duration) -> float | None:
    """``max_duration`` seconds (None: no limit), or SynthesisError: a finite number > 0."""
    if max_duration is None:
        return None
    if not _is_real(max_duration) or not 0 < max_duration < math.inf:
        raise SynthesisError(f"max_duration must be a finite number of seconds > 0, got {_show(max_duration)}")
    return float(max_duration)


@dataclass(frozen=True)
class Option:
    """One sampler option as every front end sees it (a row of ``SAMPLER_OPTIONS``).

    kind: "choice" (one of ``choices``), "int" (>= low), "frames" (a multiple of 7 tokens >= 7),
    "real" (a finite number in [low, high], ``(low`` when low_open) or "bool". canvas_cap: also at
    most ``canvas_limit(max_duration)``. flag: the CLI flag (None: Python API / server only).
    ui_high: the app's slider end for a real with no upper bound. note: added to the range in
    messages. label: the option's name in messages (default: its name). aliases: more CLI spellings
    of the flag (the earlier scripts' ``--sampling_method`` ...).
    """

    name: str
    kind: str
    help: str = ""
    flag: str | None = None
    choices: tuple = ()
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    canvas_cap: bool = False
    cap_note: str = ""
    note: str = ""
    label: str = ""
    cli_default: object = None
    metavar: str | None = None
    ui_high: float | None = None
    aliases: tuple = ()

    @property
    def what(self) -> str:
        return self.label or self.name

    @property
    def dest(self) -> str | None:
        """The argparse attribute of the CLI flag."""
        return self.flag.lstrip("-").replace("-", "_") if self.flag else None

    @property
    def rule(self) -> str:
        """The valid range in words (messages, --help): "an integer >= 1", "in (0, 1]", ..."""
        if self.kind == "int":
            return f"an integer >= {self.low:g}"
        if self.kind == "frames":
            return "a positive multiple of 7 tokens (whole SNAC frames)"
        if self.kind == "bool":
            return "true or false"
        if self.high is None:
            return f">= {self.low:g} ({self.note + '; ' if self.note else ''}a finite number)"
        text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        return f"{text} ({self.note})" if self.note else text

    def high_for(self, max_duration: float | None) -> float | None:
        """The largest accepted value for a request with this max_duration (None: unbounded)."""
        return canvas_limit(max_duration) if self.canvas_cap else self.high

    def check(self, value, max_duration: float | None):
        """``value`` normalised (whole numbers as int), or SynthesisError naming the range / cap."""
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise SynthesisError(f"unknown {self.what} {value!r}; choose one of {', '.join(self.choices)}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise SynthesisError(f"{self.what} must be {self.rule}, got {_show(value)}")
            return value
        bad = SynthesisError(f"{self.what} must be {self.rule}, got {_show(value)}")
        if self.kind in ("int", "frames"):
            value = _whole(value, f"{self.what} must be {self.rule}")
            if value < self.low or (self.kind == "frames" and value % SLOTS_PER_FRAME):
                raise bad
            if self.high is not None and value > self.high:
                raise SynthesisError(f"{self.what} must be at most {self.high:g}{self.cap_note}, got {_show(value)}")
        elif not (_is_real(value) and (self.low < value if self.low_open else self.low <= value)
                  and value <= (math.inf if self.high is None else self.high) and value != math.inf):
            raise bad
        cap = self.high_for(max_duration) if self.canvas_cap else None
        if cap is not None and value > cap:
            raise SynthesisError(f"{self.what} must be at most {cap} (the canvas tokens of "
                                 f"max_duration={max_duration:g} s){self.cap_note}, got {_show(value)}")
        return value


_LIMIT = canvas_limit(DEFAULT_MAX_DURATION)
SAMPLER_OPTIONS = (
    Option("method", "choice", flag="--method", choices=METHODS,
           help="decoding order (default semi_autoregressive_padding: whole canvas masked, blocks left to right)"),
    Option("steps", "int", flag="--steps", low=1, canvas_cap=True, cap_note=": a step commits at least one token",
           help="denoising steps per chunk canvas, rounded up to a multiple of the block count (default: canvas "
                "tokens / 2); at most the canvas limit (7 tokens per frame of --max-duration: "
                f"{_LIMIT} for {DEFAULT_MAX_DURATION:g} s), and capped at each chunk's canvas tokens"),
    Option("tokens_per_step", "int", flag="--tokens-per-step", low=1, metavar="N",
           help="without --steps: one denoising step per N canvas tokens (default 2; 7 = one frame per step)"),
    Option("block_length", "frames", flag="--block-length", low=SLOTS_PER_FRAME, canvas_cap=True,
           help=f"tokens per block, a multiple of 7 (default {DEFAULT_BLOCK_LENGTH}); the canvas is rounded up to "
                f"whole blocks; at most the canvas limit ({_LIMIT} for {DEFAULT_MAX_DURATION:g} s)"),
    Option("threshold", "real", flag="--threshold", low=0.0, low_open=True, high=1.0,
           help="parallel decoding: commit every token with confidence >= this, in (0, 1] (default off)"),
    Option("cfg_scale", "real", flag="--cfg", low=0.0, label="cfg scale", note="0 = no guidance", ui_high=5.0,
           help="classifier-free guidance scale (default 0 = off; > 0 doubles the forward passes)"),
    Option("temperature", "real", flag="--temperature", low=0.0, ui_high=2.0,
           help=f"sampling temperature (default: the checkpoint's own, else {DEFAULT_TEMPERATURE}; the demo voice "
                "uses 0.2; 0 = greedy)"),
    Option("top_k", "int", flag="--top-k", low=1, metavar="K",
           help="sample each token among its K most likely codes (default: all; no effect at temperature 0)"),
    Option("remasking", "choice", flag="--remasking", choices=REMASKING,
           help="which predictions to commit first (default low_confidence)"),
    Option("min_length", "real", flag="--min-length", low=0.0, high=1.0, metavar="FRACTION",
           note="a fraction of each chunk's estimated length",
           help="no end of speech before this fraction of each chunk's estimated length, in [0, 1] (default 0); "
                "guards against a model that stops at once"),
    Option("cache", "choice", flag="--cache", choices=CACHES,
           help="block KV cache (Fast-dLLM): none (exact), prefix or dual (faster, approximate)"),
    Option("use_cache", "bool", help="older spelling of cache: true = cache_mode (default dual)"),
    Option("cache_mode", "choice", choices=CACHE_MODES, label="cache mode", help="older spelling of cache"),
    Option("refresh_every", "int", low=1, help="KV cache: also refresh every N steps (default: block starts only)"),
    Option("threshold_floor", "choice", choices=THRESHOLD_FLOORS,
           help="the fewest tokens a threshold step commits: one, or the step schedule"),
)
OPTIONS = {o.name: o for o in SAMPLER_OPTIONS}
SAMPLER_KEYS = tuple(OPTIONS)


class _SamplerOptionsBase:
    """A request's sampler options, validated on construction (SynthesisError, one line).

    One field per row of ``SAMPLER_OPTIONS`` (the fields are made from the rows: a new option is a
    new row), each None = the pipeline's default. ``max_duration`` (not stored) sets the canvas
    limit that caps steps and block_length. ``cache`` (none | prefix | dual) is the one KV-cache
    option; the older ``use_cache`` + ``cache_mode`` are accepted and must agree with it.
    ``to_kwargs()`` gives what ``sampler_config`` takes.
    """

    def __post_init__(self, max_duration):
        max_duration = check_max_duration(max_duration)
        for option in SAMPLER_OPTIONS:
            value = getattr(self, option.name)
            if value is not None:
                object.__setattr__(self, option.name, option.check(value, max_duration))
        if self.threshold is not None and (self.remasking or "low_confidence") != "low_confidence":
            raise SynthesisError("threshold decoding ranks by confidence: use remasking low_confidence")
        if self.cache is not None:
            mode = None if self.cache == "none" else self.cache
            if (self.use_cache is not None and self.use_cache != (mode is not None)) or \
                    (mode and self.cache_mode not in (None, mode)):
                raise SynthesisError(f"cache={self.cache!r} contradicts use_cache={self.use_cache!r} / "
                                     f"cache_mode={self.cache_mode!r}; give only cache (none, prefix or dual)")

    def to_kwargs(self) -> dict:
        """The options that were given (None dropped), ``cache`` as the sampler's use_cache / cache_mode."""
        out = {o.name: getattr(self, o.name) for o in SAMPLER_OPTIONS if getattr(self, o.name) is not None}
        cache = out.pop("cache", None)
        if cache is not None:
            out["use_cache"] = cache != "none"
            if cache != "none":
                out["cache_mode"] = cache
        return out


_PY_TYPES = {"choice": str, "int": int, "frames": int, "real": float, "bool": bool}
SamplerOptions = make_dataclass(
    "SamplerOptions",
    [(o.name, _PY_TYPES[o.kind] | None, field(default=None)) for o in SAMPLER_OPTIONS]
    + [("max_duration", InitVar[float | None], field(default=DEFAULT_MAX_DURATION))],
    bases=(_SamplerOptionsBase,), frozen=True)
SamplerOptions.__module__ = __name__
SamplerOptions.__doc__ = _SamplerOptionsBase.__doc__


def parse_sampler_items(items) -> dict:
    """``["tokens_per_step=11", "cache=dual"]`` (a repeatable ``--sampler KEY=VALUE``) -> a dict, each
    value as YAML reads it (numbers, true/false, names); ValueError naming an item without "=".
    Unchecked: ``check_sampler_options`` judges the result."""
    import yaml

    options = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"--sampler {item!r}: expected KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value)
    return options


def check_sampler_options(options: dict, max_duration: float | None = DEFAULT_MAX_DURATION) -> dict:
    """Validate a request's sampler options (unknown keys, types, ranges, caps) before any model
    work; return them normalised (``SamplerOptions(...).to_kwargs()``). Raises SynthesisError."""
    unknown = sorted(set(options) - set(SAMPLER_KEYS))
    if unknown:
        raise SynthesisError(f"unknown sampler option(s) {unknown}; valid: {', '.join(SAMPLER_KEYS)}")
    return SamplerOptions(**options, max_duration=max_duration).to_kwargs()


# --- text generation (``llada-tts generate``): the same rows where the meaning is the same ---------------
DEFAULT_GEN_LENGTH = 128  # LLaDA's generate.py defaults: 128 tokens, 128 steps, blocks of 32
DEFAULT_TEXT_BLOCK_LENGTH = 32
# The most tokens one text request may generate: attention over prompt + answer is O(n^2) in memory and
# time, and a Llama config may claim a context of 131072, so the model's context alone is no cap. The
# answer must also fit the model's context with its prompt (checked once the model is loaded).
MAX_GEN_LENGTH = 4096
TEXT_ONLY_KEYS = ("gen_length", "block_length")  # checked by their text rows, not by SamplerOptions


def _text_row(name: str, **changes) -> Option:
    return replace(OPTIONS[name], **changes)


TEXT_SAMPLER_OPTIONS = (
    _text_row("method", aliases=("--sampling_method",),
              help="decoding order (default semi_autoregressive_padding: LLaDA's generate(), the whole answer "
                   "masked and decoded block by block; fixed_length: one block; semi_autoregressive_origin: "
                   "the answer grows a block at a time and stops at end of text)"),
    Option("gen_length", "int", flag="--gen-length", low=1, high=MAX_GEN_LENGTH, aliases=("--gen_length",),
           metavar="TOKENS", cap_note=" tokens (attention memory grows with its square)",
           help=f"tokens to generate (default {DEFAULT_GEN_LENGTH}), at most {MAX_GEN_LENGTH} and at most the "
                "model's context minus the prompt; a multiple of --block-length unless --method fixed_length; "
                "the answer is cut at end of text"),
    _text_row("steps", canvas_cap=False, cap_note="",
              help="denoising steps over the whole answer (default: --gen-length, one token per step), split "
                   "evenly over the blocks: a multiple of gen_length / block_length"),
    _text_row("block_length", kind="int", low=1, canvas_cap=False, aliases=("--block_length",), metavar="TOKENS",
              help=f"tokens per semi-autoregressive block (default {DEFAULT_TEXT_BLOCK_LENGTH}); ignored by "
                   "fixed_length"),
    _text_row("threshold"),
    _text_row("cfg_scale", aliases=("--cfg_scale",)),
    _text_row("temperature", help="sampling temperature (default 0 = greedy)"),
    _text_row("remasking", aliases=("--remasking_strategy",)),
    _text_row("cache"),
)
TEXT_OPTIONS = {o.name: o for o in TEXT_SAMPLER_OPTIONS}


def check_text_sampler_options(options: dict) -> dict:
    """Validate a text generation request's sampler options (the rows of ``TEXT_SAMPLER_OPTIONS``:
    no canvas caps; gen_length 1 .. MAX_GEN_LENGTH tokens, block_length any positive number of tokens
    (at most gen_length once combined)); the rows shared with speech go through ``SamplerOptions``
    (same ranges, same combination rules). Returns the ``SamplerConfig`` keyword arguments of the
    options given. Raises SynthesisError."""
    unknown = sorted(set(options) - set(TEXT_OPTIONS))
    if unknown:
        raise SynthesisError(f"unknown text sampler option(s) {unknown}; valid: {', '.join(TEXT_OPTIONS)}")
    given = {k: v for k, v in options.items() if v is not None}
    out = {k: TEXT_OPTIONS[k].check(given.pop(k), None) for k in TEXT_ONLY_KEYS if k in given}
    return {**out, **SamplerOptions(**given, max_duration=None).to_kwargs()}


def describe_options(max_duration: float | None = DEFAULT_MAX_DURATION) -> list[dict]:
    """The sampler options as plain data (e.g. a server's JSON schema): name, kind, choices,
    minimum / maximum for this max_duration, CLI flag and help."""
    return [dict(name=o.name, kind=o.kind, choices=list(o.choices) or None, minimum=o.low,
                 minimum_exclusive=o.low_open, maximum=o.high_for(max_duration), flag=o.flag, help=o.help)
            for o in SAMPLER_OPTIONS]


def _is_real(value) -> bool:
    """A real number, not a bool, not NaN (+-inf pass: the range checks refuse them)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or not math.isnan(value)


def _whole(value, rule: str) -> int:
    """``value`` as an int if it is a whole number (3 or 3.0), else SynthesisError ``rule, got ...``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if _is_real(value) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise SynthesisError(f"{rule}, got {_show(value)}")


def _show(value) -> str:
    """A value for a message, cut short (a hostile value may be huge)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(int(value)) >= 10**20:
        return f"an integer of about {int(abs(int(value)).bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
