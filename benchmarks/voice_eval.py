"""A voice against its targets, and the sampler table on it, in one run.

    python benchmarks/voice_eval.py --model demo --heldout outputs/voice/heldout --limit 60
    python benchmarks/voice_eval.py --model outputs/voice/run/checkpoint-epoch-2 --rows reference,threshold

--heldout is a corpus folder (metadata.csv + wavs/, e.g. `python -m audio_tokenizer corpus ... --text
open-heldout`): its sentences hold words the training corpus never spoke, and its eSpeak recordings
are the reference. The judge (Whisper tiny.en, offline) first transcribes those recordings: the
originals' WER is the bar, and a voice meets the WER target at <= originals + 0.15 on the same
voices and sentences. Then every sampler row synthesises every line (line i with seed i) and reports:

    WER         corpus word error rate of the judge's transcripts (a failed line: all words deleted)
    NFE         model forward passes per line (mean)
    RTF         wall time / audio seconds, all lines together, on this machine's threads
    dur         median duration / the eSpeak recording's
    ended       lines whose speech ended by itself (a stream-end id before the canvas ran out)

Rows (all audio-constrained; --rows picks some):
    reference   LLaDA low-confidence remasking, steps = canvas tokens / 2, 8-frame blocks, no cache
    threshold   Fast-dLLM parallel decoding: commit every token with confidence >= 0.9
    prefix      threshold + the block KV cache of the prompt and committed blocks
    dual        threshold + the dual cache (also the masked suffix)
    ar          the same model decoding one token per step, one frame per block, left to right
    steps48/24  the reference with 48 / 24 steps per line (about 1 / 0.5 per frame here)
    sched48     threshold decoding that commits at least the 48-step schedule's tokens per step
    sched48-prefix  the same with the prefix cache
    steps48-dual / steps24-dual  48 / 24 steps with the dual cache (only the block is recomputed)
    cfg2        the reference with classifier-free guidance 2 (twice the forward passes)
    cfg2-steps48    the same with 48 steps
    t0.2        the reference at temperature 0.2 (default 0.5)
    steps48-t0 / cfg2-steps48-t0    48 steps, greedy (temperature 0), without and with guidance 2
    cfg3-steps48    48 steps with guidance 3
    cfg2-steps24-dual / cfg2-steps12-dual   guidance 2 with the dual cache at 24 / 12 steps
    tps11-dual  11 tokens per step (steps scale with the line, ~24 here) with the dual cache
    tps14-dual / tps16-dual  14 / 16 tokens per step (~19 / ~16 steps) with the dual cache
    tps11-dual-t0.2 / tps11-dual-t0   say's default at temperature 0.2 / 0 (greedy) instead of 0.5
    tps11-dual-cfg1 / tps22-dual-cfg1 say's default with guidance 1 (two passes per step), and at half
                the steps (the same number of passes as the default)

report.json in --out holds the config, the originals' WER and every row's summary with each line's
transcript; --out/<row>/ holds the audio.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_tokenizer.corpus import read_metadata
from audio_tokenizer.fileio import write_atomic
from audio_tokenizer.judge import corpus_wer, get_asr, word_errors
from llada_tts.evaluation import evaluate, load_items

ROWS = {
    "reference": {},
    "threshold": {"threshold": 0.9},
    "prefix": {"threshold": 0.9, "cache": "prefix"},
    "dual": {"threshold": 0.9, "cache": "dual"},
    "ar": {"block_length": 7, "steps": 4900},  # steps are capped at the canvas tokens: one per step
    # fewer steps (about one frame per step for the 2-5 s held-out lines), alone and with threshold
    # decoding that commits at least the schedule's tokens per step (so NFE <= steps)
    "steps48": {"steps": 48},
    "steps24": {"steps": 24},
    "sched48": {"threshold": 0.9, "steps": 48, "threshold_floor": "schedule"},
    "sched48-prefix": {"threshold": 0.9, "steps": 48, "threshold_floor": "schedule", "cache": "prefix"},
    "steps48-dual": {"steps": 48, "cache": "dual"},
    "steps24-dual": {"steps": 24, "cache": "dual"},
    # classifier-free guidance (the model was trained with prompt dropout), and colder sampling
    "cfg2": {"cfg_scale": 2.0},
    "cfg2-steps48": {"cfg_scale": 2.0, "steps": 48},
    "t0.2": {"temperature": 0.2},
    "steps48-t0": {"steps": 48, "temperature": 0.0},
    "cfg2-steps48-t0": {"cfg_scale": 2.0, "steps": 48, "temperature": 0.0},
    "cfg3-steps48": {"cfg_scale": 3.0, "steps": 48},
    "cfg2-steps24-dual": {"cfg_scale": 2.0, "steps": 24, "cache": "dual"},
    "cfg2-steps12-dual": {"cfg_scale": 2.0, "steps": 12, "cache": "dual"},
    # steps that scale with the line (what an exported voice records): 11 tokens per step is about
    # 24 steps on the held-out lines (3.1 s, 37 frames, 259 tokens on average)
    "tps11-dual": {"tokens_per_step": 11, "cache": "dual"},
    "tps14-dual": {"tokens_per_step": 14, "cache": "dual"},
    "tps16-dual": {"tokens_per_step": 16, "cache": "dual"},
    "tps11-dual-t0.2": {"tokens_per_step": 11, "cache": "dual", "temperature": 0.2},
    "tps11-dual-t0": {"tokens_per_step": 11, "cache": "dual", "temperature": 0.0},
    "tps11-dual-cfg1": {"tokens_per_step": 11, "cache": "dual", "cfg_scale": 1.0},
    "tps22-dual-cfg1": {"tokens_per_step": 22, "cache": "dual", "cfg_scale": 1.0},
}


def originals_wer(folder: Path, limit: int | None, asr, start: int = 0) -> float:
    """Corpus WER of the judge on the held-out eSpeak recordings themselves (lines start..start+limit)."""
    utts = read_metadata(folder)[start:start + limit if limit else None]
    pairs = []
    for u in utts:
        wave, sr = sf.read(str(u.audio), dtype="float32")
        pairs.append(word_errors(u.text, asr.transcribe(np.asarray(wave), sr)))
    return corpus_wer(pairs)


def run_row(tts, items, asr, options: dict, audio_dir: Path | None = None) -> dict:
    t0 = time.perf_counter()
    report = evaluate(tts, items, asr=asr, seed=0, sampler_options=dict(options), progress=False, warmup=True,
                      audio_dir=audio_dir)
    s = report["summary"]
    return {"options": options, "wer": s["wer"], "nfe": s.get("mean_nfe"), "rtf": s["rtf"],
            "median_duration_ratio": s.get("median_duration_ratio"), "ended_fraction": s.get("ended_fraction"),
            "failed": s["failed"], "seconds": time.perf_counter() - t0,
            "transcripts": [{"text": r.get("text"), "heard": r.get("transcript"), "wer": r.get("wer")}
                            for r in report["rows"]]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo", help="checkpoint folder, hub id or demo (default demo)")
    ap.add_argument("--codec", default=None, help="codec (default: the checkpoint's)")
    ap.add_argument("--heldout", default="outputs/voice/heldout", help="held-out corpus folder")
    ap.add_argument("--limit", type=int, default=60, help="N held-out lines (default 60)")
    ap.add_argument("--start", type=int, default=0,
                    help="skip the first N held-out lines (default 0; e.g. --start 60 for lines no choice was made on)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows from {', '.join(ROWS)}")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature for every row")
    ap.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                    help="the model's dtype (auto: as say: bfloat16 on a CPU with native bf16, else float32)")
    ap.add_argument("--out", default="outputs/voice/eval", help="report folder (default outputs/voice/eval)")
    args = ap.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown row(s) {unknown}; choose from {list(ROWS)}")

    from llada_tts.synthesis import LladaTTS

    asr = get_asr("whisper")
    if args.start < 0:
        ap.error(f"--start must be >= 0, got {args.start}")
    items = load_items(args.heldout)[args.start:args.start + args.limit]
    if not items:
        ap.error(f"{args.heldout} has no lines after --start {args.start}")
    import torch

    tts = LladaTTS.from_pretrained(args.model, codec=args.codec,
                                   dtype=None if args.dtype == "auto" else getattr(torch, args.dtype))
    dtype = str(next(tts.model.parameters()).dtype).removeprefix("torch.")
    base = originals_wer(Path(args.heldout), args.limit, asr, args.start)
    print(f"{len(items)} held-out lines; eSpeak originals' WER {base:.3f} -> WER target <= {base + 0.15:.3f}; "
          f"model in {dtype} on {torch.get_num_threads()} threads")
    results = {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'row':<10} {'WER':>6} {'NFE':>6} {'RTF':>6} {'dur':>5} {'ended':>6} {'failed':>6}")
    for name in rows:
        options = dict(ROWS[name])
        if args.temperature is not None:
            options["temperature"] = args.temperature
        r = results[name] = run_row(tts, items, asr, options, out / name)
        print(f"{name:<10} {r['wer']:>6.3f} {r['nfe'] or 0:>6.0f} {r['rtf'] or 0:>6.3f} "
              f"{r['median_duration_ratio'] or 0:>5.2f} {r['ended_fraction']:>6.0%} {r['failed']:>6}", flush=True)
        # after every row, so an interrupted table keeps the rows it finished
        write_atomic(out / "report.json", json.dumps({"model": args.model, "dtype": dtype, "heldout": args.heldout,
                                                      "start": args.start, "lines": len(items), "originals_wer": base,
                                                      "rows": results}, indent=1))
    print(f"wrote {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
