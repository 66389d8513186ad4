"""A new extractor is one decorated factory, and a setting of its own one dataclass beside it plus
a preset entry: the toy below runs through the whole protocol (fit, features, SVM, MLflow, rows)
with no edit anywhere else."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from baselines import registry
from baselines.registry import BuildContext, register
from benchmarks.protocol.presets import PRESETS
from benchmarks.protocol.runner import CIFAR10_PROBE, run_protocol


@dataclass(frozen=True)
class ToyConfig:
    block: int = 8  # the side of the pooled blocks


class ChannelMeans:
    """Toy: each image's mean colour per block (48 features for 8x8 blocks of a 32x32 image)."""

    learns_from_data, notes = False, ""

    def __init__(self, block: int):
        self.block, self.label = block, f"channel means ({block}x{block})"
        self.feature_dim = 3 * (32 // block) ** 2

    def settings(self):
        return {"block": self.block}

    def fit(self, images, validate=None):
        return {}

    def transform(self, images):
        return torch.nn.functional.avg_pool2d(images.float(), self.block).flatten(1)


@register("toy-channel-means", config=ToyConfig)
def toy(ctx: BuildContext, cfg: ToyConfig) -> ChannelMeans:
    return ChannelMeans(cfg.block)


def _ctx(configs=()) -> BuildContext:
    return BuildContext(device=torch.device("cpu"), seed=0, image_size=32, n_fit_images=1, out_dir=Path("."),
                        arch="svhn32", configs=configs)


def test_a_factory_gets_the_presets_entry_of_its_config_else_the_defaults():
    assert registry.build("toy-channel-means", _ctx()).block == 8
    assert registry.build("toy-channel-means", _ctx((ToyConfig(block=16),))).block == 16
    assert registry.build("kmeans-16", _ctx(PRESETS["smoke"].extractors)).n_patches == 2_000
    with pytest.raises(ValueError, match="2 ToyConfig entries"):
        registry.build("toy-channel-means", _ctx((ToyConfig(), ToyConfig(block=4))))


def test_a_registered_toy_extractor_runs_in_the_protocol_with_its_preset_entry(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "smoke", PRESETS["smoke"].with_config(ToyConfig(block=16)))
    rows = run_protocol(CIFAR10_PROBE, ["--preset", "smoke", "--data", str(tiny_folder), "--extractor",
                                        "toy-channel-means", "--out", str(tmp_path / "runs")])
    assert {(r.extractor, r.metric) for r in rows} == {("channel means (16x16)", "test_accuracy"),
                                                       ("channel means (16x16)", "test_accuracy_10pc")}
    assert {r.feature_dim for r in rows} == {12} and {r.gan_data for r in rows} == {"-"}
    assert all(r.value > 50 for r in rows)  # the synthetic classes differ in colour
