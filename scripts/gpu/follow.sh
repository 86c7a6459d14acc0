#!/usr/bin/env bash
# On the device, in the call right after scripts/gpu/one_call.sh returned with its trainer still running
# (within 30 s, or the machine and the run are gone): wait for the trainer to end, at most CAP_S seconds
# after this call's start, then bring back its newest checkpoint (scripts/gpu/pack_ckpt.sh).
#   bash scripts/gpu/follow.sh RUN CAP_S
set -u
run=$1; cap=$2; t0=$(date +%s)
pid=$(cat "/tmp/runs/$run.pid" 2>/dev/null || echo 0)
while kill -0 "$pid" 2>/dev/null && [ $(( $(date +%s) - t0 )) -lt "$cap" ]; do sleep 5; done
echo "waited $(( $(date +%s) - t0 )) s; trainer still running: $(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"
tail -n 3 "/tmp/runs/$run.out" | cut -c1-300
grep -h '"eval_step"' "/tmp/runs/$run/log.jsonl" | tail -n 2 | cut -c1-700
bash "$(dirname "$0")/pack_ckpt.sh" "$run"
