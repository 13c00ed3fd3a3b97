"""Training step time of the small-model levers, side by side in one run (docs/model.md: Small-model levers).

    python benchmarks/levers.py                 # voice size, 16 rows of ~352 tokens, 3 timed steps each
    python benchmarks/levers.py --size small --rows 8

Each row is a fresh model of the same size and the same batch (random phoneme-length prompts and
valid audio frames), one warm-up step, then the mean of --steps timed optimizer steps (forward,
backward, AdamW). Rows:

    full vocab, full loss     156,940 embedding rows; CE over every id (the default before the levers)
    compact, full loss        29,196 rows (compact_embeddings); CE over every row
    compact, slot loss        + audio_loss: slot (each audio target over its slot's 4096 codes + ends)
    ... + slot masks          + slot_masks (frame-phase mask tokens; costs nothing, changes learning)

It measures speed only. What each lever does to learning needs training runs of equal wall time.
"""
from __future__ import annotations

import argparse
import time

import torch

from audio_tokenizer import layout as L
from llada_tts.data import collate
from llada_tts.model import config_for_size, count_parameters, create_model
from llada_tts.training.optim import build_optimizer
from llada_tts.training.step import diffusion_step, step_generator

ROWS = (("full vocab, full loss", False, "full", False), ("compact, full loss", True, "full", False),
        ("compact, slot loss", True, "slot", False), ("compact, slot loss, slot masks", True, "slot", True))


def batch(rows: int, prompt: int, frames: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(rows):
        text = torch.randint(0, 256, (prompt - 5,), generator=gen).tolist()
        codes = (torch.randint(0, 4096, (frames,), generator=gen), torch.randint(0, 4096, (2 * frames,), generator=gen),
                 torch.randint(0, 4096, (4 * frames,), generator=gen))
        ids = L.tts_prompt_ids(text) + L.codes_to_tokens(codes).tolist() + [L.END_OF_SPEECH_ID, L.END_OF_AI_ID]
        out.append({"input_ids": ids, "prompt_length": prompt, "kind": "tts"})
    return collate(out)


def step_time(size: str, compact: bool, loss: str, slot_masks: bool, data: dict, steps: int) -> tuple[float, dict]:
    model = create_model(config_for_size(size, compact=compact, slot_masks=slot_masks), seed=0)
    opt = build_optimizer(model, 1e-3, 0.0)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        out = diffusion_step(model, data, step_generator(0, i, 0, torch.device("cpu")), audio_loss=loss)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return sum(times[1:]) / steps, count_parameters(model)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="voice", help="model size (default voice)")
    ap.add_argument("--rows", type=int, default=16, help="rows per batch (default 16)")
    ap.add_argument("--prompt", type=int, default=70, help="prompt tokens per row (default 70)")
    ap.add_argument("--frames", type=int, default=40, help="audio frames per row (default 40 = 280 tokens)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per row (default 3)")
    args = ap.parse_args(argv)
    data = batch(args.rows, args.prompt, args.frames)
    print(f"{args.size}: {args.rows} rows x {data['input_ids'].shape[1]} tokens, {torch.get_num_threads()} threads")
    print(f"{'row':<32} {'params':>8} {'s/step':>7} {'speed-up':>8}")
    base = None
    for name, compact, loss, masks in ROWS:
        seconds, params = step_time(args.size, compact, loss, masks, data, args.steps)
        base = base or seconds
        print(f"{name:<32} {params['total'] / 1e6:>7.1f}M {seconds:>7.2f} {base / seconds:>7.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
