"""Timers, measured figures, FLOP counts, device peaks and run sizes.

Nothing here builds a workload: :mod:`.workloads` and :mod:`.naive` build the callables,
:func:`time_calls` times them, and a :class:`Figure` carries the result to the rows.
"""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from dcgan_ref.features import pooled_features
from dcgan_ref.hardware import native_bf16
from dcgan_ref.models import build_gan, get_architecture
from dcgan_ref.step import make_adam, make_step

ARCHS = ("imagenet32", "svhn32", "dcgan64")

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's datasheets; matched
# against torch.cuda.get_device_name, first match wins (so "H100 PCIe" before "H100").
PEAK_BF16_TFLOPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIe"), 756.0),
    (("H100", "NVL"), 835.0),
    (("H100",), 989.4),   # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    (("H200",), 989.4),   # also matches GH200
    (("H800",), 989.4),
    (("A100",), 312.0),
)


def peak_bf16_tflops(name: str) -> float | None:
    """The dense bf16 peak of a device named like ``torch.cuda.get_device_name``; None if unknown."""
    for tokens, peak in PEAK_BF16_TFLOPS:
        if all(t.lower() in name.lower() for t in tokens):
            return peak
    return None


# ----------------------------------------------------------------------------- measured limits
# Every probe is sized by time, not by a fixed n: a path that runs a thousand times slower than
# expected (bf16 on a CPU without native kernels: 1 GFLOP/s) costs a fraction of a second, not minutes.
PROBE_CALL_S = 0.05   # the probe grows until one call takes this long ...
PROBE_TOTAL_S = 0.4   # ... and stops timing once this much has been spent


def timed_gemm_tflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None,
                      calls: int = 3) -> float:
    """The dense GEMM rate this device reaches, TFLOP/s (best of up to ``calls`` n x n x n products,
    2 n^3 FLOPs each): the compute limit a compute-bound phase is measured against, on devices
    with no datasheet peak here (a CPU's depends on its cores, clock and ISA).

    ``n=None`` sizes the product by time: n doubles from 256 until one product takes
    ``PROBE_CALL_S`` (or n reaches 4,096), so the probe costs well under a second at any speed.
    """
    sizes = [n] if n is not None else [256 * 2**i for i in range(5)]
    spent = 0.0
    for size in sizes:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        first = time_calls(lambda: a @ b, device=device, calls=1, warmup=1, repeats=1)[0]  # warm: pool, kernels
        spent += 2 * first
        if first >= PROBE_CALL_S or size == sizes[-1] or spent > PROBE_TOTAL_S:
            break
    repeats = min(calls - 1, int((PROBE_TOTAL_S - spent) / max(first, 1e-6)))  # within the time left
    more = time_calls(lambda: a @ b, device=device, calls=1, warmup=0, repeats=repeats) if repeats > 0 else []
    best = min([first, *more])
    return 2 * size**3 / best / 1e12


def timed_read_gbps(device: torch.device, mib: int = 256, calls: int = 3) -> float:
    """The memory read rate this device reaches, GB/s (best of ``calls`` sums over ``mib``
    MiB of float32, several times any cache): the limit of a phase that streams a matrix bigger
    than the caches, such as a skinny-GEMM pass of the SVM over the feature matrix."""
    x = torch.ones(mib * 2**20 // 4, device=device)
    best = min(time_calls(lambda: x.sum(), device=device, calls=1, warmup=1, repeats=calls))
    return x.numel() * 4 / best / 1e9


@functools.cache
def _device_limits(device: torch.device) -> tuple[tuple[str, float], ...]:
    limits = {"limit_gemm_fp32_tflops": timed_gemm_tflops(device)}
    if native_bf16(device):  # elsewhere bf16 is emulated: a number would only time the emulation
        limits["limit_gemm_bf16_tflops"] = timed_gemm_tflops(device, torch.bfloat16)
    limits["limit_read_gbps"] = timed_read_gbps(device)
    return tuple(limits.items())


def device_limits(device: torch.device) -> dict[str, float]:
    """Measured limits, logged beside a run's phase timings: fp32 GEMM, bf16 GEMM only where the
    device runs bf16 natively (absent elsewhere), memory read. Measured once per process and
    device (about a second on a CPU), then the same figures are returned."""
    return dict(_device_limits(torch.device(device)))


def describe_limits(limits: dict[str, float]) -> str:
    """One log line: ``fp32 GEMM 0.30 TFLOP/s, bf16 GEMM 1.80 TFLOP/s, memory read 22.0 GB/s``."""
    bf16 = limits.get("limit_gemm_bf16_tflops")
    return (f"fp32 GEMM {limits['limit_gemm_fp32_tflops']:.2f} TFLOP/s, "
            + (f"bf16 GEMM {bf16:.2f} TFLOP/s" if bf16 is not None else "bf16 GEMM: no native bf16")
            + f", memory read {limits['limit_read_gbps']:.1f} GB/s")


# ----------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class Sizes:
    """How much of everything to run: full sizes on a GPU, a correctness check on a CPU."""

    batches: tuple[int, ...]      # DCGAN batch sizes (first one is the naive path's)
    calls: int                    # timed calls per repeat
    warmup: int                   # untimed calls first
    repeats: int                  # timed repeats (the figure is their median)
    extract_batches: int          # batches per feature-extraction call
    naive_calls: int
    naive_warmup: int
    kmeans_k: int
    kmeans_batches: tuple[int, ...]
    kmeans_fit_patches: int
    kmeans_fit_iters: int
    svm_rows: int
    svm_dim: int                  # feature length of synthetic SVM features (real ones: 28,672)
    svm_sklearn_rows: int         # 0: skip scikit-learn
    svm_C: float
    profile_steps: int


GPU_SIZES = Sizes(batches=(128, 1024), calls=50, warmup=10, repeats=5, extract_batches=20,
                  naive_calls=50, naive_warmup=10, kmeans_k=1600, kmeans_batches=(64, 512),
                  kmeans_fit_patches=50_000, kmeans_fit_iters=10,
                  svm_rows=50_000, svm_dim=28_672, svm_sklearn_rows=10_000, svm_C=1e-3, profile_steps=20)
CPU_SIZES = Sizes(batches=(4, 8), calls=2, warmup=1, repeats=2, extract_batches=2,
                  naive_calls=2, naive_warmup=1, kmeans_k=1600, kmeans_batches=(8,),
                  kmeans_fit_patches=2_000, kmeans_fit_iters=1,
                  svm_rows=256, svm_dim=2048, svm_sklearn_rows=128, svm_C=1e-3, profile_steps=1)


# ----------------------------------------------------------------------------- timing
def time_calls(fn: Callable[[], object], *, device: torch.device, calls: int, warmup: int,
               repeats: int) -> list[float]:
    """Seconds per call of ``fn``, one value per repeat of ``calls`` calls, after ``warmup`` calls.

    On CUDA, CUDA events bracket each repeat (no host sync inside it); elsewhere a host clock.
    """
    for _ in range(warmup):
        fn()
    out = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1e3 / calls)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            out.append((time.perf_counter() - t0) / calls)
    return out


@dataclass
class Figure:
    """One measured figure before it becomes results rows.

    ``metric`` is ``<name>_<unit>`` with unit ``img_per_s``, ``s`` or ``x`` (a ratio).
    ``flops`` is per image (rates) or per call (times); with it, the rows builder adds
    ``<name>_tflops`` and ``<name>_mfu_pct``.
    """

    metric: str
    values: list[float]               # one per repeat
    extractor: str
    batch: int
    flops: float | None = None
    wall_s: float | None = None       # timed seconds behind the figure
    classifier: str = ""
    dataset: str = ""                 # only where the data changes the cost (the SVM's features)
    feature_dim: int | None = None
    data_sha256: str = ""
    notes: str = ""

    @property
    def value(self) -> float:
        return statistics.median(self.values)

    @property
    def stem(self) -> str:
        for unit in ("_img_per_s", "_s", "_x"):
            if self.metric.endswith(unit):
                return self.metric[: -len(unit)]
        raise ValueError(f"metric {self.metric!r} has no unit suffix (_img_per_s, _s, _x)")

    def tflops(self) -> list[float] | None:
        if self.flops is None:
            return None
        if self.metric.endswith("_img_per_s"):
            return [v * self.flops / 1e12 for v in self.values]
        if self.metric.endswith("_s"):
            return [self.flops / v / 1e12 for v in self.values]
        return None


def rate_figure(metric: str, seconds_per_call: list[float], items_per_call: int, **kw: Any) -> Figure:
    """A ``*_img_per_s`` figure from per-call times."""
    return Figure(metric, [items_per_call / s for s in seconds_per_call], **kw)


def speedup(fast: Figure, slow: Figure, metric: str) -> Figure:
    """``fast / slow`` of two rate figures (medians), on ``fast``'s table line."""
    return Figure(metric, [fast.value / slow.value], extractor=fast.extractor, batch=fast.batch,
                  notes=f"{fast.metric} / {slow.metric}")


# ----------------------------------------------------------------------------- FLOPs
def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class ArchFlops:
    """FLOPs per image of one architecture."""

    train_step: int   # one training step as dcgan_ref.step.make_step runs it (forwards and backwards)
    sample: int       # G forward
    extract: int      # D.features forward (the pooled-feature extractor)


def dcgan_flops(arch_name: str, batch: int = 2) -> ArchFlops:
    """Count :class:`ArchFlops` once, on the CPU in fp32 (FLOPs do not depend on device or dtype)."""
    arch = get_architecture(arch_name)
    g, d = build_gan(arch_name, 0)
    step = make_step(g, d, make_adam(g), make_adam(d), bf16=False)
    gen = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (batch, 3, arch.image_size, arch.image_size), dtype=torch.uint8, generator=gen)
    z = arch.sample_z(batch, "cpu", gen)
    train = count_flops(lambda: step(real, z))
    with torch.no_grad():
        sample = count_flops(lambda: g.eval()(z))
    extract = count_flops(lambda: pooled_features(d, real, batch_size=batch))
    return ArchFlops(train // batch, sample // batch, extract // batch)
