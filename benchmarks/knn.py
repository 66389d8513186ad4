"""k-nearest-neighbour classification (Euclidean), in chunks of GEMMs on the data's device.

``nearest`` finds the ``k_max`` nearest training rows once; ``vote`` then classifies for
any ``k <= k_max`` from that list, so choosing k on validation costs one neighbour search.
Votes are majority counts; ties go to the class of the nearest neighbour among the tied.
"""
from __future__ import annotations

import torch


def nearest(train_x: torch.Tensor, query: torch.Tensor, k_max: int, chunk: int = 1024) -> torch.Tensor:
    """Indices (M, k_max) of each query row's nearest training rows, nearest first."""
    if train_x.dim() != 2 or query.dim() != 2 or train_x.shape[1] != query.shape[1]:
        raise ValueError(f"expected 2-D features of equal width, got {tuple(train_x.shape)} and {tuple(query.shape)}")
    if not 1 <= k_max <= len(train_x):
        raise ValueError(f"k must be in 1..{len(train_x)} (the training-set size), got {k_max}")
    query = query.to(train_x.device)
    sq_train = train_x.double().square().sum(1).float()
    out = torch.empty(len(query), k_max, dtype=torch.long, device=train_x.device)
    for s in range(0, len(query), chunk):
        q = query[s:s + chunk]
        # ||q||² is constant per row, so ||t||² − 2 q·t orders neighbours the same way
        dist = torch.addmm(sq_train, q, train_x.T, alpha=-2.0)
        out[s:s + chunk] = dist.topk(k_max, dim=1, largest=False, sorted=True).indices
    return out


def vote(neighbour_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Majority class per row of (M, k) labels, nearest first; ties -> the nearest tied class."""
    m, k = neighbour_labels.shape
    counts = torch.zeros(m, n_classes, device=neighbour_labels.device)
    counts.scatter_add_(1, neighbour_labels, torch.ones(m, k, device=neighbour_labels.device))
    # break ties by rank: a class gets a bonus smaller than one vote for being seen earlier
    first_rank = torch.full((m, n_classes), float(k), device=neighbour_labels.device)
    ranks = torch.arange(k, device=neighbour_labels.device, dtype=torch.float).expand(m, k)
    first_rank.scatter_reduce_(1, neighbour_labels, ranks, reduce="amin")
    return (counts - first_rank / (k + 1)).argmax(1)


def knn_predict(train_x: torch.Tensor, train_y: torch.Tensor, query: torch.Tensor, k: int,
                n_classes: int | None = None) -> torch.Tensor:
    """Labels (M,) for ``query`` by k-NN over (``train_x``, ``train_y``)."""
    n_classes = n_classes or int(train_y.max()) + 1
    return vote(train_y.to(train_x.device)[nearest(train_x, query, k)], n_classes)
