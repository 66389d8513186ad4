"""The report's GAN section: loss curves from the row's MLflow run and the sample grid at the
length chosen on validation, not merely the last one."""
from __future__ import annotations

import shutil

import mlflow
import torch
from torchvision.utils import save_image

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
