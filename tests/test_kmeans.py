"""Coates & Ng K-means baseline: agreement with a float64 port of Coates' MATLAB code, the
extractor contract, and the behaviour of its normalisation and pooling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import baselines.kmeans as kmeans_module
from baselines.kmeans import (
    KMeansExtractor,
    cluster_sums,
    image_patches,
    initial_centroids,
    run_kmeans,
    sample_patch_locations,
)

K, N_PATCHES, ITERS, SEED = 8, 500, 10, 3


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth-ish random uint8 images (noise plus a per-image gradient, so patches vary)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 120, (n, 3, size, size), generator=g)
    ramp = torch.linspace(0, 1, size)
    gradient = torch.rand(n, 3, 1, 1, generator=g) * 135 * (ramp[:, None] + ramp[None, :]) / 2
    return (noise + gradient).round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------- the reference
def coates_reference(
    images: np.ndarray, image: np.ndarray, row: np.ndarray, col: np.ndarray, init: np.ndarray, iters: int, rf: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float64 numpy port of kmeans_demo.m + run_kmeans.m + extract_features.m, line by line.

    Returns (M, P, centroids, features).  Patches are flattened (channel, row, column) and
    quadrants ordered TL, TR, BL, BR, the layout the extractor documents.
    """
    # patches(i,:) = patch(:)'
    patches = np.stack([images[i, :, r : r + rf, c : c + rf].reshape(-1) for i, r, c in zip(image, row, col)])
    patches = patches.astype(np.float64)

    # patches = bsxfun(@rdivide, bsxfun(@minus, patches, mean(patches,2)), sqrt(var(patches,[],2)+10));
    def normalise(p: np.ndarray) -> np.ndarray:
        return (p - p.mean(axis=1, keepdims=True)) / np.sqrt(p.var(axis=1, ddof=1, keepdims=True) + 10)

    patches = normalise(patches)
    # C = cov(patches); M = mean(patches); [V,D] = eig(C); P = V * diag(sqrt(1./(diag(D) + 0.1))) * V';
    cov = np.cov(patches, rowvar=False)
    mean = patches.mean(axis=0)
    d, v = np.linalg.eigh(cov)
    proj = v @ np.diag(np.sqrt(1.0 / (d + 0.1))) @ v.T
    patches = (patches - mean) @ proj

    # run_kmeans(patches, k, iters) with the given initial centroids
    centroids = init.astype(np.float64).copy()
    k = len(centroids)
    for _ in range(iters):
        c2 = 0.5 * np.sum(centroids**2, axis=1)
        summation = np.zeros_like(centroids)
        counts = np.zeros(k)
        for i in range(0, len(patches), 1000):
            xb = patches[i : i + 1000]
            labels = np.argmax(centroids @ xb.T - c2[:, None], axis=0)
            indicator = np.zeros((len(xb), k))
            indicator[np.arange(len(xb)), labels] = 1
            summation += indicator.T @ xb
            counts += indicator.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            centroids = summation / counts[:, None]
        centroids[counts == 0] = 0

    # extract_features: every patch, normalise, whiten, triangle, quadrant sums
    _, _, h, w = images.shape
    prows, pcols = h - rf + 1, w - rf + 1
    halfr, halfc = int(np.floor(prows / 2 + 0.5)), int(np.floor(pcols / 2 + 0.5))  # MATLAB round
    features = []
    for img in images.astype(np.float64):
        p = np.stack([img[:, r : r + rf, c : c + rf].reshape(-1) for r in range(prows) for c in range(pcols)])
        p = (normalise(p) - mean) @ proj
        xx = np.sum(p**2, axis=1)
        cc = np.sum(centroids**2, axis=1)
        z = np.sqrt(np.maximum(cc[None, :] + xx[:, None] - 2 * p @ centroids.T, 0))
        act = np.maximum(z.mean(axis=1, keepdims=True) - z, 0).reshape(prows, pcols, k)
        quads = [act[:halfr, :halfc], act[:halfr, halfc:], act[halfr:, :halfc], act[halfr:, halfc:]]
        features.append(np.concatenate([q.sum(axis=(0, 1)) for q in quads]))
    return mean, proj, centroids, np.stack(features)


def assert_close_on_scale(actual: torch.Tensor, expected: np.ndarray, tol: float) -> None:
    """max |actual - expected| <= tol * max |expected| (relative to the array's own scale)."""
    actual_np = actual.detach().cpu().double().numpy()
    assert actual_np.shape == expected.shape
    err, scale = np.abs(actual_np - expected).max(), np.abs(expected).max()
    assert err <= tol * scale, f"max abs error {err:.3g} > {tol} * scale {scale:.3g}"


@pytest.fixture(scope="module")
def fitted() -> tuple[KMeansExtractor, torch.Tensor]:
    images = random_images(20)
    extractor = KMeansExtractor(k=K, n_patches=N_PATCHES, iters=ITERS, seed=SEED)
    extractor.fit(images)
    return extractor, images


# --------------------------------------------------------------------------- agreement
def test_matches_float64_reference_of_coates_code(fitted):
    extractor, images = fitted
    # Replay the extractor's random draws (same generator, same order) for the reference.
    g = torch.Generator().manual_seed(SEED)
    image, row, col = sample_patch_locations(len(images), 32, 32, N_PATCHES, 6, g)
    init = initial_centroids(K, 108, g)
    mean, proj, centroids, features = coates_reference(
        images.numpy(), image.numpy(), row.numpy(), col.numpy(), init.numpy(), ITERS
    )
    assert (np.abs(centroids).sum(axis=1) > 0).sum() >= 4, "degenerate test problem: most clusters empty"
    assert_close_on_scale(extractor.mean_, mean, 1e-10)
    assert_close_on_scale(extractor.whitening_, proj, 1e-10)
    assert_close_on_scale(extractor.centroids_, centroids, 1e-4)  # K-means runs in float32
    assert_close_on_scale(extractor.transform(images), features, 1e-4)


def test_patch_locations_cover_images_evenly_and_stay_inside():
    image, row, col = sample_patch_locations(7, 12, 10, 100, 6, torch.Generator().manual_seed(0))
    counts = torch.bincount(image, minlength=7)
    assert counts.min() >= 14 and counts.max() <= 15  # 100 / 7, cycling a permutation
    assert set(row.tolist()) == set(range(7)) and set(col.tolist()) == set(range(5))


def test_run_kmeans_float64_matches_reference_and_zeroes_empty_clusters():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(60, 5, generator=g) + 4, torch.randn(60, 5, generator=g) - 4]).double()
    init = torch.zeros(3, 5, dtype=torch.float64)
    init[0], init[1], init[2] = 1.0, -1.0, 100.0  # the third is never nearest: empty
    centroids, history = run_kmeans(x, init, iters=3, chunk=7)
    assert torch.allclose(centroids[0], x[:60].mean(0)) and torch.allclose(centroids[1], x[60:].mean(0))
    assert torch.equal(centroids[2], torch.zeros(5, dtype=torch.float64))
    assert len(history) == 3 and history[-1] <= history[0]


def test_cluster_sums_paths_agree():
    g = torch.Generator().manual_seed(0)
    x, labels = torch.randn(50, 4, generator=g), torch.randint(0, 6, (50,), generator=g)
    by_matmul, by_index_add = cluster_sums(x, labels, 6, one_hot=True), cluster_sums(x, labels, 6, one_hot=False)
    assert torch.allclose(by_matmul, by_index_add, atol=1e-6)


def test_image_patches_matches_unfold():
    images = random_images(2, size=10).float()
    expected = torch.nn.functional.unfold(images, 6).transpose(1, 2).reshape(-1, 108)
    assert torch.equal(image_patches(images, 6), expected)


# --------------------------------------------------------------------------- contract
def test_shape_dtype_settings(fitted):
    extractor, images = fitted
    features = extractor.transform(images[:5])
    assert features.shape == (5, 4 * K) == (5, extractor.feature_dim)
    assert features.dtype == torch.float32 and features.device == extractor.device
    assert extractor.label == f"kmeans-{K}" and extractor.learns_from_data
    settings = extractor.settings()
    for key, value in {"k": K, "n_patches": N_PATCHES, "patch": 6, "iters": ITERS, "seed": SEED,
                       "whitening_eps": 0.1, "normalisation_eps": 10.0, "pooling": "quadrant-sum"}.items():
        assert settings[key] == value


def test_deterministic_for_a_seed_and_different_across_seeds(fitted):
    extractor, images = fitted
    again = KMeansExtractor(k=K, n_patches=N_PATCHES, iters=ITERS, seed=SEED)
    again.fit(images)
    assert torch.equal(again.centroids_, extractor.centroids_)
    assert torch.equal(again.transform(images[:3]), extractor.transform(images[:3]))
    other = KMeansExtractor(k=K, n_patches=N_PATCHES, iters=ITERS, seed=SEED + 1)
    other.fit(images)
    assert not torch.allclose(other.centroids_, extractor.centroids_)


def test_transform_is_independent_of_batch_size(fitted):
    extractor, images = fitted
    small = KMeansExtractor(k=K, n_patches=N_PATCHES, iters=ITERS, seed=SEED, batch_size=3)
    small.mean_, small.whitening_, small.centroids_ = extractor.mean_, extractor.whitening_, extractor.centroids_
    assert torch.allclose(small.transform(images), extractor.transform(images), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("images_per_block", [1, 3])
def test_cache_sized_encoding_blocks_match_one_block(fitted, monkeypatch, images_per_block):
    # 20 images in blocks of 1 or 3 (the last one short): each block's activations must
    # land in its own images' rows, and match encoding the whole batch at once.
    extractor, images = fitted
    whole = extractor.transform(images)
    monkeypatch.setattr(kmeans_module, "ENCODE_BLOCK_BYTES", images_per_block * 27 * 27 * K * 4)
    assert torch.allclose(extractor.transform(images), whole, rtol=1e-5, atol=1e-5 * whole.abs().max().item())


# --------------------------------------------------------------------------- behaviour
def test_brightness_offset_leaves_features_unchanged(fitted):
    """Per-patch mean subtraction: adding a constant to every pixel changes nothing."""
    extractor, images = fitted
    dim = (images.int() * 200 // 255).to(torch.uint8)  # room to brighten without clipping
    bright = dim + 55
    base = extractor.transform(dim)
    assert torch.allclose(extractor.transform(bright), base, rtol=1e-4, atol=1e-4 * base.abs().max().item())
    # ...while scaling contrast (given the +10 in the normaliser) does change them.
    low_contrast = (dim.float() * 0.1 + 100).round().to(torch.uint8)
    assert not torch.allclose(extractor.transform(low_contrast), base, rtol=1e-2)


@pytest.mark.parametrize(("quadrant", "rows", "cols"), [
    (0, slice(8, 14), slice(8, 14)),  # top-left: pixels 8..13 are seen only by map rows/cols <= 13
    (1, slice(8, 14), slice(19, 25)),  # top-right: pixels >= 19 are seen only by map cols >= 14
    (2, slice(19, 25), slice(8, 14)),  # bottom-left
    (3, slice(19, 25), slice(19, 25)),  # bottom-right
])
def test_content_in_one_quadrant_changes_only_its_block(fitted, quadrant, rows, cols):
    """Sum pooling over a 14 + 13 split, blocks ordered TL, TR, BL, BR.  A floor split (13 + 14)
    or another block order would leak the change into a neighbouring block."""
    extractor, _ = fitted
    blank = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8)
    marked = blank.clone()
    marked[0, :, rows, cols] = random_images(1, size=32, seed=7)[0, :, :6, :6]
    diff = (extractor.transform(marked) - extractor.transform(blank)).view(4, K).abs().sum(dim=1)
    assert diff[quadrant] > 1.0
    assert torch.all(diff[torch.arange(4) != quadrant] < 1e-4 * diff[quadrant])


# --------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors(fitted):
    extractor, images = fitted
    with pytest.raises(RuntimeError, match="before fit"):
        KMeansExtractor(k=K).transform(images)
    with pytest.raises(TypeError, match="uint8"):
        extractor.transform(images.float())
    with pytest.raises(TypeError, match="uint8"):
        KMeansExtractor(k=K, n_patches=10).fit(images.float())
    with pytest.raises(TypeError, match="torch.Tensor"):
        extractor.transform(images.numpy())
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        extractor.transform(images.permute(0, 2, 3, 1))  # channels-last
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        extractor.transform(images[0])
    with pytest.raises(ValueError, match="smaller than"):
        extractor.transform(images[:, :, :5, :5])
    with pytest.raises(ValueError, match="k must be"):
        KMeansExtractor(k=0)
