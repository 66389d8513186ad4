"""A long GAN run's record, committed beside the tables: ``python -m benchmarks.gan_run publish``.

The run folder lives outside the work tree and its MLflow store on one machine; neither
travels with a clone. ``publish`` copies what the report draws into
``results/gan_runs/<name>/``, written by the run's own files, never typed:

- ``curve.csv``: every validation score (images seen, score, train img/s, precision, commit);
- ``losses.csv``: loss_D and loss_G by step, from the run's MLflow store (every ``--log-every``
  steps, each a mean over its window);
- ``samples.png``: G's fixed-z sample grid at the chosen length;
- ``run.json``: what the run is (data, architecture, precision, CPU, budget, state, command).
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from benchmarks.row import published_text
from dcgan_ref.errors import UserError

LOSS_FIELDS = ("step", "images_seen", "loss_D", "loss_G")
RUN_FIELDS = ("name", "state", "gan_data", "arch", "precision", "cpu", "budget_images", "n_gan_images",
              "eval_every_images", "step", "images_seen", "command")


def loss_history(root: Path, tracking_uri: str | None, batch_size: int) -> list[dict[str, Any]]:
    """(step, images, loss_D, loss_G) over the folder's MLflow runs (a resumed run is several;
    where two logged one step, the later wins), in the store the run logged to (by default the
    folder's own ``mlflow.db``)."""
    import mlflow

    db = root / "mlflow.db"
    if tracking_uri is None and not db.exists():
        return []
    client = mlflow.MlflowClient(tracking_uri or f"sqlite:///{db.resolve()}")
    experiment = client.get_experiment_by_name("gan_run")
    if experiment is None:
        return []
    by_step: dict[int, dict[str, float]] = {}
    ours = [r for r in client.search_runs([experiment.experiment_id])
            if r.data.tags.get("mlflow.runName", "").endswith(f"[{root.name}]")]
    runs = sorted(ours, key=lambda r: r.info.start_time)
    for run in runs:
        for name in ("loss_D", "loss_G"):
            for m in client.get_metric_history(run.info.run_id, name):
                by_step.setdefault(m.step, {})[name] = m.value
    return [{"step": s, "images_seen": s * batch_size, "loss_D": round(v["loss_D"], 4), "loss_G": round(v["loss_G"], 4)}
            for s, v in sorted(by_step.items()) if "loss_D" in v and "loss_G" in v]


def publish(files: Any, results_dir: Path) -> Path:
    """Write ``results_dir/gan_runs/<run name>/`` from the run folder ``files`` (a RunFiles)."""
    curve = files.read_curve()
    if not curve:
        raise UserError(f"{files.root}: no validation scores yet (curve.csv); nothing to publish")
    batch_size = curve[0]["images_seen"] // curve[0]["step"]
    status = files.read_status()
    out = results_dir / "gan_runs" / files.root.name
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(curve[0]))
        w.writeheader()
        w.writerows(curve)
    with open(out / "losses.csv", "w", newline="") as f:
        w = csv.DictWriter(f, LOSS_FIELDS)
        w.writeheader()
        w.writerows(loss_history(files.root, status.get("tracking_uri"), batch_size))
    best = max(curve, key=lambda r: r["val_score"])
    grid = files.root / f"samples_{best['step']:07d}.png"
    if grid.exists():
        shutil.copy(grid, out / "samples.png")
    record = {k: published_text(status.get(k)) for k in RUN_FIELDS} | {
        "chosen_images_seen": best["images_seen"], "chosen_val_score": best["val_score"],
        "samples": f"samples_{best['step']:07d}.png" if grid.exists() else None}
    (out / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    return out
