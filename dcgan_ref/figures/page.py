"""``docs/FIGURES.md``, generated from the JSON each figure writes beside its PNG:
``python -m dcgan_ref.figures.page`` (the figures command also runs it after drawing).

Every number on the page is read from those files, so the page cannot drift from the figures;
``tests/test_figures_page.py`` checks that the committed page is what the committed JSON renders.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
FIGURES_DIR = REPO / "docs" / "figures"

COMMANDS = """\
```bash
nox -s figures -- --generator newmu-svhn:../shared/data/newmu_svhn_dcgan --data ../shared/data/cifar10_jpeg.tar.xz
nox -s figures -- --generator runs/cifar10_probe/<run>/gan/last.pt --data <cifar10> --train-data data --name <name>
nox -s figures -- --collapse-run "normal=<mlflow run id>" --collapse-run "lr 0.1=<id>"
```

write `docs/figures/<model>/*.png` (a model's figures), `docs/figures/dedup.*` and
`docs/figures/collapse.*`, each PNG with a JSON of the numbers it shows, log them to MLflow
(experiment `figures`) and regenerate this page. `--only` picks some; each experiment is one
module of `dcgan_ref/figures/` with a function that computes its numbers and one that draws
them. G's batchnorm uses population statistics over 4,096 random z, so each z decodes the same
whatever its batch (the authors' release carries no running statistics).
"""

NOT_HERE = """\
**Not reproducible here: "forgetting to draw windows" (Fig. 6).** It needs LSUN bedrooms and
window bounding boxes drawn by hand on generated samples, to fit a logistic regression that
picks the window filters of G's second-highest layer and drop them. A user with LSUN
(`lsun/bedroom_train_lmdb` from the LSUN site), a DCGAN trained on it (`dcgan64`) and boxes on
its samples has everything else: `dcgan_ref.models` exposes G's layers and
`dcgan_ref.figures.inputs` decodes z.
"""


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _latent_walk(d: dict[str, Any]) -> str:
    return (f"mean step {d['mean_step']:.3f} RMS, largest {d['max_step']:.3f}, largest jump "
            f"{d['max_jump_ratio']:.2f}; independent samples {d['independent_samples_rms']:.3f} apart")


def _arithmetic(d: dict[str, Any]) -> str:
    if "recipe" not in d:
        return "the sheet only (no recipe picked)"
    r = d["recipe"]
    return (f"{d.get('caption', '')} (`--arithmetic {','.join(map(str, r['A']))}:{','.join(map(str, r['B']))}:"
            f"{','.join(map(str, r['C']))}`)").strip()


def _guided_backprop(d: dict[str, Any]) -> str:
    return (f"trained D {d['trained D']['mean_top5pct_energy_share']:.2f}, "
            f"random-init D {d['random-init D']['mean_top5pct_energy_share']:.2f}")


def _memorisation(d: dict[str, Any]) -> str:
    px, ft = d["pixel_rms"], d["d_features_unit_l2"]
    return (f"{100 * px['share_generated_below_held_out_p1']:.1f}% of {d['samples']:,} samples are nearer a "
            f"training image than 99% of held-out images are (1% by chance); median nearest distance "
            f"{px['generated_quantiles']['p50']:.3f} vs {px['held_out_quantiles']['p50']:.3f} RMS in pixels "
            f"({px['median_ratio_generated_to_held_out']:.2f}x), {ft['median_ratio_generated_to_held_out']:.2f}x "
            f"in D-feature space")


# figure -> (title, what it shows, the cell from its JSON)
MODEL_FIGURES: dict[str, tuple[str, str, Callable[[dict[str, Any]], str]]] = {
    "latent_walk": ("latent walks (Fig. 4)", "8 linear walks between random z (`--spherical`: slerp); each row's "
                    "largest step over its mean step (\"jump\": 1 = even)", _latent_walk),
    "arithmetic": ("vector arithmetic (Fig. 7)", "mean z of 3 exemplars per concept, A - B + C decoded, and "
                   "neighbours with uniform noise on z; exemplars picked by number from `arithmetic_sheet.png`",
                   _arithmetic),
    "guided_backprop": ("guided backprop (Fig. 5)", "the most active last-layer channels on CIFAR-10 test images, "
                        "trained D beside a random-init D: the share of the gradient's energy on its 5% strongest "
                        "pixels", _guided_backprop),
    "memorisation": ("memorisation (Section 4.1)", "for each sample, the nearest training image in pixel and "
                     "D-feature space, beside the same for held-out real images", _memorisation),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def model_table(figures_dir: Path) -> list[str]:
    models = sorted(p for p in figures_dir.iterdir() if p.is_dir() and any(p.glob("*.json")))
    if not models:
        return ["_No model's figures yet._\n"]
    names = []
    for m in models:
        first = next(d for d in (_load(p) for p in sorted(m.glob("*.json"))) if d)
        names.append(f"{first.get('model', m.name)} ([folder]({figures_dir.name}/{m.name}/))")
    lines = ["| figure | what it shows | " + " | ".join(_cell(n) for n in names) + " |",
             "|---|---|" + "---|" * len(models)]
    for key, (title, what, cell) in MODEL_FIGURES.items():
        cells = []
        for m in models:
            d = _load(m / f"{key}.json")
            cells.append(cell(d) if d else "not drawn (see the command's output for why)")
        lines.append(f"| {title} | {_cell(what)} | " + " | ".join(_cell(c) for c in cells) + " |")
    images = [f'<img src="{figures_dir.name}/{m.name}/{key}.png" width="24%" alt="{key}, {m.name}">'
              for m in models for key in MODEL_FIGURES if (m / f"{key}.png").exists()]
    return ["\n".join(lines) + "\n", "<p>\n" + "\n".join(images) + "\n</p>\n"]


def dedup_section(d: dict[str, Any] | None, folder: str = "figures") -> list[str]:
    if d is None:
        return ["_No de-duplication run yet (`--only dedup --data <cifar10>`)._\n"]
    c, radii = d["criterion"], d["hash"]["radii"]
    found = "; ".join(f"within Hamming radius {r} it finds {radii[r]['collisions']['true_positives']} "
                      f"(precision {radii[r]['collisions']['precision']:.2f})"
                      for r in sorted(radii, key=int) if int(r) and radii[r]["collisions"]["precision"] is not None
                      and int(r) in (8, 16))
    pub = d.get("published", {})
    return [f"**De-duplication (Section 4.1.1)**, [figure]({folder}/dedup.png), `--only dedup --data <cifar10>`: "
            f"the paper's 3072-128-3072 denoising, dropout-regularised ReLU autoencoder, codes binarised by "
            f"thresholding the ReLU. On {d['data']}, an exact nearest-neighbour search (ground truth) finds "
            f"**{d['n_near_duplicates']:,} of the {d['n_test']:,} test images "
            f"({100 * d['fraction_near_duplicates']:.2f}%)** "
            f"with a near-duplicate in the {d['n_train']:,} training images (`{c['rule']}`, ratio {c['ratio']}, "
            f"k = {c['k']}"
            + (f"; published: {pub['source']}" if pub else "") + "). "
            f"The paper's rule, an exact hash collision, finds "
            f"{radii['0']['collisions']['true_positives']} of them: the copies are re-crops, each compressed "
            f"separately, so a few of the 128 bits flip; {found}. The criterion: {c['how_chosen']} "
            "`--exclude-near-duplicates docs/figures/dedup.json` adds to a probe row the all-labels test accuracy "
            "without them (same classifier and C).\n"]


def collapse_section(d: dict[str, Any] | None, folder: str = "figures") -> list[str]:
    if d is None:
        return ["_No collapse-check figure yet (`--collapse-run LABEL=RUN_ID`)._\n"]
    t = d["thresholds"]
    runs = "; ".join(
        f"{name}: " + (f"flagged at epochs {', '.join(f'{e:g}' for e in r['flagged_at_epochs'])} (up to "
                       f"{100 * r['max_near_identical']:.0f}% near-identical pairs)" if r["flagged"]
                       else f"never flagged in {r['checks']} checks (lowest diversity {r['min_diversity']:.2f})")
        for name, r in d["runs"].items())
    return [f"**Mode collapse (Section 7)**, [figure]({folder}/collapse.png): at every epoch's end the trainer "
            f"decodes {t['samples']} fixed z and logs their diversity (median sample-pair distance over the median "
            f"real-pair distance) and the share of near-identical pairs (< {100 * t['near']:.0f}% of that median), "
            f"and warns when more than {100 * t['max_near_identical']:.0f}% of pairs are near-identical or "
            f"diversity falls below {t['min_diversity']}. {runs}. Blind spots: collapse to many modes, or in "
            "colour only. The runs: " + "; ".join(f"{name}: {r['source']}" for name, r in d["runs"].items()
                                                   if r.get("source")) + ".\n"]


def render(figures_dir: Path = FIGURES_DIR) -> str:
    parts = ["# Figures: the paper's Sections 4.1, 6 and 7\n",
             "Generated by `python -m dcgan_ref.figures.page` from the JSON beside each figure in "
             "`docs/figures/`; never edited by hand.\n", COMMANDS,
             *model_table(figures_dir), *dedup_section(_load(figures_dir / "dedup.json"), figures_dir.name),
             *collapse_section(_load(figures_dir / "collapse.json"), figures_dir.name), NOT_HERE]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(parts))


def write(figures_dir: Path = FIGURES_DIR, page: Path | None = None) -> Path:
    """The page beside ``figures_dir`` (links are relative to it): ``docs/FIGURES.md`` by default."""
    page = page or figures_dir.parent / "FIGURES.md"
    page.write_text(render(figures_dir))
    return page


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dcgan_ref.figures.page", description=__doc__.split("\n\n")[0])
    p.add_argument("--figures-dir", type=Path, default=FIGURES_DIR)
    args = p.parse_args(argv)
    print(f"wrote {write(args.figures_dir)}")


if __name__ == "__main__":
    main()
