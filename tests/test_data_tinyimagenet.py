"""Tiny-ImageNet-200's official layout, on a synthetic tree: labels, order, archives, errors;
and the box filter that brings its 64x64 images to 32x32."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan_ref.datasets.loading import DataError, detect_format, load_split, resize_to
from tests.test_data import write_tar, write_zip

WNIDS = ("n02", "n01", "n03")  # wnids.txt order is the label order, not sorted


def jpeg(value: int, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value, 0, 255 - value)).save(buffer, format="PNG")  # lossless, named .JPEG
    return buffer.getvalue()


def tiny_files(size: int = 64) -> dict[str, bytes]:
    """wnid i, image k: red value 40 i + k. The val images are labelled only by the annotations."""
    files = {"wnids.txt": ("\n".join(WNIDS) + "\n").encode(), "words.txt": b"n01\tsomething\n"}
    for i, w in enumerate(WNIDS):
        files[f"train/{w}/{w}_boxes.txt"] = b"ignored"
        for k in (10, 2, 1):
            files[f"train/{w}/images/{w}_{k}.JPEG"] = jpeg(40 * i + k, size)
    lines = []
    for n, w in enumerate(("n03", "n02", "n03", "n01")):
        files[f"val/images/val_{n}.JPEG"] = jpeg(200 + n, size)
        lines.append(f"val_{n}.JPEG\t{w}\t0\t0\t{size - 1}\t{size - 1}")
    files["val/val_annotations.txt"] = ("\n".join(lines) + "\n").encode()
    return files


def write(root: Path, files: dict[str, bytes]) -> Path:
    for key, blob in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(blob)
    return root


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def test_train_labels_follow_wnids_and_files_in_numeric_order(tmp_path, cache):
    root = write(tmp_path / "tiny-imagenet-200", tiny_files())
    train = load_split(tmp_path, "train", cache_dir=cache)  # one folder down, as the official zip unpacks
    assert detect_format(root) == "tinyimagenet" and train.classes == WNIDS
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert train.images[:, 0, 0, 0].tolist() == [1, 2, 10, 41, 42, 50, 81, 82, 90]
    assert tuple(train.images.shape[1:]) == (3, 64, 64)
    assert train.description == "Tiny-ImageNet-3 (64x64 JPEG)"


def test_val_labels_come_from_the_annotations(tmp_path, cache):
    val = load_split(write(tmp_path / "t", tiny_files()), "val", cache_dir=cache)
    by_value = dict(zip(val.images[:, 0, 0, 0].tolist(), val.labels.tolist()))
    assert by_value == {200: 2, 201: 0, 202: 2, 203: 1}


@pytest.mark.parametrize("archive", ["tiny.tar.xz", "tiny.zip"])
def test_an_archive_reads_like_the_folder(tmp_path, cache, archive):
    files = tiny_files(size=32)
    folder = load_split(write(tmp_path / "t", files), "train", cache_dir=cache)
    nested = {f"tinyimagenet32/{k}": v for k, v in files.items()}
    path = write_zip(tmp_path / archive, nested) if archive.endswith("zip") else write_tar(tmp_path / archive, nested,
                                                                                             "w:xz")
    for split in ("train", "val"):
        packed = load_split(path, split, cache_dir=cache)
        same = load_split(tmp_path / "t", split, cache_dir=cache)
        assert torch.equal(packed.images, same.images) and torch.equal(packed.labels, same.labels)
    assert load_split(path, "train", cache_dir=cache).classes == folder.classes


@pytest.mark.parametrize("break_it, message", [
    (lambda f: f.pop("val/val_annotations.txt"), "missing val/val_annotations.txt"),
    (lambda f: f.update({"val/val_annotations.txt": b"val_0.JPEG\tn99\t0 0 1 1\n"}), "line 1: expected"),
    (lambda f: f.pop("val/images/val_2.JPEG"), "val/images/val_2.JPEG does not exist"),
])
def test_bad_val_labels_are_named(tmp_path, cache, break_it, message):
    files = tiny_files()
    break_it(files)
    with pytest.raises(DataError, match=message):
        load_split(write(tmp_path / "t", files), "val", cache_dir=cache)


def test_missing_class_and_unlabelled_test_split_are_refused(tmp_path, cache):
    files = {k: v for k, v in tiny_files().items() if not k.startswith("train/n03/")}
    root = write(tmp_path / "t", files)
    with pytest.raises(DataError, match=r"1 of 3 classes .*first: n03"):
        load_split(root, "train", cache_dir=cache)
    with pytest.raises(DataError, match="test split has no labels"):
        load_split(root, "test", cache_dir=cache)


def test_box_filter_is_the_mean_of_each_block_and_never_upscales():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4).mul(3).remainder(256).to(torch.uint8)
    out = resize_to(x, 2, chunk=1)
    blocks = x.float().reshape(2, 3, 2, 2, 2, 2).mean((3, 5))
    assert out.dtype == torch.uint8 and torch.equal(out, blocks.round().to(torch.uint8))
    # PIL's BOX filter gives the same 2x2 means (to rounding)
    pil = np.asarray(Image.fromarray(x[0].permute(1, 2, 0).numpy()).resize((2, 2), Image.Resampling.BOX))
    assert np.abs(pil.transpose(2, 0, 1).astype(int) - out[0].numpy().astype(int)).max() <= 1
    assert resize_to(x, 4) is x
    with pytest.raises(DataError, match="never upscaled"):
        resize_to(x, 8)
