#!/usr/bin/env bash
# On the GPU machine: show the last log lines of run RUN and copy its newest checkpoint to $OUT, so that it
# comes back: the model shards as they are (each < 16 MiB) and one tar of the small files, glyph heads and
# log, cut into 15 MiB parts (meta.tar.00, .01, ...; `cat meta.tar.* | tar -x` here).
#   bash scripts/gpu/gpu_copy.sh RUN [LINES]        (RUNS as for gpu_start.sh; the optimizer state stays there)
set -u
r=${RUNS:-runs}/$1
tail -n "${2:-20}" "$r.out" | cut -c1-600
grep -h '"eval_step"\|"advance"\|"done"' "$r/log.jsonl" 2>/dev/null | tail -n 3 | cut -c1-1200
if [ -f "$r/ckpt/state.json" ]; then
  cp "$r"/ckpt/model-*.safetensors "$OUT"/
  tar -cf - -C "$r/ckpt" config.json model.safetensors.index.json tokenizer.json state.json \
      glyph_heads.safetensors -C .. log.jsonl | split -b 15M -d - "$OUT/meta.tar."
  cat "$r/ckpt/state.json"; ls -la "$OUT"
fi
