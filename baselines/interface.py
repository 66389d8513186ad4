"""The one interface every feature extractor implements (DCGAN discriminator and baselines).

Protocols only ever see this: ``fit`` on unlabelled uint8 images, ``transform`` to an
``(N, feature_dim)`` float tensor. They never know which extractor they run.
"""
from __future__ import annotations

import abc
from typing import Any, Callable

import torch

# A callback a protocol may hand to ``fit``: scores the extractor's *current* state on
# held-out validation data (higher is better).  Extractors that have a training length
# to choose (the DCGAN) call it at checkpoints and keep the best; others ignore it.
Validator = Callable[["FeatureExtractor"], float]


class FeatureExtractor(abc.ABC):
    """Maps uint8 images (N, 3, H, W) to features (N, feature_dim)."""

    name: str  # short registry name, e.g. "dcgan", "kmeans-1600", "pixels"

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    @abc.abstractmethod
    def fit(self, images: torch.Tensor, validate: Validator | None = None) -> dict[str, Any]:
        """Learn from unlabelled uint8 images; return facts worth logging (metrics/params)."""

    @abc.abstractmethod
    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Features for uint8 images (N, 3, H, W): float32 (N, feature_dim) on ``self.device``."""

    @property
    @abc.abstractmethod
    def feature_dim(self) -> int:
        """Length of one feature vector."""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Every setting that defines this extractor (logged as MLflow params)."""


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the paper's only pre-processing."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    return images.float().div_(127.5).sub_(1.0)
