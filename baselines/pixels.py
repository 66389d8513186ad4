"""Raw pixels: the 3,072 values in [-1, 1], the floor every learned feature must beat."""
from __future__ import annotations

from typing import Any

import torch

from baselines.interface import FeatureExtractor, Validator, to_unit_range


class PixelExtractor(FeatureExtractor):
    name = "pixels"

    def __init__(self, image_size: int = 32, device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        self.image_size = image_size

    @property
    def feature_dim(self) -> int:
        return 3 * self.image_size**2

    def settings(self) -> dict[str, Any]:
        return {"scale": "[-1, 1]", "image_size": self.image_size}

    def fit(self, images: torch.Tensor, validate: Validator | None = None) -> dict[str, Any]:
        return {}

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(f"expected images (N, 3, {self.image_size}, {self.image_size}), got {tuple(images.shape)}")
        return to_unit_range(images.to(self.device)).flatten(1)
