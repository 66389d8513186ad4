"""The whole throughput run (:class:`Suite`) and its results rows (:func:`build_rows`)."""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from benchmarks.protocol.row import ResultRow
from benchmarks.throughput.naive import measure_naive_train
from benchmarks.throughput.timing import ARCHS, ArchFlops, Figure, Sizes, dcgan_flops, speedup
from benchmarks.throughput.workloads import (
    TrainLoop,
    measure_extract,
    measure_kmeans,
    measure_sample,
    measure_svm,
    measure_train,
    profile_summary,
)
from dcgan_ref.step import StepSettings

PROTOCOL = "throughput"


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
        fast = StepSettings.fastest(self.device)
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
        """The profiler summary of the fast training step (first architecture and batch by default)."""
        arch = arch or self.archs[0]
        batch = batch or self.sizes.batches[0]
        settings = StepSettings.fastest(self.device)
        return profile_summary(TrainLoop(arch, batch, settings, self.device), self.device,
                               steps=self.sizes.profile_steps,
                               title=f"fast training step, {arch}, batch {batch} ({settings.describe()})")


def build_rows(figures: Sequence[Figure], *, device: str, peak_tflops: float | None, preset: str,
               provenance: dict[str, str], seed: int = 0, mlflow_run_id: str | None = None,
               date: str | None = None) -> list[ResultRow]:
    """Long-format results rows: one per figure and metric, plus ``<stem>_tflops`` and
    ``<stem>_mfu_pct`` for figures with a FLOP count (``_mfu_pct`` only when the device's
    peak is known).  Every row names the device."""
    date = date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    rows: list[ResultRow] = []
    for f in figures:
        series = [(f.metric, f.values)]
        tflops = f.tflops()
        if tflops is not None:
            series.append((f"{f.stem}_tflops", tflops))
            if peak_tflops:
                series.append((f"{f.stem}_mfu_pct", [100 * t / peak_tflops for t in tflops]))
        for metric, values in series:
            rows.append(ResultRow(
                source="ours", protocol=PROTOCOL, dataset=f.dataset, extractor=f.extractor,
                classifier=f.classifier, preset=preset, metric=metric, value=statistics.median(values),
                std=statistics.stdev(values) if len(values) > 1 else None, n_draws=len(values),
                feature_dim=f.feature_dim, batch=f.batch, wall_s=f.wall_s, device=device,
                torch=provenance.get("torch", ""), commit=provenance.get("commit", ""),
                dirty=provenance.get("dirty", ""), date=date, seed=seed, data_sha256=f.data_sha256,
                mlflow_run_id=mlflow_run_id or "", notes=f.notes))
    return rows
