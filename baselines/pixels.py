"""Raw pixels: the 3,072 values in [-1, 1], the floor every learned feature must beat."""
from __future__ import annotations

from typing import Any

import torch

from baselines.registry import BuildContext, register
from dcgan_ref.datasets.loading import to_unit_range


class PixelExtractor:
    label = "pixels"
    learns_from_data = False
    notes = ""

    def __init__(self, image_size: int = 32, device: torch.device | str = "cpu") -> None:
        self.image_size, self.device = image_size, torch.device(device)

    @property
    def feature_dim(self) -> int:
        return 3 * self.image_size**2

    def settings(self) -> dict[str, Any]:
        return {"scale": "[-1, 1]", "image_size": self.image_size}

    def flops_per_image(self) -> int:
        return 0  # the pixels are the features

    def fit(self, images: torch.Tensor, validate=None) -> dict[str, Any]:
        return {}

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(f"expected images (N, 3, {self.image_size}, {self.image_size}), got {tuple(images.shape)}")
        return to_unit_range(images.to(self.device)).flatten(1)


@register("pixels")
def pixels(ctx: BuildContext) -> PixelExtractor:
    return PixelExtractor(ctx.image_size, ctx.device)
