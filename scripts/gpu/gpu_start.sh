#!/usr/bin/env bash
# Start (or resume) a training run on the lent GPU machine, in the background, and show its first lines.
#   bash scripts/gpu/gpu_start.sh RUN_NAME MINUTES [extra train.py flags...]
# CORPUS (default corpus), WHL (extra wheels, default .whl) and RUNS (where runs go, default runs) override
# paths: keep RUNS outside anything a later call replaces (e.g. /tmp/runs). See docs/model_card.md.
set -u
run=$1; minutes=$2; shift 2
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
whl=${WHL:-.whl}
if ls "$whl"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$whl"/*.whl
  export PYTHONPATH=/tmp/site
fi
runs=${RUNS:-runs}
n=$(nvidia-smi -L | wc -l)
mkdir -p "$runs"
nvidia-smi -L; python3 -c "import torch, transformers; print('torch', torch.__version__, 'gpus', torch.cuda.device_count())"
setsid nohup python3 -m torch.distributed.run --standalone --nproc_per_node="$n" -m ocr_model.train \
  --corpus "${CORPUS:-corpus}" --out "$runs/$run" --minutes "$minutes" --workers $(( $(nproc) / n - 2 )) "$@" \
  > "$runs/$run.out" 2>&1 < /dev/null &
echo "started $run on $n GPUs"
