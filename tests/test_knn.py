"""KNN: agreement with scikit-learn, the tie rule, one neighbour search for every k."""
import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from benchmarks import knn, probe


def test_matches_scikit_learn():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 30, generator=g) * 2
    y = torch.randint(0, 4, (400,), generator=g)
    x = centers[y] + torch.randn(400, 30, generator=g) * 2
    q = centers[torch.randint(0, 4, (200,), generator=g)] + torch.randn(200, 30, generator=g) * 2
    for k in (1, 5):  # odd k, continuous data: ties have probability ~0
        ours = knn.knn_predict(x, y, q, k)
        ref = KNeighborsClassifier(n_neighbors=k).fit(x.numpy(), y.numpy()).predict(q.numpy())
        assert (ours.numpy() == ref).mean() >= 0.99


def test_nearest_neighbours_are_exact():
    x = torch.tensor([[0.0], [10.0], [3.0], [-1.0]])
    assert knn.nearest(x, torch.tensor([[2.6]]), 3).tolist() == [[2, 0, 3]]


def test_ties_go_to_the_nearest_tied_class():
    labels = torch.tensor([[2, 1, 1, 2], [0, 3, 3, 0]])  # 2-2 ties, nearest first
    assert knn.vote(labels, 4).tolist() == [2, 0]
    assert knn.vote(torch.tensor([[1, 2, 2]]), 3).tolist() == [2]  # a majority beats nearness


def test_one_neighbour_search_serves_every_k(monkeypatch):
    calls = []
    real = knn.nearest
    monkeypatch.setattr(knn, "nearest", lambda *a, **k: calls.append(1) or real(*a, **k))
    x, y = torch.randn(50, 3), torch.arange(50) % 2
    q = torch.randn(7, 3)
    predictors = probe.KNNClassifier(2).sweep(x, y, (1, 3, 5))
    preds = {k: p(q) for k, p in predictors.items()}
    assert len(calls) == 1
    assert torch.equal(preds[3], knn.knn_predict(x, y, q, 3))


def test_bad_k_is_a_clear_error():
    with pytest.raises(ValueError, match="k must be in 1..3"):
        knn.nearest(torch.randn(3, 2), torch.randn(1, 2), 4)
