"""The sensitivity table: how many points each choice the paper leaves unstated moves the
CIFAR-10 probe, one knob at a time, beside the noise of the default itself.

``python -m benchmarks.studies.sensitivity --extractor random-d --arch imagenet32 --preset quick ...``
(``nox -s sensitivity``) takes the probe's own options, fits the extractor once, and
evaluates the default pipeline (the probe's: population batchnorm over the probe's train
images, every conv layer 4x4 max-pooled, per-feature standardisation, squared-hinge
L2-SVM, C chosen on the validation split) and then each alternative of each knob with
everything else at its default.  Features are extracted once per extraction setting
(batchnorm mode, pooling) and every other knob reuses them.

The noise band of the default: for all labels, the standard deviation of its test
accuracy over ``--split-seeds`` validation splits; for the label-scarce draws, the
standard error of the draws' mean.  A difference counts as beyond noise when it exceeds
twice the band (for the draws' mean, twice the standard error of a difference of two means).

Rows go to ``results/sensitivity.{csv,md}`` with their provenance (and MLflow, experiment
``sensitivity``); a run replaces the rows of the knobs it was asked for (same extractor, preset
and data; a setting since renamed goes with its knob) and of its default, and leaves the other
knobs' rows, so the knobs of a long paper-scale table can be run in several invocations.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from baselines import registry
from baselines.interface import LayeredExtractor
from benchmarks.classifiers.registry import CLASSIFIERS
from benchmarks.protocol import evaluation
from benchmarks.protocol.context import RunContext, parse_run
from benchmarks.protocol.data import ProtocolData, check_label_pool, label_pool, load_data
from benchmarks.protocol.options import POSITIVE_INT, add_option, option
from benchmarks.protocol.results import checked_results_dir, draws_choice_note, publish
from benchmarks.protocol.runner import build_context, learned_from
from benchmarks.protocol.spec import CIFAR10_PROBE
from benchmarks.protocol.splits import class_balanced_split
from benchmarks.studies.knobs import KNOBS, Outcome, Setting, Skipped, plan
from benchmarks.studies.sensitivity_table import SENSITIVITY, SensitivityRow, rerender
from dcgan_ref.datasets.loading import load_split
from dcgan_ref.runtime.errors import UserError, run_cli
from dcgan_ref.runtime.progress import Progress
from dcgan_ref.runtime.tracking import check_tracking_store, provenance, tracked_run


# ------------------------------------------------------------------ compute
def raw_features(extractor, images: torch.Tensor, test_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return extractor.transform(images), extractor.transform(test_images)


def variant(extractor, setting: Setting, bn_images: torch.Tensor | None):
    """The fitted extractor with this setting's extraction (D's batchnorm, pooling)."""
    if setting.extraction == ("probe", "max", 4):
        return extractor
    if setting.bn == "gan-data":
        return extractor.with_population_stats(bn_images)
    return extractor.with_extraction(bn_mode="batch" if setting.bn == "batch" else None, pool=setting.pool,
                                     grid=setting.grid)


def evaluate(run: RunContext, data: ProtocolData, setting: Setting, raw: tuple[torch.Tensor, torch.Tensor],
             extractor, *, test_every: bool = False, val_fit: tuple[torch.Tensor, torch.Tensor] | None = None,
             draws: bool = True) -> Outcome:
    """The probe's two evaluations of one setting on raw (unscaled) features."""
    t0 = time.perf_counter()
    train, test = raw
    if setting.layers is not None:
        cols = extractor.layer_columns(setting.layers).to(train.device)
        train, test = train[:, cols], test[:, cols]
    else:
        train, test = train.clone(), test.clone()
    scaler = evaluation.SCALINGS[setting.scaling](train)
    scaler.apply_(train)
    scaler.apply_(test)
    grid = run.preset.C_grid
    y, y_test = data.train.labels.to(run.device), data.test.labels.to(run.device)
    n_classes = len(data.train.classes)
    clf = CLASSIFIERS[setting.classifier]
    val_rows, fit_rows = val_fit if val_fit is not None else (data.val_rows, data.fit_rows)
    full = evaluation.full_data_eval(clf(n_classes), train, y, test, y_test, val_rows, fit_rows, grid,
                                     cv_folds=setting.full_cv_folds, cv_seed=run.seed, test_every=test_every)
    scarce = None
    draws_folds = run.spec.draws_cv_folds if setting.draws_cv_folds is None else setting.draws_cv_folds
    if draws:
        scarce = evaluation.label_draws_eval(clf(n_classes), train, y, test, y_test, data.val_rows, data.rest_idx,
                                             run.per_class, run.draws, run.seed, grid, cv_folds=draws_folds,
                                             test_every=test_every)
    notes = []
    for ev, what in ((full, "all labels"), (scarce, "draws")):
        if ev is not None and len(grid) > 1 and ev.chosen in (min(grid), max(grid)):
            notes.append(f"{what}: C={ev.chosen:g} at the grid's edge")
    # How the draws chose C, in the words every probe row uses (the tables read it back).
    choice = draws_choice_note(draws_folds, "C", run.per_class * n_classes)
    return Outcome(setting, full, scarce, train.shape[1], time.perf_counter() - t0, "; ".join(notes),
                   extra={"draws_choice": choice} if choice else {})


def encoding_outcome(run: RunContext, setting: Setting, name: str, log) -> tuple[Outcome, ProtocolData]:
    """The default pipeline on other data (fit, extraction and all): one side of the encoding pair."""
    other = dataclasses.replace(run, data=setting.data, download=False)
    data = load_data(other, log)
    per_class = min(run.per_class, int(label_pool(data).min()))
    other = dataclasses.replace(other, per_class=per_class)
    extractor = registry.build(name, build_context(other, data, run.out / "sensitivity" / "encoding"))
    extractor.fit(data.gan_images.to(run.device))
    raw = raw_features(extractor, data.train.images.to(run.device), data.test.images.to(run.device))
    out = evaluate(other, data, dataclasses.replace(setting, data=None), raw, extractor)
    out.notes = "; ".join(n for n in (f"{len(data.train):,} train / {len(data.test):,} test images of {setting.data}, "
                                      f"{per_class} labels/class", out.notes) if n)
    out.extra.update(data_sha256=data.train.sha256, per_class=per_class,
                     scale=f"{len(data.train):,} train / {len(data.test):,} test images of the pair's own data")
    return out, data


# ------------------------------------------------------------------ rows
def _std(values: list[float]) -> float:
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")


def _joined(*notes: str | None) -> str:
    return "; ".join(n for n in notes if n)


def make_rows(outcomes: list[Outcome], skipped: list[Skipped], split_accs: list[float], per_class: int,
              encoding: list[Outcome]) -> list[SensitivityRow]:
    """Long rows: per setting, the all-labels and the draws' metric, with difference and band."""
    default = next(o for o in outcomes if o.setting.default)
    n_draws = len(default.draws.draws)
    band_full = _std(split_accs)
    band_draws = default.draws.test_std / math.sqrt(n_draws)  # standard error of the draws' mean
    draws_metric = f"test_accuracy_{per_class}pc"
    limits = {"test_accuracy": 2 * band_full, draws_metric: 2 * math.sqrt(2) * band_draws}

    def row(o_knob, o_name, is_default, metric, value, std, base, band, C, dim, seconds, notes, classifier="svm",
            **extra) -> SensitivityRow:
        diff = None if is_default or base is None else value - base
        # Judged only against this row's own band: a row measured elsewhere (the encoding pair) has none.
        beyond = None if diff is None or band is None else bool(abs(diff) > limits[metric])
        return SensitivityRow(knob=o_knob, setting=o_name, default=is_default, metric=metric, value=round(value, 3),
                              std=None if std is None else round(std, 3), diff=None if diff is None else round(diff, 3),
                              band=None if band is None else round(band, 3), beyond_noise=beyond, C=C,
                              classifier=classifier, feature_dim=dim, wall_s=round(seconds, 1), notes=notes, **extra)

    rows = []
    base_full, base_draws = default.full.test_accuracy, default.draws.test_accuracy
    for o in outcomes:
        s = o.setting
        rows.append(row(s.knob, s.name, s.default, "test_accuracy", o.full.test_accuracy, None, base_full, band_full,
                        o.full.chosen, o.feature_dim, o.seconds, o.notes, s.classifier))
        rows.append(row(s.knob, s.name, s.default, draws_metric, o.draws.test_accuracy, o.draws.test_std, base_draws,
                        band_draws, o.draws.chosen, o.feature_dim, o.seconds,
                        _joined(o.notes, o.extra.get("draws_choice")), s.classifier, n_draws=len(o.draws.draws)))
    # Choosing C on test: the optimism it would add, from the default's own fits. Not a protocol.
    for ev, metric, base, band in ((default.full, "test_accuracy", base_full, band_full),
                                   (default.draws, draws_metric, base_draws, band_draws)):
        best = max(ev.test_by_hyper, key=ev.test_by_hyper.get)
        rows.append(row("C choice", "on the test set (NOT a valid protocol: the optimistic bias)", False, metric,
                        ev.test_by_hyper[best], None, base, band, best, default.feature_dim, 0.0,
                        "the best test accuracy over the C grid, from the default's fits; shown only as the bias "
                        "that selecting on test adds"))
    if encoding:  # its own default: the JPEG side of the pair (same images, same pipeline)
        jpeg = encoding[0]
        for o in encoding:
            # The pair ran on its own data: its scale is that data's, never the probe's preset's.
            own = {"scale": o.extra["scale"]} if "scale" in o.extra else {}
            rows.append(row("encoding", o.setting.name, False, "test_accuracy", o.full.test_accuracy, None,
                            jpeg.full.test_accuracy if o is not jpeg else None, None, o.full.chosen,
                            o.feature_dim, o.seconds,
                            o.notes + ("; difference: against the JPEG side" if o is not jpeg else ""), **own))
            # The pair's own draw size (a slice may hold fewer labels per class): named so, never the probe's.
            rows.append(row("encoding", o.setting.name, False, f"test_accuracy_{o.extra['per_class']}pc",
                            o.draws.test_accuracy, o.draws.test_std,
                            jpeg.draws.test_accuracy if o is not jpeg else None, None, o.draws.chosen,
                            o.feature_dim, o.seconds, _joined(o.notes, o.extra.get("draws_choice")),
                            n_draws=len(o.draws.draws), **own))
    rows += [SensitivityRow(knob=s.knob, setting=s.name, notes=f"not run: {s.reason}") for s in skipped]
    return rows


# ------------------------------------------------------------------ command
@dataclass(frozen=True)
class SensitivityOptions:
    """The study's own options (every other option is the CIFAR-10 probe's), declared once."""
    knobs: str = option(",".join(KNOBS), f"comma list of {', '.join(KNOBS)} (default: all)")
    split_seeds: int = option(5, "validation splits the default is evaluated on, for its all-labels noise band "
                                 "(default 5; a std over fewer than 5 is itself too noisy to decide 'beyond noise')",
                              type=POSITIVE_INT)
    cv_folds: int = option(5, "folds of the cross-validation C choice", type=POSITIVE_INT)
    bn_data: str | None = option(None, "the D's own training images (data spec, train split): batchnorm "
                                       "statistics over the GAN's data")
    encoding_pair: str | None = option(None, "<lossless data>,<the same images from the JPEG copy>: the encoding "
                                             "knob (python -m benchmarks.studies.encoding_pair writes the latter)")
    rerender: bool = option(False, "only re-render results/sensitivity.md from its CSV (rows untouched), then exit")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.sensitivity", add_help=False,
                                description="One knob at a time: how far each unstated choice moves the probe. "
                                            "Every other option is the CIFAR-10 probe's (python -m "
                                            "benchmarks.cifar10_probe --help).")
    for f in dataclasses.fields(SensitivityOptions):
        add_option(p, f)
    return p


def _parse(argv: list[str] | None, log) -> tuple[argparse.Namespace, RunContext, tuple[str, ...], tuple | None]:
    """The study's own options and the probe's, refused now if they make no table."""
    args, rest = build_parser().parse_known_args(argv)
    if args.rerender:
        return args, None, (), None
    knobs = tuple(k.strip() for k in args.knobs.split(",") if k.strip())
    bad = [k for k in knobs if k not in KNOBS]
    if bad:
        raise UserError(f"unknown knob(s) {', '.join(map(repr, bad))}; choose from {', '.join(KNOBS)}")
    if args.cv_folds < 2:
        raise UserError("--cv-folds must be at least 2")
    pair = None
    if args.encoding_pair:
        pair = tuple(s.strip() for s in args.encoding_pair.split(","))
        if len(pair) != 2 or not all(pair):
            raise UserError(f"--encoding-pair {args.encoding_pair!r}: give two data specs, lossless,jpeg")
    run = parse_run(CIFAR10_PROBE, rest, log)
    names = sorted({n for n, _ in run.rows})
    if len(names) != 1 or run.controls:
        raise UserError(f"--extractor: the sensitivity table takes one extractor, got {', '.join(names) or 'none'}")
    if run.bn_mode != "population":
        raise UserError("--bn-mode: the default is population statistics; batch statistics are one of the knob's "
                        "settings")
    return args, run, knobs, pair


def _measure(run: RunContext, data: ProtocolData, extractor, name: str, settings: list[Setting],
             bn_images: torch.Tensor | None, log) -> tuple[list[Outcome], list[Outcome], Any]:
    """Every setting's outcome (the encoding pair's apart), features extracted once per
    extraction setting; also the default's features, which the split-noise evaluations reuse."""
    import mlflow

    x, x_test = data.train.images.to(run.device), data.test.images.to(run.device)
    outcomes, encoding = [], []
    default_raw, current = None, (None, None, None)  # current: (extraction, extractor, features) of a variant
    progress = Progress("sensitivity settings", len(settings), unit="settings")

    def extract(ex, s: Setting):
        t0 = time.perf_counter()
        raw = raw_features(ex, x, x_test)
        log(f"  features for {s.knob}: {s.name}: {tuple(raw[0].shape)} in {time.perf_counter() - t0:.1f} s")
        return raw

    for s in settings:
        if s.data is not None:
            out, _ = encoding_outcome(run, s, name, log)
            encoding.append(out)
        else:
            if s.extraction == Setting("", "").extraction:  # the default's features: extracted once, kept
                default_raw = default_raw if default_raw is not None else extract(extractor, s)
                ex, raw = extractor, default_raw
            else:  # one extraction per (batchnorm, pooling); the knob's next setting may reuse it
                if current[0] != s.extraction:
                    current = (None, None, None)  # free the last variant's features first
                    ex = variant(extractor, s, bn_images)
                    current = (s.extraction, ex, extract(ex, s))
                _, ex, raw = current
            out = evaluate(run, data, s, raw, ex, test_every=s.default)
            outcomes.append(out)
        log(f"  {s.knob}: {s.name}: all labels {out.full.test_accuracy:.2f}% (C {out.full.chosen:g}), "
            f"{out.extra.get('per_class', run.per_class)}/class {out.draws.test_accuracy:.2f} ± "
            f"{out.draws.test_std:.2f}% in {out.seconds:.0f} s")
        with mlflow.start_run(run_name=f"{s.knob}: {s.name}", nested=True):
            mlflow.log_params({"knob": s.knob, "setting": s.name, "C_all": out.full.chosen,
                               "C_draws": out.draws.chosen})
            mlflow.log_metrics({"test_accuracy": out.full.test_accuracy, "draws_test_accuracy":
                                out.draws.test_accuracy, "draws_std": out.draws.test_std, "seconds": out.seconds})
        progress.update(1)
    return outcomes, encoding, default_raw


def _split_noise(run: RunContext, data: ProtocolData, default_out: Outcome, default_raw, extractor,
                 split_seeds: int, log) -> list[float]:
    """The default's all-labels test accuracy on ``split_seeds`` validation splits (its own first)."""
    split_accs = [default_out.full.test_accuracy]
    for j in range(1, split_seeds):
        val_idx, rest_idx = class_balanced_split(data.train.labels, len(data.val_idx), run.seed + 100 + j)
        o = evaluate(run, data, default_out.setting, default_raw, extractor, val_fit=(val_idx, rest_idx),
                     draws=False)
        split_accs.append(o.full.test_accuracy)
        log(f"  default on validation split {j + 1}/{split_seeds}: all labels {o.full.test_accuracy:.2f}% "
            f"(C {o.full.chosen:g})")
    return split_accs


def _with_provenance(rows: list[SensitivityRow], run: RunContext, data: ProtocolData, extractor,
                     run_id: str) -> list[SensitivityRow]:
    prov = provenance(run.device)
    scale = ("paper: all 50,000 train / 10,000 test images" if run.preset.train_images is None
             else f"{run.preset.name}: {len(data.train):,} train / {len(data.test):,} test images")
    common = {"extractor": extractor.label, "preset": run.preset.name, "dataset": data.train.description,
              "gan_data": learned_from(extractor, data), "device": prov["device"],
              "torch": prov["torch"], "commit": prov["commit"], "dirty": prov["dirty"],
              "date": dt.date.today().isoformat(), "seed": run.seed, "data_sha256": data.train.sha256,
              "mlflow_run_id": run_id}
    # A row's own scale (the encoding pair's) wins.
    return [dataclasses.replace(r, **common, scale=r.scale or scale) for r in rows]


def knobs_rerun(knobs: tuple[str, ...]):
    """The earlier rows a run asked for ``knobs`` replaces: those knobs' and the default's, for the
    same extractor, preset and data (every other row it writes replaces only its own key)."""
    scope = ["extractor", "preset", "data_sha256"]

    def replaces(existing: pd.DataFrame, new: pd.DataFrame) -> pd.Series:
        same = existing[scope].astype(str).apply(tuple, axis=1).isin(set(new[scope].astype(str).apply(tuple, axis=1)))
        return same & existing["knob"].isin({"default", *knobs})

    return replaces


def main(argv: list[str] | None = None, log=print) -> list[SensitivityRow]:
    args, run, knobs, pair = _parse(argv, log)
    if args.rerender:
        log(f"rendered {rerender()}")
        return []
    name = next(n for n, _ in run.rows)
    check_tracking_store()
    results_dir = checked_results_dir(run, "sensitivity", SENSITIVITY.read)
    bn_images = load_split(args.bn_data, "train", download=False).images if args.bn_data else None
    t_start = time.perf_counter()
    data = load_data(run, log)
    check_label_pool(run, data)
    extractor = registry.build(name, build_context(run, data, run.out / "sensitivity" / name))
    if isinstance(extractor, LayeredExtractor) and extractor.learns_from_data:  # a D trained by this run
        raise UserError(f"--extractor {name} trains a GAN: train it with the CIFAR-10 probe first, then pass its "
                        f"--discriminator <run>/gan/chosen.pt (or newmu-svhn:<dir>)")
    steps = plan(extractor, bn_data=args.bn_data, encoding_pair=pair, cv_folds=args.cv_folds, knobs=knobs,
                 draws_cv_folds=run.spec.draws_cv_folds, pretrained=run.discriminator is not None)
    settings = [s for s in steps if isinstance(s, Setting)]
    skipped = [s for s in steps if isinstance(s, Skipped)]
    config = {"protocol": "sensitivity", "extractor": extractor.label, "preset": run.preset.name, "seed": run.seed,
              "knobs": list(knobs), "split_seeds": args.split_seeds, "cv_folds": args.cv_folds, "data": str(run.data),
              "data_sha256": data.train.sha256, "per_class": run.per_class, "draws": run.draws,
              "bn_data": args.bn_data, "encoding_pair": list(pair) if pair else None,
              "settings": [dataclasses.asdict(s) for s in settings], "extractor_settings": extractor.settings()}
    import mlflow

    with tracked_run("sensitivity", f"{extractor.label} [{run.preset.name}]", config, run.device) as mlflow_run:
        log(f"sensitivity: {extractor.label}, preset {run.preset.name}: {len(settings)} settings "
            f"(+{args.split_seeds - 1} more validation splits of the default), {len(skipped)} not measurable here")
        t0 = time.perf_counter()
        fit_info = extractor.fit(data.gan_images.to(run.device))
        mlflow.log_metrics({"fit_s": time.perf_counter() - t0} | {k: float(v) for k, v in fit_info.items()})
        outcomes, encoding, default_raw = _measure(run, data, extractor, name, settings, bn_images, log)
        split_accs = _split_noise(run, data, outcomes[0], default_raw, extractor, args.split_seeds, log)
        mlflow.log_metric("default_split_std", _std(split_accs))
        rows = make_rows(outcomes, skipped, split_accs, run.per_class, encoding)
        rows = _with_provenance(rows, run, data, extractor, mlflow_run.info.run_id)
        log(f"sensitivity done in {time.perf_counter() - t_start:.0f} s")
        publish(run, SENSITIVITY, rows, results_dir, log, replaces=knobs_rerun(knobs))
    return rows


if __name__ == "__main__":
    run_cli(main)
