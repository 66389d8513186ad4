"""Guided backpropagation (Springenberg et al., 2014) of D's strongest last-layer features (Fig. 5).

For each of the last conv layer's most active channels on real images, the gradient of its
peak activation with respect to the input, passing back through each LeakyReLU only the
positive part of the gradient: what, in the image, the feature responds to.  The paper
shows a trained D's features firing on object parts (beds, windows) where a random D's do
not; :func:`concentration` measures it: a feature tied to a part puts most of its gradient
energy on few pixels.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn

from dcgan_ref.datasets.loading import to_unit_range
from dcgan_ref.figures.inputs import FigureInputs, save_figure, write_json
from dcgan_ref.models import Discriminator


def _guided_copy(d: Discriminator) -> Discriminator:
    """A copy of ``d`` in eval mode whose LeakyReLUs pass back only positive gradients."""
    d = copy.deepcopy(d).eval()
    for m in d.modules():
        if isinstance(m, nn.LeakyReLU):
            m.inplace = False  # backward hooks need the op's own output
            m.register_full_backward_hook(lambda _m, grad_in, _out: (grad_in[0].clamp(min=0),))
    return d


@torch.no_grad()
def strongest_channels(d: Discriminator, images: torch.Tensor, k: int = 8, layer: int = -1,
                       batch: int = 250) -> list[dict]:
    """The ``k`` channels of ``layer`` with the highest peak activation over ``images``
    (uint8), each with the image it peaks on among those no stronger channel took (so the
    figure shows ``k`` different images): ``[{"channel", "image", "peak"}]``."""
    d = d.eval()
    device = next(d.parameters()).device
    peaks = torch.cat([d.features(to_unit_range(images[i:i + batch].to(device)))[layer].amax((2, 3)).cpu()
                       for i in range(0, len(images), batch)])  # (N, C)
    picks, used = [], set()
    for c in peaks.max(0).values.argsort(descending=True)[:k].tolist():
        i = next(i for i in peaks[:, c].argsort(descending=True).tolist() if i not in used)
        used.add(i)
        picks.append({"channel": c, "image": i, "peak": float(peaks[i, c])})
    return picks


def guided_gradients(d: Discriminator, images: torch.Tensor, channels: list[int], layer: int = -1,
                     guided: bool = True) -> torch.Tensor:
    """For image i (uint8) and ``channels[i]``: d(peak activation) / d(input), (N, 3, H, W).
    ``guided=False``: the plain gradient (for comparison)."""
    net = _guided_copy(d) if guided else copy.deepcopy(d).eval()
    device = next(net.parameters()).device
    x = to_unit_range(images.to(device)).requires_grad_(True)
    maps = net.features(x)[layer]
    rows = torch.arange(len(images), device=device)
    # Rows are independent in eval mode, so one backward of the sum gives every row's gradient.
    maps[rows, torch.as_tensor(channels, device=device)].amax((1, 2)).sum().backward()
    return x.grad.detach().cpu()


def concentration(grads: torch.Tensor, top: float = 0.05) -> torch.Tensor:
    """Share of each gradient's energy on its ``top`` fraction of pixels (1: all on those
    pixels; ``top``: spread evenly), (N,)."""
    energy = grads.square().sum(1).flatten(1)  # per pixel, summed over colour
    k = max(1, round(top * energy.shape[1]))
    return energy.topk(k, dim=1).values.sum(1) / energy.sum(1).clamp_min(1e-30)


def _display(grads: torch.Tensor) -> torch.Tensor:
    """Gradients to [0, 1] for display: grey 0.5 is zero, +-3 std of each image's gradient the ends."""
    scale = grads.flatten(1).std(1).clamp_min(1e-12)[:, None, None, None] * 3
    return (grads / scale).clamp(-1, 1).mul(0.5).add(0.5)


def draw(panels: dict[str, tuple[torch.Tensor, torch.Tensor, list[dict], torch.Tensor]], path: Path,
         title: str) -> Path:
    """One block per D: real images (top) and their guided gradients (bottom)."""

    k = max(len(p[2]) for p in panels.values())
    fig = Figure(figsize=(k * 1.05, 2 * len(panels) * 1.15 + 0.7))
    axes = fig.subplots(2 * len(panels), k)
    for b, (name, (images, grads, picks, conc)) in enumerate(panels.items()):
        for j in range(k):
            for r, tile in ((0, images[j].float() / 255), (1, _display(grads[j:j + 1])[0])):
                ax = axes[2 * b + r, j]
                ax.axis("off")
                ax.imshow(tile.permute(1, 2, 0).numpy(), interpolation="nearest")
            axes[2 * b, j].set_title(f"{name}\nch {picks[j]['channel']}" if j == 0 else f"ch {picks[j]['channel']}",
                                     fontsize=6, pad=1)
            axes[2 * b + 1, j].set_title(f"top5% {float(conc[j]):.2f}", fontsize=6, pad=1)
    return save_figure(fig, path, title, fontsize=8)


def make(inputs: FigureInputs, out_dir: Path, k: int = 8, n_images: int = 2000) -> dict:
    images = inputs.held_out[:n_images]
    numbers: dict = {"model": inputs.label, "images": f"{len(images)} of {inputs.data_label}", "layer": "last conv"}
    panels = {}
    for name, d in (("trained D", inputs.d), ("random-init D", inputs.random_d)):
        picks = strongest_channels(d, images, k)
        chosen = images[[p["image"] for p in picks]]
        grads = guided_gradients(d, chosen, [p["channel"] for p in picks])
        conc = concentration(grads)
        panels[name] = (chosen, grads, picks, conc)
        numbers[name] = {"features": picks, "top5pct_energy_share": [float(c) for c in conc],
                         "mean_top5pct_energy_share": float(conc.mean())}
    draw(panels, out_dir / "guided_backprop.png",
         f"{inputs.label}: guided backprop of the {k} most active last-layer channels on {inputs.data_label};\n"
         f"top5% = share of the gradient's energy on its 5% strongest pixels (0.05 = spread evenly)")
    write_json(numbers, out_dir / "guided_backprop.json")
    return numbers
