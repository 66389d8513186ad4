"""Import the paper authors' released SVHN DCGAN (Newmu/dcgan_code) into our ``svhn32`` modules.

The authors published the epoch-200 parameters of their SVHN model in the folder
``models/svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb/`` of the public
repository Newmu/dcgan_code (MIT licence).  Each ``<epoch>_{discrim,gen}_params.jl`` is a
joblib pickle that only lists the arrays; the data sit beside it in
``<epoch>_{discrim,gen}_params.jl_NN.npy`` (NN = 01, 02, ...), so plain numpy reads them.

How the authors' Theano network maps onto ours (checked against their code: the SVHN
analysis script ``svhn/svhn_semisup_analysis.py``, the generator/discriminator pattern of
``faces/train_uncond_dcgan.py``, ``lib/activations.py``, and ``lib/ops.py``):

* ``dnn_conv(X, w, subsample=(2, 2), border_mode=(2, 2))`` uses cuDNN's default
  ``conv_mode='conv'``, a *true* convolution, while ``torch.nn.functional.conv2d`` is a
  cross-correlation.  The same weights therefore need a spatial flip:
  ``torch_w = w[:, :, ::-1, ::-1]``.
* ``deconv(X, w, subsample=(2, 2), border_mode=(2, 2))`` is ``GpuDnnConvGradI``: the
  input-gradient (adjoint) of that true convolution, for an input of twice the spatial
  size.  ``ConvTranspose2d(k=5, s=2, p=2, output_padding=1)`` is the adjoint of the
  torch convolution for the same doubled size, and its weight layout (in, out, kh, kw) is
  the authors' layout; again the kernels are flipped.
* ``batchnorm(X, g, b)`` normalises with the biased variance and ``e=1e-8``, then scales
  by ``g`` and shifts by ``b``.  Torch's BatchNorm uses the biased variance for
  normalisation too, but ``eps=1e-5``; the imported BN modules get ``eps = 1e-8``.
* The 4096 units between the convolutions and the dense layers are ordered C, H, W on
  both sides (``T.flatten(h, 2)`` / ``h.reshape((N, 256, 4, 4))`` in Theano, ``flatten(1)``
  / ``view(-1, 256, 4, 4)`` in torch), so dense weights are only transposed.
* Nonlinearities: LeakyReLU(0.2) in D (no batchnorm after its first convolution), ReLU
  and tanh in G, sigmoid on D's output (our D returns the logit; the sigmoid lives in the
  loss).  No layer has a bias.

Batchnorm statistics are *not* part of the release: the authors always normalise with
statistics computed on the fly.  The analysis script computes D's statistics over the
SVHN training set (batches of 128, averaged) before extracting features, and their
sampling code runs G with the statistics of the sample batch.  The imported modules
therefore keep torch's default running statistics (mean 0, variance 1), which are
placeholders: estimate D's population statistics from data before using D in eval mode
(our feature extraction does), and sample from G in train mode (batch statistics), as
:func:`sample_newmu` does.
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.utils import make_grid, save_image

from dcgan_ref.models import Discriminator, Generator, build_gan

SOURCE = (
    "the public repository Newmu/dcgan_code, folder "
    "models/svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb/"
)
AUTHORS_BN_EPS = 1e-8  # lib/ops.py: batchnorm(..., e=1e-8)
SPEC_PREFIX = "newmu-svhn:"

# (name, shape) of every array, in the order the authors saved them.
DISCRIMINATOR_ARRAYS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("conv1 W", (64, 3, 5, 5)),
    ("conv2 W", (128, 64, 5, 5)),
    ("bn2 gamma", (128,)),
    ("bn2 beta", (128,)),
    ("conv3 W", (256, 128, 5, 5)),
    ("bn3 gamma", (256,)),
    ("bn3 beta", (256,)),
    ("output W", (4096, 1)),
)
GENERATOR_ARRAYS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("fc W", (100, 4096)),
    ("fc bn gamma", (4096,)),
    ("fc bn beta", (4096,)),
    ("deconv1 W", (256, 128, 5, 5)),
    ("bn1 gamma", (128,)),
    ("bn1 beta", (128,)),
    ("deconv2 W", (128, 64, 5, 5)),
    ("bn2 gamma", (64,)),
    ("bn2 beta", (64,)),
    ("output deconv W", (64, 3, 5, 5)),
)


def array_path(directory: str | os.PathLike, epoch: int, net: str, index: int) -> Path:
    """Path of the ``index``-th (0-based) array of ``net`` ("discrim" or "gen")."""
    return Path(directory) / f"{epoch}_{net}_params.jl_{index + 1:02d}.npy"


def _load_arrays(directory: Path, epoch: int, net: str,
                 spec: tuple[tuple[str, tuple[int, ...]], ...]) -> list[np.ndarray]:
    arrays = []
    for i, (name, shape) in enumerate(spec):
        path = array_path(directory, epoch, net, i)
        if not path.is_file():
            raise FileNotFoundError(
                f"missing {path} ({name} of the authors' SVHN DCGAN); the files come from {SOURCE}"
            )
        array = np.load(path, allow_pickle=False)
        if array.shape != shape:
            raise ValueError(f"{path} ({name}): expected shape {shape}, got {array.shape}")
        arrays.append(array.astype(np.float32, copy=False))
    return arrays


def _tensor(array: np.ndarray, flip: bool = False) -> torch.Tensor:
    """float32 tensor of ``array``; ``flip`` reverses the two kernel axes (true conv -> torch)."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return t.flip(-2, -1).contiguous() if flip else t


def _set_bn(bn: nn.Module, gamma: np.ndarray, beta: np.ndarray) -> None:
    """Authors' scale/shift; their epsilon; running statistics reset to the (0, 1) placeholders."""
    assert isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d))
    bn.weight.copy_(_tensor(gamma))
    bn.bias.copy_(_tensor(beta))
    bn.eps = AUTHORS_BN_EPS
    bn.reset_running_stats()


def load_newmu_svhn(directory: str | os.PathLike, epoch: int = 200, *,
                    generator: bool = True) -> tuple[Generator | None, Discriminator]:
    """Our ``svhn32`` G and D carrying the authors' released SVHN weights.

    ``directory`` holds ``<epoch>_discrim_params.jl_01.npy`` ... ``_08.npy`` and
    ``<epoch>_gen_params.jl_01.npy`` ... ``_10.npy`` (see the module docstring for the
    source).  Convolution kernels are flipped spatially (Theano/cuDNN true convolution ->
    torch cross-correlation), dense weights transposed, BN ``eps`` set to the authors'
    1e-8.  BN running statistics are left at mean 0 / variance 1: compute D's from data
    before eval-mode use, and sample G with batch statistics (:func:`sample_newmu`).
    Both modules are returned in train mode.

    ``generator=False`` loads D alone (G's files need not exist) and returns ``(None, D)``.

    Raises ``FileNotFoundError`` for a missing directory or file, ``ValueError`` for an
    array of the wrong shape.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no directory {directory} with the authors' SVHN DCGAN; it should hold "
            f"{epoch}_discrim_params.jl_NN.npy and {epoch}_gen_params.jl_NN.npy from {SOURCE}"
        )
    d_arrays = _load_arrays(directory, epoch, "discrim", DISCRIMINATOR_ARRAYS)
    g_arrays = _load_arrays(directory, epoch, "gen", GENERATOR_ARRAYS) if generator else None

    g, d = build_gan("svhn32")
    with torch.no_grad():
        w1, w2, g2, b2, w3, g3, b3, wy = d_arrays
        # D.convs[i] = Sequential(Conv2d, [BatchNorm2d,] LeakyReLU)
        d.convs[0][0].weight.copy_(_tensor(w1, flip=True))
        d.convs[1][0].weight.copy_(_tensor(w2, flip=True))
        _set_bn(d.convs[1][1], g2, b2)
        d.convs[2][0].weight.copy_(_tensor(w3, flip=True))
        _set_bn(d.convs[2][1], g3, b3)
        d.head.weight.copy_(_tensor(wy.T))  # (4096, 1) -> (1, 4096); both flatten C, H, W
        if g_arrays is None:
            return None, d.train()

        gw, gg, gb, gw2, gg2, gb2, gw3, gg3, gb3, gwx = g_arrays
        # G.project = Sequential(Linear, BatchNorm1d, ReLU);
        # G.deconvs = ConvT, BN, ReLU, ConvT, BN, ReLU, ConvT, Tanh
        g.project[0].weight.copy_(_tensor(gw.T))  # (100, 4096) -> (4096, 100)
        _set_bn(g.project[1], gg, gb)
        g.deconvs[0].weight.copy_(_tensor(gw2, flip=True))
        _set_bn(g.deconvs[1], gg2, gb2)
        g.deconvs[3].weight.copy_(_tensor(gw3, flip=True))
        _set_bn(g.deconvs[4], gg3, gb3)
        g.deconvs[6].weight.copy_(_tensor(gwx, flip=True))
    return g.train(), d.train()


def parse_discriminator_spec(spec: str) -> Path:
    """Directory named by the CLI value ``newmu-svhn:<dir>`` (``--discriminator``)."""
    if not spec.startswith(SPEC_PREFIX) or not spec[len(SPEC_PREFIX):].strip():
        raise ValueError(
            f"unrecognised discriminator {spec!r}; the accepted form is "
            f"'{SPEC_PREFIX}<dir>', <dir> holding the authors' SVHN model files from {SOURCE}"
        )
    return Path(spec[len(SPEC_PREFIX):]).expanduser()


@torch.no_grad()
def sample_newmu(g: Generator, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images in [-1, 1] from ``g``, normalised with batch statistics as the authors do.

    Runs a copy of ``g`` in train mode on one batch of ``n`` Gaussian z (so the caller's
    module, its mode and its running statistics are untouched).  Use ``n`` of 64 or more:
    batch statistics of a tiny batch are poor estimates.
    """
    z = g.arch.sample_z(n, generator=torch.Generator().manual_seed(seed))
    return copy.deepcopy(g).train()(z.to(next(g.parameters()).device))


def save_newmu_samples(directory: str | os.PathLike, out_png: str | os.PathLike, n: int = 64,
                       seed: int = 0, scale: int = 2) -> Path:
    """Write a grid of ``n`` samples of the authors' SVHN G to ``out_png``.

    8 images per row (``make_grid``), values mapped from [-1, 1] to [0, 1], the whole grid
    upscaled ``scale`` times with nearest-neighbour interpolation for visibility.
    """
    g, _ = load_newmu_svhn(directory)
    images = sample_newmu(g, n, seed).add(1).div(2).clamp(0, 1)
    grid = make_grid(images, nrow=8, padding=2, pad_value=1.0)
    if scale != 1:
        grid = nn.functional.interpolate(grid[None], scale_factor=scale, mode="nearest")[0]
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, out)
    return out


if __name__ == "__main__":  # python -m dcgan_ref.newmu MODEL_DIR OUT.png
    if len(sys.argv) != 3:
        sys.exit("usage: python -m dcgan_ref.newmu MODEL_DIR OUT.png")
    print(save_newmu_samples(sys.argv[1], sys.argv[2]))
