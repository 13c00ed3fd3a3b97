"""Does it learn to speak? A masked-diffusion TTS model vs an autoregressive one, same size and budget, on CPU.

    python benchmarks/learn_tts.py --smoke                                   # < 1 min, plumbing only
    python benchmarks/learn_tts.py --budget-seconds 600 --threads 1 --work-dir outputs/learn --out learn.json

Data: generated English sentences spoken by eSpeak NG (``audio_tokenizer.corpus``), tokenised by the
real dataset builder (``audio_tokenizer.build``) with an UNTRAINED tiny SNAC-layout codec and the
offline byte-level tokenizer: the text -> token mapping is deterministic (same text, voice and rate
give the same tokens) but the speaking rate is drawn per utterance and is not in the prompt. The last
``--holdout`` rows are never trained on. Everything is cached under ``--work-dir`` and reused.

Models: ``config_for_size(--size)`` twice from the same seed: the product's bidirectional mask
predictor, and the same LlamaForCausalLM with ``is_causal=True``. Each trains for ``--budget-seconds``
of its own step time (same batches, AdamW, learning rate and batch size; the two are interleaved
step by step so both see the same machine load): the diffusion model with the
product's step (``training.step.diffusion_step``: forward_process + masked_diffusion_loss, prompt never
masked), the AR model with next-token cross-entropy on the same answer tokens and the same per-row
normalisation.

Held-out measurements (``benchmarks/learning.py``):
  * teacher-forced: diffusion masked-token accuracy with exactly round(r * answer) answer tokens masked
    (r = 0.25, 0.5, 0.9); AR next-token accuracy (its stand-in). NLL in nats per answer token: the
    diffusion ELBO (an upper bound; averaged over --elbo-draws stratified t) vs the AR exact NLL.
  * free-running, canvas = true frames + 25% (rounded up to whole blocks; the model must place
    end_of_speech itself): diffusion ``sampling.sample`` (semi-AR blocks, greedy, low-confidence
    remasking), AR greedy KV-cache decoding with the same audio constraints; token accuracy vs the true
    tokens (position-wise), valid-frame fraction and length error. Constrained decoding makes every
    frame valid by construction, so the valid-frame fraction is also measured unconstrained.
  * a model-free reference: always predicting each slot's most frequent training code. A random codec
    maps most audio to a few codes per slot, so every accuracy is also given on "off-mode" tokens only
    (true code != its slot's training mode), where that reference scores 0.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository (benchmarks.learning), from anywhere

import numpy as np
import torch
from transformers import LlamaForCausalLM

from audio_tokenizer import layout as L
from benchmarks.learning import (
    diffusion_nll_bound,
    greedy_decode,
    masked_predictions,
    next_token_loss,
    next_token_predictions,
    off_mode,
    slot_mode_baseline,
    slot_modes,
    stream_metrics,
)
from llada_tts.data import collate, load_tts_rows
from llada_tts.fileio import write_atomic
from llada_tts.model import config_for_size, count_parameters, create_model
from llada_tts.sampling import SamplerConfig, sample
from llada_tts.training.optim import build_optimizer, build_scheduler
from llada_tts.training.step import diffusion_step, step_generator

RATIOS = (0.25, 0.5, 0.9)
MODELS = ("diffusion", "autoregressive")


# --- data ---------------------------------------------------------------------------------------

def prepare_data(work: Path, n_rows: int, seed: int, progress: bool) -> Path:
    """Corpus, codec, tokenizer and tokenised dataset under ``work`` (each reused if already there)."""
    from audio_tokenizer.build import BuildConfig, build
    from audio_tokenizer.codec import create_random_codec
    from audio_tokenizer.corpus import make_corpus
    from llada_tts.vocab import build_offline_tokenizer

    root = work / f"espeak_n{n_rows}_seed{seed}"
    corpus, codec, tok, data = root / "corpus", root / "codec_tiny", root / "tokenizer", root / "dataset"
    if not (corpus / "corpus_info.json").is_file():
        print(f"speaking {n_rows} sentences with eSpeak NG -> {corpus}", flush=True)
        make_corpus(corpus, n_rows, seed=seed, overwrite=True, progress=progress)
    if not (codec / "config.json").is_file():
        create_random_codec(codec, size="tiny", seed=seed, overwrite=True)
    if not (tok / "tokenizer_config.json").is_file():
        build_offline_tokenizer().save_pretrained(tok)
    if not (data / "state.json").is_file():
        print(f"tokenising -> {data}", flush=True)
        info = build(BuildConfig(input=str(corpus), output=str(data), tokenizer=str(tok), codec=str(codec)),
                     progress=progress)
        if info["counts"]["rows"] == 0:
            raise ValueError(f"the build kept no rows; see {data}/skipped.csv")
    return data


def split_rows(data: Path, holdout: int, max_length: int) -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows): the last ``holdout`` validated rows are held out."""
    ds = load_tts_rows(str(data), max_length=max_length, drop_long=True, progress=False)
    rows = [ds[i] for i in range(len(ds))]
    if len(rows) < holdout + 2:
        raise ValueError(f"only {len(rows)} rows of <= {max_length} tokens; need --holdout {holdout} + 2 "
                         "(more --sentences or a larger --max-length)")
    for r in rows:
        if r["input_ids"][-2:] != [L.END_OF_SPEECH_ID, L.END_OF_AI_ID]:
            raise ValueError("a row does not end with end_of_speech, end_of_ai: not an audio_tokenizer build")
    return rows[:-holdout], rows[-holdout:]


def audio_of(row: dict) -> list[int]:
    """The true audio ids of a row: between start_of_speech and end_of_speech."""
    return row["input_ids"][row["prompt_length"]:-2]


# --- models and training ------------------------------------------------------------------------

def make_models(size: str, seed: int) -> dict[str, LlamaForCausalLM]:
    """The product's bidirectional mask predictor and an identically initialised causal twin."""
    diffusion = create_model(config_for_size(size), seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ar = LlamaForCausalLM(config_for_size(size, is_causal=True))
    return {"diffusion": diffusion, "autoregressive": ar}


def batches(n_rows: int, batch_size: int, seed: int):
    """Endless row-index batches: reshuffled passes, a pure function of the seed."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n_rows)
        for i in range(0, n_rows - batch_size + 1, batch_size):
            yield order[i:i + batch_size].tolist()


def apply_update(model, opt, sched, loss: torch.Tensor) -> float:
    """One optimizer update from ``loss``: backward, clip the gradient norm to 1, step the optimizer and
    the schedule, clear the gradients. Returns the loss as a float."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def train(name: str, model, rows: list[dict], args):
    """Train for ``args.budget_seconds`` of this model's own step time (or ``args.max_steps``).

    A generator that yields after every optimizer step, so the driver can interleave two models
    step by step and both see the same machine load; its return value is the summary.
    """
    model.train()
    opt = build_optimizer(model, args.lr, args.weight_decay)
    sched = build_scheduler(opt, "constant", args.warmup_steps, 1)
    gen_batches = batches(len(rows), min(args.batch_size, len(rows)), args.seed)
    losses, step, tokens, spent, last_print = [], 0, 0, 0.0, 0.0
    while spent < args.budget_seconds and (args.max_steps is None or step < args.max_steps):
        start = time.perf_counter()
        batch = collate([rows[i] for i in next(gen_batches)])
        if name == "diffusion":
            loss = diffusion_step(model, batch, step_generator(args.seed, step, 0, torch.device("cpu"))).loss
        else:
            loss = next_token_loss(model, batch["input_ids"], batch["maskable"], batch["normalizer"])[0]
        losses.append(apply_update(model, opt, sched, loss))
        step, tokens = step + 1, tokens + batch["input_ids"].numel()
        spent += time.perf_counter() - start
        if spent - last_print >= args.print_every or step == 1:
            last_print = spent
            print(f"  [{name}] step {step:5d}  {spent:6.0f}/{args.budget_seconds:.0f} s  loss "
                  f"{statistics.mean(losses[-10:]):.3f} (mean of last {min(10, len(losses))})  "
                  f"{tokens / spent:,.0f} tokens/s", flush=True)
        yield
    model.eval()
    return {"steps": step, "seconds": round(spent, 1), "tokens": tokens,
            "final_loss": round(statistics.mean(losses[-10:]), 4) if losses else None}


def train_interleaved(models: dict, rows: list[dict], args) -> dict[str, dict]:
    """Train every model in turn, one optimizer step each, until each has used its budget."""
    running = {name: train(name, model, rows, args) for name, model in models.items()}
    summaries = {}
    while running:
        for name in list(running):
            try:
                next(running[name])
            except StopIteration as done:
                summaries[name] = done.value
                del running[name]
    return summaries


# --- evaluation ---------------------------------------------------------------------------------

def canvas_frames(true_frames: int, block_frames: int, margin: float) -> int:
    """True frames plus ``margin`` (at least one frame), rounded up to whole blocks."""
    frames = true_frames + max(1, math.ceil(margin * true_frames))
    return -(-frames // block_frames) * block_frames


def decode(name: str, model, prompt: list[int], frames: int, audio: bool, args) -> torch.Tensor:
    """The generated region (ids after start_of_speech) of one prompt."""
    gen_length = frames * L.SLOTS_PER_FRAME
    if name == "autoregressive":
        return greedy_decode(model, prompt, gen_length, audio=audio)
    n_blocks = frames // args.block_frames
    steps = max(n_blocks, round(args.steps / n_blocks) * n_blocks)
    config = SamplerConfig(method="semi_autoregressive_padding", steps=steps, gen_length=gen_length,
                           block_length=args.block_frames * L.SLOTS_PER_FRAME, temperature=0.0, audio=audio,
                           seed=args.seed)
    return sample(model, prompt, config).generated[0]


def _accuracy(hits: list[tuple[torch.Tensor, torch.Tensor]]) -> float | None:
    """Pooled accuracy of (hit [N] bool, counted [N] bool) pairs; None when nothing is counted."""
    total = sum(int(c.sum()) for _, c in hits)
    return sum(int((h & c).sum()) for h, c in hits) / total if total else None


def evaluate(name: str, model, heldout: list[dict], modes: list[int], args) -> dict:
    """Teacher-forced and free-running metrics of one model on the held-out rows.

    ``*_off_mode`` accuracies count only audio targets that differ from their slot's training mode.
    """
    gen = torch.Generator().manual_seed(args.seed)
    out: dict = {}
    with torch.no_grad():
        if name == "diffusion":
            for r in RATIOS:
                hits = []
                for row in heldout:
                    offsets, pred, target = masked_predictions(model, torch.tensor(row["input_ids"]),
                                                               row["prompt_length"], r, gen)
                    hits.append((pred == target, off_mode(target, offsets, modes)))
                out[f"masked_acc_{r}"] = _accuracy([(h, torch.ones_like(h)) for h, _ in hits])
                out[f"masked_acc_{r}_off_mode"] = _accuracy(hits)
            out["nll_per_token"] = statistics.mean(
                diffusion_nll_bound(model, torch.tensor(row["input_ids"]), row["prompt_length"], args.elbo_draws, gen)
                for row in heldout)
        else:
            hits, nlls = [], []
            for row in heldout:
                pred, target, nll = next_token_predictions(model, torch.tensor(row["input_ids"]), row["prompt_length"])
                hits.append((pred == target, off_mode(target, torch.arange(target.numel()), modes)))
                nlls.append(nll)
            out["next_token_acc"] = _accuracy([(h, torch.ones_like(h)) for h, _ in hits])
            out["next_token_acc_off_mode"] = _accuracy(hits)
            out["nll_per_token"] = statistics.mean(nlls)
        for mode, audio in (("constrained", True), ("free", False)):
            per, start = [], time.perf_counter()
            for row in heldout:
                true = audio_of(row)
                frames = canvas_frames(len(true) // L.SLOTS_PER_FRAME, args.block_frames, args.canvas_margin)
                generated = decode(name, model, row["input_ids"][:row["prompt_length"]], frames, audio, args)
                per.append(stream_metrics(generated, true, modes))
            off_total = sum(m["off_mode_total"] for m in per)
            out[mode] = {
                "token_accuracy": statistics.mean(m["token_accuracy"] for m in per),
                "token_accuracy_off_mode": sum(m["off_mode_hits"] for m in per) / off_total if off_total else None,
                "valid_fraction": statistics.mean(m["valid_fraction"] for m in per),
                "length_error_mean": statistics.mean(m["length_error"] for m in per),
                "length_error_abs": statistics.mean(abs(m["length_error"]) for m in per),
                "ended_fraction": statistics.mean(float(m["ended"]) for m in per),
                "seconds_per_sentence": (time.perf_counter() - start) / len(heldout),
                "per_sentence": per,
            }
            print(f"  [{name}] sampled ({mode}): token acc {out[mode]['token_accuracy']:.3f}, valid frames "
                  f"{out[mode]['valid_fraction']:.3f}, |length error| {out[mode]['length_error_abs']:.1f} frames",
                  flush=True)
    return out


# --- report -------------------------------------------------------------------------------------

def _fmt(v, digits=3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(result: dict) -> str:
    """The side-by-side Markdown table."""
    d, a = result["models"]["diffusion"], result["models"]["autoregressive"]
    base = result["baseline"]["slot_mode_accuracy"]

    def both(fn, digits=3):
        return _fmt(fn(d), digits), _fmt(fn(a), digits)

    def sampled(mode, key, digits=3):  # one sampled-eval metric of both models
        return both(lambda m: m["eval"][mode][key], digits)

    rows = [
        ("parameters, non-embedding", *both(lambda m: m["params"]["non_embedding"])),
        ("parameters, total (tied embedding = head)", *both(lambda m: m["params"]["total"])),
        ("optimizer steps in budget", *both(lambda m: m["train"]["steps"])),
        ("training seconds", *both(lambda m: m["train"]["seconds"], 0)),
        ("final training loss (mean of last 10)", *both(lambda m: m["train"]["final_loss"])),
    ]
    for r in RATIOS:
        for suffix, note in (("", ""), ("_off_mode", ", off-mode tokens only")):
            rows.append((f"masked-token accuracy, {int(r * 100)}% of answer masked{note}",
                         _fmt(d["eval"][f"masked_acc_{r}{suffix}"]), "—"))
    rows += [
        ("next-token accuracy, teacher forced (AR stand-in)", "—", _fmt(a["eval"]["next_token_acc"])),
        ("next-token accuracy, teacher forced, off-mode tokens only", "—", _fmt(a["eval"]["next_token_acc_off_mode"])),
        ("NLL nats/answer token (diffusion: ELBO bound; AR: exact)", *both(lambda m: m["eval"]["nll_per_token"])),
        ("slot-mode baseline accuracy (model-free; 0 on off-mode tokens)", _fmt(base), _fmt(base)),
    ]
    for mode, label in (("constrained", "sampled"), ("free", "sampled, unconstrained")):
        rows += [
            (f"{label}: token accuracy (position-wise)", *sampled(mode, "token_accuracy")),
            (f"{label}: token accuracy, off-mode tokens only", *sampled(mode, "token_accuracy_off_mode")),
            (f"{label}: valid-frame fraction", *sampled(mode, "valid_fraction")),
            (f"{label}: length error, mean (frames)", *sampled(mode, "length_error_mean", 1)),
            (f"{label}: length error, mean abs (frames)", *sampled(mode, "length_error_abs", 1)),
            (f"{label}: ended with end_of_speech (fraction)", *sampled(mode, "ended_fraction", 2)),
            (f"{label}: seconds per sentence", *sampled(mode, "seconds_per_sentence", 1)),
        ]
    lines = ["| metric (held-out) | diffusion (LLaDA) | autoregressive |", "|---|---:|---:|"]
    lines += [f"| {m} | {x} | {y} |" for m, x, y in rows]
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Train a masked-diffusion and an autoregressive TTS model of the same "
                                            "size for the same CPU wall-clock budget on an eSpeak corpus, and compare "
                                            "them on held-out sentences (Markdown table + JSON).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sentences", type=int, default=400, help="training sentences (utterances)")
    p.add_argument("--holdout", type=int, default=8, help="held-out sentences (spoken, never trained on)")
    p.add_argument("--seed", type=int, default=0, help="corpus, codec, init, batches, masks, sampling")
    p.add_argument("--size", default="small", help="model size for both models (llada_tts.model.SIZES)")
    p.add_argument("--budget-seconds", type=float, default=600.0, help="training time per model (its own step time)")
    p.add_argument("--max-steps", type=int, default=None, help="also stop after this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate (constant after warmup)")
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=640, help="leave out rows longer than this (tokens)")
    p.add_argument("--steps", type=int, default=64,
                   help="diffusion sampling steps per sentence (rounded to a multiple of the block count)")
    p.add_argument("--block-frames", type=int, default=4, help="diffusion sampling block, in 7-token frames")
    p.add_argument("--canvas-margin", type=float, default=0.25,
                   help="canvas = true frames x (1 + margin), rounded up to whole blocks")
    p.add_argument("--elbo-draws", type=int, default=8, help="noise levels t averaged per row for the ELBO")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--work-dir", default=None, help="cache for corpus/codec/dataset (default: a temp dir)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--print-every", type=float, default=30.0, help="seconds between progress lines")
    p.add_argument("--smoke", action="store_true",
                   help="tiny everything (6+2 sentences, tiny model, 3 steps, 4 sampling steps): plumbing check")
    args = p.parse_args(argv)
    if args.smoke:
        args.sentences, args.holdout, args.size = 6, 2, "tiny"
        args.max_steps, args.budget_seconds, args.batch_size = 3, 60.0, 2
        args.steps, args.block_frames, args.elbo_draws, args.print_every = 4, 4, 2, 5.0
    for name in ("sentences", "holdout", "batch_size", "steps", "block_frames", "elbo_draws", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.budget_seconds <= 0 or args.canvas_margin < 0:
        p.error("--budget-seconds must be > 0 and --canvas-margin >= 0")
    if args.size not in ("tiny", "small", "1b", "3b"):
        p.error(f"--size must be tiny, small, 1b or 3b, got {args.size!r}")
    return args


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        data = prepare_data(work, args.sentences + args.holdout, args.seed, progress=not args.smoke)
        train_rows, heldout = split_rows(data, args.holdout, args.max_length)
    lengths = [len(r["input_ids"]) for r in train_rows]
    print(f"{len(train_rows)} training rows (mean {statistics.mean(lengths):.0f} tokens), {len(heldout)} held out; "
          f"size {args.size}, {args.threads} thread(s), budget {args.budget_seconds:.0f} s per model", flush=True)
    modes = slot_modes([audio_of(r) for r in train_rows])
    baseline = slot_mode_baseline(modes, [audio_of(r) for r in heldout])
    result = {"config": {k: v for k, v in vars(args).items()}, "data": {
        "train_rows": len(train_rows), "heldout_rows": len(heldout), "mean_row_tokens": statistics.mean(lengths),
        "heldout_true_frames": [len(audio_of(r)) // L.SLOTS_PER_FRAME for r in heldout],
        "codec": "untrained tiny SNAC layout (create_random_codec size=tiny)", "tokenizer": "offline byte-level"},
        "baseline": {"slot_mode_accuracy": baseline, "slot_modes": modes}, "models": {}}
    models = make_models(args.size, args.seed)
    print(f"training {' and '.join(MODELS)}, interleaved step by step ...", flush=True)
    summaries = train_interleaved(models, train_rows, args)
    for name in MODELS:
        print(f"evaluating {name} ...", flush=True)
        model = models[name]
        result["models"][name] = {"params": count_parameters(model), "train": summaries[name],
                                  "eval": evaluate(name, model, heldout, modes, args)}
        models[name] = None  # free it
    result["load_average"] = {"start": load_start, "end": os.getloadavg(), "cpus": os.cpu_count()}
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except (ValueError, OSError) as e:  # bad arguments, unusable data or work dir
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the corpus and dataset in --work-dir are kept and reused)", file=sys.stderr)
        return 130
    print()
    print(table(result))
    la = result["load_average"]
    print(f"\nload average (1/5/15 min) at start {la['start']}, at end {la['end']}, on {la['cpus']} CPUs")
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
