#!/usr/bin/env bash
# On the device: wait for run RUN's trainer (pid in /tmp/runs/RUN.pid) to end, at most CAP_S seconds, then
# bring back its newest checkpoint (scripts/gpu/pack_ckpt.sh). one_call.sh ends with it; call it again in the
# call right after one_call.sh returned with its trainer still running (within 30 s, or the machine and the
# run are gone).
#   bash scripts/gpu/follow.sh RUN CAP_S
set -u
run=$1; cap=$2; t0=$(date +%s)
pid=$(cat "/tmp/runs/$run.pid" 2>/dev/null || echo none)  # not 0: `kill -0 0` is this process group
while kill -0 "$pid" 2>/dev/null && [ $(( $(date +%s) - t0 )) -lt "$cap" ]; do sleep 5; done
echo "waited $(( $(date +%s) - t0 )) s; trainer still running: $(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"
tail -n 3 "/tmp/runs/$run.out" | cut -c1-300
grep -h '"eval_step"' "/tmp/runs/$run/log.jsonl" | tail -n 2 | cut -c1-700
bash "$(dirname "$0")/pack_ckpt.sh" "$run"
