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


def _exact_step(
    wd: torch.Tensor, dd: torch.Tensor, margin: torch.Tensor, s: torch.Tensor, C: float,
    max_iter: int = 60,
) -> torch.Tensor:
    """Per-column minimiser ``t >= 0`` of ``phi(t) = f(w + t d)`` (all float64).

    With ``m = 1 - t*o`` (current margins) and ``s = t*(X~ d)``, the objective along ``d``
    is ``0.5||w||^2 + t <w,d> + 0.5 t^2 ||d||^2 + C sum (m_i - t s_i)_+^2``: convex and
    piecewise quadratic, so safeguarded 1-D Newton finds the root of ``phi'`` exactly once
    it lands in the right piece.  ``phi'(0) < 0`` for a descent direction; the bracket
    ``[lo, hi]`` keeps the iteration from cycling.
    """
    K = wd.shape[0]
    t = torch.ones(K, dtype=torch.float64, device=wd.device)
    lo = torch.zeros_like(t)
    hi = torch.full_like(t, math.inf)
    d0 = None
    for _ in range(max_iter):
        r = margin - t * s  # (N, K)
        act = r > 0
        d1 = wd + t * dd - 2.0 * C * (s * r * act).sum(0)
        d2 = dd + 2.0 * C * (s.square() * act).sum(0)
        if d0 is None:
            d0 = (wd - 2.0 * C * (s * margin.clamp_min(0)).sum(0)).abs()
        if bool((d1.abs() <= 1e-12 * d0 + 1e-300).all()):
            break
        lo = torch.where(d1 < 0, t, lo)
        hi = torch.where(d1 > 0, t, hi)
        t_new = t - d1 / d2
        inside = (t_new > lo) & (t_new < hi)
        fallback = torch.where(torch.isinf(hi), 2.0 * t, 0.5 * (lo + hi))
        t = torch.where(inside, t_new, fallback)
    return t


def _fit_torch(
    X: torch.Tensor, T: torch.Tensor, C: float, W: torch.Tensor, b: torch.Tensor,
    tol: float, max_iter: int, max_cg_iter: int,
) -> tuple[torch.Tensor, torch.Tensor, int, int, bool]:
    """Truncated Newton-CG with exact line search; returns (W (K,D), b, iters, passes, ok)."""
    passes = 0

    def fwd(V: torch.Tensor, vb: torch.Tensor) -> torch.Tensor:  # X~ v: (N, K)
        nonlocal passes
        passes += 1
        return torch.addmm(vb, X, V.T)

    def bwd(U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # X~^T u: (K, D), (K,)
        nonlocal passes
        passes += 1
        return U.T @ X, U.sum(0)  # U^T X, not X^T U: the latter is ~2.5x slower on CPU

    def norm(A: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # per class, float64
        return (A.double().square().sum(1) + a.double().square()).sqrt()

    # Reference gradient norm at w = 0 (as liblinear): independent of any warm start.
    g0W, g0b = bwd(-2.0 * C * T)
    g0 = norm(g0W, g0b)

    scores = fwd(W, b).double()
    T64 = T.double()
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        margin = 1.0 - T64 * scores  # (N, K) float64
        active = margin > 0
        U = (-2.0 * C * T64 * margin * active).float()
        gW, gb = bwd(U)
        gW += W
        gb += b
        gnorm = norm(gW, gb)
        todo = gnorm > tol * g0
        if not bool(todo.any()):
            converged = True
            it -= 1
            break
        # --- batched CG on (I + 2C X~^T A X~) d = -g, one column per class.
        A = active.float()
        eta = torch.clamp(torch.sqrt(gnorm / g0), max=0.5)  # forcing term (superlinear)
        rW, rb = -gW, -gb
        dW, db = torch.zeros_like(W), torch.zeros_like(b)
        pW, pb = rW.clone(), rb.clone()
        rr = norm(rW, rb).square()
        stop = eta * gnorm
        for _ in range(max_cg_iter):
            live = (rr.sqrt() > stop) & todo
            if not bool(live.any()):
                break
            HpW, Hpb = bwd(A * fwd(pW, pb))  # generalised Hessian: active rows only
            HpW = pW + 2.0 * C * HpW
            Hpb = pb + 2.0 * C * Hpb
            pHp = (pW.double() * HpW.double()).sum(1) + pb.double() * Hpb.double()
            alpha = torch.where(live, rr / pHp, torch.zeros_like(rr)).float()[:, None]
            dW += alpha * pW
            db += alpha[:, 0] * pb
            rW -= alpha * HpW
            rb -= alpha[:, 0] * Hpb
            rr_new = norm(rW, rb).square()
            beta = torch.where(live, rr_new / rr, torch.zeros_like(rr)).float()[:, None]
            rr = rr_new
            pW = rW + beta * pW
            pb = rb + beta[:, 0] * pb
        import os
        if os.environ.get("DEBUG_SVM"):
            print(it, passes, f"{(gnorm/g0).max().item():.2e}", _objective(W, b, margin, C).sum().item(), flush=True)
        # --- exact line search along d from cached products (no pass over X beyond X~ d).
        q = fwd(dW, db).double()
        wd = (W.double() * dW.double()).sum(1) + b.double() * db.double()
        dd = norm(dW, db).square()
        t = _exact_step(wd, dd, margin, T64 * q, C)
        t = torch.where(todo, t, torch.zeros_like(t))
        W = W + t.float()[:, None] * dW
        b = b + t.float() * db
        scores = scores + t * q
    return W, b, it, passes, converged


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
    max_iter: int = 100,
    max_cg_iter: int = 500,
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
    if not (tol > 0 and max_iter >= 1 and max_cg_iter >= 1):
        raise ValueError("tol must be > 0, max_iter and max_cg_iter >= 1")
    if backend == "sklearn":
        return _fit_sklearn(X, y, C, K, tol, max_iter * 1000)
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
        W = init.weight.detach().to(device, torch.float32).clone()
        b = init.bias.detach().to(device, torch.float32).clone()
    else:
        W = torch.zeros(K, D, device=device)
        b = torch.zeros(K, device=device)
    T = _targets(y, K, device)
    with torch.no_grad(), _ieee_fp32_matmul(device):
        W, b, n_iter, passes, ok = _fit_torch(X, T, C, W, b, tol, max_iter, max_cg_iter)
    return LinearSVM(
        weight=W, bias=b, C=C, n_iter=n_iter, n_passes=passes, converged=ok
    )
