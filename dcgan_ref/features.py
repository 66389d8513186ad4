"""Discriminator features (docs/PAPER.md, CIFAR-10 protocol): every conv layer's activation
max-pooled to a 4x4 grid, flattened and concatenated (28,672 dims for ``imagenet32``).

Batchnorm at extraction uses population statistics over a set of images (default) or
the statistics of each extraction batch.  Either way the batches are drawn in a
*content-determined* pseudo-random order (:func:`canonical_order`): image-folder data is
stored sorted by class, and batches of one class would let batch statistics carry the
label.  Because the order depends only on the images, not on how the caller ordered them,
features of a set are the same whatever its order.  Extraction runs in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcgan_ref.datasets.loading import to_unit_range
from dcgan_ref.models import Discriminator
from dcgan_ref.runtime.progress import Progress

BN_MODES = ("population", "batch")
POOLS = {"max": F.adaptive_max_pool2d, "avg": F.adaptive_avg_pool2d}  # the paper: max
_HASH_PRIME = 2_147_483_647  # 2^31 - 1


def canonical_order(images: torch.Tensor, seed: int = 0, chunk: int = 4096) -> torch.Tensor:
    """A pseudo-random permutation of ``images`` (uint8, N x ...) determined by their pixels.

    Each image gets a universal hash ``(x . w) mod p`` (``w`` seeded, int64 arithmetic, no
    overflow for 8-bit pixels); sorting by it is a random order uncorrelated with content
    (unlike sorting by any monotone statistic), and the same for any order of the same set.
    """
    flat = images.reshape(len(images), -1)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randint(0, _HASH_PRIME, (flat.shape[1],), generator=gen, dtype=torch.int64).to(flat.device)
    keys = torch.cat([(flat[s:s + chunk].long() * w).sum(1) % _HASH_PRIME for s in range(0, len(flat), chunk)])
    return torch.sort(keys.cpu(), stable=True).indices


def _batchnorms(d: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in d.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def set_population_bn_stats(d: Discriminator, images: torch.Tensor, batch_size: int = 128, seed: int = 0) -> None:
    """Replace D's batchnorm running statistics by averages over ``images`` (uint8).

    Like the authors' SVHN script: statistics of fixed-size batches, averaged; the batches
    follow :func:`canonical_order`, so they mix classes and do not depend on input order.
    """
    device = next(d.parameters()).device
    bns = _batchnorms(d)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    was_training = d.training
    d.train()
    order = canonical_order(images, seed)
    usable = len(images) - len(images) % batch_size or len(images)  # equal-size batches
    progress = Progress("batchnorm statistics", usable)
    try:
        for start in range(0, usable, batch_size):
            d.features(to_unit_range(images[order[start:start + batch_size]].to(device)))
            progress.update(min(batch_size, usable - start))
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        d.train(was_training)


@torch.no_grad()
def pooled_features(d: Discriminator, images: torch.Tensor, *, grid: int = 4, pool: str = "max",
                    bn_mode: str = "population", batch_size: int = 500, seed: int = 0) -> torch.Tensor:
    """Features (N, grid² · Σ widths), float32, on D's device, for uint8 images (N, 3, H, W).

    Each layer's map is ``pool``-pooled (adaptive: "max" or "avg") to ``grid`` x ``grid``.
    Rows come back in the caller's order.  ``bn_mode="batch"`` normalises with each
    batch's statistics and leaves D's running statistics exactly as they were.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    if pool not in POOLS or grid < 1:
        raise ValueError(f"pool must be one of {sorted(POOLS)} and grid >= 1, got {pool!r}, {grid!r}")
    pool_fn = POOLS[pool]
    device = next(d.parameters()).device
    bns = _batchnorms(d)
    running = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    was_training = d.training
    d.train(bn_mode == "batch")
    dim = grid * grid * sum(d.arch.widths)
    out = torch.empty(len(images), dim, device=device)
    order = canonical_order(images, seed) if bn_mode == "batch" else torch.arange(len(images))
    progress = Progress("D features", len(images))
    try:
        for start in range(0, len(images), batch_size):
            rows = order[start:start + batch_size]
            maps = d.features(to_unit_range(images[rows].to(device, non_blocking=True)))
            out[rows.to(device)] = torch.cat([pool_fn(m, grid).flatten(1) for m in maps], dim=1)
            progress.update(len(rows))
    finally:
        d.train(was_training)
        for m, (mean, var, count) in zip(bns, running):  # batch mode updated them: put them back
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
    return out


def layer_columns(widths: tuple[int, ...], layers: tuple[int, ...], grid: int = 4) -> torch.Tensor:
    """Column indices of the given layers (0 = input side) in :func:`pooled_features`' output."""
    if not layers or any(not 0 <= i < len(widths) for i in layers):
        raise ValueError(f"layers must be a non-empty subset of 0..{len(widths) - 1}, got {layers!r}")
    starts = [0]
    for w in widths:
        starts.append(starts[-1] + grid * grid * w)
    return torch.cat([torch.arange(starts[i], starts[i + 1]) for i in sorted(set(layers))])
