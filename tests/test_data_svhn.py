"""Official SVHN cropped digits (.mat): layout checks, label 10 -> 0, md5 policy."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from dcgan_ref.datasets import formats as data_formats
from dcgan_ref.datasets.loading import DataError, detect_format, load_split


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def write_svhn(folder: Path, split: str = "test", x: np.ndarray | None = None,
               y: np.ndarray | None = None) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8) if x is None else x
    y = np.array([[10], [1], [9], [10], [5]], dtype=np.uint8) if y is None else y
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}_32x32.mat"
    scipy.io.savemat(path, {"X": x, "y": y})
    return path


def test_svhn_maps_digit_zero_and_keeps_pixels(tmp_path, cache):
    path = write_svhn(tmp_path / "svhn")
    x = scipy.io.loadmat(path)["X"]

    test = load_split(tmp_path / "svhn", "test", cache_dir=cache)

    assert detect_format(tmp_path / "svhn") == "svhn-official"
    assert test.images.shape == (5, 3, 32, 32) and test.images.is_contiguous()
    assert test.labels.tolist() == [0, 1, 9, 0, 5]
    assert test.images[2, 1, 3, 17] == x[3, 17, 1, 2]  # X is (row, column, channel, image)
    assert torch.equal(test.images[4].permute(1, 2, 0), torch.from_numpy(x[..., 4]))
    assert test.classes == tuple("0123456789") and test.description == "SVHN"


def good_x(n: int = 5) -> np.ndarray:
    return np.zeros((32, 32, 3, n), np.uint8)


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((32, 32, 5), np.uint8), None, r"X has shape \(32, 32, 5\)"),
    (np.zeros((28, 28, 3, 5), np.uint8), None, r"X has shape \(28, 28, 3, 5\)"),
    (good_x().astype(np.float64), None, "X has dtype float64"),
    (None, np.array([[1], [0], [3], [4], [5]]), r"y has values 0..5"),
    (None, np.array([[1], [11], [3], [4], [5]]), r"y has values 1..11"),
    (None, np.ones((6, 1), np.uint8), r"X holds 5 images but y has shape \(6, 1\)"),
])
def test_svhn_bad_layout_is_named(tmp_path, cache, x, y, message):
    write_svhn(tmp_path / "svhn", x=x, y=y)
    with pytest.raises(DataError, match=message) as err:
        load_split(tmp_path / "svhn", "test", cache_dir=cache)
    assert "test_32x32.mat" in str(err.value) and "expected the official SVHN" in str(err.value)


def test_svhn_truncated_file_is_named(tmp_path, cache):
    path = write_svhn(tmp_path / "svhn")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"test_32x32.mat: cannot read it as a MATLAB file .*"
                                        r"put test_32x32.mat \(from http://ufldl"):
        load_split(tmp_path / "svhn", "test", cache_dir=cache)
    assert not (tmp_path / "cache").exists()


def test_svhn_file_with_the_official_count_must_have_the_official_md5(tmp_path, cache, monkeypatch):
    path = write_svhn(tmp_path / "svhn")
    monkeypatch.setitem(data_formats.SVHN_OFFICIAL_COUNTS, "test", 5)
    with pytest.raises(DataError, match="md5 .* does not match the official md5 "
                                        "eb5a983be6a315427106f1b164d9cef3"):
        load_split(tmp_path / "svhn", "test", cache_dir=cache)

    url, name, _ = data_formats.SVHN_SPLITS["test"]
    monkeypatch.setitem(data_formats.SVHN_SPLITS, "test", [url, name, hashlib.md5(path.read_bytes()).hexdigest()])
    assert len(load_split(tmp_path / "svhn", "test", cache_dir=cache)) == 5


def test_svhn_missing_split_says_which_file_to_put_where(tmp_path, cache):
    write_svhn(tmp_path / "svhn", "test")
    with pytest.raises(DataError, match=r"put train_32x32.mat \(from http://ufldl.stanford.edu/"
                                        r"housenumbers/train_32x32.mat\) in .*svhn"):
        load_split(tmp_path / "svhn", "train", download=False, cache_dir=cache)
    with pytest.raises(DataError, match="no split 'val'; available splits: test"):
        load_split(tmp_path / "svhn", "val", cache_dir=cache)
