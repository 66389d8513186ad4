"""The encoding pair's JPEG side: the same images as the lossless slice, found by rank within
class, checked pixel by pixel (synthetic trees)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.studies import encoding_pair
from dcgan_ref.datasets.loading import load_split
from dcgan_ref.runtime.errors import UserError
from tests.conftest import write_image_folder


def _slice(whole, root, per_class, swap=False):
    """A 'lossless' slice of ``whole``: each class's first images a few levels off (as the JPEG
    copy is off the originals), named by made-up official indices whose order is the rank order."""
    rng = np.random.default_rng(1)
    for split, n in per_class.items():
        for c, folder in enumerate(sorted((whole / split).iterdir())):
            order = [1, 0, *range(2, n)] if swap and split == "train" and c == 0 else list(range(n))
            out = root / split / folder.name
            out.mkdir(parents=True)
            for k, j in enumerate(order):
                img = np.asarray(Image.open(folder / f"{j}.png")).astype(int) + rng.integers(-3, 4, (32, 32, 3))
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out / f"{k * 10 + c:05d}.png")
    return root


def test_the_jpeg_side_holds_the_slices_images_in_their_order(tmp_path):
    whole = write_image_folder(tmp_path / "jpeg", {"train": 6, "test": 3})
    lossless = _slice(whole, tmp_path / "lossless", {"train": 4, "test": 2})
    record = encoding_pair.build(str(lossless), str(whole), tmp_path / "pair", log=lambda *_: None)
    for split, n in (("train", 4), ("test", 2)):
        built, source = load_split(tmp_path / "pair", split), load_split(whole, split)
        first = torch.cat([torch.nonzero(source.labels == c).flatten()[:n] for c in range(10)])
        assert torch.equal(built.images, source.images[first]) and torch.equal(built.labels, source.labels[first])
        assert record["splits"][split]["images"] == 10 * n and record["splits"][split]["max_levels"] <= 3
    assert json.loads((tmp_path / "pair" / "pair.json").read_text()) == record
    with pytest.raises(UserError, match="exists"):
        encoding_pair.build(str(lossless), str(whole), tmp_path / "pair")


def test_a_slice_out_of_rank_order_is_refused_and_nothing_is_written(tmp_path):
    whole = write_image_folder(tmp_path / "jpeg", {"train": 6, "test": 3})
    lossless = _slice(whole, tmp_path / "lossless", {"train": 4, "test": 2}, swap=True)
    with pytest.raises(UserError, match="2 of 40 pairs are not the same image"):
        encoding_pair.build(str(lossless), str(whole), tmp_path / "pair")
    assert not (tmp_path / "pair").exists()
