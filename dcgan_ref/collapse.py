"""Mode-collapse check (docs/PAPER.md, Section 7): are G's samples as varied as real images?

On a fixed batch of z, once per epoch, two numbers:

- ``diversity``: the median pairwise pixel distance among G's samples over the median among
  a fixed batch of real training images.  About 1 for a healthy G; towards 0 as G draws
  fewer distinct images.
- ``near_identical``: the share of sample pairs closer than ``NEAR`` x the real median.  A
  partial collapse (a subset of z decoding to one image) barely moves a median, but every
  pair inside that subset counts here: a third of the z on one image is ~11% of the pairs.

``flag`` is either beyond its threshold.  Both are pixel statistics on 256 images: cheap
(milliseconds after one G forward), blind to subtler loss of variety (a G drawing 50
distinct images passes), and not a quality score.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from dcgan_ref.datasets.loading import to_unit_range
from dcgan_ref.models import Generator

N_SAMPLES = 256  # 32,640 pairs: medians and shares stable to ~1%, one small G forward
NEAR = 0.10      # "near-identical": closer than 10% of the typical real pair
# Thresholds, from measurements on the CIFAR-10 JPEG copy (svhn32; checks at epoch ends):
# - healthy: real batch vs real batch 0.99 / 0%; untrained G 0.36 / 0%; lr 2e-4 on 5,000 images,
#   epochs 1-5: 0.25, 0.18, 0.17, 0.55, 0.75, near-identical 0% at every check; 50,000 images,
#   epoch 2: 0.98 / 0%.
# - collapsed (lr 0.1, every sample one checkerboard): epochs 1-5: 0.14 / 20%, then <= 0.006 / >= 95%.
# - synthetic: a fifth of the batch on one image 3.9%, a third 11%; 16 equal modes 5.9%, 64 modes 1.2%.
# Near-identical pairs never appeared in a healthy batch, so 5% (a quarter of the z on one
# image, or ~20 equal modes) flags early.  Diversity alone cannot tell the start-up phase, where a
# healthy G's samples look alike (0.17 above), from a collapse with some jitter: its threshold
# sits below that dip, where only collapses went.  (At 0.1 = NEAR it backs up near-identical
# > 50%; the flag's sensitivity is the near-identical share's.)
MIN_DIVERSITY = 0.1
MAX_NEAR_IDENTICAL = 0.05


@dataclass(frozen=True)
class CollapseStats:
    diversity: float
    near_identical: float

    @property
    def flag(self) -> bool:
        return self.diversity < MIN_DIVERSITY or self.near_identical > MAX_NEAR_IDENTICAL

    def metrics(self) -> dict[str, float]:
        """As MLflow metrics (``collapse_*``; the flag as 0/1)."""
        return {"collapse_diversity": self.diversity, "collapse_near_identical": self.near_identical,
                "collapse_flag": float(self.flag)}

    def describe(self) -> str:
        text = f"diversity {self.diversity:.3f} near-identical {self.near_identical:.1%}"
        if self.flag:
            text += (f" -- possible mode collapse (diversity < {MIN_DIVERSITY} or near-identical pairs > "
                     f"{MAX_NEAR_IDENTICAL:.0%})")
        return text

    def as_dict(self) -> dict[str, float | bool]:
        return asdict(self) | {"flag": self.flag}


def pair_distances(images: torch.Tensor) -> torch.Tensor:
    """L2 pixel distance of every unordered pair (N*(N-1)/2,), float32 on the CPU."""
    return torch.pdist(images.float().flatten(1)).cpu()  # the median on the CPU: no CUDA determinism caveats


def measure(samples: torch.Tensor, real_median: float) -> CollapseStats:
    """The statistic for ``samples`` (N, 3, H, W) in [-1, 1] against real images' median pair distance
    (NaN, never flagged, when the real images are all alike)."""
    if not real_median > 0:  # identical real images (a degenerate dataset): no scale to compare with
        return CollapseStats(math.nan, math.nan)
    d = pair_distances(samples)
    return CollapseStats(float(d.median()) / real_median, float((d < NEAR * real_median).float().mean()))


@torch.no_grad()
def generate(g: Generator, z: torch.Tensor) -> torch.Tensor:
    """G(z) as training draws it (batchnorm over this batch), leaving G's state as it was.

    Train-mode batchnorm updates the running statistics; they are put back, so sample grids,
    checkpoints and the rest of training are bitwise those of a run without the check.
    """
    buffers = [b.clone() for b in g.buffers()]
    was_training = g.training
    g.train()
    try:
        return g(z).float()
    finally:
        for b, saved in zip(g.buffers(), buffers):
            b.copy_(saved)
        g.train(was_training)


class CollapseMonitor:
    """The fixed z and real reference one training checks G against; ``check(g)`` once per epoch.

    Both come from their own seeded generators (no other random stream moves), so a resumed
    run checks against exactly what an uninterrupted one does and nothing needs checkpointing.
    """

    def __init__(self, g: Generator, images: torch.Tensor, device: torch.device, seed: int = 0,
                 n: int = N_SAMPLES) -> None:
        n = min(n, len(images))
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
        real = to_unit_range(images[pick.to(images.device)].to(device))
        self.real_median = float(pair_distances(real).median())
        self.z = g.arch.sample_z(n, device, torch.Generator(device).manual_seed(seed + 1))

    def check(self, g: Generator) -> CollapseStats:
        return measure(generate(g, self.z), self.real_median)
