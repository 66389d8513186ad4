"""Trainer: exact resume, atomic checkpoints, and a diverged run ending FAILED."""
import dataclasses

import mlflow
import pytest
import torch

from dcgan_ref.models import build_gan
from dcgan_ref.runtime import checkpoint
from dcgan_ref.runtime.errors import TrainingDiverged, run_cli
from dcgan_ref.train import TrainConfig, main, train

CPU = torch.device("cpu")


def _images(n=96):
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _cfg(**kw):
    return TrainConfig(arch="svhn32", steps=6, batch_size=16, deterministic=True, log_every=2, ckpt_every=3,
                       sample_every=3, **kw)


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path):
    images = _images()  # 96 images / batch 16: the interruption at step 3 falls mid-epoch
    full = train(_cfg(), images, tmp_path / "full", device=CPU, log=lambda s: None)
    part = train(dataclasses.replace(_cfg(), steps=3), images, tmp_path / "resumed", device=CPU, log=lambda s: None)
    assert part.steps == 3
    resumed = train(_cfg(), images, tmp_path / "resumed", device=CPU, resume=True, log=lambda s: None)
    assert resumed.steps == 6
    for a, b in zip(list(full.g.state_dict().values()) + list(full.d.state_dict().values()),
                    list(resumed.g.state_dict().values()) + list(resumed.d.state_dict().values())):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # and resuming matters: a fresh 3-step continuation is not the same run
    assert not torch.equal(part.d.convs[0][0].weight, full.d.convs[0][0].weight)


def test_resume_with_a_different_config_is_refused(tmp_path):
    train(dataclasses.replace(_cfg(), steps=3), _images(), tmp_path, device=CPU, log=lambda s: None)
    with pytest.raises(Exception, match="different config"):
        train(dataclasses.replace(_cfg(), lr=1e-3), _images(), tmp_path, device=CPU, resume=True, log=lambda s: None)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "last.pt"
    checkpoint.save_atomic({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_atomic({"step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"step": 1, "w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="unreadable"):
        checkpoint.load(path)


def test_nan_loss_stops_the_run_and_marks_it_failed(tmp_folder_cli, monkeypatch, capsys):
    from dcgan_ref.step import GanSetup

    real_make_step = GanSetup.make_step

    def poisoned(*args, **kwargs):
        step = real_make_step(*args, **kwargs)
        calls = {"n": 0}

        def wrapped(real, z):
            calls["n"] += 1
            losses = step(real, z)
            return losses * float("nan") if calls["n"] >= 2 else losses

        return wrapped

    monkeypatch.setattr(GanSetup, "make_step", poisoned)
    argv = tmp_folder_cli + ["--steps", "4", "--log-every", "2"]
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 2"):
        main(argv)
    runs = mlflow.search_runs(experiment_names=["dcgan_train"])
    assert list(runs["status"]) == ["FAILED"]
    with pytest.raises(SystemExit) as exit_info:  # and through the CLI: one line, non-zero exit
        run_cli(main, argv)
    assert exit_info.value.code == 3
    assert "training diverged" in capsys.readouterr().err


def test_cli_trains_logs_and_checkpoints(tmp_folder_cli, tmp_path):
    out = tmp_path / "out"
    main(tmp_folder_cli[:-2] + ["--out", str(out), "--steps", "2", "--log-every", "1"])
    state = checkpoint.load(out / "last.pt")
    assert state["step"] == 2 and {"g", "d", "opt_g", "opt_d", "data_gen", "z_gen"} <= set(state)
    run = mlflow.search_runs(experiment_names=["dcgan_train"]).iloc[0]
    assert run["status"] == "FINISHED"
    assert run["params.arch"] == "svhn32" and len(run["tags.commit"]) > 0
    assert run["metrics.loss_D"] > 0
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(run["run_id"], "samples")] == ["samples/samples_0000002.png"]


def test_bad_data_exits_non_zero_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["--data", str(tmp_path / "nothing"), "--no-download"])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.fixture
def tmp_folder_cli(tiny_folder, tmp_path):
    return ["--data", str(tiny_folder), "--arch", "svhn32", "--batch-size", "16", "--limit", "64",
            "--out", str(tmp_path / "run")]


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    """A pickle that calls a function on load is refused, and the function never runs."""
    import os

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "last.pt"
    torch.save({"config": {"arch": "svhn32"}, "d": Payload()}, path)
    with pytest.raises(ValueError, match="could run code"):
        checkpoint.load(path)
    assert not marker.exists()


def test_checkpoints_are_ordinary_files(tmp_path):
    path = checkpoint.save_atomic({"step": torch.tensor(1)}, tmp_path / "last.pt")
    assert path.stat().st_mode & 0o777 == 0o644


def test_the_authors_alternating_schedule_updates_one_network_per_batch(tmp_path):
    """schedule="alternate": D learns on even steps only, G on odd steps only; resume stays exact."""
    images = _images()
    cfg = dataclasses.replace(_cfg(), schedule="alternate")
    one = train(dataclasses.replace(cfg, steps=1), images, tmp_path / "a1", device=CPU, log=lambda s: None)
    two = train(dataclasses.replace(cfg, steps=2), images, tmp_path / "a2", device=CPU, log=lambda s: None)
    g0, d0 = build_gan("svhn32", cfg.seed)
    assert torch.equal(one.g.project[0].weight, g0.project[0].weight)       # step 0: D only
    assert not torch.equal(one.d.convs[0][0].weight, d0.convs[0][0].weight)
    assert torch.equal(two.d.convs[0][0].weight, one.d.convs[0][0].weight)  # step 1: G only
    assert not torch.equal(two.g.project[0].weight, one.g.project[0].weight)
    full = train(cfg, images, tmp_path / "full", device=CPU, log=lambda s: None)
    train(dataclasses.replace(cfg, steps=3), images, tmp_path / "cut", device=CPU, log=lambda s: None)
    resumed = train(cfg, images, tmp_path / "cut", device=CPU, resume=True, log=lambda s: None)
    for a, b in zip(full.d.state_dict().values(), resumed.d.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(Exception, match="schedule must be"):
        train(dataclasses.replace(cfg, schedule="sometimes"), images, tmp_path / "x", device=CPU, log=lambda s: None)


def test_determinism_off_leaves_the_callers_flags_alone():
    from dcgan_ref.train import set_determinism

    torch.use_deterministic_algorithms(True)
    try:
        set_determinism(False)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_the_img_per_s_after_a_scoring_counts_training_only(tmp_path, monkeypatch):
    import dcgan_ref.train as train_module

    clock = [0.0]  # a clock that only a scoring moves far: each reading advances it by 1 ms

    def perf_counter():
        clock[0] += 1e-3
        return clock[0]

    monkeypatch.setattr(train_module.time, "perf_counter", perf_counter)
    rates = []

    def slow_scoring(step, g, d):
        clock[0] += 1000.0  # a 1,000-second validation score

    train(_cfg(), _images(), tmp_path, device=CPU, log=lambda s: None, eval_steps=frozenset({2}),
          on_eval=slow_scoring, on_progress=lambda p: rates.append(p["img_per_s"]))
    assert len(rates) >= 3 and min(rates) > 0.1 * max(rates), rates  # the window after step 2 is not 1,000 s long
