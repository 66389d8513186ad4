"""A long GAN run's record, committed beside the tables: ``python -m benchmarks.gan_run publish``.

The run folder lives outside the work tree and its MLflow store on one machine; neither
travels with a clone. ``publish`` copies what the report draws into
``results/gan_runs/<name>/``, written by the run's own files, never typed:

- ``curve.csv``: every validation score (images seen, score, train img/s, precision, commit);
- ``losses.csv``: loss_D and loss_G by step, from the run's MLflow store (every ``--log-every``
  steps, each a mean over its window);
- ``samples.png``: G's fixed-z sample grid at the chosen length;
- ``run.json``: what the run is (data, architecture, precision, CPU, budget, state, command,
  how each score was made).

A protocol that trains its D in-process (the ``dcgan`` extractor) writes the same record,
from its own MLflow run, when it writes its rows (:func:`write_record`).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from benchmarks.protocol.row import published_text
from dcgan_ref.runtime.errors import UserError

CURVE_FIELDS = ("images_seen", "step", "val_score", "train_img_per_s", "precision", "commit", "date")
LOSS_FIELDS = ("step", "images_seen", "loss_D", "loss_G")
RUN_FIELDS = ("name", "state", "protocol", "gan_data", "arch", "precision", "cpu", "budget_images", "n_gan_images",
              "eval_every_images", "step", "images_seen", "command")
# What a gan_run folder's scores were, for folders whose status predates recording it (``scored_by``).
SCORED_BY_PROTOCOL = {
    "cifar10_probe": "D's features on the CIFAR-10 probe's validation split (5,000 images), one 400-per-class label "
                     "draw, L2-SVM (never the test split)",
    "svhn_1000": "D's features on the 1,000-label protocol's validation split (10,000 images), one 1,000-label draw, "
                 "L2-SVM (never the test split)"}
GAN_RUN_SCORE = SCORED_BY_PROTOCOL["cifar10_probe"]


def metric_losses(client: Any, run_ids: list[str], batch_size: int) -> list[dict[str, Any]]:
    """(step, images, loss_D, loss_G) logged by these MLflow runs, oldest first (a resumed run is
    several; where two logged one step, the later wins)."""
    by_step: dict[int, dict[str, float]] = {}
    for run_id in run_ids:
        for name in ("loss_D", "loss_G"):
            for m in client.get_metric_history(run_id, name):
                by_step.setdefault(m.step, {})[name] = m.value
    return [{"step": s, "images_seen": s * batch_size, "loss_D": round(v["loss_D"], 4), "loss_G": round(v["loss_G"], 4)}
            for s, v in sorted(by_step.items()) if "loss_D" in v and "loss_G" in v]


def loss_history(root: Path, tracking_uri: str | None, batch_size: int) -> list[dict[str, Any]]:
    """The losses of a ``gan_run`` folder's MLflow runs, in the store the run logged to (by
    default the folder's own ``mlflow.db``)."""
    import mlflow

    db = root / "mlflow.db"
    if tracking_uri is None and not db.exists():
        return []
    client = mlflow.MlflowClient(tracking_uri or f"sqlite:///{db.resolve()}")
    experiment = client.get_experiment_by_name("gan_run")
    if experiment is None:
        return []
    ours = [r for r in client.search_runs([experiment.experiment_id])
            if r.data.tags.get("mlflow.runName", "").endswith(f"[{root.name}]")]
    return metric_losses(client, [r.info.run_id for r in sorted(ours, key=lambda r: r.info.start_time)], batch_size)


def write_record(out: Path, curve: list[dict[str, Any]], losses: list[dict[str, Any]], samples: Path | None,
                 run: dict[str, Any]) -> Path:
    """One run's record folder, the one layout every GAN run publishes (``gan_run`` folders and
    the protocols' in-process training alike): curve.csv, losses.csv, samples.png, run.json.
    Written to a side folder and swapped in whole, so a reader never meets half a record."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(curve[0]) if curve else CURVE_FIELDS)  # a fixed-length training: no scores
        w.writeheader()
        w.writerows(curve)
    with open(tmp / "losses.csv", "w", newline="") as f:
        w = csv.DictWriter(f, LOSS_FIELDS)
        w.writeheader()
        w.writerows(losses)
    if samples is not None and samples.exists():
        shutil.copy(samples, tmp / "samples.png")
    (tmp / "run.json").write_text(json.dumps({k: published_text(v) for k, v in run.items()}, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def publish(files: Any, results_dir: Path) -> Path:
    """Write ``results_dir/gan_runs/<run name>/`` from the run folder ``files`` (a RunFiles)."""
    curve = files.read_curve()
    if not curve:
        raise UserError(f"{files.root}: no validation scores yet (curve.csv); nothing to publish")
    batch_size = curve[0]["images_seen"] // curve[0]["step"]
    status = files.read_status()
    best = max(curve, key=lambda r: r["val_score"])
    grid = files.root / f"samples_{best['step']:07d}.png"
    protocol = status.get("protocol") or "cifar10_probe"  # a folder from before --protocol: the probe scored it
    record = {k: status.get(k) for k in RUN_FIELDS} | {"protocol": protocol,
        "chosen_images_seen": best["images_seen"], "chosen_val_score": best["val_score"],
        "samples": grid.name if grid.exists() else None,
        "scored_by": status.get("scored_by") or SCORED_BY_PROTOCOL[protocol]}
    return write_record(results_dir / "gan_runs" / files.root.name, curve,
                        loss_history(files.root, status.get("tracking_uri"), batch_size), grid, record)


def _nearest_samples(folder: Path, step: int) -> Path | None:
    """The sample grid nearest the chosen step (grids are saved each epoch, scores at set lengths)."""
    grids = {int(p.stem.split("_")[-1]): p for p in folder.glob("samples_*.png") if p.stem.split("_")[-1].isdigit()}
    return grids[min(grids, key=lambda s: abs(s - step))] if grids else None


def training_record(training: dict[str, Any], *, name: str, protocol: str, gan_data: str, scored_by: str,
                    provenance: dict[str, Any], mlflow_run_id: str, command: str) -> tuple[str, list, list, Path | None,
                                                                                           dict[str, Any]]:
    """A protocol's in-process GAN training (a DCGANExtractor's ``training``) as
    (name, curve, losses, samples, run) for :func:`write_record`, its losses read from the
    protocol's MLflow run while that run is open."""
    import mlflow

    b, scores = training["batch_size"], training["scores"]
    precision = training["precision"]
    date = dt.date.today().isoformat()
    rate = round(training["img_per_s"], 1)
    curve = [{"images_seen": s * b, "step": s, "val_score": round(v, 4), "train_img_per_s": rate,
              "precision": precision, "commit": provenance["commit"][:10], "date": date} for s, v in scores.items()]
    chosen = training["chosen_step"] if training["chosen_step"] is not None else training["steps"]
    losses = metric_losses(mlflow.MlflowClient(), [mlflow_run_id], b)
    run = {"name": name, "state": "done (the protocol's training, length chosen on validation)", "protocol": protocol,
           "gan_data": gan_data,
           "arch": training["arch"], "precision": precision, "cpu": provenance["device"],
           "budget_images": training["steps"] * b, "n_gan_images": training["n_images"], "eval_every_images": None,
           "step": training["steps"], "images_seen": training["steps"] * b, "command": command,
           "chosen_images_seen": chosen * b, "chosen_val_score": scores.get(chosen), "mlflow_run": mlflow_run_id,
           "scored_by": scored_by}
    samples = _nearest_samples(Path(training["out_dir"]), chosen)
    run["samples"] = samples.name if samples else None
    return name, curve, losses, samples, run
