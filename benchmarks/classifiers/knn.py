"""k-nearest-neighbour classification on feature tensors (Euclidean, majority vote), the
protocols' ``knn`` classifier. The neighbour search is ``dcgan_ref.neighbours`` (one search
for every use in the project); one search per query set serves every k of the grid.

Voting: each of the ``k`` nearest neighbours casts one vote for its class; the class
with most votes wins.  **Ties** between classes go to the tied class whose member is
nearest the query (for ``k = 2`` with two different labels, the nearer neighbour's).
Note scikit-learn's ``KNeighborsClassifier`` breaks vote ties towards the smallest
class label instead.
"""
from __future__ import annotations

import torch

from dcgan_ref.neighbours import nearest

__all__ = ["KNNClassifier", "vote"]


def _check_labels(y: torch.Tensor, n: int) -> None:
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be 1-D of length {n}, got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got {y.dtype}")
    if n and int(y.min()) < 0:
        raise ValueError("labels must be >= 0")


def vote(neighbor_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Majority vote over ``(M, k)`` labels (nearest first); ties -> nearest tied class."""
    classes = torch.arange(n_classes, device=neighbor_labels.device)
    counts = (neighbor_labels[:, :, None] == classes).sum(1)  # (M, K); elementwise: deterministic
    tied = counts == counts.max(dim=1, keepdim=True).values  # (M, K): classes with max votes
    in_tied = tied.gather(1, neighbor_labels).to(torch.int8)  # (M, k)
    first = in_tied.argmax(dim=1, keepdim=True)  # nearest neighbour of a tied class
    return neighbor_labels.gather(1, first)[:, 0]


class KNNClassifier:
    name, hyper, preset_grid = "KNN", "k", "knn_grid"

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes

    def sweep(self, x, y, grid, until=None, thin=None):  # one search serves every k: until, thin unused
        """Predictors for every k from ONE neighbour search per query set (cached on the query)."""
        _check_labels(y, len(x))
        k_max, cache = max(grid), {}

        def neighbours(q: torch.Tensor) -> torch.Tensor:
            if cache.get("query") is not q:
                cache.update(query=q, labels=y[nearest(x, q, min(k_max, len(x)))])
            return cache["labels"]

        return {k: (lambda q, k=k: vote(neighbours(q)[:, :k], self.n_classes)) for k in grid}

    def diagnostics(self):
        return []
