"""`reproduce` end to end on the smoke preset: a plan, every row, REPORT.md with charts, and
a second run that skips what the first produced."""
from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from baselines.kmeans import KMeansExtractor
from benchmarks import reproduce
from benchmarks.protocol.presets import PRESETS
from benchmarks.protocol.results import RESULTS_DIR
from benchmarks.throughput.timing import dcgan_flops

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_reproduce_smoke_writes_every_row_and_a_report_then_resumes(tiny_folder, tmp_path, shared_data):
    results = tmp_path / "results"
    argv = ["--preset", "smoke", "--data", str(tiny_folder), "--results-dir", str(results), "--out",
            str(tmp_path / "runs"), "--newmu", str(shared_data / "newmu_svhn_dcgan"), "--budget-min", "30",
            "--no-download", "--extractor", "dcgan,newmu-svhn,pixels,supervised"]
    repo_tables = {p: p.stat().st_mtime for p in RESULTS_DIR.glob("*.csv")}
    first = reproduce.main(argv)
    assert not any(line.startswith("FAILED") for line in first), first
    ran = [line for line in first if line.startswith("done")]
    assert len(ran) == 9, first  # per table: our DCGAN, the authors' D, pixels + SVM and KNN; the supervised control
    c10 = pd.read_csv(results / "cifar10_probe.csv")
    ours = set(c10[c10.source == "ours"]["extractor"])
    assert ours == {"dcgan (svhn32)", "newmu-svhn (authors' release)", "pixels"}
    s1k = pd.read_csv(results / "svhn_1000.csv")
    assert "supervised CNN (svhn32)" in set(s1k["extractor"]) and set(s1k[s1k.source == "ours"]["dataset"]) == {
        "CIFAR-10 (image folder)"}
    text = (results / "REPORT.md").read_text()
    records = sorted(p.name for p in (results / "gan_runs").iterdir())  # each GAN trained here, beside its rows
    assert [r.split("-")[:2] for r in records] == [["cifar10_probe", "svhn32"], ["svhn_1000", "svhn32"]], records
    for chart in ("report/cifar10_probe.png", "report/svhn_1000.png", *(f"report/gan_run_{r}.png" for r in records),
                  *(f"gan_runs/{r}/samples.png" for r in records)):
        assert f"]({chart})" in text and (results / chart).read_bytes()[:8] == PNG, chart
    assert "No training record committed" not in text
    assert "Table 1" in text and "Table 2" in text and "How this was obtained" in text
    assert "python -m benchmarks.cifar10_probe --preset smoke" in text
    assert {p: p.stat().st_mtime for p in RESULTS_DIR.glob("*.csv")} == repo_tables  # the repo's tables untouched

    n_runs = len(mlflow.search_runs(search_all_experiments=True))
    second = reproduce.main(argv)
    assert all(line.startswith("skip (already in the results") for line in second), second
    assert len(mlflow.search_runs(search_all_experiments=True)) == n_runs  # nothing recomputed


def test_the_plan_skips_what_does_not_fit_and_says_so(tiny_folder, tmp_path):
    lines = reproduce.main(["--preset", "paper", "--data", str(tiny_folder), "--results-dir", str(tmp_path / "r"),
                            "--budget-min", "0.001", "--extractor", "dcgan", "--device", "cpu"])
    assert lines and all("over the budget left" in line for line in lines)
    assert (tmp_path / "r" / "REPORT.md").exists()


def test_report_renders_from_the_committed_results_alone(tmp_path):
    import shutil

    from benchmarks.report.render import write_report

    for p in RESULTS_DIR.glob("*.csv"):
        shutil.copy(p, tmp_path / p.name)
    text = Path(write_report(tmp_path)).read_text()
    assert "Table 1" in text and (tmp_path / "report" / "cifar10_probe.png").exists()


def _args(**kw):
    return reproduce.build_parser().parse_args(["--data", "x", *sum(([f"--{k.replace('_', '-')}", v]
                                                                      for k, v in kw.items()), [])])


def test_a_row_is_done_only_on_the_same_gan_data():
    """A D trained on Tiny-ImageNet and one trained on CIFAR-10's own images carry the same label at the
    same commit: the second run must not skip its row because the first one's exists."""
    job = reproduce.Job(reproduce.CIFAR10_PROBE, "dcgan")
    existing = pd.DataFrame([dict(protocol="cifar10_probe", extractor="dcgan (imagenet32)", classifier="L2-SVM",
                                  preset="paper", commit="c", data_sha256="s", dataset="CIFAR-10 (JPEG copy)",
                                  gan_data="Tiny-ImageNet-200 (32x32 JPEG) train")])

    def done(args, foreign):
        return reproduce._done(job, "dcgan (imagenet32)", existing, "c", "paper", "s",
                               reproduce._same_gan_data(job, args, foreign))

    assert done(_args(gan_data="tiny.tar.xz"), "Tiny-ImageNet-200 (32x32 JPEG)")
    assert not done(_args(), None)  # the protocol's own training images: another row
    existing.loc[0, "gan_data"] = "CIFAR-10 (JPEG copy) train"
    assert done(_args(), None) and done(_args(gan_data="train"), None)
    assert not done(_args(gan_data="tiny.tar.xz"), "Tiny-ImageNet-200 (32x32 JPEG)")
    existing.loc[0, "gan_data"] = "-"  # pixels, random-init D: nothing learned from --gan-data
    assert done(_args(gan_data="tiny.tar.xz"), "Tiny-ImageNet-200 (32x32 JPEG)")


def test_extractor_dcgan_plans_our_ds_only_and_arch_reaches_every_d_row(tmp_path):
    newmu = tmp_path / "newmu"
    newmu.mkdir()
    args = _args(extractor="dcgan,random-d", newmu=str(newmu), arch="imagenet32", preset="paper")
    jobs = reproduce.plan(args)
    assert [(j.spec.name, j.extractor, j.discriminator) for j in jobs] == [
        (s, e, None) for s in ("cifar10_probe", "svhn_1000") for e in ("dcgan", "random-d")]
    assert all(reproduce._options(j, args).extractors.arch == "imagenet32" for j in jobs)
    assert [j.discriminator for j in reproduce.plan(_args(extractor="newmu-svhn", newmu=str(newmu),
                                                          preset="paper"))] == [f"newmu-svhn:{newmu}"] * 2


def test_the_training_estimate_comes_from_this_cpus_rows_else_the_flop_count(tmp_path, monkeypatch):
    """No hand-typed rate: the cpu_step row for the trainer's setting on this CPU class, else the
    step's counted FLOPs at the device's measured GEMM rate."""
    import torch

    from benchmarks.protocol.results import write_results
    from benchmarks.protocol.row import ResultRow

    cpu = torch.device("cpu")
    row = dict(protocol="cpu_step", dataset="synthetic", extractor="imagenet32", preset="paper",
               metric="train_img_per_s", value=123.0, device="cpu", torch="x", commit="abc", dirty=False,
               date="2026-12-07", seed=0)
    write_results("cpu_step", [ResultRow(classifier="bf16, channels_last", **row),
                               ResultRow(classifier="fp32, channels_last", **row | {"value": 45.0})], tmp_path)
    assert reproduce.train_rate("imagenet32", cpu, bf16=True, cpu_step_dir=tmp_path)[0] == 123.0
    assert reproduce.train_rate("imagenet32", cpu, bf16=False, cpu_step_dir=tmp_path)[0] == 45.0
    monkeypatch.setattr(reproduce, "device_limits", lambda d: {"limit_gemm_fp32_tflops": 0.5})
    rate, how = reproduce.train_rate("svhn32", cpu, bf16=False, cpu_step_dir=tmp_path)  # no svhn32 row there
    assert rate == 0.5e12 / dcgan_flops("svhn32").train_step and "FLOPs" in how


def test_a_row_estimate_comes_from_an_earlier_row_of_the_extractor_scaled_by_its_training_images(monkeypatch):
    import torch

    from benchmarks.protocol.row import COLUMNS
    from dcgan_ref.runtime.tracking import device_name

    cpu = torch.device("cpu")
    job = reproduce.Job(reproduce.CIFAR10_PROBE, "kmeans-1600")

    def rows(*specs):
        return pd.DataFrame([{c: None for c in COLUMNS} | {
            "source": "ours", "protocol": "cifar10_probe", "extractor": "kmeans-1600", "preset": preset,
            "wall_s": wall, "n_train": n, "device": device} for preset, wall, n, device in specs])

    other_cpu = "cpu: Another CPU (2 cores, AVX2)"
    quick = rows(("quick", 100.0, 10_000, other_cpu))
    seconds, how = reproduce._estimate(job, "kmeans-1600", quick, cpu, 50_000, "paper")
    assert seconds == 500.0 and "quick row (10,000 training images), scaled to 50,000" in how
    both = rows(("quick", 100.0, 10_000, other_cpu), ("paper", 700.0, 50_000, device_name(cpu)),
                ("paper", 900.0, 50_000, other_cpu))
    assert reproduce._estimate(job, "kmeans-1600", both, cpu, 50_000, "paper") == (
        700.0, "an earlier row of the same kind on this CPU")  # this CPU model's row before a later one elsewhere
    # No row on this kind of device: the row's FLOPs at the device's GEMM rate.
    gpu_only = rows(("paper", 10.0, 50_000, "NVIDIA H100"))
    monkeypatch.setattr(reproduce, "device_limits", lambda d: {"limit_gemm_fp32_tflops": 1.0})
    kmeans = KMeansExtractor(k=1600)
    seconds, how = reproduce._estimate(job, "kmeans-1600", gpu_only, cpu, 50_000, "paper", kmeans)
    grid = len(PRESETS["paper"].C_grid)
    fits = (grid + 1) * 50_000 + 10 * (5 + 1) * grid * 4_000  # all labels; 10 draws x (5 folds + the fit)
    svm = 4 * 6_400 * 10 * reproduce.SOLVER_PASSES * fits
    assert seconds == pytest.approx((kmeans.flops_per_image() * 60_000 + svm) / 1e12)
    assert "FLOP floor" in how and "1.00 TFLOP/s" in how


def test_extraction_flops_match_the_throughput_counter_and_the_kmeans_encoding():
    from dcgan_ref.extractor import DCGANExtractor

    d = DCGANExtractor("imagenet32", train_cfg=None, label="random-init D")
    assert d.flops_per_image() == dcgan_flops("imagenet32").extract  # one count, two callers
    # 729 patches of 6x6x3 = 108 values: whitened (108 x 108), then against 1,600 centroids.
    assert KMeansExtractor(k=1600).flops_per_image() == 2 * 729 * 108 * (108 + 1600)
