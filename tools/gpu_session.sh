#!/usr/bin/env bash
# The whole GPU session as one command, for a lent H100/H200 (see README, "GPU").
#
#   bash tools/prepare_gpu_carry.sh           # here, once: data + MLflow wheels into .data/
#   (device tool) run: bash tools/gpu_session.sh   with carry [".data"]
#
# Everything it produces goes under $OUT: logs, results CSV/MD, REPORT.md and charts,
# mlflow.db.  PRESET / BUDGET_MIN override the paper preset and the 9-minute budget (a CPU
# dry run: PRESET=smoke BUDGET_MIN=2 OUT=/tmp/gpu-dry bash tools/gpu_session.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
PRESET=${PRESET:-paper}
BUDGET_MIN=${BUDGET_MIN:-9}
mkdir -p "$OUT/results"
exec > >(tee "$OUT/session.log") 2>&1

if ! python3 -c "import mlflow" 2>/dev/null; then  # offline machines: the wheels carried in .data/
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .data/wheels/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export MLFLOW_TRACKING_URI=sqlite:///$OUT/mlflow.db
export DCGAN_REPRO_CACHE=/tmp/dcgan-repro-cache
(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== GPU-only tests (graphed vs eager, no host sync, graph + resume)"
python3 -m pytest tests/test_fast_step.py -q -rs -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/gpu_tests.log"

echo "== reproduce, preset $PRESET, budget $BUDGET_MIN min"
cp results/*.csv "$OUT/results/"  # the rows so far, so the report shows them beside the new ones
time python3 -m benchmarks.reproduce --preset "$PRESET" --data .data/cifar10_jpeg.tar.xz \
    --newmu .data/newmu_svhn_dcgan --budget-min "$BUDGET_MIN" --results-dir "$OUT/results" \
    --out /tmp/dcgan-repro-runs --no-download
echo "== done; files under $OUT"
