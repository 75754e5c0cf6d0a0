#!/usr/bin/env bash
# GPU call (after the model's three parts are in place, see README.md): the decode engine's parity on
# CUDA, then its speed against HF generate at batch 1 / 8 / 32 in bf16. Under 8 minutes. Writes under $OUT.
source "$(dirname "$0")/env.sh"
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# parity: the engine (AR, draft-and-verify, grammar jump-forward) against the slow references
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_engine.py -k "cuda or reference or verify or graph" 2>&1 \
  | tail -15 | tee "$OUT/engine_tests.txt"
# speed: the engine's AR step and draft-and-verify against HF generate, one run, bf16
HYBRIDGEN_DEVICE=cuda timeout 150 python3 benchmarks/engine.py --dtype bfloat16 --new-tokens 64 --skip-dtype-check \
  2>&1 | tee "$OUT/engine_bench.txt"
# the same with the decode steps as CUDA graphs
HYBRIDGEN_DEVICE=cuda HYBRIDGEN_CUDA_GRAPHS=1 timeout 150 python3 benchmarks/engine.py --dtype bfloat16 --new-tokens 64 \
  --skip-dtype-check 2>&1 | tee "$OUT/engine_bench_graphs.txt"
