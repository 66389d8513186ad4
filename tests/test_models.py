"""Architectures: the feature dimensions the paper states, shapes, and the paper's init."""
import pytest
import torch

from dcgan_ref.features import pooled_features, set_population_bn_stats
from dcgan_ref.models import ARCHITECTURES, build_gan, feature_dim, get_architecture


@pytest.mark.parametrize("arch, dim", [("imagenet32", 28_672), ("svhn32", 7_168)])
def test_feature_dimensions_match_the_paper(arch, dim):
    _, d = build_gan(arch, seed=0)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    feats = pooled_features(d, images, bn_mode="batch")
    assert feature_dim(arch) == dim
    assert feats.shape == (3, dim) and feats.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_generator_and_discriminator_shapes(name):
    arch = get_architecture(name)
    g, d = build_gan(name, seed=0)
    x = g(arch.sample_z(2))
    assert x.shape == (2, 3, arch.image_size, arch.image_size)
    assert x.abs().max() <= 1  # tanh output
    assert d(x).shape == (2,)
    assert [m.shape[1] for m in d.features(x)] == list(arch.widths)


def test_discriminator_follows_the_paper_guidelines():
    _, d = build_gan("imagenet32", seed=0)
    first, *rest = d.convs
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in first)  # no BN on D's input layer
    assert all(isinstance(block[1], torch.nn.BatchNorm2d) for block in rest)
    assert [block[0].stride[0] for block in d.convs] == [1, 2, 1, 2, 1, 2]


def test_paper_initialisation():
    g, d = build_gan("imagenet32", seed=0)
    convs = [m.weight for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    w = torch.cat([c.flatten() for c in convs])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1) < 5e-3 and abs(bn.std().item() - 0.02) < 5e-3


def test_sample_z_distributions():
    gen = torch.Generator().manual_seed(0)
    u = get_architecture("imagenet32").sample_z(4000, generator=gen)
    n = get_architecture("svhn32").sample_z(4000, generator=gen)
    assert u.shape[1] == 256 and u.min() >= -1 and u.max() <= 1 and u.min() < -0.99
    assert n.shape[1] == 100 and n.abs().max() > 2.5  # Gaussian tails


def test_population_bn_statistics_are_the_mean_of_batch_statistics():
    _, d = build_gan("svhn32", seed=0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    set_population_bn_stats(d, images, batch_size=32)
    bn = d.convs[1][1]
    with torch.no_grad():
        means = [d.convs[1][0](d.convs[0]((images[s:s + 32].float() / 127.5 - 1))).mean((0, 2, 3)) for s in (0, 32)]
    torch.testing.assert_close(bn.running_mean, (means[0] + means[1]) / 2, rtol=1e-4, atol=1e-5)
    eval_feats = pooled_features(d, images, bn_mode="population")
    batch_feats = pooled_features(d, images, bn_mode="batch", batch_size=16)
    assert not torch.allclose(eval_feats, batch_feats)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'.*imagenet32"):
        build_gan("resnet")


# The paper's guidelines and the three architectures (docs/PAPER.md), layer by layer.
EXPECTED = {  # name: (kernel, D widths, D strides, z dim, z distribution, image size)
    "imagenet32": (3, (128, 128, 256, 256, 512, 512), (1, 2, 1, 2, 1, 2), 256, "uniform", 32),
    "svhn32": (5, (64, 128, 256), (2, 2, 2), 100, "gaussian", 32),
    "dcgan64": (5, (128, 256, 512, 1024), (2, 2, 2, 2), 100, "uniform", 64),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layers_follow_the_paper(name):
    kernel, widths, strides, z_dim, z_dist, size = EXPECTED[name]
    arch = get_architecture(name)
    assert (arch.kernel, arch.widths, arch.strides, arch.z_dim, arch.z_dist, arch.image_size) == EXPECTED[name]
    g, d = build_gan(name, seed=0)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == list(zip((3, *widths[:-1]), widths))
    assert all(c.kernel_size == (kernel, kernel) and c.padding == (kernel // 2,) * 2 and c.bias is None for c in convs)
    assert [c.stride[0] for c in convs] == list(strides)
    leaky = [m for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert len(leaky) == len(widths) and all(m.negative_slope == 0.2 for m in leaky)  # LeakyReLU 0.2 everywhere
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.convs[0])  # no BN on D's input layer
    assert all(isinstance(block[1], torch.nn.BatchNorm2d) for block in d.convs[1:])
    assert d.head.bias is None and d.head.in_features == widths[-1] * (size // 2 ** strides.count(2)) ** 2
    # G: ReLU everywhere, tanh on the output, BN everywhere but the output layer
    layers = list(g.deconvs)
    assert isinstance(layers[-1], torch.nn.Tanh) and isinstance(layers[-2], torch.nn.ConvTranspose2d)
    assert not any(isinstance(m, (torch.nn.LeakyReLU,)) for m in g.modules())
    deconvs = [m for m in layers if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == list(reversed((3, *widths[:-1])))
    relus = sum(isinstance(m, torch.nn.ReLU) for m in g.modules())
    bns = sum(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for m in g.modules())
    assert relus == bns == len(widths)  # the projection and every deconv but the output
