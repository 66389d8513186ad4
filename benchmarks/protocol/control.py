"""The SVHN table's control as an evaluator of its own: a supervised CNN with D's
architecture, trained on the protocol's labels only, tuned by random search on validation
(docs/PAPER.md, Table 2), the test split scored once with the winner."""
from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

from baselines.supervised import evaluate_error, random_search
from benchmarks.protocol.context import RunContext
from benchmarks.protocol.data import ProtocolData
from benchmarks.protocol.row import ResultRow
from benchmarks.protocol.splits import draw_per_class
from dcgan_ref.runtime.tracking import provenance, tracked_run

CLASSIFIER = "CNN"  # the table's classifier column for this row


def label(arch: str) -> str:
    """The table label of the control for an architecture."""
    return f"supervised CNN ({arch})"


def evaluate_supervised(run: RunContext, data: ProtocolData, config: dict[str, Any], log=print) -> list[ResultRow]:
    import mlflow

    t0, device = time.perf_counter(), run.device
    idx = draw_per_class(data.train.labels, data.rest_idx, run.per_class, run.seed * 1000)  # the first draw's labels
    x, y = data.train.images, data.train.labels
    name = label(run.arch)
    with tracked_run(run.spec.name, f"{name} [{run.preset.name}]", config | {"extractor": name, "trials": run.trials},
                     device) as mlflow_run:
        result = random_search(run.arch, x[idx].to(device), y[idx].to(device), x[data.val_idx].to(device),
                               y[data.val_idx].to(device), trials=run.trials, seed=run.seed, device=device,
                               n_classes=len(data.train.classes), max_epochs=run.preset.supervised_max_epochs)
        test_error = evaluate_error(result.model, data.test.images.to(device), data.test.labels.to(device))
        test_metric = run.spec.draws_metric_for(run.per_class, len(data.train.classes))  # test_error_1000 at 100/class
        val_metric = test_metric.replace("test_", "val_", 1)
        mlflow.log_metrics({val_metric: result.val_error, test_metric: test_error})
        mlflow.log_dict({"trials": result.trials, "best": dataclasses.asdict(result.best)}, "random_search.json")
        log(f"[{name}] {run.trials} trials: val error {result.val_error:.2f}%, test error {test_error:.2f}%")
        prov, wall = provenance(device), time.perf_counter() - t0
        common = dict(protocol=run.spec.name, dataset=data.train.description, extractor=name, classifier=CLASSIFIER,
                      gan_data="-", preset=run.preset.name, n_draws=1, wall_s=round(wall, 1), device=prov["device"],
                      torch=prov["torch"], commit=prov["commit"], dirty=prov["dirty"], date=dt.date.today().isoformat(),
                      seed=run.seed, data_sha256=data.train.sha256, mlflow_run_id=mlflow_run.info.run_id,
                      notes=f"{run.trials} random-search trials on validation")
        return [ResultRow(**common, metric=val_metric, value=round(result.val_error, 3)),
                ResultRow(**common, metric=test_metric, value=round(test_error, 3))]
