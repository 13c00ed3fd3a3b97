"""Gradio web demo for llada-tts: type text, pick a voice, press Generate, listen or download.

    python app/app.py --model CHECKPOINT [--codec CODEC] [--host 127.0.0.1] [--port 7860] [--share]
    llada-tts app --model CHECKPOINT ...            (same options)

Binds to 127.0.0.1 (this machine only) unless --host is given; never opens a public share link
unless --share. gradio and torch are imported lazily, so ``add_arguments`` is cheap for the CLI.
"""
from __future__ import annotations

import argparse
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
                show_error=False, footer_links=[], theme=_theme(), quiet=False)


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


def to_int16(wave: "np.ndarray") -> "np.ndarray":
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


def synthesize_for_ui(tts, text: str, voice: str | None = None, *, seed=-1, duration=0.0, speed=1.0,
                      max_chars: int = 1000, max_duration: float = 60.0, progress: bool = False,
                      **sampler) -> tuple[tuple[int, "np.ndarray"], str]:
    """Validate the UI's inputs, synthesise, return ``((sample_rate, int16 waveform), status line)``.

    voice "(none)"/empty: no voice; seed < 0 or empty: random (the status line shows the one used);
    duration <= 0 or empty: estimated from the text; ``sampler``: see ``sampler_options``.
    Bad input or a failed synthesis raises ``gr.Error`` with a message for the user (no traceback).
    """
    import gradio as gr

    from llada_tts.synthesis.errors import NoAudioError, SynthesisError

    try:
        text = check_text(text, max_chars)
    except ValueError as e:
        raise gr.Error(str(e), title="Check the text", print_exception=False) from None
    voice = (voice or "").strip()
    try:
        res = tts.synthesize(text, voice=None if voice in ("", NO_VOICE) else voice, seed=seed_value(seed),
                             duration=float(duration) if duration and float(duration) > 0 else None,
                             speed=1.0 if speed is None or speed == "" else float(speed),
                             max_duration=max_duration, progress=progress, **sampler_options(**sampler))
    except NoAudioError as e:
        raise gr.Error(str(e), title="No audio", print_exception=False) from None
    except SynthesisError as e:
        raise gr.Error(str(e), title="Check the settings", print_exception=False) from None
    except Exception as e:  # noqa: BLE001  the server logs the traceback, the user gets one line
        log.exception("synthesis failed")
        raise gr.Error(f"Synthesis failed ({type(e).__name__}: {first_line(e)}); see the server log.",
                       print_exception=False) from None
    wave, sr = res
    return (int(sr), to_int16(wave)), format_status(res)


# ----------------------------------------------------------------------------- UI

def build_demo(tts, max_chars: int = 1000, examples=EXAMPLES, max_duration: float = 60.0) -> "gr.Blocks":
    """The Blocks app around a loaded pipeline (call ``.queue(...)`` and ``.launch(...)`` on it)."""
    import gradio as gr

    from llada_tts.synthesis.defaults import DEFAULT_BLOCK_LENGTH, DEFAULT_TEMPERATURE, MAX_SEED, OPTIONS

    # ranges and choices from the one option definition; gradio refuses values outside them too
    limit = OPTIONS["steps"].high_for(max_duration)  # the canvas limit: caps steps and block length
    methods, remaskings, caches = (OPTIONS[k].choices for k in ("method", "remasking", "cache"))
    cfg, temp, thr, block = (OPTIONS[k] for k in ("cfg_scale", "temperature", "threshold", "block_length"))
    voices = list(tts.voices)
    with gr.Blocks(title="llada-tts", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# llada-tts\nSpeech from a masked-diffusion language model over SNAC codec tokens. "
                    "Type text, pick a voice, press **Generate**.")
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label=f"Text (up to {max_chars} characters)", lines=4, max_length=max_chars,
                                  placeholder="Type what to say...", elem_id="text")
                with gr.Row():
                    voice = gr.Dropdown(choices=[NO_VOICE, *voices], value=voices[0] if voices else NO_VOICE,
                                        allow_custom_value=True, label="Voice", elem_id="voice",
                                        info="one the model was trained with" if voices
                                        else "this checkpoint lists no voices; type one or keep (none)")
                    seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, label="Seed",
                                     info="-1 = random (shown below)", elem_id="seed")
                with gr.Accordion("Advanced", open=False):
                    with gr.Row():
                        method = gr.Dropdown(choices=list(methods), value=methods[1], label="Method")
                        remasking = gr.Dropdown(choices=list(remaskings), value=remaskings[0], label="Remasking")
                        cache = gr.Dropdown(choices=list(caches), value=caches[0], label="KV cache", elem_id="cache",
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
        if examples:
            gr.Examples(examples=[[e] for e in examples], inputs=[text], label="Example prompts",
                        cache_examples=False)

        def generate(text, voice, seed, method, remasking, cache, steps, block_length, threshold, cfg_scale,
                     temperature, duration, speed, progress=gr.Progress(track_tqdm=True)):
            progress(0, desc="Synthesizing")
            return synthesize_for_ui(tts, text, voice, seed=seed, duration=duration, speed=speed,
                                     max_chars=max_chars, max_duration=max_duration, progress=True,
                                     method=method, remasking=remasking, cache=cache, steps=steps,
                                     block_length=block_length, threshold=threshold, cfg_scale=cfg_scale,
                                     temperature=temperature)

        inputs = [text, voice, seed, method, remasking, cache, steps, block_length, threshold, cfg_scale,
                  temperature, duration, speed]
        button.click(generate, inputs=inputs, outputs=[audio, status], api_name="synthesize")
    return demo


# ----------------------------------------------------------------------------- entry point

def run(args: argparse.Namespace) -> int:
    """Load the model, start the server, block until Ctrl-C. Bad options or files: one line, exit 2."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home
    try:
        import gradio  # noqa: F401
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
