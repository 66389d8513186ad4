"""The paper's DCGAN architectures (docs/PAPER.md, "The three architectures").

D: strided convs, batchnorm on every conv but the first, LeakyReLU(0.2), a bias-free
linear head to one logit.  G mirrors D with transposed convs, ReLU, tanh output.
``D.features(x)`` returns every conv layer's post-activation map.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    name: str
    image_size: int
    kernel: int
    widths: tuple[int, ...]   # D's conv widths, input side first
    strides: tuple[int, ...]  # D's conv strides
    z_dim: int
    z_dist: str               # "uniform" ([-1, 1]) or "gaussian"

    @property
    def final_size(self) -> int:
        size = self.image_size
        for s in self.strides:
            size //= s
        return size

    def sample_z(self, n: int, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if self.z_dist == "uniform":
            z = torch.rand(n, self.z_dim, device=device, generator=generator)
            return z.mul_(2).sub_(1)
        return torch.randn(n, self.z_dim, device=device, generator=generator)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("imagenet32", 32, 3, (128, 128, 256, 256, 512, 512), (1, 2, 1, 2, 1, 2), 256, "uniform"),
        Architecture("svhn32", 32, 5, (64, 128, 256), (2, 2, 2), 100, "gaussian"),
        Architecture("dcgan64", 64, 5, (128, 256, 512, 1024), (2, 2, 2, 2), 100, "uniform"),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose from {sorted(ARCHITECTURES)}") from None


class Discriminator(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        k, chans = arch.kernel, (3, *arch.widths)
        self.convs = nn.ModuleList()
        for i, stride in enumerate(arch.strides):
            layers: list[nn.Module] = [nn.Conv2d(chans[i], chans[i + 1], k, stride, k // 2, bias=False)]
            if i > 0:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.convs.append(nn.Sequential(*layers))
        self.head = nn.Linear(chans[-1] * arch.final_size**2, 1, bias=False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-activation map of every conv layer, input side first."""
        maps = []
        for conv in self.convs:
            x = conv(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        return self.head(x.flatten(1)).squeeze(1)  # logits


class Generator(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        k, chans = arch.kernel, (3, *arch.widths)
        top = chans[-1] * arch.final_size**2
        self.project = nn.Sequential(nn.Linear(arch.z_dim, top, bias=False), nn.BatchNorm1d(top), nn.ReLU(True))
        layers: list[nn.Module] = []
        for i in reversed(range(len(arch.strides))):  # mirror of D, output side last
            s = arch.strides[i]
            layers.append(nn.ConvTranspose2d(chans[i + 1], chans[i], k, s, k // 2, output_padding=s - 1, bias=False))
            layers += [nn.BatchNorm2d(chans[i]), nn.ReLU(True)] if i > 0 else [nn.Tanh()]
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = self.arch
        h = self.project(z).view(-1, a.widths[-1], a.final_size, a.final_size)
        return self.deconvs(h)


def init_paper_(module: nn.Module) -> None:
    """Paper init: weights N(0, 0.02); batchnorm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_gan(arch_name: str, seed: int | None = None) -> tuple[Generator, Discriminator]:
    """G and D for an architecture, paper-initialised (seeded when ``seed`` is given)."""
    arch = get_architecture(arch_name)
    if seed is not None:
        torch.manual_seed(seed)
    g, d = Generator(arch), Discriminator(arch)
    init_paper_(g)
    init_paper_(d)
    return g, d


def feature_dim(arch_name: str, grid: int = 4) -> int:
    """Length of the pooled, concatenated D feature vector (28,672 for imagenet32)."""
    return grid * grid * sum(get_architecture(arch_name).widths)
