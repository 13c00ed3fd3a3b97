"""SNAC 24 kHz encode/decode speed on the FULL snac_24khz architecture (random weights: same compute).

    python benchmarks/codec_speed.py                    # 5 s of audio, 3 timed runs, 2 CPU threads
    python benchmarks/codec_speed.py --device cuda --seconds 30 --repeats 5

Prints seconds of compute per second of audio (lower is better) and the real-time factor
(audio seconds per compute second; > 1 is faster than real time), median over the timed runs
after one warm-up run. Random weights time the same as trained ones (same layers and shapes).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from audio_tokenizer.codec import SnacCodec, create_random_codec


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> list[float]:
    """Wall-clock seconds of ``fn()`` for each of ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="audio length per call (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1 or args.threads < 1:
        parser.error("--seconds must be > 0, --repeats and --threads >= 1")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        codec = SnacCodec.from_pretrained(create_random_codec(Path(tmp) / "snac_full", size="full"), device=args.device)
    n_params = sum(p.numel() for p in codec.model.parameters())
    rng = np.random.default_rng(0)
    wave = (0.3 * rng.standard_normal(int(args.seconds * codec.sample_rate))).astype(np.float32)  # [T]
    tokens = codec.encode_tokens(wave, codec.sample_rate)  # [7n]
    audio_s = tokens.numel() // 7 * codec.samples_per_frame / codec.sample_rate  # padded length decoded

    enc = _time(lambda: codec.encode(wave, codec.sample_rate), codec.device, args.repeats)
    dec = _time(lambda: codec.decode(tokens, seed=0), codec.device, args.repeats)

    print(f"SNAC 24 kHz full architecture ({n_params / 1e6:.1f} M params, random init), device {codec.device}, "
          f"torch threads {torch.get_num_threads()}, {args.seconds:g} s audio, median of {args.repeats} runs, "
          f"1-min load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'op':<8}{'audio s':>9}{'median s':>10}{'min s':>8}{'s/audio s':>11}{'RTF x':>8}")
    for name, times, secs in (("encode", enc, args.seconds), ("decode", dec, audio_s)):
        med = statistics.median(times)
        print(f"{name:<8}{secs:>9.2f}{med:>10.3f}{min(times):>8.3f}{med / secs:>11.3f}{secs / med:>8.1f}")


if __name__ == "__main__":
    main()
