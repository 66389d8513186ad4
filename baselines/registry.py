"""Every feature extractor by name, built the same way for every protocol.

``--extractor`` takes these names (comma-separated) or ``all``; ``--discriminator``
replaces the trained DCGAN by a given D (``newmu-svhn:<dir>`` or one of our checkpoints).
"""
from __future__ import annotations

from pathlib import Path

import torch

from baselines.interface import FeatureExtractor

EXTRACTORS = ("dcgan", "random-d", "pixels", "kmeans-<K>")


def all_rows(kmeans_ks: tuple[int, ...] = (1600, 4000)) -> list[tuple[str, str]]:
    """What ``--extractor all`` runs: (extractor, classifier) pairs, one table row each."""
    return ([("dcgan", "svm"), ("random-d", "svm"), ("pixels", "svm"), ("pixels", "knn")]
            + [(f"kmeans-{k}", "svm") for k in kmeans_ks])


def _known(name: str) -> bool:
    if name.startswith("kmeans-"):
        return name[len("kmeans-"):].isdigit() and int(name[len("kmeans-"):]) > 0
    return name in EXTRACTORS


def parse_extractors(spec: str, classifiers: str = "svm", kmeans_ks: tuple[int, ...] = (1600, 4000)) -> list[tuple[str, str]]:
    """``"all"`` or ``"dcgan,pixels"`` (x ``"svm,knn"``) -> [(extractor, classifier), ...]."""
    if spec == "all":
        return all_rows(kmeans_ks)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    kinds = [s.strip() for s in classifiers.split(",") if s.strip()]
    for n in names:
        if not _known(n):
            raise ValueError(f"unknown extractor {n!r}; choose from {', '.join(EXTRACTORS)} or 'all'")
    for k in kinds:
        if k not in ("svm", "knn"):
            raise ValueError(f"unknown classifier {k!r}; choose from svm, knn")
    return [(n, k) for n in names for k in kinds]


def load_discriminator(spec: str, device: torch.device):
    """A pretrained D: ``newmu-svhn:<dir>`` (the authors' release) or a ``last.pt`` of ours.

    Returns (architecture name, Discriminator, label for tables).
    """
    from dcgan_ref import checkpoint
    from dcgan_ref.models import build_gan
    from dcgan_ref.newmu import load_newmu_svhn, parse_discriminator_spec

    if spec.startswith("newmu-svhn:"):
        return "svhn32", load_newmu_svhn(parse_discriminator_spec(spec))[1].to(device), "newmu-svhn (authors' release)"
    path = Path(spec)
    if path.suffix == ".pt":
        state = checkpoint.load(path)
        arch = state["config"]["arch"]
        d = build_gan(arch)[1]
        d.load_state_dict(state["d"])
        return arch, d.to(device), f"dcgan ({path})"
    raise ValueError(f"--discriminator {spec!r}: expected newmu-svhn:<dir> or a checkpoint file last.pt")


def build_extractor(name: str, preset, *, device: torch.device, seed: int, n_fit_images: int,
                    out_dir: Path, discriminator: str | None = None) -> FeatureExtractor:
    """The extractor ``name`` configured by ``preset`` (see ``benchmarks.presets``)."""
    from dcgan_ref.extractor import DCGANExtractor
    from dcgan_ref.train import TrainConfig

    if name == "dcgan" and discriminator:
        arch, d, label = load_discriminator(discriminator, device)
        return DCGANExtractor(arch, train_cfg=None, discriminator=d, name=label, seed=seed, bf16=preset.bf16,
                              device=device)
    if name == "dcgan":
        b = preset.batch_size
        steps = max(1, round(preset.gan_epochs * n_fit_images / b))
        cfg = TrainConfig(arch=preset.arch, steps=steps, batch_size=b, seed=seed, bf16=preset.bf16,
                          channels_last=preset.channels_last, cuda_graph=preset.cuda_graph,
                          log_every=max(1, min(100, steps // 10)), ckpt_every=steps, sample_every=steps)
        eval_steps = tuple(max(1, round(e * n_fit_images / b)) for e in preset.eval_epochs)
        return DCGANExtractor(preset.arch, train_cfg=cfg, eval_steps=eval_steps, out_dir=out_dir / "gan",
                              seed=seed, bf16=preset.bf16, device=device)
    if name == "random-d":
        return DCGANExtractor(preset.arch, train_cfg=None, name="random-d", seed=seed, bf16=preset.bf16, device=device)
    if name == "pixels":
        from baselines.pixels import PixelExtractor

        return PixelExtractor(device=device)
    if name.startswith("kmeans-"):
        from baselines.kmeans import KMeansExtractor

        return KMeansExtractor(k=int(name.split("-")[1]), n_patches=preset.kmeans_patches, seed=seed, device=device)
    raise ValueError(f"unknown extractor {name!r}; choose from {', '.join(EXTRACTORS)}")
