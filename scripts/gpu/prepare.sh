#!/usr/bin/env bash
# Local step before the GPU calls: wheels for the GPU image's Python 3.12, MBPP, and the GGUF in parts.
# One call ships at most 64 MiB, of which the tracked tree takes ~23 MB (the shipped adapters), so the
# 98 MB GGUF travels in three parts, one per back-to-back call: .gpu_a (with .whl and MBPP), .gpu_b, .gpu_c.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu_a .gpu_b .gpu_c
mkdir -p .whl .gpu_a .gpu_b .gpu_c
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2 gguf==0.19.0 peft==0.21.2 platformdirs
gguf=$(.venv/bin/python -c 'from generators.loading import default_gguf_path; print(default_gguf_path())')
# part sizes: what each call has left under 64 MiB after the tree (and, for the first, the wheels)
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
room=$(( 64 * 1024 * 1024 - tree - 1500000 ))
first=$(( room - $(du -cb .whl | tail -1 | cut -f1) - $(stat -c %s ../shared/data/mbpp/mbpp.jsonl) ))
part() { dd if="$gguf" of="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" ${3:+count="$3"} status=none; }
part .gpu_a/smol.part1 0 "$first"
part .gpu_b/smol.part2 "$first" "$room"
part .gpu_c/smol.part3 $(( first + room ))
[ "$(stat -c %s .gpu_c/smol.part3)" -le "$room" ] || { echo "prepare: the GGUF does not fit in three calls" >&2; exit 1; }
(cd "$(dirname "$gguf")" && sha256sum "$(basename "$gguf")") > .gpu_a/gguf.sha256
cp ../shared/data/mbpp/mbpp.jsonl .gpu_a/
n=1
for carry in ".whl .gpu_a" .gpu_b .gpu_c; do
  echo "call $n carries $carry: $(( ($(du -cb $carry | tail -1 | cut -f1) + tree) / 1048576 )) MiB with the tree (limit 64)"
  n=$(( n + 1 ))
done
