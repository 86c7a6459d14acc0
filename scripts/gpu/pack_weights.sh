#!/usr/bin/env bash
# Here, before a one-call lease (scripts/gpu/one_call.sh): the weights to start from as .cw/w.tar.xz
# (bf16 shards xz to ~70%: the shipped 65 MB travel as ~46 MB, which with .carry1 fits one 64 MiB call).
#   bash scripts/gpu/pack_weights.sh [WEIGHTS_DIR]     (default: the shipped ocr_model/weights/optimem-small)
set -eu
cd "$(git rev-parse --show-toplevel)"
src=${1:-ocr_model/weights/optimem-small}
mkdir -p .git/info && touch .git/info/exclude
grep -qxF "/.cw/" .git/info/exclude || echo "/.cw/" >> .git/info/exclude
rm -rf .cw && mkdir -p .cw
tar -C "$(dirname "$src")" -cf - "$(basename "$src")" | xz -T0 -6 > .cw/w.tar.xz
ls -l .cw/w.tar.xz
