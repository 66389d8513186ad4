"""The report: GAN sections drawn from committed records alone (curve, losses, the samples at
the length chosen on validation), the gap chain and the cost table from the rows."""
from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from torchvision.utils import save_image

from benchmarks.protocol.gan_record import write_record
from benchmarks.report import render as report


def _record(results: Path, name: str, curve: list[dict], mlflow_run: str | None = None) -> Path:
    grid = results.parent / "samples_0000004.png"
    save_image(torch.zeros(3, 8, 8), grid)
    losses = [{"step": s, "images_seen": 64 * s, "loss_D": 1.0 / s, "loss_G": float(s)} for s in (1, 2, 3)]
    run = {"name": name, "state": "done", "gan_data": "CIFAR-10 train", "arch": "svhn32", "precision": "fp32",
           "cpu": "cpu: Some CPU", "images_seen": 512, "chosen_images_seen": 256, "chosen_val_score": 41.5,
           "samples": grid.name, "mlflow_run": mlflow_run, "scored_by": "one 1,000-label draw on validation"}
    return write_record(results / "gan_runs" / name, curve, losses, grid, run)


def test_gan_sections_come_from_committed_records_alone_and_rows_without_one_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(mlflow, "MlflowClient", lambda *a, **k: pytest.fail("the report opened an MLflow store"))
    results = tmp_path / "results"
    charts = results / "report"
    charts.mkdir(parents=True)
    curve = [{"images_seen": 256, "step": 4, "val_score": 41.5, "train_img_per_s": 90.0, "precision": "fp32",
              "commit": "abc", "date": "2026-12-07"}]
    _record(results, "svhn_1000-svhn32-abcdef12", curve, mlflow_run="abcdef1234")
    text = "".join(report.gan_run_sections(results, charts))
    assert "one 1,000-label draw on validation" in text and "Chosen length: 256 images (validation 41.50%)" in text
    assert (charts / "gan_run_svhn_1000-svhn32-abcdef12.png").read_bytes()[:4] == b"\x89PNG"
    assert "](gan_runs/svhn_1000-svhn32-abcdef12/samples.png)" in text

    trained = {"what": "dcgan (svhn32) + L2-SVM", "run": "abcdef1234", "preset": "paper", "gan_data": "CIFAR-10 train"}
    lost = {"what": "dcgan (imagenet32, run tiny-imagenet32, 499,712 images) + L2-SVM", "run": "f" * 32,
            "preset": "paper", "gan_data": "Tiny-ImageNet-200 train"}
    old = dict(trained, run="0" * 32, preset="quick")
    pretrained = {"what": "dcgan (runs/x/gan/chosen.pt) + L2-SVM", "run": "1" * 32, "preset": "paper", "gan_data": "-"}
    other_table = dict(lost, run="e" * 32)  # the same gan_run's D, scored by the other protocol
    line = "".join(report.unpublished_gan_rows([trained, lost, other_table, old, pretrained], results))
    assert "dcgan (imagenet32, run tiny-imagenet32, 499,712 images) + L2-SVM [paper]" in line
    assert "dcgan (svhn32) + L2-SVM [quick] (MLflow run 00000000)" in line
    assert line.count("tiny-imagenet32") == 1 and "abcdef12" not in line and "chosen.pt" not in line
    assert report.unpublished_gan_rows([trained, pretrained], results) == []

    # A fixed-length training (no validation scores) still shows its losses and last samples.
    _record(results, "cifar10_probe-svhn32-00000000", [], mlflow_run="0" * 32)
    text = "".join(report.gan_run_sections(results, charts))
    assert "No validation scores: a fixed length" in text and "Samples at the end of training" in text


def test_a_protocol_training_record_holds_its_scores_losses_and_chosen_samples(tmp_path):
    from benchmarks.protocol.gan_record import training_record

    out = tmp_path / "gan"
    out.mkdir()
    for step, colour in ((4, 0.0), (8, 1.0)):
        save_image(torch.full((3, 8, 8), colour), out / f"samples_{step:07d}.png")
    mlflow.set_experiment("record")
    with mlflow.start_run() as run:
        for step in (1, 2, 3):
            mlflow.log_metrics({"loss_D": 1.0 / step, "loss_G": float(step)}, step=step)
        training = {"arch": "svhn32", "batch_size": 16, "steps": 8, "n_images": 64, "precision": "fp32",
                    "img_per_s": 50.0, "scores": {4: 42.0, 8: 40.0}, "chosen_step": 4, "out_dir": out}
        name, curve, losses, samples, meta = training_record(
            training, name="cifar10_probe-svhn32-x", protocol="cifar10_probe", gan_data="CIFAR-10 train", scored_by="s",
            provenance={"commit": "0123456789abc", "device": "cpu: Some CPU"}, mlflow_run_id=run.info.run_id,
            command="nox -s cifar10_probe -- --preset paper")
    folder = write_record(tmp_path / "results" / "gan_runs" / name, curve, losses, samples, meta)
    assert pd.read_csv(folder / "curve.csv")["val_score"].tolist() == [42.0, 40.0]
    assert pd.read_csv(folder / "losses.csv")["loss_G"].tolist() == [1.0, 2.0, 3.0]
    from PIL import Image

    assert Image.open(folder / "samples.png").getpixel((0, 0)) == (0, 0, 0)  # the chosen step-4 grid, not step 8's
    meta = json.loads((folder / "run.json").read_text())
    assert meta["chosen_images_seen"] == 64 and meta["chosen_val_score"] == 42.0
    assert meta["mlflow_run"] == run.info.run_id
    assert not list((tmp_path / "results" / "gan_runs").glob("*.tmp"))


def test_the_gap_section_chains_measured_rows_and_names_what_is_missing(tmp_path):
    import dataclasses

    from benchmarks.protocol.results import write_results
    from benchmarks.protocol.row import ResultRow
    from benchmarks.report.gap import gap_section

    def row(extractor, gan_data, value, metric="test_accuracy"):
        return ResultRow(protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor=extractor,
                         classifier="L2-SVM", gan_data=gan_data, preset="paper", metric=metric, value=value,
                         std=None if metric == "test_accuracy" else 0.5, commit="abc1234", date="2026-12-07")

    assert "No imagenet32 D trained on ImageNet images" in "".join(gap_section(tmp_path))
    tiny = "dcgan (imagenet32, run tiny-imagenet32, 499,968 images)"
    rows = [row(tiny, "Tiny-ImageNet-200 (32x32 JPEG) train", 75.0), row(tiny, "Tiny-ImageNet-200 (32x32 JPEG) train",
                                                                         64.0, "test_accuracy_400pc"),
            row("dcgan (svhn32)", "CIFAR-10 (JPEG copy) train", 69.9), row("random-init D (imagenet32)", "-", 65.41),
            row("kmeans-1600", "CIFAR-10 (JPEG copy) train", 74.0)]
    write_results("cifar10_probe", rows, tmp_path)
    text = "".join(gap_section(tmp_path))
    assert "| ours: " + tiny in text and "75.00" in text and "64.00 ± 0.50" in text
    assert "not measured yet: row (b)" in text and "K-means 1,600: all labels +1.00" in text
    assert "random-init imagenet32 D (what GAN training adds): all labels +9.59" in text
    unexplained = next(line for line in text.splitlines() if "unexplained" in line)
    assert "+0.00" not in unexplained and "no JPEG pair of this architecture yet" in unexplained
    in_domain = dataclasses.replace(rows[0], extractor="dcgan (imagenet32, run cifar10-imagenet32, 1,249,920 images)",
                                    gan_data="CIFAR-10 (JPEG copy) train", value=72.5)
    write_results("cifar10_probe", [in_domain], tmp_path)
    text = "".join(gap_section(tmp_path))
    step = next(line for line in text.splitlines() if "training data Tiny-ImageNet-200 -> CIFAR-10" in line)
    assert "-2.50" in step and "row (b) minus row (a)" in step
    arch = next(line for line in text.splitlines() if "architecture imagenet32 -> svhn32" in line)
    assert "-2.60" in arch

    # the JPEG step: a D's all-labels pair difference (not its smaller-draws one), and no K-means pair
    from benchmarks.studies.knobs import NOT_D
    from benchmarks.studies.sensitivity_table import SENSITIVITY, SensitivityRow

    def pair(extractor, metric, diff):
        return SensitivityRow(extractor=extractor, preset="quick", knob="encoding", setting="lossless originals",
                              metric=metric, value=60.0, diff=diff, scale="4,000 train / 1,000 test images")

    SENSITIVITY.write([pair("newmu-svhn (authors' release)", "test_accuracy", 1.5),
                       pair("newmu-svhn (authors' release)", "test_accuracy_326pc", 1.33),
                       pair("kmeans-1600", "test_accuracy", 0.9),
                       SensitivityRow(extractor="kmeans-1600", preset="quick", knob="layers", setting="all",
                                      notes=f"not run: {NOT_D}")], tmp_path)
    steps = [line for line in "".join(gap_section(tmp_path)).splitlines() if "the JPEG copy instead" in line]
    assert len(steps) == 1 and "newmu-svhn" in steps[0] and "-1.50" in steps[0]


def test_the_cost_table_comes_from_the_rows(tmp_path):
    from benchmarks.protocol.results import write_results
    from benchmarks.protocol.row import ResultRow

    row = ResultRow(protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor="pixels", classifier="L2-SVM",
                    preset="paper", metric="test_accuracy_400pc", value=37.4, wall_s=720.0, n_train=4000,
                    n_test=10000, peak_rss_gb=3.46, device="cpu: Some CPU (2 cores, AVX2)", date="2026-12-07")
    write_results("cifar10_probe", [row], tmp_path)
    text = report.write_report(tmp_path).read_text().split("## What each row cost")[1]
    line = next(line for line in text.splitlines() if "pixels" in line)
    assert all(cell in line for cell in ("12.0 min", "4,000 / 10,000", "3.5", "Some CPU (2 cores, AVX2)")), line


def test_a_gap_step_joins_only_rows_that_chose_c_the_same_way(tmp_path):
    from benchmarks.protocol.results import write_results
    from benchmarks.protocol.row import ResultRow
    from benchmarks.report.gap import gap_section

    cv = "C chosen per draw by 5-fold cross-validation within each draw's 4,000 labels"

    def row(extractor, gan_data, value, metric, notes=""):
        return ResultRow(protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor=extractor,
                         classifier="L2-SVM", gan_data=gan_data, preset="paper", metric=metric, value=value,
                         std=0.5, commit="abc1234", date="2026-12-07", notes=notes)

    tiny = "dcgan (imagenet32, run tiny-imagenet32, 1 images)"
    own = "dcgan (imagenet32, run cifar10-imagenet32, 1 images)"
    rows = [row(tiny, "Tiny-ImageNet-200 (32x32 JPEG) train", 60.0, "test_accuracy_400pc", cv),
            row(tiny, "Tiny-ImageNet-200 (32x32 JPEG) train", 70.0, "test_accuracy"),
            row(own, "CIFAR-10 (JPEG copy) train", 61.0, "test_accuracy_400pc"),  # chosen on the validation split
            row(own, "CIFAR-10 (JPEG copy) train", 72.0, "test_accuracy")]
    write_results("cifar10_probe", rows, tmp_path)
    step = next(line for line in "".join(gap_section(tmp_path)).splitlines() if "training data Tiny" in line)
    cells = [c.strip() for c in step.split("|")]
    assert "+2.00" in cells and "+1.00" not in cells  # the all-labels step; no 400-per-class step across choices
    write_results("cifar10_probe", [row(own, "CIFAR-10 (JPEG copy) train", 61.0, "test_accuracy_400pc", cv)],
                  tmp_path)
    step = next(line for line in "".join(gap_section(tmp_path)).splitlines() if "training data Tiny" in line)
    assert "+1.00" in [c.strip() for c in step.split("|")]


def test_learning_curves_share_a_chart_per_scoring_protocol_and_give_the_architecture_step_at_equal_images(
        tmp_path):
    from benchmarks.report.curves import learning_curves_section
    from benchmarks.report.gap import gap_section

    results, charts = tmp_path / "results", tmp_path / "results" / "report"
    charts.mkdir(parents=True)

    def record(name, arch, gan_data, scores, chosen, protocol="cifar10_probe"):
        curve = [{"images_seen": n, "step": n // 128, "val_score": v, "train_img_per_s": 1.0, "precision": "fp32",
                  "commit": "abc", "date": "2026-12-07"} for n, v in scores.items()]
        run = {"name": name, "protocol": protocol, "gan_data": gan_data, "arch": arch,
               "chosen_images_seen": chosen, "chosen_val_score": scores[chosen]}
        write_record(results / "gan_runs" / name, curve, [], None, run)

    record("big", "imagenet32", "CIFAR-10 (JPEG copy) train", {1000: 50.0, 2000: 56.0, 3000: 55.0}, 2000)
    record("small", "svhn32", "CIFAR-10 (JPEG copy) train", {1000: 49.0, 2000: 52.5, 3000: 54.0, 4000: 54.5}, 4000)
    record("held-out", "imagenet32", "CIFAR-10 (JPEG copy) train minus validation", {1000: 45.0}, 1000, "svhn_1000")
    text = "".join(learning_curves_section(results, charts))
    cifar, svhn = text.split("**svhn_1000**")
    assert "| big" in cifar and "| small" in cifar and "held-out" not in cifar and "held-out" in svhn
    assert "| 4,000 " in cifar and "54.50" in cifar  # a length only one run scored keeps its own row
    assert all((charts / f"learning_curves_{p}.png").read_bytes()[:4] == b"\x89PNG" for p in ("cifar10_probe",
                                                                                              "svhn_1000"))
    # the architecture step at equal images seen: at the imagenet32 run's chosen length, and at each shared one
    lines = "".join(gap_section(results)).splitlines()
    assert not any("equal images seen" in line for line in lines)  # no imagenet32-on-ImageNet row: no chain yet
    from benchmarks.protocol.results import write_results
    from benchmarks.protocol.row import ResultRow

    write_results("cifar10_probe", [ResultRow(
        protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor="dcgan (imagenet32, run tiny, 1 images)",
        classifier="L2-SVM", gan_data="Tiny-ImageNet-200 train", preset="paper", metric="test_accuracy", value=70.0,
        commit="abc1234", date="2026-12-07")], results)
    step = next(line for line in "".join(gap_section(results)).splitlines() if "equal images seen" in line)
    cells = [c.strip() for c in step.split("|")]
    assert "(2,000; validation split, one draw)" in step and "-3.50" in cells
    assert "1,000: -1.00, 2,000: -3.50, 3,000: -1.00" in step and "4,000" not in step


def test_the_bf16_ab_pairs_each_seed_and_gives_the_mean_difference_beside_its_spread(tmp_path):
    from benchmarks.protocol.results import write_results
    from benchmarks.protocol.row import ResultRow
    from benchmarks.report.precision_ab import precision_ab_section

    assert precision_ab_section(tmp_path) == ["_No bf16 A/B rows yet._\n"]

    def rows(seed, all_labels, per_class):
        return [ResultRow(protocol="cifar10_probe", dataset="CIFAR-10 (JPEG copy)", extractor="dcgan (imagenet32)",
                          classifier="L2-SVM", preset="quick", metric=m, value=v, seed=seed, n_train=10000,
                          n_test=2000, device="cpu: Some CPU", commit="abc1234", date="2026-12-07")
                for m, v in (("test_accuracy", all_labels), ("test_accuracy_400pc", per_class))]

    ab = tmp_path / "precision_ab" / "3-epochs"
    write_results("cifar10_probe", rows(0, 60.0, 55.0) + rows(1, 61.0, 54.0), ab / "bf16")
    write_results("cifar10_probe", rows(0, 61.0, 55.5) + rows(1, 60.0, 54.5) + rows(2, 59.0, 53.0), ab / "fp32")
    text = "".join(precision_ab_section(tmp_path))
    table = {tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")]
             for line in text.splitlines() if line.startswith("| 3-epochs")}
    assert "-1.00" in table["3-epochs", "0"] and "-0.50" in table["3-epochs", "0"]
    assert "10,000 / 2,000" in table["3-epochs", "0"]
    seed2 = table["3-epochs", "2"]
    assert "59.00" in seed2 and not any(c[:1] in "+-" and c[1:2].isdigit() for c in seed2)  # one arm: no difference
    assert "3-epochs, all labels: bf16 - fp32 = +0.00 over 2 seeds, per-seed spread 1.41" in text
    assert "3-epochs, 400 labels/class: bf16 - fp32 = -0.50 over 2 seeds, per-seed spread 0.00" in text
