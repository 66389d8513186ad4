"""Readers for the data formats dcgan-repro accepts.

Each format has three jobs: `locate` recognises it in a path, `split_files` lists the
files whose bytes define one split (what the content hash covers), and `decode` turns a
split into uint8 images (N, 3, H, W) and int64 labels. This module reads the official
pickled and .mat files (CIFAR-10, SVHN, Imagenet32) and dispatches the rest to ``trees``
(image folders, archives, Tiny-ImageNet-200). Hashing and caching live in
`dcgan_ref.datasets.loading`, which is the module other code should import.

md5 policy for official files: a CIFAR-10 batch or SVHN .mat that holds the official
number of images claims to be the official file, so its md5 must match torchvision's
(else DataError). Files with other counts (synthetic test files, user subsets) are not
official and are checked by layout only; every file is always layout-checked.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import re
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import scipy.io
from torchvision.datasets import CIFAR10, SVHN
from torchvision.datasets.utils import calculate_md5

from dcgan_ref.datasets import tinyimagenet as tiny
from dcgan_ref.datasets.source import ARCHIVE_SUFFIXES, CIFAR10_CLASSES, Decoded, Source, unknown_split
from dcgan_ref.datasets.trees import (
    archive_members,
    decode_archive,
    decode_folder,
    decode_tiny,
    find_tree_root,
    folder_files,
    readable_archive,
    tiny_files,
)
from dcgan_ref.runtime.errors import DataError

CIFAR10_SPLITS = {"train": CIFAR10.train_list, "test": CIFAR10.test_list}  # [name, md5]
CIFAR10_META = CIFAR10.meta["filename"]
CIFAR10_BATCH_SIZE = 10_000  # images in each official batch
SVHN_SPLITS = dict(SVHN.split_list)  # split -> [url, filename, md5]
SVHN_OFFICIAL_COUNTS = {"train": 73_257, "test": 26_032, "extra": 531_131}
IMAGENET32_BATCHES = 10
IMAGENET32_CLASSES = 1000
IMAGENET32_URL = "https://image-net.org/download-images (Downsampled ImageNet 32x32)"
ACCEPTED = """accepted data sources:
  - official CIFAR-10: a folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz
  - official SVHN: a folder holding train_32x32.mat, test_32x32.mat, extra_32x32.mat
  - Imagenet32: a folder holding train_data_batch_1..10 and/or val_data (pickled batches)
  - Tiny-ImageNet-200: a folder (or archive) holding wnids.txt, train/<wnid>/images/, val/ (splits train, val)
  - an image-folder tree <root>/<split>/<class>/*.png|jpg|jpeg (or one folder down)
  - an archive of such a tree: .tar.xz, .tar.gz, .tgz, .tar or .zip (plain files only: links and
    members outside the archive are refused)"""



def cifar10_hint(folder: Path) -> str:
    return (f"put {CIFAR10.filename} (from {CIFAR10.url}) or the extracted "
            f"{CIFAR10.base_folder}/ in {folder}")


def svhn_hint(folder: Path, splits: list[str]) -> str:
    files = " and ".join(f"{SVHN_SPLITS[s][1]} (from {SVHN_SPLITS[s][0]})" for s in splits)
    return f"put {files} in {folder}"


def imagenet32_hint(folder: Path) -> str:
    return (f"put train_data_batch_1 .. train_data_batch_{IMAGENET32_BATCHES} and val_data "
            f"(from {IMAGENET32_URL}; a login is needed, so they are never downloaded "
            f"automatically) in {folder}")


# ----------------------------------------------------------------------------- locate

def locate(path: Path) -> Source | None:
    """The data source at `path` (an existing file or folder), or None if unrecognised."""
    if path.is_file():
        if path.name == CIFAR10.filename:
            return Source("cifar10-official", path)
        if path.name.lower().endswith(ARCHIVE_SUFFIXES):
            return Source("image-folder-archive", path)
        return None
    if (path / CIFAR10.base_folder).is_dir():
        return Source("cifar10-official", path / CIFAR10.base_folder)
    if (path / "data_batch_1").is_file() or (path / "test_batch").is_file():
        return Source("cifar10-official", path)
    if (path / CIFAR10.filename).is_file():
        return Source("cifar10-official", path / CIFAR10.filename)
    if any((path / entry[1]).is_file() for entry in SVHN_SPLITS.values()):
        return Source("svhn-official", path)
    if _imagenet32_paths(path):
        return Source("imagenet32", path)
    tiny_root = tiny.find_root(path)
    if tiny_root is not None:
        return Source("tinyimagenet", tiny_root)
    root = find_tree_root(path)
    return Source("image-folder", root) if root is not None else None


def split_files(source: Source, split: str) -> list[Path]:
    """The files whose bytes make up `split` (all of them, for a single-file source)."""
    return _READERS[source.format][0](source, split)


def decode(source: Source, split: str) -> Decoded:
    """Decode one split of `source`; raises DataError on missing or malformed data."""
    return _READERS[source.format][1](source, split)


# ------------------------------------------------------------------------ shared bits

_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *((f"numpy.{core}.{mod}", name) for core in ("core", "_core")
      for mod, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                        ("numeric", "_frombuffer"))),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of lists and numpy arrays only: a data file cannot run code."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(blob: bytes, where: str) -> dict[str, object]:
    """A pickled dict with str keys (Python 2 pickles are read as latin-1)."""
    try:
        entry = _ArrayUnpickler(io.BytesIO(blob), encoding="latin1").load()
    except Exception as err:  # pickle raises many types on garbage (EOFError, ValueError, ...)
        raise DataError(f"{where}: cannot unpickle it ({err}); truncated or corrupt?") from err
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected a pickled dict, found {type(entry).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _pickled_batch(blob: bytes, where: str, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N,3,32,32), labels) from a CIFAR-style dict: `data` uint8 N x 3072 in CHW
    order, `labels` N ints in [low, high]."""
    entry = _unpickle(blob, where)
    data, labels = entry.get("data"), entry.get("labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32):
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: expected 'data' uint8 of shape (N, 3072), found {found}")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise DataError(f"{where}: {len(data)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < low or labels.max() > high):
        raise DataError(f"{where}: labels must lie in {low}..{high}, "
                        f"found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def _check_md5(actual: str, expected: str, where: str, hint: str) -> None:
    if actual != expected:
        raise DataError(f"{where}: md5 {actual} does not match the official md5 {expected} "
                        f"(it holds the official number of images, so it must be the "
                        f"official file); it is corrupt or altered: {hint}")


# --------------------------------------------------------------------- official CIFAR-10

def _cifar_names(source: Source, split: str) -> list[tuple[str, str]]:
    if split not in CIFAR10_SPLITS:
        raise unknown_split(source.path, split, list(CIFAR10_SPLITS))
    return [(name, md5) for name, md5 in CIFAR10_SPLITS[split]]


def _cifar_files(source: Source, split: str) -> list[Path]:
    names = [name for name, _ in _cifar_names(source, split)] + [CIFAR10_META]
    if source.path.is_file():
        return [source.path]
    missing = [name for name in names if not (source.path / name).is_file()]
    if missing:
        raise DataError(f"{source.path}: missing {', '.join(missing)} (official CIFAR-10 "
                        f"{split} split); {cifar10_hint(source.path.parent)}")
    return [source.path / name for name in names]


def _read_cifar_blobs(source: Source, names: list[str]) -> dict[str, bytes]:
    if source.path.is_dir():
        return {name: (source.path / name).read_bytes() for name in names}
    blobs = {}
    with readable_archive(source.path):
        for member, read in archive_members(source.path):
            name = PurePosixPath(member).name
            if PurePosixPath(member).parent.name == CIFAR10.base_folder and name in names:
                blobs[name] = read()
    missing = [name for name in names if name not in blobs]
    if missing:
        raise DataError(f"{source.path}: no {CIFAR10.base_folder}/{', '.join(missing)} inside; "
                        f"expected the official archive: {cifar10_hint(source.path.parent)}")
    return blobs


def _decode_cifar(source: Source, split: str) -> Decoded:
    batches = _cifar_names(source, split)
    _cifar_files(source, split)  # names missing files before reading anything
    blobs = _read_cifar_blobs(source, [name for name, _ in batches] + [CIFAR10_META])
    hint = cifar10_hint(source.path.parent)
    sep = "/" if source.path.is_dir() else ":"  # a member of cifar-10-python.tar.gz
    images, labels = [], []
    for name, md5 in batches:
        where = f"{source.path}{sep}{name}"
        batch_images, batch_labels = _pickled_batch(blobs[name], where, 0, 9)
        if len(batch_labels) == CIFAR10_BATCH_SIZE:
            _check_md5(hashlib.md5(blobs[name]).hexdigest(), md5, where, hint)
        images.append(batch_images)
        labels.append(batch_labels)
    classes = _cifar_classes(blobs[CIFAR10_META], f"{source.path}{sep}{CIFAR10_META}")
    return Decoded(np.concatenate(images), np.concatenate(labels), classes, "CIFAR-10")


def _cifar_classes(blob: bytes, where: str) -> tuple[str, ...]:
    names = _unpickle(blob, where).get("label_names")
    if not isinstance(names, list) or len(names) != len(CIFAR10_CLASSES):
        raise DataError(f"{where}: expected 'label_names', a list of 10 class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


# ------------------------------------------------------------------------- official SVHN

def _svhn_files(source: Source, split: str) -> list[Path]:
    if split not in SVHN_SPLITS:
        present = [s for s, entry in SVHN_SPLITS.items() if (source.path / entry[1]).is_file()]
        raise unknown_split(source.path, split, present)
    path = source.path / SVHN_SPLITS[split][1]
    if not path.is_file():
        raise DataError(f"{path} not found (SVHN {split} split): "
                        f"{svhn_hint(source.path, [split])}")
    return [path]


def _decode_svhn(source: Source, split: str) -> Decoded:
    (path,) = _svhn_files(source, split)
    expect = ("expected the official SVHN cropped-digits file: X uint8 (32, 32, 3, N), "
              "y (N, 1) in 1..10")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises many types on garbage; all mean "unreadable"
        raise DataError(f"{path}: cannot read it as a MATLAB file ({err}); truncated or "
                        f"corrupt? {svhn_hint(source.path, [split])}") from err
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise DataError(f"{path}: no variable 'X' or 'y'; {expect}")
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X has shape {x.shape}; {expect}")
    if x.dtype != np.uint8:
        raise DataError(f"{path}: X has dtype {x.dtype}; {expect}")
    if y.size != x.shape[3] or y.shape[0] != x.shape[3]:
        raise DataError(f"{path}: X holds {x.shape[3]} images but y has shape {y.shape}; {expect}")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise DataError(f"{path}: y has non-integer values; {expect}")
    labels = y.reshape(-1).astype(np.int64)
    if len(labels) and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path}: y has values {labels.min()}..{labels.max()}; {expect}")
    if len(labels) == SVHN_OFFICIAL_COUNTS[split]:
        _check_md5(calculate_md5(path), SVHN_SPLITS[split][2], str(path),
                   svhn_hint(source.path, [split]))
    labels[labels == 10] = 0  # SVHN stores digit 0 as label 10
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    return Decoded(images, labels, tuple(str(d) for d in range(10)), "SVHN")


# ---------------------------------------------------------------------------- Imagenet32

_TRAIN_BATCH = re.compile(r"train_data_batch_(\d+)")


def _imagenet32_paths(folder: Path) -> dict[str, Path]:
    """Imagenet32 batch files in `folder` or one level down (Imagenet32_train/ etc.)."""
    found: dict[str, Path] = {}
    for directory in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        for path in sorted(directory.iterdir()):
            if path.is_file() and (path.name == "val_data" or _TRAIN_BATCH.fullmatch(path.name)):
                found.setdefault(path.name, path)
    return found


def _imagenet32_files(source: Source, split: str) -> list[Path]:
    """`val`: val_data; `train`: train_data_batch_1..k, which must start at 1 with no gaps
    (k < 10 is allowed and shows in the description)."""
    found = _imagenet32_paths(source.path)
    if split == "val" and "val_data" in found:
        return [found["val_data"]]
    numbers = sorted(int(m.group(1)) for name in found if (m := _TRAIN_BATCH.fullmatch(name)))
    if split == "train" and numbers:
        expected = list(range(1, numbers[-1] + 1))
        if numbers != expected:
            gaps = ", ".join(f"train_data_batch_{n}" for n in expected if n not in numbers)
            raise DataError(f"{source.path}: missing {gaps} (train batches must run 1..k "
                            f"without gaps); {imagenet32_hint(source.path)}")
        return [found[f"train_data_batch_{n}"] for n in numbers]
    if split in ("train", "val"):
        raise DataError(f"{source.path}: no Imagenet32 {split} files; "
                        f"{imagenet32_hint(source.path)}")
    raise unknown_split(source.path, split, [s for s, ok in
                                             (("train", numbers), ("val", "val_data" in found)) if ok])


def _decode_imagenet32(source: Source, split: str) -> Decoded:
    files = _imagenet32_files(source, split)
    batches = [_pickled_batch(path.read_bytes(), str(path), 1, IMAGENET32_CLASSES)
               for path in files]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches]) - 1  # official labels are 1-based
    description = "Imagenet32"
    if split == "train" and len(files) < IMAGENET32_BATCHES:
        description += f" (train batches 1-{len(files)} of {IMAGENET32_BATCHES})"
    return Decoded(images, labels, tuple(str(c) for c in range(IMAGENET32_CLASSES)), description)


def _single_file(source: Source, split: str) -> list[Path]:
    return [source.path]


_READERS: dict[str, tuple[Callable[[Source, str], list[Path]], Callable[[Source, str], Decoded]]] = {
    "cifar10-official": (_cifar_files, _decode_cifar),
    "svhn-official": (_svhn_files, _decode_svhn),
    "imagenet32": (_imagenet32_files, _decode_imagenet32),
    "tinyimagenet": (tiny_files, decode_tiny),
    "image-folder": (folder_files, decode_folder),
    "image-folder-archive": (_single_file, decode_archive),
}
