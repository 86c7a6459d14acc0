#!/usr/bin/env bash
# On the device: the newest checkpoint of run RUN as one xz'd tar in 15 MiB parts ($OUT/ck.tar.xz.NN) plus
# the run's stdout, safe while the trainer is still running (save_checkpoint renames ckpt.tmp -> ckpt, so
# the folder can be missing for a moment: copy it first, retrying, and check the copy is whole).
#   bash scripts/gpu/pack_ckpt.sh RUN
set -u
r=/tmp/runs/$1
files="config.json model.safetensors.index.json tokenizer.json state.json glyph_heads.safetensors"
for try in 1 2 3 4 5 6 7 8 9 10; do
  rm -rf /tmp/pack && mkdir -p /tmp/pack
  if cp -r "$r/ckpt" /tmp/pack/ 2>/dev/null && cp "$r/log.jsonl" /tmp/pack/ 2>/dev/null; then
    ok=1; for f in $files; do [ -s "/tmp/pack/ckpt/$f" ] || ok=0; done
    n=$(python3 -c "import json; print(len(set(json.load(open('/tmp/pack/ckpt/model.safetensors.index.json'))['weight_map'].values())))" 2>/dev/null || echo -1)
    [ "$(ls /tmp/pack/ckpt/model-*.safetensors 2>/dev/null | wc -l)" = "$n" ] || ok=0
    [ $ok = 1 ] && break
  fi
  sleep 2
done
if [ "${ok:-0}" = 1 ]; then
  cat /tmp/pack/ckpt/state.json
  (cd /tmp/pack && tar -cf - $(for f in $files; do echo ckpt/$f; done) ckpt/model-*.safetensors log.jsonl) \
    | xz -T0 -3 | split -b 15M -d - "$OUT/ck.tar.xz."
else
  echo "no whole checkpoint in $r/ckpt"
fi
cp "/tmp/runs/$1.out" "$OUT/" 2>/dev/null
ls -l "$OUT"
