"""The naive path: the usual tutorial training loop (pytorch/examples' dcgan), the baseline
for ``train_speedup_vs_naive_x``.

``torchvision.datasets.ImageFolder`` over image files with per-sample transforms, a
``DataLoader``, float images in [-1, 1], eager fp32, unfused Adam (the same optimiser
construction as training, :func:`dcgan_ref.step.make_adam`), and the losses read back every
step (``.item()``, a host sync), as the tutorial's per-step log line does.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from benchmarks.throughput.timing import Figure, Sizes, rate_figure
from dcgan_ref.models import Discriminator, Generator, build_gan, get_architecture
from dcgan_ref.runtime.limits import time_calls
from dcgan_ref.step import make_adam

NaiveStep = Callable[[torch.Tensor, torch.Tensor], tuple[float, float]]


def make_naive_step(g: Generator, d: Discriminator, opt_g: torch.optim.Optimizer,
                    opt_d: torch.optim.Optimizer) -> NaiveStep:
    """The tutorial step: float images in [-1, 1], fp32, D's weight gradients computed in
    G's update too, and both losses read back (``.item()``) every step."""

    def step(real: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
        fake = g(z)
        out_real, out_fake = d(real), d(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
                  + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        out_gen = d(fake)
        loss_g = F.binary_cross_entropy_with_logits(out_gen, torch.ones_like(out_gen))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    return step


def naive_loader(folder: Path, image_size: int, batch: int, workers: int) -> DataLoader:
    """``ImageFolder`` + per-sample ``Resize`` (if needed), ``ToTensor``, ``Normalize`` + ``DataLoader``."""
    tf = [transforms.Resize(image_size)] if image_size != _folder_image_size(folder) else []
    dataset = datasets.ImageFolder(str(folder), transforms.Compose(
        [*tf, transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    return DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)


def _folder_image_size(folder: Path) -> int:
    first = next(p for p in sorted(folder.rglob("*")) if p.is_file())
    with Image.open(first) as im:
        return im.size[0]


def endless(loader: DataLoader) -> Iterator[torch.Tensor]:
    """The loader's image batches, epoch after epoch."""
    while True:
        for images, _ in loader:
            yield images


def naive_loop(arch_name: str, batch: int, folder: Path, device: torch.device,
               workers: int = 4) -> Callable[[], tuple[float, float]]:
    """One call = one tutorial training step: next loader batch to the device, step, losses read back."""
    arch = get_architecture(arch_name)
    g, d = build_gan(arch_name, 0)
    g, d = g.to(device), d.to(device)
    step = make_naive_step(g, d, make_adam(g, fused=False), make_adam(d, fused=False))
    batches = endless(naive_loader(folder, arch.image_size, batch, workers))

    def call() -> tuple[float, float]:
        return step(next(batches).to(device), arch.sample_z(batch, device))

    return call


def measure_naive_train(arch_name: str, batch: int, folder: Path, device: torch.device, sizes: Sizes, *,
                        workers: int = 4, flops: int | None = None, source: str = "", data_sha256: str = "") -> Figure:
    """Training throughput of the tutorial loop over an image folder (loader start-up is in the warm-up)."""
    workers = min(workers, os.cpu_count() or 1)
    call = naive_loop(arch_name, batch, folder, device, workers)
    times = time_calls(call, device=device, calls=sizes.naive_calls, warmup=sizes.naive_warmup, repeats=sizes.repeats)
    return rate_figure("naive_train_img_per_s", times, batch, extractor=arch_name, batch=batch, flops=flops,
                       wall_s=sum(times) * sizes.naive_calls, data_sha256=data_sha256,
                       notes=f"ImageFolder over {source or folder.name} + DataLoader ({workers} workers), "
                             f"per-sample transforms, fp32 eager, unfused Adam, .item() per step")


# ----------------------------------------------------------------------------- the image folder
def prepare_image_folder(source: Path | None, dest: Path, *, synthetic_images: int = 256,
                         synthetic_size: int = 32) -> tuple[Path, str]:
    """A folder ``<class>/<image>`` for ``ImageFolder`` and a label for the table.

    ``source``: an image-folder tree (its ``train`` split is used when there is one) or a
    ``.tar``/``.tar.gz``/``.tar.xz`` of one, extracted under ``dest``; None writes random
    JPEGs under ``dest`` instead.  Done before any timing.
    """
    if source is None:
        return write_synthetic_folder(dest / "synthetic", synthetic_images, synthetic_size), "synthetic JPEGs"
    source = Path(source)
    if source.is_file():
        with tarfile.open(source) as tar:
            tar.extractall(dest, filter="data")
        root = dest
    else:
        root = source
    for candidate in sorted(root.rglob("train")):
        if candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()):
            return candidate, f"{source.name} (train split)"
    if any(p.is_dir() for p in root.iterdir()):
        return root, source.name
    raise ValueError(f"{source}: no <class>/<image> folder tree found")


def write_synthetic_folder(root: Path, n: int, size: int, n_classes: int = 10) -> Path:
    """``n`` random JPEGs (quality 75) of ``size`` x ``size`` in ``n_classes`` class folders under ``root``."""
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=gen).numpy()
    for i in range(n):
        folder = root / f"class{i % n_classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(folder / f"{i:05d}.jpg", quality=75)
    return root
