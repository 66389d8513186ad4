"""One-vs-rest linear L2-SVM (squared hinge), the paper's classifier on frozen features.

Each class ``k`` gets the primal problem that scikit-learn's
``LinearSVC(penalty="l2", loss="squared_hinge", fit_intercept=True, intercept_scaling=1)``
solves (liblinear appends a constant-1 feature, so the intercept is regularised too)::

    P(w, b) = 0.5 * (||w||^2 + b^2) + C * sum_i max(0, 1 - t_i (w . x_i + b))^2

with ``t_i = +1`` for samples of class ``k`` and ``-1`` otherwise.

Two backends return the same :class:`LinearSVM`:

``"torch"`` (default) -- full-batch, all K classes at once as one ``(K, D+1)`` matrix, on
whatever device ``X`` lives on.  Every pass over the data is one skinny GEMM; nothing
loops over samples and ``X`` is never copied (unless it must be cast to float32).
The algorithm, chosen by measurement on CIFAR-10 pixels and random-ReLU features:

* **L-BFGS** (memory 10, per class) on the primal.  The squared hinge is C^1 with a
  piecewise-linear gradient, so quasi-Newton applies directly.  Each iteration costs two
  passes: ``X~ d`` for the line search and ``U^T X~`` for the next gradient.
* **Exact line search**: along ``d`` the objective is a convex piecewise quadratic in the
  step ``t``; it is minimised to round-off from the cached products ``X~ w`` and ``X~ d``
  (safeguarded 1-D Newton, no extra pass over ``X``).
* **Subspace preconditioner** as L-BFGS's initial inverse Hessian: the top-r subspace of
  ``X~^T X~`` (randomised range finder, fixed seed) carries most of the Hessian's scale
  on image features; there ``H0`` is the exact inverse of the projected generalised
  Hessian ``I + 2C V X~^T A_k X~ V^T`` (refreshed every few iterations), off it the
  usual L-BFGS scaling ``s^T y / y^T y`` measured on the complement.  This cut passes
  3-5x against plain L-BFGS; L-BFGS in turn beat a truncated Newton-CG (liblinear's
  primal method, tried first) by 3-20x, most at large C.
* **Continuation in C** from a cold start: solve C/10^j, ..., C/10 loosely first.  Cold
  starts at large C otherwise jump to a tiny active set and crawl back (>10x slower).
* **Stopping on the duality gap**: with ``alpha_i = 2C max(0, 1 - t_i f(x_i))`` (the KKT
  map), the dual objective is available for free from the gradient, so the solver stops
  when every class has ``(P - D) / P <= tol``: a *certificate* that the objective is
  within ``tol`` (relative) of the optimum, whatever C is.
* Matmuls in float32 with TF32 forced off during the solve; weights, objectives, dot
  products and the line search in float64 (all of size ``K x D`` or ``N x K``).

``"sklearn"`` -- the reference, ``sklearn.svm.LinearSVC`` on CPU numpy (float64).

:func:`svm_objective` evaluates ``P`` for any model, so backends compare on equal terms.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, replace

import torch

from benchmarks.classifiers.lbfgs import (
    Augmented,
    SubspaceBasis,
    SubspacePreconditioner,
    default_rank,
    lbfgs,
    primal_objective,
    subspace_basis,
)
from dcgan_ref.runtime.hardware import ieee_fp32_matmul

__all__ = ["LinearSVM", "SubspaceBasis", "fit_l2svm", "subspace_basis", "svm_objective"]


@dataclass
class LinearSVM:
    """A fitted one-vs-rest linear classifier: ``scores = X @ weight.T + bias``.

    ``n_iter`` (L-BFGS iterations, or liblinear's), ``n_passes`` (skinny GEMM passes over
    the data matrix; torch backend), ``converged`` and ``rel_gap`` (largest per-class
    relative duality gap at exit; torch backend, NaN otherwise) describe the solve.
    """

    weight: torch.Tensor  # (K, D) float32
    bias: torch.Tensor  # (K,) float32
    C: float
    n_iter: int = 0
    n_passes: int = 0
    converged: bool = True
    rel_gap: float = math.nan

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    def decision_function(self, X: torch.Tensor) -> torch.Tensor:
        """One-vs-rest scores, ``(N, K)`` float32, on the model's device."""
        X = X.to(device=self.weight.device, dtype=torch.float32)
        return torch.addmm(self.bias, X, self.weight.T)

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Class with the highest score, ``(N,)`` int64 (ties: lowest class index)."""
        return self.decision_function(X).argmax(dim=1)

    def to(self, device: torch.device | str) -> "LinearSVM":
        return replace(self, weight=self.weight.to(device), bias=self.bias.to(device))


# ----------------------------------------------------------------------------- helpers


def _validate(X: torch.Tensor, y: torch.Tensor, C: float, n_classes: int | None) -> int:
    """Raise ValueError on bad inputs; return the number of classes K."""
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError("X and y must be torch tensors")
    if X.dim() != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
    if y.dim() != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must be 1-D with one label per row of X: X has {X.shape[0]} rows, "
            f"y has shape {tuple(y.shape)}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {tuple(X.shape)}")
    if isinstance(C, bool) or not isinstance(C, numbers.Real) or not math.isfinite(C) or C <= 0:
        raise ValueError(f"C must be a finite number > 0, got {C!r}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"y must hold integer class labels 0..K-1, got dtype {y.dtype}")
    if not X.dtype.is_floating_point:
        raise ValueError(f"X must be a floating-point tensor, got dtype {X.dtype}")
    if not _all_finite(X):
        raise ValueError("X contains non-finite values (NaN or inf)")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise ValueError(f"labels must be in 0..K-1, found {lo}")
    K = hi + 1 if n_classes is None else int(n_classes)
    if hi >= K:
        raise ValueError(f"label {hi} out of range for n_classes={K}")
    if K < 2 or int(torch.unique(y).numel()) < 2:
        raise ValueError("need at least 2 classes present in y to fit a classifier")
    return K


def _all_finite(X: torch.Tensor) -> bool:
    """Whether every entry of X is finite, in one GEMV pass.

    A NaN or inf entry makes its row's sum NaN or inf, so finite row sums prove X finite;
    only when a sum is not (a NaN, or a finite overflow) are that row's entries checked.
    (``isfinite`` chunk by chunk took 6 s on 45,000 x 28,672 on 2 cores; the GEMV 0.3 s.)
    """
    sums = X @ torch.ones(X.shape[1], dtype=X.dtype, device=X.device)
    bad = (~torch.isfinite(sums)).nonzero()[:, 0]
    return bool(torch.isfinite(X[bad]).all()) if len(bad) else True


def _targets(y: torch.Tensor, K: int, device: torch.device) -> torch.Tensor:
    """``(N, K)`` float32 matrix of +1 (own class) / -1 (rest)."""
    own = y.to(device=device, dtype=torch.long)[:, None] == torch.arange(K, device=device)
    return torch.where(own, 1.0, -1.0)


def svm_objective(model: LinearSVM, X: torch.Tensor, y: torch.Tensor, C: float) -> torch.Tensor:
    """Primal objective of each one-vs-rest problem, ``(K,)`` float64 (see module doc)."""
    K = _validate(X, y, C, model.n_classes)
    X = X.to(device=model.weight.device, dtype=torch.float32)
    with ieee_fp32_matmul(X.device):
        scores = model.decision_function(X).double()
    hinge = (1.0 - _targets(y, K, X.device).double() * scores).clamp_min(0)
    W = torch.cat([model.weight, model.bias[:, None]], 1)
    return primal_objective(W, hinge, C)


# ----------------------------------------------------------------------------- sklearn


def _fit_sklearn(
    X: torch.Tensor, y: torch.Tensor, C: float, K: int, tol: float, max_iter: int
) -> LinearSVM:
    import numpy as np
    from sklearn.svm import LinearSVC

    present = torch.unique(y).tolist()
    if present != list(range(K)):
        missing = sorted(set(range(K)) - set(present))
        raise ValueError(f"sklearn backend needs every class in y; missing classes {missing}")
    Xn = X.detach().to("cpu", torch.float64).numpy()
    yn = y.detach().cpu().numpy().astype(np.int64)
    clf = LinearSVC(
        penalty="l2", loss="squared_hinge", dual="auto", C=C, tol=tol,
        fit_intercept=True, intercept_scaling=1.0, multi_class="ovr", max_iter=max_iter,
    )
    clf.fit(Xn, yn)
    coef = torch.from_numpy(clf.coef_).float()
    icpt = torch.from_numpy(np.atleast_1d(clf.intercept_)).float()
    if K == 2:  # liblinear fits one problem (class 1 positive); OvR for class 0 is its mirror
        coef, icpt = torch.cat([-coef, coef]), torch.cat([-icpt, icpt])
    n_iter = int(np.max(clf.n_iter_))
    return LinearSVM(
        weight=coef.to(X.device), bias=icpt.to(X.device), C=float(C),
        n_iter=n_iter, n_passes=0, converged=n_iter < max_iter,
    )


# ----------------------------------------------------------------------------- entry point


def fit_l2svm(X: torch.Tensor, y: torch.Tensor, C: float, *, n_classes: int | None = None, backend: str = "torch",
              init: LinearSVM | None = None, tol: float = 1e-4, max_iter: int | None = None, memory: int = 10,
              precond_rank: int | None = None, basis: SubspaceBasis | None = None,
              continuation: bool = True) -> LinearSVM:
    """Fit a one-vs-rest squared-hinge L2-SVM on features ``X`` (N, D), labels ``y`` in 0..K-1.

    Args:
        C: misclassification cost per sample, as in ``LinearSVC`` (no 1/N factor).
        n_classes: K; default ``y.max() + 1``.  A class absent from ``y`` gets an
            all-negative problem (torch backend; sklearn raises).
        backend: ``"torch"`` (L-BFGS on ``X``'s device) or ``"sklearn"`` (LinearSVC).
        init: warm start for the torch backend, e.g. the solution at a neighbouring C.
        tol: torch: stop when every class's relative duality gap ``(P - D) / P`` is
            ``<= tol``, which bounds its objective's distance to the optimum.  sklearn:
            passed to LinearSVC (liblinear's own criterion; use ~1e-6 for a reference).
        max_iter: L-BFGS iterations in all (default 2000; two passes over ``X`` each), or
            liblinear's (default 100,000).
        memory: L-BFGS history length.
        precond_rank: rank of the subspace preconditioner (0 = plain L-BFGS); default
            256 on CUDA, 128 on CPU.
        basis: the preconditioner's subspace from :func:`subspace_basis` on this same X
            (a sweep over C shares one); its rank overrides ``precond_rank``.
        continuation: from a cold start (or a warm start at a C more than 10x smaller),
            first solve C/10^j, ..., C/10 to a relative gap of 1e-2, starting near
            ``1 / mean ||x~||^2``; ``n_iter``/``n_passes`` count the whole path.

    Returns a :class:`LinearSVM` on ``X``'s device (float32), with ``n_iter``,
    ``n_passes``, ``converged`` and ``rel_gap`` set; warns if not converged.  The torch
    backend is deterministic given its inputs and device.
    """
    K = _validate(X, y, C, n_classes)
    C = float(C)
    if not tol > 0 or (max_iter is not None and max_iter < 1) or memory < 1:
        raise ValueError("tol must be > 0, max_iter and memory >= 1")
    if backend == "sklearn":
        return _fit_sklearn(X, y, C, K, tol, max_iter or 100_000)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}: use 'torch' or 'sklearn'")

    X = X.detach()
    if X.dtype != torch.float32:
        X = X.float()
    W = _initial_weights(X, K, init)
    rank = _rank(X, precond_rank, basis)
    path = _c_path(X, C, init, continuation)
    budget = max_iter or 2000
    with torch.no_grad(), ieee_fp32_matmul(X.device):
        data = Augmented(X)
        pre = SubspacePreconditioner(data, rank, basis)
        T = _targets(y, K, X.device)
        n_iter = 0
        for i, C_i in enumerate(path):
            last = i == len(path) - 1
            res = lbfgs(
                data, pre, T, C_i, W, tol=tol if last else max(tol, 1e-2),
                max_iter=max(budget - n_iter, 1), memory=memory,
            )
            W, n_iter = res.W, n_iter + res.n_iter
        res = replace(res, n_iter=n_iter)
    if not res.converged:
        warnings.warn(
            f"L2-SVM (C={C:g}) stopped after {res.n_iter} iterations with relative duality "
            f"gap {res.rel_gap:.2e} > tol={tol:g}", RuntimeWarning, stacklevel=2,
        )
    W = res.W.float()
    return LinearSVM(
        weight=W[:, :-1].contiguous(), bias=W[:, -1].contiguous(), C=C,
        n_iter=res.n_iter, n_passes=res.n_passes, converged=res.converged,
        rel_gap=res.rel_gap,
    )


def _initial_weights(X: torch.Tensor, K: int, init: LinearSVM | None) -> torch.Tensor:
    """Augmented (K, D+1) float64 weights: ``init``'s (a warm start), else zeros."""
    D = X.shape[1]
    if init is None:
        return torch.zeros(K, D + 1, dtype=torch.float64, device=X.device)
    if tuple(init.weight.shape) != (K, D) or tuple(init.bias.shape) != (K,):
        raise ValueError(
            f"init has weight {tuple(init.weight.shape)}, bias {tuple(init.bias.shape)}; "
            f"expected ({K}, {D}) and ({K},)"
        )
    return torch.cat([init.weight.detach(), init.bias.detach()[:, None]], 1).to(X.device, torch.float64)


def _rank(X: torch.Tensor, precond_rank: int | None, basis: SubspaceBasis | None) -> int:
    """The subspace preconditioner's rank: a shared basis's, else the asked or default rank."""
    (N, D), device = X.shape, X.device
    if basis is not None:
        if (basis.n_rows, basis.n_features) != (N, D) or basis.Z.device != device:
            raise ValueError(f"basis was computed for a {basis.n_rows} x {basis.n_features} matrix on "
                             f"{basis.Z.device}; X is {N} x {D} on {device}")
        return basis.rank
    rank = default_rank(N, D, device) if precond_rank is None else int(precond_rank)
    return max(0, min(rank, N, D + 1))


def _c_path(X: torch.Tensor, C: float, init: LinearSVM | None, continuation: bool) -> list[float]:
    """The C values solved in turn, ending at C.

    Continuation: from a cold start, or a warm start at a much smaller C, solve a path
    of C values 10x apart to a loose gap first.  A cold start at large C otherwise
    overshoots to a tiny active set and crawls back (measured: >10x more passes).
    """
    if init is not None:
        C_from = init.C
    else:  # where a cold start is easy: C * mean ||x~||^2 ~ 1
        C_from = 1.0 / (float(torch.linalg.vector_norm(X, dim=1).square().mean()) + 1.0)
    path = [C]
    if continuation:
        while path[0] / 10.0 > C_from:
            path.insert(0, path[0] / 10.0)
    return path
