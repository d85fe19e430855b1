#!/usr/bin/env bash
# Issue 15's GPU checks, in one call on a machine with a CUDA GPU (nothing else needs one; CI has none):
# the tests of tests/test_cuda.py, then `qrl bench` tables of the torch path on the GPU. Usage, from the
# repository root: bash tests/gpu/check.sh OUT_DIR (JSON, log and a tarball of both land there).
# Needs torch with CUDA and qrl's dependencies; a machine without a registry gets pennylane, pennylane-lightning,
# stable-baselines3, gymnasium and their small dependencies as wheels (pip download --no-deps for its Python). A
# workplace that copies the working tree to the GPU machine may cap its size: runs/reference/ (over 100 MiB) is
# not needed here and can stay behind. STEPS="pytest persample ..." runs only the steps named (a short device lease).
set -u
OUT_DIR=${1:-runs/gpu}
WORK=$(mktemp -d)
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
PY=${PYTHON:-python3}
pack() { tar -czf "$OUT_DIR/gpu-results.tar.gz" -C "$WORK" . 2>/dev/null; }
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log it, keep going on failure
  local name=$1 limit=$2; shift 2
  if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]]; then return; fi
  echo "=== $name ($(date -u +%H:%M:%S)): $*"
  timeout "$limit" "$@" >"$WORK/$name.txt" 2>&1
  echo "--- $name: exit $? ($(date -u +%H:%M:%S))"
  tail -n 25 "$WORK/$name.txt"
  pack
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$WORK/gpu.txt"
$PY -c "import torch, pennylane, stable_baselines3 as s; print('torch', torch.__version__, torch.cuda.get_device_name(),
'pennylane', pennylane.__version__, 'sb3', s.__version__)" | tee -a "$WORK/gpu.txt"
step pytest 150 $PY -m pytest -q -p no:cacheprovider -o addopts= tests/test_cuda.py
# a matrix per sample one sample at a time (the CPU's choice for large products without autograd) or broadcast
step persample 170 $PY tests/gpu/persample.py "$WORK"
B="$PY -m qrl.cli bench"
step scaling-b64 90 $B scaling --qubits 16 18 20 22 24 --batch 64 --backends torch@cuda --out "$WORK"
step scaling-b256 60 $B scaling --qubits 16 18 20 22 --batch 256 --backends torch@cuda --out "$WORK"
step scaling-b1024 60 $B scaling --qubits 16 18 20 --batch 1024 --backends torch@cuda --out "$WORK"
step scaling-26 60 $B scaling --qubits 25 26 --batch 16 --backends torch@cuda --out "$WORK"
# auto on the GPU: a call over 3/4 of the GPU's memory in chunks (26 qubits / 32 samples: about 98 GB in one call)
step chunks-26 90 $B scaling --qubits 26 --batch 32 --backends auto@cuda --out "$WORK"
step cpu-1thread 80 $B scaling --qubits 16 18 --batch 64 --backends torch torch@cuda --baseline torch --out "$WORK"
step cpu-16threads 45 env QRL_NUM_THREADS=16 $B scaling --qubits 16 18 --batch 64 --backends torch torch@cuda \
  --baseline torch --out "$WORK"
# --vqc-device torch: the torch programs, as measured on 2026-12-04 (auto now runs the native kernel on the CPU)
step train-4q-cuda 60 $B train --algos ppo --steps 2048 --sb3-device cuda --vqc-device torch --out "$WORK"
step train-4q-cpu 45 $B train --algos ppo --steps 2048 --vqc-device torch --out "$WORK"
step train-16q-cuda 60 $B train --algos ppo --steps 2048 --sb3-device cuda --n-qubits 16 --vqc-device torch --out "$WORK"
step train-16q-cpu 90 env QRL_NUM_THREADS=16 $B train --algos ppo --steps 256 --n-qubits 16 --vqc-device torch --out "$WORK"
echo "=== done $(date -u +%H:%M:%S)"
