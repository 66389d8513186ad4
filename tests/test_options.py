"""The run options, declared once: the CLI is generated from them, ``to_argv`` inverts it, and a
study's options built in Python run the protocol exactly as the same command line does."""
from __future__ import annotations

import dataclasses

import pytest

from benchmarks.classifiers.registry import CLASSIFIERS
from benchmarks.protocol.context import parse_run, resolve_run
from benchmarks.protocol.options import (
    DataOptions,
    ExtractorOptions,
    OutputOptions,
    ProbeOptions,
    RunOptions,
    build_parser,
    parse_options,
    to_argv,
)
from benchmarks.protocol.runner import CIFAR10_PROBE, SVHN_1000, run_protocol

# Every option the protocols' command line has had: a field dropped from the declaration is a CLI break.
FLAGS = {"--preset", "--data", "--dataset", "--gan-data", "--gan-split", "--extractor", "--classifier", "--arch",
         "--discriminator", "--bn-mode", "--draws", "--per-class", "--trials", "--gan-epochs", "--precision",
         "--eval-epochs", "--seed", "--device", "--download", "--no-download", "--out", "--resume",
         "--exclude-near-duplicates", "--results-dir", "--no-results"}


def test_the_cli_is_generated_from_the_declared_options():
    parser = build_parser(SVHN_1000, tuple(CLASSIFIERS))
    flags = {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}
    assert flags == FLAGS
    text = parser.format_help()
    assert "default: train-minus-val" in text and "supervised" in text and "data/svhn" in text  # filled per protocol
    assert parse_options(CIFAR10_PROBE, [], tuple(CLASSIFIERS)) == RunOptions()


def test_to_argv_inverts_the_parser():
    options = RunOptions(preset="smoke", device="cpu", seed=3,
                         data=DataOptions(data="d.tar.xz", dataset="cifar10", gan_data="train", no_download=True),
                         extractors=ExtractorOptions(extractor="pixels,random-d", classifier="svm,knn", arch="svhn32",
                                                     gan_epochs=0.5, eval_epochs=(0.125, 0.25), precision="fp32"),
                         probe=ProbeOptions(draws=2, per_class=10), output=OutputOptions(out="o", no_results=True))
    argv = to_argv(options)
    assert parse_options(CIFAR10_PROBE, argv, tuple(CLASSIFIERS)) == options
    assert "--eval-epochs" in argv and argv[argv.index("--eval-epochs") + 1] == "0.125,0.25"
    assert to_argv(RunOptions()) == []  # defaults are not repeated
    assert resolve_run(CIFAR10_PROBE, options) == parse_run(CIFAR10_PROBE, argv)


def test_a_bad_option_built_in_python_is_the_same_error_as_on_the_command_line(tiny_folder):
    from dcgan_ref.runtime.errors import UserError

    bad = RunOptions(preset="smoke", data=DataOptions(data=str(tiny_folder)),
                     extractors=ExtractorOptions(classifier="svm,forest"))
    with pytest.raises(UserError, match="unknown classifier 'forest'"):
        resolve_run(CIFAR10_PROBE, bad)


def test_options_in_python_give_the_rows_the_command_line_gives(tiny_folder, tmp_path):
    options = RunOptions(preset="smoke", data=DataOptions(data=str(tiny_folder)),
                         extractors=ExtractorOptions(extractor="pixels", classifier="svm,knn"),
                         output=OutputOptions(out=str(tmp_path / "runs")))
    keep = ("extractor", "classifier", "metric", "value", "std", "C", "k", "n_train", "n_test")
    by_options = [{k: getattr(r, k) for k in keep} for r in run_protocol(CIFAR10_PROBE, options)]
    by_argv = [{k: getattr(r, k) for k in keep} for r in run_protocol(CIFAR10_PROBE, to_argv(options))]
    assert by_options == by_argv and len(by_options) == 4
    assert dataclasses.replace(options, seed=1) != options  # frozen, comparable: a study can vary one field


def test_gan_run_start_options_are_declared_once_and_its_command_line_made_from_them():
    import dataclasses

    from benchmarks import gan_run

    args = gan_run.build_parser().parse_args(["start", "--gan-data", "train", "--data", "d"])
    declared = {f.name: f.default for f in dataclasses.fields(gan_run.StartOptions)}
    assert {k: v for k, v in vars(args).items() if k != "command"} == declared | {"gan_data": "train", "data": "d"}
    assert declared["budget_images"] == 1_250_000 and declared["plateau_points"] == 0.3
    with pytest.raises(SystemExit):  # a required field stays required
        gan_run.build_parser().parse_args(["start", "--data", "d"])


def test_the_sensitivity_study_options_are_declared_once_and_leave_the_probes_to_the_probe():
    import dataclasses

    from benchmarks.studies import sensitivity

    args, rest = sensitivity.build_parser().parse_known_args(["--cv-folds", "3", "--preset", "quick"])
    declared = {f.name: f.default for f in dataclasses.fields(sensitivity.SensitivityOptions)}
    assert vars(args) == declared | {"cv_folds": 3} and rest == ["--preset", "quick"]
