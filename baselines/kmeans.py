"""Single-layer K-means features (Coates, Lee & Ng, AISTATS 2011), the CIFAR-10 baseline.

A port of Coates' ``kmeans_demo.m`` / ``run_kmeans.m`` / ``extract_features.m``
(sc_vq_demo), as batched tensor ops on the extractor's device:

1. ``fit``: draw random 6x6x3 patches (raw 0..255 pixel values), normalise each patch
   ``(x - mean) / sqrt(var + 10)`` with the *unbiased* variance (MATLAB ``var``), ZCA-whiten
   with ``C = cov(patches)`` (unbiased, MATLAB ``cov``) and
   ``P = V diag(1 / sqrt(d + 0.1)) V'``, then run 50 iterations of plain K-means from
   centroids ``randn(k, d) * 0.1``; a cluster that ends an iteration empty is set to zero,
   as Coates' code does.
2. ``transform``: every stride-1 6x6 patch of each image is normalised and whitened the
   same way, encoded with the "triangle" activation ``f_k = max(0, mean(z) - z_k)``
   (``z_k`` the distance to centroid ``k``), and the activation map is sum-pooled over its
   four quadrants, giving ``4 k`` features.  For a 27x27 map Coates' ``round(27 / 2)``
   puts rows/columns 0..13 in the first half and 14..26 in the second.

Whitening statistics are computed in float64; K-means and the encoding run in float32
(Coates' MATLAB runs in float64; see the test for the agreement).  Global matmul flags
are left alone: a caller that turns on TF32 gets TF32 here too.  Randomness comes from a
CPU ``torch.Generator`` seeded with ``seed``, so the draws are the same on every device.

Layout: a flattened patch is ordered (channel, row, column), as ``F.unfold`` gives it; the
four quadrants come out top-left, top-right, bottom-left, bottom-right (row-major), each a
block of ``k`` features.  (Coates' MATLAB reshape transposes CIFAR images, so his q1..q4
are in the same row-major order in true image coordinates; the order within a patch is a
fixed permutation of dimensions, to which whitening and K-means are indifferent.)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from baselines.registry import BuildContext, register
from dcgan_ref.runtime.progress import Progress

NORM_EPS = 10.0  # added to the per-patch variance (assumes 0..255 pixel values)
WHITEN_EPS = 0.1  # added to the covariance eigenvalues in ZCA
INIT_SCALE = 0.1  # initial centroids: randn(k, d) * INIT_SCALE
# Patches per K-means assignment batch: its (chunk x k) score block stays near cache size
# (2,048 x 4,000 x 4 B = 33 MB); 100k patches, one iteration, 2 AMD EPYC cores: 8,192-patch
# chunks 1.30 s (k = 4,000) / 0.59 s (k = 1,600), 2,048-patch chunks 0.79 / 0.37 s; GEMM
# limit 0.45 / 0.18 s.
KMEANS_CHUNK = 2048
# On the CPU the encoding is bound by memory traffic, not by its GEMM: the triangle
# activation makes ~8 elementwise passes over a (patches x k) block, so the block is kept
# about cache-sized. Measured on 2 AMD EPYC cores (32 MB L3), the same 640 images: k = 4,000,
# 64-image blocks (0.75 GB) 55 img/s, one-image blocks (12 MB) 118; k = 1,600, 132 -> 243.
# The GEMM alone (0.63 GFLOP per image at k = 4,000, 0.19 TFLOP/s) would allow ~300.
ENCODE_BLOCK_BYTES = 16 << 20


# --------------------------------------------------------------------------- checks
def check_images(images: torch.Tensor, min_size: int = 1) -> None:
    """Raise unless ``images`` is a uint8 tensor (N, 3, H, W) with H, W >= ``min_size``."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images (0..255), got {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if min(images.shape[2:]) < min_size:
        raise ValueError(f"images {tuple(images.shape[2:])} are smaller than a {min_size}x{min_size} patch")


# --------------------------------------------------------------------------- patches
def sample_patch_locations(
    n_images: int, height: int, width: int, n_patches: int, patch: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image index, top row and left column of each of ``n_patches`` random patches.

    Coates cycles through the images in order (patch ``i`` from image ``i mod N``) at a
    uniformly random position; we cycle through a random permutation of the images, so
    each patch's image is uniform, every image gives ``n_patches / N`` patches (+-1), and a
    draw smaller than ``N`` does not depend on the images' order.
    """
    order = torch.randperm(n_images, generator=generator)
    image = order[torch.arange(n_patches) % n_images]
    row = torch.randint(0, height - patch + 1, (n_patches,), generator=generator)
    col = torch.randint(0, width - patch + 1, (n_patches,), generator=generator)
    return image, row, col


def initial_centroids(k: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Coates' K-means initialisation, ``randn(k, dim) * 0.1`` (float32, CPU)."""
    return torch.randn(k, dim, generator=generator) * INIT_SCALE


def extract_patches(
    images: torch.Tensor, image: torch.Tensor, row: torch.Tensor, col: torch.Tensor, patch: int
) -> torch.Tensor:
    """Gather patches ``images[image, :, row:row+patch, col:col+patch]`` -> uint8 (n, C*patch*patch)."""
    dev = images.device
    image, row, col = image.to(dev), row.to(dev), col.to(dev)
    offset = torch.arange(patch, device=dev)
    channel = torch.arange(images.shape[1], device=dev)
    patches = images[
        image[:, None, None, None],
        channel[None, :, None, None],
        (row[:, None] + offset)[:, None, :, None],
        (col[:, None] + offset)[:, None, None, :],
    ]
    return patches.reshape(len(image), -1)


def image_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """All stride-1 patches of (B, C, H, W) images -> (B * rows * cols, C*patch*patch).

    Rows are ordered image, then patch row, then patch column; each patch is flattened
    (channel, row, column) like ``extract_patches``.  (Same result as ``F.unfold``, which
    is ~40x slower on the CPU.)
    """
    windows = images.unfold(2, patch, 1).unfold(3, patch, 1)  # (B, C, rows, cols, p, p)
    return windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1] * patch * patch)


# --------------------------------------------------------------------------- pipeline steps
def normalize_patches(patches: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Per-patch contrast normalisation ``(x - mean) / sqrt(var + eps)`` over the last dim.

    ``var`` is unbiased (N - 1), as MATLAB's ``var(patches, [], 2)`` in Coates' code.
    """
    var, mean = torch.var_mean(patches, dim=-1, correction=1, keepdim=True)
    return (patches - mean) / torch.sqrt(var + eps)


def zca_whitening(patches: torch.Tensor, eps: float = WHITEN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """ZCA statistics of (n, d) patches: ``(M, P)`` with whitened ``= (x - M) @ P``, in float64.

    ``C = cov(x)`` (unbiased), ``[V, D] = eig(C)``, ``P = V diag(1 / sqrt(D + eps)) V'``.
    """
    x = patches.double()
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / (len(x) - 1)
    # A 108x108 eigenproblem: solved on the CPU, so P does not depend on the device's solver.
    evals, evecs = torch.linalg.eigh(cov.cpu())
    proj = evecs @ torch.diag(1.0 / torch.sqrt(evals + eps)) @ evecs.T
    return mean, proj.to(patches.device)


def cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int, one_hot: bool | None = None) -> torch.Tensor:
    """Sum of the rows of ``x`` (n, d) per label in ``0..k-1`` -> (k, d).

    ``index_add_`` on the CPU; elsewhere (``one_hot=None``) a one-hot matmul, because
    ``index_add_`` on CUDA adds floats with atomics and is not deterministic.
    """
    if one_hot is None:
        one_hot = x.device.type != "cpu"
    if one_hot:
        indicator = torch.zeros(len(x), k, dtype=x.dtype, device=x.device).scatter_(1, labels[:, None], 1.0)
        return indicator.T @ x
    return torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, labels, x)


def run_kmeans(
    x: torch.Tensor, centroids: torch.Tensor, iters: int, chunk: int = KMEANS_CHUNK
) -> tuple[torch.Tensor, list[float]]:
    """Coates' ``run_kmeans``: ``iters`` Lloyd iterations from the given initial centroids.

    Assignment maximises ``x.c - ||c||^2 / 2`` (= nearest centroid) in chunks of ``chunk``
    patches; the update is the mean of the assigned patches, and a centroid with no
    patches is set to zero (Coates: "zap empty centroids").  Works in ``x``'s dtype and
    device.  Returns the final centroids and, per iteration, the mean squared distance of
    a patch to its nearest centroid (measured at that iteration's assignment step).
    """
    k = len(centroids)
    centroids = centroids.to(device=x.device, dtype=x.dtype)
    x2 = (x * x).sum(dim=1)
    history: list[float] = []
    progress = Progress(f"K-means ({k} centroids, {len(x):,} patches)", iters, unit="iterations")
    for _ in range(iters):
        half_c2 = 0.5 * (centroids * centroids).sum(dim=1)  # argmax x.c - ||c||^2/2 = nearest c
        summation = torch.zeros_like(centroids)
        counts = torch.zeros(k, dtype=torch.long, device=x.device)
        sq_dist = torch.zeros((), dtype=torch.float64, device=x.device)
        for start in range(0, len(x), chunk):
            xb = x[start : start + chunk]
            best, labels = torch.addmm(-half_c2, xb, centroids.T).max(dim=1)
            sq_dist += (x2[start : start + chunk] - 2 * best).sum(dtype=torch.float64)
            summation += cluster_sums(xb, labels, k)
            counts += torch.bincount(labels, minlength=k)
        centroids = summation / counts.clamp_min(1).unsqueeze(1).to(x.dtype)  # empty -> 0 / 1 = 0
        history.append(sq_dist.item() / len(x))
        progress.update()
    return centroids, history


def triangle_encode(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Triangle activations ``max(0, mean_k(z) - z_k)`` of (n, d) patches, ``z_k = ||x - c_k||``.

    Distances are ``sqrt(max(||x||^2 - 2 x.c + ||c||^2, 0))``; the result is (n, k).
    """
    z = torch.addmm((centroids * centroids).sum(dim=1), x, centroids.T, alpha=-2.0)
    z.add_((x * x).sum(dim=1, keepdim=True)).clamp_min_(0.0).sqrt_()
    mean = z.mean(dim=1, keepdim=True)
    return z.neg_().add_(mean).clamp_min_(0.0)


def quadrant_sum_pool(maps: torch.Tensor) -> torch.Tensor:
    """Sum (B, R, C, k) activation maps over four quadrants -> (B, 4k).

    The first half has ``round(R / 2)`` rows (MATLAB rounds .5 up: 14 of 27), likewise for
    columns.  Order: top-left, top-right, bottom-left, bottom-right, each a block of k.
    """
    hr, hc = (maps.shape[1] + 1) // 2, (maps.shape[2] + 1) // 2
    quadrants = (maps[:, :hr, :hc], maps[:, :hr, hc:], maps[:, hr:, :hc], maps[:, hr:, hc:])
    return torch.cat([q.sum(dim=(1, 2)) for q in quadrants], dim=1)


# --------------------------------------------------------------------------- extractor
class KMeansExtractor:
    """Coates & Ng single-layer K-means features: ``4 k`` per image.

    Args:
        k: number of centroids (1,600 and 4,000 in the paper's comparison).
        n_patches: random patches drawn for whitening and K-means (Coates: 400,000).
        patch: receptive field size (6x6).
        iters: K-means iterations (50).
        seed: seeds patch sampling and the centroid initialisation.
        device: where whitening, K-means and encoding run, and where features land.
        batch_size: images whose patches ``transform`` whitens at once.  On a GPU they are
            also encoded at once (peak memory about one float32
            ``(batch_size * (H - patch + 1) * (W - patch + 1), k)`` matrix: 64 images of
            32x32 at k = 4,000, 0.75 GB); on the CPU in cache-sized blocks of images
            (``ENCODE_BLOCK_BYTES``).
    """

    def __init__(
        self,
        k: int = 1600,
        n_patches: int = 400_000,
        patch: int = 6,
        iters: int = 50,
        seed: int = 0,
        device: torch.device | str = "cpu",
        batch_size: int = 64,
    ) -> None:
        self.device = torch.device(device)
        for arg, value in (("k", k), ("n_patches", n_patches), ("patch", patch), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{arg} must be >= 1, got {value}")
        if iters < 0:
            raise ValueError(f"iters must be >= 0, got {iters}")
        self.k, self.n_patches, self.patch, self.iters = k, n_patches, patch, iters
        self.seed, self.batch_size = seed, batch_size
        self.label = f"kmeans-{k}"
        self.learns_from_data = True
        self.notes = ""
        self.mean_: torch.Tensor | None = None  # whitening mean M, float64 (d,)
        self.whitening_: torch.Tensor | None = None  # whitening matrix P, float64 (d, d)
        self.centroids_: torch.Tensor | None = None  # float32 (k, d), in whitened space

    def flops_per_image(self, image_size: int = 32) -> int:
        """FLOPs of one image's encoding: every patch whitened (d x d) and compared with every centroid (d x k)."""
        d, n_patches = 3 * self.patch**2, (image_size - self.patch + 1) ** 2
        return 2 * n_patches * d * (d + self.k)

    @property
    def feature_dim(self) -> int:
        return 4 * self.k

    def settings(self) -> dict[str, Any]:
        return {
            "extractor": self.label,
            "k": self.k,
            "n_patches": self.n_patches,
            "patch": self.patch,
            "iters": self.iters,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "pixel_scale": "0..255",
            "normalisation_eps": NORM_EPS,
            "normalisation_var": "unbiased",
            "whitening": "zca",
            "whitening_eps": WHITEN_EPS,
            "kmeans_init": f"randn*{INIT_SCALE}",
            "kmeans_empty_cluster": "zero",
            "encoding": "triangle",
            "pooling": "quadrant-sum",
        }

    def fit(self, images: torch.Tensor, validate=None) -> dict[str, Any]:
        """Learn whitening and centroids from random patches of uint8 images; ``validate`` is unused."""
        check_images(images, self.patch)
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(self.seed)
        n, _, height, width = images.shape
        image, row, col = sample_patch_locations(n, height, width, self.n_patches, self.patch, generator)
        init = initial_centroids(self.k, 3 * self.patch * self.patch, generator)

        patches = extract_patches(images, image, row, col, self.patch).to(self.device, torch.float64)
        patches = normalize_patches(patches)
        self.mean_, self.whitening_ = zca_whitening(patches)
        whitened = ((patches - self.mean_) @ self.whitening_).float()
        del patches
        self.centroids_, history = run_kmeans(whitened, init, self.iters)
        return {
            "kmeans_sq_dist": history[-1] if history else float("nan"),
            "kmeans_empty_clusters": int((self.centroids_ == 0).all(dim=1).sum()),
            "fit_s": time.perf_counter() - start,
        }

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Triangle-encoded, quadrant-pooled features: float32 (N, 4k) on ``self.device``."""
        if self.centroids_ is None or self.mean_ is None or self.whitening_ is None:
            raise RuntimeError("KMeansExtractor.transform called before fit")
        check_images(images, self.patch)
        _, _, height, width = images.shape
        rows, cols = height - self.patch + 1, width - self.patch + 1
        proj = self.whitening_.float()
        bias = (self.mean_ @ self.whitening_).float()  # (x - M) P = x P - M P
        per_image = rows * cols * self.k * 4  # bytes of one image's float32 activations
        block = self.batch_size if self.device.type != "cpu" else max(1, ENCODE_BLOCK_BYTES // per_image)
        out = torch.empty(len(images), self.feature_dim, device=self.device)
        progress = Progress(f"K-means encoding ({self.k} centroids)", len(images))
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size].to(self.device).float()
            patches = image_patches(batch, self.patch)  # (B * rows * cols, d)
            whitened = normalize_patches(patches) @ proj - bias
            for first in range(0, len(batch), block):
                n = min(block, len(batch) - first)
                rows_of_block = whitened[first * rows * cols : (first + n) * rows * cols]
                activations = triangle_encode(rows_of_block, self.centroids_)
                out[start + first : start + first + n] = quadrant_sum_pool(activations.view(n, rows, cols, self.k))
            progress.update(len(batch))
        return out


@dataclass(frozen=True)
class KMeansConfig:
    """The K-means rows' own setting (a preset's entry)."""
    patches: int = 400_000  # random 6x6 patches the dictionary is learned from (Coates & Ng: 400,000)


@register("kmeans-<K>", config=KMeansConfig)
def kmeans(ctx: BuildContext, cfg: KMeansConfig, K: int) -> KMeansExtractor:
    return KMeansExtractor(k=K, n_patches=cfg.patches, seed=ctx.seed, device=ctx.device)
