#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/gpu/codec_train.sh needs on a bare GPU machine whose image
# already has torch, accelerate, numpy, einops, pyyaml, tqdm, tensorboard, safetensors (Python 3.12):
#   bash benchmarks/gpu/fetch_wheels.sh        -> .whl/ (about 12 MB; keep it out of git: .git/info/exclude)
# The Whisper judge (ctranslate2 + av + the tiny.en wheel, ~150 MB) is too big to carry: the round trip's
# WER is scored back on the CPU machine with `python -m audio_tokenizer eval-codec`.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
EXCLUDE=$(git rev-parse --git-path info/exclude)  # also right in a worktree
mkdir -p "$(dirname "$EXCLUDE")"
grep -qxF '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >> "$EXCLUDE"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  snac==1.2.1 soundfile==0.14.0 soxr==1.1.0 espeakng-loader==0.2.4 wonderwords==3.0.1 pystoi==0.4.1
ls -la .whl
