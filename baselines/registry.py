"""Every feature extractor by name: ``@register("pixels")`` on a factory, timm-style.

A factory takes the :class:`BuildContext` (what the protocol and preset decide) and
returns an object satisfying :class:`baselines.interface.FeatureExtractor`.  A name may
hold one integer parameter, ``"kmeans-<K>"``, passed to the factory by keyword.  Every
module in this package is imported on the first lookup, so a new extractor is one new
file with one decorated factory.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from baselines.interface import FeatureExtractor


@dataclass(frozen=True)
class BuildContext:
    """What an extractor factory may use; the protocol fills it from its preset and options."""

    device: torch.device
    seed: int
    image_size: int
    n_fit_images: int            # unlabelled images ``fit`` will see (sets the GAN's step count)
    out_dir: Path                # where a trained extractor writes checkpoints and samples
    arch: str                    # DCGAN architecture
    gan_epochs: float
    lr: float = 2e-4
    weight_decay: float = 0.0
    schedule: str = "both"               # D/G update schedule (dcgan_ref.train.TrainConfig.schedule)
    eval_epochs: tuple[float, ...] = ()  # GAN lengths scored on validation
    batch_size: int = 128
    bf16: bool = False
    channels_last: bool = False
    cuda_graph: bool = False
    kmeans_patches: int = 400_000
    bn_mode: str = "population"
    discriminator: str | None = None     # a pretrained D (``--discriminator``)
    resume: bool = False                 # continue an interrupted training from its checkpoint in ``out_dir``


Factory = Callable[..., FeatureExtractor]
_FACTORIES: dict[str, Factory] = {}
_PATTERNS: list[tuple[re.Pattern[str], str, Factory]] = []


def register(name: str) -> Callable[[Factory], Factory]:
    """Register ``factory(ctx, **params)`` under ``name`` (``"<P>"`` marks an integer parameter)."""
    def add(factory: Factory) -> Factory:
        if name in _FACTORIES or any(pattern == name for _, pattern, _ in _PATTERNS):
            raise ValueError(f"extractor {name!r} is registered twice")
        if "<" in name:
            regex = re.escape(name)
            for param in re.findall(r"<(\w+)>", name):
                regex = regex.replace(re.escape(f"<{param}>"), rf"(?P<{param}>[1-9]\d*)")
            _PATTERNS.append((re.compile(regex + r"\Z"), name, factory))
        else:
            _FACTORIES[name] = factory
        return factory

    return add


_discovered = False


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        package = Path(__file__).parent
        for module in pkgutil.iter_modules([str(package)]):
            importlib.import_module(f"{__package__}.{module.name}")


def available() -> list[str]:
    _discover()
    return sorted(_FACTORIES) + [pattern for _, pattern, _ in _PATTERNS]


def resolve(name: str) -> tuple[Factory, dict[str, Any]]:
    """The factory behind ``name`` and its parameters; ValueError for an unknown name."""
    _discover()
    if name in _FACTORIES:
        return _FACTORIES[name], {}
    for regex, _, factory in _PATTERNS:
        match = regex.match(name)
        if match:
            return factory, {k: int(v) for k, v in match.groupdict().items()}
    raise ValueError(f"unknown extractor {name!r}; choose from {', '.join(available())}")


def build(name: str, ctx: BuildContext) -> FeatureExtractor:
    factory, params = resolve(name)
    return factory(ctx, **params)
