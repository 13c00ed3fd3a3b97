"""AR-to-diffusion adaptation on CPU: does a diffusion model started from an autoregressive one learn faster?

    python benchmarks/adapt_tts.py --smoke                       # < 2 min, plumbing only
    python benchmarks/adapt_tts.py --dataset outputs/voice/dataset --heldout-dataset outputs/voice/heldout_dataset \
        --heldout outputs/voice/heldout --tokenizer outputs/voice/tokenizer --work-dir outputs/adapt

1. **AR pretraining**: the learning benchmark's autoregressive baseline (the same Llama, ``is_causal=True``,
   next-token cross-entropy on the answer tokens) trains for ``--ar-seconds``.
2. **Four diffusion arms**, the same size, trained interleaved step by step (same batches, masks and
   optimiser; each for ``--budget-seconds`` of its own step time, so all see the same machine load):

   scratch        a fresh bidirectional model (the product's default)
   ar             the AR weights, bidirectional from step 0, no tricks
   ar+anneal      the AR weights, attention annealed from causal to bidirectional over --anneal-steps updates
   ar+anneal+shift  the same, and logits at position i come from position i-1 (the AR head's alignment)

   Each arm trains with the product's step (``training.step.diffusion_step``: the LLaDA loss, unchanged).
3. **Measurements**: held-out masked-token NLL (LLaDA's ELBO bound, nats per answer token, bidirectional
   attention as the sampler uses) at ``--evals`` points of the budget; at the end, Whisper tiny.en WER of
   free-running samples of ``--wer-sentences`` held-out sentences (threshold decoding with the prefix
   cache, audio-constrained), next to the eSpeak recordings' own WER.

Data: a tokenised dataset (``llada-tts data build``) and a held-out one with unseen words (the demo voice's,
eSpeak NG in three voices, demo codec, IPA prompts). Models use compact embeddings (the offline byte rows).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository (benchmarks.*), from anywhere

import torch
import torch.nn.functional as F

from benchmarks.learn_tts import apply_update, batches
from benchmarks.learning import diffusion_nll_bound, logits_at
from llada_tts.data import collate, load_tts_rows
from llada_tts.diffusion.anneal import anneal_fraction
from llada_tts.fileio import write_atomic
from llada_tts.model import adapters, config_for_size, count_parameters, create_model, save_model
from llada_tts.training.optim import build_optimizer, build_scheduler
from llada_tts.training.step import diffusion_step, step_generator

ARMS = ("scratch", "ar", "ar+anneal", "ar+anneal+shift")


def make_ar(size: str, seed: int):
    """The AR baseline: the same compact Llama as the diffusion arms, causal."""
    model = create_model(config_for_size(size, compact=True), seed=seed)
    model.config.is_causal = True  # create_model makes it bidirectional; the AR baseline is causal
    return model


def ar_loss(model, batch) -> torch.Tensor:
    """Next-token cross-entropy on the answer, per-row normalised like the diffusion loss (head rows)."""
    ids, maskable = batch["input_ids"], batch["maskable"]
    targets_mask = maskable[:, 1:]  # target at p + 1 is predicted from p
    logits = logits_at(model, ids[:, :-1], targets_mask)  # [N, rows]
    targets = adapters.to_rows(ids[:, 1:][targets_mask], adapters.row_lookup_of(model))  # [N]
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    rows = targets_mask.nonzero(as_tuple=True)[0]
    return (ce / batch["normalizer"].float()[rows]).sum() / ids.shape[0]


def arm_model(arm: str, ar_state: dict | None, size: str, seed: int):
    """A bidirectional diffusion model for ``arm``: fresh, or the AR weights (shifted for +shift)."""
    model = create_model(config_for_size(size, compact=True), seed=seed)
    if arm != "scratch":
        model.load_state_dict(ar_state)
    if arm.endswith("+shift"):
        adapters.set_shift(model)
    return model


def train(name: str, model, rows: list[dict], args, budget: float, anneal_steps: int = 0, ar: bool = False):
    """Train for ``budget`` seconds of this model's own step time; a generator that yields after every
    update (so arms interleave) with (update, seconds spent), and returns a summary."""
    model.train()
    lr = args.lr if ar or args.arm_lr is None else args.arm_lr
    opt = build_optimizer(model, lr, args.weight_decay)
    sched = build_scheduler(opt, "constant", args.warmup_steps, 1)
    gen_batches = batches(len(rows), min(args.batch_size, len(rows)), args.seed)
    losses, step, spent, last_print = [], 0, 0.0, 0.0
    while spent < budget and (args.max_steps is None or step < args.max_steps):
        start = time.perf_counter()
        batch = collate([rows[i] for i in next(gen_batches)])
        if ar:
            loss = ar_loss(model, batch)
        else:
            frac = anneal_fraction(step, anneal_steps)
            loss = diffusion_step(model, batch, step_generator(args.seed, step, 0, torch.device("cpu")),
                                  audio_loss="slot", attention_fraction=frac).loss
        losses.append(apply_update(model, opt, sched, loss))
        step += 1
        spent += time.perf_counter() - start
        if spent - last_print >= args.print_every or step == 1:
            last_print = spent
            print(f"  [{name}] update {step:5d}  {spent:6.0f}/{budget:.0f} s  loss "
                  f"{statistics.mean(losses[-10:]):.3f}", flush=True)
        yield step, spent
    model.eval()
    return {"updates": step, "seconds": round(spent, 1), "final_loss": round(statistics.mean(losses[-10:]), 4)}


def heldout_nll(model, rows: list[dict], draws: int, seed: int) -> float:
    """Mean ELBO bound (nats per answer token, over every id) over the held-out rows, bidirectional, the
    same draws for every arm; on a full-vocabulary copy, as a loaded checkpoint is scored."""
    full = adapters.expand_rows(copy.deepcopy(model)).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return statistics.mean(diffusion_nll_bound(full, torch.tensor(r["input_ids"]), r["prompt_length"], draws, gen)
                               for r in rows)


def train_arms(models: dict, rows, heldout, args) -> tuple[dict, dict]:
    """Interleave the arms update by update; measure held-out NLL when an arm crosses an eval point."""
    points = [args.budget_seconds * (i + 1) / args.evals for i in range(args.evals)]
    running = {a: train(a, m, rows, args, args.budget_seconds,
                        anneal_steps=args.anneal_steps if "anneal" in a else 0) for a, m in models.items()}
    curves = {a: [{"seconds": 0.0, "updates": 0, "nll": heldout_nll(m, heldout, args.elbo_draws, args.seed)}]
              for a, m in models.items()}
    summaries = {}
    while running:
        for arm in list(running):
            try:
                update, spent = next(running[arm])
            except StopIteration as done:
                summaries[arm] = done.value
                del running[arm]
                if curves[arm][-1]["updates"] != summaries[arm]["updates"]:
                    curves[arm].append({"seconds": summaries[arm]["seconds"], "updates": summaries[arm]["updates"],
                                        "nll": heldout_nll(models[arm], heldout, args.elbo_draws, args.seed)})
                continue
            due = [p for p in points if p > curves[arm][-1]["seconds"] and spent >= p]
            if due and spent < args.budget_seconds:
                curves[arm].append({"seconds": round(spent, 1), "updates": update,
                                    "nll": heldout_nll(models[arm], heldout, args.elbo_draws, args.seed)})
                print(f"  [{arm}] held-out NLL {curves[arm][-1]['nll']:.3f} at {spent:.0f} s", flush=True)
    return summaries, curves


def wer_of(arm: str, model, args, work: Path, asr) -> dict:
    """Save the arm as a checkpoint and judge its free-running speech on held-out sentences."""
    from benchmarks.voice_eval import run_row
    from llada_tts.evaluation import load_items
    from llada_tts.synthesis import LladaTTS
    from llada_tts.vocab import load_tokenizer

    folder = work / arm.replace("+", "_")
    meta = Path(args.dataset).parent / "run" / "checkpoint-epoch-4" / "llada_tts.json"
    extra = {"llada_tts.json": (Path(args.meta) if args.meta else meta).read_text()}
    model.config.is_causal = False
    save_model(model, folder, tokenizer=load_tokenizer(args.tokenizer), extra_files=extra)
    tts = LladaTTS.from_pretrained(str(folder), codec="demo")
    items = load_items(args.heldout)[: args.wer_sentences]
    return run_row(tts, items, asr, {"threshold": 0.9, "cache": "prefix"})


def _fmt(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(result: dict) -> str:
    evals = max(len(c) for c in result["curves"].values())
    head = "| arm | updates | " + " | ".join(f"NLL @ eval {i}" for i in range(evals)) + " | WER | dur | ended |"
    lines = [head, "|---|---:|" + "---:|" * (evals + 3)]
    for arm in ARMS:
        if arm not in result["curves"]:
            continue
        c = result["curves"][arm]
        cells = [f"{p['nll']:.3f} ({p['seconds']:.0f} s)" for p in c] + ["—"] * (evals - len(c))
        w = result.get("wer", {}).get(arm, {})
        judged = [_fmt(w.get(k), d) for k, d in (("wer", 3), ("median_duration_ratio", 2), ("ended_fraction", 2))]
        lines.append(f"| {arm} | {result['train'][arm]['updates']} | " + " | ".join(cells + judged) + " |")
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="outputs/voice/dataset", help="tokenised training rows (llada-tts data build)")
    p.add_argument("--heldout-dataset", default="outputs/voice/heldout_dataset", help="tokenised held-out rows")
    p.add_argument("--heldout", default="outputs/voice/heldout", help="held-out corpus folder (metadata.csv + wavs)")
    p.add_argument("--tokenizer", default="outputs/voice/tokenizer")
    p.add_argument("--meta", default=None, help="llada_tts.json to give the arms (voices, codec, front end)")
    p.add_argument("--work-dir", default="outputs/adapt")
    p.add_argument("--size", default="voice")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ar-seconds", type=float, default=600.0, help="AR pretraining time")
    p.add_argument("--budget-seconds", type=float, default=300.0, help="training time per diffusion arm")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--anneal-steps", type=int, default=60, help="K: causal -> bidirectional over K updates")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (constant after warmup)")
    p.add_argument("--arm-lr", type=float, default=None, help="the diffusion arms' learning rate (default: --lr)")
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=400)
    p.add_argument("--train-rows", type=int, default=4000)
    p.add_argument("--nll-rows", type=int, default=16, help="held-out rows for the NLL")
    p.add_argument("--elbo-draws", type=int, default=4)
    p.add_argument("--evals", type=int, default=3, help="NLL measurements over each arm's budget")
    p.add_argument("--wer-sentences", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--print-every", type=float, default=60.0)
    p.add_argument("--smoke", action="store_true", help="tiny model, a few updates, no WER: plumbing only")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.ar_seconds, args.budget_seconds, args.max_steps = "tiny", 30.0, 30.0, 3
        args.train_rows, args.nll_rows, args.elbo_draws, args.evals, args.wer_sentences = 16, 2, 1, 1, 0
        args.anneal_steps, args.print_every = 2, 5.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    rows = load_tts_rows(args.dataset, max_length=args.max_length, drop_long=True, progress=False)
    rows = [rows[i] for i in range(min(args.train_rows, len(rows)))]
    held = load_tts_rows(args.heldout_dataset, max_length=args.max_length, drop_long=True, progress=False)
    heldout = [held[i] for i in range(min(args.nll_rows, len(held)))]
    print(f"{len(rows)} training rows, {len(heldout)} held-out rows; size {args.size}", flush=True)
    ar = make_ar(args.size, args.seed)
    result = {"config": vars(args), "params": count_parameters(ar)}
    print(f"AR pretraining for {args.ar_seconds:.0f} s ...", flush=True)
    run = train("autoregressive", ar, rows, args, args.ar_seconds, ar=True)
    while True:
        try:
            next(run)
        except StopIteration as done:
            result["ar"] = done.value
            break
    ar_state = {k: v.clone() for k, v in ar.state_dict().items()}
    models = {a: arm_model(a, ar_state, args.size, args.seed) for a in ARMS}
    print(f"diffusion arms {', '.join(ARMS)}: {args.budget_seconds:.0f} s each, interleaved ...", flush=True)
    result["train"], result["curves"] = train_arms(models, rows, heldout, args)
    result["wer"] = {}
    write_atomic(work / "adapt.json", json.dumps(result, indent=1, default=str) + "\n")  # the curves, before judging
    if args.wer_sentences:
        from audio_tokenizer.judge import get_asr
        from benchmarks.voice_eval import originals_wer

        asr = get_asr("whisper")
        result["originals_wer"] = originals_wer(Path(args.heldout), args.wer_sentences, asr)
        for arm in ARMS:
            print(f"judging {arm} ...", flush=True)
            result["wer"][arm] = wer_of(arm, models[arm], args, work, asr)
    write_atomic(work / "adapt.json", json.dumps(result, indent=1, default=str) + "\n")
    print(table(result))
    if "originals_wer" in result:
        print(f"eSpeak originals' WER on the same {args.wer_sentences} sentences: {result['originals_wer']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
