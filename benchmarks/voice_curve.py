"""Held-out learning curve of a TTS run: the training loss, on held-out rows, at every checkpoint.

    python benchmarks/voice_curve.py --run outputs/voice/run --heldout outputs/voice/heldout_dataset

For each checkpoint-epoch-N of --run (in update order) it loads the model as the trainer does
(compact rows kept, frame-aligned prompts when it uses slot masks), draws --draws masks per held-out
row from fixed seeds (the same masks for every checkpoint), and reports the masked-diffusion loss
split as in training (audio = codec-token targets, CE / p_mask per masked token; text = stream-end
and control targets) plus the argmax accuracy on masked audio tokens, with the run's own
``audio_loss`` (slot-restricted or full). With --control it also scores every row's audio under the
NEXT row's prompt: the gap between the two audio losses is what the text is worth to the model
(zero: it has not learned to read yet). --heldout is a dataset built like the training set from
sentences whose words training never spoke (``python -m audio_tokenizer build --input
outputs/voice/heldout ...``). Forward passes only: about 20 s per checkpoint for 150 rows on 2 cores.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from llada_tts.data import collate, load_tts_rows
from llada_tts.model import adapters, load_model
from llada_tts.training.build import align_rows
from llada_tts.training.config import load_config
from llada_tts.training.step import diffusion_step, step_generator


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = []
    for d in run.glob("checkpoint-epoch-*"):
        state = d / "trainer_state.json"
        if state.is_file():
            found.append((json.loads(state.read_text())["global_step"], d))
    return sorted(found)


def swap_prompts(rows):
    """Row i's audio after row (i+1)'s prompt (a control: same audio, the wrong text)."""
    import datasets

    ids, lengths = rows["input_ids"], rows["prompt_length"]
    n = len(ids)
    out = [{"input_ids": ids[(i + 1) % n][:lengths[(i + 1) % n]] + ids[i][lengths[i]:],
            "prompt_length": lengths[(i + 1) % n], "kind": "tts"} for i in range(n)]
    return datasets.Dataset.from_list(out)


@torch.no_grad()
def heldout_loss(ckpt: Path, rows, draws: int, batch_size: int, audio_loss: str) -> dict:
    model = load_model(ckpt, dtype=torch.float32, expand=False).eval()
    data = align_rows(rows, adapters.prompt_multiple(model.config))
    sums = {"audio_sum": 0.0, "audio_count": 0.0, "text_sum": 0.0, "text_count": 0.0, "audio_correct": 0.0,
            "audio_total": 0.0}
    for d in range(draws):
        for i, lo in enumerate(range(0, len(data), batch_size)):
            batch = collate([data[j] for j in range(lo, min(lo + batch_size, len(data)))])
            gen = step_generator(1234 + d, i, 0, torch.device("cpu"))
            stats = diffusion_step(model, batch, gen, audio_loss=audio_loss).stats
            for k in sums:
                sums[k] += float(stats[k])
    return {"audio_loss": sums["audio_sum"] / max(sums["audio_count"], 1),
            "text_loss": sums["text_sum"] / max(sums["text_count"], 1),
            "audio_accuracy": sums["audio_correct"] / max(sums["audio_total"], 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="outputs/voice/run", help="training save_folder")
    ap.add_argument("--heldout", default="outputs/voice/heldout_dataset", help="held-out TTS dataset folder")
    ap.add_argument("--draws", type=int, default=4, help="mask draws per row (default 4)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--every", type=int, default=1, help="evaluate every k-th checkpoint (the last always)")
    ap.add_argument("--control", action="store_true", help="also score the audio under another row's prompt")
    ap.add_argument("--out", default=None, help="write the table as JSON here")
    args = ap.parse_args(argv)
    run = Path(args.run)
    config = load_config(run / "train_config.yaml")
    rows = load_tts_rows(args.heldout, max_length=config.max_length, drop_long=True, progress=False)
    found = checkpoints(run)
    picked = [c for i, c in enumerate(found) if i % args.every == 0 or i == len(found) - 1]
    print(f"{len(rows)} held-out rows, {args.draws} mask draws each, audio_loss={config.audio_loss}")
    control = swap_prompts(rows) if args.control else None
    print(f"{'update':>7} {'checkpoint':<28} {'audio loss':>10} {'audio acc':>9} {'text loss':>9}"
          + (f" {'wrong-text audio loss':>22}" if control is not None else ""))
    table = []
    for step, ckpt in picked:
        r = {"update": step, "checkpoint": ckpt.name, **heldout_loss(ckpt, rows, args.draws, args.batch_size,
                                                                       config.audio_loss)}
        if control is not None:
            r["wrong_text_audio_loss"] = heldout_loss(ckpt, control, args.draws, args.batch_size,
                                                      config.audio_loss)["audio_loss"]
        table.append(r)
        print(f"{step:>7} {ckpt.name:<28} {r['audio_loss']:>10.3f} {r['audio_accuracy']:>9.4f} "
              f"{r['text_loss']:>9.3f}" + (f" {r['wrong_text_audio_loss']:>22.3f}" if control is not None else ""),
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
