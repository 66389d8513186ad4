"""Mode-collapse check: separates collapsed from diverse batches, leaves training untouched,
runs at every epoch's end (logged, printed, warned), and its figure draws what was logged."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from dcgan_ref import collapse
from dcgan_ref.collapse import CollapseMonitor, CollapseStats, generate, measure
from dcgan_ref.figures import collapse as collapse_figure
from dcgan_ref.models import build_gan
from dcgan_ref.train import TrainConfig, main, train

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


def _real_like(n: int, seed: int) -> torch.Tensor:
    """Smooth random colour images in [-1, 1] (low-frequency, like photos at 32x32)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=gen) * 2 - 1
    fine = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    return (fine + 0.05 * torch.randn(n, 3, 32, 32, generator=gen)).clamp(-1, 1)


def _real_median(images: torch.Tensor) -> float:
    return float(collapse.pair_distances(images).median())


def test_the_statistic_separates_collapsed_from_diverse_batches():
    real_median = _real_median(_real_like(256, 0))
    diverse = measure(_real_like(256, 1), real_median)  # other images from the same distribution
    assert 0.9 < diverse.diversity < 1.1 and diverse.near_identical == 0 and not diverse.flag
    one = _real_like(1, 2)
    collapsed = measure((one + 0.02 * torch.randn(256, 3, 32, 32)).clamp(-1, 1), real_median)
    assert collapsed.diversity < 0.1 and collapsed.near_identical == 1.0 and collapsed.flag
    # a partial collapse: 40% of the samples on one image barely moves the median, but its
    # 16% of near-identical pairs flag it
    partial = _real_like(256, 3)
    partial[:102] = one + 0.02 * torch.randn(102, 3, 32, 32)
    stats = measure(partial, real_median)
    assert stats.diversity > collapse.MIN_DIVERSITY and stats.near_identical > collapse.MAX_NEAR_IDENTICAL
    assert stats.flag
    assert stats.metrics() == {"collapse_diversity": stats.diversity, "collapse_near_identical": stats.near_identical,
                               "collapse_flag": 1.0}


def test_a_generator_drawing_one_image_is_flagged_and_its_state_is_left_alone():
    g, _ = build_gan("svhn32", 0)
    images = _real_like(300, 0).add(1).mul(127.5).round().to(torch.uint8)
    monitor = CollapseMonitor(g, images, CPU, seed=0)
    g.eval()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    healthy = monitor.check(g)
    assert not healthy.flag and healthy.near_identical == 0
    assert not g.training  # its mode restored...
    for k, v in g.state_dict().items():  # ...and its batchnorm statistics, bitwise
        assert torch.equal(v, before[k]), k
    with torch.no_grad():  # and the check drew G as training does: batchnorm over the fixed batch
        expected = g.train()(monitor.z)
    g.load_state_dict(before)
    torch.testing.assert_close(generate(g, monitor.z), expected, rtol=0, atol=0)
    with torch.no_grad():
        g.deconvs[-2].weight.zero_()  # the output layer draws 0 (grey) whatever z is
    collapsed = monitor.check(g)
    assert collapsed.diversity == 0 and collapsed.near_identical == 1.0 and collapsed.flag


def _step(line: str) -> str:
    return re.search(r"collapse check at step (\d+)", line).group(1)


def _images(n=48):
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _cfg(**kw):
    return TrainConfig(arch="svhn32", steps=7, batch_size=16, deterministic=True, log_every=2, ckpt_every=5,
                       sample_every=5, **kw)


def test_training_checks_at_every_epoch_end_and_is_otherwise_unchanged(tmp_path, monkeypatch):
    """48 images / batch 16: 3 steps an epoch, so checks at steps 3, 6 and the last, 7; and
    the weights, batchnorm statistics and sample grids equal a run whose check draws nothing."""
    lines: list[str] = []
    checked = train(_cfg(), _images(), tmp_path / "checked", device=CPU, log=lines.append)
    assert [r["step"] for r in checked.collapse] == [3, 6, 7]
    assert [r["epoch"] for r in checked.collapse] == [1.0, 2.0, 7 / 3]
    assert {"diversity", "near_identical", "flag", "loss_D", "loss_G"} <= set(checked.collapse[0])
    assert sum("collapse check at step" in line for line in lines) == 3
    monkeypatch.setattr(CollapseMonitor, "check", lambda self, g: CollapseStats(1.0, 0.0))
    unchecked = train(_cfg(), _images(), tmp_path / "unchecked", device=CPU, log=lambda s: None)
    for net in ("g", "d"):
        a, b = getattr(checked, net).state_dict(), getattr(unchecked, net).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{net}.{k}"
    for name in ("samples_0000005.png", "samples_0000007.png"):  # eval mode: the restored running statistics
        assert (tmp_path / "checked" / name).read_bytes() == (tmp_path / "unchecked" / name).read_bytes()


def test_a_flag_prints_a_warning_and_reaches_mlflow_and_the_figure(tiny_folder, tmp_path, monkeypatch, capsys):
    """Through the CLI: 64 images / batch 16 is 4 steps an epoch; a threshold no G can meet
    flags every check: one WARNING line each, collapse_flag 1 at steps 4, 8, 10."""
    threshold = collapse.MIN_DIVERSITY
    monkeypatch.setattr(collapse, "MIN_DIVERSITY", 100.0)
    main(["--data", str(tiny_folder), "--arch", "svhn32", "--batch-size", "16", "--limit", "64",
          "--out", str(tmp_path / "run"), "--steps", "10", "--log-every", "2"])
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING: collapse check")]
    assert [_step(w) for w in warnings] == ["4", "8", "10"] and "possible mode collapse" in warnings[0]
    run_id = mlflow.search_runs(experiment_names=["dcgan_train"]).iloc[0]["run_id"]
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run_id, "collapse_flag")
    assert sorted((m.step, m.value) for m in history) == [(4, 1.0), (8, 1.0), (10, 1.0)]
    assert [m.step for m in client.get_metric_history(run_id, "collapse_diversity")] == [4, 8, 10]

    records = collapse_figure.from_mlflow(run_id)
    checks = [r for r in records if "diversity" in r]
    assert [(r["step"], r["epoch"], r["flag"]) for r in checks] == [(4, 1.0, True), (8, 2.0, True), (10, 2.5, True)]
    assert [r["step"] for r in records if "loss_D" in r] == [2, 4, 6, 8, 10]
    source = collapse_figure.describe(run_id)  # what the figure's JSON says of the run: rerunnable, no store path
    tags = client.get_run(run_id).data.tags
    assert source == f"MLflow run {run_id[:8]}: `{tags['command']}` at commit {tags['commit'][:7]} on {tags['device']}"
    assert "sqlite" not in source and "mlflow.db" not in source

    monkeypatch.setattr(collapse, "MIN_DIVERSITY", threshold)
    healthy = [{"step": s, "epoch": s / 4, "diversity": 0.9, "near_identical": 0.0, "flag": False,
                "loss_D": 1.0, "loss_G": float("nan")} for s in (4, 8)]
    numbers = collapse_figure.make({"flagged": records, "healthy": healthy}, tmp_path / "fig")
    assert (tmp_path / "fig" / "collapse.png").stat().st_size > 10_000
    written = json.loads((tmp_path / "fig" / "collapse.json").read_text())  # strict JSON: NaN written as null
    assert written == json.loads(json.dumps(numbers, default=float)) and written["runs"]["healthy"]["flagged"] is False
    assert written["runs"]["flagged"]["flagged_at_epochs"] == [1.0, 2.0, 2.5]
    assert written["runs"]["healthy"]["records"][0]["loss_G"] is None
    assert written["thresholds"]["min_diversity"] == threshold


@pytest.mark.slow
def test_two_ranks_check_together_and_rank_0_alone_reports(tiny_folder, tmp_path):
    """Under torchrun G's batchnorm is a collective: every rank runs the check (rank 0 alone
    checking would hang), and only rank 0 prints it."""
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "dcgan_ref.train", "--data", str(tiny_folder), "--arch", "svhn32", "--batch-size", "32",
           "--limit", "64", "--steps", "4", "--deterministic", "--out", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [_step(line) for line in done.stdout.splitlines() if "collapse check at step" in line] == ["2", "4"]



def test_identical_real_images_make_the_check_undefined_not_a_crash(tmp_path):
    """A dataset of one repeated image has no real-pair scale: NaN, never flagged, and training goes on."""
    import math

    import torch

    from dcgan_ref.collapse import measure

    stats = measure(torch.rand(8, 3, 4, 4), real_median=0.0)
    assert math.isnan(stats.diversity) and math.isnan(stats.near_identical) and not stats.flag
    from dcgan_ref.train import TrainConfig, train

    result = train(TrainConfig(arch="svhn32", steps=1, batch_size=8), torch.full((8, 3, 32, 32), 7, dtype=torch.uint8),
                   tmp_path, device=torch.device("cpu"), log=lambda s: None)
    assert len(result.collapse) == 1 and math.isnan(result.collapse[0]["diversity"])


def test_a_run_records_its_command_as_typed_not_its_file_path(monkeypatch):
    import sys
    import types

    from dcgan_ref.runtime.tracking import command_line

    main_module = types.ModuleType("__main__")
    main_module.__spec__ = types.SimpleNamespace(name="dcgan_ref.train")
    monkeypatch.setitem(sys.modules, "__main__", main_module)
    monkeypatch.setattr(sys, "argv", ["/abs/site/dcgan_ref/train.py", "--data", "a b.tar.xz", "--lr", "0.1"])
    assert command_line() == "python -m dcgan_ref.train --data 'a b.tar.xz' --lr 0.1"
    main_module.__spec__ = types.SimpleNamespace(name="benchmarks.report.__main__")
    assert command_line().startswith("python -m benchmarks.report --data")
