"""Mode collapse over training (Section 7): the collapse check per epoch beside the losses.

The paper's conclusion names collapse as the instability left ("models sometimes collapse a
subset of filters to a single oscillating mode").  ``dcgan_ref.collapse`` measures it while
training; this draws it per run: sample diversity and near-identical pairs per epoch with
their thresholds, next to D's and G's losses.

Unlike the other figures, it is made from training histories, not a G/D pair:
``make(runs, out_dir)`` takes ``{label: records}``, each record one step's numbers (a dict
with ``step`` and any of ``epoch``, ``diversity``, ``near_identical``, ``flag``, ``loss_D``,
``loss_G``): ``TrainResult.collapse`` as it is, or :func:`from_mlflow` (every logged loss and
every check of a ``dcgan_ref.train`` run).

    python -m dcgan_ref.figures --only collapse --collapse-run normal=<mlflow run id> --collapse-run lr-0.1=<id>
"""
from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from dcgan_ref import collapse
from dcgan_ref.figures.inputs import save_figure, write_json

_METRICS = {"loss_D": "loss_D", "loss_G": "loss_G", "collapse_diversity": "diversity",
            "collapse_near_identical": "near_identical", "collapse_flag": "flag"}


def from_mlflow(run_id: str, tracking_uri: str | None = None) -> list[dict]:
    """A run's records by step: its logged losses and collapse checks (``epoch`` too when the
    run's params hold ``n_images`` and ``batch_size``, as ``dcgan_ref.train``'s do)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    params = client.get_run(run_id).data.params
    by_step: dict[int, dict] = {}
    for metric, key in _METRICS.items():
        for m in client.get_metric_history(run_id, metric):
            by_step.setdefault(m.step, {"step": m.step})[key] = bool(m.value) if key == "flag" else m.value
    per_epoch = int(params["n_images"]) // int(params["batch_size"]) if {"n_images", "batch_size"} <= set(params) else 0
    records = [by_step[s] for s in sorted(by_step)]
    if per_epoch:  # as train.py counts epochs: n // batch steps per pass
        for r in records:
            r["epoch"] = r["step"] / per_epoch
    return records


def describe(run_id: str, tracking_uri: str | None = None) -> str:
    """Where a run's records came from, in words a reader can rerun: its command, commit and device
    (tags every ``tracked_run`` sets), never the store's path on the machine that trained it."""
    import mlflow

    tags = mlflow.MlflowClient(tracking_uri).get_run(run_id).data.tags
    return (f"MLflow run {run_id[:8]}: `{tags.get('command', 'command not recorded')}` at commit "
            f"{tags.get('commit', '?')[:7]} on {tags.get('device', '?')}")


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def summarise(records: list[dict]) -> dict:
    """The figure's numbers for one run: its records (NaN as null), the checks, where it flagged."""
    clean = [{k: _finite(v) for k, v in r.items()} for r in records]
    checks = [r for r in clean if "diversity" in r]
    flagged = [r for r in checks if r.get("flag")]
    return {"records": clean, "checks": len(checks), "flagged": bool(flagged),
            "flagged_at_steps": [r["step"] for r in flagged],
            "flagged_at_epochs": [r["epoch"] for r in flagged if "epoch" in r],
            "min_diversity": min((r["diversity"] for r in checks), default=None),
            "max_near_identical": max((r["near_identical"] for r in checks), default=None)}


def draw(runs: dict[str, list[dict]], path: Path) -> Path:
    fig = Figure(figsize=(10, 2.9 * len(runs)))
    axes = fig.subplots(len(runs), 2, squeeze=False)
    for (label, records), (left, right) in zip(runs.items(), axes):
        x_key = "epoch" if all("epoch" in r for r in records) else "step"
        checks = [r for r in records if "diversity" in r]
        xs = [r[x_key] for r in checks]
        left.plot(xs, [r["diversity"] for r in checks], "o-", color="C0", label="diversity")
        left.plot(xs, [r["near_identical"] for r in checks], "s-", color="C1", label="near-identical pairs")
        left.axhline(collapse.MIN_DIVERSITY, color="C0", ls="--", lw=1,
                     label=f"flag: diversity < {collapse.MIN_DIVERSITY}")
        left.axhline(collapse.MAX_NEAR_IDENTICAL, color="C1", ls=":", lw=1,
                     label=f"flag: near-identical > {collapse.MAX_NEAR_IDENTICAL:.0%}")
        flagged = [r for r in checks if r.get("flag")]
        if flagged:
            left.plot([r[x_key] for r in flagged], [r["diversity"] for r in flagged], "x", color="red", ms=11,
                      mew=2, label="flagged")
        top = max([1.2] + [r["diversity"] * 1.05 for r in checks])
        left.set_ylim(0, top)
        left.set_xlabel(x_key, fontsize=8)
        where = ", ".join(f"{r[x_key]:g}" for r in flagged)
        left.set_title(f"{label}: " + (f"flagged at {x_key} {where}" if flagged else "never flagged"), fontsize=9)
        left.legend(fontsize=6.5, loc="best")
        losses = [r for r in records if r.get("loss_D") is not None and math.isfinite(r["loss_D"])]
        for key, colour in (("loss_D", "C2"), ("loss_G", "C3")):
            right.plot([r[x_key] for r in losses], [r[key] for r in losses], color=colour, lw=1, label=key)
        right.set_xlabel(x_key, fontsize=8)
        right.set_title(f"{label}: losses", fontsize=9)
        right.legend(fontsize=7)
        for ax in (left, right):  # the same x range: from the start, where the losses begin
            ax.set_xlim(0, max(r[x_key] for r in records) * 1.03)
    fig.suptitle(f"Mode-collapse check on {collapse.N_SAMPLES} fixed z: diversity = median sample-pair distance / "
                 f"median real-pair distance; near-identical = share of sample pairs < {collapse.NEAR:.0%} of it",
                 fontsize=8)
    return save_figure(fig, path)


def make(runs: dict[str, list[dict]], out_dir: Path, sources: dict[str, str] | None = None) -> dict:
    """``out_dir/collapse.png`` and ``collapse.json`` for ``{label: records}``; returns the numbers.
    ``sources``: where each run's records came from (e.g. its MLflow run), kept in the JSON."""
    if not runs:
        raise ValueError("the collapse figure needs at least one run")
    out_dir = Path(out_dir)
    thresholds = {"min_diversity": collapse.MIN_DIVERSITY, "max_near_identical": collapse.MAX_NEAR_IDENTICAL,
                  "near": collapse.NEAR, "samples": collapse.N_SAMPLES}
    numbers = {"thresholds": thresholds,
               "runs": {label: summarise(records) | {"source": (sources or {}).get(label)}
                        for label, records in runs.items()}}
    draw(runs, out_dir / "collapse.png")
    write_json(numbers, out_dir / "collapse.json")
    return numbers
