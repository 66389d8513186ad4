"""Walking in the latent space (Fig. 4): decode evenly spaced points between random z.

The paper reads smooth transitions as evidence against memorisation: "if walking in this
latent space results in semantic changes ... we can reason that the model has learned
relevant and interesting representations", while "sharp transitions" would betray a
memorising G.  :func:`smoothness` turns that into numbers: each row's change between
adjacent frames, against the change between independent samples.
"""
from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from dcgan_ref.figures.inputs import FigureInputs, decode, save_figure, write_json


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, spherical: bool = False) -> torch.Tensor:
    """``steps`` points from ``z0`` to ``z1`` (both included), (steps, z_dim).

    Spherical (slerp) keeps a Gaussian z's norm along the path; a straight line between
    two Gaussian vectors passes through lower-norm points G rarely saw in training.
    """
    if steps < 2:
        raise ValueError(f"a walk needs at least 2 steps, got {steps}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype)[:, None]
    if not spherical:
        return (1 - t) * z0 + t * z1
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if float(omega) < 1e-6:  # (anti)parallel within round-off: the line is the arc
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Root-mean-square pixel difference per image pair, images in [0, 1]."""
    return (a - b).flatten(1).square().mean(1).sqrt()


def smoothness(frames: torch.Tensor, independent: torch.Tensor) -> dict:
    """Per row: mean and largest change between adjacent frames (RMS pixels), and
    ``jump_ratio`` = largest / mean (1: change spread evenly; ``steps - 1``: all of it in
    one step); overall, against the mean change between independent samples."""
    rows, steps = frames.shape[:2]
    adjacent = torch.stack([rms(frames[:, i], frames[:, i + 1]) for i in range(steps - 1)], dim=1)  # (rows, steps-1)
    half = len(independent) // 2
    apart = rms(independent[:half], independent[half:2 * half])
    per_row = [{"mean_step": float(a.mean()), "max_step": float(a.max()), "jump_ratio": float(a.max() / a.mean()),
                "endpoints": float(rms(frames[r, :1], frames[r, -1:])[0])} for r, a in enumerate(adjacent)]
    return {"rows": per_row, "mean_step": float(adjacent.mean()), "max_step": float(adjacent.max()),
            "max_jump_ratio": max(r["jump_ratio"] for r in per_row),
            "independent_samples_rms": float(apart.mean()), "steps": steps}


def walks(inputs: FigureInputs, rows: int = 8, steps: int = 10, spherical: bool = False
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (rows, steps, 3, H, W) in [0, 1] and their z (rows, steps, z_dim)."""
    gen = torch.Generator().manual_seed(inputs.seed)
    ends = inputs.arch.sample_z(2 * rows, generator=gen)
    z = torch.stack([interpolate(ends[2 * r], ends[2 * r + 1], steps, spherical) for r in range(rows)])
    frames = decode(inputs.g, z.flatten(0, 1)).view(rows, steps, *(3, inputs.arch.image_size, inputs.arch.image_size))
    return frames, z


def draw(frames: torch.Tensor, numbers: dict, path: Path, title: str) -> Path:
    rows, steps = frames.shape[:2]
    grid = make_grid(frames.flatten(0, 1), nrow=steps, padding=2, pad_value=1.0).permute(1, 2, 0).numpy()
    fig = Figure(figsize=(steps * 0.9 + 1.6, rows * 0.9 + 0.8))
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([2 + 34 * r + 16 for r in range(rows)],
                  [f"jump {r['jump_ratio']:.1f}" for r in numbers["rows"]], fontsize=7)
    ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


def make(inputs: FigureInputs, out_dir: Path, rows: int = 8, steps: int = 10, spherical: bool = False) -> dict:
    frames, _ = walks(inputs, rows, steps, spherical)
    independent = decode(inputs.g, inputs.arch.sample_z(512, generator=torch.Generator().manual_seed(inputs.seed + 1)))
    numbers = smoothness(frames, independent) | {"model": inputs.label, "spherical": spherical, "seed": inputs.seed}
    kind = "spherical" if spherical else "linear"
    draw(frames, numbers, out_dir / "latent_walk.png",
         f"{inputs.label}: {kind} walks between random z, {steps} steps. Mean step {numbers['mean_step']:.3f} RMS, "
         f"largest {numbers['max_step']:.3f};\nindependent samples differ by {numbers['independent_samples_rms']:.3f}. "
         f"Jump = largest step / mean step of the row (1 = even, {steps - 1} = one jump)")
    write_json(numbers, out_dir / "latent_walk.json")
    return numbers

