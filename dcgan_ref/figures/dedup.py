"""De-duplication by autoencoder hashing (Section 4.1.1), checked against exact search.

The paper hashes images with the binarised code layer of a 3072-128-3072 denoising,
dropout-regularised ReLU autoencoder and treats colliding images as duplicates.  Here the
hashes of CIFAR-10's test images are matched against its train images, and every hash
verdict is scored against an exact pixel-space nearest-neighbour search over all of train.

What counts as a near-duplicate (the ground truth): the test image's nearest train image
is much nearer than its ``k``-th nearest, ``d1 < ratio * dk`` (RMS distance over pixels in
[0, 1]).  An absolute RMS threshold does not work on this data: near-duplicates in CIFAR-10
are re-crops and re-scalings of one photo, and both copies went through JPEG separately,
so they sit 0.05-0.13 apart, as far as a plain sky or sea image sits from the nearest
other plain sky or sea image.  Relative to ``dk`` they stand out (see ``RATIO_NOTE``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from matplotlib.figure import Figure  # no pyplot: draws to a file without touching the global backend
from torch import nn
from torchvision.utils import make_grid

from dcgan_ref.figures.inputs import save_figure, write_json
from dcgan_ref.neighbours import nearest_images
from dcgan_ref.runtime.progress import Progress

CODE_BITS = 128
RATIO, K = 0.75, 5
RADII = (0, 1, 2, 4, 8, 12, 16)
RATIO_NOTE = (
    "Set by inspection on the CIFAR-10 JPEG copy, where no gap exists: the closest test-train pair is 0.048 RMS "
    "apart (no pixel-identical copies), and plain sky/sea images have a nearest train image as close (0.06-0.08) "
    "as real near-duplicates do.  d1/d5 (d5 tolerates up to 4 copies of an image in train) has a bulk peaked "
    "near 0.95 and a thin tail of 5-25 test images per 0.02 from 0.3 to 0.72.  Random pairs inspected per bin: "
    "almost all the same photo below 0.72, about three quarters in 0.72-0.78, about half in 0.78-0.84; the cut "
    "at 0.75 keeps the list mostly true duplicates and misses some (re-crops with a larger shift).")
PUBLISHED = {"fraction": 0.0325, "source": "Barz & Denzler, 'Do we train on test data? Purging CIFAR of "
             "near-duplicates' (J. Imaging 2020; ciFAIR): 3.25% of CIFAR-10 test images have a near-duplicate in "
             "train or elsewhere in test, found with CNN features and checked by hand"}


def unit_rows(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 (N, 3*H*W) in [0, 1]: what the autoencoder and distances see."""
    return images.flatten(1).float().div_(255)


# ------------------------------------------------------------------ the autoencoder hash
class Autoencoder(nn.Module):
    """3072-128-3072 with a ReLU code.  The encoder sees images centred on the train mean,
    so no unit starts with every input on one side of zero (uncentred [0, 1] inputs killed
    124 of 128 units within one epoch); the decoder adds the mean back."""

    def __init__(self, mean: torch.Tensor, code: int = CODE_BITS) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.enc, self.dec = nn.Linear(len(mean), code), nn.Linear(code, len(mean))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.enc(x - self.mean))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.encode(x)) + self.mean


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 6        # the loss is flat to 3 digits by then; ~1 minute on 2 busy cores for 50k images
    batch_size: int = 256
    lr: float = 1e-3       # Adam
    noise: float = 0.1     # std of the Gaussian input noise (denoising)
    dropout: float = 0.2   # on the code layer: no single unit may carry an image


def train_autoencoder(images: torch.Tensor, settings: TrainSettings = TrainSettings(), seed: int = 0,
                      log: Callable[[str], None] = print) -> tuple[Autoencoder, float]:
    """The autoencoder fitted to uint8 ``images`` and its last epoch's mean reconstruction MSE.

    Seeded and bitwise repeatable on CPU: init, shuffling, noise and dropout all draw from
    ``seed``, and it runs on one thread (its matmuls are too small to gain from more, and a
    fixed thread count keeps the float sums in one order whatever the machine).
    """
    x_all = unit_rows(images)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Autoencoder(x_all.mean(0))
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        keep = 1 - settings.dropout
        loss_sum = 0.0
        # one line per epoch; the lambda reads loss_sum when the epoch ends
        progress = Progress("autoencoder", settings.epochs, unit="epochs", every_s=0.0,
                            log=lambda line: log(f"{line} | reconstruction MSE {loss_sum / len(x_all):.5f}"))
        for _ in range(settings.epochs):
            loss_sum = 0.0
            for batch in torch.randperm(len(x_all), generator=gen).split(settings.batch_size):
                x = x_all[batch]
                h = model.encode(x + settings.noise * torch.randn(x.shape, generator=gen))
                h = h * (torch.rand(h.shape, generator=gen) < keep) / keep
                loss = (model.dec(h) + model.mean - x).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(x)
            progress.update()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), loss_sum / len(x_all)


@torch.no_grad()
def hash_codes(model: Autoencoder, images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The paper's hash: which code units are on (ReLU > 0), bool (N, 128)."""
    return torch.cat([model.encode(unit_rows(images[s:s + chunk])) > 0 for s in range(0, len(images), chunk)])


def hash_pairs(test_codes: torch.Tensor, train_codes: torch.Tensor, radius: int = 0, chunk: int = 1024,
               max_pairs: int = 5_000_000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (test, train) pair whose codes differ in at most ``radius`` bits: (test index,
    train index, Hamming distance); radius 0 is the paper's exact collision.

    Hamming distance as a matmul of +-1 codes, ``(bits - a.b) / 2``, exact in float32.  A
    degenerate autoencoder (few distinct codes) would make almost every pair collide, so
    more than ``max_pairs`` is refused rather than filling memory.
    """
    bits = test_codes.shape[1]
    train_pm = train_codes.float() * 2 - 1
    found, n = [], 0
    for s in range(0, len(test_codes), chunk):
        ham = (bits - (test_codes[s:s + chunk].float() * 2 - 1) @ train_pm.T) / 2
        t, j = (ham <= radius).nonzero(as_tuple=True)
        n += len(t)
        if n > max_pairs:
            raise ValueError(f"over {max_pairs:,} hash pairs within radius {radius} "
                             f"({len(train_codes.unique(dim=0)):,} distinct train codes): the codes are degenerate")
        found.append((t + s, j, ham[t, j].long()))
    if not found:  # no test images
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    t, j, ham = (torch.cat(parts) for parts in zip(*found))
    return t, j, ham


# ------------------------------------------------------------------ exact search (the ground truth)
def pair_rms(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """RMS pixel distance of aligned uint8 image pairs ``a[i]``, ``b[i]``, on [0, 1]."""
    return torch.cat([(unit_rows(a[s:s + chunk]) - unit_rows(b[s:s + chunk])).square().mean(1).sqrt()
                      for s in range(0, len(a), chunk)]) if len(a) else torch.empty(0)


def nearest(test: torch.Tensor, train: torch.Tensor, k: int = K, chunk: int = 1000
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each test image's ``k`` nearest train images by RMS pixel distance: (distances, indices), (N, k)."""
    scale = test[0].numel() ** -0.5  # Euclidean distance of scaled rows = RMS pixel distance
    return nearest_images(unit_rows(test) * scale, unit_rows(train) * scale, k, chunk)


def near_duplicates(dist: torch.Tensor, ratio: float = RATIO) -> torch.Tensor:
    """bool (N,): the nearest train image is much nearer than the k-th, ``d1 < ratio * dk``."""
    return dist[:, 0] < ratio * dist[:, -1]


def precision_recall(flagged: torch.Tensor, truth: torch.Tensor) -> dict:
    """Of the images a method flags (bool masks over the same images); None where undefined."""
    tp, n_flagged, n_true = int((flagged & truth).sum()), int(flagged.sum()), int(truth.sum())
    return {"flagged": n_flagged, "true_positives": tp, "false_positives": n_flagged - tp,
            "false_negatives": n_true - tp, "precision": tp / n_flagged if n_flagged else None,
            "recall": tp / n_true if n_true else None}


def score_hash(test: torch.Tensor, train: torch.Tensor, test_codes: torch.Tensor, train_codes: torch.Tensor,
               dist: torch.Tensor, truth: torch.Tensor, ratio: float = RATIO, radii: Sequence[int] = RADII) -> dict:
    """Per Hamming radius, the hash against the exact search, over test images:

    - ``collisions``: the paper's rule, a test image with any train image within the radius
      is a duplicate;
    - ``confirmed``: only where one of those train images passes the ground truth's pixel
      test, ``rms < ratio * dk`` (precision 1 by construction; its recall says how many
      duplicates the hash puts in the right bucket with their partner).
    """
    t, j, ham = hash_pairs(test_codes, train_codes, max(radii))
    rms = pair_rms(test[t], train[j])
    passes = rms < ratio * dist[t, -1]
    out = {}
    for r in radii:
        within = ham <= r
        collided = torch.zeros(len(test), dtype=torch.bool)
        collided[t[within]] = True
        confirmed = torch.zeros(len(test), dtype=torch.bool)
        confirmed[t[within & passes]] = True
        out[str(r)] = {"pairs": int(within.sum()), "collisions": precision_recall(collided, truth),
                       "confirmed": precision_recall(confirmed, truth)}
    return out


# ------------------------------------------------------------------ figure
def draw(test: torch.Tensor, train: torch.Tensor, dist: torch.Tensor, index: torch.Tensor, truth: torch.Tensor,
         ratio: float, path: Path, title: str, shown: int = 24) -> Path:
    """Confirmed pairs (test | train), spread over the ratio range so the borderline ones show
    too; the ratio histogram with the cut; and d1 alone, flagged vs not (why d1 alone fails)."""
    r = dist[:, 0] / dist[:, -1]
    flagged = truth.nonzero().squeeze(1)
    flagged = flagged[r[flagged].argsort()]
    picks = flagged[torch.linspace(0, len(flagged) - 1, min(shown, len(flagged))).long()] if len(flagged) else flagged
    fig = Figure(figsize=(11, 8.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
    ax = fig.add_subplot(grid[0, :])
    ax.axis("off")
    if len(picks):
        gap = torch.full_like(test[0][:, :, :2], 255)
        pairs = torch.stack([torch.cat([test[p], gap, train[index[p, 0]]], dim=2) for p in picks.tolist()])
        ax.imshow(make_grid(pairs.float() / 255, nrow=6, padding=4, pad_value=1.0).permute(1, 2, 0).numpy(),
                  interpolation="nearest")
        ax.set_title(f"{len(picks)} of {len(flagged)} near-duplicates (test | nearest train), d1/d5 from "
                     f"{float(r[picks[0]]):.2f} (top left) to {float(r[picks[-1]]):.2f}", fontsize=8)
    ax = fig.add_subplot(grid[1, 0])
    ax.hist(r.numpy(), bins=100, range=(0, 1), color="tab:blue")
    ax.axvline(ratio, color="tab:red", label=f"cut {ratio:g}: {len(flagged)} test images")
    ax.set_yscale("log")
    ax.set_xlabel(f"d1 / d{dist.shape[1]} (nearest train image / {dist.shape[1]}th nearest, RMS)", fontsize=8)
    ax.set_ylabel("test images", fontsize=8)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 1])
    top = float(dist[:, 0].quantile(0.99)) if len(dist) else 1.0
    for mask, label in ((~truth, "not flagged"), (truth, "near-duplicates")):
        ax.hist(dist[mask, 0].numpy(), bins=80, range=(0, top), alpha=0.7, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("d1: RMS distance to the nearest train image (pixels in [0, 1])", fontsize=8)
    ax.legend(fontsize=7)
    for a in fig.axes[1:]:
        a.tick_params(labelsize=7)
    return save_figure(fig, path, title, fontsize=9)


# ------------------------------------------------------------------ the whole experiment
def make(train_images: torch.Tensor, test_images: torch.Tensor, out_dir: Path, seed: int = 0,
         data_label: str = "CIFAR-10", test_sha256: str | None = None, train_sha256: str | None = None,
         settings: TrainSettings = TrainSettings(), ratio: float = RATIO, k: int = K,
         radii: Sequence[int] = RADII, log: Callable[[str], None] = print) -> dict:
    """Train the hash on ``train_images``, find the test images with near-duplicates in train
    (exact search), score the hash against it; ``dedup.png`` + ``dedup.json`` in ``out_dir``.

    The JSON's ``near_duplicate_test_indices`` (into ``test_images``) and ``test_sha256`` are
    what ``benchmarks.cifar10_probe --exclude-near-duplicates`` reads.
    """
    t0 = time.perf_counter()
    model, loss = train_autoencoder(train_images, settings, seed, log)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    dist, index = nearest(test_images, train_images, k)
    truth = near_duplicates(dist, ratio)
    search_s = time.perf_counter() - t1
    t1 = time.perf_counter()
    hashing = score_hash(test_images, train_images, hash_codes(model, test_images), hash_codes(model, train_images),
                         dist, truth, ratio, radii)
    hash_s = time.perf_counter() - t1
    dups = truth.nonzero().squeeze(1)
    r = dist[:, 0] / dist[:, -1]
    q = torch.tensor([0.001, 0.01, 0.1, 0.5, 0.9])
    numbers = {
        "data": data_label, "test_sha256": test_sha256, "train_sha256": train_sha256,
        "n_train": len(train_images), "n_test": len(test_images), "seed": seed,
        "autoencoder": {"layers": f"{train_images[0].numel()}-{CODE_BITS}-{train_images[0].numel()}",
                        "code": "ReLU, hashed as unit > 0", "optimizer": "Adam", "epochs": settings.epochs,
                        "batch_size": settings.batch_size, "lr": settings.lr, "input_noise_std": settings.noise,
                        "code_dropout": settings.dropout, "final_reconstruction_mse": loss},
        "criterion": {"distance": "RMS over pixels in [0, 1]", "rule": f"d1 < ratio * d{dist.shape[1]}",
                      "ratio": ratio, "k": dist.shape[1],
                      "how_chosen": RATIO_NOTE if (ratio, k) == (RATIO, K) else "given by the caller"},
        "n_near_duplicates": len(dups), "fraction_near_duplicates": len(dups) / max(len(test_images), 1),
        "published": PUBLISHED,
        "near_duplicate_test_indices": dups.tolist(),
        "pairs": [{"test": t, "train": int(index[t, 0]), "rms": round(float(dist[t, 0]), 5),
                   "ratio": round(float(r[t]), 4)} for t in dups.tolist()],
        "nearest_rms_quantiles": dict(zip(map(str, q.tolist()), dist[:, 0].quantile(q).tolist())),
        "ratio_histogram": {"edges": torch.linspace(0, 1, 51).tolist(),
                            "counts": torch.histc(r, bins=50, min=0, max=1).long().tolist()},
        "hash": {"radii": hashing, "note": "radius 0 is the paper's rule (exact collision); 'collisions' scores "
                 "it as the paper applies it, 'confirmed' adds the pixel test of the ground truth"},
        "seconds": {"train_autoencoder": train_s, "exact_search": search_s, "hash": hash_s},
    }
    found = ", ".join(f"{r}: {v['collisions']['true_positives']} / {v['collisions']['false_positives']}"
                      for r, v in hashing.items())
    title = (f"{data_label}: {len(dups)} of {len(test_images):,} test images "
             f"({100 * numbers['fraction_near_duplicates']:.2f}%) have a near-duplicate in train "
             f"(exact search, d1 < {ratio:g} d{dist.shape[1]}); published (train or test): 3.25%.\n"
             f"Autoencoder hash, found / false alarms by Hamming radius (0 = exact collision, the paper's rule): "
             f"{found}")
    draw(test_images, train_images, dist, index, truth, ratio, out_dir / "dedup.png", title)
    numbers["seconds"]["total"] = time.perf_counter() - t0
    write_json(numbers, out_dir / "dedup.json")
    return numbers
