"""Presets: how much of a protocol to run, and with which recipe.

``paper`` is the full protocol with the paper's text recipe; ``newmu-svhn`` the authors'
released SVHN recipe; ``faces`` the paper's faces recipe; ``quick`` minutes on a 2-core
CPU; ``smoke`` seconds, for tests.  A ``quick`` number is a check that the pipeline
works, never a paper result: rows carry their preset everywhere they are reported.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from baselines.dcgan import GanConfig
from baselines.kmeans import KMeansConfig
from baselines.registry import Config, config_of
from dcgan_ref.train import Recipe

PAPER_C_GRID = tuple(10.0 ** (e / 2) for e in range(-12, -1))  # 1e-6 .. 1e-1, half-decade steps
# On standardised features, C >= 1e-2 is the near-hard-margin regime (train accuracy 100%
# on 9k x 7k features) where the solver needs thousands of passes: the CPU grid stops below it.
QUICK_C_GRID = tuple(10.0 ** (e / 2) for e in range(-12, -5))  # 1e-6 .. 1e-3

# What ``--extractor all`` runs: (extractor, classifier) rows.
ALL_ROWS = (("dcgan", "svm"), ("random-d", "svm"), ("pixels", "svm"), ("pixels", "knn"),
            ("kmeans-1600", "svm"), ("kmeans-4000", "svm"))


@dataclass(frozen=True, kw_only=True)
class Preset:
    """How much of a protocol to run (its scale, grids and draws) and each extractor's own
    settings (``extractors``: one entry per config class, e.g. :class:`GanConfig`; an extractor
    the preset does not tune gets its class's defaults)."""
    name: str
    arch: str | None = None       # DCGAN architecture; None: the protocol's own (docs/PAPER.md)
    gan_images: int | None = None  # unlabelled images the GAN / K-means learn from (None: all)
    train_images: int | None = None  # labelled training images, class-balanced subset (None: all)
    test_images: int | None = None
    val_images: int | None = None    # validation split size (None: the protocol's own)
    per_class: int | None = None     # labels per class in the label-scarce draws (None: the protocol's own)
    C_grid: tuple[float, ...] = PAPER_C_GRID
    knn_grid: tuple[int, ...] = (1, 3, 5, 9, 15, 25)
    n_draws: int = 10                # label-scarce draws
    all_rows: tuple[tuple[str, str], ...] = ALL_ROWS
    extractors: tuple[Any, ...] = ()
    supervised_trials: int = 64      # random-search trials of the supervised control (paper: 64)
    supervised_max_epochs: int | None = None  # cap on a trial's epochs (None: as sampled)
    writes_results: bool = True      # smoke runs never touch results/

    def config(self, cls: type[Config]) -> Config:
        return config_of(self.extractors, cls)

    def settings(self) -> dict[str, Any]:
        """Every setting, each extractor entry under its class name (what a run records)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extractors"}
        return own | {type(c).__name__: dataclasses.asdict(c) for c in self.extractors}

    @property
    def gan(self) -> GanConfig:
        return self.config(GanConfig)

    def with_config(self, entry: Any) -> "Preset":
        """This preset with ``entry`` in place of its entry of the same class."""
        return dataclasses.replace(self, extractors=(*(c for c in self.extractors if type(c) is not type(entry)),
                                                     entry))

    def with_gan(self, **changes: Any) -> "Preset":
        """This preset with its GAN settings changed (``epochs``, ``eval_epochs``) or its recipe's
        (any other :class:`dcgan_ref.train.Recipe` field)."""
        gan = self.gan
        recipe = {k: changes.pop(k) for k in list(changes) if k not in ("epochs", "eval_epochs")}
        return self.with_config(dataclasses.replace(gan, recipe=dataclasses.replace(gan.recipe, **recipe), **changes))


# The GPU fast path: channels_last, the CUDA-graphed step (off where not native). Not bf16 autocast:
# its A/B lost accuracy on all labels at every seed (REPORT.md, results/precision_ab); `--precision bf16` opts in.
_GPU_FAST = dict(channels_last=True, cuda_graph=True)
PAPER_LENGTHS = (5, 10, 15, 20, 25)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(name="paper", extractors=(GanConfig(recipe=Recipe(**_GPU_FAST), eval_epochs=PAPER_LENGTHS),)),
        # The authors' released SVHN model: lr 5e-4, batch 64, Gaussian z (svhn32's), 200 epochs,
        # D and G updated on alternate batches as their script does.
        Preset(name="newmu-svhn", arch="svhn32", extractors=(
            GanConfig(recipe=Recipe(lr=5e-4, batch_size=64, schedule="alternate", **_GPU_FAST), epochs=200,
                      eval_epochs=(25, 50, 100, 150, 200)),)),
        # The paper's faces recipe: the text's, plus weight decay 1e-5.
        Preset(name="faces", extractors=(GanConfig(recipe=Recipe(weight_decay=1e-5, **_GPU_FAST),
                                                   eval_epochs=PAPER_LENGTHS),)),
        Preset(name="quick", arch="svhn32", gan_images=10_000, train_images=10_000, test_images=2_000,
               C_grid=QUICK_C_GRID, n_draws=3, supervised_trials=4,
               extractors=(GanConfig(epochs=3), KMeansConfig(patches=50_000))),
        # CI's real-data regression check (tests/test_regression.py): about 2 minutes on 2 cores.
        Preset(name="ci", arch="svhn32", gan_images=5_000, train_images=5_000, test_images=2_000,
               C_grid=(1e-6, 1e-5, 1e-4, 1e-3), n_draws=2, writes_results=False,
               extractors=(GanConfig(recipe=Recipe(batch_size=64), epochs=3), KMeansConfig(patches=20_000))),
        Preset(name="smoke", arch="svhn32", gan_images=256, train_images=400, test_images=200,
               C_grid=(1e-5, 1e-4), knn_grid=(1, 3), n_draws=2,
               all_rows=tuple((n.replace("kmeans-1600", "kmeans-16"), k) for n, k in ALL_ROWS
                              if n != "kmeans-4000"),
               val_images=100, per_class=10, supervised_trials=1, supervised_max_epochs=2, writes_results=False,
               extractors=(GanConfig(recipe=Recipe(batch_size=32), epochs=0.25), KMeansConfig(patches=2_000))),
    )
}


def resolve_preset(name: str | None, device: torch.device, log=print, **overrides) -> Preset:
    """The named preset, or ``paper`` on a GPU and ``quick`` otherwise (said out loud)."""
    if name is None:
        name = "paper" if device.type == "cuda" else "quick"
        log(f"no --preset given: using '{name}' ({'GPU present' if device.type == 'cuda' else 'no GPU'})")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    preset = PRESETS[name]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return preset.with_gan(**overrides) if overrides else preset
