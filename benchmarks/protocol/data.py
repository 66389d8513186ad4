"""A protocol's labelled and unlabelled images: train/test subsets as the preset asks, the
validation split, and what the unsupervised extractors fit on."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from benchmarks.protocol.context import RunContext
from benchmarks.protocol.splits import balanced_subset, class_balanced_split
from dcgan_ref.datasets.loading import RESIZE_FILTER, ImageSet, load_split, resize_to
from dcgan_ref.runtime.errors import DataError, UserError


@dataclass
class ProtocolData:
    """The training images are stored *fit rows first, validation rows last*, so that the
    fit set, the validation set and all of train are views of one feature matrix: at paper
    scale (50,000 x 28,672 float32, 5.7 GB) a copy of the fit rows would cost another 5 GB.
    Within each part the images keep their original order, so label draws are unchanged."""
    train: ImageSet
    test: ImageSet
    n_fit: int                 # rows 0..n_fit-1 of train: train minus validation (label draws come from here)
    gan_images: torch.Tensor   # what the unsupervised extractors fit on
    gan_description: str

    @property
    def fit_rows(self) -> slice:
        return slice(0, self.n_fit)

    @property
    def val_rows(self) -> slice:  # the validation split (chooses C, k and the GAN's length)
        return slice(self.n_fit, len(self.train))

    @property
    def rest_idx(self) -> torch.Tensor:
        return torch.arange(self.n_fit)

    @property
    def val_idx(self) -> torch.Tensor:
        return torch.arange(self.n_fit, len(self.train))


def load_data(run: RunContext, log=print) -> ProtocolData:
    preset, spec, seed = run.preset, run.spec, run.seed
    t0 = time.perf_counter()
    train, test = _load_splits(run.data, ("train", "test"), run.dataset, run.download)
    train = train.subset(balanced_subset(train.labels, preset.train_images, seed))
    test = test.subset(balanced_subset(test.labels, preset.test_images, seed + 1))
    n_val = preset.val_images or spec.n_val(len(train))
    val_idx, rest_idx = class_balanced_split(train.labels, n_val, seed + 2)

    if run.gan_data == "train":
        gan_images, gan_desc = train.images, f"{train.description} train"
    elif run.gan_data == "train-minus-val":  # SVHN: the GAN never sees the validation images
        gan_images, gan_desc = train.images[rest_idx], f"{train.description} train minus validation"
    elif run.gan_data == "train+extra":
        extra = load_split(run.data, "extra", dataset=run.dataset, download=run.download)
        gan_images, gan_desc = torch.cat([train.images[rest_idx], extra.images]), f"{train.description} train+extra"
    else:
        other = load_split(run.gan_data, run.gan_split, download=False)
        gan_images, gan_desc = other.images, f"{other.description} {run.gan_split}"
        size = train.images.shape[-1]
        if other.images.shape[-1] != size:  # Tiny-ImageNet's official 64x64 for a 32x32 protocol
            gan_images = resize_to(other.images, size)
            gan_desc += f", downsampled to {size}x{size} ({RESIZE_FILTER.split(' (')[0]} filter)"
            log(f"GAN data: {other.images.shape[-1]}x{other.images.shape[-2]} -> {size}x{size}, {RESIZE_FILTER}")
    if preset.gan_images is not None and preset.gan_images < len(gan_images):
        keep = torch.randperm(len(gan_images), generator=torch.Generator().manual_seed(seed + 3))
        gan_images = gan_images[keep[: preset.gan_images]]
    log(f"data: {train.description}: {len(train)} train ({len(val_idx)} validation), {len(test)} test; "
        f"GAN/unsupervised data: {gan_desc} ({len(gan_images)} images); loaded in {time.perf_counter() - t0:.1f} s")
    train = train.subset(torch.cat([rest_idx, val_idx]))  # fit rows first (see ProtocolData); after the GAN data
    return ProtocolData(train, test, len(rest_idx), gan_images, gan_desc)


def check_unseen_validation(run: RunContext, data: ProtocolData, trained_on: str, scored_on: dict | None) -> None:
    """A protocol whose GAN must not see the validation split (svhn_1000) refuses a pretrained D
    its checkpoint says was trained on those images: all of train, or train minus another split
    (another protocol's, or another seed's). A D trained on other data (Tiny-ImageNet, the
    authors' release) is not affected."""
    if run.spec.gan_data_default != "train-minus-val" or not trained_on:
        return
    own = data.train.description
    fix = (f"train one that never saw it: python -m benchmarks.gan_run start --protocol {run.spec.name} "
           f"--gan-data train-minus-val --seed {run.seed} ...")
    if trained_on == f"{own} train":
        raise UserError(f"this D was trained on {trained_on}, which holds {run.spec.name}'s validation split; {fix}")
    held_out = {"protocol": run.spec.name, "seed": run.seed}
    if trained_on == f"{own} train minus validation" and scored_on != held_out:
        raise UserError(f"this D was trained on {trained_on} of {scored_on or 'an unrecorded split'}, not of "
                        f"{held_out}: part of this run's validation split was in its training images; {fix}")


def kept_test_rows(run: RunContext, data: ProtocolData) -> torch.Tensor | None:
    """Which test images the all-labels evaluation also scores on alone (bool over
    ``data.test``): all but those ``--exclude-near-duplicates`` lists; None without it.

    Its indices point into one test split: a list made from other data, or a preset that
    tests on a subset of the split (the indices would name other images), is refused.
    """
    nd = run.exclude_near_duplicates
    if nd is None:
        return None
    for split, theirs, ours in (("test", nd.test_sha256, data.test.sha256),
                                ("train", nd.train_sha256, data.train.sha256)):
        if theirs is not None and theirs != ours:
            raise UserError(f"--exclude-near-duplicates {nd.path}: made for {split} data sha256 {theirs}, but this "
                            f"run's {split} data is {ours}")
    if nd.n_test != len(data.test):
        raise UserError(f"--exclude-near-duplicates {nd.path}: indexes the whole {nd.n_test:,}-image test split, but "
                        f"preset {run.preset.name} tests on {len(data.test):,} of them; use a preset that keeps the "
                        f"whole test split (paper)")
    keep = torch.ones(len(data.test), dtype=torch.bool)
    keep[list(nd.test_indices)] = False
    return keep


def label_pool(data: ProtocolData) -> torch.Tensor:
    """Training images per class outside validation: what the label-scarce draws draw from."""
    return torch.bincount(data.train.labels[data.rest_idx], minlength=len(data.train.classes))


def check_label_pool(run: RunContext, data: ProtocolData) -> None:
    """The label-scarce draws need per_class labels of every class outside validation: say so
    now, not after the extractor's fit and the all-labels evaluation."""
    pool = label_pool(data)
    if int(pool.min()) < run.per_class:
        c = int(pool.argmin())
        raise UserError(f"{run.per_class} labels per class per draw, but class {data.train.classes[c]!r} has "
                        f"{int(pool[c])} training images outside validation; pass --per-class {int(pool.min())} "
                        f"or fewer, or more data")


def _load_splits(spec: str, splits: tuple[str, ...], dataset: str, download: bool) -> list[ImageSet]:
    """Every split the protocol needs; when some are missing or bad, one error naming them all."""
    loaded, errors = [], []
    for split in splits:
        try:
            loaded.append(load_split(spec, split, dataset=dataset, download=download))
        except DataError as e:
            errors.append(str(e))
    if errors:
        raise DataError("\n".join(dict.fromkeys(errors)))  # one message per problem, not per split
    return loaded
