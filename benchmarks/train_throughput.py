"""Training throughput: our full training step vs a bare forward + backward of the same model.

    python benchmarks/train_throughput.py                       # tiny model on CPU (default)
    python benchmarks/train_throughput.py --size 1b --batch-size 8 --seq-len 2048 --steps 60   # on a GPU

"ours" is the real ``Trainer`` loop (``Trainer.updates()``, one optimizer update at a time): mixed
TTS + text batches from the MixtureSampler DataLoader, collate, host->device copy, the forward
process (masking), the diffusion loss, loss/accuracy breakdown, backward, clipping, AdamW, LR
schedule and metric logging (every ``--logging-steps`` updates). "bare" is the same model (same
size, seed, AdamW) on one fixed batch of the same shape: forward, plain cross-entropy on every
position, backward, optimizer step. The two are timed alternately, update by update, so both see
the same machine load; the first ``--warmup`` updates are not counted. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F

from llada_tts.data.toy_data import toy_tts_rows, write_toy_text
from llada_tts.model import config_for_size, create_model
from llada_tts.training import Trainer
from llada_tts.training.build import enable_checkpointing
from llada_tts.training.config import TrainConfig
from llada_tts.training.optim import build_optimizer
from llada_tts.vocab import build_offline_tokenizer

PROMPT_TOKENS = 13  # prompt + end_of_speech + end_of_ai of a toy row with text "hi", voice "a"


def make_data(folder: Path, seq_len: int, rows: int) -> int:
    """Toy TTS rows (all ``seq_len`` long, rounded down to whole frames) and packed text; returns the row length."""
    tok = build_offline_tokenizer()
    frames = max(1, (seq_len - PROMPT_TOKENS) // 7)
    cols = toy_tts_rows(tok, n_rows=rows, frames=frames, codes=4096, texts=["hi", "yo"], voices=["a", "b"])
    datasets.Dataset.from_dict(cols).save_to_disk(str(folder / "tts"))
    write_toy_text(folder / "text.jsonl", n_docs=rows * 4)
    return len(cols["input_ids"][0])


def bare_step(cfg: TrainConfig, batch: dict, device: torch.device):
    """A closure doing forward + full-position cross-entropy + backward + AdamW on one fixed batch."""
    model = create_model(config_for_size(cfg.model_name, attn_implementation=cfg.attn_implementation), seed=cfg.seed)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    model.to(device).train()
    opt = build_optimizer(model, cfg.learning_rate, cfg.weight_decay)
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16")

    def one():
        with autocast:
            logits = model(input_ids=ids, attention_mask=mask).logits  # [B, L, V]
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return one


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="tiny", help="model size: tiny, small, 1b, 3b (fresh weights)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=30, help="measured optimizer updates per variant")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured updates first")
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--ratio", type=float, default=0.5, help="text fraction of the mixed batches")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--full-logits", action="store_true",
                   help="ours computes logits at every position, like bare (default: masked positions only)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps % args.logging_steps or args.warmup % args.logging_steps:
        p.error("--steps and --warmup must be multiples of --logging-steps")
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        total = args.warmup + args.steps
        rows = max(8, args.batch_size * total)
        length = make_data(folder, args.seq_len, rows)
        cfg = TrainConfig(TTS_dataset=str(folder / "tts"), text_QA_dataset=str(folder / "text.jsonl"),
                          ratio=args.ratio, max_length=length, model_name=args.size, tokenizer_name="offline",
                          batch_size=args.batch_size, epochs=1, max_steps=total, learning_rate=1e-4,
                          lr_scheduler_type="constant", mixed_precision="bf16" if cuda else "no", report_to="none",
                          logging_steps=args.logging_steps, save_epochs=1000, save_folder=str(folder / "run"),
                          gradient_checkpointing=args.gradient_checkpointing, random_length_prob=0.0)
        trainer = Trainer(cfg, full_logits=args.full_logits)
        device = trainer.accelerator.device
        batch = next(iter(trainer.loader))  # the bare step's fixed batch (same shape as ours)
        trainer.sampler.set_epoch(0)
        trainer.sampler.step = 0
        bare = bare_step(cfg, batch, device)
        ours_iter = trainer.updates()
        ours_t, bare_t = [], []
        for _ in range(total):  # interleaved, so both see the same machine load
            ours_t.append(timed(lambda: next(ours_iter), device))
            bare_t.append(timed(bare, device))
        for _ in ours_iter:  # finish (final checkpoint; not timed)
            pass
    tokens = batch["input_ids"].numel()
    ours_t, bare_t = ours_t[args.warmup:], bare_t[args.warmup:]
    dev = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nmodel {args.size}, batch {args.batch_size} x {length} tokens, text ratio {args.ratio}, "
          f"{args.steps} measured updates after {args.warmup} warm-up, logging every {args.logging_steps}, "
          f"{dev}, {'bf16' if cuda else 'fp32'}\n")
    print("| step | tokens/s (mean) | tokens/s (median) | ms/update (mean) | overhead (mean) | overhead (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    ours_name = "ours: full training step" + (" (full logits)" if args.full_logits else " (masked-position logits)")
    rows = {"bare forward+backward+AdamW": bare_t, ours_name: ours_t}
    for name, ts in rows.items():
        mean, med = statistics.mean(ts), statistics.median(ts)
        over = ("", "")
        if name.startswith("ours"):
            over = (f"{(mean / statistics.mean(bare_t) - 1) * 100:+.1f}%",
                    f"{(med / statistics.median(bare_t) - 1) * 100:+.1f}%")
        print(f"| {name} | {tokens / mean:,.0f} | {tokens / med:,.0f} | {1000 * mean:.1f} | {over[0]} | {over[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
