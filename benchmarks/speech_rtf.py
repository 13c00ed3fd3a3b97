"""Real-time factor of `say`'s defaults by dtype and thread count, side by side in one run.

    python benchmarks/speech_rtf.py                       # the demo voice, 8 held-out sentences
    python benchmarks/speech_rtf.py --model outputs/stage4/export --threads 2

Every cell synthesises the same held-out sentences (``make_open_sentences(n, seed, "heldout")``, line i
with seed i) with the checkpoint's own sampler defaults, after one warm-up line, and reports wall time
over audio seconds. No judge is loaded (it shares the OpenMP pool; see ``audio_tokenizer.judge``).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo", help="checkpoint folder, hub id or demo (default demo)")
    ap.add_argument("--sentences", type=int, default=8, help="held-out sentences per cell (default 8)")
    ap.add_argument("--seed", type=int, default=12, help="make_open_sentences seed (default 12)")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes (default float32,bfloat16)")
    args = ap.parse_args(argv)
    try:
        threads = [int(t) for t in args.threads.split(",")]
        dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    except (ValueError, AttributeError) as e:
        ap.error(f"bad --threads or --dtypes: {e}")
    if args.sentences < 1 or min(threads) < 1 or not all(isinstance(d, torch.dtype) for d in dtypes):
        ap.error("--sentences and every thread count must be >= 1, and every dtype a torch dtype")

    from audio_tokenizer.open_text import make_open_sentences
    from llada_tts.model import fast_cpu_bf16
    from llada_tts.synthesis import LladaTTS

    texts = make_open_sentences(args.sentences, seed=args.seed, split="heldout")
    print(f"{args.model}: {len(texts)} held-out sentences, say's defaults, this machine's CPU "
          f"(native bf16: {fast_cpu_bf16()})")
    rtf: dict[tuple[int, torch.dtype], float] = {}
    for dtype in dtypes:  # each model loads once
        tts = LladaTTS.from_pretrained(args.model, dtype=dtype)
        for n in threads:
            torch.set_num_threads(n)
            tts.synthesize(texts[0], seed=0)  # warm-up
            wall = audio = 0.0
            for i, text in enumerate(texts):
                start = time.perf_counter()
                result = tts.synthesize(text, seed=i)
                wall, audio = wall + time.perf_counter() - start, audio + result.duration
            rtf[n, dtype] = wall / audio
    print(f"{'threads':>7} " + " ".join(f"{str(d).removeprefix('torch.'):>9}" for d in dtypes))
    for n in threads:
        print(f"{n:>7} " + " ".join(f"{rtf[n, d]:>9.3f}" for d in dtypes))
    print(f"({audio:.1f} s of audio per cell; RTF = wall time / audio time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
