"""Our PyTorch L2-SVM against scikit-learn's LinearSVC on the same real-image features."""
import pytest
import torch

from benchmarks import probe
from benchmarks.svm import fit_l2svm, svm_objective
from dcgan_ref.data import load_split


@pytest.fixture(scope="module")
def pixel_features(shared_data):
    """Standardised raw pixels of 2,000 official CIFAR-10 train images (+1,000 test)."""
    train = load_split(shared_data / "cifar10_lossless_slice.tar.xz", "train")
    test = load_split(shared_data / "cifar10_lossless_slice.tar.xz", "test")
    idx = probe.balanced_subset(train.labels, 2000, seed=0)
    x, x_test = (s.images.float().flatten(1) / 127.5 - 1 for s in (train.subset(idx), test))
    std = probe.Standardizer.fit(x)
    return std(x), train.labels[idx], std(x_test)


@pytest.mark.parametrize("C", [1e-4, 1e-3])
def test_torch_solver_matches_linearsvc(pixel_features, C):
    x, y, x_test = pixel_features
    ours = fit_l2svm(x, y, C, n_classes=10, backend="torch")
    ref = fit_l2svm(x, y, C, n_classes=10, backend="sklearn", tol=1e-6)
    obj_ours, obj_ref = svm_objective(ours, x, y, C), svm_objective(ref, x, y, C)
    gap = ((obj_ours - obj_ref).abs() / obj_ref).max().item()  # worst class
    assert gap < 1e-3, f"relative objective gap {gap:.2e}"
    same = (ours.predict(x_test) == ref.predict(x_test)).float().mean().item()
    assert same >= 0.99, f"only {same:.1%} identical test predictions"


def test_warm_start_reaches_the_same_optimum_in_fewer_passes(pixel_features):
    x, y, _ = pixel_features
    cold = fit_l2svm(x, y, 1e-3, n_classes=10)
    warm = fit_l2svm(x, y, 1e-3, n_classes=10, init=fit_l2svm(x, y, 3e-4, n_classes=10))
    assert warm.n_passes < cold.n_passes
    gap = ((svm_objective(warm, x, y, 1e-3) - svm_objective(cold, x, y, 1e-3)).abs()
           / svm_objective(cold, x, y, 1e-3)).max().item()
    assert gap < 1e-3


def test_separable_toy_problem_is_solved():
    x = torch.tensor([[2.0, 0.0], [3.0, 1.0], [-2.0, 0.0], [-3.0, -1.0], [0.0, 3.0], [1.0, 4.0]])
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    assert fit_l2svm(x, y, 10.0, n_classes=3).predict(x).tolist() == y.tolist()


@pytest.mark.parametrize("bad, message", [
    (dict(X=torch.zeros(3)), "2-D"),
    (dict(y=torch.zeros(5, dtype=torch.long)), "one label per row"),
    (dict(C=0.0), "C"),
    (dict(X=torch.full((4, 2), float("nan"))), "finite"),
])
def test_bad_input_is_a_clear_error(bad, message):
    args = dict(X=torch.randn(4, 2), y=torch.tensor([0, 1, 0, 1]), C=1.0) | bad
    with pytest.raises(ValueError, match=message):
        fit_l2svm(args["X"], args["y"], args["C"])
