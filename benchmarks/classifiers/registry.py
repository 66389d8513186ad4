"""The classifiers a protocol fits on features, behind one interface: ``sweep`` returns a
fitted predictor per hyperparameter value, so choosing it on validation is one call.

``CLASSIFIERS`` maps the ``--classifier`` names to them; each names the preset field that
holds its grid.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Protocol, Sequence

import torch

from benchmarks.classifiers import hinge, svm
from benchmarks.classifiers.knn import KNNClassifier

Predictor = Callable[[torch.Tensor], torch.Tensor]


class Classifier(Protocol):
    name: str         # as shown in tables
    hyper: str        # the hyperparameter chosen on validation
    preset_grid: str  # the Preset field holding its grid

    def sweep(self, x: torch.Tensor, y: torch.Tensor, grid: Sequence[Any],
              until: Callable[[Any, Predictor], bool] | None = None,
              thin: "ThinFactor | None" = None) -> dict[Any, Predictor]:
        """One fitted predictor per grid value (warm-started where that helps), in the
        grid's order; ``until(value, predictor)`` returning True ends the sweep early.
        ``thin``: ``x``'s thin factor when the caller has it already (see :func:`thin_factor`)."""

    def diagnostics(self) -> list[dict[str, Any]]:
        """One record per fit since construction (solver convergence etc.)."""


THIN_ABOVE = 1.2  # features per row above which the other losses fit on the thin factor


class ThinFactor:
    """``X = F Q^T`` for ``X`` (n, d) with n < d: ``Q`` (d, n) orthonormal columns, ``F`` (n, n).

    Why: a linear model's scores ``X w`` and its penalty ``||w||^2`` depend on ``w`` only
    through its part in the row space of X (the rest adds penalty and no score), so any loss
    with an L2 penalty has its optimum at ``w = Q v``, with ``v`` the optimum on ``F`` at the
    same C, bias unchanged (penalised or not). Same singular values, so about the same
    conditioning, and each pass d/n times cheaper (7x for 4,000 label-draw rows x 28,672
    features). L-BFGS's stopping rule is not rotation-invariant, so iteration counts differ:
    hinge at C = 1e-4 there took 534 iterations and 17 s instead of 332 and 78 s (2 cores).
    """

    def __init__(self, X: torch.Tensor) -> None:
        Q, R = torch.linalg.qr(X.detach().float().T)  # Householder: no squared condition number
        self.Q, self.F = Q, R.T.contiguous()

    def full_model(self, thin: svm.LinearSVM) -> svm.LinearSVM:
        return dataclasses.replace(thin, weight=(thin.weight @ self.Q.T).contiguous())


def thin_factor(x: torch.Tensor) -> "ThinFactor | None":
    """The thin factor of a wide matrix (more than ``THIN_ABOVE`` features per row), else None."""
    return ThinFactor(x) if x.shape[1] > THIN_ABOVE * len(x) else None


class _LinearSweep:
    """The one sweep loop of the linear classifiers: C from small to large, each fit warm-started
    from the last, on the thin factor when there are fewer rows than features (:class:`ThinFactor`;
    the label draws: 4,000 x 28,672 gives the same optimum, each pass d/n times cheaper), each fit a
    :class:`benchmarks.classifiers.svm.LinearSVM` (its ``predict`` is the predictor). A loss
    supplies ``_fit``, and ``_prepare`` for what every C of one sweep shares."""
    hyper, preset_grid = "C", "C_grid"
    name = ""

    def __init__(self, n_classes: int, log=print, quiet_below_s: float = 5.0) -> None:
        self.n_classes, self.log, self.quiet_below_s = n_classes, log, quiet_below_s
        self._fits: list[dict[str, Any]] = []

    def _thin_ok(self) -> bool:
        return True

    def _prepare(self, fx: torch.Tensor) -> None:
        pass

    def _fit(self, fx, y, c: float, prev: svm.LinearSVM | None) -> svm.LinearSVM:
        raise NotImplementedError

    def _record(self, fit: svm.LinearSVM, fx: torch.Tensor, seconds: float) -> dict[str, Any]:
        """Fields of one fit's diagnostics beyond the common ones, and its progress words."""
        return {}

    def _words(self, fit: svm.LinearSVM, record: dict[str, Any]) -> str:
        return f"{fit.n_iter} iterations, {record['seconds']:.1f} s"

    def sweep(self, x, y, grid, until=None, thin=None):
        models, prev = {}, None
        t0 = time.perf_counter()
        thin = None if not self._thin_ok() else thin if thin is not None else thin_factor(x)
        fx = thin.F if thin is not None else x
        self._prepare(fx)
        setup_s = time.perf_counter() - t0
        if thin is not None and setup_s >= self.quiet_below_s:
            self.log(f"    {self.name}: thin factor (QR of {len(x):,} x {x.shape[1]:,}) in {setup_s:.1f} s")
        for c in sorted(grid):
            t0 = time.perf_counter()
            prev = self._fit(fx, y, c, prev)  # in the thin coordinates when there are any: warm starts stay there
            model = thin.full_model(prev) if thin is not None else prev
            seconds = time.perf_counter() - t0
            record = {"C": c, "n_train": len(x), "fit_dim": fx.shape[1], "setup_s": setup_s, "n_iter": prev.n_iter,
                      "converged": prev.converged, "rel_gap": float("nan"), "seconds": seconds}
            record |= self._record(prev, fx, seconds)
            self._fits.append(record)
            setup_s = 0.0  # the sweep's one set-up: on its first fit's record
            if seconds >= self.quiet_below_s:  # a long sweep says where it is; a fast one stays quiet
                self.log(f"    {self.name} C={c:g} on {len(x):,} x {x.shape[1]:,}"
                         f"{f' (as {len(x):,} x {fx.shape[1]:,})' if thin is not None else ''}: "
                         f"{self._words(prev, record)}")
            models[c] = model.predict
            if until is not None and until(c, model.predict):
                break
        return models

    def diagnostics(self):
        return list(self._fits)


class L2SVMClassifier(_LinearSweep):
    name = "L2-SVM"

    def __init__(self, n_classes: int, backend: str = "torch", log=print, quiet_below_s: float = 5.0) -> None:
        super().__init__(n_classes, log, quiet_below_s)
        self.backend = backend
        self._basis = None

    def _thin_ok(self) -> bool:
        return self.backend == "torch"  # the CPU reference solver takes the features as they are

    def _prepare(self, fx):
        # The preconditioner's subspace depends on x alone: computed once, shared by every C.
        self._basis = svm.subspace_basis(fx) if self.backend == "torch" else None

    def _fit(self, fx, y, c, prev):
        return svm.fit_l2svm(fx, y, c, n_classes=self.n_classes, backend=self.backend, init=prev, basis=self._basis)

    def _record(self, fit, fx, seconds):
        # each pass streams the (thin) feature matrix once: its rate against the memory's read limit
        return {"n_passes": fit.n_passes, "rel_gap": fit.rel_gap,
                "read_gbps": fit.n_passes * fx.numel() * fx.element_size() / max(seconds, 1e-9) / 1e9}

    def _words(self, fit, record):
        return (f"{fit.n_iter} iterations, {fit.n_passes} passes, gap {fit.rel_gap:.1e}, {record['seconds']:.1f} s "
                f"({record['read_gbps']:.1f} GB/s of feature reads)")


class HingeSVMClassifier(_LinearSweep):
    """One-vs-rest linear SVM with the plain hinge (``benchmarks.classifiers.hinge``)."""
    name = "hinge SVM"

    def _fit(self, x, y, c, prev):
        init = None if prev is None else torch.cat([prev.weight, prev.bias[:, None]], 1).double()
        W, n_iter = hinge.fit_hinge(x, y, c, self.n_classes, init=init)
        return svm.LinearSVM(W[:, :-1].float().contiguous(), W[:, -1].float().contiguous(), c, n_iter=n_iter)


class LogisticClassifier(_LinearSweep):
    """Multinomial logistic regression (scikit-learn's L-BFGS on CPU; the same per-sample C
    convention as the SVMs)."""
    name = "logistic regression"

    def _fit(self, x, y, c, prev):
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, tol=1e-4, max_iter=1000).fit(x.detach().cpu().numpy(), y.cpu().numpy())
        classes = torch.from_numpy(model.classes_).long()
        coef = torch.from_numpy(np.asarray(model.coef_, dtype=np.float32))
        icpt = torch.from_numpy(np.atleast_1d(np.asarray(model.intercept_, dtype=np.float32)))
        if len(classes) == 2:  # scikit-learn fits one score for two classes
            coef, icpt = torch.cat([-coef, coef]), torch.cat([-icpt, icpt])
        # A class absent from the labels gets no row from scikit-learn: it is never predicted.
        weight = torch.zeros(self.n_classes, x.shape[1])
        bias = torch.full((self.n_classes,), -math.inf)
        weight[classes], bias[classes] = coef, icpt
        n_iter = int(np.max(model.n_iter_))
        return svm.LinearSVM(weight.to(x.device), bias.to(x.device), c, n_iter=n_iter, converged=n_iter < 1000)


CLASSIFIERS: dict[str, type] = {"svm": L2SVMClassifier, "knn": KNNClassifier, "hinge": HingeSVMClassifier,
                                 "logistic": LogisticClassifier}
