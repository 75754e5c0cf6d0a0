#!/usr/bin/env bash
# GPU call 1 (carries .whl and .gpu_a): kernel parity on CUDA, then the kernel benchmark. Writes under $OUT.
source "$(dirname "$0")/env.sh"
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch, triton, transformers; print("torch", torch.__version__, "triton", triton.__version__, "transformers", transformers.__version__)' | tee -a "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_kernels_triton.py 2>&1 | tail -15 | tee "$OUT/kernel_tests.txt"
python3 benchmarks/kernels.py 2>&1 | tee "$OUT/kernels_bench.txt"
