"""What the protocols promise about honesty: no choice looks at the test labels, each
protocol uses its paper architecture, an unconverged SVM is reported, bad numbers are
refused before any data is read."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks.protocol import runner as protocol
from benchmarks.protocol.context import parse_run
from benchmarks.protocol.presets import PRESETS
from benchmarks.protocol.runner import CIFAR10_PROBE, SVHN_1000, run_protocol
from dcgan_ref.runtime.errors import run_cli


def _smoke(data, tmp_path, *extra):
    return ["--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "runs"), *extra]


@pytest.mark.slow
def test_scrambled_test_labels_change_no_choice(tiny_folder, tmp_path, monkeypatch):
    """C, k and the GAN's length are chosen on validation: scrambling the test labels may
    change test accuracy but no choice."""
    monkeypatch.setitem(PRESETS, "smoke", PRESETS["smoke"].with_gan(eval_epochs=(0.125,)))
    argv = _smoke(tiny_folder, tmp_path, "--extractor", "dcgan,pixels", "--classifier", "svm,knn")
    honest = run_protocol(CIFAR10_PROBE, argv)
    load = protocol.load_data

    def scrambled(run, log=print):
        data = load(run, log)
        perm = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(0))
        data.test = dataclasses.replace(data.test, labels=data.test.labels[perm])
        return data

    monkeypatch.setattr(protocol, "load_data", scrambled)
    scrambled_rows = run_protocol(CIFAR10_PROBE, argv)
    choices = [[(r.extractor, r.classifier, r.metric, r.C, r.k, r.notes) for r in rows]
               for rows in (honest, scrambled_rows)]
    assert choices[0] == choices[1]
    assert any("chosen on validation" in r.notes for r in honest)  # the GAN length was a choice here
    assert [r.value for r in honest] != [r.value for r in scrambled_rows]  # the scramble did bite


def test_each_protocol_runs_its_paper_architecture():
    assert parse_run(CIFAR10_PROBE, ["--preset", "paper", "--device", "cpu"]).arch == "imagenet32"
    assert parse_run(SVHN_1000, ["--preset", "paper", "--device", "cpu"]).arch == "svhn32"
    assert parse_run(SVHN_1000, ["--preset", "quick", "--device", "cpu"]).arch == "svhn32"
    assert parse_run(CIFAR10_PROBE, ["--preset", "paper", "--arch", "svhn32", "--device", "cpu"]).arch == "svhn32"
    gan = parse_run(SVHN_1000, ["--preset", "newmu-svhn", "--device", "cpu"]).preset.gan
    assert (gan.recipe.lr, gan.recipe.batch_size, gan.epochs, gan.recipe.schedule) == (5e-4, 64, 200, "alternate")
    assert parse_run(CIFAR10_PROBE, ["--preset", "faces", "--device", "cpu"]).preset.gan.recipe.weight_decay == 1e-5


def test_an_unconverged_svm_solve_is_reported_in_the_row(tiny_folder, tmp_path, monkeypatch, capsys):
    from benchmarks.classifiers import svm

    fit = svm.fit_l2svm
    monkeypatch.setattr(svm, "fit_l2svm", lambda *a, **k: dataclasses.replace(fit(*a, **k), converged=False,
                                                                                rel_gap=0.5))
    rows = run_protocol(CIFAR10_PROBE, _smoke(tiny_folder, tmp_path, "--extractor", "pixels"))
    assert all("SVM solves stopped unconverged" in r.notes and "gap 5.0e-01" in r.notes for r in rows)
    assert "warning:" in capsys.readouterr().out


@pytest.mark.parametrize("bad, message", [
    (["--draws", "-1"], "argument --draws: '-1' is not an integer >= 1"),
    (["--draws", "0"], "argument --draws: '0' is not an integer >= 1"),
    (["--gan-epochs", "-1"], "argument --gan-epochs: '-1' is not a number > 0"),
    (["--trials", "x"], "argument --trials: 'x' is not an integer >= 1"),
    (["--seed", "-3"], "argument --seed: '-3' is not an integer >= 0"),
])
def test_bad_numbers_exit_2_before_any_data_is_read(bad, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(protocol, "load_data", lambda *a, **k: pytest.fail("data was read"))
    from benchmarks import cifar10_probe

    with pytest.raises(SystemExit) as exit_info:
        run_cli(cifar10_probe.main, ["--data", str(tmp_path), *bad])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_an_architecture_for_another_image_size_is_an_error(tiny_folder, tmp_path, capsys):
    from benchmarks import cifar10_probe

    with pytest.raises(SystemExit) as exit_info:
        run_cli(cifar10_probe.main, _smoke(tiny_folder, tmp_path, "--extractor", "random-d", "--arch", "dcgan64"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "dcgan64 D for 64x64 images" in err and "are 32x32" in err


@pytest.mark.slow
def test_an_interrupted_protocol_gan_resumes_to_the_same_row(tiny_folder, tmp_path, monkeypatch):
    """The GAN checkpoints every epoch and the length choice after every candidate: a run
    that dies while scoring its last candidate resumes there and ends with the same row."""
    import benchmarks.protocol.runner as proto

    monkeypatch.setitem(PRESETS, "smoke", PRESETS["smoke"].with_gan(epochs=2, eval_epochs=(1,)))
    argv = ["--preset", "smoke", "--data", str(tiny_folder), "--extractor", "dcgan"]
    whole = run_protocol(CIFAR10_PROBE, argv + ["--out", str(tmp_path / "whole")])

    real = proto.make_validator
    calls = {"n": 0}

    def dies_on_the_second_candidate(*a, **k):
        validate = real(*a, **k)

        def wrapped(extractor):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("killed")
            return validate(extractor)

        return wrapped

    monkeypatch.setattr(proto, "make_validator", dies_on_the_second_candidate)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(CIFAR10_PROBE, argv + ["--out", str(tmp_path / "cut")])
    scored = []

    def counting(*a, **k):
        validate = real(*a, **k)
        return lambda extractor: scored.append(1) or validate(extractor)

    monkeypatch.setattr(proto, "make_validator", counting)
    resumed = run_protocol(CIFAR10_PROBE, argv + ["--out", str(tmp_path / "cut"), "--resume"])
    assert [(r.metric, r.value, r.C, r.notes) for r in resumed] == [(r.metric, r.value, r.C, r.notes) for r in whole]
    assert "chosen on validation" in whole[0].notes
    assert len(scored) == 1  # only the candidate the interruption cut; the first came from length_choice.pt
    import mlflow

    runs = mlflow.search_runs(experiment_names=["cifar10_probe"], order_by=["start_time DESC"])
    last = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    assert last["metrics.train_img_per_s"] == 0  # no training step was run again


def test_the_gan_length_is_chosen_within_the_protocols_label_budget(tiny_folder, tmp_path, monkeypatch):
    """The validator's SVM sees one label-scarce draw (10 per class in smoke), not all labels."""
    import benchmarks.protocol.runner as proto
    from benchmarks.classifiers.registry import L2SVMClassifier

    monkeypatch.setitem(PRESETS, "smoke", PRESETS["smoke"].with_gan(eval_epochs=(0.125,)))
    seen, scoring = [], {"on": False}
    sweep, real = L2SVMClassifier.sweep, proto.make_validator

    def spy_sweep(self, x, y, grid, until=None, thin=None):
        if scoring["on"]:
            seen.append(len(x))
        return sweep(self, x, y, grid, until, thin)

    def spy_validator(*a, **k):
        validate = real(*a, **k)

        def wrapped(extractor):
            scoring["on"] = True
            try:
                return validate(extractor)
            finally:
                scoring["on"] = False

        return wrapped

    monkeypatch.setattr(L2SVMClassifier, "sweep", spy_sweep)
    monkeypatch.setattr(proto, "make_validator", spy_validator)
    run_protocol(CIFAR10_PROBE, _smoke(tiny_folder, tmp_path, "--extractor", "dcgan"))
    assert seen and set(seen) == {10 * 10}


def test_the_log_and_the_table_round_alike(tiny_folder, tmp_path, capsys):
    from benchmarks.protocol.results import format_value

    rows = run_protocol(CIFAR10_PROBE, _smoke(tiny_folder, tmp_path, "--extractor", "random-d"))
    out = capsys.readouterr().out
    for r in rows:
        assert f"{format_value(r.value, r.std)}%" in out


def test_eval_epochs_name_the_candidate_lengths_and_must_be_reached(capsys):
    run = parse_run(CIFAR10_PROBE, ["--preset", "paper", "--device", "cpu", "--gan-epochs", "6",
                                    "--eval-epochs", "4,2,4"])
    assert run.preset.gan.eval_epochs == (2.0, 4.0)
    # a shortened training keeps the preset's candidates it reaches (paper: 5, 10, ...)
    assert parse_run(CIFAR10_PROBE, ["--preset", "paper", "--device", "cpu", "--gan-epochs", "8"]
                     ).preset.gan.eval_epochs == (5,)
    from dcgan_ref.runtime.errors import UserError

    with pytest.raises(UserError, match=r"--eval-epochs 9: past the GAN's training length \(6 epochs\)"):
        parse_run(CIFAR10_PROBE, ["--preset", "paper", "--device", "cpu", "--gan-epochs", "6", "--eval-epochs", "2,9"])


def test_the_chosen_length_is_saved_as_a_discriminator_other_protocols_load(tiny_folder, tmp_path):
    """``<run>/gan/chosen.pt`` is the validation-chosen D, loadable with ``--discriminator``:
    the SVHN-protocol row of a GAN trained in the CIFAR-10 probe uses the same D."""
    from dcgan_ref.pretrained import load_discriminator
    from dcgan_ref.runtime import checkpoint

    argv = _smoke(tiny_folder, tmp_path, "--extractor", "dcgan", "--gan-epochs", "0.5", "--eval-epochs", "0.125")
    rows = run_protocol(CIFAR10_PROBE, argv)
    notes = rows[0].notes
    assert "GAN (svhn32) trained 0.5 epochs on" in notes and "length chosen on validation: epoch" in notes
    chosen = list((tmp_path / "runs").rglob("chosen.pt"))
    assert len(chosen) == 1
    pre = load_discriminator(str(chosen[0]))
    assert pre.arch == "svhn32"
    choice = checkpoint.load(chosen[0].with_name("length_choice.pt"))
    assert all(torch.equal(pre.d.state_dict()[k], v) for k, v in choice["best_d"].items())


def test_too_few_labels_for_the_draws_is_an_error_before_any_fit(tiny_folder, tmp_path, capsys, monkeypatch):
    """Smoke: 40 train images per class, 10 of them to validation: 30 left, so 31 per class cannot be drawn."""
    from baselines import registry
    from benchmarks import cifar10_probe

    monkeypatch.setattr(registry, "build", lambda *a, **k: pytest.fail("an extractor was built"))
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cifar10_probe.main, _smoke(tiny_folder, tmp_path, "--extractor", "pixels", "--per-class", "31"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "31 labels per class per draw" in err and "--per-class 30" in err, err
    assert parse_run(CIFAR10_PROBE, ["--preset", "paper", "--device", "cpu", "--per-class", "40"]).per_class == 40


def test_a_draw_of_another_size_is_never_filed_as_the_papers():
    assert CIFAR10_PROBE.draws_metric_for(400, 10) == "test_accuracy_400pc"
    assert CIFAR10_PROBE.draws_metric_for(300, 10) == "test_accuracy_300pc"
    assert SVHN_1000.draws_metric_for(100, 10) == "test_error_1000"
    assert SVHN_1000.draws_metric_for(10, 10) == "test_error_100"


def test_the_probes_label_draws_choose_c_on_their_own_labels(tiny_folder, tmp_path, monkeypatch):
    """Label-honest: a CIFAR-10 probe draw chooses C by cross-validation within its own labels, so
    scrambling the validation split's labels changes no draw's choice or result; the row says how."""
    argv = _smoke(tiny_folder, tmp_path, "--extractor", "pixels")
    cv_calls = []
    real_cv = protocol.evaluation.cv_scores
    monkeypatch.setattr(protocol.evaluation, "cv_scores",
                        lambda *a, **kw: cv_calls.append(len(a[1])) or real_cv(*a, **kw))
    honest = run_protocol(CIFAR10_PROBE, argv)
    n_draws, per_class = PRESETS["smoke"].n_draws, PRESETS["smoke"].per_class
    assert cv_calls == [10 * per_class] * n_draws  # one cross-validation per draw, on the draw's own labels
    load = protocol.load_data

    def scrambled(run, log=print):
        data = load(run, log)
        labels = data.train.labels.clone()
        val = labels[data.n_fit:]
        labels[data.n_fit:] = val[torch.randperm(len(val), generator=torch.Generator().manual_seed(0))]
        data.train = dataclasses.replace(data.train, labels=labels)
        return data

    monkeypatch.setattr(protocol, "load_data", scrambled)
    scrambled_rows = run_protocol(CIFAR10_PROBE, argv)
    draws = [[r for r in rows if r.metric.endswith("pc")] for rows in (honest, scrambled_rows)]
    assert draws[0] and [(r.C, r.value, r.std) for r in draws[0]] == [(r.C, r.value, r.std) for r in draws[1]]
    assert all("5-fold cross-validation within each draw" in r.notes for r in draws[0])
    assert CIFAR10_PROBE.draws_cv_folds == 5 and SVHN_1000.draws_cv_folds == 0  # Table 2: the paper's SVHN rule
