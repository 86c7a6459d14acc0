#!/usr/bin/env bash
# A whole training lease in ONE device call (run s6 on): a machine left idle for 30 s between calls is
# given back, and with it a run started by an earlier call (runs s5 and s6 lost a start that way). Here,
# first: `bash scripts/gpu/lease_prep.sh` (.carry1: corpus + code snapshot) and `bash scripts/gpu/pack_weights.sh`
# (.cw: the init weights as one xz'd tar, ~46 MB: bf16 shards compress to ~70%). Then one call, carry
# [".carry1", ".cw"], with the weights moved out of the tree (docs/model_card.md "Continue training"):
#   bash .carry1/code/scripts/gpu/one_call.sh RUN MINUTES CAP_S [train.py flags...]
# unpacks both, trains --init from the carried weights for MINUTES (keep it ~3 min under the call's limit:
# model load, the render workers' start and the final checkpoint take ~40 s), stops waiting at CAP_S
# seconds after the start whatever happens, and writes the newest checkpoint as one xz'd tar cut into 15 MiB
# parts ($OUT/ck.tar.xz.NN; here: `cat ck.tar.xz.* | xz -dc | tar -x`) plus the run's stdout. A run longer
# than one call: MINUTES past CAP_S, then scripts/gpu/follow.sh in the very next call (the trainer goes on).
set -u
run=$1; minutes=$2; cap=$3; shift 3
t0=$(date +%s)
mkdir -p /tmp/c /tmp/code /tmp/w /tmp/runs
cp .carry1/corpus/* /tmp/c/ && cp -r .carry1/code/. /tmp/code/ && cp -r ocr_model/page/fonts /tmp/code/ocr_model/page/ && xz -T0 -dc .cw/w.tar.xz | tar -x -C /tmp/w || exit 1
init=$(dirname "$(ls /tmp/w/*/config.json | head -n 1)")
cd /tmp/code
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
setsid nohup python3 -m ocr_model.train --corpus /tmp/c --out "/tmp/runs/$run" --minutes "$minutes" \
  --workers $(( $(nproc) - 3 )) --init "$init" --tokenizer "$init/tokenizer.json" "$@" \
  > "/tmp/runs/$run.out" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "/tmp/runs/$run.pid"
bash /tmp/code/scripts/gpu/follow.sh "$run" $(( cap - ($(date +%s) - t0) ))  # wait, then the checkpoint back
