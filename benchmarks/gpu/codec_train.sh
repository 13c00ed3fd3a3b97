#!/usr/bin/env bash
# Train the demo codec (frame-rate architecture, adversarial losses on, bf16) on one bare GPU machine,
# end to end in about MINUTES + 3 minutes, and leave in OUT:
#   OUT/codec/{config.json,model.safetensors}   fp16 weights (~16 MB), loadable with SnacCodec.from_pretrained
#   OUT/report/report.json, OUT/eval.md          eval-codec on 100 held-out open-vocabulary utterances
#                                               (mel distance, STOI, codes used, RTF; --asr none, see below)
#   OUT/metrics.jsonl, OUT/log.txt               the training curve and the whole log
#
#   bash benchmarks/gpu/fetch_wheels.sh                       # here, once: .whl/ (the missing packages)
#   bash benchmarks/gpu/codec_train.sh "$OUT" [MINUTES=6]     # there, with .whl carried
#   python -m audio_tokenizer eval-codec --codec OUT/codec --input outputs/codec_heldout   # here: Whisper WER
#
# Environment: N (training utterances, 2400), EXTRA (more --key value overrides, e.g. for a CPU smoke run:
# NO_WHEELS=1 EXTRA="--model frame-tiny --mixed_precision no --batch_size 2" N=20 ... OUT 0.1).
set -euo pipefail
OUT=${1:?usage: codec_train.sh OUT [MINUTES]}
MINUTES=${2:-6}
N=${N:-2400}
EXTRA=${EXTRA:-}
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
WORK=$(mktemp -d /tmp/codec_gpu.XXXX)
CFG=recipes/codec_configs/gpu.yaml
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true

echo "== corpus ($N training utterances + 100 held-out with unseen words)"
python3 -m audio_tokenizer corpus "$WORK/corpus" --n "$N" --text open --seed 1 2>&1 | tail -1
python3 -m audio_tokenizer corpus "$WORK/heldout" --n 100 --text open-heldout --seed 1 2>&1 | tail -1
COMMON=(--config "$CFG" --train_data "$WORK/corpus" --eval_data "$WORK/heldout" --progress false $EXTRA)

echo "== speed probe (30 steps, adversarial from step 0)"
python3 recipes/codec_train.py "${COMMON[@]}" --output_dir "$WORK/probe" --max_steps 30 --log_every 10 \
  --eval_every 0 --adv_start_step 0 --tensorboard false
read -r STEPS ADV < <(python3 - "$WORK/probe/metrics.jsonl" "$MINUTES" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"seconds_per_step"' in l]
sps = min(r["seconds_per_step"] for r in rows[1:] or rows)   # the first window holds start-up
steps = max(int(float(sys.argv[2]) * 60 / sps), 20)
print(steps, steps // 5)
print(f"{sps:.3f} s/step -> {steps} steps, adversarial from step {steps // 5}", file=sys.stderr)
PY
)

echo "== training $STEPS steps"
python3 recipes/codec_train.py "${COMMON[@]}" --output_dir "$WORK/run" --max_steps "$STEPS" \
  --adv_start_step "$ADV" --save_every "$STEPS" --eval_every $(( STEPS / 4 > 0 ? STEPS / 4 : 1 ))
cp "$WORK/run/metrics.jsonl" "$OUT/metrics.jsonl"

echo "== export fp16 + eval-codec (no ASR on this machine)"
python3 -c "from audio_tokenizer.training.trainer import export_fp16; import sys; export_fp16(sys.argv[1], sys.argv[2], overwrite=True)" \
  "$WORK/run/codec" "$OUT/codec"
DEV=cpu; python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" && DEV=cuda
python3 -m audio_tokenizer eval-codec --codec "$OUT/codec" --input "$WORK/heldout" --asr none --device "$DEV" \
  --out "$OUT/report" --quiet | tee "$OUT/eval.md"
ls -la "$OUT" "$OUT/codec"
