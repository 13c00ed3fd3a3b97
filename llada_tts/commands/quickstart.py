"""``llada-tts quickstart``: the whole job, offline, on an embedded default (see llada_tts/quickstart.py)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from llada_tts.commands.common import CliError, positive_float, positive_int

HELP = "offline end-to-end run: corpus -> codec -> dataset -> training -> speech"
DESCRIPTION = """Set up and run the main job offline in a few minutes on a CPU, with the product's own commands:

  1 corpus   speak generated sentences with eSpeak NG (several voices)   python -m audio_tokenizer corpus
  2 codec    the offline tokenizer; the codec is the shipped demo one (trained on eSpeak speech)
  3 dataset  tokenise the corpus into Orpheus rows; write text rows        python -m audio_tokenizer build
  4 train    train a tiny LLaDA-TTS on mixed text + TTS rows               llada-tts train
  5 say      speak a held-out sentence into OUT/sample.wav               llada-tts say

Each command is printed before it runs; its output goes to OUT/logs/<stage>.log. A rerun skips the
stages whose settings and outputs are unchanged (--force redoes them); training stopped with Ctrl-C
is continued (--resume). The model trains for a minute, so the WAV is not yet intelligible: the run
shows the pipeline works; real audio needs real weights and real training (printed at the end).

examples:
  llada-tts quickstart                      # default: ./quickstart, a few minutes on 2 CPU cores
  llada-tts quickstart --reduced --out /tmp/qs   # smallest settings (what CI runs), about a minute
  llada-tts quickstart --codec ./snac_24khz      # trained SNAC weights from a local folder
  llada-tts quickstart --codec random            # an UNTRAINED tiny codec (plumbing only: noise)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from llada_tts.quickstart import REDUCED, Settings

    d = Settings()
    p.add_argument("--out", default=str(d.out), metavar="DIR", help=f"output folder (default ./{d.out})")
    p.add_argument("--sentences", type=positive_int, default=None,
                   help=f"utterances to speak (default {d.sentences}; --reduced {REDUCED['sentences']})")
    p.add_argument("--voices", default=None,
                   help=f"comma-separated eSpeak voices (default {','.join(d.voices)})")
    p.add_argument("--epochs", type=positive_int, default=None, help=f"training epochs (default {d.epochs})")
    p.add_argument("--max-steps", type=positive_int, default=None,
                   help=f"stop training after this many updates (default: all epochs; "
                        f"--reduced {REDUCED['max_steps']})")
    p.add_argument("--model-size", choices=("tiny", "small"), default=d.model_size,
                   help=f"fresh model size (default {d.model_size}; small is ~10 M parameters and much slower)")
    p.add_argument("--codec", default=None, metavar="DIR_OR_ID",
                   help="codec: demo (default: shipped, trained on eSpeak speech), a SNAC 24 kHz folder or hub id, "
                        "or random (make an UNTRAINED tiny codec)")
    p.add_argument("--text", default=None, help="sentence for the final `say` (default: a held-out corpus sentence)")
    p.add_argument("--max-duration", type=positive_float, default=None,
                   help=f"skip utterances longer than this many seconds (default {d.max_duration:g})")
    p.add_argument("--reduced", action="store_true",
                   help="smallest settings: 10 sentences, 2 voices, 2 training steps, 8 sampling steps")
    p.add_argument("--force", action="store_true", help="redo every stage (default: skip finished ones)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="do not show the commands' own output (it still goes to OUT/logs/)")


def settings_from_args(args: argparse.Namespace):
    from llada_tts.quickstart import Settings, reduced

    s = Settings(out=Path(args.out), force=args.force, model_size=args.model_size)
    if args.reduced:
        s = reduced(s)
    overrides = {"sentences": args.sentences, "epochs": args.epochs, "max_steps": args.max_steps,
                 "codec": args.codec, "text": args.text, "max_duration": args.max_duration}
    if args.voices is not None:
        voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
        if not voices:
            raise CliError("--voices needs at least one eSpeak voice, e.g. en-us,en-gb")
        overrides["voices"] = voices
    if args.text is not None and not args.text.strip():
        raise CliError("--text is empty")
    return replace(s, **{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from llada_tts.quickstart import StageError, check_out_dir, closing_text, run_quickstart

    s = settings_from_args(args)
    try:
        check_out_dir(s.out)
    except ValueError as e:
        raise CliError(str(e)) from None
    print(f"llada-tts quickstart -> {s.out.resolve()}"
          + (" (reduced)" if args.reduced else "") + (" (--force: redoing every stage)" if s.force else ""),
          flush=True)

    def printer(line: str) -> None:
        print(line, flush=True)

    try:
        report = run_quickstart(s, printer=printer, echo=None if args.quiet else sys.stderr)
    except StageError as e:
        raise CliError(str(e), code=1) from None
    print(closing_text(s, report), flush=True)
    return 0
