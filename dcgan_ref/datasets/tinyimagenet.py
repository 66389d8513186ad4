"""Tiny-ImageNet-200 in its official layout, as a folder or an archive of one.

    <root>/wnids.txt                          the 200 class ids (WordNet ids), one per line
    <root>/train/<wnid>/images/<wnid>_<k>.JPEG
    <root>/val/images/val_<n>.JPEG
    <root>/val/val_annotations.txt            file <TAB> wnid <TAB> box (x0 y0 x1 y1)

Labels follow the order of ``wnids.txt``. The official ``test/`` split has no labels and is
refused. Images keep the size they are stored at (the official download: 64x64); the
protocols bring them to the architecture's size with :func:`dcgan_ref.datasets.loading.resize_to`.
The layout is recognised by ``wnids.txt`` beside ``train/`` or ``val/`` (the official zip
unpacks to ``tiny-imagenet-200/``, one folder down, which is also found).
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from dcgan_ref.runtime.errors import DataError

WNIDS = "wnids.txt"
VAL_ANNOTATIONS = "val/val_annotations.txt"
SPLITS = ("train", "val")
HINT = ("Tiny-ImageNet-200 layout: wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
        "val/val_annotations.txt (from http://cs231n.stanford.edu/tiny-imagenet-200.zip)")


def is_root(folder: Path) -> bool:
    return (folder / WNIDS).is_file() and any((folder / s).is_dir() for s in SPLITS)


def find_root(folder: Path) -> Path | None:
    """``folder`` or the one folder inside it that holds the layout."""
    if is_root(folder):
        return folder
    inside = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_root(p)]
    return inside[0] if len(inside) == 1 else None


def archive_prefix(names: list[str]) -> str | None:
    """The root ('' or 'folder/') of a Tiny-ImageNet tree among an archive's member names, or None."""
    roots = {str(PurePosixPath(n).parent) for n in names if PurePosixPath(n).name == WNIDS}
    roots = {"" if r == "." else r + "/" for r in roots}
    return next(iter(roots)) if len(roots) == 1 else None


def _is_jpeg(name: str) -> bool:
    return name.lower().endswith((".jpeg", ".jpg", ".png")) and not PurePosixPath(name).name.startswith(".")


def split_items(names: list[str], split: str, read_text: Callable[[str], str], where: object
                ) -> tuple[tuple[str, ...], list[tuple[int, str]]]:
    """(class ids in label order, [(label, relative path)]) of ``split``; ``names`` are the
    files under the root, relative to it, '/'-separated."""
    if split == "test":
        raise DataError(f"{where}: Tiny-ImageNet's test split has no labels; use 'train' or 'val'")
    if split not in SPLITS:
        raise DataError(f"{where}: no split {split!r}; available splits: {', '.join(SPLITS)}")
    wnids = tuple(w.strip() for w in read_text(WNIDS).splitlines() if w.strip())
    if len(set(wnids)) != len(wnids) or not wnids:
        raise DataError(f"{where}/{WNIDS}: expected distinct class ids, one per line; {HINT}")
    label = {w: i for i, w in enumerate(wnids)}
    if split == "train":
        items = []
        for name in names:
            parts = name.split("/")
            if len(parts) == 4 and parts[0] == "train" and parts[2] == "images" and _is_jpeg(name):
                if parts[1] not in label:
                    raise DataError(f"{where}/{name}: class {parts[1]!r} is not in {WNIDS}")
                items.append((label[parts[1]], name))
        missing = sorted(set(wnids) - {wnids[i] for i, _ in items})
        if missing:
            raise DataError(f"{where}: no train/<wnid>/images/*.JPEG for {len(missing)} of {len(wnids)} classes "
                            f"in {WNIDS} (first: {missing[0]}); {HINT}")
    else:
        if VAL_ANNOTATIONS not in names:
            raise DataError(f"{where}: missing {VAL_ANNOTATIONS}, which labels the val images; {HINT}")
        present = {n for n in names if n.startswith("val/images/") and _is_jpeg(n)}
        items = []
        for number, line in enumerate(read_text(VAL_ANNOTATIONS).splitlines(), 1):
            fields = line.split("\t")
            if not line.strip():
                continue
            if len(fields) < 2 or fields[1] not in label:
                raise DataError(f"{where}/{VAL_ANNOTATIONS} line {number}: expected 'file<TAB>wnid<TAB>box' "
                                f"with a wnid from {WNIDS}, got {line[:80]!r}")
            key = f"val/images/{fields[0]}"
            if key not in present:
                raise DataError(f"{where}/{VAL_ANNOTATIONS} line {number}: {key} does not exist")
            items.append((label[fields[1]], key))
    if not items:
        raise DataError(f"{where}: no {split} images; {HINT}")
    items.sort(key=lambda item: (item[0], _natural(item[1])))
    return wnids, items


def _natural(name: str) -> tuple[str, int]:
    """n01443537_10.JPEG after n01443537_9.JPEG."""
    stem = PurePosixPath(name).stem
    head, _, tail = stem.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (stem, -1)


def folder_names(root: Path) -> list[str]:
    """Every file under ``root``, relative and '/'-separated (wnids.txt, train/, val/ only)."""
    names = [WNIDS]
    for split in SPLITS:
        if (root / split).is_dir():
            names += [p.relative_to(root).as_posix() for p in (root / split).rglob("*") if p.is_file()]
    return names


def description(items: list[tuple[int, str]], n_classes: int, stored_size: int) -> str:
    lossy = any(key.lower().endswith((".jpeg", ".jpg")) for _, key in items)
    return f"Tiny-ImageNet-{n_classes} ({stored_size}x{stored_size}{' JPEG' if lossy else ''})"


def labels_of(items: list[tuple[int, str]]) -> np.ndarray:
    return np.array([label for label, _ in items], dtype=np.int64)
