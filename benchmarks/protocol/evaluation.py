"""The evaluation mechanics every protocol shares: feature standardisation, choosing the
hyperparameter on validation, scoring test once.  Nothing here looks at the test split
until the hyperparameter is fixed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from benchmarks.classifiers.registry import Classifier, thin_factor
from benchmarks.protocol.splits import draw_per_class


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
    def fit(cls, x: torch.Tensor, eps: float = 1e-6, chunk: int = 512, var_eps: float = 0.0) -> "Standardizer":
        """``var_eps > 0`` divides by ``sqrt(var + var_eps)`` instead (Coates' kmeans_demo.m:
        ``sqrt(var + 0.01)``), which shrinks near-constant features instead of blowing them up."""
        n = len(x)
        mean = sum(x[s:s + chunk].sum(0, dtype=torch.float64) for s in range(0, n, chunk)) / n
        var = sum((x[s:s + chunk].double() - mean).pow_(2).sum(0) for s in range(0, n, chunk)) / n
        std = (var + var_eps).sqrt()
        return cls(mean.float(), torch.where(std > eps, std, torch.ones_like(std)).float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def apply_(self, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """Standardise ``x`` in place (chunked: no second copy) and return it."""
        for s in range(0, len(x), chunk):
            x[s:s + chunk].sub_(self.mean).div_(self.std)
        return x


class RowNormalizer:
    """Each row scaled to L2 norm sqrt(d) (a zero row stays zero); no statistics to fit.

    Norm sqrt(d), not 1, keeps a feature's typical size near 1 as after standardisation,
    so the protocol's one C grid covers this scaling too: an SVM on ``s x`` at C is the one
    on ``x`` at ``C s^2``.  With unit-norm rows the best C lay past the grid's top (paper
    scale, 7,168 features: C = 0.1 at the edge, i.e. C = 1.4e-5 here).
    """

    def apply_(self, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        target = math.sqrt(x.shape[1])
        for s in range(0, len(x), chunk):
            rows = x[s:s + chunk]
            rows.mul_(target / torch.linalg.vector_norm(rows, dim=1, keepdim=True).clamp_min_(1e-12))
        return x


class Identity:
    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        return x


# Feature scaling fitted on the training features, applied in place to train and test.
# The protocols use "standardise"; the sensitivity table measures the others.
SCALINGS = {
    "standardise": lambda train: Standardizer.fit(train),
    "coates": lambda train: Standardizer.fit(train, var_eps=0.01),
    "l2": lambda train: RowNormalizer(),
    "none": lambda train: Identity(),
}


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
    # With ``test_every=True`` only: test accuracy at every grid value, to measure how much
    # choosing on test would flatter the result.  Never used to choose anything.
    test_by_hyper: dict[Any, float] = field(default_factory=dict)


def _choose(val_scores: dict[Any, float]) -> Any:
    """Best validation score; ties go to the first (smallest, most regularised) value."""
    return max(sorted(val_scores), key=lambda h: val_scores[h])


Rows = "torch.Tensor | slice"  # row indices, or a slice (a view: no copy of the feature matrix)


def _rows(rows, device: torch.device):
    return rows if isinstance(rows, slice) else rows.to(device)


def cv_scores(clf: Classifier, x: torch.Tensor, y: torch.Tensor, grid: Sequence[Any], folds: int,
              seed: int) -> dict[Any, float]:
    """Mean accuracy per grid value over ``folds`` class-stratified folds of (x, y)."""
    gen = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(len(y), dtype=torch.long)
    for c in y.cpu().unique():  # each class dealt round-robin over the folds, in random order
        idx = (y.cpu() == c).nonzero()[:, 0]
        fold_of[idx[torch.randperm(len(idx), generator=gen)]] = torch.arange(len(idx)) % folds
    fold_of = fold_of.to(x.device)
    totals = dict.fromkeys(grid, 0.0)
    for f in range(folds):
        held = fold_of == f
        predictors = clf.sweep(x[~held], y[~held], grid)
        for h, p in predictors.items():
            totals[h] += accuracy(p(x[held]), y[held]) / folds
    return totals


# The all-labels sweep stops once validation accuracy has fallen this far below its best at
# this many consecutive grid values: past its peak, an SVM's validation accuracy declines
# towards the hard-margin plateau while each larger C costs more passes (on 45,000 x 28,672
# the last three half-decades of the paper grid took ~30 of a row's ~50 minutes).
STOP_BELOW_BEST, STOP_PATIENCE = 0.5, 2


def _until_validation_falls(x_val: torch.Tensor, y_val: torch.Tensor, scores: dict[Any, float]):
    def until(h, predictor) -> bool:
        scores[h] = accuracy(predictor(x_val), y_val)
        best = max(scores.values())
        recent = list(scores.values())[-STOP_PATIENCE:]
        return len(scores) > STOP_PATIENCE and all(v < best - STOP_BELOW_BEST for v in recent)
    return until


def full_data_eval(clf: Classifier, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   val_idx: Rows, fit_idx: Rows, grid: Sequence[Any], *, cv_folds: int = 0, cv_seed: int = 0,
                   test_every: bool = False) -> Evaluation:
    """Choose the hyperparameter on (fit -> val), refit on all training data, score test once.

    The sweep runs from the smallest value up and stops once validation accuracy has been
    more than ``STOP_BELOW_BEST`` points under its best for ``STOP_PATIENCE`` values in a
    row (``val_scores`` holds only the values fitted).
    ``cv_folds > 0`` chooses it by that many folds of cross-validation over all the training
    data instead of the validation split.  ``test_every`` also scores every grid value on
    test (``test_by_hyper``; a refit per value), which the choice never sees.
    """
    dev = x.device
    if cv_folds:
        val_scores = cv_scores(clf, x, y, grid, cv_folds, cv_seed)
    else:
        vi, fi = _rows(val_idx, dev), _rows(fit_idx, dev)
        x_val, y_val = x[vi], y[vi]
        val_scores: dict[Any, float] = {}  # in grid order; values past a clear decline are not fitted
        predictors = clf.sweep(x[fi], y[fi], sorted(grid), until=_until_validation_falls(x_val, y_val, val_scores))
        for h, p in predictors.items():  # a classifier that fits every value at once (KNN) never calls until
            if h not in val_scores:
                val_scores[h] = accuracy(p(x_val), y_val)
    chosen = _choose(val_scores)
    refits = clf.sweep(x, y, list(grid) if test_every else [chosen])
    test_by_hyper = {h: accuracy(p(x_test), y_test) for h, p in refits.items()} if test_every else {}
    test_pred = refits[chosen](x_test)
    return Evaluation("full", chosen, val_scores, accuracy(test_pred, y_test), n_train=len(x),
                      test_pred=test_pred.cpu(), test_by_hyper=test_by_hyper)


def label_draws_eval(clf: Classifier, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                     val_idx: Rows, pool_idx: torch.Tensor, per_class: int, n_draws: int, seed: int,
                     grid: Sequence[Any], *, cv_folds: int = 0, test_every: bool = False) -> Evaluation:
    """Label-scarce: ``n_draws`` class-balanced draws of ``per_class`` labels from ``pool_idx``.

    The hyperparameter is the one with the best *mean validation* accuracy over draws
    (the authors' SVHN procedure); test accuracy is then mean ± std over the draws.
    ``cv_folds > 0`` instead chooses it per draw by cross-validation within the draw's own
    labels (no validation split: what a user holding only those labels can do); ``chosen``
    is then the median of the draws' choices.  ``test_every``: as in :func:`full_data_eval`.
    """
    dev = x.device
    vi = _rows(val_idx, dev)
    x_val, y_val = x[vi], y[vi]
    per_draw = []
    for i in range(n_draws):
        draw_seed = seed * 1000 + i
        idx = draw_per_class(y.cpu(), pool_idx, per_class, draw_seed).to(dev)
        xd, yd = x[idx], y[idx]
        # One thin factor per draw (X = F Q^T) serves the draw's fit and every fold of its
        # cross-validation: a fold's rows lie in the draw's row space, where F keeps every inner
        # product and distance, so each fold's model and held-out predictions are the same on F.
        thin = thin_factor(xd) if cv_folds else None
        predictors = clf.sweep(xd, yd, grid, thin=thin)
        scores = (cv_scores(clf, thin.F if thin is not None else xd, yd, grid, cv_folds, draw_seed) if cv_folds
                  else {h: accuracy(p(x_val), y_val) for h, p in predictors.items()})
        per_draw.append((draw_seed, predictors, scores))
    val_scores = {h: sum(d[2][h] for d in per_draw) / n_draws for h in grid}
    choices = [_choose(v) if cv_folds else _choose(val_scores) for _, _, v in per_draw]
    chosen = sorted(choices)[(len(choices) - 1) // 2]
    tests = [accuracy(predictors[c](x_test), y_test) for (_, predictors, _), c in zip(per_draw, choices)]
    mean = sum(tests) / n_draws
    std = math.sqrt(sum((t - mean) ** 2 for t in tests) / (n_draws - 1)) if n_draws > 1 else 0.0
    draws = [{"seed": s, "val_accuracy": v[c], "test_accuracy": t}
             for (s, _, v), c, t in zip(per_draw, choices, tests)]
    test_by_hyper = ({h: sum(accuracy(p[h](x_test), y_test) for _, p, _ in per_draw) / n_draws for h in grid}
                     if test_every else {})
    return Evaluation("draws", chosen, val_scores, mean, std, n_train=per_class * len(y.unique()), draws=draws,
                      test_by_hyper=test_by_hyper)
