"""Vector arithmetic on z (Fig. 7): average the z of 3 exemplars per concept, form
A - B + C, decode it and 8 neighbours with uniform noise of +-0.25 added to z.

Exemplars are picked by index from a numbered sample sheet (:func:`sample_sheet`, written
first): a person looks at the sheet and names the indices, as the authors picked theirs.
Averaging 3 exemplars matters: the paper found single samples' arithmetic unstable.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure

from dcgan_ref.figures.inputs import FigureInputs, decode, save_figure, write_json


@dataclass(frozen=True)
class Recipe:
    """``A - B + C`` over sheet indices, with a caption saying what each concept is."""
    a: tuple[int, ...]
    b: tuple[int, ...]
    c: tuple[int, ...]
    caption: str = ""

    @classmethod
    def parse(cls, text: str, caption: str = "") -> "Recipe":
        """``"1,2,3:4,5,6:7,8,9"`` (A:B:C sheet indices)."""
        try:
            a, b, c = (tuple(int(i) for i in part.split(",")) for part in text.split(":"))
        except ValueError:
            raise ValueError(f"arithmetic {text!r}: expected three comma lists of sheet indices, "
                             "A:B:C, e.g. 1,2,3:4,5,6:7,8,9") from None
        if not (a and b and c):
            raise ValueError(f"arithmetic {text!r}: each concept needs at least one exemplar")
        return cls(a, b, c, caption)


def sample_sheet(inputs: FigureInputs, n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` z of the sheet (seeded) and their images in [0, 1]."""
    z = inputs.arch.sample_z(n, generator=torch.Generator().manual_seed(inputs.seed))
    return z, decode(inputs.g, z)


def combine(z: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """mean z[A] - mean z[B] + mean z[C]."""
    for idx in (recipe.a, recipe.b, recipe.c):
        bad = [i for i in idx if not 0 <= i < len(z)]
        if bad:
            raise ValueError(f"sheet index {bad[0]} out of range: the sheet has {len(z)} samples (0..{len(z) - 1})")
    a, b, c = (z[list(idx)].mean(0) for idx in (recipe.a, recipe.b, recipe.c))
    return a - b + c


def neighbours(z: torch.Tensor, n: int = 8, noise: float = 0.25, seed: int = 0) -> torch.Tensor:
    """``z`` and ``n`` copies with uniform noise in [-noise, noise] added, (n + 1, z_dim)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([z[None], z + (torch.rand(n, len(z), generator=gen) * 2 - 1) * noise])


def draw_sheet(images: torch.Tensor, path: Path, title: str, per_row: int = 10) -> Path:

    rows = -(-len(images) // per_row)
    fig = Figure(figsize=(per_row * 0.95, rows * 1.05 + 0.4))
    axes = fig.subplots(rows, per_row)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(str(i), fontsize=7, pad=1)
    return save_figure(fig, path, title, fontsize=8)


def draw(sheet: torch.Tensor, recipe: Recipe, concepts: torch.Tensor, result: torch.Tensor, path: Path,
         title: str) -> Path:
    """Rows A, B, C: the exemplars and their mean's decoding; then the result and its neighbours."""

    cols = max(len(recipe.a), len(recipe.b), len(recipe.c)) + 1
    cols = max(cols, 1 + (len(result) + 1) // 2)
    cols = max(cols, 7)  # room for the caption
    fig = Figure(figsize=(cols * 1.0, 5 * 1.1 + 0.8))
    axes = fig.subplots(5, cols)
    for ax in axes.flat:
        ax.axis("off")

    def show(ax, image, label):
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(label, fontsize=7, pad=1)

    for r, (name, idx) in enumerate((("A", recipe.a), ("B", recipe.b), ("C", recipe.c))):
        for j, i in enumerate(idx):
            show(axes[r, j], sheet[i], f"{name}: #{i}")
        show(axes[r, cols - 1], concepts[r], f"mean z[{name}]")
    half = (len(result) + 1) // 2
    for j, image in enumerate(result):
        show(axes[3 + j // half, j % half], image, "A-B+C" if j == 0 else f"+noise {j}")
    return save_figure(fig, path, title, fontsize=8)


def make(inputs: FigureInputs, out_dir: Path, recipe: Recipe | None, sheet_size: int = 100) -> dict:
    """The numbered sheet always; the arithmetic when a recipe names the exemplars."""
    z, sheet = sample_sheet(inputs, sheet_size)
    draw_sheet(sheet, out_dir / "arithmetic_sheet.png",
               f"{inputs.label}: sample sheet (seed {inputs.seed}); pick exemplars by number")
    numbers: dict = {"model": inputs.label, "sheet_seed": inputs.seed, "sheet_size": sheet_size}
    if recipe is None:
        numbers["arithmetic"] = "not run: no recipe; pick A, B, C from arithmetic_sheet.png and pass --arithmetic"
        write_json(numbers, out_dir / "arithmetic.json")
        return numbers
    target = combine(z, recipe)
    concepts = decode(inputs.g, torch.stack([z[list(i)].mean(0) for i in (recipe.a, recipe.b, recipe.c)]))
    zs = neighbours(target, 8, 0.25, inputs.seed)
    result = decode(inputs.g, zs)
    spread = (result[1:] - result[0]).flatten(1).square().mean(1).sqrt()
    numbers |= {"recipe": {"A": list(recipe.a), "B": list(recipe.b), "C": list(recipe.c)},
                "caption": recipe.caption, "noise": 0.25, "neighbours": 8,
                "z_norm_result": float(target.norm()), "neighbour_rms_from_result": [float(s) for s in spread]}
    draw(sheet, recipe, concepts, result, out_dir / "arithmetic.png",
         f"{inputs.label}: mean z[A] - mean z[B] + mean z[C], decoded,\nand 8 neighbours (uniform noise +-0.25 on z)"
         + (f"\n{recipe.caption}" if recipe.caption else ""))
    write_json(numbers, out_dir / "arithmetic.json")
    return numbers
