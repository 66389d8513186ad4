"""Results tables from :class:`benchmarks.protocol.row.ResultRow`s: ``results/<protocol>.csv`` (long format, one row
per run and metric, full provenance) and ``results/<protocol>.md`` (a compact table with
the paper's value beside ours, then the paper's rows, then the full provenance folded).

Written only by runs: a new run replaces its own earlier rows (same :data:`KEY`) and
leaves every other row as it was.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tabulate import tabulate

from benchmarks.protocol.context import RunContext
from benchmarks.protocol.paper import compare, paper_rows
from benchmarks.protocol.row import ResultRow
from benchmarks.protocol.store import Replaces, Table
from dcgan_ref.runtime.errors import UserError
from dcgan_ref.runtime.tracking import unwritable

# What a row measured; a run of another seed is another measurement and keeps its own rows.
KEY = ("source", "protocol", "dataset", "extractor", "classifier", "gan_data", "preset", "metric", "batch", "seed")
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"


def table(protocol: str) -> Table:
    """A protocol's table (or throughput's): ResultRows, the paper's rows first."""
    return Table(protocol, ResultRow, KEY, lambda df: render_markdown(df, protocol),
                 fixed_rows=lambda: paper_rows(protocol))


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """A protocol's results CSV from any commit of this project (see :mod:`benchmarks.protocol.results_io`)."""
    return table(Path(path).stem).read(path)


def format_value(value: Any, std: Any = None) -> str:
    """``12.34`` or ``12.34 ± 0.56``: the one rounding every log line and table uses."""
    if value is None or pd.isna(value):
        return ""
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    return text + (f" ± {std:.2f}" if std is not None and not pd.isna(std) else "")


def _blank(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


# A label-draws row's notes say how it chose its hyperparameter when that was cross-validation within
# each draw (the CIFAR-10 probe's default); a draws row without it chose on the validation split.
_DRAWS_CV = "cross-validation within each draw"


def draws_choice_note(cv_folds: int, hyper: str, n_labels: int) -> str:
    return f"{hyper} chosen per draw by {cv_folds}-fold {_DRAWS_CV}'s {n_labels:,} labels" if cv_folds else ""


def chose_within_draws(notes: object) -> bool:
    """Whether a label-draws row's notes say it chose by cross-validation within each draw."""
    return _DRAWS_CV in str(notes)


def metric_label(metric: str, notes: object = "") -> str:
    """The table name of a metric; the CIFAR-10 probe's label draws also say how they chose."""
    label = METRIC_NAMES.get(metric, metric)
    if re.fullmatch(r"test_accuracy_\d+pc", metric):
        label += (", chosen by cross-validation in each draw" if chose_within_draws(notes)
                  else ", chosen on the validation split")
    return label


METRIC_NAMES = {"test_accuracy": "all labels", "test_accuracy_400pc": "400 labels/class",
                "test_accuracy_no_near_duplicates": "all labels, test without near-duplicates of train",
                "test_error_1000": "1,000 labels, test error", "val_error_1000": "1,000 labels, validation error"}
# The CIFAR-10 probe's two headline metrics (all labels, the paper's 400 per class), by table name.
PROBE_METRICS = {m: METRIC_NAMES[m] for m in ("test_accuracy", "test_accuracy_400pc")}


def _compact(df: pd.DataFrame) -> str:
    """Our rows, one per result; the paper's value and the difference only beside a row that is
    the paper's setting, else the paper's nearest row and how ours differs from it."""
    lines = []
    for r in df[df["source"] != "paper"].to_dict("records"):
        c = compare(r["protocol"], r)
        what = " + ".join(x for x in (_blank(r["extractor"]), _blank(r["classifier"])) if x)
        what += f" · {metric_label(r['metric'], r['notes'])}"
        what += f" @ batch {int(r['batch'])}" if not pd.isna(r["batch"]) else ""
        what += f" · seed {int(r['seed'])}" if not pd.isna(r["seed"]) and int(r["seed"]) != 0 else ""
        run = ", ".join(x for x in (f"commit {_blank(r['commit'])[:7]}" if _blank(r["commit"]) else "",
                                    f"run {_blank(r['mlflow_run_id'])[:8]}" if _blank(r["mlflow_run_id"]) else "") if x)
        like = c is not None and c.like
        lines.append({"what": what, "data": _blank(r["dataset"]), "preset": _blank(r["preset"]),
                      "ours (± std over draws)": format_value(r["value"], r["std"]),
                      "paper": format_value(c.paper.value) if like else "",
                      "difference": f"{r['value'] - c.paper.value:+.2f}" if like else "",
                      "not like for like": c.describe() if c is not None else "",
                      "device": _blank(r["device"]), "run": run})
    if not lines:
        return "_No rows of ours yet._\n"
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) + "\n"


def _paper_table(df: pd.DataFrame) -> str:
    paper = df[df["source"] == "paper"]
    if not len(paper):
        return ""
    lines = [{"what": " + ".join(x for x in (r["extractor"], _blank(r["classifier"])) if x and x != "-"),
              "data": r["dataset"], "metric": r["metric"], "value (± as published)": format_value(r["value"], r["std"]),
              "features": _blank(r["feature_dim"]) and str(int(r["feature_dim"])), "source": _blank(r["notes"])}
             for r in paper.to_dict("records")]
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) + "\n"


def render_markdown(df: pd.DataFrame, protocol: str) -> str:
    full = df.astype(object).where(df.notna(), "")
    if "commit" in full:
        full["commit"] = full["commit"].astype(str).str[:10]
    parts = [
        f"# {protocol} results\n",
        "Generated by the runs themselves (`benchmarks/protocol/results.py`); never edited by hand. Accuracies and "
        "errors are percentages. Ours: `±` is the standard deviation over label draws (ddof 1). Paper: `±` as "
        "published (the authors' released script printed 1.96 × the std, ddof 0). `quick` rows come from the "
        "CPU check preset and are never paper results. `paper` and `difference` (ours minus the paper) appear "
        "only beside a row that is the paper's setting: its architecture, training data and official copy of "
        "the data; elsewhere `not like for like` names the paper's nearest row and how ours differs.\n",
        _compact(df),
    ]
    paper = _paper_table(df)
    if paper:
        parts += ["## The paper's rows\n", paper]
    parts += ["<details><summary>Full provenance (every column of the CSV)</summary>\n",
              tabulate(full, headers="keys", tablefmt="github", showindex=False) + "\n", "</details>\n"]
    return "\n".join(parts)


def write_results(protocol: str, rows: list[ResultRow], results_dir: str | os.PathLike | None = None,
                  lock_timeout_s: float = 120.0) -> tuple[Path, Path]:
    """Merge ``rows`` into ``<results_dir>/<protocol>.csv`` and re-render the ``.md``: under a
    lock, with atomic writes."""
    return table(protocol).write(rows, Path(results_dir) if results_dir else RESULTS_DIR, lock_timeout_s)


def rerender(results_dir: str | os.PathLike | None = None) -> list[Path]:
    """Re-render every protocol's ``<protocol>.csv/.md`` from its CSV (after a change of table layout;
    the rows' values untouched)."""
    out = Path(results_dir) if results_dir else RESULTS_DIR
    return [table(p.stem).rerender(out) for p in sorted(out.glob("*.csv")) if p.stem in ("cifar10_probe", "svhn_1000")]


if __name__ == "__main__":  # python -m benchmarks.protocol.results: re-render the tables from their CSVs
    for path in rerender():
        print(f"rendered {path}")


def checked_results_dir(run: RunContext, table: str | None = None,
                        read: Callable[[Path], Any] = read_results) -> Path:
    """Where the tables go, refused now if it cannot be written or its ``table`` (default: the
    protocol's) cannot be read and merged into: not after an hour of compute."""
    results_dir = run.results_dir or RESULTS_DIR
    if run.write_results:
        existing = next(p for p in (results_dir, *results_dir.parents) if p.exists())  # created when written
        problem = unwritable(existing) if existing.is_dir() else f"{existing} is not a folder"
        if problem:
            raise UserError(f"results: {problem}; pass --results-dir <writable folder> or --no-results")
        try:
            read(results_dir / f"{table or run.spec.name}.csv")
        except UserError as e:
            raise UserError(f"{e} (the new rows would be merged into it: fix or move it, or pass --results-dir "
                            f"<another folder> or --no-results)") from None
    return results_dir


def publish(run: RunContext, store: Table, rows: list[ResultRow], results_dir: Path, log=print,
            replaces: Replaces | None = None) -> None:
    """What every study does with its rows: print their table, then merge them into ``results_dir``'s
    (unless the run writes none; ``replaces``: see :meth:`Table.merge`). A failed write keeps the
    rows first (hours of work), then names the problem."""
    print(store.render(store.merge(store.frame([]), rows)))
    if not run.write_results:
        log(f"(preset {run.preset.name} or --no-results: results/ left untouched)")
        return
    try:
        csv_path, md_path = store.write(rows, results_dir, replaces=replaces)
    except (OSError, UserError) as e:
        raise UserError(f"results could not be written ({e}); " + _save_unwritten(run, store, rows)) from None
    log(f"wrote {csv_path} and {md_path}")


def _save_unwritten(run: RunContext, store: Table, rows: list[ResultRow]) -> str:
    """Keep the rows of a run whose table could not be written, and mark its MLflow runs FAILED."""
    import mlflow

    path = run.out / store.name / f"unwritten-rows-{dt.datetime.now():%Y%m%d-%H%M%S}.csv"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        store.frame(rows).to_csv(path, index=False)
        saved = f"the rows are saved in {path}"
    except OSError:
        saved = "the rows are only in the MLflow runs"
    client = mlflow.MlflowClient()
    for run_id in {r.mlflow_run_id for r in rows if r.mlflow_run_id}:
        client.log_text(run_id, store.frame([r for r in rows if r.mlflow_run_id == run_id]).to_csv(index=False),
                        "unwritten_rows.csv")
        client.set_terminated(run_id, status="FAILED")
    return saved + " and as unwritten_rows.csv in each MLflow run (marked FAILED)"
