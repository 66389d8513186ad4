"""Results files are versioned data: older schemas, unknown columns, bad cells, empty files.

A bad file stops a run before any work with one line naming file, row and column; a file
broken while a run works never costs the run's rows."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import cifar10_probe
from benchmarks.protocol import runner as protocol
from benchmarks.protocol.results import read_results, rerender, write_results
from benchmarks.protocol.results_io import ResultsFileError
from benchmarks.protocol.row import COLUMNS, ResultRow
from benchmarks.protocol.store import Table
from benchmarks.report import render as report
from benchmarks.studies.sensitivity_table import CSV_COLUMNS, SensitivityRow, read_sensitivity, write_rows
from dcgan_ref.runtime.errors import run_cli

REPO = Path(__file__).resolve().parents[1]
OLD_COLUMNS = [c for c in COLUMNS if c not in ("seed", "data_sha256")]  # what an older version wrote


def _row(extractor="pixels", value=40.0, **kw) -> ResultRow:
    return ResultRow(protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor=extractor,
                     classifier="L2-SVM", gan_data="-", preset="quick", metric="test_accuracy", value=value,
                     commit="abc1234567", device="cpu", **kw)


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)
    return path


def _ours(path: Path) -> pd.DataFrame:
    df = read_results(path)
    return df[df["source"] == "ours"].set_index("extractor")


def _exit(main, argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        run_cli(main, argv)
    return e.value.code, capsys.readouterr().err


# ----------------------------------------------------------------------------- schemas
def test_an_older_schema_reads_and_accepts_new_rows_with_its_values_kept(tmp_path):
    old = {c: "" for c in OLD_COLUMNS} | {"source": "ours", "protocol": "cifar10_probe", "extractor": "kmeans",
                                         "classifier": "L2-SVM", "preset": "quick", "metric": "test_accuracy",
                                         "value": "71.25", "n_draws": "10", "commit": "0ldc0mmit"}
    path = _write_csv(tmp_path / "cifar10_probe.csv", OLD_COLUMNS, [old])
    df = read_results(path)
    assert list(df.columns) == COLUMNS and df["seed"].isna().all()
    write_results("cifar10_probe", [_row(seed=0)], tmp_path)
    ours = _ours(path)
    assert ours.loc["kmeans", "value"] == 71.25 and ours.loc["kmeans", "commit"] == "0ldc0mmit"
    assert ours.loc["pixels", "value"] == 40.0 and list(pd.read_csv(path).columns) == COLUMNS


def test_an_unknown_column_is_kept_and_written_back_untouched(tmp_path):
    path = tmp_path / "cifar10_probe.csv"
    write_results("cifar10_probe", [_row("kmeans", 71.0)], tmp_path)
    df = pd.read_csv(path)
    df.insert(3, "reviewer", "")
    df.loc[df["extractor"] == "kmeans", "reviewer"] = "checked by A. B."
    df.to_csv(path, index=False)
    write_results("cifar10_probe", [_row("pixels", 40.0)], tmp_path)
    after = pd.read_csv(path)
    assert list(after.columns) == COLUMNS + ["reviewer"]
    assert after.loc[after["extractor"] == "kmeans", "reviewer"].tolist() == ["checked by A. B."]
    assert after.loc[after["extractor"] == "pixels", "reviewer"].isna().all()
    rerender(tmp_path)  # re-rendering keeps it too
    assert pd.read_csv(path)["reviewer"].notna().sum() == 1


@pytest.mark.parametrize("text", ["", "\n\n", ",".join(COLUMNS) + "\n"], ids=["empty", "blank-lines", "header-only"])
def test_an_empty_or_header_only_file_is_a_table_of_no_rows(tmp_path, text):
    path = tmp_path / "cifar10_probe.csv"
    path.write_text(text)
    assert len(read_results(path)) == 0 and list(read_results(path).columns) == COLUMNS
    write_results("cifar10_probe", [_row()], tmp_path)
    assert _ours(path).loc["pixels", "value"] == 40.0


# ----------------------------------------------------------------------------- malformed files
def _with_cell(tmp_path: Path, column: str, value: str) -> Path:
    write_results("cifar10_probe", [_row("kmeans", 71.0), _row("pixels", 40.0)], tmp_path)
    path = tmp_path / "cifar10_probe.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[df["extractor"] == "pixels", column] = value
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("column, value, message", [
    ("value", "40.0 (approx)", "column 'value': '40.0 (approx)' is not a number"),
    ("std", "n/a", "column 'std': 'n/a' is not a number"),
    ("seed", "first", "column 'seed': 'first' is not a number"),
    ("metric", "", "column 'metric' is blank"),
])
def test_a_bad_cell_is_named_by_file_line_and_column(tmp_path, column, value, message):
    path = _with_cell(tmp_path, column, value)
    df = pd.read_csv(path, dtype=str)
    line = 2 + int(df.index[df["extractor"] == "pixels"][0])  # the header is line 1
    with pytest.raises(ResultsFileError) as e:
        read_results(path)
    assert str(e.value) == f"{path}: row at line {line}, {message}"


@pytest.mark.parametrize("text, message", [
    ("source,protocol,metric,value\nours,cifar10_probe,test_accuracy,40,extra\n", "has 5 cells, the header 4"),
    ("source,protocol,metric,value,value\n", "not a header of distinct column names"),
    ("a,b\n1,2\n", "no column 'metric', 'protocol', 'source', 'value' in its header"),
])
def test_a_file_that_is_not_a_results_table_is_one_line(tmp_path, text, message):
    path = tmp_path / "cifar10_probe.csv"
    path.write_text(text)
    with pytest.raises(ResultsFileError, match=message):
        read_results(path)


def test_a_file_that_is_not_text_is_one_line(tmp_path):
    path = tmp_path / "cifar10_probe.csv"
    path.write_bytes(b"source,protocol\n\xff\xfe\x00garbage")
    with pytest.raises(ResultsFileError, match="not UTF-8 text"):
        read_results(path)


# ----------------------------------------------------------------------------- before work, never after
@pytest.fixture
def no_data_reads(monkeypatch):
    monkeypatch.setattr(protocol, "load_data", lambda *a, **k: pytest.fail("data was read"))


def test_a_bad_results_file_stops_the_run_before_any_data_is_read(tiny_folder, tmp_path, capsys, no_data_reads):
    path = _with_cell(tmp_path / "results", "value", "forty")
    code, err = _exit(cifar10_probe.main, ["--preset", "smoke", "--data", str(tiny_folder), "--out",
                                           str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(path) in err and "column 'value': 'forty' is not a number" in err and "--results-dir" in err


def test_a_file_broken_while_the_run_works_costs_no_row(tiny_folder, tmp_path, capsys, monkeypatch):
    """The table is fine at the start and hand-edited before the run writes: the run's rows are
    saved first, then the problem is named."""
    results = tmp_path / "results"
    write_results("cifar10_probe", [_row("kmeans", 71.0)], results)
    real_write = Table.write

    def edited_meanwhile(store, rows, out, *args, **kwargs):
        monkeypatch.setattr(Table, "write", real_write)  # _with_cell writes through it too
        _with_cell(results, "std", "about 1")
        return real_write(store, rows, out, *args, **kwargs)

    monkeypatch.setattr(Table, "write", edited_meanwhile)
    argv = ["--preset", "smoke", "--data", str(tiny_folder), "--out", str(tmp_path / "runs"), "--extractor", "pixels",
            "--results-dir", str(results)]
    code, err = _exit(cifar10_probe.main, argv, capsys)
    assert code == 2 and "column 'std': 'about 1' is not a number" in err and "unwritten-rows-" in err
    saved = next((tmp_path / "runs" / "cifar10_probe").glob("unwritten-rows-*.csv"))
    assert "pixels" in pd.read_csv(saved)["extractor"].iloc[0]


def test_the_report_names_a_bad_file_in_one_line(tmp_path, capsys):
    path = _with_cell(tmp_path, "C", "big")
    code, err = _exit(report.main, ["--results-dir", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(path) in err and "'big' is not a number" in err


def test_the_sensitivity_table_tolerates_an_older_schema_and_names_a_bad_cell(tmp_path):
    # The header before the table joined the results store (no seed, data_sha256; "seconds", not wall_s).
    old_columns = ["extractor", "preset", "scale", "knob", "setting", "default", "metric", "value", "std", "diff",
                   "band", "beyond_noise", "C", "feature_dim", "seconds", "notes", "dataset", "device", "torch",
                   "commit", "dirty", "date", "mlflow_run_id"]
    old = {c: "" for c in old_columns} | {"extractor": "D", "preset": "quick", "knob": "pooling",
                                         "setting": "global max", "metric": "test_accuracy", "value": "55.0",
                                         "seconds": "12.5"}
    path = _write_csv(tmp_path / "sensitivity.csv", old_columns + ["reviewer"], [old | {"reviewer": "ok"}])
    df = read_sensitivity(path)
    assert list(df.columns) == CSV_COLUMNS + ["reviewer"] and df["value"].tolist() == [55.0]
    assert df["wall_s"].tolist() == [12.5]
    write_rows([SensitivityRow(extractor="D", preset="quick", knob="pooling", setting="4x4 max",
                               metric="test_accuracy", value=60.0)], tmp_path)
    after = read_sensitivity(path)
    assert sorted(after["value"]) == [55.0, 60.0] and after["reviewer"].tolist()[0] == "ok"
    assert "seconds" not in path.read_text().splitlines()[0].split(",")
    path.write_text(path.read_text().replace("55.0", "fifty-five"))
    with pytest.raises(ResultsFileError, match="column 'value': 'fifty-five' is not a number"):
        read_sensitivity(path)


# ----------------------------------------------------------------------------- every committed version
def _committed_versions() -> list[tuple[str, str, str]]:
    """(commit, table, text) of every version of results/<table>.csv in this clone's history."""
    found = []
    for table in ("cifar10_probe", "svhn_1000"):
        log = subprocess.run(["git", "log", "--format=%h", "--", f"results/{table}.csv"], cwd=REPO,
                             capture_output=True, text=True)
        for commit in log.stdout.split():
            show = subprocess.run(["git", "show", f"{commit}:results/{table}.csv"], cwd=REPO, capture_output=True,
                                  text=True)
            if show.returncode == 0:
                found.append((commit, table, show.stdout))
    return found


def test_every_committed_results_file_reads_renders_and_accepts_new_rows(tmp_path):
    versions = _committed_versions() or [(
        "HEAD", t, (REPO / "results" / f"{t}.csv").read_text()) for t in ("cifar10_probe", "svhn_1000")]
    oldest = {table: commit for commit, table, _ in versions}  # git log lists the newest first
    for commit, table, text in versions:
        folder = tmp_path / commit
        folder.mkdir(exist_ok=True)
        (folder / f"{table}.csv").write_text(text)
        before = read_results(folder / f"{table}.csv")
        ours_before = before[before["source"] == "ours"]
        write_results(table, [_row("a new extractor", 1.0, seed=7) if table == "cifar10_probe" else
                              ResultRow(protocol=table, metric="test_error_1000", value=1.0, extractor="new")],
                      folder)
        after = read_results(folder / f"{table}.csv")
        ours_after = after[after["source"] == "ours"]
        assert len(ours_after) == len(ours_before) + 1, (commit, table)
        assert sorted(ours_after["value"].dropna()) == sorted([*ours_before["value"].dropna(), 1.0]), (commit, table)
        rerender(folder)
        if oldest[table] == commit:
            assert report.write_report(folder).exists()
