"""Presets: ``paper`` (the full protocol), ``quick`` (minutes on a 2-core CPU), ``smoke`` (seconds).

A ``quick`` number is a check that the pipeline works, never a paper result: rows carry
their preset everywhere they are reported.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

PAPER_C_GRID = tuple(10.0 ** (e / 2) for e in range(-12, -1))  # 1e-6 .. 1e-1, half-decade steps
# On standardised features, C >= 1e-2 is the near-hard-margin regime (train accuracy 100%
# on 9k x 7k features) where the solver needs thousands of passes: the CPU grid stops below it.
QUICK_C_GRID = tuple(10.0 ** (e / 2) for e in range(-12, -5))  # 1e-6 .. 1e-3


@dataclass(frozen=True)
class Preset:
    name: str
    arch: str                    # DCGAN architecture (quick/smoke use the smaller svhn32 on CPU)
    gan_images: int | None       # GAN training images (None: all)
    gan_epochs: float
    eval_epochs: tuple[float, ...]  # training lengths scored on validation; the best is kept
    train_images: int | None     # labelled training images, class-balanced subset (None: all)
    test_images: int | None
    C_grid: tuple[float, ...]
    knn_grid: tuple[int, ...] = (1, 3, 5, 9, 15, 25)
    n_draws: int = 10            # label-scarce draws
    kmeans_patches: int = 400_000
    kmeans_ks: tuple[int, ...] = (1600, 4000)  # the K-means rows of ``--extractor all``
    bf16: bool = False           # the GPU fast path: bf16 autocast, channels_last, CUDA-graphed step
    channels_last: bool = False
    cuda_graph: bool = False
    batch_size: int = 128
    val_images: int | None = None  # validation split size (None: the protocol's own)
    per_class: int | None = None   # labels per class in the label-scarce draws (None: the protocol's own)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("paper", "imagenet32", None, 25, (5, 10, 15, 20, 25), None, None, PAPER_C_GRID,
               bf16=True, channels_last=True, cuda_graph=True),
        Preset("quick", "svhn32", 10_000, 3, (), 10_000, 2_000, QUICK_C_GRID,
               n_draws=3, kmeans_patches=50_000),
        Preset("smoke", "svhn32", 256, 0.25, (), 400, 200, (1e-5, 1e-4), knn_grid=(1, 3),
               n_draws=2, kmeans_patches=2_000, kmeans_ks=(16,), batch_size=32, val_images=100, per_class=10),
    )
}


def resolve_preset(name: str | None, device: torch.device, log=print, **overrides) -> Preset:
    """The named preset, or ``paper`` on a GPU and ``quick`` otherwise (said out loud)."""
    if name is None:
        name = "paper" if device.type == "cuda" else "quick"
        log(f"no --preset given: using '{name}' ({'GPU present' if device.type == 'cuda' else 'no GPU'})")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    preset = PRESETS[name]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(preset, **overrides) if overrides else preset
