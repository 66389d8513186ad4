"""Results tables: paper rows beside ours, own rows replaced, nothing else touched."""
import pandas as pd

from benchmarks.results import COLUMNS, write_results


def _row(extractor, value, preset="quick", metric="test_accuracy"):
    return {"protocol": "cifar10_probe", "dataset": "CIFAR-10 (JPEG copy)", "extractor": extractor,
            "classifier": "L2-SVM", "gan_data": "-", "preset": preset, "metric": metric, "value": value,
            "commit": "abc", "device": "cpu", "seed": 0}


def test_write_replaces_only_the_runs_own_rows(tmp_path):
    write_results("cifar10_probe", [_row("pixels", 40.0), _row("dcgan", 50.0)], tmp_path)
    write_results("cifar10_probe", [_row("pixels", 41.0)], tmp_path)
    df = pd.read_csv(tmp_path / "cifar10_probe.csv")
    assert list(df.columns) == COLUMNS
    ours = df[df.source == "ours"].set_index("extractor")["value"].to_dict()
    assert ours == {"dcgan": 50.0, "pixels": 41.0}
    paper = df[df.source == "paper"]
    assert 82.8 in paper["value"].tolist() and len(paper) == len(set(map(tuple, paper[["extractor", "metric"]].values)))


def test_markdown_shows_paper_and_ours_with_presets(tmp_path):
    _, md = write_results("cifar10_probe", [_row("pixels", 40.0), _row("pixels", 39.0, metric="test_accuracy_400pc")],
                          tmp_path)
    text = md.read_text()
    assert "never edited by hand" in text
    line = next(l for l in text.splitlines() if "| ours" in l)
    assert "quick" in line and "40" in line and "39" in line  # both metrics on one line
    assert any("82.8" in l and "paper" in l for l in text.splitlines())


def test_svhn_table_carries_every_paper_row(tmp_path):
    write_results("svhn_1000", [], tmp_path)
    df = pd.read_csv(tmp_path / "svhn_1000.csv")
    assert {77.93, 66.55, 65.63, 54.33, 36.02, 27.83, 23.56, 22.48, 28.87} <= set(df["value"])


def test_rows_with_a_batch_size_are_replaced_after_a_csv_round_trip(tmp_path):
    row = _row("svhn32", 1000.0, metric="train_img_per_s") | {"protocol": "throughput", "batch": 128}
    write_results("throughput", [row], tmp_path)
    write_results("throughput", [row | {"value": 2000.0}], tmp_path)
    df = pd.read_csv(tmp_path / "throughput.csv")
    assert df["value"].tolist() == [2000.0]
