"""Every feature extractor by name: ``@register("pixels")`` on a factory, timm-style.

A factory takes the :class:`BuildContext` (what every extractor may use: device, seed, data
size, output folder) and returns an object satisfying :class:`baselines.interface.FeatureExtractor`.
An extractor with settings of its own declares them as a dataclass beside its factory,
``@register("kmeans-<K>", config=KMeansConfig)``, and its factory receives the preset's entry of
that type (a preset's ``extractors``), or the class's defaults where the preset has none. A name
may hold one integer parameter, ``"kmeans-<K>"``, passed to the factory by keyword. Every module
in this package is imported on the first lookup, so a new extractor is one new file with one
decorated factory (plus a preset entry where a preset tunes it).
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from baselines.interface import FeatureExtractor

Config = TypeVar("Config")


@dataclass(frozen=True)
class BuildContext:
    """What every extractor factory may use; the protocol fills it from its preset and options."""

    device: torch.device
    seed: int
    image_size: int
    n_fit_images: int            # unlabelled images ``fit`` will see (sets the GAN's step count)
    out_dir: Path                # where a trained extractor writes checkpoints and samples
    arch: str                    # DCGAN architecture (the D-based rows, the supervised control)
    bn_mode: str = "population"
    discriminator: str | None = None     # a pretrained D (``--discriminator``)
    resume: bool = False                 # continue an interrupted training from its checkpoint in ``out_dir``
    configs: tuple[Any, ...] = ()        # the preset's extractor settings, one instance per config class

    def config(self, cls: type[Config]) -> Config:
        """The preset's ``cls`` entry, else ``cls``'s defaults."""
        return config_of(self.configs, cls)


def config_of(configs: tuple[Any, ...], cls: type[Config]) -> Config:
    found = [c for c in configs if type(c) is cls]
    if len(found) > 1:
        raise ValueError(f"{len(found)} {cls.__name__} entries: a preset holds one of each")
    return found[0] if found else cls()


Factory = Callable[..., FeatureExtractor]
_FACTORIES: dict[str, Factory] = {}
_PATTERNS: list[tuple[re.Pattern[str], str, Factory]] = []
_CONFIG_OF: dict[Factory, type] = {}  # a factory's own settings class


def register(name: str, config: type | None = None) -> Callable[[Factory], Factory]:
    """Register ``factory(ctx, **params)`` under ``name`` (``"<P>"`` marks an integer parameter);
    with ``config``, ``factory(ctx, <that config>, **params)``."""
    def add(factory: Factory) -> Factory:
        if name in _FACTORIES or any(pattern == name for _, pattern, _ in _PATTERNS):
            raise ValueError(f"extractor {name!r} is registered twice")
        if config is not None:
            _CONFIG_OF[factory] = config
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
    config = _CONFIG_OF.get(factory)
    return factory(ctx, **params) if config is None else factory(ctx, ctx.config(config), **params)
