"""Exact nearest-neighbour search by Euclidean distance: the one search behind the KNN
classifier (``benchmarks.classifiers.knn``), the memorisation check and the de-duplication.

Distances use ``||q||^2 - 2 q.x + ||x||^2``: one GEMM per chunk of queries, on the device
and dtype of the bank (TF32 off on CUDA), so 10,000 queries against 50,000 x 28,672
features is a handful of GEMMs on a GPU, where pairwise differences would need terabytes.
Only the ``k`` smallest distances per query are kept (``torch.topk``), so memory is
``chunk x N_bank``. Exactly equal distances come in ``torch.topk``'s (unspecified) order,
and in float32 the expansion can swap neighbours whose distances agree to ~1e-6 relative;
pass float64 where exact ranks matter, or use :func:`nearest_images` for true distances.
"""
from __future__ import annotations

from typing import Callable

import torch

from dcgan_ref.runtime.hardware import ieee_fp32_matmul
from dcgan_ref.runtime.progress import Progress

_CHUNK_ELEMENTS = 1 << 26  # distance-matrix entries per chunk (256 MiB in float32)


def _check(X: torch.Tensor, name: str) -> None:
    if X.dim() != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D tensor, got shape {tuple(X.shape)}")
    if not X.dtype.is_floating_point:
        raise ValueError(f"{name} must be floating point, got {X.dtype}")


def nearest_neighbors(train_X: torch.Tensor, query_X: torch.Tensor, k: int, *, chunk_size: int | None = None,
                      on_chunk: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances ``(M, k)`` and training indices ``(M, k)`` of each query's ``k``
    nearest training rows, nearest first.  Computed on ``train_X``'s device and dtype;
    ``on_chunk(n)`` is told each chunk's query count (progress)."""
    _check(train_X, "train_X")
    _check(query_X, "query_X")
    if query_X.shape[1] != train_X.shape[1]:
        raise ValueError(f"feature dims differ: train {train_X.shape[1]}, query {query_X.shape[1]}")
    if not 1 <= k <= train_X.shape[0]:
        raise ValueError(f"k must be in 1..{train_X.shape[0]} (training size), got {k}")
    device, dtype = train_X.device, train_X.dtype
    chunk = chunk_size or max(1, _CHUNK_ELEMENTS // train_X.shape[0])
    dists, idxs = [], []
    with torch.no_grad(), ieee_fp32_matmul(device):
        train_sq = torch.linalg.vector_norm(train_X, dim=1).square()
        for start in range(0, query_X.shape[0], chunk):
            q = query_X[start : start + chunk].to(device=device, dtype=dtype)
            q_sq = torch.linalg.vector_norm(q, dim=1).square()
            d2 = torch.addmm(train_sq[None, :], q, train_X.T, alpha=-2.0)
            d2.add_(q_sq[:, None]).clamp_min_(0)
            d, i = torch.topk(d2, k, dim=1, largest=False, sorted=True)
            dists.append(d)
            idxs.append(i)
            if on_chunk is not None:
                on_chunk(len(q))
    return torch.cat(dists), torch.cat(idxs)


def nearest(train_X: torch.Tensor, query_X: torch.Tensor, k: int, *, chunk_size: int | None = None) -> torch.Tensor:
    """Training indices ``(M, k)`` of each query's ``k`` nearest rows, nearest first."""
    return nearest_neighbors(train_X, query_X, k, chunk_size=chunk_size)[1]


def nearest_images(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, chunk: int = 1000
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query image's ``k`` nearest ``bank`` images (any shape, flattened, float32):
    (distances, indices), (N, k), nearest first, with a progress line (~30 s for 10k x 50k
    images on 2 cores).

    The expansion finds the neighbours; their distances are then recomputed from the
    differences, since it loses digits to cancellation exactly where rows are close.
    """
    queries, bank = queries.flatten(1).float(), bank.flatten(1).float()
    progress = Progress("nearest-neighbour search", len(queries), unit="queries")
    index = nearest_neighbors(bank, queries, min(k, len(bank)), chunk_size=chunk, on_chunk=progress.update)[1]
    k = index.shape[1]
    rows = torch.arange(len(queries)).repeat_interleave(k)
    flat = index.flatten()
    dist = torch.cat([(queries[rows[s:s + 4096]] - bank[flat[s:s + 4096]]).norm(dim=1)
                      for s in range(0, len(flat), 4096)]).view(-1, k)
    dist, order = dist.sort(dim=1)
    return dist, index.gather(1, order)
