#!/usr/bin/env bash
# The speed benchmark on a lent GPU machine (no network there), in one run of under 10 minutes:
#   run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=600)
# The wheels this project needs beyond that machine's image (Python 3.12; it has torch, accelerate,
# sentencepiece, pandas, pyarrow) travel in .whl/ (git-ignored), downloaded here beforehand with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 pydantic-core==2.50.5 \
#     annotated-types typing-inspection==0.4.5 transformers==5.24.0 tokenizers==0.23.3
# Writes fast.log and full.log to $OUT. What it answers (issue 12):
#   fast config (mt5-small shape, batch 4, 128 + 128): 'late it/s' of emosum, emosum_compile and
#     emosum_graphs against the target of 30 it/s (the baseline did 11.1); precision auto's choice
#   full config (mt5-base shape, 1024 + 512, batch 2): s/step against the baseline's 0.161
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-bench/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, datasets, pydantic, pyarrow; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, 'bf16', torch.cuda.is_bf16_supported())"
# fast config: 400 emosum steps, so that the second half (late it/s) is past compiling; a
# configuration that fails or overruns is reported and the rest go on
timeout 375 python3 bench/train_speed.py --steps 40 --emosum-steps 400 --config-timeout 170 --budget 360 \
  --configs baseline,emosum,emosum_graphs,emosum_compile \
  --work /tmp/bench_fast 2>&1 | tee $OUT/fast.log | grep -v "it/s]" | tail -40
# full config: mt5-base shape, batch 2, 1024 + 512, every batch full length; the emosum run plans
# 10 epochs of the 400 samples (2,000 steps, like a real full run: enough for the precision probe)
timeout 160 python3 bench/train_speed.py --shape mt5-base --src 1024 --tgt 512 --batch 2 --long --samples 400 \
  --steps 20 --emosum-steps 30 --epochs 10 --budget 150 --configs baseline,emosum_32000 --work /tmp/bench_full 2>&1 \
  | tee $OUT/full.log | grep -v "it/s]" | tail -30
