"""KNN and the one neighbour search: agreement with scikit-learn (real pixels and blobs),
known answers, the tie rule, and one neighbour search serving every k."""
from __future__ import annotations

import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from benchmarks.classifiers import knn
from benchmarks.classifiers.knn import KNNClassifier
from dcgan_ref import neighbours


def _predict(x, y, q, k, n_classes=None):
    """The protocol classifier's prediction at one k."""
    n = int(y.max()) + 1 if n_classes is None else n_classes
    return KNNClassifier(n).sweep(x, y, (k,))[k](q)


def _blobs(n: int, seed: int):
    """Four Gaussian blobs in 30-D (the same centres for every seed)."""
    centers = torch.randn(4, 30, generator=torch.Generator().manual_seed(0)) * 2
    g = torch.Generator().manual_seed(seed + 1)
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 30, generator=g) * 2, y


def _untied(nb_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Queries whose vote has a unique winner (where every tie rule agrees)."""
    counts = (nb_labels[:, :, None] == torch.arange(n_classes)).sum(1)
    top2 = counts.topk(2, dim=1).values
    return top2[:, 0] > top2[:, 1]


def test_matches_scikit_learn():
    x, y = _blobs(400, 0)
    q, _ = _blobs(200, 1)
    for k in (1, 5):  # odd k, continuous data, 4 classes: vote ties are rare
        ours = _predict(x, y, q, k)
        ref = KNeighborsClassifier(n_neighbors=k).fit(x.numpy(), y.numpy()).predict(q.numpy())
        assert (ours.numpy() == ref).mean() >= 0.99


@pytest.fixture(scope="module")
def pixels(shared_data, tmp_path_factory):
    """Raw pixels in [-1, 1] of the 4,000 official train / 1,000 test images of the slice."""
    from dcgan_ref.datasets.loading import load_split

    path = shared_data / "cifar10_lossless_slice.tar.xz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    cache = tmp_path_factory.mktemp("knn_cache")
    train, test = (load_split(path, s, download=False, cache_dir=cache) for s in ("train", "test"))
    flat = lambda s: s.images.flatten(1).double() / 127.5 - 1  # noqa: E731 (float64: exact ranks)
    return flat(train), train.labels, flat(test), test.labels


def test_matches_scikit_learn_on_real_pixels(pixels):
    x, y, q, yq = pixels
    nb = y[neighbours.nearest(x, q, 5)]
    for k in (1, 3, 5):
        ours = _predict(x, y, q, k)
        ref = KNeighborsClassifier(n_neighbors=k).fit(x.numpy(), y.numpy()).predict(q.numpy())
        untied = _untied(nb[:, :k], 10)
        assert untied.sum() >= 300  # 10 classes: k = 3 ties (1-1-1) are common
        assert (ours[untied].numpy() == ref[untied.numpy()]).all()
    assert 0.25 < (_predict(x, y, q, 1) == yq).double().mean() < 0.45  # pixel 1-NN


def test_chunking_and_float32_give_the_same_neighbours(pixels):
    x, _, q, _ = pixels
    x, q = x[:1000], q[:300]
    full = neighbours.nearest(x, q, 5)
    assert torch.equal(neighbours.nearest(x, q, 5, chunk_size=7), full)
    d64, _ = neighbours.nearest_neighbors(x, q, 5)
    d32, i32 = neighbours.nearest_neighbors(x.float(), q.float(), 5)
    assert torch.allclose(d32.double(), d64, rtol=1e-4)
    assert (i32 == full).double().mean() > 0.99  # float32 may swap near-equal distances


def test_nearest_neighbours_are_exact():
    x = torch.tensor([[0.0], [10.0], [3.0], [-1.0]])
    assert neighbours.nearest(x, torch.tensor([[2.6]]), 3).tolist() == [[2, 0, 3]]
    d, i = neighbours.nearest_neighbors(x, torch.tensor([[2.6], [9.0]]), 2)
    assert i.tolist() == [[2, 0], [1, 2]]
    assert d.flatten().tolist() == pytest.approx([0.16, 6.76, 1.0, 36.0], abs=1e-5)


def test_known_answer_toy():
    # Two clusters on a line plus one class-1 stray at 2.5 inside class 0's cluster.
    x = torch.tensor([[0.0], [1.0], [2.0], [5.0], [6.0], [7.0], [2.5]])
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    q = torch.tensor([[-3.0], [4.2], [2.6]])
    assert _predict(x, y, q, 1).tolist() == [0, 1, 1]  # 2.6: the stray is nearest
    assert _predict(x, y, q, 3).tolist() == [0, 1, 0]  # 2.6: 2.5 (1), 2 (0), 1 (0)


def test_ties_go_to_the_nearest_tied_class():
    labels = torch.tensor([[2, 1, 1, 2], [0, 3, 3, 0]])  # 2-2 ties, nearest first
    assert knn.vote(labels, 4).tolist() == [2, 0]
    assert knn.vote(torch.tensor([[1, 2, 2]]), 3).tolist() == [2]  # a majority beats nearness
    assert knn.vote(torch.tensor([[3, 0, 1]]), 4).tolist() == [3]  # 1-1-1: the nearest


def test_one_neighbour_search_serves_every_k_in_the_protocol_classifier(monkeypatch):
    calls = []
    real = knn.nearest
    monkeypatch.setattr(knn, "nearest", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    x, y = _blobs(300, 2)
    xv, yv = _blobs(100, 3)
    predictors = KNNClassifier(4).sweep(x, y, (5, 1, 3, 9))
    preds = {k: p(xv) for k, p in predictors.items()}
    assert calls == [9]  # one search, for the largest k
    monkeypatch.setattr(knn, "nearest", real)
    for k, pred in preds.items():  # each k's vote from that search is the vote of its own search
        assert torch.equal(pred, knn.vote(y[real(x, xv, k)], 4)), k


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"k must be in 1\.\.3"):
        neighbours.nearest(torch.randn(3, 2), torch.randn(1, 2), 4)
    with pytest.raises(ValueError, match="feature dims differ"):
        neighbours.nearest(torch.randn(3, 2), torch.randn(1, 5), 1)
    with pytest.raises(ValueError, match="2-D"):
        neighbours.nearest(torch.randn(3), torch.randn(1, 2), 1)
    with pytest.raises(ValueError, match="labels must be 1-D of length 3"):
        KNNClassifier(2).sweep(torch.randn(3, 2), torch.tensor([0, 1]), (1,))
    with pytest.raises(ValueError, match="labels must be integers"):
        KNNClassifier(2).sweep(torch.randn(3, 2), torch.tensor([0.0, 1.0, 0.0]), (1,))
