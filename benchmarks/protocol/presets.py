"""Presets: how much of a protocol to run, and with which recipe.

``paper`` is the full protocol with the paper's text recipe; ``newmu-svhn`` the authors'
released SVHN recipe; ``faces`` the paper's faces recipe; ``quick`` minutes on a 2-core
CPU; ``smoke`` seconds, for tests.  A ``quick`` number is a check that the pipeline
works, never a paper result: rows carry their preset everywhere they are reported.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from dcgan_ref.runtime.hardware import native_bf16

PAPER_C_GRID = tuple(10.0 ** (e / 2) for e in range(-12, -1))  # 1e-6 .. 1e-1, half-decade steps
# On standardised features, C >= 1e-2 is the near-hard-margin regime (train accuracy 100%
# on 9k x 7k features) where the solver needs thousands of passes: the CPU grid stops below it.
QUICK_C_GRID = tuple(10.0 ** (e / 2) for e in range(-12, -5))  # 1e-6 .. 1e-3

# What ``--extractor all`` runs: (extractor, classifier) rows.
ALL_ROWS = (("dcgan", "svm"), ("random-d", "svm"), ("pixels", "svm"), ("pixels", "knn"),
            ("kmeans-1600", "svm"), ("kmeans-4000", "svm"))


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    arch: str | None = None       # DCGAN architecture; None: the protocol's own (docs/PAPER.md)
    gan_images: int | None = None  # GAN training images (None: all)
    gan_epochs: float = 25
    eval_epochs: tuple[float, ...] = ()  # training lengths scored on validation; the best is kept
    lr: float = 2e-4
    weight_decay: float = 0.0
    schedule: str = "both"           # "both": D and G on every batch; "alternate": the authors' script
    batch_size: int = 128
    train_images: int | None = None  # labelled training images, class-balanced subset (None: all)
    test_images: int | None = None
    val_images: int | None = None    # validation split size (None: the protocol's own)
    per_class: int | None = None     # labels per class in the label-scarce draws (None: the protocol's own)
    C_grid: tuple[float, ...] = PAPER_C_GRID
    knn_grid: tuple[int, ...] = (1, 3, 5, 9, 15, 25)
    n_draws: int = 10                # label-scarce draws
    kmeans_patches: int = 400_000
    all_rows: tuple[tuple[str, str], ...] = ALL_ROWS
    bf16: bool = False               # the GPU fast path: bf16 autocast, channels_last, CUDA-graphed step
    channels_last: bool = False
    cuda_graph: bool = False
    supervised_trials: int = 64      # random-search trials of the supervised control (paper: 64)
    supervised_max_epochs: int | None = None  # cap on a trial's epochs (None: as sampled)
    writes_results: bool = True      # smoke runs never touch results/


_GPU_FAST = dict(bf16=True, channels_last=True, cuda_graph=True)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(name="paper", eval_epochs=(5, 10, 15, 20, 25), **_GPU_FAST),
        # The authors' released SVHN model: lr 5e-4, batch 64, Gaussian z (svhn32's), 200 epochs,
        # D and G updated on alternate batches as their script does.
        Preset(name="newmu-svhn", arch="svhn32", lr=5e-4, batch_size=64, gan_epochs=200, schedule="alternate",
               eval_epochs=(25, 50, 100, 150, 200), **_GPU_FAST),
        # The paper's faces recipe: the text's, plus weight decay 1e-5.
        Preset(name="faces", weight_decay=1e-5, eval_epochs=(5, 10, 15, 20, 25), **_GPU_FAST),
        Preset(name="quick", arch="svhn32", gan_images=10_000, gan_epochs=3, train_images=10_000,
               test_images=2_000, C_grid=QUICK_C_GRID, n_draws=3, kmeans_patches=50_000, supervised_trials=4),
        # CI's real-data regression check (tests/test_regression.py): about 2 minutes on 2 cores.
        Preset(name="ci", arch="svhn32", gan_images=5_000, gan_epochs=3, batch_size=64, train_images=5_000,
               test_images=2_000, C_grid=(1e-6, 1e-5, 1e-4, 1e-3), n_draws=2, kmeans_patches=20_000,
               writes_results=False),
        Preset(name="smoke", arch="svhn32", gan_images=256, gan_epochs=0.25, train_images=400, test_images=200,
               C_grid=(1e-5, 1e-4), knn_grid=(1, 3), n_draws=2, kmeans_patches=2_000,
               all_rows=tuple((n.replace("kmeans-1600", "kmeans-16"), k) for n, k in ALL_ROWS
                              if n != "kmeans-4000"),
               batch_size=32, val_images=100, per_class=10, supervised_trials=1, supervised_max_epochs=2,
               writes_results=False),
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
    if preset.bf16 and not native_bf16(device):  # emulated bf16 runs ~100x slower than fp32 (1 GFLOP/s)
        log(f"preset {name}: bf16 autocast off, this {device.type} has no native bf16 kernels; training in fp32")
        overrides["bf16"] = False
    return dataclasses.replace(preset, **overrides) if overrides else preset
