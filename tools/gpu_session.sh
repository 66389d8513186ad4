#!/usr/bin/env bash
# The whole GPU session, for a lent H100/H200 (see README, "GPU"). One device call carries at
# most 64 MiB, so the data travel in two folders and the session is two calls, back to back
# (the machine keeps what the first carried while it stays warm):
#
#   bash tools/prepare_gpu_carry.sh                               # here, once
#   run: bash tools/gpu_session.sh own    carry [".data/base"]    # GPU tests, rows (b), the rest
#   run: bash tools/gpu_session.sh tiny   carry [".data/tiny"]    # rows (a); needs .data/base still there
#
# Rows (a): the imagenet32 D trained as a GAN on Tiny-ImageNet-200 (ImageNet images, transfer to
# CIFAR-10: the paper's setting in kind), under both protocols. Rows (b): the imagenet32 D trained
# on the labelled set's own training images (Table 2's protocol: minus its validation split).
# Then the rest of Tables 1 and 2 within the budget. Everything goes under $OUT: logs, results
# CSV/MD, each trained GAN's record (results/gan_runs/), REPORT.md and charts, mlflow.db.
# PRESET / BUDGET_MIN override the paper preset and the 8-minute budget of a phase; a CPU dry run:
#   PRESET=smoke BUDGET_MIN=2 OUT=/tmp/gpu-dry bash tools/gpu_session.sh all
set -uo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-all}
OUT=${OUT:-/tmp/gpu-out}
PRESET=${PRESET:-paper}
BUDGET_MIN=${BUDGET_MIN:-8}
BASE=.data/base
CIFAR=$BASE/cifar10_jpeg.tar.xz
TINY=.data/tiny/tinyimagenet32_jpeg.tar.xz
case $PHASE in own|tiny|all) ;; *) echo "usage: $0 [own|tiny|all]" >&2; exit 2 ;; esac
mkdir -p "$OUT/results"
exec > >(tee -a "$OUT/session-$PHASE.log") 2>&1

need() {  # every file this phase reads, or one line naming what is missing and how it gets here
    local missing=()
    for f in "$@"; do [ -e "$f" ] || missing+=("$f"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "missing: ${missing[*]} (run tools/prepare_gpu_carry.sh here, then carry .data/base with the first" \
             "call and .data/tiny with the second, back to back: a machine handed back in between keeps nothing)"
        exit 1
    fi
}
need "$CIFAR" "$BASE/wheels"
[ "$PHASE" = own ] || need "$TINY"

if ! python3 -c "import mlflow" 2>/dev/null; then  # offline machines: the wheels carried in .data/base
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $BASE/wheels/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export MLFLOW_TRACKING_URI=sqlite:///$OUT/mlflow.db
export DCGAN_REPRO_CACHE=/tmp/dcgan-repro-cache
(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1
[ -e "$OUT/results/cifar10_probe.csv" ] || cp results/*.csv "$OUT/results/"  # the rows so far, beside the new
[ -e "$OUT/results/gan_runs" ] || cp -r results/gan_runs "$OUT/results/"

reproduce() {
    python3 -m benchmarks.reproduce --preset "$PRESET" --data "$CIFAR" --results-dir "$OUT/results" \
        --out /tmp/dcgan-repro-runs --no-download "$@"
}

if [ "$PHASE" != tiny ]; then
    echo "== GPU-only tests (graphed vs eager, no host sync, graph + resume)"
    python3 -m pytest tests/test_fast_step.py -q -rs -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/gpu_tests.log"
    echo "== rows (b): the imagenet32 D trained on the protocols' own training images, preset $PRESET"
    time reproduce --arch imagenet32 --extractor dcgan --budget-min "$BUDGET_MIN"
    echo "== the rest of Tables 1 and 2, preset $PRESET, budget $BUDGET_MIN min"
    time reproduce --newmu $BASE/newmu_svhn_dcgan --budget-min "$BUDGET_MIN"
fi
if [ "$PHASE" != own ]; then
    echo "== rows (a): the imagenet32 D trained as a GAN on Tiny-ImageNet-200, both tables, preset $PRESET"
    time reproduce --arch imagenet32 --extractor dcgan --gan-data "$TINY" --budget-min "$BUDGET_MIN"
fi
echo "== done; files under $OUT"
