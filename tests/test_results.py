"""Results tables: paper rows beside ours, own rows replaced, nothing else touched."""
import dataclasses

import pandas as pd
import pytest

from benchmarks.protocol.results import write_results
from benchmarks.protocol.row import COLUMNS, ResultRow


def _row(extractor, value, preset="quick", metric="test_accuracy", seed=0):
    return ResultRow(protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor=extractor,
                     classifier="L2-SVM", gan_data="-", preset=preset, metric=metric, value=value,
                     commit="abc1234567", device="cpu", seed=seed)


def test_write_replaces_only_the_runs_own_rows(tmp_path):
    write_results("cifar10_probe", [_row("pixels", 40.0), _row("dcgan", 50.0)], tmp_path)
    write_results("cifar10_probe", [_row("pixels", 41.0)], tmp_path)
    df = pd.read_csv(tmp_path / "cifar10_probe.csv")
    assert list(df.columns) == COLUMNS
    ours = df[df.source == "ours"].set_index("extractor")["value"].to_dict()
    assert ours == {"dcgan": 50.0, "pixels": 41.0}
    paper = df[df.source == "paper"]
    assert 82.8 in paper["value"].tolist() and len(paper) == len(set(map(tuple, paper[["extractor", "metric"]].values)))


def test_another_seed_adds_rows_and_the_same_seed_replaces_its_own(tmp_path):
    write_results("cifar10_probe", [_row("pixels", 40.0), _row("pixels", 41.0, seed=1)], tmp_path)
    _, md = write_results("cifar10_probe", [_row("pixels", 42.0, seed=1)], tmp_path)  # after a CSV round trip
    df = pd.read_csv(tmp_path / "cifar10_probe.csv")
    assert df[df.source == "ours"].set_index("seed")["value"].to_dict() == {0: 40.0, 1: 42.0}
    compact = md.read_text().split("<details>")[0]
    assert sum("pixels" in line and "seed 1" in line for line in compact.splitlines()) == 1


def test_markdown_shows_paper_and_ours_with_presets(tmp_path):
    _, md = write_results("cifar10_probe", [_row("pixels", 40.0), _row("pixels", 39.0, metric="test_accuracy_400pc")],
                          tmp_path)
    text = md.read_text()
    assert "never edited by hand" in text
    compact = text.split("<details>")[0]
    ours = [line for line in compact.splitlines() if line.startswith("| pixels")]
    assert len(ours) == 2 and all("quick" in line for line in ours)  # one line per result
    assert len(ours[0].strip("|").split("|")) <= 9  # the compact view is at most 9 columns
    assert any("82.8" in line for line in compact.splitlines())  # the paper's rows are listed
    assert "abc1234567" in text.split("<details>")[1]  # full provenance, folded


def _cells(md, prefix):
    line = next(line for line in md.read_text().splitlines() if line.startswith(f"| {prefix}"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_compact_view_puts_the_paper_value_beside_a_like_row_only(tmp_path):
    official = dataclasses.replace(_row("kmeans-1600", 75.9, preset="paper"), dataset="CIFAR-10",
                                   gan_data="CIFAR-10 train")
    _, md = write_results("cifar10_probe", [official], tmp_path)
    assert _cells(md, "kmeans-1600")[3:7] == ["75.90", "77.90", "-2.00", ""]  # ours, paper (Coates & Ng), difference


@pytest.mark.parametrize("row, nearest, differs", [
    (_row("kmeans-1600", 74.0, preset="paper"), "K-means 1,600 (Coates, Lee & Ng 2011)", "JPEG copy"),
    (dataclasses.replace(_row("dcgan (svhn32)", 69.9, preset="paper"), gan_data="CIFAR-10 (JPEG copy) train"),
     "DCGAN (imagenet32, Imagenet-1k)", "svhn32 D, not imagenet32; GAN trained on CIFAR-10 (JPEG copy) train"),
    (dataclasses.replace(_row("dcgan (imagenet32, run t, 500 images)", 70.0, preset="paper"), dataset="CIFAR-10",
                         gan_data="Tiny-ImageNet-200 (32x32 JPEG) train"),
     "DCGAN (imagenet32, Imagenet-1k)", "GAN trained on Tiny-ImageNet-200 (32x32 JPEG) train, not Imagenet-1k"),
    (dataclasses.replace(_row("newmu-svhn (authors' release)", 69.5, preset="paper"), feature_dim=7168),
     "DCGAN (imagenet32, Imagenet-1k)", "svhn32 D, not imagenet32; the authors' released SVHN GAN"),
    (_row("random-init D (imagenet32)", 65.4, preset="paper"), "DCGAN (imagenet32, Imagenet-1k)",
     "D not trained (random init)"),
])
def test_a_row_unlike_the_papers_setting_names_its_nearest_row_and_no_difference(tmp_path, row, nearest, differs):
    _, md = write_results("cifar10_probe", [row], tmp_path)
    cells = _cells(md, row.extractor)
    assert cells[4:6] == ["", ""], cells  # no paper value, no difference
    assert f"nearest: {nearest}" in cells[6] and differs in cells[6], cells


def test_the_1000_label_table_on_cifar10_shows_no_svhn_number(tmp_path):
    row = dataclasses.replace(_row("dcgan (svhn32)", 47.0, metric="test_error_1000", preset="paper"),
                              protocol="svhn_1000", gan_data="CIFAR-10 (JPEG copy) train minus validation")
    _, md = write_results("svhn_1000", [row], tmp_path)
    cells = _cells(md, "dcgan (svhn32)")
    assert cells[4:6] == ["", ""] and "the paper ran this protocol on SVHN only" in cells[6]
    assert "22.48" not in md.read_text().split("## The paper's rows")[0]
    svhn = dataclasses.replace(row, dataset="SVHN", gan_data="SVHN train+extra minus validation")
    _, md = write_results("svhn_1000", [svhn], tmp_path / "svhn")
    assert _cells(md, "dcgan (svhn32)")[4:7] == ["22.48", "+24.52", ""]


def test_svhn_table_carries_every_paper_row(tmp_path):
    write_results("svhn_1000", [], tmp_path)
    df = pd.read_csv(tmp_path / "svhn_1000.csv")
    assert {77.93, 66.55, 65.63, 54.33, 36.02, 27.83, 23.56, 22.48, 28.87} <= set(df["value"])


def test_rows_with_a_batch_size_are_replaced_after_a_csv_round_trip(tmp_path):
    row = dataclasses.replace(_row("svhn32", 1000.0, metric="train_img_per_s"), protocol="throughput", batch=128)
    write_results("throughput", [row], tmp_path)
    write_results("throughput", [dataclasses.replace(row, value=2000.0)], tmp_path)
    df = pd.read_csv(tmp_path / "throughput.csv")
    assert df["value"].tolist() == [2000.0]


def _write_many(args):
    results_dir, worker, n = args
    for i in range(n):
        write_results("cifar10_probe", [_row(f"w{worker}-{i}", float(i))], results_dir)


def test_concurrent_writers_lose_no_row(tmp_path):
    """Two processes x 15 writes each: every row survives (without the lock, most were lost)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_write_many, [(tmp_path, 0, 15), (tmp_path, 1, 15)])
    df = pd.read_csv(tmp_path / "cifar10_probe.csv")
    assert sorted(df[df.source == "ours"]["extractor"]) == sorted(f"w{w}-{i}" for w in (0, 1) for i in range(15))


def test_a_held_lock_times_out_with_a_clear_error(tmp_path):
    import fcntl

    import pytest

    from dcgan_ref.runtime.errors import UserError

    with open(tmp_path / ".cifar10_probe.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(UserError, match="another run has held .*cifar10_probe.lock"):
            write_results("cifar10_probe", [_row("pixels", 1.0)], tmp_path, lock_timeout_s=0.2)


def test_a_new_row_leaves_the_text_of_the_rows_beside_it_alone(tmp_path):
    """Blank seeds in the paper rows make the column float on reading: "0" must stay "0"."""
    write_results("cifar10_probe", [dataclasses.replace(_row("pixels", 40.0), n_draws=10, feature_dim=3072)], tmp_path)
    before = (tmp_path / "cifar10_probe.csv").read_text().splitlines()
    write_results("cifar10_probe", [_row("dcgan", 50.0)], tmp_path)
    after = (tmp_path / "cifar10_probe.csv").read_text().splitlines()
    assert set(before) <= set(after)
    assert any(line.startswith("ours,") and ",10,3072," in line and ",0," in line for line in after)


def test_published_rows_name_files_never_a_machines_folders(tmp_path):
    from benchmarks.protocol.row import REPO, published_text

    assert published_text(f"listed in {REPO}/docs/figures/dedup.json") == "listed in docs/figures/dedup.json"
    assert published_text("4,000 train / 1,000 test images of /work/local/slices/jpeg_slice, 326 labels/class") == \
        "4,000 train / 1,000 test images of .../jpeg_slice, 326 labels/class"
    assert published_text("from https://www.cs.toronto.edu/~kriz/cifar.html, 1.96 × std") == \
        "from https://www.cs.toronto.edu/~kriz/cifar.html, 1.96 × std"
    row = dataclasses.replace(_row("dcgan (/root/runs/x/gan/chosen.pt)", 50.0), notes="see /tmp/x/dedup.json")
    _, md = write_results("cifar10_probe", [row], tmp_path)
    written = (tmp_path / "cifar10_probe.csv").read_text() + md.read_text()
    assert "/root/" not in written and "/tmp/" not in written and "dcgan (.../chosen.pt)" in written


def test_no_committed_table_or_report_holds_an_absolute_path():
    import re

    from benchmarks.protocol.row import REPO

    pattern = re.compile(r"(?<![\w.:/~])/(?:work|root|home|tmp|Users|mnt|data)/")
    for path in sorted((REPO / "results").glob("*.csv")) + sorted((REPO / "results").glob("*.md")):
        hits = [line[:120] for line in path.read_text().splitlines() if pattern.search(line)]
        assert not hits, (path.name, hits)
