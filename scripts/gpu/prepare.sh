#!/usr/bin/env bash
# Local step before the GPU calls: wheels for the GPU image's Python 3.12, the GGUF in two parts, MBPP.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl .gpu_a .gpu_b
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2 gguf==0.19.0 peft==0.21.2 platformdirs
gguf=$(.venv/bin/python -c 'from generators.loading import default_gguf_path; print(default_gguf_path())')
head -c 45000000 "$gguf" > .gpu_a/smol.part1
tail -c +45000001 "$gguf" > .gpu_b/smol.part2
cp ../shared/data/mbpp/mbpp.jsonl .gpu_a/
