"""Bad input and faults, as a new user meets them: one line, exit 2, in seconds, before any
data is read where that is possible; nothing left looking successful."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

from benchmarks import cifar10_probe, svhn_1000
from benchmarks.protocol import runner as protocol
from benchmarks.protocol.store import Table
from dcgan_ref.runtime import checkpoint, hardware
from dcgan_ref.runtime.errors import UserError, run_cli
from dcgan_ref.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]


def _exit(main, argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture
def no_data_reads(monkeypatch):
    monkeypatch.setattr(protocol, "load_data", lambda *a, **k: pytest.fail("data was read"))


def _smoke(data, tmp_path, *extra):
    return ["--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "runs"), *extra]


# ----------------------------------------------------------------------------- the tracking store
@pytest.mark.parametrize("uri, message", [
    ("http://127.0.0.1:9", "MLflow tracking server http://127.0.0.1:9 is unreachable"),
    ("sqlite:////nonexistent-folder/mlflow.db", "the folder /nonexistent-folder does not exist"),
    ("sqlite:////proc/mlflow.db", "/proc is not writable"),
    ("/tmp/some-folder", "is a plain folder, which MLflow >= 3.13 no longer accepts"),
])
def test_an_unusable_tracking_store_fails_in_seconds(uri, message, monkeypatch, tiny_folder, tmp_path, capsys,
                                                      no_data_reads):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    t0 = time.monotonic()
    code, err = _exit(cifar10_probe.main, _smoke(tiny_folder, tmp_path), capsys)
    assert code == 2 and message in err and "sqlite:///" in err and time.monotonic() - t0 < 15
    assert len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- results
def test_an_unwritable_results_folder_fails_before_computing(tiny_folder, tmp_path, capsys, no_data_reads):
    code, err = _exit(cifar10_probe.main, _smoke(tiny_folder, tmp_path, "--preset", "quick", "--results-dir",
                                                 "/proc/results"), capsys)
    assert code == 2 and "/proc is not writable" in err and "--results-dir" in err


def test_a_failed_table_write_keeps_the_rows_and_marks_the_runs_failed(tiny_folder, tmp_path, capsys, monkeypatch):
    import dataclasses

    from benchmarks.protocol.presets import PRESETS

    monkeypatch.setitem(PRESETS, "smoke", dataclasses.replace(PRESETS["smoke"], writes_results=True))
    monkeypatch.setattr(Table, "write", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    code, err = _exit(cifar10_probe.main, _smoke(tiny_folder, tmp_path, "--extractor", "pixels", "--results-dir",
                                                 str(tmp_path / "results")), capsys)
    assert code == 2 and "disk full" in err and "unwritten-rows-" in err
    saved = next((tmp_path / "runs" / "cifar10_probe").glob("unwritten-rows-*.csv"))
    assert "pixels" in saved.read_text()
    runs = mlflow.search_runs(experiment_names=["cifar10_probe"])
    assert set(runs[runs["tags.mlflow.parentRunId"].isna()]["status"]) == {"FAILED"}


# ----------------------------------------------------------------------------- data paths, devices, Ds
def test_a_mistyped_data_path_is_an_error_not_a_download_target(tmp_path, capsys):
    wrong = tmp_path / "cifar10_jpeg.tar.xz"  # a file name that does not exist
    code, err = _exit(cifar10_probe.main, ["--preset", "smoke", "--data", str(wrong)], capsys)
    assert code == 2 and f"{wrong} does not exist" in err and not wrong.exists()
    assert err.count("does not exist") == 1  # once, not once per split


@pytest.mark.parametrize("device, message", [
    ("bogus", "--device 'bogus' is not a device"),
    pytest.param("cuda", "no usable CUDA GPU", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
])
def test_a_bad_device_is_a_usage_error(device, message, tiny_folder, tmp_path, capsys, no_data_reads):
    code, err = _exit(cifar10_probe.main, _smoke(tiny_folder, tmp_path, "--device", device), capsys)
    assert code == 2 and message in err


def _bad_discriminators(tmp_path: Path) -> dict[str, tuple[str, str]]:
    good = tmp_path / "good.pt"
    train(TrainConfig(arch="svhn32", steps=1, batch_size=8), torch.zeros(8, 3, 32, 32, dtype=torch.uint8).add_(7),
          tmp_path / "t", device=torch.device("cpu"), log=lambda s: None)
    good.write_bytes((tmp_path / "t" / "last.pt").read_bytes())
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:1000])
    checkpoint.save_atomic({"d": {}}, tmp_path / "no-config.pt")
    state = checkpoint.load(good)
    state["d"]["convs.0.0.weight"] = torch.zeros(5, 3, 5, 5)
    checkpoint.save_atomic(state, tmp_path / "wrong-shape.pt")
    (tmp_path / "empty").mkdir()
    return {
        "garbage": (str(tmp_path / "garbage.pt"), "is unreadable"),
        "truncated": (str(tmp_path / "truncated.pt"), "is unreadable"),
        "config-less": (str(tmp_path / "no-config.pt"), "not a checkpoint written by dcgan_ref.train"),
        "wrong-shape": (str(tmp_path / "wrong-shape.pt"), "do not fit a svhn32 D"),
        "empty newmu dir": (f"newmu-svhn:{tmp_path / 'empty'}", "200_discrim_params.jl_01.npy"),
        "missing file": (str(tmp_path / "absent.pt"), "no checkpoint at"),
    }


def test_bad_discriminators_are_one_line_errors_before_data(tiny_folder, tmp_path, capsys, no_data_reads):
    for case, (spec, message) in _bad_discriminators(tmp_path).items():
        code, err = _exit(cifar10_probe.main, _smoke(tiny_folder, tmp_path, "--discriminator", spec), capsys)
        assert code == 2 and message in err and "Traceback" not in err, (case, err)
        assert len(err.strip().splitlines()) == 1, (case, err)


def test_the_authors_discriminator_loads_without_the_generator_files(shared_data, tmp_path):
    from dcgan_ref.pretrained import load_discriminator

    only_d = tmp_path / "d"
    only_d.mkdir()
    for f in (shared_data / "newmu_svhn_dcgan").glob("*discrim*"):
        (only_d / f.name).write_bytes(f.read_bytes())
    assert load_discriminator(f"newmu-svhn:{only_d}").arch == "svhn32"


# ----------------------------------------------------------------------------- resume
def test_resume_refuses_other_data_naming_both(tmp_path):
    images = torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(arch="svhn32", steps=4, batch_size=16)
    train(TrainConfig(arch="svhn32", steps=2, batch_size=16), images, tmp_path, device=torch.device("cpu"),
          log=lambda s: None)
    with pytest.raises(UserError, match=r"trained on other data .*'n_images': 96.*'n_images': 64"):
        train(cfg, images[:64], tmp_path, device=torch.device("cpu"), resume=True, log=lambda s: None)


def test_resume_from_a_truncated_checkpoint_is_a_one_line_error(tmp_path):
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    train(TrainConfig(arch="svhn32", steps=1, batch_size=16), images, tmp_path, device=torch.device("cpu"),
          log=lambda s: None)
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    with pytest.raises(UserError, match="--resume: checkpoint .* is unreadable"):
        train(TrainConfig(arch="svhn32", steps=2, batch_size=16), images, tmp_path, device=torch.device("cpu"),
              resume=True, log=lambda s: None)


# ----------------------------------------------------------------------------- signals
@pytest.mark.slow
def test_sigterm_ends_the_run_failed_and_keeps_the_checkpoint(tiny_folder, tmp_path):
    db = tmp_path / "term.db"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{db}", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "dcgan_ref.train", "--data", str(tiny_folder), "--arch", "svhn32",
                             "--steps", "100000", "--batch-size", "16", "--log-every", "1", "--ckpt-every", "2",
                             "--sample-every", "100000", "--out", str(out)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # wait until training is under way and a checkpoint exists
            if line.startswith("step 3/"):
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and "stopped by signal SIGTERM" in err, err
    assert checkpoint.load(out / "last.pt")["step"] >= 2
    runs = mlflow.MlflowClient(f"sqlite:///{db}").search_runs(
        [mlflow.MlflowClient(f"sqlite:///{db}").get_experiment_by_name("dcgan_train").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_a_missing_svhn_split_is_named_once_per_file(tmp_path, capsys):
    code, err = _exit(svhn_1000.main, ["--data", str(tmp_path / "svhn"), "--no-download", "--preset", "smoke"], capsys)
    assert code == 2 and err.count("train_32x32.mat") >= 1 and "test_32x32.mat" in err


def test_train_module_uses_the_shared_device_check():
    with pytest.raises(UserError, match="not a device"):
        hardware.pick_device("bogus")
