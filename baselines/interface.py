"""What every feature extractor is: a ``typing.Protocol`` that implementations satisfy
without importing it (the DCGAN discriminator lives in ``dcgan_ref``, which imports
nothing from here).

Protocols only ever see this: ``fit`` on unlabelled uint8 images, ``transform`` to an
``(N, feature_dim)`` float tensor, and the facts a results row needs about the extractor.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import torch

# A callback a protocol may hand to ``fit``: scores the extractor's *current* state on
# held-out validation data (higher is better).  Extractors that have a training length
# to choose (the DCGAN) call it at checkpoints and keep the best; others ignore it.
Validator = Callable[[Any], float]


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps uint8 images (N, 3, H, W) to features (N, feature_dim)."""

    label: str              # the name results tables show, e.g. "kmeans-1600", "dcgan (svhn32)"
    learns_from_data: bool  # fit on the unlabelled data (the table then names that data)
    notes: str              # what a results row should say about the fit ("" when nothing)

    @property
    def feature_dim(self) -> int:
        """Length of one feature vector."""

    def settings(self) -> dict[str, Any]:
        """Every setting that defines this extractor (logged as MLflow params)."""

    def fit(self, images: torch.Tensor, validate: Validator | None = None) -> dict[str, Any]:
        """Learn from unlabelled uint8 images; return numbers worth logging as metrics."""

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Features for uint8 images (N, 3, H, W): float32 (N, feature_dim)."""


@runtime_checkable
class LayeredExtractor(Protocol):
    """An extractor whose features are several layers' pooled maps side by side (a DCGAN
    discriminator's conv layers), each selectable, with extraction variants: the capability
    the sensitivity table's batchnorm, layers and pooling knobs ask for."""

    @property
    def n_layers(self) -> int:
        """How many layers the features concatenate."""

    def layer_columns(self, layers: tuple[int, ...]) -> torch.Tensor:
        """The feature columns (a LongTensor index) of these layers, at this extraction's pooling."""

    def with_extraction(self, *, bn_mode: str | None = None, pool: str | None = None,
                        grid: int | None = None) -> "LayeredExtractor":
        """The same fitted extractor with other batchnorm statistics or pooling."""

    def with_population_stats(self, images: torch.Tensor) -> "LayeredExtractor":
        """A copy whose batchnorm population statistics come from ``images``."""
