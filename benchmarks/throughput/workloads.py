"""What the suite times: one callable per workload, and the measurement that times it.

Every callable here is set up the way the reproduction itself runs: the training step is
:class:`dcgan_ref.step.GanSetup`'s, fed by :class:`dcgan_ref.step.ResidentBatches` (as
``dcgan_ref.train.train``); extraction is :func:`dcgan_ref.features.pooled_features`; the
K-means encoder is ``baselines.kmeans.KMeansExtractor``; the SVM is
:func:`benchmarks.classifiers.svm.fit_l2svm`.  ``benchmarks/test_throughput.py`` times the same callables
with pytest-benchmark.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from baselines.kmeans import KMeansExtractor
from benchmarks.classifiers.svm import LinearSVM, fit_l2svm
from benchmarks.protocol.evaluation import Standardizer
from benchmarks.throughput.timing import Figure, Sizes, count_flops, rate_figure
from dcgan_ref.features import pooled_features, set_population_bn_stats
from dcgan_ref.models import build_gan, feature_dim, get_architecture
from dcgan_ref.runtime.limits import time_calls
from dcgan_ref.runtime.tracking import device_name
from dcgan_ref.step import GanSetup, ResidentBatches, StepSettings


def random_images(n: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """uint8 noise images (N, 3, size, size) on ``device``.  Never zeros: zeros hide wrong indexing
    and can run faster than real data (a bf16 GEMM has been seen 13% faster on zeros on an H200)."""
    gen = torch.Generator(device).manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device, generator=gen)


# ----------------------------------------------------------------------------- training
class TrainLoop:
    """One call = one training step as ``train`` runs it: draw a batch and z, step, add the
    losses to ``loss_sum`` on the device (no host sync).

    G, D, the optimisers and the step come from :class:`GanSetup` (graphed on CUDA when
    ``settings.cuda_graph``; the graph is captured on the first call), the batches from
    :class:`ResidentBatches` over ``n_images`` random images on the device.
    """

    def __init__(self, arch_name: str, batch: int, settings: StepSettings, device: torch.device,
                 n_images: int | None = None, *, seed: int = 0) -> None:
        self.arch, self.batch, self.device, self.settings = get_architecture(arch_name), batch, device, settings
        self.setup = GanSetup.create(arch_name, settings, device, seed=seed)
        self.step = self.setup.make_step()
        images = random_images(n_images or 8 * batch, self.arch.image_size, device, seed)
        self.data = ResidentBatches(images, batch, channels_last=settings.channels_last, seed=seed + 1)
        self.z_gen = torch.Generator(device).manual_seed(seed + 2)
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
                       wall_s=sum(times) * sizes.calls,
                       notes=replace(settings, cuda_graph=loop.setup.graphed).describe())  # as it ran


# ----------------------------------------------------------------------------- sampling, extraction
def sampler(arch_name: str, batch: int, settings: StepSettings, device: torch.device) -> Callable[[], torch.Tensor]:
    """One call = ``batch`` samples G(z): eval mode, no grad, bf16 autocast per ``settings`` (never graphed)."""
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
                       wall_s=sum(times) * sizes.calls, notes=replace(settings, cuda_graph=False).describe())


def feature_extraction(arch_name: str, batch: int, n_images: int, settings: StepSettings,
                       device: torch.device) -> Callable[[], torch.Tensor]:
    """One call = ``pooled_features`` of ``n_images`` device-resident images, ``batch`` at a time.

    Extraction is fp32 (as the probes run it); of ``settings`` only ``channels_last`` applies.
    """
    arch = get_architecture(arch_name)
    _, d = build_gan(arch_name, 0)
    d = d.to(device)
    if settings.channels_last:
        d = d.to(memory_format=torch.channels_last)
    images = random_images(n_images, arch.image_size, device)
    return lambda: pooled_features(d, images, batch_size=batch)


def measure_extract(arch_name: str, batch: int, settings: StepSettings, device: torch.device, sizes: Sizes,
                    *, flops: int | None = None) -> Figure:
    """Feature-extraction throughput over ``extract_batches`` batches per call."""
    n = batch * sizes.extract_batches
    call = feature_extraction(arch_name, batch, n, settings, device)
    times = time_calls(call, device=device, calls=1, warmup=1, repeats=sizes.repeats)
    return rate_figure("extract_img_per_s", times, n, extractor=arch_name, batch=batch, flops=flops,
                       wall_s=sum(times), feature_dim=feature_dim(arch_name),
                       notes="fp32" + (", channels_last" if settings.channels_last else ""))


# ----------------------------------------------------------------------------- K-means
def kmeans_encoder(batch: int, n_images: int, device: torch.device, sizes: Sizes,
                   fit_images: torch.Tensor | None = None
                   ) -> tuple[Callable[[], torch.Tensor], KMeansExtractor, float]:
    """(call, extractor, FLOPs per image): one call = K-means features of ``n_images`` images.

    The extractor is fitted first (untimed) on a few patches of ``fit_images`` (random
    images if None); encoding cost does not depend on how good the centroids are.
    """
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
    return rate_figure("extract_img_per_s", times, n, extractor=ext.label, batch=batch, flops=flops,
                       wall_s=sum(times), feature_dim=ext.feature_dim,
                       notes=f"fitted on {sizes.kmeans_fit_patches} patches, {sizes.kmeans_fit_iters} iterations")


# ----------------------------------------------------------------------------- L2-SVM
def svm_features(n: int, device: torch.device, *, dim: int = 28_672, images: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Standardised (n, dim) features and labels for timing the SVM solve.

    With ``images`` (uint8 32x32) and ``labels``: a randomly initialised ``imagenet32`` D's
    pooled features (population batchnorm statistics), as the probe computes them.  Otherwise
    a synthetic 10-class Gaussian mixture of length ``dim``.  The solve's cost depends on the
    features, so the table says which were used.
    """
    gen = torch.Generator(device).manual_seed(seed)
    if images is not None and labels is not None:
        # a random subset in random order, so that every slice holds every class
        pick = torch.randperm(len(images), device=device, generator=gen)[:n]
        _, d = build_gan("imagenet32", seed)
        d = d.to(device)
        set_population_bn_stats(d, images[pick[:5000]])
        x = pooled_features(d, images[pick], batch_size=500)
        y, what = labels.to(device)[pick], "random-init imagenet32 D features"
    else:
        y = torch.randperm(n, device=device, generator=gen) % 10  # balanced, in random order
        means = torch.randn(10, dim, device=device, generator=gen) * 0.1
        x = torch.randn(n, dim, device=device, generator=gen).add_(means[y])
        what = "synthetic 10-class Gaussian mixture"
    x = Standardizer.fit(x)(x)
    return x, y, what


def svm_solver(x: torch.Tensor, y: torch.Tensor, rows: int, C: float, backend: str = "torch"
               ) -> Callable[[], LinearSVM]:
    """One call = one L2-SVM fit on the first ``rows`` rows (``backend``: "torch" or "sklearn")."""
    return lambda: fit_l2svm(x[:rows], y[:rows], C, n_classes=10, backend=backend)


def measure_svm(device: torch.device, sizes: Sizes, *, images: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, dataset: str = "synthetic", data_sha256: str = "") -> list[Figure]:
    """Torch L2-SVM solve time at ``svm_rows``; torch vs scikit-learn at ``svm_sklearn_rows``."""
    x, y, what = svm_features(sizes.svm_rows, device, dim=sizes.svm_dim, images=images, labels=labels)
    C, dim = sizes.svm_C, x.shape[1]
    kw = dict(extractor="imagenet32", classifier="L2-SVM", feature_dim=dim, dataset=dataset, data_sha256=data_sha256)
    sk_rows = min(sizes.svm_sklearn_rows, len(x))
    figures = []
    for rows in sorted({len(x), sk_rows} - {0}, reverse=True):  # the full solve, and the sklearn slice
        solve = svm_solver(x, y, rows, C)
        times = time_calls(solve, device=device, calls=1, warmup=1, repeats=sizes.repeats)
        figures.append(Figure("svm_solve_s", times, batch=rows, flops=count_flops(solve), wall_s=sum(times),
                              notes=f"C={C:g}, {what}, torch Newton-CG, fp32 (TF32 off)", **kw))
    if sk_rows:
        sk = time_calls(svm_solver(x, y, sk_rows, C, backend="sklearn"), device=torch.device("cpu"),
                        calls=1, warmup=0, repeats=1)[0]
        torch_s = next(f for f in figures if f.batch == sk_rows).value
        figures += [
            Figure("sklearn_svm_solve_s", [sk], batch=sk_rows, wall_s=sk,
                   notes=f"C={C:g}, {what}, LinearSVC (liblinear, CPU float64)", **kw),
            Figure("svm_speedup_vs_sklearn_x", [sk / torch_s], batch=sk_rows, notes="sklearn time / torch time", **kw),
        ]
    return figures


# ----------------------------------------------------------------------------- profiler summary
@contextlib.contextmanager
def _quiet_kineto_without_cuda() -> Iterator[None]:
    """Silence Kineto's own log while profiling on a host with no usable CUDA device.

    A CUDA build of torch profiles through Kineto even for CPU-only activities, and Kineto's
    trace post-processing asks the CUDA runtime for the devices' properties; with no
    NVIDIA driver that fails (``cudaErrorInsufficientDriver``, code 35) and Kineto logs
    ``ERROR: ... DeviceProperties.cpp ... gpuGetDeviceCount failed`` (plus ``USDT``
    profiler start/stop lines): noise about a GPU the run does not use.  Kineto reads
    ``KINETO_LOG_LEVEL`` when it initialises; a value the user set is left alone.
    """
    if torch.cuda.is_available() or "KINETO_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["KINETO_LOG_LEVEL"] = "6"  # above every Kineto log level (ERROR, STAGE, USDT)
    try:
        yield
    finally:
        os.environ.pop("KINETO_LOG_LEVEL", None)


def profile_summary(call: Callable[[], object], device: torch.device, *, steps: int, title: str,
                    row_limit: int = 15) -> str:
    """A ``torch.profiler`` summary of ``steps`` calls: launch counts, the share of the time
    span of the device's kernels that the device is idle between kernels (launch overhead and
    host gaps), and the top kernels/ops by self time."""
    cuda = device.type == "cuda"
    call()  # warm (capture happens here for a graphed step)
    if cuda:
        torch.cuda.synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with _quiet_kineto_without_cuda(), profile(activities=activities) as prof:
        for _ in range(steps):
            call()
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.events()
    lines = [f"# {title}", f"device: {device_name(device)}; torch {torch.__version__}; {steps} steps profiled", ""]
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
