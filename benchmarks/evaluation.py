"""The evaluation mechanics every protocol shares: feature standardisation, choosing the
hyperparameter on validation, scoring test once.  Nothing here looks at the test split
until the hyperparameter is fixed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from benchmarks.classifiers import Classifier
from benchmarks.splits import draw_per_class


@dataclass
class Standardizer:
    """Per-feature standardisation with statistics of the (unlabelled) training features.

    Statistics are float64 sums over row chunks, so fitting never copies the (N, D)
    matrix (50,000 x 28,672 float32 is 5.7 GB); :meth:`apply_` standardises in place.
    Chunks of 512 rows keep the float64 temporaries near 120 MB at that width (4,096 rows
    cost 1.9 GB, a third of the matrix again).
    A feature constant on the training set keeps scale 1 (it is 0 there, and a tiny std
    would blow it up on test).
    """
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, eps: float = 1e-6, chunk: int = 512) -> "Standardizer":
        n = len(x)
        mean = sum(x[s:s + chunk].sum(0, dtype=torch.float64) for s in range(0, n, chunk)) / n
        var = sum((x[s:s + chunk].double() - mean).pow_(2).sum(0) for s in range(0, n, chunk)) / n
        std = var.sqrt()
        return cls(mean.float(), torch.where(std > eps, std, torch.ones_like(std)).float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def apply_(self, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """Standardise ``x`` in place (chunked: no second copy) and return it."""
        for s in range(0, len(x), chunk):
            x[s:s + chunk].sub_(self.mean).div_(self.std)
        return x


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * (pred.cpu() == y.cpu()).double().mean().item()


@dataclass
class Evaluation:
    """What one evaluation produced; accuracies in percent."""
    kind: str                       # "full" | "draws"
    chosen: Any                     # the hyperparameter chosen on validation
    val_scores: dict[Any, float]    # mean validation accuracy per grid value
    test_accuracy: float
    test_std: float = 0.0
    n_train: int = 0
    draws: list[dict[str, Any]] = field(default_factory=list)  # per draw: seed, val accuracy, test accuracy
    test_pred: torch.Tensor | None = None  # full: the predicted test labels (to score a subset of test)


def _choose(val_scores: dict[Any, float]) -> Any:
    """Best validation score; ties go to the first (smallest, most regularised) value."""
    return max(sorted(val_scores), key=lambda h: val_scores[h])


Rows = "torch.Tensor | slice"  # row indices, or a slice (a view: no copy of the feature matrix)


def _rows(rows, device: torch.device):
    return rows if isinstance(rows, slice) else rows.to(device)


def full_data_eval(clf: Classifier, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   val_idx: Rows, fit_idx: Rows, grid: Sequence[Any]) -> Evaluation:
    """Choose the hyperparameter on (fit -> val), refit on all training data, score test once."""
    dev = x.device
    vi, fi = _rows(val_idx, dev), _rows(fit_idx, dev)
    predictors = clf.sweep(x[fi], y[fi], grid)
    x_val, y_val = x[vi], y[vi]
    val_scores = {h: accuracy(p(x_val), y_val) for h, p in predictors.items()}
    chosen = _choose(val_scores)
    test_pred = clf.sweep(x, y, [chosen])[chosen](x_test)
    return Evaluation("full", chosen, val_scores, accuracy(test_pred, y_test), n_train=len(x),
                      test_pred=test_pred.cpu())


def label_draws_eval(clf: Classifier, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                     val_idx: Rows, pool_idx: torch.Tensor, per_class: int, n_draws: int, seed: int,
                     grid: Sequence[Any]) -> Evaluation:
    """Label-scarce: ``n_draws`` class-balanced draws of ``per_class`` labels from ``pool_idx``.

    The hyperparameter is the one with the best *mean validation* accuracy over draws
    (the authors' SVHN procedure); test accuracy is then mean ± std over the draws.
    """
    dev = x.device
    vi = _rows(val_idx, dev)
    x_val, y_val = x[vi], y[vi]
    per_draw = []
    for i in range(n_draws):
        draw_seed = seed * 1000 + i
        idx = draw_per_class(y.cpu(), pool_idx, per_class, draw_seed).to(dev)
        predictors = clf.sweep(x[idx], y[idx], grid)
        per_draw.append((draw_seed, predictors, {h: accuracy(p(x_val), y_val) for h, p in predictors.items()}))
    val_scores = {h: sum(d[2][h] for d in per_draw) / n_draws for h in grid}
    chosen = _choose(val_scores)
    tests = [accuracy(predictors[chosen](x_test), y_test) for _, predictors, _ in per_draw]
    mean = sum(tests) / n_draws
    std = math.sqrt(sum((t - mean) ** 2 for t in tests) / (n_draws - 1)) if n_draws > 1 else 0.0
    draws = [{"seed": s, "val_accuracy": v[chosen], "test_accuracy": t} for (s, _, v), t in zip(per_draw, tests)]
    return Evaluation("draws", chosen, val_scores, mean, std, n_train=per_class * len(y.unique()), draws=draws)
