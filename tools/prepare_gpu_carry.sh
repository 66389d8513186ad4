#!/usr/bin/env bash
# Copies what the GPU session needs and cannot reach into .data/ (git-ignored): the CIFAR-10
# JPEG copy, the authors' SVHN DCGAN and the offline MLflow wheels (about 50 MB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DCGAN_REPRO_SHARED:-../shared}
mkdir -p .data/wheels
cp "$SHARED/data/cifar10_jpeg.tar.xz" .data/
cp -r "$SHARED/data/newmu_svhn_dcgan" .data/
cp "$SHARED"/wheels/mlflow-py312/*.whl .data/wheels/
du -sh .data
