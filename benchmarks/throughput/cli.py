"""``python -m benchmarks.throughput``: run the suite, print the table; on a GPU write the results."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import tempfile
from pathlib import Path

import pandas as pd
import torch

import benchmarks.throughput as package
from benchmarks.protocol.results import RESULTS_DIR, read_results, render_markdown, write_results
from benchmarks.protocol.row import COLUMNS, ResultRow
from benchmarks.throughput.naive import prepare_image_folder
from benchmarks.throughput.suite import PROTOCOL, Suite, build_rows
from benchmarks.throughput.timing import ARCHS, CPU_SIZES, GPU_SIZES, peak_bf16_tflops
from benchmarks.throughput.workloads import save_profile
from dcgan_ref.datasets.loading import file_sha256, load_split
from dcgan_ref.models import get_architecture
from dcgan_ref.runtime.tracking import device_name, provenance, tracked_run
from dcgan_ref.train import set_determinism

REPO = Path(__file__).resolve().parents[2]


def _default_data() -> Path | None:
    root = Path(os.environ.get("DCGAN_REPRO_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root / "cifar10_jpeg.tar.xz"
    return path if path.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput",
                                description=(package.__doc__ or "").split("\n\n")[0])
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


def main(argv: list[str] | None = None) -> list[ResultRow]:
    """Run the suite; on CUDA write ``<out-dir>/throughput.{csv,md}`` and the profile.  Returns the rows."""
    args = build_parser().parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    full = device.type == "cuda"
    sizes = GPU_SIZES if full else CPU_SIZES
    if args.large_batch:
        sizes = dataclasses.replace(sizes, batches=(sizes.batches[0], args.large_batch))
    if args.sklearn_rows is not None:
        sizes = dataclasses.replace(sizes, svm_sklearn_rows=args.sklearn_rows)
    archs = tuple(a.strip() for a in args.archs.split(",") if a.strip())
    for a in archs:
        get_architecture(a)
    name = device_name(device)
    print(f"throughput on {name}: " + ("full sizes; results go to " + args.out_dir if full
                                       else "CPU, small sizes as a correctness check; nothing is written"))
    set_determinism(False)  # cudnn.benchmark on, as in training

    data = Path(args.data) if args.data else (_default_data() if full else None)
    if full:
        read_results(Path(args.out_dir) / f"{PROTOCOL}.csv")  # a table it cannot merge into fails now
    with tempfile.TemporaryDirectory(prefix="dcgan-throughput-") as tmp, \
            (tracked_run(PROTOCOL, f"throughput-{name}", {"sizes": dataclasses.asdict(sizes),
                                                          "archs": archs, "data": str(data)}, device)
             if full else contextlib.nullcontext()) as run:
        folder, label = prepare_image_folder(data, Path(tmp))  # outside any timed region
        suite = Suite(device, sizes, archs, naive_folder=folder, naive_source=label,
                      naive_workers=args.naive_workers)
        if data is not None:
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

            mlflow.log_metrics({f"{r.metric}.{r.extractor}.b{r.batch}": float(r.value)
                                for r in rows if math.isfinite(r.value)})
            out = Path(args.out_dir)
            print(f"profile: {save_profile(profile, out)}")
            csv_path, md_path = write_results(PROTOCOL, rows, out)
            print(f"wrote {csv_path} and {md_path}")
        else:
            print(profile)
    print(render_markdown(pd.DataFrame([r.as_dict() for r in rows], columns=COLUMNS), PROTOCOL))
    return rows
