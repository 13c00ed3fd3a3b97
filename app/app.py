"""Gradio web demo for llada-tts: type text, pick a voice, press Generate, listen or download.

Two tabs. **Speak**: text -> speech, optionally continuing the voice of a reference recording
(upload + its transcript), with the output's spectrogram. **Edit**: upload a recording, type what
it says and what it should say (and, without Whisper, the seconds of each change); the changed
words are re-generated and every other frame is kept token for token (``LladaTTS.edit``). The
before and after spectrograms show the edited spans highlighted (numpy-rendered, no plotting
dependency).

    python app/app.py --model CHECKPOINT [--codec CODEC] [--host 127.0.0.1] [--port 7860] [--share]
    llada-tts app --model CHECKPOINT ...            (same options)

Binds to 127.0.0.1 (this machine only) unless --host is given; never opens a public share link
unless --share. gradio and torch are imported lazily, so ``add_arguments`` is cheap for the CLI.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
from typing import TYPE_CHECKING

from audio_tokenizer.errors import first_line

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr
    import numpy as np

log = logging.getLogger("llada_tts.app")

NO_VOICE = "(none)"
MAX_UPLOAD = "50mb"  # recordings to edit / reference recordings: gradio refuses larger uploads
EXAMPLES = (
    "Hello! This is a masked diffusion model reading your text aloud.",
    "The quick brown fox jumps over the lazy dog.",
    "Diffusion language models write every word at once, then refine them step by step.",
)


# ----------------------------------------------------------------------------- options

def port_number(text: str) -> int:
    from llada_tts.commands.common import ranged_number

    return ranged_number(int, "a port number", lambda v: 1 <= v <= 65535, "in 1..65535")(text)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's options (shared by ``python app/app.py`` and ``llada-tts app``)."""
    from llada_tts.commands.common import add_model_arguments, positive_float, positive_int

    add_model_arguments(parser)  # --model/-m, --codec, --device, --dtype: as in `llada-tts say`
    g = parser.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the demo, "
                        "which has no authentication, to your network)")
    g.add_argument("--port", type=port_number, default=7860, help="port to listen on (default 7860)")
    g.add_argument("--share", action="store_true",
                   help="also open a public *.gradio.live link (default off; anyone with the link can use it)")
    g.add_argument("--concurrency", type=positive_int, default=1,
                   help="requests synthesised at the same time; the others wait in the queue (default 1)")
    g.add_argument("--max-queue", type=positive_int, default=20,
                   help="requests allowed to wait; later ones are turned away with a message (default 20)")
    g = parser.add_argument_group("limits")
    g.add_argument("--max-chars", type=positive_int, default=1000,
                   help="longest text accepted per request, in characters (default 1000)")
    g.add_argument("--max-duration", type=positive_float, default=60.0,
                   help="longest audio per request in seconds; longer requests are refused (default 60)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(
        prog="python app/app.py", description=__doc__.split("\n\n")[0]))


def launch_kwargs(args: argparse.Namespace) -> dict:
    """What ``demo.launch`` gets: local-only unless --host, no share link unless --share."""
    return dict(server_name=args.host, server_port=args.port, share=bool(args.share), ssr_mode=False,
                show_error=False, footer_links=[], theme=_theme(), quiet=False, max_file_size=MAX_UPLOAD)


def queue_kwargs(args: argparse.Namespace) -> dict:
    return dict(default_concurrency_limit=args.concurrency, max_size=args.max_queue)


def _theme():
    """Default theme with system fonts: the page makes no request to Google Fonts."""
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    mono = ["ui-monospace", "monospace"]
    return gr.themes.Default(font=system, font_mono=mono)


# ----------------------------------------------------------------------------- synthesis

def check_text(text: str | None, max_chars: int) -> str:
    """The stripped text, or ValueError with the message the user sees."""
    text = (text or "").strip()
    if not text:
        raise ValueError("Please type some text to speak.")
    if len(text) > max_chars:
        raise ValueError(f"The text is {len(text)} characters long; the limit is {max_chars}. "
                         "Shorten it or split it into several requests.")
    return text


def to_int16(wave: np.ndarray) -> np.ndarray:
    """float waveform in [-1, 1] -> int16 PCM, clipped (gradio would peak-normalise floats instead)."""
    import numpy as np

    return (np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype(np.int16)


def format_status(res) -> str:
    """One line: audio duration, wall time, real-time factor, NFE, valid-frame fraction, seed."""
    return " · ".join([f"{res.duration:.2f} s of audio in {res.wall_time:.2f} s",
                       f"RTF {res.rtf:.2f} (wall time / audio duration)",
                       f"NFE {res.nfe}",
                       f"valid frames {100.0 * res.valid_fraction:.1f}%",
                       f"seed {res.seed}"])


def sampler_options(method=None, steps=None, block_length=None, threshold=None, cfg_scale=None,
                    temperature=None, remasking=None, use_cache=None, cache=None) -> dict:
    """The widgets' values as ``tts.synthesize`` sampler options; empty or 0 steps/threshold = default.

    Only a translation: whole floats become ints (a Number box sends 12.0), anything else is passed
    on as it is, and ``synthesize`` checks it (``synthesis.defaults.check_sampler_options``: the one
    place that names the range and the caps)."""
    out = dict(method=method or None, remasking=remasking or None,
               steps=_whole(steps) if steps else None,  # 0 / empty: one step per 2 canvas tokens
               block_length=_whole(block_length) if block_length else None,
               threshold=_real(threshold) if threshold else None,  # 0: threshold decoding off
               cfg_scale=_real(cfg_scale), temperature=_real(temperature),
               use_cache=None if use_cache is None else bool(use_cache),
               cache=None if cache in (None, "", "none") else cache)  # "none" = the default, no cache
    return {k: v for k, v in out.items() if v is not None}


def _whole(value):
    """12.0 -> 12; any other value unchanged (inf, nan, 1.5 and strings are refused by the checker)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _real(value):
    return float(value) if isinstance(value, float) else value  # numpy floats -> float; the rest as is


def seed_value(seed) -> int | None:
    """The Seed box's value as ``synthesize``'s seed: None (random) when empty or negative; a
    SynthesisError naming the valid range for anything else that is not a whole number in range."""
    from llada_tts.synthesis.defaults import MAX_SEED
    from llada_tts.synthesis.errors import SynthesisError

    if seed is None or seed == "":
        return None
    if isinstance(seed, (int, float)) and not isinstance(seed, bool) and math.isfinite(seed):
        if seed < 0:
            return None
        if float(seed).is_integer() and int(seed) <= MAX_SEED:
            return int(seed)
    shown = f"{seed:g}" if isinstance(seed, float) else repr(seed)[:40]
    raise SynthesisError(f"seed must be -1 (random) or a whole number from 0 to {MAX_SEED} (2**64 - 1), got {shown}")


@contextlib.contextmanager
def ui_errors(title: str, failure: str, log_line: str):
    """The app's one error mapping around a library call: a ``gr.Error`` passes through, a
    ``SynthesisError`` becomes one message under ``title``, anything else is logged with its traceback
    and shown as "<failure> failed (Type: first line); see the server log."."""
    import gradio as gr

    from llada_tts.synthesis.errors import SynthesisError

    try:
        yield
    except gr.Error:
        raise
    except SynthesisError as e:
        raise gr.Error(str(e), title=title, print_exception=False) from None
    except Exception as e:  # noqa: BLE001  the server logs the traceback, the user gets one line
        log.exception(log_line)
        raise gr.Error(f"{failure} failed ({type(e).__name__}: {first_line(e)}); see the server log.",
                       print_exception=False) from None


def synthesize_for_ui(tts, text: str, voice: str | None = None, *, seed=-1, duration=0.0, speed=1.0,
                      max_chars: int = 1000, max_duration: float = 60.0, progress: bool = False,
                      ref_audio=None, ref_text: str | None = None,
                      **sampler) -> tuple[tuple[int, np.ndarray], str]:
    """Validate the UI's inputs, synthesise, return ``((sample_rate, int16 waveform), status line)``.

    voice "(none)"/empty: no voice; seed < 0 or empty: random (the status line shows the one used);
    duration <= 0 or empty: estimated from the text; ``sampler``: see ``sampler_options``.
    ``ref_audio`` (gradio's ``(sample_rate, samples)``, or a path) + ``ref_text`` (its transcript):
    continue that recording's voice (``synthesize(..., reference=...)``); both empty: no reference.
    Bad input or a failed synthesis raises ``gr.Error`` with a message for the user (no traceback).
    """
    import gradio as gr

    from llada_tts.synthesis.errors import NoAudioError

    try:
        text = check_text(text, max_chars)
    except ValueError as e:
        raise gr.Error(str(e), title="Check the text", print_exception=False) from None
    voice = (voice or "").strip()
    reference = reference_for_ui(tts, ref_audio, ref_text, max_chars=max_chars)
    with ui_errors("Check the settings", "Synthesis", "synthesis failed"):
        try:
            res = tts.synthesize(text, voice=None if voice in ("", NO_VOICE) else voice, seed=seed_value(seed),
                                 duration=float(duration) if duration and float(duration) > 0 else None,
                                 speed=1.0 if speed is None or speed == "" else float(speed),
                                 max_duration=max_duration, progress=progress, reference=reference,
                                 **sampler_options(**sampler))
        except NoAudioError as e:
            raise gr.Error(str(e), title="No audio", print_exception=False) from None
    wave, sr = res
    status = format_status(res)
    if reference is not None:
        status += f" · continuing a {reference.seconds:.2f} s reference"
        if reference.note:
            status += f" ({reference.note})"
    return (int(sr), to_int16(wave)), status


def audio_input(value) -> tuple[object, int | None] | None:
    """A gradio Audio value as ``(audio, sample_rate)`` for the library: ``(sample_rate, samples)``
    (type="numpy") -> (samples, sample_rate); a path -> (path, None); None / empty -> None."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return (value, None) if str(value) else None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        sr, samples = value
        return samples, sr
    if isinstance(value, dict) and value.get("path"):  # a FileData dict (gradio's API clients)
        return value["path"], None
    return value, None  # anything else: the library names what is wrong with it


def reference_for_ui(tts, ref_audio, ref_text: str | None, max_chars: int = 1000):
    """The ``Reference`` of the Speak tab's optional recording + transcript, or None when both are
    empty. A half-given or unusable reference is a ``gr.Error`` titled "Check the reference"."""
    import warnings

    import gradio as gr


    audio = audio_input(ref_audio)
    ref_text = (ref_text or "").strip()
    if audio is None and not ref_text:
        return None

    def fail(message: str):
        return gr.Error(message, title="Check the reference", print_exception=False)

    if audio is None:
        raise fail("A reference transcript needs its recording: upload the reference audio, or clear the "
                   "transcript.")
    if not ref_text:
        raise fail("Type what the reference recording says (its transcript): the model reads it to continue "
                   "the voice.")
    if len(ref_text) > max_chars:
        raise fail(f"The reference transcript is {len(ref_text)} characters long; the limit is {max_chars}.")
    with ui_errors("Check the reference", "Reading the reference", "reading the reference failed"), \
            warnings.catch_warnings():  # a trimmed reference carries its note: the status line shows it
        warnings.simplefilter("ignore")
        return tts.reference(audio[0], ref_text, sample_rate=audio[1])


# ----------------------------------------------------------------------------- editing

def parse_spans(text: str | None) -> list[tuple[float, float]] | None:
    """``"1.2:1.55, 2.0:2.0"`` -> [(1.2, 1.55), (2.0, 2.0)] (commas, semicolons or spaces between
    spans); empty -> None (Whisper word timestamps). ValueError naming the bad span."""
    from llada_tts.synthesis.edit import parse_span

    parts = [p for p in (text or "").replace(";", ",").replace(",", " ").split() if p]
    return [parse_span(p) for p in parts] or None


def format_edit_status(res) -> str:
    """One line: the changes, where they landed (input -> output seconds), kept frames, timing, seed."""
    from llada_tts.synthesis.edit import describe

    where = ", ".join(f"{a:.2f}–{b:.2f} s → {c:.2f}–{d:.2f} s" for (a, b), (c, d) in zip(res.spans_in, res.spans_out))
    return " · ".join([describe(res.changes), f"edited (before → after) {where}",
                       f"kept frames identical {100.0 * res.kept_fraction:.1f}%",
                       f"{res.duration:.2f} s of audio in {res.wall_time:.2f} s", f"NFE {res.nfe}",
                       f"seed {res.seed}"])


def edit_for_ui(tts, audio, text: str, to: str, spans: str | None = None, voice: str | None = None, *, seed=-1,
                margin=None, max_chars: int = 1000, max_duration: float = 60.0, **sampler):
    """The Edit tab: make ``audio`` (gradio's ``(sample_rate, samples)`` or a path), whose transcript
    is ``text``, say ``to``. ``spans``: "START:END, ..." seconds, one per changed word group (empty:
    Whisper word timestamps when installed). Returns ``(result, (sr, int16 wave), before image,
    after image, status line)``; the images are spectrograms with ``result.spans_in`` /
    ``result.spans_out`` highlighted. Bad input raises one ``gr.Error`` (no traceback)."""
    import gradio as gr

    from llada_tts.synthesis.edit import DEFAULT_MARGIN_FRAMES, describe, word_changes

    def fail(message: str, title: str = "Check the edit"):
        return gr.Error(message, title=title, print_exception=False)

    given = audio_input(audio)
    if given is None:
        raise fail("Upload (or record) the audio to edit.", "Check the recording")
    try:
        text = check_text(text, max_chars)
    except ValueError as e:
        raise fail(f"What it says: {e}" if "Please type" not in str(e) else
                   "Type what the recording says (its transcript).", "Check the text") from None
    try:
        to = check_text(to, max_chars)
    except ValueError as e:
        raise fail(f"What it should say: {e}" if "Please type" not in str(e) else
                   "Type what the recording should say.", "Check the text") from None
    try:
        span_list = parse_spans(spans)
    except ValueError as e:
        raise fail(f"Spans: {e}; separate several with commas, e.g. 1.2:1.55, 2.0:2.0") from None
    if span_list is None:
        from audio_tokenizer.judge import whisper_available

        changes = word_changes(text, to)
        if changes and not whisper_available():
            raise fail(f"Give the spans: one START:END in seconds per change, in order ({len(changes)}: "
                       f"{describe(changes)}), e.g. 1.2:1.55 (an insertion may be empty: 2.0:2.0). Without "
                       "spans the app needs Whisper word timestamps: pip install \"llada-tts[eval]\".")
    if margin is None or margin == "":
        margin = DEFAULT_MARGIN_FRAMES
    if isinstance(margin, float) and margin.is_integer():
        margin = int(margin)
    voice = (voice or "").strip()
    with ui_errors("Check the edit", "The edit", "edit failed"):
        res = tts.edit(given[0], given[1], text, to, span_list, voice=None if voice in ("", NO_VOICE) else voice,
                       seed=seed_value(seed), margin=margin, max_duration=max_duration, **sampler_options(**sampler))
    from llada_tts.synthesis.infill import load_wave

    before = load_wave(given[0], given[1], "input audio")  # as the edit read it: mono 24 kHz
    hop = spectrogram_hop(max(len(before), len(res.waveform)), res.sample_rate)
    images = (spectrogram_image(before, res.sample_rate, res.spans_in, hop=hop),
              spectrogram_image(res.waveform, res.sample_rate, res.spans_out, hop=hop))
    return res, (int(res.sample_rate), to_int16(res.waveform)), *images, format_edit_status(res)


# ----------------------------------------------------------------------------- spectrograms

HIGHLIGHT = (255, 96, 0)  # the edited spans: the ruler strip above the spectrogram, borders, tint
RULER_ROWS, TICK_ROWS, MEL_BANDS, ROW_SCALE = 8, 6, 80, 2
RULER_BG, TICK_BG, TICK = (48, 48, 48), (24, 24, 24), (220, 220, 220)
COLUMNS_PER_SECOND, MAX_COLUMNS = 100, 2400
# magma-like colour map: anchors at 0, .25, .5, .75, 1 (no orange: the highlight stays distinct)
_CMAP = ((0, 0, 4), (59, 15, 112), (140, 41, 129), (222, 73, 104), (252, 253, 191))


def spectrogram_hop(samples: int, sample_rate: int) -> int:
    """Samples per image column: ``COLUMNS_PER_SECOND`` columns a second, fewer for long audio
    (at most ``MAX_COLUMNS`` columns). Give before and after the same hop to compare them."""
    return max(sample_rate // COLUMNS_PER_SECOND, -(-samples // MAX_COLUMNS))


def span_columns(spans, sample_rate: int, hop: int, width: int) -> list[tuple[int, int]]:
    """Image columns [c0, c1) of time spans in seconds: the columns the span touches, at least one
    (an empty span, e.g. an insertion's place, is a one-column mark), clipped to the image."""
    out = []
    for start, end in spans:
        c0 = min(int(start * sample_rate // hop), width - 1)
        c1 = min(max(c0 + 1, -(-round(end * sample_rate) // hop)), width)
        out.append((max(c0, 0), c1))
    return out


def mel_filterbank(sample_rate: int, n_fft: int, bands: int) -> np.ndarray:
    """[bands, n_fft // 2 + 1] triangular HTK-mel filters from 0 Hz to Nyquist."""
    import numpy as np

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(0, mel(sample_rate / 2), bands + 2) / 2595.0) - 1.0)  # Hz
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs) / np.maximum(hi - mid, 1e-9)
    return np.clip(np.minimum(up, down), 0.0, None)


def spectrogram_image(wave, sample_rate: int, spans=(), *, hop: int | None = None, n_fft: int = 1024,
                      dynamic_range_db: float = 80.0) -> np.ndarray:
    """An RGB image [H, W, 3] uint8 of ``wave``'s log-mel spectrogram (low frequencies at the
    bottom, one column per ``hop`` samples), with a ruler strip on top whose ``HIGHLIGHT``
    columns are ``spans`` (seconds; ``span_columns``), the spans tinted and bordered, and a tick
    strip at the bottom with a tick every second (a long one every 5 s)."""
    import numpy as np

    wave = np.asarray(wave).reshape(-1)
    wave = wave / 32767.0 if np.issubdtype(wave.dtype, np.integer) else wave  # int16 PCM -> [-1, 1]
    wave = wave.astype(np.float32)
    hop = hop or spectrogram_hop(len(wave), sample_rate)
    width = max(1, -(-len(wave) // hop))
    padded = np.pad(wave, (n_fft // 2, n_fft // 2 + width * hop - len(wave)))
    window = np.hanning(n_fft).astype(np.float32)
    starts = np.arange(width) * hop
    frames = padded[starts[:, None] + np.arange(n_fft)[None, :]] * window  # [W, n_fft]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [W, n_fft/2+1]
    mel = mel_filterbank(sample_rate, n_fft, MEL_BANDS) @ power.T  # [bands, W]
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    top = db.max()
    level = np.clip((db - (top - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)[::-1]  # low bands at the bottom
    anchors = np.linspace(0.0, 1.0, len(_CMAP))
    rgb = np.stack([np.interp(level, anchors, [c[k] for c in _CMAP]) for k in range(3)], axis=-1)
    rgb = np.repeat(rgb, ROW_SCALE, axis=0)  # [H, W, 3]
    color = np.array(HIGHLIGHT, dtype=np.float64)
    ruler = np.tile(np.array(RULER_BG, dtype=np.float64), (RULER_ROWS, width, 1))
    for c0, c1 in span_columns(spans, sample_rate, hop, width):
        rgb[:, c0:c1] = 0.7 * rgb[:, c0:c1] + 0.3 * color
        rgb[:, [c0, c1 - 1]] = color
        ruler[:, c0:c1] = color
    ticks = np.tile(np.array(TICK_BG, dtype=np.float64), (TICK_ROWS, width, 1))
    for second in range(int(len(wave) / sample_rate) + 1):
        c = int(second * sample_rate // hop)
        if c < width:
            ticks[: TICK_ROWS if second % 5 == 0 else TICK_ROWS // 2, c] = TICK
    return np.concatenate([ruler, rgb, ticks], axis=0).round().astype(np.uint8)


# ----------------------------------------------------------------------------- UI

def build_demo(tts, max_chars: int = 1000, examples=EXAMPLES, max_duration: float = 60.0) -> gr.Blocks:
    """The Blocks app around a loaded pipeline (call ``.queue(...)`` and ``.launch(...)`` on it)."""
    import gradio as gr

    from llada_tts.synthesis.defaults import DEFAULT_BLOCK_LENGTH, DEFAULT_TEMPERATURE, MAX_SEED, OPTIONS
    from llada_tts.synthesis.edit import DEFAULT_MARGIN_FRAMES
    from llada_tts.synthesis.reference import MAX_REFERENCE_SECONDS

    # ranges and choices from the one option definition; gradio refuses values outside them too
    limit = OPTIONS["steps"].high_for(max_duration)  # the canvas limit: caps steps and block length
    methods, remaskings, caches = (OPTIONS[k].choices for k in ("method", "remasking", "cache"))
    cfg, temp, thr, block = (OPTIONS[k] for k in ("cfg_scale", "temperature", "threshold", "block_length"))
    voices = list(tts.voices)
    voice_info = ("one the model was trained with" if voices
                  else "this checkpoint lists no voices; type one or keep (none)")
    with gr.Blocks(title="llada-tts", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# llada-tts\nSpeech from a masked-diffusion language model over SNAC codec tokens. "
                    "**Speak**: type text, pick a voice, press **Generate**. **Edit**: change words of a recording.")
        with gr.Tabs():
            with gr.Tab("Speak", id="speak", elem_id="speak_tab"):
                with gr.Row():
                    with gr.Column(scale=3):
                        text = gr.Textbox(label=f"Text (up to {max_chars} characters)", lines=4, max_length=max_chars,
                                          placeholder="Type what to say...", elem_id="text")
                        with gr.Row():
                            voice = gr.Dropdown(choices=[NO_VOICE, *voices], value=voices[0] if voices else NO_VOICE,
                                                allow_custom_value=True, label="Voice", elem_id="voice",
                                                info=voice_info)
                            seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, label="Seed",
                                             info="-1 = random (shown below)", elem_id="seed")
                        with gr.Accordion("Reference voice (optional): continue a recording's voice", open=False):
                            gr.Markdown(f"Upload a recording and type exactly what it says; the model continues in "
                                        f"its voice. Up to {MAX_REFERENCE_SECONDS:g} s is used (longer ones are cut "
                                        "at a pause).")
                            with gr.Row():
                                ref_audio = gr.Audio(label="Reference recording", type="numpy",
                                                     sources=["upload", "microphone"], elem_id="ref_audio")
                                ref_text = gr.Textbox(label="What the reference says", lines=3, max_length=max_chars,
                                                      elem_id="ref_text")
                        with gr.Accordion("Advanced", open=False):
                            with gr.Row():
                                method = gr.Dropdown(choices=list(methods), value=methods[1], label="Method")
                                remasking = gr.Dropdown(choices=list(remaskings), value=remaskings[0],
                                                        label="Remasking")
                                cache = gr.Dropdown(choices=list(caches), value=caches[0], label="KV cache",
                                                    elem_id="cache",
                                                    info="prefix / dual: faster, approximate (Fast-dLLM)")
                            with gr.Row():
                                steps = gr.Number(value=0, precision=0, minimum=0, maximum=limit, label="Steps",
                                                  elem_id="steps",
                                                  info=f"denoising steps; 0 = one per 2 canvas tokens; at most {limit}")
                                block_length = gr.Number(value=DEFAULT_BLOCK_LENGTH, precision=0, minimum=block.low,
                                                         maximum=block.high_for(max_duration),
                                                         step=7, label="Block length", elem_id="block_length",
                                                         info=f"tokens; a multiple of 7, at most {limit}")
                            with gr.Row():
                                threshold = gr.Slider(0.0, thr.high, value=0.0, step=0.01, label="Confidence threshold",
                                                      info="0 = off (fixed schedule)")
                                cfg_scale = gr.Slider(cfg.low, cfg.ui_high, value=0.0, step=0.1, label="CFG scale",
                                                      info="classifier-free guidance; 0 = off (half the compute)")
                                temperature = gr.Slider(temp.low, temp.ui_high, value=DEFAULT_TEMPERATURE, step=0.05,
                                                        label="Temperature", info="0 = greedy")
                            with gr.Row():
                                duration = gr.Number(value=0, minimum=0, maximum=max_duration, label="Duration (s)",
                                                     info="0 = estimate from the text")
                                speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed",
                                                  info="speaking rate for the estimate (unused with a duration)")
                        button = gr.Button("Generate", variant="primary", elem_id="generate")
                    with gr.Column(scale=2):
                        audio = gr.Audio(label="Speech", type="numpy", format="wav", interactive=False,
                                         buttons=["download"], elem_id="audio",
                                         waveform_options=gr.WaveformOptions(show_recording_waveform=False))
                        status = gr.Markdown(elem_id="status")
                        spectrogram = gr.Image(label="Spectrogram", type="numpy", format="png", interactive=False,
                                               buttons=["download"], elem_id="spectrogram")
                if examples:
                    gr.Examples(examples=[[e] for e in examples], inputs=[text], label="Example prompts",
                                cache_examples=False)

            with gr.Tab("Edit", id="edit", elem_id="edit_tab"):
                gr.Markdown("Upload a recording, type what it says and what it should say. The changed words "
                            "are re-generated; everything else keeps its codec tokens exactly. The highlighted "
                            "columns of the spectrograms are the edited spans.")
                with gr.Row():
                    with gr.Column(scale=3):
                        edit_audio = gr.Audio(label="Recording to edit", type="numpy",
                                              sources=["upload", "microphone"], elem_id="edit_audio")
                        edit_text = gr.Textbox(label="What it says", lines=2, max_length=max_chars,
                                               placeholder="The cat sat on the mat.", elem_id="edit_text")
                        edit_to = gr.Textbox(label="What it should say", lines=2, max_length=max_chars,
                                             placeholder="The dog sat on the mat.", elem_id="edit_to")
                        edit_spans = gr.Textbox(label="Spans (seconds, optional)", elem_id="edit_spans",
                                                placeholder="1.2:1.55, 2.0:2.0",
                                                info="one START:END per changed group of words, in order (an "
                                                     "insertion may be empty, e.g. 2.0:2.0); empty = Whisper "
                                                     "word timestamps (eval extra)")
                        with gr.Row():
                            edit_margin = gr.Number(value=DEFAULT_MARGIN_FRAMES, precision=0, minimum=0, maximum=24,
                                                    label="Margin (frames)", elem_id="edit_margin",
                                                    info="re-generated on each side of a span (85 ms each)")
                            edit_voice = gr.Dropdown(choices=[NO_VOICE, *voices],
                                                     value=voices[0] if voices else NO_VOICE,
                                                     allow_custom_value=True, label="Voice", elem_id="edit_voice",
                                                     info=voice_info)
                            edit_seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, label="Seed",
                                                  info="-1 = random", elem_id="edit_seed")
                            edit_steps = gr.Number(value=0, precision=0, minimum=0, maximum=limit, label="Steps",
                                                   elem_id="edit_steps", info="per block; 0 = the default")
                        edit_button = gr.Button("Edit", variant="primary", elem_id="edit_button")
                    with gr.Column(scale=2):
                        edit_output = gr.Audio(label="Edited speech", type="numpy", format="wav", interactive=False,
                                               buttons=["download"], elem_id="edit_output",
                                               waveform_options=gr.WaveformOptions(show_recording_waveform=False))
                        edit_status = gr.Markdown(elem_id="edit_status")
                edit_before = gr.Image(label="Before (edited spans highlighted)", type="numpy", format="png",
                                       interactive=False, buttons=["download"], elem_id="edit_before")
                edit_after = gr.Image(label="After (generated spans highlighted)", type="numpy", format="png",
                                      interactive=False, buttons=["download"], elem_id="edit_after")

        def generate(text, voice, seed, ref_audio, ref_text, method, remasking, cache, steps, block_length,
                     threshold, cfg_scale, temperature, duration, speed,
                     progress=gr.Progress(track_tqdm=True)):  # noqa: B008  Gradio's documented idiom (it injects the tracker)
            progress(0, desc="Synthesizing")
            (sr, wave), line = synthesize_for_ui(
                tts, text, voice, seed=seed, duration=duration, speed=speed, max_chars=max_chars,
                max_duration=max_duration, progress=True, ref_audio=ref_audio, ref_text=ref_text, method=method,
                remasking=remasking, cache=cache, steps=steps, block_length=block_length, threshold=threshold,
                cfg_scale=cfg_scale, temperature=temperature)
            return (sr, wave), line, spectrogram_image(wave, sr)

        inputs = [text, voice, seed, ref_audio, ref_text, method, remasking, cache, steps, block_length, threshold,
                  cfg_scale, temperature, duration, speed]
        button.click(generate, inputs=inputs, outputs=[audio, status, spectrogram], api_name="synthesize")

        def edit(audio, text, to, spans, margin, voice, seed, steps):
            _, out, before, after, line = edit_for_ui(tts, audio, text, to, spans, voice, seed=seed, margin=margin,
                                                      max_chars=max_chars, max_duration=max_duration, steps=steps)
            return out, before, after, line

        edit_button.click(edit, inputs=[edit_audio, edit_text, edit_to, edit_spans, edit_margin, edit_voice,
                                        edit_seed, edit_steps],
                          outputs=[edit_output, edit_before, edit_after, edit_status], api_name="edit")
    return demo


# ----------------------------------------------------------------------------- entry point

def run(args: argparse.Namespace) -> int:
    """Load the model, start the server, block until Ctrl-C. Bad options or files: one line, exit 2."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home
    try:
        import gradio  # noqa: F401  only checks that the app extra is installed
    except ImportError:
        print("error: the web demo needs gradio: pip install -e '.[app]'", file=sys.stderr)
        return 2
    from llada_tts.commands.common import CliError, load_tts, model_name

    print(f"loading {model_name(args)} ...", file=sys.stderr, flush=True)
    try:
        tts = load_tts(args)
    except (CliError, ValueError) as e:  # SynthesisError: "model: ..." / "codec: ..." in one line
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    except (ImportError, OSError, RuntimeError) as e:
        print(f"error: could not load {model_name(args)!r}: {type(e).__name__}: {first_line(e)}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}: anyone who can reach this address can use the demo "
              "(it has no authentication)", file=sys.stderr)
    demo = build_demo(tts, max_chars=args.max_chars, max_duration=args.max_duration)
    demo.queue(**queue_kwargs(args))
    try:
        demo.launch(**launch_kwargs(args))
    except OSError as e:
        print(f"error: could not start the server on {args.host}:{args.port}: {first_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        demo.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's llada_tts, installed or not
    sys.exit(main())
