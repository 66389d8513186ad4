"""The report's GAN section: loss curves from the row's MLflow run and the sample grid at the
length chosen on validation, not merely the last one."""
from __future__ import annotations

import shutil

import mlflow
import torch
from torchvision.utils import save_image

from benchmarks import report
from benchmarks.report import gan_figures


def test_samples_are_those_of_the_chosen_length(tmp_path):
    mlflow.set_experiment("report")  # each test has its own store: name the experiment, never reuse an id
    with mlflow.start_run() as run:
        for step in (1, 2, 3):
            mlflow.log_metrics({"loss_D": 1.0 / step, "loss_G": float(step)}, step=step)
        for step, colour in ((4, 0.0), (8, 1.0)):
            path = tmp_path / f"samples_{step:07d}.png"
            save_image(torch.full((3, 8, 8), colour), path)
            mlflow.log_artifact(str(path), "samples")
    row = {"what": "dcgan (svhn32) + L2-SVM", "run": run.info.run_id, "preset": "paper", "gan_data": "CIFAR-10 train",
           "notes": "GAN (svhn32) trained 8 epochs on 64 images; length chosen on validation: epoch 4 (step 4 of 8)"}
    # Neither a --discriminator row (it learned nothing here) nor a later quick row is the one shown.
    pretrained = {"what": "dcgan (runs/x/gan/chosen.pt) + L2-SVM", "run": "not-a-run", "preset": "paper",
                  "gan_data": "-", "notes": ""}
    quick = dict(row, run="not-a-run", preset="quick")
    out = tmp_path / "report"
    out.mkdir()
    text = "".join(gan_figures([pretrained, row, quick], out))
    assert "gan_losses.png" in text and (out / "gan_losses.png").exists()
    assert "samples_0000004.png" in text and "step 4" in text
    from PIL import Image

    assert Image.open(out / "gan_samples.png").getpixel((0, 0)) == (0, 0, 0)  # the step-4 grid, not step 8's


def test_figures_of_a_run_the_store_lost_are_kept_only_for_that_run(tmp_path, monkeypatch, _empty_mlflow_db):
    mlflow.set_experiment("report-lost")
    with mlflow.start_run() as run:
        mlflow.log_metrics({"loss_D": 1.0, "loss_G": 2.0}, step=1)
    row = {"what": "dcgan (svhn32) + L2-SVM", "run": run.info.run_id, "preset": "paper", "gan_data": "CIFAR-10 train",
           "notes": ""}
    out = tmp_path / "report"
    out.mkdir()
    drawn = "".join(gan_figures([row], out))
    assert "gan_losses.png" in drawn and (out / "gan_figures.json").exists()

    # Another machine's store: the run is gone, the figures drawn from it stay, said to be from that run.
    other = tmp_path / "other.db"
    shutil.copy(_empty_mlflow_db, other)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    kept = "".join(gan_figures([row], out))
    assert "gan_losses.png" in kept and f"Drawn from MLflow run {run.info.run_id} by an earlier render" in kept
    # A different run's row never inherits them.
    lost = "".join(gan_figures([dict(row, run="0" * 32)], out))
    assert "gan_losses.png" not in lost and "not in this MLflow store" in lost


def test_the_gap_section_chains_measured_rows_and_names_what_is_missing(tmp_path):
    import dataclasses

    from benchmarks.gap import gap_section
    from benchmarks.results import write_results
    from benchmarks.row import ResultRow

    def row(extractor, gan_data, value, metric="test_accuracy"):
        return ResultRow(protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor=extractor,
                         classifier="L2-SVM", gan_data=gan_data, preset="paper", metric=metric, value=value,
                         std=None if metric == "test_accuracy" else 0.5, commit="abc1234", date="2026-12-07")

    assert "No imagenet32 D trained on ImageNet images" in "".join(gap_section(tmp_path))
    tiny = "dcgan (imagenet32, run tiny-imagenet32, 499,968 images)"
    rows = [row(tiny, "Tiny-ImageNet-200 (32x32 JPEG) train", 75.0), row(tiny, "Tiny-ImageNet-200 (32x32 JPEG) train",
                                                                         64.0, "test_accuracy_400pc"),
            row("dcgan (svhn32)", "CIFAR-10 (JPEG copy) train", 69.9), row("random-init D (imagenet32)", "-", 65.41),
            row("kmeans-1600", "CIFAR-10 (JPEG copy) train", 74.0)]
    write_results("cifar10_probe", rows, tmp_path)
    text = "".join(gap_section(tmp_path))
    assert "| ours: " + tiny in text and "75.00" in text and "64.00 ± 0.50" in text
    assert "not measured yet: row (b)" in text and "K-means 1,600: all labels +1.00" in text
    assert "random-init imagenet32 D (what GAN training adds): all labels +9.59" in text
    unexplained = next(line for line in text.splitlines() if "unexplained" in line)
    assert "+0.00" not in unexplained and "no JPEG pair of this architecture yet" in unexplained
    in_domain = dataclasses.replace(rows[0], extractor="dcgan (imagenet32, run cifar10-imagenet32, 1,249,920 images)",
                                    gan_data="CIFAR-10 (JPEG copy) train", value=72.5)
    write_results("cifar10_probe", [in_domain], tmp_path)
    text = "".join(gap_section(tmp_path))
    step = next(line for line in text.splitlines() if "training data Tiny-ImageNet-200 -> CIFAR-10" in line)
    assert "-2.50" in step and "row (b) minus row (a)" in step
    arch = next(line for line in text.splitlines() if "architecture imagenet32 -> svhn32" in line)
    assert "-2.60" in arch


def test_the_cost_table_comes_from_the_rows(tmp_path):
    from benchmarks.results import write_results
    from benchmarks.row import ResultRow

    row = ResultRow(protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor="pixels", classifier="L2-SVM",
                    preset="paper", metric="test_accuracy_400pc", value=37.4, wall_s=720.0, n_train=4000,
                    n_test=10000, peak_rss_gb=3.46, device="cpu: Some CPU (2 cores, AVX2)", date="2026-12-07")
    write_results("cifar10_probe", [row], tmp_path)
    text = report.write_report(tmp_path).read_text().split("## What each row cost")[1]
    line = next(line for line in text.splitlines() if "pixels" in line)
    assert all(cell in line for cell in ("12.0 min", "4,000 / 10,000", "3.5", "Some CPU (2 cores, AVX2)")), line
