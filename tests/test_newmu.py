"""The authors' SVHN DCGAN importer against a plain numpy re-implementation of their network.

The reference below follows the authors' Theano code (Newmu/dcgan_code) line by line,
using the raw ``.npy`` arrays as released:

* ``dnn_conv(X, w, subsample=(2, 2), border_mode=(2, 2))`` with cuDNN's default
  ``conv_mode='conv'``: a true convolution, i.e. a correlation with the flipped kernel;
* ``deconv``: the input-gradient of that convolution for an input of twice the size,
  written as the transpose of the convolution (a scatter-add);
* ``batchnorm(X, g, b)``: batch mean, biased batch variance, ``e=1e-8``, then ``*g + b``;
* LeakyReLU 0.2 / ReLU / tanh; 4096 units in C, H, W order.

Torch runs in train mode (batch statistics, with the importer's eps) so both sides use
the same statistics.  The comparisons run on synthetic weights (always) and on the real
release (when ``shared/data/newmu_svhn_dcgan`` exists).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from dcgan_ref.models import Discriminator, Generator
from dcgan_ref.newmu import (
    DISCRIMINATOR_ARRAYS,
    GENERATOR_ARRAYS,
    array_path,
    load_newmu_svhn,
    parse_discriminator_spec,
)

EPS = 1e-8   # lib/ops.py batchnorm(..., e=1e-8)
TOL = 1e-4


# ----------------------------------------------------------------------------- reference
def conv_true(x: np.ndarray, w: np.ndarray, stride: int = 2, pad: int = 2) -> np.ndarray:
    """True convolution (kernel flipped), zero padding ``pad``: x (N,C,H,W), w (O,C,k,k)."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    h_out = (xp.shape[2] - k) // stride + 1
    w_out = (xp.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], h_out, w_out))
    w_flipped = w[:, :, ::-1, ::-1]
    for i in range(h_out):
        for j in range(w_out):
            window = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("ncpq,ocpq->no", window, w_flipped)
    return out


def deconv_true(y: np.ndarray, w: np.ndarray, stride: int = 2, pad: int = 2) -> np.ndarray:
    """Adjoint of ``conv_true`` for an input ``stride`` times larger: y (N,O,h,w), w (O,C,k,k).

    Every output value y[n, o, i, j] of the convolution read the padded window at
    (i*stride, j*stride); the transpose scatters it back through the same (flipped) kernel.
    """
    n, _, h, wd = y.shape
    k = w.shape[-1]
    big_h, big_w = h * stride, wd * stride
    xp = np.zeros((n, w.shape[1], big_h + 2 * pad + k, big_w + 2 * pad + k))
    w_flipped = w[:, :, ::-1, ::-1]
    for i in range(h):
        for j in range(wd):
            xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum(
                "no,ocpq->ncpq", y[:, :, i, j], w_flipped)
    return xp[:, :, pad:pad + big_h, pad:pad + big_w]


def batchnorm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The authors' batchnorm: batch statistics, biased variance, e=1e-8, scale g, shift b."""
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    u = x.mean(axis=axes, keepdims=True)
    s = ((x - u) ** 2).mean(axis=axes, keepdims=True)
    return (x - u) / np.sqrt(s + EPS) * g.reshape(shape) + b.reshape(shape)


def lrelu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.2 * x)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def reference_discrim(x: np.ndarray, w, w2, g2, b2, w3, g3, b3, wy) -> list[np.ndarray]:
    """Authors' D: [h1, h2, h3, logit] (their D output is sigmoid(logit))."""
    h = lrelu(conv_true(x, w))
    h2 = lrelu(batchnorm(conv_true(h, w2), g2, b2))
    h3 = lrelu(batchnorm(conv_true(h2, w3), g3, b3))
    logit = h3.reshape(len(x), -1) @ wy  # T.flatten(h3, 2): C, H, W order
    return [h, h2, h3, logit[:, 0]]


def reference_gen(z: np.ndarray, w, g, b, w2, g2, b2, w3, g3, b3, wx) -> np.ndarray:
    """Authors' G: fc + BN + ReLU, reshape to 256x4x4, two deconv + BN + ReLU, deconv + tanh."""
    h = relu(batchnorm(z @ w, g, b)).reshape(len(z), 256, 4, 4)
    h2 = relu(batchnorm(deconv_true(h, w2), g2, b2))
    h3 = relu(batchnorm(deconv_true(h2, w3), g3, b3))
    return np.tanh(deconv_true(h3, wx))


def raw_arrays(directory: Path, net: str) -> list[np.ndarray]:
    spec = DISCRIMINATOR_ARRAYS if net == "discrim" else GENERATOR_ARRAYS
    return [np.load(array_path(directory, 200, net, i)).astype(np.float64) for i in range(len(spec))]


# ------------------------------------------------------------------- the reference itself
def test_reference_conv_is_a_true_convolution():
    """conv_true at stride 1 is the sum of scipy's (flipping) 2-d convolutions, 'same' size."""
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(2, 3, 9, 9)), rng.normal(size=(4, 3, 5, 5))
    expected = np.array([[sum(convolve2d(x[n, c], w[o, c], mode="same") for c in range(3))
                          for o in range(4)] for n in range(2)])
    np.testing.assert_allclose(conv_true(x, w, stride=1), expected, atol=1e-10)


def test_reference_deconv_is_the_adjoint_of_conv():
    """<conv(x), y> == <x, deconv(y)> for 8x8 inputs and 4x4 outputs."""
    rng = np.random.default_rng(1)
    x, y, w = rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(2, 5, 4, 4)), rng.normal(size=(5, 3, 5, 5))
    assert conv_true(x, w).shape == y.shape
    assert np.isclose(np.sum(conv_true(x, w) * y), np.sum(x * deconv_true(y, w)), rtol=1e-10)


# --------------------------------------------------------------------- importer vs reference
def write_synthetic_release(directory: Path, seed: int = 0) -> Path:
    """Random arrays of the released shapes and names (BN gammas near 1, the rest ~0.05)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for net, spec in (("discrim", DISCRIMINATOR_ARRAYS), ("gen", GENERATOR_ARRAYS)):
        for i, (name, shape) in enumerate(spec):
            loc = 1.0 if "gamma" in name else 0.0
            array = rng.normal(loc, 0.2 if len(shape) == 1 else 0.05, size=shape)
            np.save(array_path(directory, 200, net, i), array.astype(np.float32))
    return directory


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    return write_synthetic_release(tmp_path_factory.mktemp("newmu_synthetic"))


@pytest.fixture(params=["synthetic", "released"])
def model_dir(request, synthetic_dir) -> Path:
    if request.param == "synthetic":
        return synthetic_dir
    path = request.getfixturevalue("shared_data") / "newmu_svhn_dcgan"
    if not path.is_dir():
        pytest.skip(f"the authors' SVHN model is not at {path}")
    return path


def torch_discrim(d: Discriminator, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        xt = torch.from_numpy(x).float()
        maps = d.train().features(xt)
        logit = d.head(maps[-1].flatten(1)).squeeze(1)
    return [m.double().numpy() for m in (*maps, logit)]


def torch_gen(g: Generator, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return g.train()(torch.from_numpy(z).float()).double().numpy()


def max_errors_d(d: Discriminator, x: np.ndarray, arrays: list[np.ndarray]) -> list[float]:
    return [float(np.abs(a - b).max()) for a, b in zip(torch_discrim(d, x), reference_discrim(x, *arrays))]


def flip_back(module: torch.nn.Module) -> None:
    """Undo the importer's kernel flip (what loading without the flip would give)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.copy_(m.weight.flip(-2, -1))


def test_discriminator_matches_reference(model_dir):
    _, d = load_newmu_svhn(model_dir)
    x = np.random.default_rng(2).uniform(-1, 1, size=(4, 3, 32, 32))
    arrays = raw_arrays(model_dir, "discrim")
    errors = max_errors_d(d, x, arrays)
    print("D max abs errors (h1, h2, h3, logit):", errors)
    assert max(errors) < TOL, errors

    flip_back(d)  # the same network loaded without the flip must disagree
    assert min(max_errors_d(d, x, arrays)) > 100 * TOL


def test_generator_matches_reference(model_dir):
    g, _ = load_newmu_svhn(model_dir)
    z = np.random.default_rng(3).normal(size=(8, 100))
    expected = reference_gen(z, *raw_arrays(model_dir, "gen"))
    out = torch_gen(g, z)
    assert out.shape == (8, 3, 32, 32)
    error = float(np.abs(out - expected).max())
    print("G max abs error:", error)
    assert error < TOL

    flip_back(g)
    assert np.abs(torch_gen(g, z) - expected).max() > 100 * TOL


def test_batchnorm_uses_authors_epsilon_and_placeholder_stats(synthetic_dir):
    g, d = load_newmu_svhn(synthetic_dir)
    bns = [m for m in (*g.modules(), *d.modules()) if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 5
    for bn in bns:
        assert bn.eps == EPS
        assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)


# ----------------------------------------------------------------------------------- errors
def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="Newmu/dcgan_code"):
        load_newmu_svhn(tmp_path / "nowhere")


def test_missing_file(tmp_path):
    directory = write_synthetic_release(tmp_path / "model")
    missing = array_path(directory, 200, "gen", 3)
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="200_gen_params.jl_04.npy") as info:
        load_newmu_svhn(directory)
    assert "svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb" in str(info.value)


def test_wrong_epoch_is_a_missing_file(tmp_path):
    directory = write_synthetic_release(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="100_discrim_params.jl_01.npy"):
        load_newmu_svhn(directory, epoch=100)


def test_wrong_shape(tmp_path):
    directory = write_synthetic_release(tmp_path / "model")
    bad = array_path(directory, 200, "discrim", 7)
    np.save(bad, np.zeros((1, 4096), dtype=np.float32))
    with pytest.raises(ValueError) as info:
        load_newmu_svhn(directory)
    message = str(info.value)
    assert "200_discrim_params.jl_08.npy" in message
    assert "(4096, 1)" in message and "(1, 4096)" in message


# ------------------------------------------------------------------------------- CLI spec
def test_parse_discriminator_spec():
    assert parse_discriminator_spec("newmu-svhn:/models/svhn") == Path("/models/svhn")
    assert parse_discriminator_spec("newmu-svhn:rel/dir") == Path("rel/dir")
    for bad in ("newmu-svhn:", "newmu-svhn", "dcgan", "/models/svhn", "newmu:/x"):
        with pytest.raises(ValueError, match="newmu-svhn:<dir>"):
            parse_discriminator_spec(bad)
