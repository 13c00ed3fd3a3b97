"""``llada-tts edit``: rewrite words of a recording, keeping everything else token for token."""
from __future__ import annotations

import argparse
import time

from llada_tts.commands.common import (
    CliError,
    add_model_arguments,
    add_sampler_arguments,
    check_output_path,
    load_tts,
    non_negative_int,
    positive_float,
    sampler_options,
    seed_number,
)
from llada_tts.synthesis.defaults import DEFAULT_MAX_DURATION

HELP = "edit the words of a recording (substitute, insert, delete)"
DESCRIPTION = """Make IN.wav, whose transcript is --text, say --to instead, and write OUT.wav (24 kHz mono).

The changed words come from a word-level diff of --text and --to. Their times come from --span
(seconds, one START:END per change, in order; an insertion may be empty, e.g. 1.2:1.2) or, without
--span, from Whisper word timestamps (the eval extra); a frame-timed checkpoint (espeak-frames /
espeak-quarters, such as the demo voice) takes them from eSpeak NG's word timing of --text instead,
stretched to IN.wav's length. Each span plus --margin frames on both sides is masked and resized to
the new words' length (estimated, or eSpeak's), then infilled with --to as the prompt;
every frame outside the spans keeps its codec tokens exactly. The whole result is decoded at once.

examples:
  llada-tts edit in.wav --text "The cat sat on the mat." --to "The dog sat on the mat." -o out.wav
  llada-tts edit in.wav --text "I like tea." --to "I really like tea." --span 0.31:0.31 -o out.wav"""


def span_arg(text: str) -> tuple[float, float]:
    from llada_tts.synthesis.edit import parse_span

    try:
        return parse_span(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from llada_tts.synthesis.edit import DEFAULT_MARGIN_FRAMES

    p.add_argument("input", metavar="IN.wav", help="the recording to edit (any soundfile format)")
    p.add_argument("--text", default=None, help="what IN.wav says (its transcript)")
    p.add_argument("--to", default=None, help="what it should say")
    p.add_argument("-o", "--output", default="out.wav", metavar="WAV", help="output file (default out.wav)")
    p.add_argument("--span", action="append", type=span_arg, default=None, metavar="START:END",
                   help="seconds of IN.wav to rewrite, one per change in order (repeatable); default: Whisper "
                        "(eSpeak NG's word timing for a frame-timed checkpoint)")
    p.add_argument("--margin", type=non_negative_int, default=DEFAULT_MARGIN_FRAMES, metavar="FRAMES",
                   help=f"frames (85 ms each) re-generated on each side of a span (default {DEFAULT_MARGIN_FRAMES})")
    p.add_argument("--voice", "-v", default=None, help="voice name for the prompt (default: none)")
    p.add_argument("--seed", type=seed_number, default=None, help="random seed (default: random, printed)")
    p.add_argument("--max-duration", type=positive_float, default=DEFAULT_MAX_DURATION,
                   help="refuse recordings (and results) longer than this many seconds "
                        f"(default {DEFAULT_MAX_DURATION:g})")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    add_model_arguments(p)
    add_sampler_arguments(p)


def run(args: argparse.Namespace) -> int:
    from llada_tts.synthesis.edit import describe, word_changes, words_of

    if not args.text or not words_of(args.text):
        raise CliError("no transcript: give what IN.wav says with --text")
    if not args.to or not args.to.strip():
        raise CliError("no target: give what it should say with --to")
    if not word_changes(args.text, args.to):
        raise CliError("--text and --to have the same words: nothing to edit")
    out = check_output_path(args.output)
    options = sampler_options(args)
    start = time.perf_counter()
    tts = load_tts(args)
    load_s = time.perf_counter() - start
    result = tts.edit(args.input, None, args.text, args.to, args.span, voice=args.voice, seed=args.seed,
                      margin=args.margin, max_duration=args.max_duration, **options)
    from audio_tokenizer.audio_io import save_wav

    save_wav(out, result.waveform, result.sample_rate)
    if not args.quiet:
        edits = ", ".join(f"{a:.2f}-{b:.2f} s -> {c:.2f}-{d:.2f} s" for (a, b), (c, d) in
                          zip(result.spans_in, result.spans_out))
        print(f"wrote {out}: {result.duration:.2f} s of audio (seed {result.seed}); {describe(result.changes)}\n"
              f"  edited (input -> output): {edits}; kept frames identical: {100 * result.kept_fraction:.1f}%\n"
              f"  wall {result.wall_time:.2f} s (+ {load_s:.1f} s loading), NFE {result.nfe}")
    return 0

