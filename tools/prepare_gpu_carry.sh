#!/usr/bin/env bash
# Copies what the GPU session needs and cannot reach into .data/ (git-ignored), in two folders,
# because one device call carries at most 64 MiB:
#   .data/base  the CIFAR-10 JPEG copy, the authors' SVHN DCGAN, the offline MLflow wheels (~51 MB)
#   .data/tiny  Tiny-ImageNet-200 at 32x32 (~36 MB), for rows (a)
# Carry .data/base with the first call and .data/tiny with the second (see tools/gpu_session.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${DCGAN_REPRO_SHARED:-../shared}
rm -rf .data/base .data/tiny
mkdir -p .data/base/wheels .data/tiny
cp "$SHARED/data/cifar10_jpeg.tar.xz" .data/base/
cp -r "$SHARED/data/newmu_svhn_dcgan" .data/base/
cp "$SHARED"/wheels/mlflow-py312/*.whl .data/base/wheels/
cp "$SHARED/data/tinyimagenet32_jpeg.tar.xz" .data/tiny/
du -sh .data/base .data/tiny
