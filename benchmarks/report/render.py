"""``results/REPORT.md``: the paper's two tables beside ours, a chart of each, each GAN run's
validation curve, losses and samples, the throughput table, and how every number was obtained.

Made only from committed files the runs wrote (the results CSVs, ``results/gan_runs/``), so
any clone renders it without an MLflow store; never from hand-typed values.
``python -m benchmarks.report [--results-dir results]`` re-renders it.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from tabulate import tabulate

from benchmarks.protocol.gan_record import GAN_RUN_SCORE
from benchmarks.protocol.paper import compare
from benchmarks.protocol.results import METRIC_NAMES, RESULTS_DIR, format_value, metric_label, read_results
from benchmarks.protocol.results_io import write_atomic
from benchmarks.protocol.spec import CIFAR10_PROBE, SVHN_1000
from benchmarks.report.curves import learning_curves_section, published_runs
from benchmarks.report.gap import gap_section
from benchmarks.report.precision_ab import precision_ab_section
from benchmarks.studies.sensitivity_table import draws_rule, read_sensitivity, top_knobs
from dcgan_ref.runtime.errors import run_cli

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

TABLES = {  # protocol: (title, higher is better)
    "cifar10_probe": ("Table 1: CIFAR-10 probe on {data}, features + L2-SVM (accuracy %)", True),
    "svhn_1000": ("Table 2: 1,000 labels on {data}, features + L2-SVM (test error %)", False),
}


def _latest_ours(df: pd.DataFrame) -> pd.DataFrame:
    """Our rows, the latest per (dataset, extractor, classifier, preset, metric)."""
    ours = df[df["source"] != "paper"].copy()
    ours["date"] = ours["date"].astype(str)
    key = ["dataset", "extractor", "classifier", "preset", "metric"]
    return ours.sort_values("date").groupby(key, dropna=False, sort=False).tail(1)


def _rows(df: pd.DataFrame, protocol: str) -> list[dict[str, Any]]:
    out = []
    for r in _latest_ours(df).to_dict("records"):
        c = compare(protocol, r)
        out.append({"what": f"{r['extractor']} + {r['classifier']}",
                    "metric": metric_label(r["metric"], r["notes"]), "data": r["dataset"],
                    "ours": r["value"], "std": r["std"], "paper": c.paper.value if c is not None and c.like else None,
                    "unlike": c.describe() if c is not None else "", "preset": r["preset"],
                    "device": r["device"], "date": r["date"], "commit": str(r["commit"])[:7],
                    "run": r["mlflow_run_id"], "notes": r["notes"], "data_sha256": r["data_sha256"], "seed": r["seed"],
                    "C": r["C"], "gan_data": r["gan_data"], "wall_s": r["wall_s"], "n_train": r["n_train"],
                    "n_test": r["n_test"], "peak_rss_gb": r["peak_rss_gb"], "protocol": protocol})
    order = {"paper": 0, "newmu-svhn": 1, "faces": 2, "quick": 3, "ci": 4, "smoke": 5}
    return sorted(out, key=lambda r: (order.get(r["preset"], 9), r["what"], r["metric"]))  # paper scale first


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [{"what": r["what"], "metric": r["metric"], "data": r["data"],
              "ours (± std over draws)": format_value(r["ours"], r["std"]),
              "paper": format_value(r["paper"]) if r["paper"] is not None else "",
              "difference": f"{r['ours'] - r['paper']:+.2f}" if r["paper"] is not None else "",
              "not like for like": r["unlike"], "preset": r["preset"], "device": r["device"], "date": r["date"]}
             for r in rows]
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) + "\n"


def _title(protocol: str, rows: list[dict[str, Any]]) -> str:
    """The table's title, naming the data its rows ran on."""
    data = ", ".join(dict.fromkeys(str(r["data"]) for r in rows)) or "no data yet"
    return TABLES[protocol][0].format(data=data)


def _choice_note(protocol: str) -> str:
    """How the table's rows chose C, said beside the table (from the protocol's spec)."""
    spec = {s.name: s for s in (CIFAR10_PROBE, SVHN_1000)}[protocol]
    full = ("All labels: C chosen on a class-balanced validation split of train, then refit on all of train. "
            if spec.full_data else "")
    if spec.draws_cv_folds:
        draws = (f"Label draws: each draw chooses C by {spec.draws_cv_folds}-fold cross-validation within its own "
                 f"{spec.per_class} labels per class, never the validation split (which holds more labels than a "
                 "draw); rows made before this default chose on the validation split, and their metric says so.")
    else:
        draws = ("Label draws: C chosen by the mean validation error over the draws on the validation split, the "
                 "paper's own rule for SVHN.")
    return full + draws + "\n"


def _absent_paper_note(protocol: str, rows: list[dict[str, Any]]) -> str:
    """Why a table shows no paper value: said once under it, not left for the reader to guess."""
    if any(r["paper"] is not None for r in rows):
        return ""
    if protocol == "svhn_1000" and not any(str(r["data"]).startswith("SVHN") for r in rows):
        return ("No paper value is shown: the paper ran this protocol on SVHN (DCGAN 22.48% test error) and every "
                "row here ran on other data, so none is the paper's setting.\n")
    return ("No paper value is shown: no row here is the paper's setting (its architecture, training data and "
            "official copy of the data); `not like for like` names each row's nearest paper row.\n")


def bar_chart(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Ours and the paper's comparable value side by side, one pair of bars per result."""
    labels = [f"{r['what']}\n{r['metric']} [{r['preset']}]" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.8))
    xs = range(len(rows))
    ours = [r["ours"] for r in rows]
    err = [0.0 if r["std"] is None or (isinstance(r["std"], float) and math.isnan(r["std"])) else r["std"]
           for r in rows]
    ax.bar([x - 0.2 for x in xs], ours, 0.4, yerr=err, label="ours", color="#3b75af", capsize=3)
    paper = [(x + 0.2, r["paper"]) for x, r in zip(xs, rows) if r["paper"] is not None]
    if paper:
        ax.bar([x for x, _ in paper], [v for _, v in paper], 0.4, label="paper", color="#e1812c")
    for x, v in zip(xs, ours):
        ax.text(x - 0.2, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs), labels, fontsize=7, rotation=20, ha="right")
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def unpublished_gan_rows(rows: list[dict[str, Any]], results_dir: Path) -> list[str]:
    """One line for each D trained here whose training record is not under ``results/gan_runs/``:
    the report draws only committed files, so such a row has no curves here, and says why."""
    records = [json.loads((p / "run.json").read_text()) for p in sorted((results_dir / "gan_runs").glob("*"))
               if (p / "run.json").is_file()]
    runs = {r.get("mlflow_run") for r in records} - {None}
    names = {r.get("name") for r in records}
    trained = [r for r in rows if str(r["what"]).startswith("dcgan (") and r.get("gan_data") not in ("-", "", None)]
    missing = {}
    for r in trained:
        named = re.search(r"run ([\w.-]+)", str(r["what"]))
        if r["run"] in runs or (named and named.group(1) in names):
            continue
        key = named.group(1) if named else r["run"]
        run_id = "" if named else f" (MLflow run {str(r['run'])[:8]})"
        missing.setdefault(key, f"{r['what']} [{r['preset']}]{run_id}")
    if not missing:
        return [] if trained else ["_No DCGAN row trained by this suite yet._\n"]
    return ["No training record committed for: " + "; ".join(missing.values()) + ". Their losses and samples "
            "lived only in the run folder or MLflow store of the machine that trained them (a protocol writes the "
            "record beside its rows since this report stopped reading MLflow; a `gan_run` is published with "
            "`python -m benchmarks.gan_run publish`).\n"]


def gan_run_sections(results_dir: Path, charts: Path) -> list[str]:
    """Each GAN run recorded under ``results/gan_runs/<name>/`` (``gan_run publish``, or a protocol
    that trained its D): its validation curve, losses and samples, from those committed files alone."""
    parts = []
    for published in published_runs(results_dir):
        folder, run, curve = results_dir / "gan_runs" / published.name, published.run, published.curve
        losses = pd.read_csv(folder / "losses.csv") if (folder / "losses.csv").exists() else pd.DataFrame()
        parts.append(f"### Run `{folder.name}`: {run.get('arch', '?')} GAN on {run.get('gan_data', '?')}\n")
        seen = int(run.get("images_seen") or (curve["images_seen"].max() if len(curve) else 0))
        budget = f" of a {int(run['budget_images']):,}-image budget" if run.get("budget_images") else ""
        chosen = (f"Each score: {run.get('scored_by') or GAN_RUN_SCORE}. Chosen length: "
                  f"{int(run['chosen_images_seen']):,} images (validation {float(run['chosen_val_score']):.2f}%). "
                  if len(curve) and run.get("chosen_images_seen") else "No validation scores: a fixed length. ")
        parts.append(f"State: {run.get('state', '?')}; {seen:,} images seen{budget}; {run.get('precision', '?')} on "
                     f"{run.get('cpu', '?')}. {chosen}Files: `results/gan_runs/{folder.name}/`.\n")
        if len(curve):
            table = [{"images seen": f"{int(r['images_seen']):,}", "validation %": f"{float(r['val_score']):.2f}",
                      "train img/s": f"{float(r['train_img_per_s']):.1f}", "precision": r["precision"],
                      "commit": r["commit"], "date": r["date"]} for _, r in curve.iterrows()]
            parts.append(tabulate(table, headers="keys", tablefmt="github", disable_numparse=True) + "\n")
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        axes[0].plot(curve["images_seen"], curve["val_score"], marker="o")
        axes[0].set_xlabel("images seen")
        axes[0].set_ylabel("validation accuracy %")
        axes[0].set_title("D as a feature extractor, along training", fontsize=9)
        if len(losses):
            axes[1].plot(losses["images_seen"], losses["loss_D"], label="loss_D", lw=0.8)
            axes[1].plot(losses["images_seen"], losses["loss_G"], label="loss_G", lw=0.8)
            axes[1].legend()
        axes[1].set_xlabel("images seen")
        axes[1].set_ylabel("loss (window mean)")
        axes[1].set_title("GAN losses", fontsize=9)
        fig.tight_layout()
        chart = charts / f"gan_run_{folder.name}.png"
        fig.savefig(chart, dpi=110)
        plt.close(fig)
        parts.append(f"![{folder.name}: validation curve and losses](report/{chart.name})\n")
        if (folder / "samples.png").exists():
            when = "the chosen length" if len(curve) else "the end of training"
            parts.append(f"Samples at {when} (fixed z, `{run.get('samples')}`):\n\n"
                         f"![{folder.name} samples](gan_runs/{folder.name}/samples.png)\n")
    return parts


def sensitivity_chart(group: pd.DataFrame, title: str, path: Path) -> Path:
    """Each setting's difference from the default (points), both metrics, with the default's band."""
    g = group[group["diff"].notna()]
    labels = [f"{k}: {s}"[:70] for k, s in dict.fromkeys(zip(g["knob"], g["setting"]))]
    metrics = list(dict.fromkeys(g["metric"]))
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(labels) + 1.6))
    height = 0.8 / max(len(metrics), 1)
    for i, metric in enumerate(metrics):
        m = g[g["metric"] == metric].set_index(["knob", "setting"])["diff"]
        ys = [j + i * height for j in range(len(labels))]
        values = [float(m.get(key, math.nan)) for key in dict.fromkeys(zip(g["knob"], g["setting"]))]
        per_class = re.fullmatch(r"test_accuracy_(\d+)pc", metric)
        name = METRIC_NAMES.get(metric) or (f"{per_class.group(1)} labels/class" if per_class else metric)
        ax.barh(ys, values, height, label=name)
        band = group[(group["metric"] == metric) & (group["default"].astype(str) == "True")]["band"]
        if len(band) and not pd.isna(band.iloc[0]):
            ax.axvspan(-2 * float(band.iloc[0]), 2 * float(band.iloc[0]), color=f"C{i}", alpha=0.08)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(labels))], labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel("points against the default (shaded: twice its band)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sensitivity(results_dir: Path, charts: Path) -> list[str]:
    path = results_dir / "sensitivity.csv"
    if not path.exists():
        return ["_No sensitivity run yet: `nox -s sensitivity -- --extractor ...`._\n"]
    parts = ["One knob at a time from the probe's default pipeline (full table: [sensitivity.md](sensitivity.md)).\n"]
    df = read_sensitivity(path)
    for i, ((ex, preset), g) in enumerate(df.groupby(["extractor", "preset"], sort=False)):
        title = f"{ex} [{preset}]"
        chart = sensitivity_chart(g, title, charts / f"sensitivity_{i}.png")
        top = "; ".join(f"{k} {d:+.2f} ({w})" for k, d, w in top_knobs(g))
        parts += [f"**{title}**, largest effects: {top or 'none measured'}. {draws_rule(g)}.\n",
                  f"![{title}](report/{chart.name})\n"]
    return parts


def _throughput(results_dir: Path) -> str:
    path = results_dir / "throughput.csv"
    if not path.exists():
        return "_No throughput run yet (it runs on a GPU: `nox -s throughput`)._\n"
    df = read_results(path)
    wanted = df[df["metric"].isin(["train_img_per_s", "train_mfu_pct", "extract_img_per_s", "svm_solve_s"])]
    lines = [{"what": r["extractor"], "batch": "" if pd.isna(r["batch"]) else int(r["batch"]), "metric": r["metric"],
              "value": format_value(r["value"], r["std"]), "device": r["device"], "date": r["date"]}
             for r in wanted.to_dict("records")]
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) + "\n"


def _cpu_step(results_dir: Path) -> list[str]:
    """The training step on each CPU measured (``benchmarks.throughput.cpu_step``): one line per
    architecture and setting, its rate, TFLOP/s and share of the same dtype's measured GEMM rate."""
    paths = sorted((results_dir / "cpu_step").glob("*/cpu_step.csv"))
    if not paths:
        return ["_No CPU step measurement yet (`python -m benchmarks.throughput.cpu_step`)._\n"]
    lines = []
    for path in paths:
        df = read_results(path)
        df = df[(df["source"] == "ours") & (df["preset"] == "paper")]
        steps = df[df["metric"] != "limit_gemm_tflops"]
        for (arch, setting), g in steps.groupby(["extractor", "classifier"], sort=False):
            v = dict(zip(g["metric"], zip(g["value"], g["std"])))
            # the GEMM rate this setting was measured against: its own process's, named in its notes
            limit = re.search(r"% of the (\w+) GEMM rate ([\d.]+) TFLOP/s", str(g["notes"].iloc[0]))
            lines.append({"CPU": g["device"].iloc[0].removeprefix("cpu: "),
                          "step": f"{arch}, batch {int(g['batch'].iloc[0])}",
                          "setting": setting, "img/s": format_value(*v["train_img_per_s"]),
                          "TFLOP/s": f"{v['train_tflops'][0]:.3f}",
                          "% of the GEMM rate": f"{v['train_pct_of_gemm'][0]:.0f}%"
                                                + (f" of {limit.group(2)} TFLOP/s ({limit.group(1)})" if limit else ""),
                          "commit": str(g["commit"].iloc[0])[:7]})
    return ["How close the GAN training step (D and G, forwards and backwards; FLOPs counted by "
            "`torch.utils.flop_counter`) comes to each CPU's own n x n GEMM rate of the same dtype, measured in "
            "the same process, setting by setting (`python -m benchmarks.throughput.cpu_step`; `±`: spread over "
            "timed rounds). `gan_run` trains in fp32 (bf16 autocast only when asked: it lost accuracy in the A/B "
            "below) and channels_last; not with torch.compile.\n",
            tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) + "\n"]


def _provenance(all_rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in all_rows:
        lines.append({"what": f"{r['what']} · {r['metric']}", "commit": r["commit"], "preset": r["preset"],
                      "seed": r["seed"], "C": "" if pd.isna(r["C"]) else f"{r['C']:g}",
                      "data sha256": str(r["data_sha256"])[:12], "MLflow run": r["run"]})
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) + "\n"


def _costs(all_rows: list[dict[str, Any]]) -> str:
    """What each row cost, from the row itself: wall time (the extractor's fit, features and
    classifier, as the row records it), images, peak memory and the machine."""
    def num(v: Any, fmt: str) -> str:
        return "" if v is None or pd.isna(v) else format(v, fmt)

    lines = [{"table": r["protocol"], "what": f"{r['what']} · {r['metric']}", "preset": r["preset"],
              "wall": f"{r['wall_s'] / 60:.1f} min",
              "train / test images": f"{num(r['n_train'], ',.0f')} / {num(r['n_test'], ',.0f')}"
              if not pd.isna(r["n_train"]) else "", "peak RSS GB": num(r["peak_rss_gb"], ".1f"),
              "device": r["device"]} for r in all_rows if not pd.isna(r["wall_s"])]
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) + "\n" + (
        "\nRows written before a commit recorded images and memory leave those cells blank.\n")


def write_report(results_dir: str | Path | None = None, commands: list[str] | None = None) -> Path:
    results_dir = Path(results_dir) if results_dir else RESULTS_DIR
    charts = results_dir / "report"
    charts.mkdir(parents=True, exist_ok=True)
    parts = ["# dcgan-repro: the paper's tables, reproduced\n",
             "Generated by `python -m benchmarks.report` from the committed files beside it (the results CSVs "
             "and `gan_runs/`), no MLflow store needed; never edited by hand. `quick`, `ci` and `smoke` rows "
             "are pipeline checks, not paper results. Each DCGAN row names what its GAN learned from; the "
             "paper's value and the difference appear only beside a row that is the paper's setting.\n"]
    all_rows: list[dict[str, Any]] = []
    for protocol in TABLES:
        path = results_dir / f"{protocol}.csv"
        rows = _rows(read_results(path), protocol) if path.exists() else []
        title = _title(protocol, rows)
        parts.append(f"## {title}\n")
        all_rows += rows
        if not rows:
            parts.append("_No rows of ours yet._\n")
            continue
        parts.append(_table(rows))
        parts.append(_choice_note(protocol))
        parts.append(_absent_paper_note(protocol, rows))
        chart = bar_chart(rows, title, charts / f"{protocol}.png")
        parts.append(f"![{title}](report/{chart.name})\n")
    parts.append("## The GAN\n")
    parts += ["### Learning curves\n", *learning_curves_section(results_dir, charts)]
    parts += gan_run_sections(results_dir, charts)
    parts += unpublished_gan_rows(all_rows, results_dir)
    parts += ["## The gap to the paper's DCGAN row, decomposed\n", *gap_section(results_dir)]
    parts += ["## Sensitivity to the unstated choices\n", *_sensitivity(results_dir, charts)]
    parts += ["## Throughput\n", _throughput(results_dir)]
    parts += ["### The training step on a CPU\n", *_cpu_step(results_dir)]
    parts += ["### bf16 autocast against fp32: the probe's accuracy\n", *precision_ab_section(results_dir)]
    parts += ["## What each row cost\n", _costs(all_rows)]
    parts.append("## How this was obtained\n")
    if commands:
        parts.append("Commands of the run that last regenerated this report:\n\n```bash\n" + "\n".join(commands)
                     + "\n```\n")
    parts += ["Every row, with the commit, preset, seed, chosen C, data hash and MLflow run behind it (full "
              "columns in the CSVs):\n", _provenance(all_rows)]
    report = results_dir / "REPORT.md"
    write_atomic(report, "\n".join(parts))  # two reproduce runs finishing together: one whole report, not a mix
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results-dir", help="default: the repo's results/")
    print(f"wrote {write_report(p.parse_args(argv).results_dir)}")


if __name__ == "__main__":
    run_cli(main)
