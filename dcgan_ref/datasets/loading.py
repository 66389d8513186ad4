"""Data sources -> one uint8 image tensor, int64 labels and a content hash.

`load_split(path, split)` accepts official CIFAR-10 / SVHN files, Imagenet32 pickled
batches, and image-folder trees or archives of them (see `data_formats.ACCEPTED`).
A split is decoded once and cached as .npy under `default_cache_dir()`, keyed by the
sha256 of the bytes that make it up: a changed file is a new key, never a stale hit.

Content hash (ImageSet.sha256): sha256 of the text
    "dcgan-repro-data/v1 split=<split>\\n" + "<sha256 of file>  <relative path>\\n" ...
over the split's files in sorted path order (a single-file source such as an archive
is one line with path "."), i.e. a hash of `sha256sum`-style lines.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import download_url

from dcgan_ref.datasets import formats
from dcgan_ref.datasets.formats import ACCEPTED
from dcgan_ref.runtime.errors import DataError

__all__ = ["ImageSet", "DataError", "load_split", "detect_format", "default_cache_dir", "resize_to",
           "to_unit_range"]

log = logging.getLogger(__name__)

HASH_VERSION = "dcgan-repro-data/v1"
DOWNLOAD_TIMEOUT_S = 10.0
DATASETS = ("cifar10", "svhn", "imagenet32")
_FITS = {  # formats that may stand in for each `dataset` hint
    "cifar10": {"cifar10-official", "image-folder", "image-folder-archive"},
    "svhn": {"svhn-official", "image-folder", "image-folder-archive"},
    "imagenet32": {"imagenet32", "tinyimagenet", "image-folder", "image-folder-archive"},
}


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A decoded split: uint8 images (N, 3, H, W), int64 labels and where they came from."""

    images: torch.Tensor  # uint8, (N, 3, H, W), contiguous, CPU
    labels: torch.Tensor  # int64, (N,)
    classes: tuple[str, ...]  # class names in label order
    sha256: str  # content hash of the source split (see module docstring)
    description: str  # label for tables, e.g. "CIFAR-10 (JPEG copy)"

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 ({len(self.images)},), got "
                             f"{self.labels.dtype} {tuple(self.labels.shape)}")

    def subset(self, index: torch.Tensor) -> "ImageSet":
        """The rows picked by `index` (indices or a boolean mask), same metadata."""
        return dataclasses.replace(self, images=self.images[index].contiguous(),
                                   labels=self.labels[index].contiguous())

    def __len__(self) -> int:
        return len(self.labels)


def default_cache_dir() -> Path:
    """$DCGAN_REPRO_CACHE, else ~/.cache/dcgan-repro."""
    return Path(os.environ.get("DCGAN_REPRO_CACHE") or "~/.cache/dcgan-repro").expanduser()


def detect_format(spec: str | os.PathLike) -> str:
    """The format of the data at `spec`: "cifar10-official", "svhn-official",
    "imagenet32", "image-folder" or "image-folder-archive"."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist; {ACCEPTED}")
    source = formats.locate(path)
    if source is None:
        raise DataError(f"{path}: no recognised data; {ACCEPTED}")
    return source.format


def load_split(spec: str | os.PathLike, split: str, *, dataset: str | None = None,
               download: bool = True, cache_dir: str | os.PathLike | None = None) -> ImageSet:
    """Load one split ("train", "test", "val", "extra", ...) of the data at `spec`.

    `dataset` ("cifar10" | "svhn" | "imagenet32") names what `spec` should hold; when it
    holds nothing recognisable (or misses an SVHN split) and `download` is true, the
    official CIFAR-10/SVHN files are fetched into it (md5-checked). Raises DataError.
    """
    source = _resolve(Path(spec).expanduser(), split, dataset, download)
    key = content_sha256(split, source.path, formats.split_files(source, split))
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cached = _read_cache(cache, key)
    if cached is not None:
        return cached
    decoded = _decode(source, split)
    imageset = ImageSet(torch.from_numpy(decoded.images), torch.from_numpy(decoded.labels),
                        decoded.classes, key, decoded.description)
    _write_cache(cache, imageset)
    return imageset


def _decode(source: formats.Source, split: str) -> formats.Decoded:
    """The one place that decodes (tests count calls here to prove cache hits)."""
    return formats.decode(source, split)


# ----------------------------------------------------------------- finding the source

def _resolve(path: Path, split: str, dataset: str | None, download: bool) -> formats.Source:
    """The source at `path`, downloading official files first when asked and needed."""
    if dataset is not None and dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    source = formats.locate(path) if path.exists() else None
    if not path.exists() and not download:
        hint = f": {_hint(dataset, path, split)}" if dataset in ("cifar10", "svhn") else f"; {ACCEPTED}"
        raise DataError(f"{path} does not exist{hint}")
    if source is None and (dataset is None or path.is_file()):
        state = "does not exist" if not path.exists() else "holds no recognised data"
        raise DataError(f"{path} {state}; {ACCEPTED}")
    if source is not None and dataset is not None and source.format not in _FITS[dataset]:
        raise DataError(f"{path} holds {source.format} data, not {dataset}")
    if source is not None and not _svhn_split_missing(source, split):
        return source
    dataset = dataset or "svhn"  # without a hint, only an SVHN folder missing a split gets here
    if not download or dataset == "imagenet32":
        raise DataError(f"no {dataset} {split} data in {path}: {_hint(dataset, path, split)}")
    _download(dataset, path, split)
    return formats.locate(path)


def _svhn_split_missing(source: formats.Source, split: str) -> bool:
    return (source.format == "svhn-official" and split in formats.SVHN_SPLITS
            and not (source.path / formats.SVHN_SPLITS[split][1]).is_file())


def _hint(dataset: str, folder: Path, split: str) -> str:
    if dataset == "cifar10":
        return formats.cifar10_hint(folder)
    if dataset == "svhn":
        splits = [split] if split in formats.SVHN_SPLITS else list(formats.SVHN_SPLITS)
        return formats.svhn_hint(folder, splits)
    return formats.imagenet32_hint(folder)


def _official_downloads(dataset: str, split: str) -> list[tuple[str, str, str]]:
    """(url, filename, md5) of the official files that hold `split`."""
    if dataset == "cifar10":
        return [(CIFAR10.url, CIFAR10.filename, CIFAR10.tgz_md5)]
    if split not in formats.SVHN_SPLITS:
        raise formats.unknown_split("SVHN", split, list(formats.SVHN_SPLITS))
    url, filename, md5 = formats.SVHN_SPLITS[split]
    return [(url, filename, md5)]


def _download(dataset: str, folder: Path, split: str) -> None:
    """Fetch the official files into `folder` via torchvision (md5-checked); a file only
    appears there once complete. Fails within ~DOWNLOAD_TIMEOUT_S without a network."""
    files = _official_downloads(dataset, split)
    folder.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        for url, filename, md5 in files:
            with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
                log.info("downloading %s into %s", url, folder)
                download_url(url, tmp, filename, md5)
                os.replace(Path(tmp) / filename, folder / filename)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; md5 failure a RuntimeError
        raise DataError(f"could not download {dataset} ({err}); "
                        f"{_hint(dataset, folder, split)}") from err
    finally:
        socket.setdefaulttimeout(previous)


# -------------------------------------------------------------------------- hashing

def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(split: str, root: Path, files: list[Path]) -> str:
    """The content hash of a split (see the module docstring for the exact recipe)."""
    lines = sorted((f.relative_to(root).as_posix() if f != root else ".", f) for f in files)
    digest = hashlib.sha256(f"{HASH_VERSION} split={split}\n".encode())
    for relative, path in lines:
        digest.update(f"{file_sha256(path)}  {relative}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- cache

def _cache_paths(cache: Path, key: str) -> tuple[Path, Path, Path]:
    return cache / f"{key}.images.npy", cache / f"{key}.labels.npy", cache / f"{key}.json"


def _read_cache(cache: Path, key: str) -> ImageSet | None:
    """The cached split, or None when absent or unreadable (then it is rebuilt)."""
    images_path, labels_path, meta_path = _cache_paths(cache, key)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(images_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
        if meta["sha256"] != key or len(images) != meta["n"]:
            raise ValueError("cache metadata does not match its arrays")
        return ImageSet(torch.from_numpy(images), torch.from_numpy(labels),
                        tuple(meta["classes"]), key, meta["description"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("ignoring unreadable cache entry %s (%s); decoding again", meta_path, err)
        return None


def _write_cache(cache: Path, imageset: ImageSet) -> None:
    """Write arrays then the json (the json marks a complete entry); each write is atomic.
    A cache that cannot be written only costs a warning."""
    images_path, labels_path, meta_path = _cache_paths(cache, imageset.sha256)
    meta = {"sha256": imageset.sha256, "n": len(imageset), "classes": list(imageset.classes),
            "description": imageset.description, "shape": list(imageset.images.shape)}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        _atomic_write(images_path, lambda f: np.save(f, imageset.images.numpy()))
        _atomic_write(labels_path, lambda f: np.save(f, imageset.labels.numpy()))
        _atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))
    except OSError as err:
        log.warning("could not write the data cache in %s (%s)", cache, err)


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write via a temporary file in the same folder, then rename over `path`."""
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            write(handle)
        os.chmod(handle.name, 0o644)  # a temp file is 0600; the cache is an ordinary file
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


RESIZE_FILTER = "box (area average; for 64 -> 32 the mean of each 2x2 block, as Imagenet32 was made)"


def resize_to(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 images (N, 3, H, W) brought down to (N, 3, size, size) with a box filter: each
    output pixel is the mean of the input pixels it covers (``adaptive_avg_pool2d``; for an
    integer factor, exactly PIL's BOX), rounded to the nearest integer. Chrabaszcz et al. (2017)
    made Imagenet32 with a box filter. Smaller images are refused, never upscaled."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if h < size or w < size:
        raise DataError(f"images are {w}x{h}, smaller than the architecture's {size}x{size}; "
                        f"they are only ever downsampled, never upscaled")
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(images), chunk):  # float copies of a chunk only, not of 100k images
        part = images[start:start + chunk].float()
        out[start:start + chunk] = torch.nn.functional.adaptive_avg_pool2d(part, size).round_().to(torch.uint8)
    return out


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the paper's only pre-processing (G's tanh range)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    return images.float().div_(127.5).sub_(1.0)
