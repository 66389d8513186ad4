"""The learning curves side by side: every published GAN run's validation score against images
seen, one chart and one table per scoring protocol (a REPORT.md section).

A curve's points are one label draw on its protocol's validation split (400 per class in the
CIFAR-10 probe, 1,000 labels in svhn_1000), the same draw for every run that protocol scored, so
curves of one protocol compare point by point; curves of two protocols are never drawn together.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
from tabulate import tabulate

from benchmarks.protocol.gan_record import SCORED_BY_PROTOCOL

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


@dataclass(frozen=True)
class PublishedRun:
    name: str
    run: dict  # run.json
    curve: pd.DataFrame  # curve.csv: images_seen, val_score, ...

    @property
    def protocol(self) -> str:
        """Whose validation split scored it: recorded since the field exists; before, only the
        1,000-label runs said so in their name or description."""
        if self.run.get("protocol"):
            return str(self.run["protocol"])
        named = self.name.startswith("svhn_1000") or "1,000-label" in str(self.run.get("scored_by"))
        return "svhn_1000" if named else "cifar10_probe"

    @property
    def title(self) -> str:
        return f"{self.name}: {self.run.get('arch', '?')} on {self.run.get('gan_data', '?')}"


def published_runs(results_dir: Path) -> list[PublishedRun]:
    """Every record under ``results/gan_runs/`` with a curve file, by name."""
    runs = []
    for folder in sorted(p for p in (results_dir / "gan_runs").glob("*") if (p / "curve.csv").is_file()):
        run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").exists() else {}
        runs.append(PublishedRun(folder.name, run, pd.read_csv(folder / "curve.csv")))
    return runs


def find_run(results_dir: Path, *, arch: str, gan_data: str, protocol: str = "cifar10_probe",
             exclude: str = "minus validation") -> PublishedRun | None:
    """The published run of this architecture, on GAN data whose description holds ``gan_data``
    (and not ``exclude``), scored by ``protocol``, with at least one score."""
    for r in published_runs(results_dir):
        data = str(r.run.get("gan_data", ""))
        if (r.run.get("arch") == arch and gan_data in data and exclude not in data and r.protocol == protocol
                and len(r.curve)):
            return r
    return None


def at_equal_images(a: PublishedRun, b: PublishedRun) -> pd.DataFrame:
    """images_seen, a's score, b's score and b minus a, at every length both runs scored."""
    both = a.curve[["images_seen", "val_score"]].merge(b.curve[["images_seen", "val_score"]], on="images_seen",
                                                       suffixes=("_a", "_b"))
    return both.assign(diff=both["val_score_b"] - both["val_score_a"]).sort_values("images_seen")


def _chart(runs: list[PublishedRun], protocol: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        line, = ax.plot(r.curve["images_seen"], r.curve["val_score"], marker="o", ms=3, label=r.title)
        if r.run.get("chosen_images_seen"):
            ax.plot([r.run["chosen_images_seen"]], [r.run["chosen_val_score"]], marker="*", ms=12,
                    color=line.get_color(), ls="")
    ax.set_xlabel("images seen by the GAN")
    ax.set_ylabel("validation accuracy %")
    ax.set_title(f"D features along GAN training, scored on {protocol} validation (star: chosen)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves_section(results_dir: Path, charts: Path) -> list[str]:
    parts = ["How D-feature quality moves with GAN training, for every published run: each point is the "
             "validation score that chose the run's length (never test). Each run's own section below "
             "holds its losses and samples.\n"]
    by_protocol: dict[str, list[PublishedRun]] = {}
    for r in published_runs(results_dir):
        if len(r.curve):
            by_protocol.setdefault(r.protocol, []).append(r)
    if not by_protocol:
        return parts + ["_No published GAN run has validation scores yet._\n"]
    for protocol, runs in by_protocol.items():
        parts.append(f"**{protocol}**: {SCORED_BY_PROTOCOL.get(protocol, protocol)}\n")
        lengths = sorted({int(s) for r in runs for s in r.curve["images_seen"]})
        table = [{"images seen": f"{n:,}", **{r.name: next((f"{float(v):.2f}" for s, v in zip(
                 r.curve["images_seen"], r.curve["val_score"]) if int(s) == n), "") for r in runs}} for n in lengths]
        parts.append(tabulate(table, headers="keys", tablefmt="github", disable_numparse=True) + "\n")
        chart = _chart(runs, protocol, charts / f"learning_curves_{protocol}.png")
        parts.append(f"![learning curves, {protocol}](report/{chart.name})\n")
    return parts
