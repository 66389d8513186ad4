"""A new extractor is one decorated factory: the toy below runs through the whole protocol
(fit, features, SVM, MLflow, rows) with no edit anywhere else."""
from __future__ import annotations

import torch

from baselines.registry import BuildContext, register
from benchmarks.protocol.runner import CIFAR10_PROBE, run_protocol


class ChannelMeans:
    """Toy: each image's mean colour per 8x8 block (48 features)."""

    label, learns_from_data, notes = "channel means", False, ""
    feature_dim = 48

    def settings(self):
        return {"block": 8}

    def fit(self, images, validate=None):
        return {}

    def transform(self, images):
        return torch.nn.functional.avg_pool2d(images.float(), 8).flatten(1)


@register("toy-channel-means")
def toy(ctx: BuildContext) -> ChannelMeans:
    return ChannelMeans()


def test_a_registered_toy_extractor_runs_in_the_protocol(tiny_folder, tmp_path):
    rows = run_protocol(CIFAR10_PROBE, ["--preset", "smoke", "--data", str(tiny_folder), "--extractor",
                                        "toy-channel-means", "--out", str(tmp_path / "runs")])
    assert {(r.extractor, r.metric) for r in rows} == {("channel means", "test_accuracy"),
                                                       ("channel means", "test_accuracy_10pc")}
    assert {r.feature_dim for r in rows} == {48} and {r.gan_data for r in rows} == {"-"}
    assert all(r.value > 50 for r in rows)  # the synthetic classes differ in colour


def test_a_name_registered_twice_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="registered twice"):
        register("pixels")(toy)
