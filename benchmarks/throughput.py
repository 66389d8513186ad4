"""Throughput suite: how fast each piece of the reproduction runs, and how close to the chip.

``python -m benchmarks.throughput [--out-dir results] [--data cifar10_jpeg.tar.xz]``

For each DCGAN architecture, at batch 128 and at a large batch:

* ``train_img_per_s``: the fast training step (the ``paper`` preset's settings: device-resident
  uint8 data drawn by ``randperm``, bf16 autocast, channels_last, fused capturable Adam, the
  whole D+G step one CUDA graph, no host sync per step);
* ``eager_train_img_per_s``: the same step without the graph;
* ``naive_train_img_per_s`` (batch 128 only): the usual tutorial loop, for the ratio
  ``train_speedup_vs_naive_x``: ``torchvision.datasets.ImageFolder`` over JPEG files with
  per-sample transforms, a ``DataLoader``, eager fp32, default Adam, and a ``.item()`` per step;
* ``sample_img_per_s`` (G forward, eval mode) and ``extract_img_per_s`` (D's pooled features);

plus the K-means baseline's encoding (``extract_img_per_s`` of ``kmeans-1600``) and the
L2-SVM solve at 50,000 x 28,672 (``svm_solve_s``), with scikit-learn's ``LinearSVC`` on a
10,000-row slice of the same features (``sklearn_svm_solve_s``, ``svm_speedup_vs_sklearn_x``).

Each rate carries ``<name>_tflops`` (FLOPs counted once with ``torch.utils.flop_counter``:
matmuls and convolutions, forward and backward) and ``<name>_mfu_pct``, its share of the
device's dense bf16 peak (blank for a device missing from :data:`PEAK_BF16_TFLOPS`).  GPU
times come from CUDA events after warm-up; each figure is the median of several repeats,
``std`` their spread.  A ``torch.profiler`` summary of the fast step (top kernels, the
share of the step the GPU sits idle between kernels) is written beside the results.

On a GPU the full sizes run and ``results/throughput.{csv,md}`` are written; on a CPU small
sizes run as a correctness check, the table is printed and nothing is written.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import math
import os
import statistics
import tarfile
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.results import COLUMNS, RESULTS_DIR, write_results
from dcgan_ref.fast_step import make_graphed_step
from dcgan_ref.features import pooled_features
from dcgan_ref.models import Discriminator, Generator, build_gan, feature_dim, get_architecture
from dcgan_ref.tracking import device_name as describe_device
from dcgan_ref.train import make_step, set_determinism

if TYPE_CHECKING:
    from baselines.kmeans import KMeansExtractor

ARCHS = ("imagenet32", "svhn32", "dcgan64")
PROTOCOL = "throughput"

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


# ----------------------------------------------------------------------------- sizes, settings
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


@dataclass(frozen=True)
class StepSettings:
    """How a training step runs (the ``paper`` preset's are :func:`fast_settings` on CUDA)."""

    bf16: bool = False
    channels_last: bool = False
    cuda_graph: bool = False

    def describe(self) -> str:
        parts = [n for n, on in (("bf16", self.bf16), ("channels_last", self.channels_last),
                                 ("CUDA graph", self.cuda_graph)) if on]
        return ", ".join(parts) or "fp32 eager"


def fast_settings(device: torch.device) -> StepSettings:
    """bf16 + channels_last + CUDA graph on CUDA; plain fp32 eager elsewhere (as the presets)."""
    cuda = device.type == "cuda"
    return StepSettings(bf16=cuda, channels_last=cuda, cuda_graph=cuda)


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


# ----------------------------------------------------------------------------- FLOPs
def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class ArchFlops:
    """FLOPs per image of one architecture."""

    train_step: int   # G forward, D on real and fake, both backwards (fwd + bwd of the whole step)
    sample: int       # G forward
    extract: int      # D.features forward (the pooled-feature extractor)


def dcgan_flops(arch_name: str, batch: int = 2) -> ArchFlops:
    """Count :class:`ArchFlops` once, on the CPU in fp32 (FLOPs do not depend on device or dtype)."""
    arch = get_architecture(arch_name)
    g, d = build_gan(arch_name, 0)
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    step = make_step(g, d, opt_g, opt_d, bf16=False)
    gen = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (batch, 3, arch.image_size, arch.image_size), dtype=torch.uint8, generator=gen)
    z = arch.sample_z(batch, "cpu", gen)
    train = count_flops(lambda: step(real, z))
    with torch.no_grad():
        sample = count_flops(lambda: g.eval()(z))
    extract = count_flops(lambda: pooled_features(d, real, batch_size=batch))
    return ArchFlops(train // batch, sample // batch, extract // batch)


# ----------------------------------------------------------------------------- training step
def build_step(arch_name: str, settings: StepSettings, device: torch.device, seed: int = 0
               ) -> tuple[Generator, Discriminator, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """G, D and a step function set up exactly as :func:`dcgan_ref.train.train` does."""
    g, d = build_gan(arch_name, seed)
    g, d = g.to(device), d.to(device)
    if settings.channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    cuda = device.type == "cuda"
    graphed = settings.cuda_graph and cuda
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999), fused=cuda, capturable=graphed)
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999), fused=cuda, capturable=graphed)
    if graphed:
        step = make_graphed_step(g, d, opt_g, opt_d, bf16=settings.bf16)
    else:
        step = make_step(g, d, opt_g, opt_d, settings.bf16)
    return g, d, step


class ResidentBatches:
    """Batches drawn from a device-resident uint8 tensor by a per-epoch ``randperm`` (as ``train``)."""

    def __init__(self, images: torch.Tensor, batch: int, *, channels_last: bool, seed: int = 0) -> None:
        if len(images) < batch:
            raise ValueError(f"{len(images)} images is fewer than one batch of {batch}")
        self.images, self.batch, self.channels_last = images, batch, channels_last
        self.gen = torch.Generator(images.device).manual_seed(seed)
        self.perm, self.pos = torch.empty(0, dtype=torch.long, device=images.device), len(images)

    def next(self) -> torch.Tensor:
        n, b = len(self.images), self.batch
        if self.pos + b > n:
            self.perm, self.pos = torch.randperm(n, device=self.images.device, generator=self.gen), 0
        real = self.images[self.perm[self.pos:self.pos + b]]
        self.pos += b
        return real.contiguous(memory_format=torch.channels_last) if self.channels_last else real


def random_images(n: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """uint8 noise images (N, 3, size, size) on ``device`` (never zeros: see METHOD.md)."""
    gen = torch.Generator(device).manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device, generator=gen)


class TrainLoop:
    """One call = one training step as ``train`` runs it: draw a batch and z, step, add the
    losses to ``loss_sum`` on the device (no host sync)."""

    def __init__(self, arch_name: str, batch: int, settings: StepSettings, device: torch.device,
                 n_images: int | None = None) -> None:
        self.arch, self.batch, self.device = get_architecture(arch_name), batch, device
        _, _, self.step = build_step(arch_name, settings, device)
        self.data = ResidentBatches(random_images(n_images or 8 * batch, self.arch.image_size, device), batch,
                                    channels_last=settings.channels_last)
        self.z_gen = torch.Generator(device).manual_seed(1)
        self.loss_sum = torch.zeros(2, device=device)

    def __call__(self) -> None:
        self.loss_sum.add_(self.step(self.data.next(), self.arch.sample_z(self.batch, self.device, self.z_gen)))


def measure_train(arch_name: str, batch: int, settings: StepSettings, device: torch.device, sizes: Sizes,
                  *, metric: str = "train_img_per_s", flops: int | None = None) -> Figure:
    """Training-step throughput of one architecture, batch and step setting."""
    loop = TrainLoop(arch_name, batch, settings, device)
    times = time_calls(loop, device=device, calls=sizes.calls, warmup=sizes.warmup, repeats=sizes.repeats)
    if not bool(torch.isfinite(loop.loss_sum).all()):
        raise RuntimeError(f"{arch_name} batch {batch} ({settings.describe()}): non-finite losses while timing")
    return rate_figure(metric, times, batch, extractor=arch_name, batch=batch, flops=flops,
                       wall_s=sum(times) * sizes.calls, notes=settings.describe())


# ----------------------------------------------------------------------------- the naive path
def make_naive_step(g: Generator, d: Discriminator, opt_g: torch.optim.Optimizer,
                    opt_d: torch.optim.Optimizer) -> Callable[[torch.Tensor, torch.Tensor], tuple[float, float]]:
    """The tutorial step (pytorch/examples' dcgan): float images in [-1, 1], fp32, and the
    losses read back every step (``.item()``, a host sync), as its per-step log line does."""

    def step(real: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
        fake = g(z)
        out_real, out_fake = d(real), d(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
                  + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        out_gen = d(fake)
        loss_g = F.binary_cross_entropy_with_logits(out_gen, torch.ones_like(out_gen))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    return step


def naive_loader(folder: Path, image_size: int, batch: int, workers: int) -> torch.utils.data.DataLoader:
    """``ImageFolder`` + per-sample ``Resize`` (if needed), ``ToTensor``, ``Normalize`` + ``DataLoader``."""
    from torchvision import datasets, transforms

    tf = [transforms.Resize(image_size)] if image_size != _folder_image_size(folder) else []
    dataset = datasets.ImageFolder(str(folder), transforms.Compose(
        [*tf, transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    return torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)


def _folder_image_size(folder: Path) -> int:
    from PIL import Image

    first = next(p for p in sorted(folder.rglob("*")) if p.is_file())
    with Image.open(first) as im:
        return im.size[0]


def endless(loader: torch.utils.data.DataLoader) -> Iterator[torch.Tensor]:
    """The loader's image batches, epoch after epoch."""
    while True:
        for images, _ in loader:
            yield images


def naive_loop(arch_name: str, batch: int, folder: Path, device: torch.device,
               workers: int = 4) -> Callable[[], tuple[float, float]]:
    """One call = one tutorial training step: next loader batch to the device, step, losses read back."""
    arch = get_architecture(arch_name)
    g, d = build_gan(arch_name, 0)
    g, d = g.to(device), d.to(device)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    step = make_naive_step(g, d, opt_g, opt_d)
    batches = endless(naive_loader(folder, arch.image_size, batch, workers))

    def call() -> tuple[float, float]:
        return step(next(batches).to(device), arch.sample_z(batch, device))

    return call


def measure_naive_train(arch_name: str, batch: int, folder: Path, device: torch.device, sizes: Sizes, *,
                        workers: int = 4, flops: int | None = None, source: str = "", data_sha256: str = "") -> Figure:
    """Training throughput of the tutorial loop over an image folder (loader start-up is in the warm-up)."""
    workers = min(workers, os.cpu_count() or 1)
    call = naive_loop(arch_name, batch, folder, device, workers)
    times = time_calls(call, device=device, calls=sizes.naive_calls, warmup=sizes.naive_warmup, repeats=sizes.repeats)
    return rate_figure("naive_train_img_per_s", times, batch, extractor=arch_name, batch=batch, flops=flops,
                       wall_s=sum(times) * sizes.naive_calls, data_sha256=data_sha256,
                       notes=f"ImageFolder over {source or folder.name} + DataLoader ({workers} workers), "
                             f"per-sample transforms, fp32 eager, default Adam, .item() per step")


def prepare_image_folder(source: Path | None, dest: Path, *, synthetic_images: int = 256,
                         synthetic_size: int = 32) -> tuple[Path, str]:
    """A folder ``<class>/<image>`` for ``ImageFolder`` and a label for the table.

    ``source``: an image-folder tree (its ``train`` split is used when there is one) or a
    ``.tar``/``.tar.gz``/``.tar.xz`` of one, extracted under ``dest``; None writes random
    JPEGs under ``dest`` instead.  Done before any timing.
    """
    if source is None:
        return _write_synthetic_folder(dest / "synthetic", synthetic_images, synthetic_size), "synthetic JPEGs"
    source = Path(source)
    if source.is_file():
        with tarfile.open(source) as tar:
            tar.extractall(dest, filter="data")
        root = dest
    else:
        root = source
    for candidate in sorted(root.rglob("train")):
        if candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()):
            return candidate, f"{source.name} (train split)"
    if any(p.is_dir() for p in root.iterdir()):
        return root, source.name
    raise ValueError(f"{source}: no <class>/<image> folder tree found")


def _write_synthetic_folder(root: Path, n: int, size: int, n_classes: int = 10) -> Path:
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=gen).numpy()
    for i in range(n):
        folder = root / f"class{i % n_classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(folder / f"{i:05d}.jpg", quality=75)
    return root


# ----------------------------------------------------------------------------- sampling, extraction
def sampler(arch_name: str, batch: int, settings: StepSettings, device: torch.device) -> Callable[[], torch.Tensor]:
    """One call = ``batch`` samples G(z): eval mode, no grad, bf16 autocast per ``settings``."""
    arch = get_architecture(arch_name)
    g, _ = build_gan(arch_name, 0)
    g = g.to(device).eval()
    if settings.channels_last:
        g = g.to(memory_format=torch.channels_last)
    z_gen = torch.Generator(device).manual_seed(0)

    @torch.no_grad()
    def call() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.bf16):
            return g(arch.sample_z(batch, device, z_gen))

    return call


def measure_sample(arch_name: str, batch: int, settings: StepSettings, device: torch.device, sizes: Sizes,
                   *, flops: int | None = None) -> Figure:
    """Sampling throughput (z drawn per call)."""
    call = sampler(arch_name, batch, settings, device)
    times = time_calls(call, device=device, calls=sizes.calls, warmup=sizes.warmup, repeats=sizes.repeats)
    return rate_figure("sample_img_per_s", times, batch, extractor=arch_name, batch=batch, flops=flops,
                       wall_s=sum(times) * sizes.calls, notes=settings.describe())


def feature_extraction(arch_name: str, batch: int, n_images: int, settings: StepSettings,
                       device: torch.device) -> Callable[[], torch.Tensor]:
    """One call = ``pooled_features`` of ``n_images`` device-resident images, ``batch`` at a time."""
    arch = get_architecture(arch_name)
    _, d = build_gan(arch_name, 0)
    d = d.to(device)
    if settings.channels_last:
        d = d.to(memory_format=torch.channels_last)
    images = random_images(n_images, arch.image_size, device)
    return lambda: pooled_features(d, images, batch_size=batch, bf16=settings.bf16)


def measure_extract(arch_name: str, batch: int, settings: StepSettings, device: torch.device, sizes: Sizes,
                    *, flops: int | None = None) -> Figure:
    """Feature-extraction throughput over ``extract_batches`` batches per call."""
    n = batch * sizes.extract_batches
    call = feature_extraction(arch_name, batch, n, settings, device)
    times = time_calls(call, device=device, calls=1, warmup=1, repeats=sizes.repeats)
    return rate_figure("extract_img_per_s", times, n, extractor=arch_name, batch=batch, flops=flops,
                       wall_s=sum(times), feature_dim=feature_dim(arch_name), notes=settings.describe())


def kmeans_encoder(batch: int, n_images: int, device: torch.device, sizes: Sizes,
                   fit_images: torch.Tensor | None = None
                   ) -> tuple[Callable[[], torch.Tensor], KMeansExtractor, float]:
    """(call, extractor, FLOPs per image): one call = K-means features of ``n_images`` images.

    The extractor is fitted first (untimed) on a few patches of ``fit_images`` (random
    images if None); encoding cost does not depend on how good the centroids are.
    """
    from baselines.kmeans import KMeansExtractor

    fit = fit_images[:n_images].to(device) if fit_images is not None else random_images(n_images, 32, device, 1)
    ext = KMeansExtractor(k=sizes.kmeans_k, n_patches=sizes.kmeans_fit_patches, iters=sizes.kmeans_fit_iters,
                          device=device, batch_size=batch)
    ext.fit(fit)
    images = random_images(n_images, 32, device, seed=2)
    flops = count_flops(lambda: ext.transform(images[:2])) / 2
    return (lambda: ext.transform(images)), ext, flops


def measure_kmeans(batch: int, device: torch.device, sizes: Sizes, images: torch.Tensor | None = None) -> Figure:
    """K-means (Coates & Ng) encoding throughput."""
    n = batch * sizes.extract_batches
    call, ext, flops = kmeans_encoder(batch, n, device, sizes, images)
    times = time_calls(call, device=device, calls=1, warmup=1, repeats=sizes.repeats)
    return rate_figure("extract_img_per_s", times, n, extractor=ext.name, batch=batch, flops=flops,
                       wall_s=sum(times), feature_dim=ext.feature_dim,
                       notes=f"fitted on {sizes.kmeans_fit_patches} patches, {sizes.kmeans_fit_iters} iterations")


# ----------------------------------------------------------------------------- L2-SVM
def svm_features(n: int, device: torch.device, *, dim: int = 28_672, images: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Standardised (n, dim) features and labels for timing the SVM solve.

    With ``images`` (uint8 32x32) and ``labels``: a randomly initialised ``imagenet32`` D's
    pooled features (population batchnorm statistics), as the probe computes them.  Otherwise
    a synthetic 10-class Gaussian mixture of length ``dim``.  The solve's cost depends on the features, so the
    table says which were used.
    """
    from benchmarks.probe import Standardizer
    from dcgan_ref.features import set_population_bn_stats

    gen = torch.Generator(device).manual_seed(seed)
    if images is not None and labels is not None:
        # a random subset in random order, so that every slice holds every class
        pick = torch.randperm(len(images), device=device, generator=gen)[:n]
        _, d = build_gan("imagenet32", seed)
        d = d.to(device)
        set_population_bn_stats(d, images[pick[:5000]])
        x = pooled_features(d, images[pick], batch_size=500, bf16=device.type == "cuda")
        y, what = labels.to(device)[pick], "random-init imagenet32 D features"
    else:
        y = torch.randperm(n, device=device, generator=gen) % 10  # balanced, in random order
        means = torch.randn(10, dim, device=device, generator=gen) * 0.1
        x = torch.randn(n, dim, device=device, generator=gen).add_(means[y])
        what = "synthetic 10-class Gaussian mixture"
    x = Standardizer.fit(x)(x)
    return x, y, what


def measure_svm(device: torch.device, sizes: Sizes, *, images: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, dataset: str = "synthetic", data_sha256: str = "") -> list[Figure]:
    """Torch L2-SVM solve time at ``svm_rows``; torch vs scikit-learn at ``svm_sklearn_rows``."""
    from benchmarks.svm import fit_l2svm

    x, y, what = svm_features(sizes.svm_rows, device, dim=sizes.svm_dim, images=images, labels=labels)
    C, dim = sizes.svm_C, x.shape[1]
    kw = dict(extractor="imagenet32", classifier="L2-SVM", feature_dim=dim, dataset=dataset, data_sha256=data_sha256)

    def solve(rows: int) -> Callable[[], object]:
        return lambda: fit_l2svm(x[:rows], y[:rows], C, n_classes=10)

    sk_rows = min(sizes.svm_sklearn_rows, len(x))
    figures = []
    for rows in sorted({len(x), sk_rows} - {0}, reverse=True):  # the full solve, and the sklearn slice
        times = time_calls(solve(rows), device=device, calls=1, warmup=1, repeats=sizes.repeats)
        flops = count_flops(solve(rows))
        figures.append(Figure("svm_solve_s", times, batch=rows, flops=flops, wall_s=sum(times),
                              notes=f"C={C:g}, {what}, torch Newton-CG, fp32 (TF32 off)", **kw))
    if sk_rows:
        t0 = time.perf_counter()
        fit_l2svm(x[:sk_rows], y[:sk_rows], C, n_classes=10, backend="sklearn")
        sk = time.perf_counter() - t0
        torch_s = next(f for f in figures if f.batch == sk_rows).value
        figures += [
            Figure("sklearn_svm_solve_s", [sk], batch=sk_rows, wall_s=sk,
                   notes=f"C={C:g}, {what}, LinearSVC (liblinear, CPU float64)", **kw),
            Figure("svm_speedup_vs_sklearn_x", [sk / torch_s], batch=sk_rows, notes="sklearn time / torch time", **kw),
        ]
    return figures


# ----------------------------------------------------------------------------- profiler summary
def profile_summary(call: Callable[[], object], device: torch.device, *, steps: int, title: str,
                    row_limit: int = 15) -> str:
    """A ``torch.profiler`` summary of ``steps`` calls: launch counts, the share of the time
    span of the device's kernels that the device is idle between kernels (launch overhead and
    host gaps), and the top kernels/ops by self time."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    call()  # warm (capture happens here for a graphed step)
    if cuda:
        torch.cuda.synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            call()
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.events()
    lines = [f"# {title}", f"device: {describe_device(device)}; torch {torch.__version__}; {steps} steps profiled", ""]
    launches = {api: sum(1 for e in events if e.name.startswith(api))  # names may carry a version suffix
                for api in ("cudaLaunchKernel", "cuLaunchKernel", "cudaGraphLaunch")}
    launches = {k: v for k, v in launches.items() if v}
    if launches:
        lines.append("host launches per step: " + ", ".join(f"{k} {v / steps:g}" for k, v in launches.items()))
    kernels = sorted((e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA)
    if kernels:
        busy, (cur_start, cur_end) = 0.0, kernels[0]
        for start, end in kernels[1:]:
            if start > cur_end:
                busy += cur_end - cur_start
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        busy += cur_end - cur_start
        span = max(e for _, e in kernels) - kernels[0][0]
        lines.append(f"device kernels: {len(kernels) / steps:g} per step; busy {busy / 1e3:.3f} ms of a "
                     f"{span / 1e3:.3f} ms span ({100 * busy / span:.1f}%); idle between kernels "
                     f"(launch overhead and host gaps) {100 * (1 - busy / span):.1f}%")
    else:
        lines.append("no device kernels recorded (CPU run)")
    sort_by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    lines += ["", prof.key_averages().table(sort_by=sort_by, row_limit=row_limit)]
    return "\n".join(lines)


def save_profile(text: str, out_dir: Path, name: str = "throughput_profile.txt") -> Path:
    """Write the profile summary into ``out_dir`` and log it to the active MLflow run, if any."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(text)
    with contextlib.suppress(ImportError):
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.log_text(text, name)
    return path


# ----------------------------------------------------------------------------- rows
def build_rows(figures: Sequence[Figure], *, device: str, peak_tflops: float | None, preset: str,
               provenance: dict[str, str], seed: int = 0, mlflow_run_id: str | None = None,
               date: str | None = None) -> list[dict[str, Any]]:
    """Long-format ``results`` rows (``benchmarks.results.COLUMNS``): one per figure and
    metric, plus ``<stem>_tflops`` and ``<stem>_mfu_pct`` for figures with a FLOP count
    (``_mfu_pct`` only when the device's peak is known).  Every row names the device."""
    date = date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    rows: list[dict[str, Any]] = []
    for f in figures:
        base = dict.fromkeys(COLUMNS) | {
            "source": "ours", "protocol": PROTOCOL, "dataset": f.dataset, "extractor": f.extractor,
            "classifier": f.classifier, "gan_data": "", "preset": preset, "batch": f.batch,
            "feature_dim": f.feature_dim, "wall_s": f.wall_s, "device": device, "torch": provenance.get("torch"),
            "commit": provenance.get("commit"), "dirty": provenance.get("dirty"), "date": date, "seed": seed,
            "data_sha256": f.data_sha256 or None, "mlflow_run_id": mlflow_run_id, "notes": f.notes or None,
            "n_draws": len(f.values),
        }
        series = [(f.metric, f.values)]
        tflops = f.tflops()
        if tflops is not None:
            series.append((f"{f.stem}_tflops", tflops))
            if peak_tflops:
                series.append((f"{f.stem}_mfu_pct", [100 * t / peak_tflops for t in tflops]))
        for metric, values in series:
            std = statistics.stdev(values) if len(values) > 1 else None
            rows.append(base | {"metric": metric, "value": statistics.median(values), "std": std})
    return rows


def speedup(fast: Figure, slow: Figure, metric: str) -> Figure:
    """``fast / slow`` of two rate figures (medians), on ``fast``'s table line."""
    return Figure(metric, [fast.value / slow.value], extractor=fast.extractor, batch=fast.batch,
                  notes=f"{fast.metric} / {slow.metric}")


# ----------------------------------------------------------------------------- the suite
@dataclass
class Suite:
    """Everything one throughput run measures."""

    device: torch.device
    sizes: Sizes
    archs: tuple[str, ...] = ARCHS
    naive_folder: Path | None = None
    naive_source: str = ""
    naive_sha256: str = ""
    naive_workers: int = 4
    svm_images: torch.Tensor | None = None
    svm_labels: torch.Tensor | None = None
    svm_dataset: str = "synthetic"
    svm_sha256: str = ""
    log: Callable[[str], None] = print
    flops: dict[str, ArchFlops] = field(default_factory=dict)

    def run(self) -> list[Figure]:
        fast = fast_settings(self.device)
        eager = replace(fast, cuda_graph=False)
        figures: list[Figure] = []
        for arch in self.archs:
            fl = self.flops.setdefault(arch, dcgan_flops(arch))
            self.log(f"{arch}: {fl.train_step / 1e9:.3f} GFLOP/img per training step")
            for batch in self.sizes.batches:
                ours = measure_train(arch, batch, fast, self.device, self.sizes, flops=fl.train_step)
                figures.append(ours)
                if eager != fast:
                    figures.append(measure_train(arch, batch, eager, self.device, self.sizes,
                                                 metric="eager_train_img_per_s", flops=fl.train_step))
                if batch == self.sizes.batches[0] and self.naive_folder is not None:
                    naive = measure_naive_train(arch, batch, self.naive_folder, self.device, self.sizes,
                                                workers=self.naive_workers, flops=fl.train_step,
                                                source=self.naive_source, data_sha256=self.naive_sha256)
                    figures += [naive, speedup(ours, naive, "train_speedup_vs_naive_x")]
                figures.append(measure_sample(arch, batch, fast, self.device, self.sizes, flops=fl.sample))
                figures.append(measure_extract(arch, batch, fast, self.device, self.sizes, flops=fl.extract))
                self.log(f"  batch {batch}: " + ", ".join(f"{f.metric} {f.value:,.1f}" for f in figures
                                                          if f.extractor == arch and f.batch == batch))
        for batch in self.sizes.kmeans_batches:
            figures.append(measure_kmeans(batch, self.device, self.sizes, self.svm_images))
            self.log(f"kmeans-{self.sizes.kmeans_k} batch {batch}: {figures[-1].value:,.1f} img/s")
        svm = measure_svm(self.device, self.sizes, images=self.svm_images, labels=self.svm_labels,
                          dataset=self.svm_dataset, data_sha256=self.svm_sha256)
        self.log("L2-SVM: " + ", ".join(f"{f.metric}@{f.batch} {f.value:.3g}" for f in svm))
        return figures + svm

    def profile(self, arch: str | None = None, batch: int | None = None) -> str:
        arch = arch or self.archs[0]
        batch = batch or self.sizes.batches[0]
        settings = fast_settings(self.device)
        return profile_summary(TrainLoop(arch, batch, settings, self.device), self.device,
                               steps=self.sizes.profile_steps,
                               title=f"fast training step, {arch}, batch {batch} ({settings.describe()})")


# ----------------------------------------------------------------------------- CLI
def _default_data() -> Path | None:
    root = Path(os.environ.get("DCGAN_REPRO_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root / "cifar10_jpeg.tar.xz"
    return path if path.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", default=str(RESULTS_DIR),
                   help="where throughput.{csv,md} and the profile go (GPU runs only)")
    p.add_argument("--data", help="image folder or .tar(.xz) of one for the naive path and the SVM features "
                   "(default: ../shared/data/cifar10_jpeg.tar.xz on a GPU if present; synthetic otherwise)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--large-batch", type=int, help="the large batch (GPU default 1024)")
    p.add_argument("--sklearn-rows", type=int, help="rows for the LinearSVC comparison (0 skips it; GPU default 10000)")
    p.add_argument("--naive-workers", type=int, default=4, help="DataLoader workers of the naive path")
    return p


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the suite; on CUDA write ``<out-dir>/throughput.{csv,md}`` and the profile.  Returns the rows."""
    import pandas as pd

    from benchmarks.results import render_markdown
    from dcgan_ref.tracking import provenance, tracked_run

    args = build_parser().parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    full = device.type == "cuda"
    sizes = GPU_SIZES if full else CPU_SIZES
    if args.large_batch:
        sizes = replace(sizes, batches=(sizes.batches[0], args.large_batch))
    if args.sklearn_rows is not None:
        sizes = replace(sizes, svm_sklearn_rows=args.sklearn_rows)
    archs = tuple(a.strip() for a in args.archs.split(",") if a.strip())
    for a in archs:
        get_architecture(a)
    name = describe_device(device)
    print(f"throughput on {name}: " + ("full sizes; results go to " + args.out_dir if full
                                       else "CPU, small sizes as a correctness check; nothing is written"))
    set_determinism(False)  # cudnn.benchmark on, as in training

    data = Path(args.data) if args.data else (_default_data() if full else None)
    with tempfile.TemporaryDirectory(prefix="dcgan-throughput-") as tmp, \
            (tracked_run(PROTOCOL, f"throughput-{name}", {"sizes": dataclasses.asdict(sizes),
                                                          "archs": archs, "data": str(data)}, device)
             if full else contextlib.nullcontext()) as run:
        folder, label = prepare_image_folder(data, Path(tmp))  # outside any timed region
        suite = Suite(device, sizes, archs, naive_folder=folder, naive_source=label,
                      naive_workers=args.naive_workers)
        if data is not None:
            from dcgan_ref.data import file_sha256, load_split

            suite.naive_sha256 = file_sha256(data) if data.is_file() else ""
            if full:  # real features for the SVM solve (decoded once, cached)
                split = load_split(data, "train")
                suite.svm_images, suite.svm_labels = split.images.to(device), split.labels
                suite.svm_dataset, suite.svm_sha256 = split.description, split.sha256
        figures = suite.run()
        profile = suite.profile()
        rows = build_rows(figures, device=name, peak_tflops=peak_bf16_tflops(name) if full else None,
                          preset="paper" if full else "smoke", provenance=provenance(device),
                          mlflow_run_id=run.info.run_id if run is not None else None)
        if full:
            import mlflow

            mlflow.log_metrics({f"{r['metric']}.{r['extractor']}.b{r['batch']}": float(r["value"])
                                for r in rows if r["value"] is not None and math.isfinite(r["value"])})
            out = Path(args.out_dir)
            print(f"profile: {save_profile(profile, out)}")
            csv_path, md_path = write_results(PROTOCOL, rows, out)
            print(f"wrote {csv_path} and {md_path}")
        else:
            print(profile)
    print(render_markdown(pd.DataFrame(rows, columns=COLUMNS), PROTOCOL))
    return rows


if __name__ == "__main__":
    from dcgan_ref.errors import run_cli

    run_cli(main)
