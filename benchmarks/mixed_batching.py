"""Issue 11's before/after: does one kind per batch teach speech better than padding TTS rows to the text rows?

    python benchmarks/mixed_batching.py --smoke                     # < 1 min, plumbing only
    nice -n 10 python benchmarks/mixed_batching.py --work-dir outputs/bench_mixed --steps 100 --threads 1

Data (quickstart-scale, made with the product's own commands, each printed and cached under
``--work-dir``): ``python -m audio_tokenizer corpus`` (eSpeak NG), ``llada-tts tokenizer --from
offline``, ``python -m audio_tokenizer build --codec demo`` (the shipped, trained demo codec;
``--codec random`` makes an untrained tiny one with ``python -m audio_tokenizer random-codec``).
The last ``--holdout`` TTS rows are held out (never trained on, their sentences kept out of the
text rows); the rest train. Text rows are ``{"text": ...}`` documents of the training sentences,
which the trainer packs into ``--max-length`` chunks: LONG text rows, longer than any TTS row.

Arms, one run each, same tiny model config, seed, ratio (``--ratio``, default 0.25), batch size,
learning rate and number of optimizer updates (``--steps``):

  old        the trainer of ``--old-rev`` (default 9ae7057, the commit before issue 11's fix), run
             from a ``git archive`` of that commit with PYTHONPATH pointing at it (checked: the
             child imports llada_tts from there, and its collate pads a TTS row to the text row's
             length with trained, normaliser-counted fill). Its mixed batches hold ratio * B text
             rows beside the TTS rows.
  new        the current trainer (one kind per batch, ratio held over batches, per-kind fill,
             prompt_drop_prob at its default 0.1): this working tree, or a git archive of
             ``--new-rev`` (use that while others edit the tree).
  new-nodrop the current trainer with prompt_drop_prob 0: the batching change alone.

At ratio 0.25 and batch 4 every arm trains on the same number of TTS rows per update on average
(old: 3 per batch; new: 4 in three batches out of four).

Measurement: every final checkpoint is loaded with the CURRENT ``llada_tts.model.load_model`` and
scored by the same code on the held-out TTS rows, one row at a time (no batch padding): for each
mask ratio r in ``--eval-ratios``, ``--eval-draws`` fixed-seed draws of ``diffusion.forward_process``
with t = r over the answer (the prompt stays visible), scored with ``diffusion.masked_diffusion_loss``
at p_mask = 1 (plain cross-entropy) and split by ``diffusion.loss_breakdown`` /
``training.step.accuracy_counts``: cross-entropy (nats) and argmax accuracy on the masked AUDIO tokens.
Every model sees the same masks. Also the ELBO bound in nats per answer token
(``benchmarks/learning.py``'s ``diffusion_nll_bound``). An untrained model of the same config is the
reference row. From the training logs (metrics.jsonl): ``loss_audio`` (CE / p_mask per masked audio
token, not divided by any row normaliser, so comparable across arms) averaged over the last
quarter of the updates, ``loss_text``, and for the new trainer ``tts_fill_fraction`` and
``loss_fill``. The old trainer logs no fill fraction: its column is computed from the data (every
old batch holds a ``max_length`` text row, so each TTS row is filled to that length).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

ARMS = ("old", "new", "new-nodrop")
SENTENCES_PER_DOC = 4  # as the quickstart's text.jsonl
SMOKE = dict(sentences=40, holdout=4, steps=4, eval_draws=1, elbo_draws=1, logging_steps=2, arms="old,new")

# the source check run in each training arm's own interpreter (its PYTHONPATH): where llada_tts comes
# from, and what its collate does to a short TTS row beside a max_length text row
CHECK_SOURCE = r"""
import importlib, json, sys, llada_tts
c = importlib.import_module("llada_tts.data.collate")  # the module (llada_tts.data.collate is also a function)
n, p, L = 40, 10, int(sys.argv[1])
b = c.collate([{"input_ids": [1] * n, "prompt_length": p, "kind": "tts"},
               {"input_ids": [2] * L, "prompt_length": 0, "kind": "text"}])
att = int(b["attention_mask"][0].sum())
print(json.dumps({"llada_tts": llada_tts.__file__, "collate": c.__file__, "tts_normalizer": float(b["normalizer"][0]),
                  "tts_attended": att, "tts_fill": att - n, "answer": n - p}))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def child_env(threads: int, pythonpath: Path | None = None) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def run(cmd: list[str], logfile: Path, env: dict | None = None, cwd: Path | None = None) -> float:
    """Run ``cmd`` (printed), output to ``logfile``; returns seconds. A failure shows the log's tail."""
    shown = ["python" if c == sys.executable else c for c in cmd]
    log(f"$ {shlex.join(shown)}   > {logfile}")
    logfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(logfile, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd).returncode
    if rc != 0:
        tail = logfile.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"command failed (exit {rc}): {shlex.join(shown)}\n--- {logfile} ---\n{tail}")
    return time.perf_counter() - start


# --- data ---------------------------------------------------------------------------------------

def prepare_data(args, env: dict) -> dict:
    """Corpus, tokenizer, dataset (product commands), then the train / held-out split and text.jsonl."""
    import datasets

    py = sys.executable
    root = args.work_dir / f"data_n{args.sentences}_seed{args.data_seed}_{Path(args.codec).name}"
    corpus, tok, built = root / "corpus", root / "tokenizer", root / "dataset"
    if not (corpus / "corpus_info.json").is_file():
        run([py, "-m", "audio_tokenizer", "corpus", str(corpus), "--n", str(args.sentences),
             "--seed", str(args.data_seed), "--force"], root / "logs" / "corpus.log", env)
    if not (tok / "tokenizer.json").is_file():
        run([py, "-m", "llada_tts", "tokenizer", str(tok), "--from", "offline", "--overwrite"],
            root / "logs" / "tokenizer.log", env)
    codec = args.codec
    if codec == "random":
        codec = str(root / "codec_random")
        if not (Path(codec) / "config.json").is_file():
            run([py, "-m", "audio_tokenizer", "random-codec", codec, "--size", "tiny", "--seed",
                 str(args.data_seed), "--overwrite"], root / "logs" / "codec.log", env)
    if not (built / "state.json").is_file() and not (built / "dataset_dict.json").is_file():
        run([py, "-m", "audio_tokenizer", "build", "--input", str(corpus), "--output", str(built),
             "--tokenizer", str(tok), "--codec", codec, "--max-duration", f"{args.max_duration:g}",
             "--max-length", str(args.tts_max_length), "--overwrite", "--quiet"], root / "logs" / "build.log", env)
    split = root / f"split_holdout{args.holdout}"
    train_dir, held_dir, text_path = split / "tts_train", split / "tts_heldout", split / "text.jsonl"
    if not text_path.is_file():
        ds = datasets.load_from_disk(str(built))
        if len(ds) < args.holdout + 2 * args.batch_size:
            raise ValueError(f"the build kept {len(ds)} rows; need --holdout {args.holdout} + two batches "
                             f"(more --sentences or a longer --max-duration)")
        n_train = len(ds) - args.holdout
        tmp = split.with_name(split.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        ds.select(range(n_train)).save_to_disk(str(tmp / "tts_train"))
        ds.select(range(n_train, len(ds))).save_to_disk(str(tmp / "tts_heldout"))
        sents = list(ds.select(range(n_train))["text"])  # held-out sentences never appear as text rows
        docs = [" ".join(sents[i:i + SENTENCES_PER_DOC]) for i in range(0, len(sents), SENTENCES_PER_DOC)]
        (tmp / "text.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
        shutil.rmtree(split, ignore_errors=True)
        tmp.rename(split)
    return {"train": train_dir, "heldout": held_dir, "text": text_path}


def tts_lengths(folder: Path) -> list[tuple[int, int]]:
    import datasets

    ds = datasets.load_from_disk(str(folder))
    return [(len(ids), int(p)) for ids, p in zip(ds["input_ids"], ds["prompt_lengths"])]


def old_fill_fraction(lengths: list[tuple[int, int]], width: int) -> float:
    """The TTS padding fraction of a batch padded to ``width`` (the old collate beside a full text row)."""
    return sum(width - n for n, _ in lengths) / sum(width - p for _, p in lengths)


# --- sources and training -----------------------------------------------------------------------

def old_source(args) -> Path:
    """A ``git archive`` of ``--old-rev`` (llada_tts, audio_tokenizer, recipes) under the work dir, or ``--old-src``."""
    return args.old_src if args.old_src is not None else archive(args, args.old_rev)


def archive(args, rev: str) -> Path:
    """``git archive`` of ``rev`` (llada_tts, audio_tokenizer, recipes) under the work dir (reused)."""
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    dest = args.work_dir / f"src_{rev}"
    if not (dest / "recipes" / "tts_train.py").is_file():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tar = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, "llada_tts",
                              "audio_tokenizer", "recipes"], check=True, capture_output=True).stdout
        with tempfile.TemporaryFile() as fh:
            fh.write(tar)
            fh.seek(0)
            with tarfile.open(fileobj=fh) as tf:
                tf.extractall(tmp, filter="data")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def check_source(src: Path, env: dict, width: int, expect_old: bool) -> dict:
    """Which llada_tts the arm's interpreter imports, and what its collate does beside a text row."""
    proc = subprocess.run([sys.executable, "-c", CHECK_SOURCE, str(width)], env=env, cwd=src,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the source check failed in {src}:\n{proc.stderr[-2000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    where = Path(info["collate"]).resolve()
    if not where.is_relative_to(src.resolve()):
        raise RuntimeError(f"the arm imports llada_tts from {where}, not from {src}: check PYTHONPATH")
    padded = info["tts_fill"] == width - 40
    if padded != expect_old:
        raise RuntimeError(f"{src}: a 40-id TTS row beside a {width}-id text row gets {info['tts_fill']} fill "
                           f"(expected {'the old padding' if expect_old else 'none'}): wrong source for this arm")
    return info


def train_config(args, data: dict, arm: str, folder: Path) -> dict:
    cfg = {"TTS_dataset": str(data["train"]), "text_QA_dataset": str(data["text"]), "ratio": args.ratio,
           "voice_type": "all", "max_length": args.max_length, "model_name": args.size, "tokenizer_name": "offline",
           "epochs": 10_000, "max_steps": args.steps, "batch_size": args.batch_size,
           "gradient_accumulation_steps": 1, "learning_rate": args.lr, "lr_scheduler_type": "linear",
           "warmup_ratio": 0.05, "max_grad_norm": 1.0, "mixed_precision": "no", "seed": args.seed,
           "save_folder": str(folder), "save_epochs": 10_000, "report_to": "none",
           "logging_steps": args.logging_steps}
    if arm == "new-nodrop":
        cfg["prompt_drop_prob"] = 0.0
    return cfg  # "new" keeps the current default prompt_drop_prob; "old" has no such key


def final_checkpoint(folder: Path) -> Path:
    """The run's finished checkpoint with the most optimizer updates, by its weights and trainer_state.json
    only: the old arm's training state is in the earlier pickled format, which the trainer's own
    ``find_latest`` (rightly, for resuming) refuses; only the weights are evaluated here."""
    best, best_step = None, -1
    for d in folder.glob("checkpoint-epoch-*"):
        try:
            step = json.loads((d / "trainer_state.json").read_text())["global_step"]
        except (OSError, ValueError, KeyError):
            continue
        if (d / "config.json").is_file() and step > best_step:
            best, best_step = d, step
    if best is None:
        raise RuntimeError(f"no finished checkpoint in {folder}")
    return best


def train_arm(args, data: dict, arm: str, src: Path, env: dict) -> dict:
    import yaml

    name = f"{arm}_s{args.steps}_seed{args.seed}"
    folder = args.work_dir / "runs" / name
    if args.reuse:
        try:
            ckpt = final_checkpoint(folder)
            if json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == args.steps:
                log(f"{arm}: reusing {ckpt} (--reuse)")
                return {"folder": folder, "checkpoint": ckpt, "seconds": None}
        except (RuntimeError, OSError, ValueError, KeyError):
            pass
    shutil.rmtree(folder, ignore_errors=True)  # this benchmark's own run folder: retrain from scratch
    cfg_path = args.work_dir / "runs" / f"{name}.yaml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(yaml.safe_dump(train_config(args, data, arm, folder), sort_keys=False))
    recipe = src / "recipes" / "tts_train.py"
    seconds = run([sys.executable, str(recipe), "--config", str(cfg_path.resolve())],
                  args.work_dir / "runs" / f"{name}.log", env, cwd=src)
    return {"folder": folder, "checkpoint": final_checkpoint(folder), "seconds": seconds}


def read_metrics(folder: Path) -> dict[int, dict]:
    """step -> metrics.jsonl row (the last line wins), as llada_tts.training.logging.read_metrics."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {int(r["step"]): r for r in rows}


def log_summary(folder: Path, steps: int) -> dict:
    rows = read_metrics(folder) if (folder / "metrics.jsonl").is_file() else {}
    if not rows:
        raise RuntimeError(f"{folder}/metrics.jsonl is empty")
    last = [r for s, r in sorted(rows.items()) if s > steps - max(steps // 4, 1)] or [rows[max(rows)]]

    def mean(key: str, sel=last) -> float | None:
        vals = [r[key] for r in sel if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    every = list(rows.values())
    return {"final_step": max(rows), "loss_audio": mean("loss_audio"), "loss_text": mean("loss_text"),
            "loss_fill": mean("loss_fill"), "accuracy_audio": mean("accuracy_audio"),
            "tts_fill_fraction": mean("tts_fill_fraction", every),
            "crops": sum(r.get("crops", 0) or 0 for r in every) if "crops" in every[0] else None,
            "prompt_drops": sum(r.get("prompt_drops", 0) or 0 for r in every) if "prompt_drops" in every[0] else None,
            "curve": {s: r.get("loss_audio") for s, r in sorted(rows.items())}}


# --- evaluation (current code, same for every arm) ----------------------------------------------

def evaluate(model, rows: list[dict], ratios: list[float], draws: int, elbo_draws: int, seed: int) -> dict:
    import torch

    from audio_tokenizer import layout as L
    from benchmarks.learning import diffusion_nll_bound, logits_at
    from llada_tts.diffusion import forward_process, loss_breakdown, masked_diffusion_loss
    from llada_tts.training.step import accuracy_counts

    model.eval()
    out = {}
    with torch.no_grad():
        for r in ratios:
            ce_sum = n = correct = 0.0
            for i, row in enumerate(rows):
                ids = torch.tensor(row["input_ids"], dtype=torch.long)[None]  # [1, L]
                maskable = torch.arange(ids.shape[1])[None] >= row["prompt_length"]  # [1, L]: the answer
                for d in range(draws):
                    gen = torch.Generator().manual_seed(seed * 1_000_003 + i * 1009 + d * 17 + round(r * 1000))
                    noisy, masked, _ = forward_process(ids, maskable, L.MASK_ID, generator=gen,
                                                       t=torch.tensor([r]))
                    logits = logits_at(model, noisy, masked)[None]  # [1, N, V]: masked positions only
                    target = ids[masked][None]  # [1, N]
                    every = torch.ones_like(target, dtype=torch.bool)
                    # p_mask = 1: weighted_ce is the plain cross-entropy of each masked token
                    _, ce = masked_diffusion_loss(logits, target, every, torch.ones(target.shape), torch.ones(1))
                    parts = loss_breakdown(ce, target, every, L.AUDIO_OFFSET, L.AUDIO_END)
                    acc = accuracy_counts(logits[0].argmax(dim=-1), target[0])
                    ce_sum += float(parts["audio_sum"])
                    n += float(parts["audio_count"])
                    correct += float(acc["audio_correct"])
            out[r] = {"ce": ce_sum / max(n, 1.0), "acc": correct / max(n, 1.0), "tokens": int(n)}
        gen = torch.Generator().manual_seed(seed)
        bounds = [diffusion_nll_bound(model, torch.tensor(row["input_ids"]), row["prompt_length"], draws=elbo_draws,
                                      generator=gen) for row in rows]
    return {"ratios": out, "elbo": sum(bounds) / len(bounds)}


def heldout_rows(folder: Path, max_length: int) -> list[dict]:
    from llada_tts.data import load_tts_rows

    ds = load_tts_rows(str(folder), max_length=max_length, drop_long=True, progress=False)
    return [ds[i] for i in range(len(ds))]


# --- report -------------------------------------------------------------------------------------

def fmt(x, spec=".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def table(args, results: dict, ratios: list[float], n_rows: int, n_train: int, old_fill: float) -> str:
    lines = [f"### Held-out audio tokens ({n_rows} TTS rows, {args.eval_draws} mask draws per ratio, same masks "
             f"for every model; CE in nats, current evaluation code)", ""]
    head = "| model | updates | " + " | ".join(f"CE @{r:g} | acc @{r:g}" for r in ratios) + " | ELBO nats/answer tok |"
    lines += [head, "|" + "---|" * (2 + 2 * len(ratios) + 1)]
    for name, res in results.items():
        ev = res["eval"]
        cells = " | ".join(f"{ev['ratios'][r]['ce']:.3f} | {ev['ratios'][r]['acc']:.3f}" for r in ratios)
        lines.append(f"| {name} | {res.get('updates', 0)} | {cells} | {ev['elbo']:.3f} |")
    lines += ["", "### Training logs (metrics.jsonl; loss/accuracy = mean over the last quarter of the updates)", "",
              "| arm | code | updates | wall s | loss_audio | accuracy_audio | loss_text | loss_fill | "
              "TTS fill fraction | crops | prompt drops |", "|" + "---|" * 11]
    for name, res in results.items():
        if "logs" not in res:
            continue
        lg = res["logs"]
        fill = (f"{old_fill:.3f} (computed)" if name == "old" else fmt(lg["tts_fill_fraction"]))
        text = fmt(lg["loss_text"]) + (" (incl. TTS fill)" if name == "old" else "")
        lines.append(f"| {name} | {res['code']} | {lg['final_step']} | {fmt(res['seconds'], '.0f')} | "
                     f"{fmt(lg['loss_audio'])} | {fmt(lg['accuracy_audio'])} | {text} | {fmt(lg['loss_fill'])} | "
                     f"{fill} | {fmt(lg['crops'], 'g')} | {fmt(lg['prompt_drops'], 'g')} |")
    steps = sorted(next(iter(r["logs"]["curve"] for r in results.values() if "logs" in r)))
    arms = [n for n, r in results.items() if "logs" in r]
    lines += ["", "### loss_audio at equal updates (each logged window)", "",
              "| update | " + " | ".join(arms) + " |", "|" + "---|" * (1 + len(arms))]
    for s in steps:
        lines.append(f"| {s} | " + " | ".join(fmt(results[a]["logs"]["curve"].get(s)) for a in arms) + " |")
    lines += ["", f"Settings: model `{args.size}`, ratio {args.ratio:g}, batch {args.batch_size}, lr {args.lr:g} "
              f"(linear, 5% warm-up), seed {args.seed}, {args.steps} updates, text rows packed to max_length "
              f"{args.max_length}, {n_train} training TTS rows (build --max-length {args.tts_max_length}, "
              f"--max-duration {args.max_duration:g}, codec {args.codec}), {args.threads} thread(s)."]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--work-dir", type=Path, default=None, help="data, old source and runs (default: a temp dir)")
    p.add_argument("--old-rev", default="9ae7057", help="the commit whose trainer is the 'old' arm")
    p.add_argument("--old-src", type=Path, default=None, help="a checkout of the old code instead of git archive")
    p.add_argument("--new-rev", default=None,
                   help="run the new arms from a git archive of this commit (default: this working tree)")
    p.add_argument("--reuse", action="store_true",
                   help="keep an arm's finished run of the same steps and seed instead of retraining it")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    p.add_argument("--sentences", type=int, default=320, help="eSpeak utterances (about half fit --max-duration)")
    p.add_argument("--holdout", type=int, default=24, help="held-out TTS rows (the last ones built)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--codec", default="demo", help="demo (shipped, trained), random (untrained tiny) or a folder")
    p.add_argument("--max-duration", type=float, default=3.0)
    p.add_argument("--tts-max-length", type=int, default=384, help="build --max-length (TTS rows)")
    p.add_argument("--max-length", type=int, default=512, help="trainer max_length: text rows are packed to it")
    p.add_argument("--size", default="tiny")
    p.add_argument("--steps", type=int, default=100, help="optimizer updates per arm")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--ratio", type=float, default=0.25)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--eval-ratios", default="0.25,0.5,0.9")
    p.add_argument("--eval-draws", type=int, default=4)
    p.add_argument("--elbo-draws", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--smoke", action="store_true", help=f"tiny everything (< 1 min): {SMOKE}")
    args = p.parse_args(argv)
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
    arms = [a for a in args.arms.split(",") if a]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        p.error(f"--arms: unknown {bad}; choose from {','.join(ARMS)}")
    args.arm_list = arms
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="mixed_batching_")
        args.work_dir = Path(tmp.name)
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        env_new = child_env(args.threads, REPO)
        data = prepare_data(args, env_new)
        lengths = tts_lengths(data["train"])
        old_fill = old_fill_fraction(lengths, args.max_length)
        ratios = [float(r) for r in args.eval_ratios.split(",")]
        rows = heldout_rows(data["heldout"], args.max_length)

        from llada_tts.model import config_for_size, create_model, load_model

        results = {"untrained": {"eval": evaluate(create_model(config_for_size(args.size), seed=args.seed), rows,
                                                  ratios, args.eval_draws, args.elbo_draws, args.seed), "updates": 0}}
        for arm in args.arm_list:
            if arm == "old":
                src = old_source(args)
                env, code = child_env(args.threads, src), args.old_rev
            elif args.new_rev:
                src = archive(args, args.new_rev)
                env, code = child_env(args.threads, src), args.new_rev
            else:
                src, env, code = REPO, env_new, "working tree"
            info = check_source(src, env, args.max_length, expect_old=arm == "old")
            log(f"{arm}: llada_tts from {Path(info['llada_tts']).parent}; a 40-id TTS row beside a "
                f"{args.max_length}-id text row: {info['tts_fill']} fill, normaliser {info['tts_normalizer']:g}")
            tr = train_arm(args, data, arm, src, env)
            model = load_model(tr["checkpoint"], dtype=torch.float32)
            results[arm] = {"code": code, "seconds": tr["seconds"], "checkpoint": str(tr["checkpoint"]),
                            "logs": log_summary(tr["folder"], args.steps), "source_check": info,
                            "eval": evaluate(model, rows, ratios, args.eval_draws, args.elbo_draws, args.seed)}
            results[arm]["updates"] = results[arm]["logs"]["final_step"]
            del model
        print(table(args, results, ratios, len(rows), len(lengths), old_fill))
        if args.out is not None:
            args.out.write_text(json.dumps({"settings": {k: (str(v) if isinstance(v, Path) else v)
                                                         for k, v in vars(args).items()},
                                            "old_fill_fraction": old_fill, "results": results},
                                           indent=1, default=str))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
