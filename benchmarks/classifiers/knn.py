"""k-nearest-neighbour classification on feature tensors (Euclidean, majority vote).

Distances use ``||q||^2 - 2 q.x + ||x||^2``: one GEMM per chunk of queries, on the
device of the data (TF32 off on CUDA), so 10,000 queries against 50,000 x 28,672
training features is a handful of GEMMs on a GPU.  Only the ``k`` smallest distances
per query are kept (``torch.topk``), so memory is ``chunk x N_train``.

Voting: each of the ``k`` nearest neighbours casts one vote for its class; the class
with most votes wins.  **Ties** between classes go to the tied class whose member is
nearest the query (for ``k = 2`` with two different labels, the nearer neighbour's).
Note scikit-learn's ``KNeighborsClassifier`` breaks vote ties towards the smallest
class label instead.  Exactly equal distances come in ``torch.topk``'s (unspecified)
order, and in float32 the expansion can swap neighbours whose distances agree to ~1e-6
relative; pass float64 features where exact ranks matter (the tests do).

:func:`choose_k` computes the neighbour list once, for the largest ``k``, and scores
every candidate ``k`` from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

from benchmarks.classifiers.svm import ieee_fp32_matmul

__all__ = [
    "KNNClassifier", "fit_knn", "knn_predict", "nearest", "nearest_neighbors", "vote", "choose_k",
]

_CHUNK_ELEMENTS = 1 << 26  # distance-matrix entries per chunk (256 MiB in float32)


def _check(X: torch.Tensor, name: str) -> None:
    if X.dim() != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D tensor, got shape {tuple(X.shape)}")
    if not X.dtype.is_floating_point:
        raise ValueError(f"{name} must be floating point, got {X.dtype}")


def _check_labels(y: torch.Tensor, n: int) -> None:
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be 1-D of length {n}, got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got {y.dtype}")
    if n and int(y.min()) < 0:
        raise ValueError("labels must be >= 0")


def nearest_neighbors(
    train_X: torch.Tensor, query_X: torch.Tensor, k: int, *, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances ``(M, k)`` and training indices ``(M, k)`` of each query's ``k``
    nearest training rows, nearest first.  Computed on ``train_X``'s device and dtype."""
    _check(train_X, "train_X")
    _check(query_X, "query_X")
    if query_X.shape[1] != train_X.shape[1]:
        raise ValueError(
            f"feature dims differ: train {train_X.shape[1]}, query {query_X.shape[1]}"
        )
    if not 1 <= k <= train_X.shape[0]:
        raise ValueError(f"k must be in 1..{train_X.shape[0]} (training size), got {k}")
    device, dtype = train_X.device, train_X.dtype
    chunk = chunk_size or max(1, _CHUNK_ELEMENTS // train_X.shape[0])
    dists, idxs = [], []
    with torch.no_grad(), ieee_fp32_matmul(device):
        train_sq = torch.linalg.vector_norm(train_X, dim=1).square()
        for start in range(0, query_X.shape[0], chunk):
            q = query_X[start : start + chunk].to(device=device, dtype=dtype)
            q_sq = torch.linalg.vector_norm(q, dim=1).square()
            d2 = torch.addmm(train_sq[None, :], q, train_X.T, alpha=-2.0)
            d2.add_(q_sq[:, None]).clamp_min_(0)
            d, i = torch.topk(d2, k, dim=1, largest=False, sorted=True)
            dists.append(d)
            idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)


def nearest(
    train_X: torch.Tensor, query_X: torch.Tensor, k: int, *, chunk_size: int | None = None
) -> torch.Tensor:
    """Training indices ``(M, k)`` of each query's ``k`` nearest rows, nearest first."""
    return nearest_neighbors(train_X, query_X, k, chunk_size=chunk_size)[1]


def vote(neighbor_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Majority vote over ``(M, k)`` labels (nearest first); ties -> nearest tied class."""
    classes = torch.arange(n_classes, device=neighbor_labels.device)
    counts = (neighbor_labels[:, :, None] == classes).sum(1)  # (M, K); elementwise: deterministic
    tied = counts == counts.max(dim=1, keepdim=True).values  # (M, K): classes with max votes
    in_tied = tied.gather(1, neighbor_labels).to(torch.int8)  # (M, k)
    first = in_tied.argmax(dim=1, keepdim=True)  # nearest neighbour of a tied class
    return neighbor_labels.gather(1, first)[:, 0]


@dataclass
class KNNClassifier:
    """Stored training set; ``predict`` votes among the ``k`` nearest training rows."""

    train_X: torch.Tensor
    train_y: torch.Tensor
    k: int
    n_classes: int

    def predict(self, X: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
        """Predicted labels ``(M,)`` int64 on the training data's device."""
        idx = nearest(self.train_X, X, self.k, chunk_size=chunk_size)
        return vote(self.train_y[idx], self.n_classes)


def fit_knn(
    X: torch.Tensor, y: torch.Tensor, k: int, *, n_classes: int | None = None
) -> KNNClassifier:
    """A k-NN classifier over training features ``X`` (N, D) and labels ``y`` (N,)."""
    _check(X, "X")
    _check_labels(y, X.shape[0])
    if not 1 <= k <= X.shape[0]:
        raise ValueError(f"k must be in 1..{X.shape[0]} (training size), got {k}")
    y = y.to(device=X.device, dtype=torch.int64)
    K = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if int(y.max()) >= K:
        raise ValueError(f"label {int(y.max())} out of range for n_classes={K}")
    return KNNClassifier(train_X=X, train_y=y, k=int(k), n_classes=K)


def knn_predict(
    train_X: torch.Tensor, train_y: torch.Tensor, query_X: torch.Tensor, k: int,
    *, n_classes: int | None = None, chunk_size: int | None = None,
) -> torch.Tensor:
    """One-shot k-NN prediction for ``query_X`` (see :class:`KNNClassifier`)."""
    return fit_knn(train_X, train_y, k, n_classes=n_classes).predict(query_X, chunk_size=chunk_size)


def choose_k(
    train_X: torch.Tensor, train_y: torch.Tensor, val_X: torch.Tensor, val_y: torch.Tensor,
    ks: Iterable[int] = (1, 3, 5, 7, 9, 11, 15, 21), *, n_classes: int | None = None,
    chunk_size: int | None = None,
) -> tuple[int, dict[int, float]]:
    """Validation accuracy (fraction) of every ``k`` in ``ks`` from one neighbour search.

    Returns ``(best_k, {k: accuracy})``; ties in accuracy go to the smallest ``k``.
    """
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("ks is empty")
    model = fit_knn(train_X, train_y, ks[-1], n_classes=n_classes)
    _check_labels(val_y, val_X.shape[0])
    idx = nearest(train_X, val_X, ks[-1], chunk_size=chunk_size)
    nb_labels = model.train_y[idx]  # (M, k_max), nearest first
    val_y = val_y.to(device=nb_labels.device, dtype=torch.int64)
    accs = {
        k: float((vote(nb_labels[:, :k], model.n_classes) == val_y).double().mean())
        for k in ks
    }
    best = max(ks, key=lambda k: (accs[k], -k))
    return best, accs
