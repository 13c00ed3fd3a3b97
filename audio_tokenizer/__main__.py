"""Command line: ``python -m audio_tokenizer {corpus,build,random-codec,eval-codec} ...`` (see ``--help`` of each).

``llada-tts data ...`` is the same command line (``main(argv, prog=..., parser_class=...)``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audio_tokenizer.espeak import FRONT_ENDS

PROG = "python -m audio_tokenizer"
EXAMPLES = """examples:
  python -m audio_tokenizer corpus data/espeak --n 200 --holdout 20 --seed 0
  python -m audio_tokenizer build --input data/espeak --output data/espeak_tok \\
      --tokenizer canopylabs/orpheus-3b-0.1-ft --codec hubertsiuzdak/snac_24khz
  python -m audio_tokenizer random-codec untrained_snac --size tiny     # offline plumbing only
  python -m audio_tokenizer eval-codec --codec demo --input data/heldout --limit 100 --out reports/codec
  python -m audio_tokenizer build --input my_hf_dataset_dir --text-column sentence --audio-column audio \\
      --voice tara --output data/tara_tok --tokenizer ./tokenizer --codec ./snac_24khz
  python -m audio_tokenizer build --input data/espeak --output data/espeak_ipa --front-end espeak-ipa \\
      --tokenizer ./tokenizer --codec ./snac_24khz        # prompts in IPA phonemes
"""


def _parser(prog: str = PROG, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
            ) -> argparse.ArgumentParser:
    """The parser, named ``prog`` in usage and examples; ``parser_class`` makes it and its subcommands."""
    p = parser_class(
        prog=prog, epilog=EXAMPLES.replace(PROG, prog), formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Make an offline speech corpus with eSpeak NG, or tokenise a speech dataset into "
                    "Orpheus-layout TTS rows (SNAC 24 kHz codes) saved with datasets.save_to_disk.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("corpus", help="speak generated English sentences into OUT/{wavs,metadata.csv}",
                       description="Write OUT/wavs/*.wav (24 kHz) and OUT/metadata.csv (file|text|voice, "
                                   "with a header) from seeded sentences spoken by eSpeak NG; no downloads.")
    c.add_argument("out", help="output folder (must be new or empty unless --force)")
    c.add_argument("--n", type=int, default=50, help="number of utterances (default 50)")
    c.add_argument("--seed", type=int, default=0, help="same seed -> byte-identical corpus (default 0)")
    c.add_argument("--holdout", type=int, default=0,
                   help="also write this many unspoken sentences to OUT/heldout.txt for evaluation")
    c.add_argument("--voices", default=None,
                   help="comma-separated eSpeak voices (default en-us,en-gb,en-us+f3,en-gb+m3,en-us+f2)")
    c.add_argument("--rates", default=None, help="comma-separated words per minute (default 150,175,200)")
    c.add_argument("--text", choices=("builtin", "open", "open-heldout"), default="builtin",
                   help="sentence source: builtin (~150-word generator), open (open-vocabulary word lists; "
                        "held-out sentences hold words never spoken in training) or open-heldout (speak "
                        "held-out open sentences, to evaluate on unseen words); default builtin")
    c.add_argument("--force", action="store_true", help="replace OUT if it is not empty")

    r = sub.add_parser("random-codec", help="write an UNTRAINED random SNAC with the 24 kHz token layout",
                       description="Write config.json + model.safetensors of a randomly initialised SNAC with "
                                   "the exact 24 kHz Orpheus token layout, loadable wherever a codec is asked "
                                   "for. Its audio is noise: for offline tests, benchmarks and the quickstart.")
    r.add_argument("out", help="output folder")
    r.add_argument("--size", choices=("tiny", "full"), default="tiny",
                   help="tiny (fast, ~0.3 M params) or full (the snac_24khz architecture); default tiny")
    r.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    r.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")

    e = sub.add_parser("eval-codec", help="round-trip quality of a codec on held-out audio (a table + report.json)",
                       description="Encode and decode every utterance of a corpus folder (metadata.csv + wavs/) "
                                   "and report per utterance and averaged: log-mel distance, STOI, Whisper WER "
                                   "of the round trip next to the originals' WER, codes used per level, and "
                                   "encode / decode real-time factor. Prints a Markdown table and writes "
                                   "OUT/report.json (rewritten after every utterance).")
    e.add_argument("--codec", required=True, help="codec: local folder, hub id, or demo")
    e.add_argument("--input", required=True, help="held-out corpus folder (metadata.csv + wavs/) or its metadata.csv")
    e.add_argument("--limit", type=int, default=None, help="evaluate the first N utterances (default: all)")
    e.add_argument("--out", default="eval_codec_report", help="report folder (default eval_codec_report)")
    e.add_argument("--asr", default="auto",
                   help="judge for WER: auto (default: whisper if installed, else pocketsphinx, else none), "
                        "whisper, faster-whisper:DIR_OR_HUB_ID, pocketsphinx, none")
    e.add_argument("--seed", type=int, default=0, help="utterance i decodes with seed SEED + i (default 0)")
    e.add_argument("--device", default="cpu", help="device for the codec (cpu, cuda, cuda:1)")
    e.add_argument("--quiet", "-q", action="store_true", help="no progress bar, summary table only")

    b = sub.add_parser("build", help="tokenise a metadata.csv folder or a Hugging Face dataset",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Encode every utterance with SNAC and write Orpheus rows (input_ids, "
                                   "attention_mask, prompt_lengths, data_type='tts', text, voice, duration, "
                                   "source) to OUTPUT. Bad utterances go to OUTPUT/skipped.csv. Work is saved "
                                   "in shards: rerunning the same command resumes, and rebuilds any shard "
                                   "whose inputs (text, audio path, size, mtime) changed.")
    b.add_argument("--input", required=True,
                   help="folder with metadata.csv (file|text, LJSpeech file|text|normalized, or a header "
                        "line like file|text|voice), a save_to_disk folder, or a hub dataset name")
    b.add_argument("--output", required=True, help="output folder (the dataset, skipped.csv, build_info.json)")
    b.add_argument("--tokenizer", required=True, help="Llama-3 tokenizer: hub id or local folder")
    b.add_argument("--codec", default="hubertsiuzdak/snac_24khz", help="SNAC 24 kHz: hub id or local folder")
    b.add_argument("--voice", default=None, help="voice name for every row (prompt 'voice: text'); "
                                                  "overrides the voice column")
    b.add_argument("--text-column", default="text", help="transcript column")
    b.add_argument("--audio-column", default="audio", help="audio column (Hugging Face input)")
    b.add_argument("--voice-column", default="voice", help="per-row voice column, used when present "
                                                            "('' to ignore)")
    b.add_argument("--split", default="train", help="split of a Hugging Face dataset")
    b.add_argument("--front-end", choices=FRONT_ENDS, default="text",
                   help="prompt text: the transcript itself, eSpeak NG's IPA phonemes of it (espeak-ipa), or "
                        "eSpeak phoneme tokens timed to the codec frames: one per frame (espeak-frames) or one per "
                        "quarter frame (espeak-quarters); both need eSpeak's rendering of the text in the row's "
                        "voice as the audio, as the corpus command makes it; "
                        "the text column keeps the transcript, build_info.json records the choice and "
                        "checkpoints trained on it phonemize at synthesis automatically)")
    b.add_argument("--min-duration", type=float, default=0.5, help="skip shorter audio (seconds)")
    b.add_argument("--max-duration", type=float, default=30.0, help="skip longer audio (seconds)")
    b.add_argument("--max-length", type=int, default=8192, help="skip rows with more tokens")
    b.add_argument("--drop-repeated-frames", action="store_true",
                   help="Orpheus notebook dedupe: drop frames whose L0 code repeats the previous frame's")
    b.add_argument("--shard-size", type=int, default=500, help="utterances per resumable shard")
    b.add_argument("--device", default="cpu", help="device for the SNAC encoder (cpu, cuda, cuda:1); under "
                                                    "accelerate launch each process uses its own device")
    b.add_argument("--num-processes", type=int, default=1,
                   help="encode shards in N processes (same rows as one process); for several GPUs use "
                        "'accelerate launch -m audio_tokenizer build ...' instead, one process per device")
    b.add_argument("--allow-outside-paths", action="store_true",
                   help="let metadata.csv name audio outside the input folder (../x.wav, absolute paths, "
                        "symlinks out); without it such rows are skipped")
    b.add_argument("--overwrite", action="store_true", help="discard shards from an earlier, different run")
    b.add_argument("--threads", type=int, default=None,
                   help="CPU threads per process for the codec (default: $OMP_NUM_THREADS, else 1; its small "
                        "convolutions ran 40x slower with 2 threads on 2 busy cores)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _corpus(args) -> int:
    from audio_tokenizer import corpus

    kwargs = {}
    if args.voices:
        kwargs["voices"] = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    if args.rates:
        try:
            kwargs["rates"] = tuple(int(r) for r in args.rates.split(","))
        except ValueError:
            raise ValueError(f"--rates takes comma-separated whole words per minute (e.g. 150,175,200), "
                             f"got {args.rates!r}") from None
    out = corpus.make_corpus(args.out, args.n, seed=args.seed, holdout=args.holdout, overwrite=args.force,
                             text=args.text, **kwargs)
    print(f"wrote {args.n} utterances to {out} (metadata.csv, wavs/)"
          + (f", {args.holdout} held-out sentences to {out / 'heldout.txt'}" if args.holdout else ""))
    return 0


def _build(args) -> int:
    import os

    import torch

    from audio_tokenizer.build import BuildConfig, build

    env = os.environ.get("OMP_NUM_THREADS", "")
    threads = args.threads if args.threads is not None else (int(env) if env.isdigit() and int(env) > 0 else 1)
    if threads < 1:
        print(f"error: --threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    torch.set_num_threads(threads)

    cfg = BuildConfig(
        input=args.input, output=args.output, tokenizer=args.tokenizer, codec=args.codec, voice=args.voice,
        text_column=args.text_column, audio_column=args.audio_column, voice_column=args.voice_column,
        split=args.split, min_duration=args.min_duration, max_duration=args.max_duration,
        max_length=args.max_length, drop_repeated_frames=args.drop_repeated_frames,
        shard_size=args.shard_size, device=args.device, allow_outside_paths=args.allow_outside_paths,
        front_end=args.front_end)
    info = build(cfg, overwrite=args.overwrite, progress=not args.quiet, num_processes=args.num_processes)
    if info is None:  # a non-main process of accelerate launch: the main one publishes and reports
        return 0
    n, d, sh = info["counts"], info["durations"], info["shards"]
    if info["duplicate_ids"]:
        dup = info["duplicate_ids"]
        print(f"warning: {len(dup)} duplicate utterance id(s) ({', '.join(dup[:5])}{' ...' if len(dup) > 5 else ''}); "
              f"kept the first of each, see {args.output}/skipped.csv", file=sys.stderr)
    reasons = ", ".join(f"{k}: {v}" for k, v in n["skipped_by_reason"].items())
    print(f"{n['rows']} rows from {n['utterances']} utterances ({d['total_audio_seconds']:.1f} s of audio), "
          f"{n['skipped']} skipped" + (f" ({reasons}; see {args.output}/skipped.csv)" if reasons else "")
          + f"; shards built {sh['built']}" + (f" ({sh['stale']} because their inputs changed)" if sh["stale"] else "")
          + f", reused {sh['reused']}; {info['elapsed_seconds']:.1f} s")
    if n["rows"] == 0:
        print(f"error: no usable rows; see {args.output}/skipped.csv", file=sys.stderr)
        return 1
    return 0


def _random_codec(args) -> int:
    from audio_tokenizer.codec import create_random_codec

    if Path(args.out).exists() and not args.overwrite:
        raise ValueError(f"{args.out} exists; pass --overwrite to replace it")
    out = create_random_codec(args.out, size=args.size, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote an UNTRAINED {args.size} SNAC codec (seed {args.seed}) to {out}: noise, not speech")
    return 0


def _eval_codec(args) -> int:
    from audio_tokenizer import eval_codec as ec
    from audio_tokenizer.judge import get_asr

    utts = ec.load_corpus(args.input, limit=args.limit)  # every input check before loading anything slow
    asr = get_asr(args.asr)
    out = ec.prepare_out_dir(args.out)
    codec = ec.load_codec(args.codec, device=args.device)
    config = {"codec": args.codec, "input": str(args.input), "limit": args.limit, "device": args.device}
    report = ec.evaluate_codec(codec, utts, asr=asr, seed=args.seed, progress=not args.quiet, config=config,
                               on_row=lambda partial: ec.write_report(partial, out))
    path = ec.write_report(report, out)
    print(ec.format_table(report, rows=not args.quiet))
    print(f"wrote {path}")
    s = report["summary"]
    if s["failed"]:
        print(f"{s['failed']} of {s['utterances']} utterances failed: {', '.join(s['failed_ids'][:10])}"
              f"{' ...' if s['failed'] > 10 else ''} (see the error field of {path})", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None, prog: str = PROG,
         parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> int:
    """Run one subcommand; returns the exit status. ``prog`` and ``parser_class``: how another command
    line that hands its words here (``llada-tts data``) names itself and reports usage errors."""
    from audio_tokenizer.corpus import InputError

    args = _parser(prog, parser_class).parse_args(argv)
    # bad input: one line, exit 2 (corpus: any ValueError is a bad argument, e.g. an unknown voice;
    # eval-codec: EvalCodecError and the judge's ASRError, both ValueErrors)
    expected = InputError if args.command == "build" else ValueError
    run = {"corpus": _corpus, "build": _build, "random-codec": _random_codec,
           "eval-codec": _eval_codec}[args.command]
    try:
        return run(args)
    except expected as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
