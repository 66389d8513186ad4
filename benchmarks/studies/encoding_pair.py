"""The JPEG side of the sensitivity table's encoding pair: the same images as a lossless slice,
taken from a JPEG copy of the whole set, checked pixel by pixel, written as an image-folder tree.

    python -m benchmarks.studies.encoding_pair --lossless ../shared/data/cifar10_lossless_slice.tar.xz \\
        --jpeg ../shared/data/cifar10_jpeg.tar.xz --out data/jpeg_slice

then ``--encoding-pair <lossless>,data/jpeg_slice`` in ``benchmarks.studies.sensitivity``.

The slice holds every official image below some index (CIFAR-10's: train 0-3,999, test 0-999)
and names each file by its official index; the JPEG copy names each by its rank within its class
in the official order. So a class's k-th slice image (by index) is that class's k-th JPEG image
(by rank). Each pair is checked: a JPEG decode is a few levels off its original, another image is
tens of levels off, so a layout that breaks the rule fails here, not as a quiet shift in a table.
The tree names each image by its rank within its class (PNGs: they hold the JPEG decode losslessly).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from PIL import Image

from dcgan_ref.datasets.loading import ImageSet, load_split
from dcgan_ref.runtime.errors import UserError, run_cli
from dcgan_ref.runtime.progress import Progress

SPLITS = ("train", "test")
# Mean absolute difference (0-255 levels) above which two images are not the same image. The
# CIFAR-10 JPEG copy's decode is 5.8 levels off on average (../shared/data/README.md); two
# different CIFAR-10 images are typically 50 or more apart.
SAME_IMAGE_LEVELS = 20.0


def matched(lossless: ImageSet, jpeg: ImageSet, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per lossless image, the index of the same image in ``jpeg`` and their mean absolute difference."""
    if lossless.classes != jpeg.classes:
        raise UserError(f"{where}: the class folders differ ({list(lossless.classes)} against {list(jpeg.classes)})")
    if lossless.images.shape[1:] != jpeg.images.shape[1:]:
        raise UserError(f"{where}: image sizes differ ({tuple(lossless.images.shape[1:])} against "
                        f"{tuple(jpeg.images.shape[1:])})")
    index = []
    for label, name in enumerate(lossless.classes):
        n = int((lossless.labels == label).sum())
        have = torch.nonzero(jpeg.labels == label).flatten()
        if len(have) < n:
            raise UserError(f"{where}: class {name} has {n} lossless images but only {len(have)} JPEG ones")
        index.append(have[:n])
    index = torch.cat(index)
    diff = (lossless.images.float() - jpeg.images[index].float()).abs().mean(dim=(1, 2, 3))
    bad = torch.nonzero(diff > SAME_IMAGE_LEVELS).flatten()
    if len(bad):
        raise UserError(f"{where}: {len(bad)} of {len(diff)} pairs are not the same image (mean difference "
                        f"{diff[bad[0]]:.1f} levels at the first, image {int(bad[0])}; the same image differs by "
                        f"under {SAME_IMAGE_LEVELS:g}): is the JPEG copy named by rank within class, and the slice "
                        f"every image below an index?")
    return index, diff


def build(lossless_spec: str, jpeg_spec: str, out: Path, log=print) -> dict:
    """Write the tree and its ``pair.json`` (sources, counts, per-split differences); return the latter."""
    if out.exists():
        raise UserError(f"--out {out} exists; remove it or name another folder")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    record: dict = {"lossless": lossless_spec, "jpeg": jpeg_spec, "same_image_levels": SAME_IMAGE_LEVELS,
                    "splits": {}}
    for split in SPLITS:
        lossless = load_split(lossless_spec, split, download=False)
        jpeg = load_split(jpeg_spec, split, download=False)
        index, diff = matched(lossless, jpeg, f"{split} split")
        rank = torch.zeros(len(lossless.classes), dtype=torch.int64)
        progress = Progress(f"{split}: writing", len(index), log=log)
        for label, image in zip(lossless.labels.tolist(), jpeg.images[index]):
            progress.update()
            path = tmp / split / lossless.classes[label] / f"{int(rank[label]):05d}.png"  # its rank within class
            rank[label] += 1
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
        record["splits"][split] = {"images": len(index), "lossless_sha256": lossless.sha256,
                                   "jpeg_sha256": jpeg.sha256, "mean_levels": round(float(diff.mean()), 3),
                                   "max_levels": round(float(diff.max()), 3)}
        log(f"{split}: {len(index):,} images matched, mean difference {diff.mean():.2f} levels "
            f"(max {diff.max():.2f})")
    (tmp / "pair.json").write_text(json.dumps(record, indent=1) + "\n")
    tmp.rename(out)
    log(f"wrote {out}")
    return record


def main(argv: list[str] | None = None, log=print) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.encoding_pair", description=__doc__.split("\n")[0])
    p.add_argument("--lossless", required=True, help="the lossless slice (tree or archive), named by official index")
    p.add_argument("--jpeg", required=True, help="the JPEG copy of the whole set (tree or archive), named by rank "
                                                 "within class")
    p.add_argument("--out", required=True, help="the folder to write (must not exist)")
    args = p.parse_args(argv)
    return build(args.lossless, args.jpeg, Path(args.out), log)


if __name__ == "__main__":
    run_cli(main)
