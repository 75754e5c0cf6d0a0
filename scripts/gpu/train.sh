#!/usr/bin/env bash
# GPU call 3: self-distillation + adapter training + evaluation within a wall-clock budget.
# Usage: train.sh [BUDGET_SECONDS] [more generators.training.run flags, e.g. --draft-only-lora]
#        (results: $OUT/adapter files, metrics, card, log)
source "$(dirname "$0")/env.sh"
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ ! -f "$GGUF" ]; then  # a cold machine between the calls loses the earlier parts: fail in seconds
  echo "train.sh: no default model here: run the three calls of scripts/gpu/README.md back to back" >&2
  exit 3
fi
BUDGET=${1:-420}
shift || true
set +e
python3 -m generators.training.run --out /tmp/run --cache-dir /tmp/hgcache --mbpp "$MBPP" \
  --budget-s "$BUDGET" "$@" 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
cp /tmp/run/adapter/* "$OUT/" 2>/dev/null
cp /tmp/run/metrics.json "$OUT/" 2>/dev/null
cp /tmp/run/train/metrics.jsonl "$OUT/train_metrics.jsonl" 2>/dev/null
# Decoder speed on the GPU with the new adapter: AR vs the threshold decoder vs draft-and-verify at
# D = 2 (the default), 3 and 4 (a GPU forward costs the same for wider drafts); about 1 min
if [ -f /tmp/run/adapter/adapter_config.json ]; then
  HYBRIDGEN_CACHE_DIR=/tmp/hgcache timeout 240 python3 benchmarks/refiner.py --skip-quality \
    --adapter /tmp/run/adapter --speed-drafts 3,4 2>&1 | tail -60 \
    | tee "$OUT/refiner_speed.txt"
fi
ls -la "$OUT"
exit $status
