"""The long GAN run: scores along the way, the stopping rule, resume from the run folder,
a missing checkpoint, one trainer per folder, and the status command."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from benchmarks import gan_run
from benchmarks.report import render as report
from dcgan_ref.pretrained import load_discriminator
from dcgan_ref.runtime import checkpoint
from dcgan_ref.runtime.errors import UserError


def _start(tiny_folder, run_dir, *extra):
    # svhn32 at batch 32 on the 600 synthetic images: 4 steps = 128 images, scored every 64
    gan_run.main(["start", "--run-dir", str(run_dir), "--gan-data", "train", "--data", str(tiny_folder),
                  "--arch", "svhn32", "--preset", "smoke", "--batch-size", "32", "--budget-images", "128",
                  "--eval-every", "64", "--bn-images", "64", "--log-every", "1", "--precision", "fp32", *extra])


def test_plateau_rule_compares_scores_the_given_images_apart():
    curve = [{"images_seen": s, "val_score": v} for s, v in ((1, 50.0), (2, 55.0), (3, 55.4), (4, 55.2))]
    assert gan_run.plateaued(curve[:3], apart=2, points=0.3) is None  # 55.4 vs 50.0
    assert gan_run.plateaued(curve, apart=2, points=0.3) == (2, 4)    # 55.2 vs 55.0
    assert gan_run.plateaued(curve, apart=1, points=0.3) == (3, 4)    # 55.4 vs 55.0 is 0.4: not yet
    assert gan_run.plateaued(curve, apart=2, points=0.1) is None
    # this run's own curve: scores at whole steps of 128 images, 124,928 apart, not 125,000
    real = [{"images_seen": 124_928 * k, "val_score": v} for k, v in enumerate((57.80, 59.00, 60.02, 61.20, 60.14), 1)]
    assert gan_run.plateaued(real, apart=250_000, points=0.3) == (374_784, 624_640)  # 60.14 vs 60.02


def test_scores_snapshots_and_the_chosen_d_with_what_a_row_needs(tiny_folder, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    _start(tiny_folder, run)
    curve = gan_run.RunFiles(run).read_curve()
    assert [r["images_seen"] for r in curve] == [64, 128] and all(0 <= r["val_score"] <= 100 for r in curve)
    best = max(curve, key=lambda r: r["val_score"])
    chosen = checkpoint.load(run / "chosen.pt")
    assert chosen["step"] == best["step"] and chosen["trained"]["images_seen"] == best["images_seen"]
    assert chosen["trained"]["precision"] == "fp32" and "cores" in chosen["trained"]["cpu"]
    pre = load_discriminator(str(run / "chosen.pt"))
    assert pre.arch == "svhn32" and f"{best['images_seen']:,} images" in pre.label
    assert str(tmp_path) not in pre.label  # no machine path in a table label
    gan_run.main(["status", "--run-dir", str(run)])
    out = capsys.readouterr().out
    assert "done (budget spent)" in out and "128 of 128 images seen" in out and "validation" in out

    # published beside the tables, the report draws the run from those files alone (no MLflow store)
    results = tmp_path / "results"
    gan_run.main(["publish", "--run-dir", str(run), "--results-dir", str(results)])
    record = results / "gan_runs" / "run"
    published = pd.read_csv(record / "curve.csv")
    assert published["val_score"].tolist() == [r["val_score"] for r in curve]
    losses = pd.read_csv(record / "losses.csv")
    assert losses["step"].tolist() == [1, 2, 3, 4] and losses["images_seen"].tolist() == [32, 64, 96, 128]
    assert (record / "samples.png").exists() and str(tmp_path) not in (record / "run.json").read_text()
    assert "cifar10_probe validation split" in json.loads((record / "run.json").read_text())["scored_by"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'another-machine.db'}")  # a clone's store
    text = report.write_report(results).read_text()
    assert "### Run `run`: svhn32 GAN on" in text and f"Chosen length: {best['images_seen']:,} images" in text
    assert (results / "report" / "gan_run_run.png").exists() and "gan_runs/run/samples.png" in text


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_folder, tmp_path, monkeypatch):
    _start(tiny_folder, tmp_path / "whole")
    real_train = gan_run.train

    def dies_after_first_score(*a, on_eval, **kw):
        def once(step, g, d):
            on_eval(step, g, d)
            raise KeyboardInterrupt
        return real_train(*a, on_eval=once, **kw)

    monkeypatch.setattr(gan_run, "train", dies_after_first_score)
    with pytest.raises(KeyboardInterrupt):
        _start(tiny_folder, tmp_path / "cut")
    assert "stopped" in gan_run.RunFiles(tmp_path / "cut").read_status()["state"]
    monkeypatch.setattr(gan_run, "train", real_train)
    _start(tiny_folder, tmp_path / "cut")  # the same command resumes
    a, b = (checkpoint.load(tmp_path / r / "last.pt") for r in ("whole", "cut"))
    assert a["step"] == b["step"] == 4
    for k in a["d"]:
        assert torch.allclose(a["d"][k].float(), b["d"][k].float(), atol=1e-6), k
    scores = [[(r["images_seen"], r["val_score"]) for r in gan_run.RunFiles(tmp_path / run).read_curve()]
              for run in ("cut", "whole")]
    assert scores[0] == scores[1] and len(scores[0]) == 2


def test_a_missing_checkpoint_is_said_in_one_line_and_training_starts_again(tiny_folder, tmp_path, capsys):
    run = tmp_path / "run"
    _start(tiny_folder, run)
    (run / "last.pt").unlink()
    capsys.readouterr()
    _start(tiny_folder, run)
    out = capsys.readouterr().out
    assert f"no checkpoint at {run / 'last.pt'}: starting from step 0" in out
    assert len(gan_run.RunFiles(run).read_curve()) == 2 and list(run.glob("curve.stale-*.csv"))


def test_a_finished_run_says_so_and_trains_nothing_until_its_budget_is_raised(tiny_folder, tmp_path, capsys):
    run = tmp_path / "run"
    _start(tiny_folder, run)
    before = (run / "last.pt").stat().st_mtime_ns, gan_run.RunFiles(run).read_curve()
    capsys.readouterr()
    _start(tiny_folder, run)  # the same command again
    out = capsys.readouterr().out
    assert "is done (budget spent) at 128 images; nothing to train" in out and "--budget-images above 128" in out
    assert ((run / "last.pt").stat().st_mtime_ns, gan_run.RunFiles(run).read_curve()) == before
    _start(tiny_folder, run, "--budget-images", "192")  # a larger budget trains on from the checkpoint
    assert checkpoint.load(run / "last.pt")["step"] == 6
    assert [r["images_seen"] for r in gan_run.RunFiles(run).read_curve()] == [64, 128, 192]


def test_a_d_for_the_1000_label_protocol_never_sees_its_validation_split(tiny_folder, tmp_path, monkeypatch):
    seen = {}
    real_load, real_train = gan_run.load_data, gan_run.train
    monkeypatch.setattr(gan_run, "load_data", lambda run: seen.setdefault("data", real_load(run)))
    monkeypatch.setattr(gan_run, "train", lambda cfg, images, *a, **kw: real_train(
        cfg, seen.setdefault("gan", images), *a, **kw))
    _start(tiny_folder, tmp_path / "svhn", "--protocol", "svhn_1000", "--gan-data", "train-minus-val")
    data = seen["data"]
    val = {bytes(im.numpy()) for im in data.train.images[data.val_rows]}
    assert len(val) == len(data.train) - data.n_fit == 100  # the smoke preset's split
    assert not val & {bytes(im.numpy()) for im in seen["gan"]}
    status = gan_run.RunFiles(tmp_path / "svhn").read_status()
    assert status["gan_data"].endswith("train minus validation") and status["protocol"] == "svhn_1000"
    trained = checkpoint.load(tmp_path / "svhn" / "chosen.pt")["trained"]
    assert trained["scored_on"] == {"protocol": "svhn_1000", "seed": 0}
    # its published curve says whose split and which label budget scored it (not the CIFAR-10 probe's)
    gan_run.main(["publish", "--run-dir", str(tmp_path / "svhn"), "--results-dir", str(tmp_path / "results")])
    scored_by = json.loads((tmp_path / "results" / "gan_runs" / "svhn" / "run.json").read_text())["scored_by"]
    assert "svhn_1000 validation split (100 images)" in scored_by and "400" not in scored_by


def test_the_1000_label_protocol_refuses_a_d_that_saw_its_validation_split(tiny_folder, tmp_path):
    from benchmarks.protocol.runner import SVHN_1000, run_protocol

    _start(tiny_folder, tmp_path / "all-train")
    _start(tiny_folder, tmp_path / "held-out", "--protocol", "svhn_1000", "--gan-data", "train-minus-val")

    def svhn_1000(run, *extra):
        return run_protocol(SVHN_1000, ["--preset", "smoke", "--data", str(tiny_folder), "--out", str(tmp_path / "o"),
                                        "--no-results", "--discriminator", str(tmp_path / run / "chosen.pt"), *extra])

    rows = svhn_1000("held-out")
    assert rows and rows[0].gan_data == "CIFAR-10 (image folder) train minus validation"
    with pytest.raises(UserError, match="which holds svhn_1000's validation split; train one that never saw it"):
        svhn_1000("all-train")
    with pytest.raises(UserError, match="not of {'protocol': 'svhn_1000', 'seed': 1}"):
        svhn_1000("held-out", "--seed", "1")  # another seed holds out another split


def test_one_trainer_per_run_folder(tmp_path):
    with gan_run.exclusive(tmp_path):
        assert gan_run.locked(tmp_path)
        with pytest.raises(UserError, match="being trained by another process"):
            with gan_run.exclusive(tmp_path):
                pass
    assert not gan_run.locked(tmp_path)


def test_auto_precision_is_fp32_but_a_resumed_bf16_run_keeps_its_own(tmp_path, monkeypatch):
    """bf16 autocast lost accuracy in its A/B, so a new run trains in fp32; a run trained in bf16
    resumes in bf16 (its checkpoint refuses a changed config), and bf16 is refused where emulated."""
    from dcgan_ref.runtime import hardware

    monkeypatch.setattr(hardware, "native_bf16", lambda device: True)
    files = gan_run.RunFiles(tmp_path)
    auto = gan_run.build_parser().parse_args(["start", "--gan-data", "train", "--data", "x"])
    assert auto.precision == "auto" and gan_run._precision(auto, files) is False
    files.write_status({"precision": "bf16 autocast"})
    assert gan_run._precision(auto, files) is False  # a status without a checkpoint resumes nothing
    files.checkpoint.write_bytes(b"")
    assert gan_run._precision(auto, files) is True
    auto.precision = "fp32"
    assert gan_run._precision(auto, files) is False
    monkeypatch.setattr(hardware, "native_bf16", lambda device: False)
    auto.precision = "bf16"
    with pytest.raises(UserError, match="no native bf16"):
        gan_run._precision(auto, files)
