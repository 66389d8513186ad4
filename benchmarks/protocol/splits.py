"""Index sets every protocol draws from the labelled data: the validation split, label
draws, class-balanced subsets.  All seeded, all on the CPU, none looks at the test split."""
from __future__ import annotations

import torch


def class_balanced_split(labels: torch.Tensor, n_val: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(val_idx, rest_idx): ``n_val`` examples spread evenly over classes, seeded."""
    classes = labels.unique()
    per_class, extra = divmod(n_val, len(classes))
    gen = torch.Generator().manual_seed(seed)
    val = []
    for i, c in enumerate(classes.tolist()):
        idx = (labels == c).nonzero().squeeze(1)
        take = per_class + (1 if i < extra else 0)
        if take > len(idx):
            raise ValueError(f"class {c} has {len(idx)} examples, fewer than the {take} the split needs")
        val.append(idx[torch.randperm(len(idx), generator=gen)[:take]])
    val_idx = torch.cat(val).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val_idx] = False
    return val_idx, mask.nonzero().squeeze(1)


def draw_per_class(labels: torch.Tensor, pool: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """``per_class`` random examples of every class from the index set ``pool``."""
    gen = torch.Generator().manual_seed(seed)
    pool_labels = labels[pool]
    picks = []
    for c in labels.unique().tolist():
        idx = pool[pool_labels == c]
        if per_class > len(idx):
            raise ValueError(f"class {c} has {len(idx)} examples in the pool, fewer than {per_class} per class")
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picks).sort().values


def balanced_subset(labels: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """Indices of a seeded class-balanced subset of size ``n`` (all indices when None)."""
    if n is None or n >= len(labels):
        return torch.arange(len(labels))
    return class_balanced_split(labels, n, seed)[0]
