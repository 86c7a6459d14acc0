#!/usr/bin/env bash
# One device call for the read path (issue 13): the shipped weights travel as .cw/w.tar.xz
# (`bash scripts/gpu/pack_weights.sh`, the weights moved out of the tree), carry [".cw"]:
#   bash scripts/gpu/read_speed_lease.sh
# checks that overlap on / off read identically on the GPU, then benchmarks/read_speed.py at batch 128 and 256.
set -u
mkdir -p /tmp/w && xz -T0 -dc .cw/w.tar.xz | tar -x -C /tmp/w && rm -rf ocr_model/weights/optimem-small \
  && cp -r /tmp/w/optimem-small ocr_model/weights/ || exit 1
python3 - <<'PY'
import sys, time
sys.path.insert(0, "benchmarks")
from read_speed import doc_pages
from ocr_model.reader import load
from ocr_model.page.codec import as_stored
pages = doc_pages(300)
ims = [as_stored(p.image, "base") for p in pages]
on = load(device="cuda", views={}, mode="grid", batch_size=64)
off = load(device="cuda", views={}, mode="grid", batch_size=64, overlap=False)
a, b = on.read(ims, "base"), off.read(ims, "base")
print("overlap", on.overlap, off.overlap, "identical texts:", sum(x.text == y.text for x, y in zip(a, b)), "/", len(a),
      "cells equal:", all((x.cells == y.cells).all() for x, y in zip(a, b)))
ref = load(device="cuda", views={}, mode="grid", batch_size=64, overlap=False)
ref._classify = lambda cls, f: cls(f)  # the plain classifier and torch.topk: what _classify / _topk replace
ref._topk = lambda logits, k: logits.topk(k, dim=-1)
c = ref.read(ims, "base")
print("padded classes + block top-k vs plain: identical texts", sum(x.text == y.text for x, y in zip(a, c)), "/", len(a),
      "max cell prob diff", max(float(abs(x.cells - y.cells).max()) for x, y in zip(a, c)))
PY
python3 benchmarks/read_speed.py --device cuda --pages 512 --batch 128 --repeats 2 --json "$OUT/rs128.json" 2>&1 | grep -v '^ \|^{\|^}'
python3 benchmarks/read_speed.py --device cuda --pages 512 --batch 256 --repeats 2 --json "$OUT/rs256.json" 2>&1 | grep -v '^ \|^{\|^}'
