"""The SVHN table's control: a purely supervised CNN with D's architecture (docs/PAPER.md, Table 2).

"A purely supervised CNN with the same architecture as D, trained on the same 1,000
labels, tuned by 64 random-search trials: 28.87% validation error."  The network is D's
conv stack (``Discriminator(arch).convs``, paper init) followed by dropout and a linear
layer to ``n_classes`` logits.  Each random-search trial samples a :class:`SupervisedConfig`,
trains with Adam on cross-entropy and is scored on the validation split only; the caller
reports the winner's validation error and scores the test split once with
:func:`evaluate_error`.

The search space is **ours** (the paper gives none): log-uniform lr and L2 weight decay,
dropout, epochs, batch size, Adam beta1, and optional random translation by up to 2 px.
All data stays on ``device``; minibatches are drawn by indexing, augmentation runs there.
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from dcgan_ref.datasets.loading import to_unit_range
from dcgan_ref.models import Discriminator, get_architecture, init_paper_


@dataclass(frozen=True)
class SupervisedConfig:
    """One random-search trial's hyperparameters."""
    lr: float              # Adam learning rate
    weight_decay: float    # L2 penalty (Adam's coupled ``weight_decay``)
    dropout: float         # before the linear head
    epochs: int
    batch_size: int
    augment: bool          # random translation by up to ``shift`` px (zero-pad + crop)
    beta1: float = 0.5     # Adam beta1 (the paper's GAN value is 0.5)
    shift: int = 2

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not 0.0 <= self.dropout < 1.0 or self.shift < 0:
            raise ValueError(f"invalid config {self}: need epochs, batch_size >= 1, 0 <= dropout < 1, shift >= 0")


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def sample_config(rng: random.Random) -> SupervisedConfig:
    """Draw one trial from the search space (the same number of draws every call)."""
    return SupervisedConfig(
        lr=_log_uniform(rng, 1e-4, 3e-3),
        weight_decay=_log_uniform(rng, 1e-6, 1e-2),
        dropout=rng.uniform(0.0, 0.5),
        epochs=rng.randint(50, 200),
        batch_size=rng.choice((32, 64, 128)),
        augment=rng.random() < 0.5,
        beta1=rng.choice((0.5, 0.9)),
    )


class SupervisedCNN(nn.Module):
    """D's conv stack (same architecture, paper init) + dropout + Linear(final map, n_classes)."""

    def __init__(self, arch: str, n_classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        self.arch = get_architecture(arch)
        self.convs = Discriminator(self.arch).convs
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.arch.widths[-1] * self.arch.final_size**2, n_classes)
        init_paper_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        return self.head(self.dropout(x.flatten(1)))  # logits


def _check_data(x: Any, y: Any, n_classes: int, image_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated (uint8 images (N, 3, H, W), int64 labels (N,)); ValueError otherwise."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
        raise ValueError(f"images must be a uint8 torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() != 4 or x.shape[1] != 3 or (image_size is not None and tuple(x.shape[2:]) != (image_size,) * 2):
        want = f"(N, 3, {image_size}, {image_size})" if image_size else "(N, 3, H, W)"
        raise ValueError(f"images must have shape {want}, got {tuple(x.shape)}")
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"labels must be an integer torch.Tensor, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"labels must have shape ({len(x)},) to match the images, got {tuple(y.shape)}")
    if len(y) == 0:
        raise ValueError("no examples")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes - 1}], got values in [{lo}, {hi}]")
    return x, y.long()


def _translate(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Shift each image by its own random offset in [-shift, shift]^2, padding with 0 (mid-grey)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (shift,) * 4)
    off = torch.randint(0, 2 * shift + 1, (2, n, 1), device=x.device)
    rows = (off[0] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (off[1] + torch.arange(w, device=x.device))[:, None, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None, None],
                  torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def train_classifier(cfg: SupervisedConfig, arch: str, x_u8: torch.Tensor, y: torch.Tensor, *,
                     n_classes: int, seed: int, device: torch.device | str) -> SupervisedCNN:
    """Train a fresh :class:`SupervisedCNN` on labelled uint8 images; returned in eval mode.

    Seeded (init, batch order, dropout, augmentation) without disturbing the caller's RNG
    state; deterministic on CPU for a given seed.
    """
    x_u8, y = _check_data(x_u8, y, n_classes, get_architecture(arch).image_size)
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = SupervisedCNN(arch, n_classes, cfg.dropout).to(device)
        x, y = to_unit_range(x_u8.to(device)), y.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999), weight_decay=cfg.weight_decay,
                               fused=device.type == "cuda")
        model.train()
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(x), device=device).split(cfg.batch_size):
                xb = _translate(x[idx], cfg.shift) if cfg.augment else x[idx]
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return model.eval()


@torch.no_grad()
def evaluate_error(model: nn.Module, x_u8: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Percent classification error in eval mode (population BN statistics), batched."""
    n_classes = model.head.out_features if isinstance(model, SupervisedCNN) else int(y.max()) + 1
    x_u8, y = _check_data(x_u8, y, n_classes)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    wrong = 0
    for s in range(0, len(x_u8), batch_size):
        pred = model(to_unit_range(x_u8[s:s + batch_size].to(device))).argmax(1)
        wrong += int((pred != y[s:s + batch_size].to(device)).sum())
    model.train(was_training)
    return 100.0 * wrong / len(x_u8)


@dataclass
class SearchResult:
    best: SupervisedConfig
    val_error: float                 # the winner's validation error, percent
    trials: list[dict[str, Any]]     # per trial: "config" (dict), "val_error", "seed"
    model: SupervisedCNN             # the winner, eval mode


def random_search(arch: str, x_train_u8: torch.Tensor, y_train: torch.Tensor, x_val_u8: torch.Tensor,
                  y_val: torch.Tensor, *, trials: int, seed: int, device: torch.device | str, n_classes: int = 10,
                  max_epochs: int | None = None,
                  space: Callable[[random.Random], SupervisedConfig] = sample_config,
                  log: Callable[[str], Any] = print) -> SearchResult:
    """``trials`` random configurations, each trained on the training labels and scored on
    validation only; the lowest validation error wins (ties: the earlier trial).

    ``max_epochs`` caps each sampled config's epochs (smoke runs); the configs drawn are the
    same with or without it.  ``space`` replaces the sampler.  The test split is never seen.
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    size = get_architecture(arch).image_size
    x_train_u8, y_train = _check_data(x_train_u8, y_train, n_classes, size)
    x_val_u8, y_val = _check_data(x_val_u8, y_val, n_classes, size)
    device = torch.device(device)
    x_train_u8, y_train = x_train_u8.to(device), y_train.to(device)  # resident for all trials
    x_val_u8, y_val = x_val_u8.to(device), y_val.to(device)
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    best: tuple[float, SupervisedConfig, SupervisedCNN] | None = None
    for i in range(trials):
        cfg = space(rng)
        if max_epochs is not None and cfg.epochs > max_epochs:
            cfg = dataclasses.replace(cfg, epochs=max_epochs)
        trial_seed = seed * 1000 + i
        model = train_classifier(cfg, arch, x_train_u8, y_train, n_classes=n_classes, seed=trial_seed, device=device)
        err = evaluate_error(model, x_val_u8, y_val)
        records.append({"config": dataclasses.asdict(cfg), "val_error": err, "seed": trial_seed})
        log(f"trial {i + 1}/{trials}: lr={cfg.lr:.2e} wd={cfg.weight_decay:.2e} dropout={cfg.dropout:.2f} "
            f"epochs={cfg.epochs} batch={cfg.batch_size} augment={cfg.augment} beta1={cfg.beta1} "
            f"-> val error {err:.2f}%")
        if best is None or err < best[0]:
            best = (err, cfg, model)
    assert best is not None
    return SearchResult(best=best[1], val_error=best[0], trials=records, model=best[2])
