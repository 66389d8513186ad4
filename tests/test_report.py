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
    row = {"what": "dcgan (svhn32) + L2-SVM", "run": run.info.run_id, "preset": "quick",
           "notes": "GAN length chosen on validation: step 4 of 8"}
    out = tmp_path / "report"
    out.mkdir()
    text = "".join(gan_figures([row], out))
    assert "gan_losses.png" in text and (out / "gan_losses.png").exists()
    assert "samples_0000004.png" in text and "step 4" in text
    from PIL import Image

    assert Image.open(out / "gan_samples.png").getpixel((0, 0)) == (0, 0, 0)  # the step-4 grid, not step 8's
