"""End-to-end protocol runs (smoke preset) and their failure modes."""
import dataclasses
import time

import mlflow
import numpy as np
import pytest
import scipy.io
import torch

from benchmarks import cifar10_probe, svhn_1000
from benchmarks.protocol.presets import PRESETS
from benchmarks.protocol.runner import CIFAR10_PROBE, SVHN_1000, run_protocol
from dcgan_ref.runtime.errors import run_cli


def _smoke(data, tmp_path, *extra):
    return ["--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), *extra]


def test_cifar10_probe_smoke_runs_every_extractor(tiny_folder, tmp_path):
    rows = [r.as_dict() for r in run_protocol(CIFAR10_PROBE, _smoke(tiny_folder, tmp_path, "--extractor", "all"))]
    got = {(r["extractor"], r["classifier"], r["metric"]): r for r in rows}
    dims = {r["extractor"]: r["feature_dim"] for r in rows}
    assert dims == {"dcgan (svhn32)": 7168, "random-init D (svhn32)": 7168, "pixels": 3072, "kmeans-16": 64}
    assert ("pixels", "KNN", "test_accuracy_10pc") in got  # smoke: 10 labels per class, named so
    for r in rows:
        assert r["preset"] == "smoke" and 0 <= r["value"] <= 100
        assert r["n_test"] == 200 and 0 < r["peak_rss_gb"] < 64 and "cpu: " in r["device"] and "cores" in r["device"]
    # each row says what its classifier trained on: the draws' 10 x 10 labels, the refit's whole train split
    assert got[("pixels", "L2-SVM", "test_accuracy_10pc")]["n_train"] == 100
    assert got[("pixels", "L2-SVM", "test_accuracy")]["n_train"] == 400
    assert got[("pixels", "L2-SVM", "test_accuracy")]["value"] > 50  # the synthetic classes are easy
    assert (tmp_path / "results" / "cifar10_probe.csv").exists()  # smoke writes only where --results-dir says
    runs = mlflow.search_runs(experiment_names=["cifar10_probe"])
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parents) == 4 and set(parents["status"]) == {"FINISHED"}  # one run per extractor: pixels fit once
    assert parents["tags.commit"].str.len().min() > 0 and parents["params.data_sha256"].str.len().min() == 64
    draws = runs[runs["tags.mlflow.runName"].str.startswith("label draw")]
    assert len(draws) == 5 * PRESETS["smoke"].n_draws  # five (extractor, classifier) rows


def test_a_crash_marks_the_run_failed_and_writes_no_table(tiny_folder, tmp_path, monkeypatch):
    from benchmarks.protocol import evaluation

    monkeypatch.setitem(PRESETS, "quick", dataclasses.replace(PRESETS["smoke"], name="quick", writes_results=True))
    monkeypatch.setattr(evaluation, "label_draws_eval", lambda *a, **k: 1 / 0)
    argv = _smoke(tiny_folder, tmp_path, "--extractor", "pixels")
    argv[1] = "quick"
    with pytest.raises(ZeroDivisionError):
        run_protocol(CIFAR10_PROBE, argv)
    runs = mlflow.search_runs(experiment_names=["cifar10_probe"])
    assert len(runs) == 1 and set(runs["status"]) == {"FAILED"}  # nothing is recorded before it is computed
    assert not (tmp_path / "results").exists()


def test_quick_rows_are_written_and_labelled(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "quick", dataclasses.replace(PRESETS["smoke"], name="quick", writes_results=True))
    argv = _smoke(tiny_folder, tmp_path, "--extractor", "pixels")
    argv[1] = "quick"
    run_protocol(CIFAR10_PROBE, argv)
    md = (tmp_path / "results" / "cifar10_probe.md").read_text()
    ours = [line for line in md.splitlines() if line.startswith("| pixels + L2-SVM")]
    assert len(ours) == 2 and all("| quick" in line for line in ours)  # all labels and 400/class


def test_missing_cifar10_fails_fast_naming_the_files(tmp_path, capsys):
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cifar10_probe.main, ["--data", str(tmp_path / "cifar"), "--no-download", "--preset", "smoke"])
    assert exit_info.value.code == 2 and time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and str(tmp_path / "cifar") in err


def test_missing_svhn_fails_fast_naming_the_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(svhn_1000.main, ["--data", str(tmp_path / "svhn"), "--no-download", "--preset", "smoke"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "train_32x32.mat" in err and "test_32x32.mat" in err


def test_unknown_extractor_is_a_usage_error(tiny_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cifar10_probe.main, _smoke(tiny_folder, tmp_path, "--extractor", "resnet"))
    assert exit_info.value.code == 2 and "unknown extractor 'resnet'" in capsys.readouterr().err


def _write_svhn(folder, n_train=700, n_test=200, seed=0):
    """Synthetic SVHN in the official layout: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        y = np.tile(np.arange(1, 11), n // 10 + 1)[:n]
        colours = rng.integers(0, 256, size=(10, 3))
        x = np.clip(colours[y - 1][:, None, None, :] + rng.normal(0, 30, size=(n, 32, 32, 3)), 0, 255)
        scipy.io.savemat(folder / f"{name}_32x32.mat", {"X": x.astype(np.uint8).transpose(1, 2, 3, 0),
                                                        "y": y.reshape(-1, 1).astype(np.uint8)})
    return folder


def test_svhn_1000_smoke_with_supervised_control(tmp_path):
    data = _write_svhn(tmp_path / "svhn")
    rows = [r.as_dict() for r in run_protocol(SVHN_1000, _smoke(data, tmp_path, "--extractor", "dcgan,supervised",
                                                                 "--trials", "1"))]
    metrics = {(r["extractor"], r["metric"]) for r in rows}
    # smoke draws 10 labels per class, 100 in all: the metrics say 100, not the paper's 1,000
    assert metrics == {("dcgan (svhn32)", "test_error_100"), ("supervised CNN (svhn32)", "val_error_100"),
                       ("supervised CNN (svhn32)", "test_error_100")}
    dcgan = next(r for r in rows if r["extractor"] == "dcgan (svhn32)")
    assert dcgan["dataset"] == "SVHN" and dcgan["n_draws"] == 2 and dcgan["gan_data"] == "SVHN train minus validation"


def test_the_authors_discriminator_runs_in_the_cifar10_probe(tiny_folder, tmp_path, shared_data):
    rows = run_protocol(CIFAR10_PROBE, _smoke(tiny_folder, tmp_path, "--discriminator",
                                              f"newmu-svhn:{shared_data / 'newmu_svhn_dcgan'}"))
    assert {r.extractor for r in rows} == {"newmu-svhn (authors' release)"}
    assert {r.feature_dim for r in rows} == {7168} and {r.gan_data for r in rows} == {"-"}


def test_precision_is_the_presets_unless_forced_and_bf16_is_refused_where_it_is_emulated(tiny_folder, monkeypatch):
    from benchmarks.protocol.context import parse_run
    from dcgan_ref.runtime import hardware
    from dcgan_ref.runtime.errors import UserError

    base = ["--data", str(tiny_folder), "--device", "cpu", "--no-download"]
    monkeypatch.setattr(hardware, "native_bf16", lambda device: True)
    assert parse_run(CIFAR10_PROBE, [*base, "--preset", "quick"]).preset.gan.recipe.bf16 is False  # quick: fp32
    assert parse_run(CIFAR10_PROBE, [*base, "--preset", "paper"]).preset.gan.recipe.bf16 is False  # paper: fp32 too
    assert parse_run(CIFAR10_PROBE, [*base, "--preset", "quick", "--precision", "bf16"]).preset.gan.recipe.bf16 is True
    assert parse_run(CIFAR10_PROBE, [*base, "--preset", "paper", "--precision", "fp32"]).preset.gan.recipe.bf16 is False
    monkeypatch.setattr(hardware, "native_bf16", lambda device: False)
    with pytest.raises(UserError, match="no native bf16 kernels"):
        parse_run(CIFAR10_PROBE, [*base, "--preset", "quick", "--precision", "bf16"])


def test_a_rows_precision_names_tf32_convolutions_on_cuda(monkeypatch):
    """On CUDA, cuDNN runs float32 convolutions in TF32 by default: a row must not call that fp32."""
    from dcgan_ref.runtime.hardware import training_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training_precision(True, cuda) == training_precision(True, cpu) == "bf16 autocast"
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert training_precision(False, cpu) == "fp32" and training_precision(False, cuda) == "fp32 (TF32 convolutions)"
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert training_precision(False, cuda) == "fp32"
