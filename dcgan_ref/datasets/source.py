"""What every format reader returns and is given: a decoded split, a recognised source."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan_ref.runtime.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar", ".zip")


@dataclass
class Decoded:
    """One decoded split, before it becomes an `ImageSet`."""

    images: np.ndarray  # uint8 (N, 3, H, W), C-contiguous
    labels: np.ndarray  # int64 (N,)
    classes: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Source:
    """A recognised data source: its format and the file or folder that holds it."""

    format: str
    path: Path


def unknown_split(where: object, split: str, available: list[str]) -> DataError:
    return DataError(f"{where}: no split {split!r}; available splits: {', '.join(available)}")
