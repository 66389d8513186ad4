"""One-vs-rest linear L2-SVM (squared hinge), the paper's classifier on frozen features.

Each class ``k`` gets the primal problem that scikit-learn's
``LinearSVC(penalty="l2", loss="squared_hinge", fit_intercept=True, intercept_scaling=1)``
solves (liblinear appends a constant-1 feature, so the intercept is regularised too)::

    min_{w, b}  0.5 * (||w||^2 + b^2) + C * sum_i max(0, 1 - t_i (w . x_i + b))^2

with ``t_i = +1`` for samples of class ``k`` and ``-1`` otherwise.

Two backends return the same :class:`LinearSVM`:

* ``"torch"`` (default): a full-batch truncated Newton method on whatever device ``X``
  lives on, all K classes at once as a ``(D+1, K)`` matrix.  The squared hinge is
  continuously differentiable with a piecewise-linear gradient, so Newton's method on
  the *generalised* Hessian ``I + 2C X~^T A X~`` (``A`` = active rows) converges in a
  few dozen outer steps (Keerthi & DeCoste 2005; liblinear's primal solver).  Newton
  directions come from batched conjugate gradient (one Hessian-vector product = two
  skinny GEMMs over ``X``), and each step length is the *exact* minimiser along the
  direction, found from the cached products ``X~ w`` and ``X~ d`` without touching ``X``
  again.  Matmuls run in float32 (TF32 is switched off for the duration of the solve);
  objectives, norms and the line search use float64.  No diagonal preconditioner: on
  standardised features the Hessian's diagonal is nearly constant, so it would cost a
  squared copy of ``X`` for little gain.
* ``"sklearn"``: the reference, ``sklearn.svm.LinearSVC`` on CPU numpy.

:func:`svm_objective` evaluates the primal objective of any model, so the two backends
can be compared on equal terms.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from typing import Iterator

import torch

__all__ = ["LinearSVM", "fit_l2svm", "svm_objective"]


@dataclass
class LinearSVM:
    """A fitted one-vs-rest linear classifier: ``scores = X @ weight.T + bias``.

    ``n_iter`` (outer Newton iterations, or liblinear's iteration count), ``n_passes``
    (GEMM passes over the data matrix; torch backend only) and ``converged`` describe
    the solve that produced the model.
    """

    weight: torch.Tensor  # (K, D) float32
    bias: torch.Tensor  # (K,) float32
    C: float
    n_iter: int = 0
    n_passes: int = 0
    converged: bool = True

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


# ----------------------------------------------------------------------------- checks


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
    if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
        raise ValueError(f"C must be a finite number > 0, got {C!r}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"y must hold integer class labels 0..K-1, got dtype {y.dtype}")
    if not X.dtype.is_floating_point:
        raise ValueError(f"X must be a floating-point tensor, got dtype {X.dtype}")
    if not bool(torch.isfinite(X).all()):
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


@contextlib.contextmanager
def _ieee_fp32_matmul(device: torch.device) -> Iterator[None]:
    """Force full-precision float32 GEMMs on CUDA (no TF32) for the solve; restore after.

    Uses the ``fp32_precision`` API where it exists (torch >= 2.9): mixing it with the
    legacy ``allow_tf32`` flag is an error in recent torch, and reading/writing only the
    new one is safe whichever API the caller used.
    """
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    try:
        old = matmul.fp32_precision
        attr, value = "fp32_precision", "ieee"
    except AttributeError:  # older torch
        old = matmul.allow_tf32
        attr, value = "allow_tf32", False
    setattr(matmul, attr, value)
    try:
        yield
    finally:
        setattr(matmul, attr, old)


# ----------------------------------------------------------------------------- objective


def _objective(W: torch.Tensor, b: torch.Tensor, margin: torch.Tensor, C: float) -> torch.Tensor:
    """Per-class primal objective (float64) from weights and ``margin = 1 - t * score``."""
    reg = 0.5 * (W.double().square().sum(1) + b.double().square())
    return reg + C * margin.double().clamp_min(0).square().sum(0)


def _targets(y: torch.Tensor, K: int, device: torch.device) -> torch.Tensor:
    """``(N, K)`` float32 matrix of +1 (own class) / -1 (rest)."""
    y = y.to(device=device, dtype=torch.long)
    T = torch.full((y.shape[0], K), -1.0, device=device)
    T[torch.arange(y.shape[0], device=device), y] = 1.0
    return T


def svm_objective(model: LinearSVM, X: torch.Tensor, y: torch.Tensor, C: float) -> torch.Tensor:
    """Primal objective of each one-vs-rest problem, ``(K,)`` float64 (see module doc)."""
    K = _validate(X, y, C, model.n_classes)
    X = X.to(device=model.weight.device, dtype=torch.float32)
    with _ieee_fp32_matmul(X.device):
        scores = model.decision_function(X)
    margin = 1.0 - _targets(y, K, X.device) * scores
    return _objective(model.weight, model.bias, margin, C)


# ----------------------------------------------------------------------------- torch solver


class _Augmented:
    """The data matrix with a constant-1 column appended, ``X~ = [X, 1]``, never materialised.

    Vectors in weight space are rows of a ``(m, D+1)`` matrix (last entry = bias).  Counts
    the skinny passes over ``X`` it makes (``passes``).
    """

    def __init__(self, X: torch.Tensor) -> None:
        self.X = X
        self.passes = 0

    def fwd(self, V: torch.Tensor) -> torch.Tensor:
        """``X~ V^T``: (N, m) for V (m, D+1)."""
        self.passes += 1
        return torch.addmm(V[:, -1], self.X, V[:, :-1].T)

    def bwd(self, U: torch.Tensor) -> torch.Tensor:
        """``U^T X~``: (m, D+1) for U (N, m).  (``U^T X``, not ``X^T U``: ~2.5x faster on CPU.)"""
        self.passes += 1
        return torch.cat([U.T @ self.X, U.sum(0)[:, None]], dim=1)


class _SubspacePreconditioner:
    """``P_k = I + V^T M_k V`` with ``M_k = 2C V X~^T A_k X~ V^T``, per class ``k``.

    ``V`` (r, D+1) is an orthonormal basis of the dominant r-dimensional subspace of
    ``X~^T X~`` (randomised range finder, one power iteration, fixed seed).  ``P_k``
    equals the generalised Hessian on that subspace and the identity off it, so CG only
    has to resolve the (much flatter) rest of the spectrum: on image-like features the
    top few hundred directions carry almost all of the Hessian's scale.  Applying
    ``P_k^{-1} = I + V^T ((I + M_k)^{-1} - I) V`` costs two (K, D) x (D, r) products.
    """

    def __init__(self, data: _Augmented, rank: int) -> None:
        X = data.X
        gen = torch.Generator(device=X.device).manual_seed(0)
        omega = torch.randn(rank, X.shape[1] + 1, generator=gen, device=X.device)
        V = omega
        for _ in range(2):  # range finder + one power iteration
            V = data.bwd(data.fwd(V))
            V = torch.linalg.qr(V.double().T)[0].T.float().contiguous()
        data.passes -= 4  # fat GEMMs: not counted as skinny passes
        self.V = V
        self.Z = data.fwd(V)  # (N, r) = X~ V^T
        data.passes -= 1
        self.chol: torch.Tensor | None = None

    def update(self, active: torch.Tensor, C: float) -> None:
        """Refresh ``(I + M_k)`` factors for the current active sets ``active`` (N, K)."""
        r = self.V.shape[0]
        M = torch.stack([(self.Z * a[:, None]).T @ self.Z for a in active.T.float()])
        eye = torch.eye(r, dtype=torch.float64, device=M.device)
        self.chol = torch.linalg.cholesky(eye + 2.0 * C * M.double())

    def apply(self, R: torch.Tensor) -> torch.Tensor:
        c = (R @ self.V.T).double()[:, :, None]  # (K, r, 1)
        e = torch.cholesky_solve(c, self.chol) - c
        return R + e[:, :, 0].float() @ self.V


def _exact_step(
    wd: torch.Tensor, dd: torch.Tensor, margin: torch.Tensor, s: torch.Tensor, C: float,
    max_iter: int = 60,
) -> torch.Tensor:
    """Per-class minimiser ``t > 0`` of ``phi(t) = f(w + t d)`` (all float64).

    With ``margin = 1 - t * X~ w`` and ``s = t * X~ d`` (t: the +-1 targets), the objective
    along ``d`` is ``0.5||w||^2 + t <w,d> + 0.5 t^2 ||d||^2 + C sum (margin - t s)_+^2``:
    convex and piecewise quadratic, so safeguarded 1-D Newton on ``phi'`` is exact once it
    lands in the right piece.  ``phi'(0) < 0`` for a descent direction; the bracket
    ``[lo, hi]`` keeps it from cycling.
    """
    t = torch.ones_like(wd)
    lo = torch.zeros_like(wd)
    hi = torch.full_like(wd, math.inf)
    slope0 = (wd - 2.0 * C * (s * margin.clamp_min(0)).sum(0)).abs()
    for _ in range(max_iter):
        r = margin - t * s  # (N, K)
        act = r > 0
        slope = wd + t * dd - 2.0 * C * (s * r * act).sum(0)
        if bool((slope.abs() <= 1e-12 * slope0).all()):
            break
        curv = dd + 2.0 * C * (s.square() * act).sum(0)
        lo = torch.where(slope < 0, t, lo)
        hi = torch.where(slope > 0, t, hi)
        t_new = t - slope / curv
        inside = (t_new > lo) & (t_new < hi)
        t = torch.where(inside, t_new, torch.where(torch.isinf(hi), 2.0 * t, 0.5 * (lo + hi)))
    return t


def _default_rank(n: int, d: int) -> int:
    """Preconditioner rank: 256, less when D is small (its per-step cost grows as r^2 / D)."""
    return int(min(256, d // 12))


import os
_DEBUG = bool(os.environ.get('DEBUG_SVM'))


@dataclass
class _Result:
    W: torch.Tensor  # (K, D+1), last column = bias
    n_iter: int
    n_passes: int
    converged: bool


def _newton_cg(
    X: torch.Tensor, T: torch.Tensor, C: float, W: torch.Tensor,
    tol: float, max_iter: int, max_cg_iter: int, precond_rank: int,
) -> _Result:
    """Truncated Newton with batched (preconditioned) CG and exact line search.

    ``W`` (K, D+1) is the start; ``T`` (N, K) the +-1 targets.  Stops when every class's
    gradient norm is ``<= tol`` times its norm at ``w = 0`` (liblinear's reference point,
    so a warm start does not tighten the criterion), or when float32 round-off stops the
    objective from decreasing.
    """
    data = _Augmented(X)
    pre = _SubspacePreconditioner(data, precond_rank) if precond_rank > 0 else None

    def norm(R: torch.Tensor) -> torch.Tensor:  # per class, float64
        return R.double().square().sum(1).sqrt()

    g0 = norm(data.bwd(-2.0 * C * T))  # gradient at w = 0
    T64 = T.double()
    scores = data.fwd(W).double()  # (N, K), kept in float64 and updated along steps
    margin = 1.0 - T64 * scores
    f = _objective(W[:, :-1], W[:, -1], margin, C)
    for it in range(max_iter):
        active = margin > 0
        G = W + data.bwd((-2.0 * C * T64 * margin * active).float())
        gnorm = norm(G)
        todo = gnorm > tol * g0
        if not bool(todo.any()):
            return _Result(W, it, data.passes, True)
        # Batched PCG on (I + 2C X~^T A X~) d = -g; column k stops at ||r_k|| <= eta ||g_k||.
        A = active.float()
        if pre is not None:
            pre.update(A, C)
        stop = 0.1 * gnorm  # CG tolerance as liblinear's TRON (eps_cg = 0.1)
        R = -G
        Dir = torch.zeros_like(W)
        Zr = pre.apply(R) if pre is not None else R
        P = Zr.clone()
        rz = (R.double() * Zr.double()).sum(1)
        cg = 0
        for cg in range(max_cg_iter):
            live = (norm(R) > stop) & todo
            if not bool(live.any()):
                break
            HP = P + 2.0 * C * data.bwd(A * data.fwd(P))  # active rows only
            alpha = torch.where(live, rz / (P.double() * HP.double()).sum(1), 0.0)
            Dir += alpha.float()[:, None] * P
            R -= alpha.float()[:, None] * HP
            Zr = pre.apply(R) if pre is not None else R
            rz_new = (R.double() * Zr.double()).sum(1)
            beta = torch.where(live, rz_new / rz, 0.0)
            rz = rz_new
            P = Zr + beta.float()[:, None] * P
        if _DEBUG:
            print(f"it {it} cg {cg} passes {data.passes} g/g0 {(gnorm/g0).max().item():.1e} f {f.sum().item():.6f} act {A.mean().item():.3f}", flush=True)
        # Exact line search from cached products: one pass for X~ d, none for the search.
        q = data.fwd(Dir).double()
        wd = (W.double() * Dir.double()).sum(1)
        t = _exact_step(wd, norm(Dir).square(), margin, T64 * q, C)
        t = torch.where(todo, t, 0.0)
        W = W + t.float()[:, None] * Dir
        scores = scores + t * q
        margin = 1.0 - T64 * scores
        f_new = _objective(W[:, :-1], W[:, -1], margin, C)
        stalled = bool(((f - f_new) <= 1e-12 * f.abs()).logical_or(~todo).all())
        f = f_new
        if stalled:  # round-off floor reached before the gradient tolerance
            return _Result(W, it + 1, data.passes, False)
    return _Result(W, max_iter, data.passes, False)


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


def fit_l2svm(
    X: torch.Tensor,
    y: torch.Tensor,
    C: float,
    *,
    n_classes: int | None = None,
    backend: str = "torch",
    init: LinearSVM | None = None,
    tol: float = 1e-4,
    max_iter: int | None = None,
    max_cg_iter: int = 1000,
    precond_rank: int | None = None,
) -> LinearSVM:
    """Fit a one-vs-rest squared-hinge L2-SVM on features ``X`` (N, D), labels ``y`` in 0..K-1.

    Args:
        C: misclassification cost, per sample, as in ``LinearSVC`` (no 1/N factor).
        n_classes: K; default ``y.max() + 1``.  Classes absent from ``y`` get an
            all-negative problem (torch backend only).
        backend: ``"torch"`` (Newton-CG on ``X``'s device) or ``"sklearn"`` (LinearSVC).
        init: warm start (torch backend), e.g. the solution for a neighbouring C.
        tol: torch: stop when every class's gradient norm is ``<= tol`` times its norm at
            ``w = 0``.  sklearn: passed to LinearSVC (liblinear's own criterion).
        max_iter: outer Newton iterations (torch) or liblinear iterations (sklearn).
        max_cg_iter: CG iterations per Newton step (torch).

    Returns a :class:`LinearSVM` on ``X``'s device with ``n_iter``, ``n_passes`` and
    ``converged`` set.  The torch backend is deterministic given its inputs.
    """
    K = _validate(X, y, C, n_classes)
    C = float(C)
    if not (tol > 0 and (max_iter is None or max_iter >= 1) and max_cg_iter >= 1):
        raise ValueError("tol must be > 0, max_iter and max_cg_iter >= 1")
    if backend == "sklearn":
        return _fit_sklearn(X, y, C, K, tol, max_iter or 100_000)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}: use 'torch' or 'sklearn'")

    X = X.detach()
    if X.dtype != torch.float32:
        X = X.float()
    device = X.device
    D = X.shape[1]
    if init is not None:
        if tuple(init.weight.shape) != (K, D) or tuple(init.bias.shape) != (K,):
            raise ValueError(
                f"init has weight {tuple(init.weight.shape)}, bias {tuple(init.bias.shape)}; "
                f"expected ({K}, {D}) and ({K},)"
            )
        W = torch.cat([init.weight.detach(), init.bias.detach()[:, None]], 1)
        W = W.to(device, torch.float32)
    else:
        W = torch.zeros(K, D + 1, device=device)
    if precond_rank is None:
        precond_rank = _default_rank(*X.shape)
    precond_rank = max(0, min(int(precond_rank), X.shape[0], D + 1))
    T = _targets(y, K, device)
    with torch.no_grad(), _ieee_fp32_matmul(device):
        res = _newton_cg(X, T, C, W, tol, max_iter or 100, max_cg_iter, precond_rank)
    return LinearSVM(
        weight=res.W[:, :-1].contiguous(), bias=res.W[:, -1].contiguous(), C=C,
        n_iter=res.n_iter, n_passes=res.n_passes, converged=res.converged,
    )
