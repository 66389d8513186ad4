"""The evaluation mechanics every protocol shares: splits, label draws, standardisation,
hyperparameter choice on validation, test scoring.  Nothing here looks at the test split
until the hyperparameter is fixed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch

from benchmarks import knn, svm


# ---------------------------------------------------------------- splits and draws
def class_balanced_split(labels: torch.Tensor, n_val: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(val_idx, rest_idx): ``n_val`` examples spread evenly over classes, seeded."""
    classes = labels.unique()
    per_class, extra = divmod(n_val, len(classes))
    gen = torch.Generator().manual_seed(seed)
    val = []
    for i, c in enumerate(classes.tolist()):
        idx = (labels == c).nonzero().squeeze(1)
        take = per_class + (1 if i < extra else 0)
        if take > len(idx):
            raise ValueError(f"class {c} has {len(idx)} examples, fewer than the {take} the split needs")
        val.append(idx[torch.randperm(len(idx), generator=gen)[:take]])
    val_idx = torch.cat(val).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val_idx] = False
    return val_idx, mask.nonzero().squeeze(1)


def draw_per_class(labels: torch.Tensor, pool: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """``per_class`` random examples of every class from the index set ``pool``."""
    gen = torch.Generator().manual_seed(seed)
    pool_labels = labels[pool]
    picks = []
    for c in labels.unique().tolist():
        idx = pool[pool_labels == c]
        if per_class > len(idx):
            raise ValueError(f"class {c} has {len(idx)} examples in the pool, fewer than {per_class} per class")
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picks).sort().values


def balanced_subset(labels: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """Indices of a seeded class-balanced subset of size ``n`` (all indices when None)."""
    if n is None or n >= len(labels):
        return torch.arange(len(labels))
    return class_balanced_split(labels, n, seed)[0]


# ---------------------------------------------------------------- features
@dataclass
class Standardizer:
    """Per-feature standardisation with statistics of the (unlabelled) training features."""
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, eps: float = 1e-6) -> "Standardizer":
        mean = x.mean(0, dtype=torch.float64)
        var = (x.double() - mean).pow_(2).mean(0) if x.numel() < 5e7 else _chunked_var(x, mean)
        return cls(mean.float(), var.sqrt().clamp_min(eps).float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _chunked_var(x: torch.Tensor, mean: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    acc = torch.zeros_like(mean)
    for s in range(0, len(x), chunk):
        acc += (x[s:s + chunk].double() - mean).pow_(2).sum(0)
    return acc / len(x)


# ---------------------------------------------------------------- classifiers
class Classifier(Protocol):
    name: str   # as shown in tables
    hyper: str  # the hyperparameter chosen on validation

    def sweep(self, x: torch.Tensor, y: torch.Tensor, grid: Sequence[Any]) -> dict[Any, Callable[[torch.Tensor], torch.Tensor]]:
        """One fitted predictor per grid value (warm-started where that helps)."""


class L2SVMClassifier:
    name, hyper = "L2-SVM", "C"

    def __init__(self, n_classes: int, backend: str = "torch") -> None:
        self.n_classes, self.backend = n_classes, backend

    def sweep(self, x, y, grid):
        models, prev = {}, None
        for c in sorted(grid):  # small C first: each solution warm-starts the next
            prev = svm.fit_l2svm(x, y, c, n_classes=self.n_classes, backend=self.backend, init=prev)
            models[c] = prev.predict
        return models


class KNNClassifier:
    name, hyper = "KNN", "k"

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes

    def sweep(self, x, y, grid):
        """Predictors for every k from ONE neighbour search per query set (cached on the query)."""
        k_max, cache = max(grid), {}

        def neighbours(q: torch.Tensor) -> torch.Tensor:
            if cache.get("query") is not q:
                cache.update(query=q, labels=y[knn.nearest(x, q, k_max)])
            return cache["labels"]

        return {k: (lambda q, k=k: knn.vote(neighbours(q)[:, :k], self.n_classes)) for k in grid}


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * (pred.cpu() == y.cpu()).double().mean().item()


# ---------------------------------------------------------------- the two evaluations
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


def _choose(val_scores: dict[Any, float]) -> Any:
    """Best validation score; ties go to the first (smallest, most regularised) value."""
    return max(sorted(val_scores), key=lambda h: val_scores[h])


def full_data_eval(clf: Classifier, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   val_idx: torch.Tensor, fit_idx: torch.Tensor, grid: Sequence[Any]) -> Evaluation:
    """Choose the hyperparameter on (fit -> val), refit on all training data, score test once."""
    dev = x.device
    vi, fi = val_idx.to(dev), fit_idx.to(dev)
    predictors = clf.sweep(x[fi], y[fi], grid)
    x_val, y_val = x[vi], y[vi]
    val_scores = {h: accuracy(p(x_val), y_val) for h, p in predictors.items()}
    chosen = _choose(val_scores)
    test_pred = clf.sweep(x, y, [chosen])[chosen](x_test)
    return Evaluation("full", chosen, val_scores, accuracy(test_pred, y_test), n_train=len(x))


def label_draws_eval(clf: Classifier, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                     val_idx: torch.Tensor, pool_idx: torch.Tensor, per_class: int, n_draws: int, seed: int,
                     grid: Sequence[Any]) -> Evaluation:
    """Label-scarce: ``n_draws`` class-balanced draws of ``per_class`` labels from ``pool_idx``.

    The hyperparameter is the one with the best *mean validation* accuracy over draws
    (the authors' SVHN procedure); test accuracy is then mean ± std over the draws.
    """
    dev = x.device
    x_val, y_val = x[val_idx.to(dev)], y[val_idx.to(dev)]
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
