"""Measured figures, FLOP counts, datasheet peaks and run sizes (the timer and the measured
device limits live in ``dcgan_ref.runtime.limits``).

Nothing here builds a workload: :mod:`.workloads` and :mod:`.naive` build the callables,
:func:`time_calls` times them, and a :class:`Figure` carries the result to the rows.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from dcgan_ref.features import pooled_features
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
