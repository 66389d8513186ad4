"""pytest-benchmark view of the throughput suite (``pytest benchmarks/test_throughput.py --benchmark-enable``).

The results tables come from ``python -m benchmarks.throughput``; this file times the very
same callables (``benchmarks.throughput.workloads`` and ``.naive``) with pytest-benchmark,
parametrised by architecture x batch.  On a GPU: batch 128 and 1024, the fast path (bf16,
channels_last, CUDA-graphed step), several timed rounds of many calls each, a
``torch.cuda.synchronize()`` closing every round; each benchmark's ``extra_info`` holds
the device, img/s, TFLOP/s and MFU.  On a CPU: tiny batches, and with
``--benchmark-disable`` (the project's default) each body runs once as a correctness check.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import pytest
import torch

from benchmarks.throughput import naive, timing, workloads
from dcgan_ref.models import feature_dim, get_architecture
from dcgan_ref.runtime.tracking import device_name
from dcgan_ref.step import StepSettings

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CUDA = DEVICE.type == "cuda"
SIZES = timing.GPU_SIZES if CUDA else timing.CPU_SIZES
BATCHES = SIZES.batches if CUDA else (2, 4)
CALLS = 20 if CUDA else 1       # calls per benchmark round
WARMUP = 5 if CUDA else 1       # untimed calls before the rounds (graph capture, cuDNN autotuning)
ROUNDS = 5 if CUDA else 1
FAST = StepSettings.fastest(DEVICE)
DEVICE_NAME = device_name(DEVICE)
PEAK = timing.peak_bf16_tflops(DEVICE_NAME) if CUDA else None

batches = pytest.mark.parametrize("batch", BATCHES)
archs = pytest.mark.parametrize("arch", timing.ARCHS)


@functools.lru_cache(maxsize=None)
def flops(arch: str) -> timing.ArchFlops:
    return timing.dcgan_flops(arch)


def bench(benchmark, call: Callable[[], object], items_per_call: int | None,
          flops_per_item: Callable[[], float] | None = None, *, calls: int = CALLS, rounds: int = ROUNDS,
          warmup: int = WARMUP) -> object:
    """Time rounds of ``calls`` calls (each round ends in a device sync); record the rates.

    Returns the last call's result.  ``items_per_call`` None: no rate (a solve, not images).
    FLOPs are only counted when benchmarking is enabled.
    """
    result: list[object] = [None]

    def one_round() -> None:
        for _ in range(calls):
            result[0] = call()
        if CUDA:
            torch.cuda.synchronize()

    if benchmark.enabled:
        for _ in range(warmup):
            call()
    benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=1 if CUDA and benchmark.enabled else 0)
    benchmark.extra_info["device"] = DEVICE_NAME
    if benchmark.enabled and benchmark.stats is not None and items_per_call is not None:
        rate = items_per_call * calls / benchmark.stats.stats.median
        benchmark.extra_info["img_per_s"] = rate
        if flops_per_item is not None:
            tflops = rate * flops_per_item() / 1e12
            benchmark.extra_info["tflops"] = tflops
            if PEAK:
                benchmark.extra_info["mfu_pct"] = 100 * tflops / PEAK
    return result[0]


@archs
@batches
def test_train_step(benchmark, arch, batch):
    loop = workloads.TrainLoop(arch, batch, FAST, DEVICE, n_images=4 * batch)
    bench(benchmark, loop, batch, lambda: flops(arch).train_step)
    assert torch.isfinite(loop.loss_sum).all() and bool((loop.loss_sum > 0).all())


@pytest.fixture(scope="module")
def naive_folder(tmp_path_factory) -> Path:
    """Random JPEGs in 10 class folders."""
    n = BATCHES[0] * 64 if CUDA else 16
    folder, _ = naive.prepare_image_folder(None, tmp_path_factory.mktemp("naive"), synthetic_images=n)
    return folder


@archs
def test_naive_train_step(benchmark, arch, naive_folder):
    batch = BATCHES[0]
    call = naive.naive_loop(arch, batch, naive_folder, DEVICE, workers=4 if CUDA else 0)
    loss_d, loss_g = bench(benchmark, call, batch, lambda: flops(arch).train_step)
    assert loss_d > 0 and loss_g > 0


@archs
@batches
def test_sample(benchmark, arch, batch):
    size = get_architecture(arch).image_size
    images = bench(benchmark, workloads.sampler(arch, batch, FAST, DEVICE), batch, lambda: flops(arch).sample)
    assert images.shape == (batch, 3, size, size) and bool(images.abs().max() <= 1)


@archs
@batches
def test_extract(benchmark, arch, batch):
    n = batch * SIZES.extract_batches
    call = workloads.feature_extraction(arch, batch, n, FAST, DEVICE)
    features = bench(benchmark, call, n, lambda: flops(arch).extract, calls=1)  # a call is many batches
    assert features.shape == (n, feature_dim(arch)) and torch.isfinite(features).all()


@pytest.mark.parametrize("batch", SIZES.kmeans_batches)
def test_kmeans_encode(benchmark, batch):
    n = batch * SIZES.extract_batches
    call, ext, flops_per_image = workloads.kmeans_encoder(batch, n, DEVICE, SIZES)
    features = bench(benchmark, call, n, lambda: flops_per_image, calls=1)  # a call is many batches
    assert features.shape == (n, ext.feature_dim) and torch.isfinite(features).all()


@pytest.fixture(scope="module")
def svm_problem() -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _ = workloads.svm_features(SIZES.svm_rows, DEVICE, dim=SIZES.svm_dim)
    return x, y


@pytest.mark.parametrize("backend", ["torch", "sklearn"])
def test_svm_solve(benchmark, svm_problem, backend):
    """The L2-SVM solve: torch on all rows; scikit-learn's LinearSVC on the first rows only (one round)."""
    x, y = svm_problem
    rows = len(x) if backend == "torch" else SIZES.svm_sklearn_rows
    solve = workloads.svm_solver(x, y, rows, SIZES.svm_C, backend)
    torch_backend = backend == "torch"
    model = bench(benchmark, solve, None, calls=1, rounds=ROUNDS if torch_backend else 1,
                  warmup=1 if torch_backend else 0)
    benchmark.extra_info.update(rows=rows, dim=x.shape[1], C=SIZES.svm_C)
    assert model.weight.shape == (10, x.shape[1])
    accuracy = (model.predict(x[:rows]) == y[:rows].to(model.weight.device)).float().mean().item()
    assert accuracy > 0.5  # the synthetic classes are separable
