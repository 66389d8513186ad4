"""Readers for the data formats dcgan-repro accepts.

Each format has three jobs: `locate` recognises it in a path, `split_files` lists the
files whose bytes define one split (what the content hash covers), and `decode` turns a
split into uint8 images (N, 3, H, W) and int64 labels. Hashing and caching live in
`dcgan_ref.datasets.loading`, which is the module other code should import.

md5 policy for official files: a CIFAR-10 batch or SVHN .mat that holds the official
number of images claims to be the official file, so its md5 must match torchvision's
(else DataError). Files with other counts (synthetic test files, user subsets) are not
official and are checked by layout only; every file is always layout-checked.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import pickle
import re
import stat
import tarfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np
import scipy.io
from PIL import Image
from torchvision.datasets import CIFAR10, SVHN
from torchvision.datasets.utils import calculate_md5

from dcgan_ref.datasets import tinyimagenet as tiny
from dcgan_ref.runtime.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_SPLITS = {"train": CIFAR10.train_list, "test": CIFAR10.test_list}  # [name, md5]
CIFAR10_META = CIFAR10.meta["filename"]
CIFAR10_BATCH_SIZE = 10_000  # images in each official batch
SVHN_SPLITS = dict(SVHN.split_list)  # split -> [url, filename, md5]
SVHN_OFFICIAL_COUNTS = {"train": 73_257, "test": 26_032, "extra": 531_131}
IMAGENET32_BATCHES = 10
IMAGENET32_CLASSES = 1000
IMAGENET32_URL = "https://image-net.org/download-images (Downsampled ImageNet 32x32)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar", ".zip")
ACCEPTED = """accepted data sources:
  - official CIFAR-10: a folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz
  - official SVHN: a folder holding train_32x32.mat, test_32x32.mat, extra_32x32.mat
  - Imagenet32: a folder holding train_data_batch_1..10 and/or val_data (pickled batches)
  - Tiny-ImageNet-200: a folder (or archive) holding wnids.txt, train/<wnid>/images/, val/ (splits train, val)
  - an image-folder tree <root>/<split>/<class>/*.png|jpg|jpeg (or one folder down)
  - an archive of such a tree: .tar.xz, .tar.gz, .tgz, .tar or .zip (plain files only: links and
    members outside the archive are refused)"""



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
    root = _find_tree_root(path)
    return Source("image-folder", root) if root is not None else None


def split_files(source: Source, split: str) -> list[Path]:
    """The files whose bytes make up `split` (all of them, for a single-file source)."""
    return _READERS[source.format][0](source, split)


def decode(source: Source, split: str) -> Decoded:
    """Decode one split of `source`; raises DataError on missing or malformed data."""
    return _READERS[source.format][1](source, split)


def unknown_split(where: object, split: str, available: list[str]) -> DataError:
    return DataError(f"{where}: no split {split!r}; available splits: {', '.join(available)}")


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
    with _readable_archive(source.path):
        for member, read in _archive_members(source.path):
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


# -------------------------------------------------------------- image-folder trees

Tree = dict[str, dict[str, list[str]]]  # split -> class -> file names


def _visible(name: str) -> bool:
    return not name.startswith(".") and name != "__MACOSX"


def _is_image(name: str) -> bool:
    return _visible(name) and name.lower().endswith(IMAGE_SUFFIXES)


def _dir_tree(root: Path) -> Tree:
    """Splits of `root` that hold at least one class folder with images."""
    tree: Tree = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p.name)):
        classes = {c.name: [f.name for f in c.iterdir() if f.is_file() and _is_image(f.name)]
                   for c in split_dir.iterdir() if c.is_dir() and _visible(c.name)}
        if any(classes.values()):
            tree[split_dir.name] = classes
    return tree


def _find_tree_root(path: Path) -> Path | None:
    if _dir_tree(path):
        return path
    roots = [p for p in sorted(path.iterdir()) if p.is_dir() and _visible(p.name) and _dir_tree(p)]
    if len(roots) > 1:
        raise DataError(f"{path}: several image-folder trees inside "
                        f"({', '.join(p.name for p in roots)}); pass the one to use")
    return roots[0] if roots else None


def _file_order(name: str) -> tuple[int, int, str]:
    """Numeric stems in numeric order (9.jpg before 10.jpg), then the rest by name."""
    stem = name.rsplit(".", 1)[0]
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def _tree_order(tree: Tree, split: str, where: object) -> tuple[tuple[str, ...], list[tuple[int, str]]]:
    """Sorted class names and (label, 'split/class/file') for every image of `split`."""
    if split not in tree:
        raise unknown_split(where, split, sorted(tree))
    classes = tuple(sorted(tree[split]))
    for other in sorted(tree):
        if tuple(sorted(tree[other])) != classes:
            raise DataError(f"{where}: class folders differ between {split}/ {list(classes)} "
                            f"and {other}/ {sorted(tree[other])}; every split needs the same")
    for name in classes:
        if not tree[split][name]:
            raise DataError(f"{where}: class folder {split}/{name}/ holds no "
                            f"{'/'.join(IMAGE_SUFFIXES)} images")
    items = [(label, f"{split}/{name}/{file}") for label, name in enumerate(classes)
             for file in sorted(tree[split][name], key=_file_order)]
    return classes, items


def _tree_description(classes: tuple[str, ...], keys: list[str], name: str) -> str:
    if classes != CIFAR10_CLASSES:
        return f"image folder {name}"
    lossy = any(key.lower().endswith((".jpg", ".jpeg")) for key in keys)
    return "CIFAR-10 (JPEG copy)" if lossy else "CIFAR-10 (image folder)"


def _decode_image(blob: bytes, where: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, as torchvision's ImageFolder loads it: grey, palette and CMYK become
    RGB, RGBA drops its alpha (no compositing). The file's content decides its format, not its
    suffix (a JPEG named .png decodes as the JPEG it is). 16-bit grey keeps its top 8 bits:
    PIL's own conversion would clip every value over 255 to white. Float images are refused."""
    if not blob:
        raise DataError(f"{where}: an empty file (0 bytes), not an image; replace or remove it")
    try:
        with Image.open(io.BytesIO(blob)) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.clip(np.asarray(image, dtype=np.int64) >> 8, 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            if image.mode == "F":
                raise DataError(f"{where}: a floating-point image (PIL mode F), whose range has no standard "
                                f"mapping to 8-bit RGB; convert it to 8-bit first")
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{where}: not a readable image ({err}); replace or remove it") from err


def _decode_images(keys: list[str], read: Callable[[str], bytes], base: str) -> np.ndarray:
    """Decode every key to RGB into one preallocated (N, 3, H, W) array; sizes must agree.
    Errors name the image as `base + key`."""
    first = _decode_image(read(keys[0]), f"{base}{keys[0]}")
    out = np.empty((len(keys), 3, *first.shape[:2]), dtype=np.uint8)
    for i, key in enumerate(keys):
        pixels = first if i == 0 else _decode_image(read(key), f"{base}{key}")
        if pixels.shape != first.shape:
            raise DataError(f"{base}{key}: image is {pixels.shape[1]}x{pixels.shape[0]}, "
                            f"but {keys[0]} is {first.shape[1]}x{first.shape[0]}; "
                            f"all images must share one size")
        out[i] = pixels.transpose(2, 0, 1)
    return out


def _tree_result(tree: Tree, split: str, where: Path, name: str, base: str,
                 read: Callable[[str], bytes]) -> Decoded:
    classes, items = _tree_order(tree, split, where)
    keys = [key for _, key in items]
    images = _decode_images(keys, read, base)
    labels = np.array([label for label, _ in items], dtype=np.int64)
    return Decoded(images, labels, classes, _tree_description(classes, keys, name))


def _folder_files(source: Source, split: str) -> list[Path]:
    _, items = _tree_order(_dir_tree(source.path), split, source.path)
    return [source.path / key for _, key in items]


def _decode_folder(source: Source, split: str) -> Decoded:
    return _tree_result(_dir_tree(source.path), split, source.path, source.path.name,
                        f"{source.path}/", lambda key: (source.path / key).read_bytes())


# ------------------------------------------------------------- archives of such trees

@contextmanager
def _readable_archive(path: Path) -> Iterator[None]:
    """Turn the many ways a broken archive fails into one DataError naming it."""
    try:
        yield
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, lzma.LZMAError,
            zlib.error) as err:
        raise DataError(f"{path}: cannot read the archive ({err}); truncated or corrupt?") from err


def _archive_members(path: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, read) for each file and folder, streamed in archive order; folder names
    end in '/' (their reader returns b'')."""
    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise DataError(f"{path}: member {info.filename!r} is a symbolic link; a data archive must "
                                    f"hold plain files")
                yield info.filename, (lambda info=info: archive.read(info))
        return
    # Stream (no seeking in compressed data). We decompress ourselves because gzip/lzma
    # files raise EOFError on truncation where tarfile's own stream would just stop early.
    lower = path.name.lower()
    opener = lzma.open if lower.endswith(".xz") else gzip.open if lower.endswith((".gz", ".tgz")) else open
    with opener(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as archive:
        for member in archive:
            if member.issym() or member.islnk():  # a dataset holds files; a link may point anywhere
                raise DataError(f"{path}: member {member.name!r} is a link (to {member.linkname!r}); a data "
                                f"archive must hold plain files")
            if member.isdir():
                yield member.name.rstrip("/") + "/", bytes
            elif member.isfile():
                yield member.name, (lambda member=member: archive.extractfile(member).read())
        end_marker = archive.offset  # where the zero blocks that end a tar must start
        while raw.read(1 << 20):  # read to the end, so a truncated stream is noticed
            pass
        if raw.tell() < end_marker + 2 * tarfile.BLOCKSIZE:
            raise tarfile.ReadError("the tar ends before its end-of-archive marker")


def _scan_archive(path: Path, split: str) -> tuple[list[tuple[str, ...]], dict[str, bytes], list[str]]:
    """One pass over the archive: the parts of every image-folder image and folder path
    (folders end in ''), the bytes of the images that may belong to `split` and of the text
    files (Tiny-ImageNet's labels), and every file's name."""
    paths: list[tuple[str, ...]] = []
    blobs: dict[str, bytes] = {}
    names: list[str] = []
    with _readable_archive(path):
        for name, read in _archive_members(path):
            parts = PurePosixPath(name).parts
            if parts and (parts[0] == "/" or ".." in parts):
                # Nothing is ever extracted to disk, but such a name says the archive was not
                # made from a dataset's folder: refuse it rather than silently drop images.
                raise DataError(f"{path}: member {name!r} points outside the archive (an absolute path or '..'); "
                                f"refusing it")
            if not parts or not all(_visible(p) for p in parts):
                continue
            if name.endswith("/"):
                if len(parts) in (2, 3):  # a class folder, possibly empty
                    paths.append((*parts, ""))
                continue
            names.append("/".join(parts))
            if _is_image(parts[-1]) and len(parts) in (3, 4):
                paths.append(parts)
            if (_is_image(parts[-1]) and split in parts[:-1]) or parts[-1].endswith(".txt"):
                blobs["/".join(parts)] = read()
    return paths, blobs, names


def _archive_tree(path: Path, paths: list[tuple[str, ...]]) -> tuple[str, Tree]:
    """The archive's tree and its root prefix ('' or 'folder/'); one root allowed."""
    prefixes = sorted({parts[:-3] for parts in paths if parts[-1]})
    if len(prefixes) != 1:
        found = ", ".join("/".join(p) or "(top level)" for p in prefixes) or "no images"
        raise DataError(f"{path}: expected one tree <root>/<split>/<class>/<image> (or one "
                        f"folder down), found images under: {found}")
    prefix = prefixes[0]
    tree: Tree = {}
    for parts in sorted(paths, key=lambda p: p[-1] == ""):  # images first, then folders
        if parts[:-3] == prefix and (parts[-1] or parts[-3] in tree):
            files = tree.setdefault(parts[-3], {}).setdefault(parts[-2], [])
            files += [parts[-1]] if parts[-1] else []
    return "".join(f"{p}/" for p in prefix), tree


def _archive_stem(path: Path) -> str:
    name = path.name
    suffix = next(s for s in ARCHIVE_SUFFIXES if name.lower().endswith(s))
    return name[: -len(suffix)]


def _decode_archive(source: Source, split: str) -> Decoded:
    paths, blobs, names = _scan_archive(source.path, split)
    tiny_prefix = tiny.archive_prefix(names)
    if tiny_prefix is not None:
        inside = [n[len(tiny_prefix):] for n in names if n.startswith(tiny_prefix)]
        return _tiny_result(inside, split, f"{source.path}:{tiny_prefix}",
                            lambda key: blobs.pop(tiny_prefix + key), lambda key: blobs[tiny_prefix + key].decode())
    prefix, tree = _archive_tree(source.path, paths)
    return _tree_result(tree, split, source.path, _archive_stem(source.path),
                        f"{source.path}:{prefix}", lambda key: blobs.pop(prefix + key))


# ------------------------------------------------------------- Tiny-ImageNet-200

def _tiny_result(names: list[str], split: str, where: str, read: Callable[[str], bytes],
                 read_text: Callable[[str], str]) -> Decoded:
    classes, items = tiny.split_items(names, split, read_text, where)
    keys = [key for _, key in items]
    images = _decode_images(keys, read, where if where.endswith(("/", ":")) else f"{where}/")
    return Decoded(images, tiny.labels_of(items), classes, tiny.description(items, len(classes), images.shape[-1]))


def _tiny_files(source: Source, split: str) -> list[Path]:
    names = tiny.folder_names(source.path)
    _, items = tiny.split_items(names, split, lambda key: (source.path / key).read_text(), source.path)
    extra = [tiny.WNIDS] + ([tiny.VAL_ANNOTATIONS] if split == "val" else [])  # the labels are part of the split
    return [source.path / key for key in extra] + [source.path / key for _, key in items]


def _decode_tiny(source: Source, split: str) -> Decoded:
    return _tiny_result(tiny.folder_names(source.path), split, str(source.path),
                        lambda key: (source.path / key).read_bytes(), lambda key: (source.path / key).read_text())


def _single_file(source: Source, split: str) -> list[Path]:
    return [source.path]


_READERS: dict[str, tuple[Callable[[Source, str], list[Path]], Callable[[Source, str], Decoded]]] = {
    "cifar10-official": (_cifar_files, _decode_cifar),
    "svhn-official": (_svhn_files, _decode_svhn),
    "imagenet32": (_imagenet32_files, _decode_imagenet32),
    "tinyimagenet": (_tiny_files, _decode_tiny),
    "image-folder": (_folder_files, _decode_folder),
    "image-folder-archive": (_single_file, _decode_archive),
}
