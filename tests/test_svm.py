"""L2-SVM: the torch solver against scikit-learn's LinearSVC on real CIFAR-10 pixels, and
known answers / failure modes on toys.  CPU, well under a minute."""
from __future__ import annotations

import math

import pytest
import torch

from benchmarks.classifiers.svm import LinearSVM, fit_l2svm, svm_objective

SLICE = "cifar10_lossless_slice.tar.xz"
N_TRAIN = 2000


@pytest.fixture(scope="module")
def pixels(shared_data, tmp_path_factory):
    """Standardised raw pixels in [-1, 1] (3,072 dims) of 2,000 official CIFAR-10 train
    images (200 per class, lowest official indices) and all 1,000 slice test images."""
    from dcgan_ref.datasets.loading import load_split

    path = shared_data / SLICE
    if not path.is_file():
        pytest.skip(f"{path} not found")
    cache = tmp_path_factory.mktemp("svm_cache")
    train = load_split(path, "train", download=False, cache_dir=cache)
    test = load_split(path, "test", download=False, cache_dir=cache)
    idx = torch.cat([(train.labels == c).nonzero()[:, 0][: N_TRAIN // 10] for c in range(10)])
    x = train.images[idx].flatten(1).float() / 127.5 - 1
    x_test = test.images.flatten(1).float() / 127.5 - 1
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    return (x - mean) / std, train.labels[idx], (x_test - mean) / std


def _rel_gap(a: LinearSVM, b: LinearSVM, x, y, C) -> float:
    """Worst class's |P(a) - P(b)| / P(b)."""
    pa, pb = svm_objective(a, x, y, C), svm_objective(b, x, y, C)
    return float(((pa - pb).abs() / pb).max())


# ----------------------------------------------------------------------------- parity


@pytest.mark.slow
@pytest.mark.parametrize("C", [1e-4])  # larger C: the synthetic separable case below (faster, same check)
def test_matches_linearsvc_on_real_pixels(pixels, C):
    x, y, x_test = pixels
    ours = fit_l2svm(x, y, C)
    ref = fit_l2svm(x, y, C, backend="sklearn", tol=1e-5)
    assert ours.converged and ours.rel_gap <= 1e-4
    gap = _rel_gap(ours, ref, x, y, C)  # max over the 10 one-vs-rest problems
    assert gap < 1e-3, f"relative objective gap {gap:.2e}"
    same = (ours.predict(x_test) == ref.predict(x_test)).double().mean().item()
    assert same >= 0.99, f"only {same:.1%} identical test predictions"
    assert ours.weight.dtype == torch.float32 and ours.weight.shape == (10, 3072)


@pytest.mark.parametrize("C", [1e-2, 1e-1, 1.0, pytest.param(10.0, marks=pytest.mark.slow)])
def test_matches_linearsvc_on_a_separable_synthetic_problem(C):
    """600 x 3,000 Gaussian features with random labels: separable, the near-hard-margin
    regime where a stopping rule relative to the gradient at zero stopped after 2 Newton
    steps at 2.8x the optimal objective.  Needs no data files."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(600, 3000, generator=g), torch.randint(0, 10, (600,), generator=g)
    x_new = torch.randn(300, 3000, generator=g)
    ours = fit_l2svm(x, y, C)
    ref = fit_l2svm(x, y, C, backend="sklearn", tol=1e-7)
    assert ours.converged and ours.rel_gap <= 1e-4
    gap = _rel_gap(ours, ref, x, y, C)
    assert gap < 1e-3, f"relative objective gap {gap:.2e}"
    same = (ours.predict(x_new) == ref.predict(x_new)).double().mean().item()
    assert same >= 0.98, f"only {same:.1%} identical predictions on new points"


def test_warm_start_reaches_the_same_optimum_in_fewer_iterations(pixels):
    x, y, _ = pixels
    cold = fit_l2svm(x, y, 1e-3)
    warm = fit_l2svm(x, y, 1e-3, init=fit_l2svm(x, y, 5e-4))
    assert warm.n_iter < cold.n_iter and warm.n_passes < cold.n_passes
    assert _rel_gap(warm, cold, x, y, 1e-3) < 2e-4  # both certified within 1e-4
    again = fit_l2svm(x, y, 1e-3, init=cold)  # already optimal: no iteration needed
    assert again.n_iter == 0 and torch.equal(again.weight, cold.weight)


def test_larger_C_fits_the_training_set_harder(pixels):
    x, y, _ = pixels
    hinge = []
    for C in (1e-4, 1e-3, 1e-2):
        m = fit_l2svm(x, y, C)
        t = torch.where(y[:, None] == torch.arange(10), 1.0, -1.0)
        hinge.append(float((1 - t * m.decision_function(x)).clamp_min(0).square().sum()))
        objective = svm_objective(m, x, y, C)
        assert torch.all(objective <= C * x.shape[0] + 1e-9)  # P(0) = C * N bounds P(w*)
    assert hinge[0] > hinge[1] > hinge[2]


# ----------------------------------------------------------------------------- known answers


def _blobs(n: int, d: int, k: int, seed: int = 0, spread: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 3
    y = torch.arange(n) % k
    return centers[y] + spread * torch.randn(n, d, generator=g), y


def test_separable_toy_is_classified_perfectly():
    x = torch.tensor([[2.0, 0.0], [3.0, 1.0], [-2.0, 0.0], [-3.0, -1.0], [0.0, 3.0], [1.0, 4.0]])
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    m = fit_l2svm(x, y, 10.0)
    assert m.predict(x).tolist() == y.tolist()
    xb, yb = _blobs(300, 20, 4, spread=0.3)
    assert torch.equal(fit_l2svm(xb, yb, 1.0).predict(xb), yb)


def test_one_dimensional_known_optimum():
    """x = +-1, one class each: by symmetry b = 0 and w minimises 0.5 w^2 + 2C (1 - w)_+^2,
    so w = 4C / (1 + 4C); the liblinear-style regularised intercept is part of it."""
    x, y, C = torch.tensor([[1.0], [-1.0]]), torch.tensor([1, 0]), 0.5
    m = fit_l2svm(x, y, C, tol=1e-6)
    w = 4 * C / (1 + 4 * C)
    assert m.weight[1, 0].item() == pytest.approx(w, abs=1e-5)
    assert m.weight[0, 0].item() == pytest.approx(-w, abs=1e-5)
    assert m.bias.abs().max().item() < 1e-5
    expected = 0.5 * w**2 + 2 * C * (1 - w) ** 2
    assert svm_objective(m, x, y, C).tolist() == pytest.approx([expected] * 2, rel=1e-6)


def test_binary_problem_mirrors_sklearn():
    x, y = _blobs(200, 10, 2, spread=3.0)
    ours, ref = fit_l2svm(x, y, 0.1), fit_l2svm(x, y, 0.1, backend="sklearn", tol=1e-6)
    assert ref.weight.shape == (2, 10) and torch.allclose(ref.weight[0], -ref.weight[1])
    assert _rel_gap(ours, ref, x, y, 0.1) < 1e-3


def test_absent_class_and_explicit_n_classes():
    x, y = _blobs(90, 5, 3)
    m = fit_l2svm(x, y, 0.1, n_classes=4)
    assert m.weight.shape == (4, 5) and set(m.predict(x).tolist()) <= {0, 1, 2}
    with pytest.raises(ValueError, match="missing classes"):
        fit_l2svm(x, y, 0.1, n_classes=4, backend="sklearn")


def test_deterministic_and_plain_lbfgs_agree():
    x, y = _blobs(400, 50, 5, spread=4.0)
    a, b = fit_l2svm(x, y, 1.0), fit_l2svm(x, y, 1.0)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    plain = fit_l2svm(x, y, 1.0, precond_rank=0, continuation=False)
    assert plain.converged and _rel_gap(plain, a, x, y, 1.0) < 2e-4


def test_model_helpers():
    x, y = _blobs(60, 4, 3)
    m = fit_l2svm(x.double(), y, 1.0)  # float64 input is solved in float32
    assert m.weight.dtype == torch.float32 and m.to("cpu").weight is not None
    scores = m.decision_function(x)
    assert scores.shape == (60, 3) and torch.equal(m.predict(x), scores.argmax(1))
    assert math.isfinite(m.rel_gap) and m.n_passes > 0


def test_hitting_max_iter_warns():
    x, y = _blobs(200, 30, 3, spread=5.0)
    with pytest.warns(RuntimeWarning, match="stopped after 2 iterations"):
        m = fit_l2svm(x, y, 10.0, max_iter=2, continuation=False)
    assert not m.converged


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad, message", [
    (dict(X=torch.zeros(4)), "X must be 2-D"),
    (dict(y=torch.zeros(5, dtype=torch.long)), "one label per row"),
    (dict(y=torch.tensor([0.0, 1.0, 0.0, 1.0])), "integer class labels"),
    (dict(y=torch.tensor([0, -1, 0, 1])), "labels must be in 0..K-1"),
    (dict(y=torch.zeros(4, dtype=torch.long)), "at least 2 classes"),
    (dict(C=0.0), "C must be a finite number > 0"),
    (dict(C=-1.0), "C must be a finite number > 0"),
    (dict(C=float("inf")), "C must be a finite number > 0"),
    (dict(X=torch.full((4, 2), float("nan"))), "non-finite"),
    (dict(X=torch.tensor([[1.0, 0], [0, 1], [float("inf"), 0], [0, 0]])), "non-finite"),
    (dict(n_classes=1), "out of range for n_classes=1"),
    (dict(backend="cuml"), "unknown backend"),
])
def test_bad_input_is_a_clear_error(bad, message):
    args = dict(X=torch.randn(4, 2), y=torch.tensor([0, 1, 0, 1]), C=1.0) | bad
    extra = {k: args.pop(k) for k in ("n_classes", "backend") if k in args}
    with pytest.raises(ValueError, match=message):
        fit_l2svm(args["X"], args["y"], args["C"], **extra)


def test_bad_init_shape_is_a_clear_error():
    x, y = _blobs(30, 4, 3)
    wrong = LinearSVM(torch.zeros(3, 5), torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"expected \(3, 4\) and \(3,\)"):
        fit_l2svm(x, y, 1.0, init=wrong)


def test_a_shared_basis_gives_the_solve_of_its_own():
    """A sweep computes the preconditioner's subspace once; each fit must equal the fit that
    computes it itself (same seed, same X), and a basis of another matrix is refused."""
    from benchmarks.classifiers.svm import subspace_basis
    x, y = _blobs(300, 40, 4, spread=4.0)
    basis = subspace_basis(x)
    for C in (1e-2, 1.0):
        own, shared = fit_l2svm(x, y, C), fit_l2svm(x, y, C, basis=basis)
        assert torch.equal(own.weight, shared.weight) and torch.equal(own.bias, shared.bias)
    with pytest.raises(ValueError, match="basis was computed for a 300 x 40 matrix"):
        fit_l2svm(x[:200], y[:200], 1.0, basis=basis)


def test_finite_check_catches_every_non_finite_and_no_finite_overflow():
    from benchmarks.classifiers.svm import _all_finite
    x = torch.randn(50, 30)
    assert _all_finite(x)
    big = torch.full((4, 30), 3e38)  # finite, but every row sum overflows to inf
    assert _all_finite(big)
    for value in (float("nan"), float("inf"), -float("inf")):
        bad = x.clone()
        bad[17, 3] = value
        assert not _all_finite(bad)
    both = x.clone()
    both[2, 0], both[2, 1] = float("inf"), -float("inf")  # sums to NaN: still caught
    assert not _all_finite(both)
