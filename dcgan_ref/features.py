"""Discriminator features (PAPER.md, CIFAR-10 protocol): every conv layer's activation
max-pooled to a 4x4 grid, flattened and concatenated (28,672 dims for ``imagenet32``).

Batchnorm at extraction uses population statistics over a set of images (default) or
the statistics of each extraction batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.interface import to_unit_range
from dcgan_ref.models import Discriminator

BN_MODES = ("population", "batch")


@torch.no_grad()
def set_population_bn_stats(d: Discriminator, images: torch.Tensor, batch_size: int = 128) -> None:
    """Replace D's batchnorm running statistics by averages over ``images`` (uint8).

    Like the authors' SVHN script: statistics of fixed-size batches, averaged.
    """
    device = next(d.parameters()).device
    bns = [m for m in d.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    was_training = d.training
    d.train()
    usable = len(images) - len(images) % batch_size or len(images)  # equal-size batches
    for start in range(0, usable, batch_size):
        d.features(to_unit_range(images[start:start + batch_size].to(device)))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    d.train(was_training)


@torch.no_grad()
def pooled_features(d: Discriminator, images: torch.Tensor, *, grid: int = 4, bn_mode: str = "population",
                    batch_size: int = 500, bf16: bool = False) -> torch.Tensor:
    """Features (N, grid² · Σ widths), float32, on D's device, for uint8 images (N, 3, H, W)."""
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    device = next(d.parameters()).device
    was_training = d.training
    d.train(bn_mode == "batch")
    dim = grid * grid * sum(d.arch.widths)
    out = torch.empty(len(images), dim, device=device)
    try:
        for start in range(0, len(images), batch_size):
            x = to_unit_range(images[start:start + batch_size].to(device, non_blocking=True))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                maps = d.features(x)
            pooled = [F.adaptive_max_pool2d(m.float(), grid).flatten(1) for m in maps]
            out[start:start + len(x)] = torch.cat(pooled, dim=1)
    finally:
        d.train(was_training)
    return out
