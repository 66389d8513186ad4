"""The report's GAN section: loss curves from the row's MLflow run and the sample grid at the
length chosen on validation, not merely the last one."""
from __future__ import annotations

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
