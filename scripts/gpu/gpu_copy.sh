#!/usr/bin/env bash
# On the GPU machine: show the last log lines of run RUN and copy its newest checkpoint to $OUT, so that it
# comes back. One reply brings back at most 64 MiB, and a checkpoint with its glyph heads is ~76 MB, so it
# comes back in two halves: PART=a (default) the first two model shards and one tar of the small files,
# glyph heads and log, cut into 15 MiB parts (meta.tar.00, .01, ...; `cat meta.tar.* | tar -x` here);
# PART=b the other shards. Alternate the two in back-to-back calls (run s4 lost shard 3 until it did).
#   PART=a bash scripts/gpu/gpu_copy.sh RUN [LINES]   (RUNS as for gpu_start.sh; the optimizer state stays there)
set -u
r=${RUNS:-runs}/$1
tail -n "${2:-20}" "$r.out" | cut -c1-600
grep -h '"eval_step"\|"advance"\|"done"' "$r/log.jsonl" 2>/dev/null | tail -n 3 | cut -c1-1200
if [ -f "$r/ckpt/state.json" ]; then
  shards=$(ls "$r"/ckpt/model-*.safetensors)
  n=$(echo "$shards" | wc -l)
  half=$(( (n + 1) / 2 ))
  if [ "${PART:-a}" = a ]; then
    echo "$shards" | head -n "$half" | xargs -I{} cp {} "$OUT"/
    tar -cf - -C "$r/ckpt" config.json model.safetensors.index.json tokenizer.json state.json \
        glyph_heads.safetensors -C .. log.jsonl | split -b 15M -d - "$OUT/meta.tar."
  else
    echo "$shards" | tail -n +"$(( half + 1 ))" | xargs -I{} cp {} "$OUT"/
  fi
  cat "$r/ckpt/state.json"; ls -la "$OUT"
fi
