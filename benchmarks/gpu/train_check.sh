#!/usr/bin/env bash
# The training paths on one bare lent GPU machine, in about 5 minutes (at most ~10: each section has a time
# limit), writing OUT/report.json:
#   tests     the CUDA-only tests (pytest -m gpu, the files that have such tests)
#   train_1b  bf16 steps of recipes/configs/llama3_1b_single_gpu.yaml from random init (model_name 1b, toy data
#             at its max_length 2048, its batch 8 x accumulation 2, gradient checkpointing on as configured):
#             tokens/s, ~TFLOP/s, peak GPU memory, losses; then the same with gradient checkpointing off
#   fsdp      FSDP on 1 process (recipes/accelerate/fsdp.yaml --num_processes 1 --mixed_precision bf16): the
#             tiny model's 4 updates, a stop after 2 and --resume (per-step losses compared), the wrapper
#             and shards, the consolidated checkpoint loading with load_model; then the 1B config under FSDP
#   rtf       the sampler on CUDA: 10 s of audio with the 1B body in bf16 (random weights; reference
#             low_confidence and threshold + dual cache on a peaked copy), real-time factor = wall / audio s
# plus OUT/log.txt (everything), OUT/pytest.txt. A failing section is recorded in the report; the rest still run.
#
#   bash benchmarks/gpu/train_check.sh --fetch      # here, once: the wheels the GPU image lacks, into .whl/
#   bash benchmarks/gpu/train_check.sh "$OUT"       # there, with .whl carried (run tool: carry [".whl"])
#
# Environment: SECTIONS (default "tests train_1b fsdp rtf"), STEPS (timed 1B updates, 8), SIZE (1b),
# MAX_LENGTH (2048), BATCH (8), ACCUM (2), RTF_SECONDS (10), NO_WHEELS=1 (skip the wheel install), TIME_SCALE
# (multiplies each section's time limit, 1).
# CPU dry run of the whole script (tiny sizes; numbers meaningless):
#   NO_WHEELS=1 TIME_SCALE=4 SIZE=tiny MAX_LENGTH=128 BATCH=2 STEPS=3 RTF_SECONDS=1 bash benchmarks/gpu/train_check.sh /tmp/tc
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--fetch" ]; then  # the GPU image has torch, accelerate, transformers, pyarrow, pandas, xxhash, ...
  set -e
  mkdir -p .whl
  EXCLUDE=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$EXCLUDE")"
  grep -qxF '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 soundfile==0.14.0 soxr==1.1.0
  ls -la .whl
  exit 0
fi
OUT=${1:?usage: train_check.sh OUT   (or --fetch)}
SECTIONS=${SECTIONS:-tests train_1b fsdp rtf}
export STEPS=${STEPS:-8} SIZE=${SIZE:-1b} MAX_LENGTH=${MAX_LENGTH:-2048} BATCH=${BATCH:-8} ACCUM=${ACCUM:-2}
export RTF_SECONDS=${RTF_SECONDS:-10}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false
if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
python3 -c "import datasets, accelerate, transformers, torch; print('datasets', datasets.__version__, 'accelerate', accelerate.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" ||
  echo "WARNING: the training sections need datasets (bash benchmarks/gpu/train_check.sh --fetch, carry .whl)"
WORK=$(mktemp -d /tmp/train_check.XXXX)
START=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true

cat > "$WORK/check.py" <<'PY'
"""Sections of benchmarks/gpu/train_check.sh; each writes one JSON file."""
import json, math, os, sys, time
from pathlib import Path

import torch

MODE, OUT = sys.argv[1], Path(sys.argv[2])
SIZE, MAX_LENGTH, BATCH, ACCUM, STEPS = (os.environ["SIZE"], int(os.environ["MAX_LENGTH"]), int(os.environ["BATCH"]),
                                         int(os.environ["ACCUM"]), int(os.environ["STEPS"]))


def dump(obj, path=OUT):
    path.write_text(json.dumps(obj, indent=1, default=str))


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def gib(n):
    return round(n / 2**30, 2)


def make_data(folder: Path, max_length: int, rows: int) -> None:
    import datasets
    from llada_tts.data.toy_data import toy_tts_rows, write_toy_text
    from llada_tts.vocab import build_offline_tokenizer
    if (folder / "tts").exists():
        return
    frames = max(1, (max_length - 13) // 7)  # 13: prompt + end_of_speech + end_of_ai of the toy "hi" rows
    cols = toy_tts_rows(build_offline_tokenizer(), n_rows=rows, frames=frames, codes=4096, texts=["hi", "yo"],
                        voices=["a", "b"])
    datasets.Dataset.from_dict(cols).save_to_disk(str(folder / "tts"))
    write_toy_text(folder / "text.jsonl", n_docs=rows)


def one_b_config(data: Path, save: Path, **kw):
    """recipes/configs/llama3_1b_single_gpu.yaml with a fresh model, toy data, no trackers, STEPS + 3 updates."""
    from llada_tts.training.config import load_config
    over = dict(model_name=SIZE, tokenizer_name="offline", TTS_dataset=str(data / "tts"),
                text_QA_dataset=str(data / "text.jsonl"), max_length=MAX_LENGTH, batch_size=BATCH,
                gradient_accumulation_steps=ACCUM, max_steps=STEPS + 3, warmup=1, mixed_precision="bf16",
                report_to="none",
                logging_steps=1, save_folder=str(save), save_epochs=1000, num_workers=0, number_processes=None, **kw)
    argv = [a for k, v in over.items() for a in (f"--{k}", "null" if v is None else str(v))]
    return load_config("recipes/configs/llama3_1b_single_gpu.yaml", argv)


def timed_updates(trainer, warmup=3):
    """Run the trainer update by update (no checkpoint saves); the timing of updates after ``warmup``."""
    from llada_tts.training import read_metrics
    trainer.save = lambda label: None
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    times, last = [], None
    sync()
    last = time.perf_counter()
    for st in trainer.updates():
        sync()
        now = time.perf_counter()
        times.append(now - last)
        last = now
    m = read_metrics(trainer.cfg.save_folder)
    steps = sorted(m)[warmup:]
    tokens = sum(m[s]["tokens"] for s in steps)
    secs = sum(times[warmup:])
    n_params = sum(p.numel() for p in trainer.model.parameters()) * (trainer.accelerator.num_processes
                                                                    if trainer.accelerator.distributed_type.value == "FSDP" else 1)
    losses = [m[s]["loss"] for s in sorted(m)]
    out = dict(updates=len(times), timed_updates=len(steps), tokens_per_update=tokens / max(1, len(steps)),
               tokens_per_s=round(tokens / secs, 1) if secs else None,
               s_per_update=round(secs / max(1, len(steps)), 3), approx_tflops=round(6 * n_params * tokens / secs / 1e12, 1)
               if secs else None, losses=losses, finite=all(math.isfinite(x) for x in losses),
               grad_norms=[m[s].get("grad_norm") for s in sorted(m)])
    if torch.cuda.is_available():
        out.update(peak_allocated_gib=gib(torch.cuda.max_memory_allocated()),
                   peak_reserved_gib=gib(torch.cuda.max_memory_reserved()))
    return out


if MODE == "data":
    make_data(OUT, int(sys.argv[3]), int(sys.argv[4]))

elif MODE == "train":  # one process, no FSDP; argv: OUT.json DATA gradient_checkpointing
    from llada_tts.training import Trainer
    data, gc = Path(sys.argv[3]), sys.argv[4] == "1"
    res = dict(size=SIZE, max_length=MAX_LENGTH, batch=BATCH, accum=ACCUM, gradient_checkpointing=gc)
    try:
        t = Trainer(one_b_config(data, OUT.parent / f"run_gc{int(gc)}", gradient_checkpointing=gc))
        res.update(device=str(t.accelerator.device), mixed_precision=t.accelerator.mixed_precision,
                   params=sum(p.numel() for p in t.model.parameters()))
        res.update(timed_updates(t))
        opt_state = sorted({str(v.dtype) for s in t.optimizer.state.values() for v in s.values()
                            if torch.is_tensor(v) and v.ndim > 0})
        res.update(opt_dtypes=opt_state, param_dtypes=sorted({str(p.dtype) for p in t.model.parameters()}), ok=True)
    except torch.OutOfMemoryError as e:
        res.update(ok=False, error=f"CUDA out of memory: {str(e).splitlines()[0]}")
    dump(res)

elif MODE == "rank":  # under accelerate launch; argv: OUT_DIR SPEC.json
    from llada_tts.training.config import TrainConfig, load_config
    from llada_tts.training import Trainer
    spec = json.loads(Path(sys.argv[3]).read_text())
    resume, stop_after, timed = spec.pop("_resume", None), spec.pop("_stop_after", None), spec.pop("_timed", None)
    if timed:
        cfg = one_b_config(Path(timed), Path(spec["save_folder"]))
    else:
        cfg = TrainConfig(**spec)
    t = Trainer(cfg, resume=resume)
    acc, model = t.accelerator, t.model
    info = dict(n=acc.num_processes, distributed_type=str(acc.distributed_type), mixed_precision=acc.mixed_precision,
                wrapper=f"{type(model).__module__}.{type(model).__name__}",
                units=sum(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules()),
                policy=str(getattr(model, "mixed_precision", None)),
                local_numel=sum(p.numel() for p in model.parameters()))
    if timed:
        info.update(timed_updates(t))
    else:
        r = t.train(stop_after=stop_after)
        info.update(checkpoint=str(r.checkpoint), global_step=r.state.global_step)
    info.update(opt_dtypes=sorted({str(v.dtype) for s in t.optimizer.state.values() for v in s.values()
                                   if torch.is_tensor(v) and v.ndim > 0}))
    if torch.cuda.is_available():
        info.update(peak_allocated_gib=gib(torch.cuda.max_memory_allocated()))
    if acc.is_main_process:
        dump(info, Path(cfg.save_folder) / "rank0.json")

elif MODE == "fsdp_report":  # argv: OUT.json RUNS_DIR
    from safetensors import safe_open
    from llada_tts.model import load_model
    from llada_tts.training import read_metrics
    runs = Path(sys.argv[3])
    rank = {n: json.loads((runs / n / "rank0.json").read_text()) for n in ("full", "cut")}
    full, cut = read_metrics(runs / "full"), read_metrics(runs / "cut")
    rel = [abs(full[s]["loss"] - cut[s]["loss"]) / abs(full[s]["loss"]) for s in sorted(full)]
    ck = Path(rank["cut"]["checkpoint"])
    model = load_model(ck)
    with safe_open(str(ck / "model.safetensors"), "pt") as f:
        saved = sorted({str(f.get_slice(k).get_dtype()) for k in f.keys()})
    dump(dict(run=rank["full"], resumed=rank["cut"], steps=sorted(full) == sorted(cut) and len(full),
              losses=[full[s]["loss"] for s in sorted(full)], resumed_losses=[cut[s]["loss"] for s in sorted(cut)],
              resume_bit_exact=rel == [0.0] * len(rel), resume_max_rel_diff=max(rel),
              fsdp=rank["full"]["distributed_type"] == "DistributedType.FSDP" and rank["full"]["wrapper"].endswith(
                  "FullyShardedDataParallel") and rank["full"]["units"] >= 2,
              checkpoint_loads=type(model).__name__, checkpoint_params=sum(p.numel() for p in model.parameters()),
              saved_dtypes=saved))

elif MODE == "rtf":  # argv: OUT.json
    from audio_tokenizer import layout as L
    from llada_tts.model import config_for_size, create_model
    from llada_tts.sampling import SamplerConfig, sample
    from llada_tts.vocab import build_offline_tokenizer, encode_text
    seconds = float(os.environ["RTF_SECONDS"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = create_model(config_for_size(SIZE), seed=0, dtype=dtype).to(device).eval()
    prompt = L.tts_prompt_ids(encode_text(build_offline_tokenizer(), "tara: The quick brown fox jumps over the lazy dog."))
    block_frames = 9
    blocks = max(1, int(seconds * L.FRAMES_PER_SECOND) // block_frames)
    block = 7 * block_frames
    gen = blocks * block
    audio_s = gen / L.TOKENS_PER_SECOND
    base = dict(method="semi_autoregressive_padding", gen_length=gen, block_length=block, audio=True)
    steps = blocks * -(-block // 2)
    rows = []

    def run(name, config, peak=1.0):
        with torch.no_grad():
            model.model.norm.weight.copy_(norm * peak)
        sample(model, prompt, SamplerConfig(**{**base, "gen_length": block, "steps": 2}))  # warm-up
        sync()
        start = time.perf_counter()
        res = sample(model, prompt, config)
        sync()
        wall = time.perf_counter() - start
        valid = L.validate_audio_tokens(res.generated[0])
        rows.append(dict(sampler=name, nfe=res.nfe, wall_s=round(wall, 3), rtf=round(wall / audio_s, 4),
                         tokens_per_s=round(gen / wall, 1), valid_frames=f"{valid.frames_kept}/{valid.frames_total}"))

    norm = model.model.norm.weight.detach().clone()
    run(f"reference low_confidence, {steps} steps", SamplerConfig(steps=steps, **base))
    run("threshold 0.9 + dual cache (peaked model, x100 logits)",
        SamplerConfig(use_cache=True, cache_mode="dual", threshold_floor="one", threshold=0.9, **{**base, "steps": gen}),
        peak=100.0)
    dump(dict(size=SIZE, device=device, dtype=str(dtype), audio_s=round(audio_s, 3), gen_tokens=gen,
              prompt_tokens=len(prompt), rows=rows,
              peak_allocated_gib=gib(torch.cuda.max_memory_allocated()) if device == "cuda" else None))
PY

section() {  # section NAME SECONDS: run the function NAME with a time limit; its exit and seconds go to sections.txt
  local name=$1 limit=$2
  case " $SECTIONS " in *" $name "*) ;; *) return 0;; esac
  echo "== $name ($(( $(date +%s) - START )) s in)"
  local t0=$(date +%s)
  timeout --kill-after=10 $(( limit * ${TIME_SCALE:-1} )) bash -o pipefail -c "$name"
  local rc=$?
  echo "$name $rc $(( $(date +%s) - t0 ))" >> "$WORK/sections.txt"
  echo "== $name: exit $rc in $(( $(date +%s) - t0 )) s"
}

tests() {
  local files
  files=$(grep -l "pytest.mark.gpu" tests/test_*.py | tr '\n' ' ')
  python3 -m pytest -q -m gpu -p no:cacheprovider $files 2>&1 | tee "$OUT/pytest.txt"
  return "${PIPESTATUS[0]}"
}

train_1b() {
  python3 "$WORK/check.py" data "$WORK/data" "$MAX_LENGTH" $(( (STEPS + 3) * BATCH * ACCUM * 2 )) &&
  python3 "$WORK/check.py" train "$WORK/train_gc1.json" "$WORK/data" 1 &&
  python3 "$WORK/check.py" train "$WORK/train_gc0.json" "$WORK/data" 0
}

fsdp() {
  local runs=$WORK/fsdp
  local LAUNCH=(python3 -m accelerate.commands.launch --config_file recipes/accelerate/fsdp.yaml --num_processes 1
                --mixed_precision bf16 --main_process_port 29533)
  mkdir -p "$runs"
  SIZE=tiny MAX_LENGTH=128 python3 "$WORK/check.py" data "$WORK/tiny" 128 16 || return 1
  python3 - "$runs" "$WORK/tiny" <<'PY' || return 1
import json, sys
runs, data = sys.argv[1], sys.argv[2]
base = dict(TTS_dataset=f"{data}/tts", text_QA_dataset=f"{data}/text.jsonl", ratio=0.5, max_length=128,
            model_name="tiny", tokenizer_name="offline", batch_size=2, gradient_accumulation_steps=2, epochs=1,
            max_steps=4, learning_rate=3e-3, warmup="1", mixed_precision="auto", report_to="none",
            logging_steps=1, save_epochs=100)
json.dump({**base, "save_folder": f"{runs}/full"}, open(f"{runs}/full.json", "w"))
json.dump({**base, "save_folder": f"{runs}/cut", "_stop_after": 2}, open(f"{runs}/cut_stop.json", "w"))
json.dump({**base, "save_folder": f"{runs}/cut", "_resume": "latest"}, open(f"{runs}/cut_resume.json", "w"))
PY
  "${LAUNCH[@]}" "$WORK/check.py" rank "$runs/x" "$runs/full.json" &&
  "${LAUNCH[@]}" "$WORK/check.py" rank "$runs/x" "$runs/cut_stop.json" &&
  "${LAUNCH[@]}" "$WORK/check.py" rank "$runs/x" "$runs/cut_resume.json" &&
  SIZE=tiny python3 "$WORK/check.py" fsdp_report "$WORK/fsdp_tiny.json" "$runs" || return 1
  [ -d "$WORK/data/tts" ] || python3 "$WORK/check.py" data "$WORK/data" "$MAX_LENGTH" $(( (STEPS + 3) * BATCH * ACCUM * 2 ))
  echo "{\"save_folder\": \"$runs/big\", \"_timed\": \"$WORK/data\"}" > "$runs/big.json"
  "${LAUNCH[@]}" "$WORK/check.py" rank "$runs/x" "$runs/big.json" && cp "$runs/big/rank0.json" "$WORK/fsdp_1b.json"
}

rtf() { python3 "$WORK/check.py" rtf "$WORK/rtf.json"; }

export OUT WORK
export -f tests train_1b fsdp rtf

section tests 90 tests
section train_1b 200 train_1b
section fsdp 200 fsdp
section rtf 100 rtf

python3 - "$WORK" "$OUT/report.json" "$START" <<'PY'
import json, platform, subprocess, sys, time
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
def read(name):
    p = work / name
    return json.loads(p.read_text()) if p.is_file() else None
report = {"sections": {}, "seconds_total": int(time.time()) - int(sys.argv[3])}
for line in (work / "sections.txt").read_text().splitlines() if (work / "sections.txt").is_file() else []:
    name, rc, secs = line.split()
    report["sections"][name] = {"exit": int(rc), "seconds": int(secs)}
try:
    import torch, accelerate, transformers
    report["env"] = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
                         accelerate=accelerate.__version__, transformers=transformers.__version__,
                         gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
except Exception as e:  # noqa: BLE001
    report["env"] = str(e)
pytest_out = Path(out.parent / "pytest.txt")
if pytest_out.is_file():
    lines = [l for l in pytest_out.read_text().splitlines() if l.strip()]
    report["tests"] = lines[-1] if lines else None
report["train_1b"] = {"gradient_checkpointing": read("train_gc1.json"), "no_gradient_checkpointing": read("train_gc0.json")}
report["fsdp"] = {"tiny_round_trip": read("fsdp_tiny.json"), "one_process_1b": read("fsdp_1b.json")}
report["rtf"] = read("rtf.json")
out.write_text(json.dumps(report, indent=1, default=str))
print(json.dumps(report, indent=1, default=str)[:6000])
PY
echo "== done in $(( $(date +%s) - START )) s: $OUT/report.json"
