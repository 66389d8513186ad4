"""Image-folder trees (``<root>/<split>/<class>/*.png|jpg``), archives of them, and
Tiny-ImageNet-200's official layout, decoded into uint8 images: the formats whose images are
files, one per image (the official CIFAR-10, SVHN and Imagenet32 readers are in ``formats``)."""
from __future__ import annotations

import gzip
import io
import lzma
import stat
import tarfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from dcgan_ref.datasets import tinyimagenet as tiny
from dcgan_ref.datasets.source import ARCHIVE_SUFFIXES, CIFAR10_CLASSES, IMAGE_SUFFIXES, Decoded, Source, unknown_split
from dcgan_ref.runtime.errors import DataError

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


def find_tree_root(path: Path) -> Path | None:
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


def folder_files(source: Source, split: str) -> list[Path]:
    _, items = _tree_order(_dir_tree(source.path), split, source.path)
    return [source.path / key for _, key in items]


def decode_folder(source: Source, split: str) -> Decoded:
    return _tree_result(_dir_tree(source.path), split, source.path, source.path.name,
                        f"{source.path}/", lambda key: (source.path / key).read_bytes())


# ------------------------------------------------------------- archives of such trees

@contextmanager
def readable_archive(path: Path) -> Iterator[None]:
    """Turn the many ways a broken archive fails into one DataError naming it."""
    try:
        yield
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, lzma.LZMAError,
            zlib.error) as err:
        raise DataError(f"{path}: cannot read the archive ({err}); truncated or corrupt?") from err


def archive_members(path: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
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
    with readable_archive(path):
        for name, read in archive_members(path):
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


def decode_archive(source: Source, split: str) -> Decoded:
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


def tiny_files(source: Source, split: str) -> list[Path]:
    names = tiny.folder_names(source.path)
    _, items = tiny.split_items(names, split, lambda key: (source.path / key).read_text(), source.path)
    extra = [tiny.WNIDS] + ([tiny.VAL_ANNOTATIONS] if split == "val" else [])  # the labels are part of the split
    return [source.path / key for key in extra] + [source.path / key for _, key in items]


def decode_tiny(source: Source, split: str) -> Decoded:
    return _tiny_result(tiny.folder_names(source.path), split, str(source.path),
                        lambda key: (source.path / key).read_bytes(), lambda key: (source.path / key).read_text())
