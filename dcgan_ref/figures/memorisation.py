"""Did G memorise its training set? (Section 4.1)

For generated samples, the nearest training images in pixel space and in D-feature space;
and the distribution of those nearest-neighbour distances beside that of real images G
never saw.  A memorising G puts samples much closer to training images than held-out real
images are (a copy sits at distance ~0); a G that generalises matches the held-out curve.
"""
from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from dcgan_ref.features import pooled_features
from dcgan_ref.figures.inputs import FigureInputs, decode, save_figure, write_json
from dcgan_ref.neighbours import nearest_images


def compare(generated: torch.Tensor, held_out: torch.Tensor) -> dict:
    """Nearest-neighbour distances of generated samples against those of held-out real
    images: quantiles, their ratio, and the share of samples nearer than all but 1% of
    held-out images (candidates for copies)."""
    q = torch.tensor([0.01, 0.1, 0.5, 0.9])
    g_q, h_q = torch.quantile(generated, q), torch.quantile(held_out, q)
    return {"generated_quantiles": dict(zip(["p1", "p10", "p50", "p90"], g_q.tolist())),
            "held_out_quantiles": dict(zip(["p1", "p10", "p50", "p90"], h_q.tolist())),
            "median_ratio_generated_to_held_out": float(g_q[2] / h_q[2]),
            "share_generated_below_held_out_p1": float((generated < h_q[0]).float().mean())}


def _nn(queries: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dist, index = nearest_images(queries, bank)
    return dist[:, 0], index[:, 0]


def _unit(images_01: torch.Tensor) -> torch.Tensor:
    return images_01.flatten(1) / images_01[0].numel() ** 0.5  # Euclidean distance = RMS pixel distance


def _feature_rows(inputs: FigureInputs, images_u8: torch.Tensor) -> torch.Tensor:
    f = pooled_features(inputs.d, images_u8)
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)  # distance on the unit sphere: ~ 1 - cosine


def make(inputs: FigureInputs, out_dir: Path, n: int = 2000, shown: int = 8) -> dict:
    z = inputs.arch.sample_z(n, generator=torch.Generator().manual_seed(inputs.seed))
    samples = decode(inputs.g, z)  # [0, 1]
    samples_u8 = samples.mul(255).round().to(torch.uint8)
    held = inputs.held_out[:n]
    train01 = inputs.train.float() / 255
    pixel_g, pixel_g_idx = _nn(_unit(samples), _unit(train01))
    pixel_h, _ = _nn(_unit(held.float() / 255), _unit(train01))
    bank = _feature_rows(inputs, inputs.train)
    feat_g, feat_g_idx = _nn(_feature_rows(inputs, samples_u8), bank)
    feat_h, _ = _nn(_feature_rows(inputs, held), bank)
    numbers = {"model": inputs.label, "train": f"{len(inputs.train)} images of {inputs.data_label}",
               "held_out": f"{len(held)} real images G never saw", "samples": n, "seed": inputs.seed,
               "pixel_rms": compare(pixel_g, pixel_h), "d_features_unit_l2": compare(feat_g, feat_h)}
    closest = pixel_g.argsort()[:shown]  # the most suspicious samples
    numbers["shown"] = [{"sample": int(i), "pixel_nn": int(pixel_g_idx[i]), "pixel_rms": float(pixel_g[i]),
                         "feature_nn": int(feat_g_idx[i]), "feature_distance": float(feat_g[i])} for i in closest]
    draw(samples[closest], inputs.train[pixel_g_idx[closest]], inputs.train[feat_g_idx[closest]],
         {"pixel space (RMS)": (pixel_g, pixel_h), "D-feature space (unit L2)": (feat_g, feat_h)},
         out_dir / "memorisation.png",
         f"{inputs.label}:\nthe {shown} of {n} samples nearest to a training image, with their nearest training "
         f"images;\nbelow, distances to the nearest of the {len(inputs.train):,} training images, samples vs held-out "
         f"real images")
    write_json(numbers, out_dir / "memorisation.json")
    return numbers


def draw(samples: torch.Tensor, pixel_nn: torch.Tensor, feature_nn: torch.Tensor,
         histograms: dict[str, tuple[torch.Tensor, torch.Tensor]], path: Path, title: str) -> Path:

    k = len(samples)
    fig = Figure(figsize=(max(k, 8) * 1.0, 6.4))
    grid = fig.add_gridspec(5, max(k, 8), height_ratios=[1, 1, 1, 0.25, 2.2])
    for r, (row, name) in enumerate(((samples, "sample"), (pixel_nn.float() / 255, "pixel NN"),
                                     (feature_nn.float() / 255, "D-feature NN"))):
        for j in range(k):
            ax = fig.add_subplot(grid[r, j])
            ax.axis("off")
            ax.imshow(row[j].permute(1, 2, 0).numpy(), interpolation="nearest")
            if j == 0:
                ax.set_title(name, fontsize=7, loc="left", pad=1)
    half = max(k, 8) // 2
    for c, (name, (gen, held)) in enumerate(histograms.items()):
        ax = fig.add_subplot(grid[4, c * half:(c + 1) * half])
        bins = torch.linspace(0, float(max(gen.max(), held.max())), 40).numpy()
        ax.hist(held.numpy(), bins=bins, alpha=0.6, label="held-out real")
        ax.hist(gen.numpy(), bins=bins, alpha=0.6, label="generated")
        ax.set_title(f"nearest training image, {name}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    return save_figure(fig, path, title, fontsize=8)
