"""The bf16 A/B: the same GAN trained in bf16 autocast and in fp32, its D probed the same way, per
seed (a REPORT.md section, from ``results/precision_ab/<length>/<precision>/cifar10_probe.csv``).

bf16 is kept for the long GAN runs only if it costs no probe accuracy; this is where a reader
checks that: each seed's two rows, their difference, and the mean difference over seeds beside
the spread of the per-seed differences (a difference inside that spread is not a loss).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchmarks.protocol.results import PROBE_METRICS, read_results

ARMS = ("bf16", "fp32")


def read_ab(results_dir: Path) -> pd.DataFrame:
    """Every A/B row of ours, with the folder's training length and precision as columns."""
    frames = []
    for path in sorted((results_dir / "precision_ab").glob("*/*/cifar10_probe.csv")):
        df = read_results(path)
        df = df[df["source"] == "ours"]
        frames.append(df.assign(length=path.parent.parent.name, arm=path.parent.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def precision_ab_section(results_dir: Path) -> list[str]:
    df = read_ab(results_dir)
    if not len(df):
        return ["_No bf16 A/B rows yet._\n"]
    parts = ["The GAN trained in bf16 autocast and in fp32 (everything else equal), its D probed the same way; one "
             "row per training length and seed. Test accuracy % (400 labels/class: the mean over the draws).\n"]
    lines, summary = [], []
    for length, group in df.groupby("length", sort=True):
        diffs: dict[str, list[float]] = {m: [] for m in PROBE_METRICS}
        for seed, rows in group.groupby("seed", sort=True):
            cell = {(r.arm, r.metric): r.value for r in rows.itertuples()}
            first = rows.iloc[0]
            line = {"GAN length": length, "seed": int(seed), "preset": first["preset"],
                    "train / test images": f"{int(first['n_train']):,} / {int(first['n_test']):,}"
                    if pd.notna(first["n_train"]) and pd.notna(first["n_test"]) else ""}
            for m, name in PROBE_METRICS.items():
                for arm in ARMS:
                    line[f"{arm}, {name}"] = f"{cell[arm, m]:.2f}" if (arm, m) in cell else ""
                if all((arm, m) in cell for arm in ARMS):
                    diffs[m].append(cell["bf16", m] - cell["fp32", m])
                    line[f"bf16 - fp32, {name}"] = f"{diffs[m][-1]:+.2f}"
            line["device"] = str(first["device"]).removeprefix("cpu: ")
            line["commit"] = ", ".join(sorted({str(c)[:7] for c in rows["commit"]}))
            lines.append(line)
        for m, d in diffs.items():
            if d:
                spread = f", per-seed spread {pd.Series(d).std():.2f}" if len(d) > 1 else " (one seed: no spread)"
                summary.append(f"{length}, {PROBE_METRICS[m]}: bf16 - fp32 = {sum(d) / len(d):+.2f} over {len(d)} "
                               f"seed{'s' if len(d) > 1 else ''}{spread}")
    parts.append(tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) + "\n")
    if summary:
        parts.append("Mean difference: " + "; ".join(summary) + ".\n")
    return parts
