"""One runner for every protocol: data -> extractor.fit -> features (once) -> classifier
chosen on validation -> test -> MLflow + results table.

A protocol is only a :class:`~benchmarks.protocol.spec.ProtocolSpec` (which splits, how many
labels, which metrics); a preset only says how much to run; an extractor describes itself
(label, what it learned from, settings).  So nothing here tests an extractor's or a
preset's name: what differs between them is data on them.  Each row runs in three steps,
*compute* (:func:`compute_features`), *evaluate* (:func:`evaluate`), *record*
(:func:`record`), and only :class:`~benchmarks.protocol.row.ResultRow`s leave it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from baselines import registry
from baselines.interface import FeatureExtractor
from benchmarks.classifiers.registry import CLASSIFIERS
from benchmarks.protocol import evaluation
from benchmarks.protocol.context import RunContext, parse_run, resolve_run
from benchmarks.protocol.control import evaluate_supervised
from benchmarks.protocol.data import ProtocolData, check_label_pool, check_unseen_validation, kept_test_rows, load_data
from benchmarks.protocol.evaluation import Evaluation, Standardizer
from benchmarks.protocol.gan_record import training_record, write_record
from benchmarks.protocol.options import RunOptions
from benchmarks.protocol.results import (
    checked_results_dir,
    draws_choice_note,
    format_value,
    publish,
    table,
)
from benchmarks.protocol.row import ResultRow
from benchmarks.protocol.spec import CIFAR10_PROBE, SVHN_1000, ProtocolSpec
from benchmarks.protocol.splits import draw_per_class
from dcgan_ref.runtime.distributed import gather_rows, init_from_env, share_object
from dcgan_ref.runtime.errors import UserError
from dcgan_ref.runtime.limits import describe_limits, device_limits
from dcgan_ref.runtime.tracking import check_tracking_store, provenance, tracked_run

__all__ = ["CIFAR10_PROBE", "SVHN_1000", "ProtocolSpec", "run_protocol"]

CONTROLS = {"supervised": evaluate_supervised}


def _quiet(*_: object) -> None:  # the log of ranks other than 0
    pass  # the protocols' control evaluators, by --extractor name


# ------------------------------------------------------------------ compute
@dataclass
class Features:
    """One extractor's standardised features of the protocol's train and test images."""
    extractor: FeatureExtractor
    train: torch.Tensor
    test: torch.Tensor
    metrics: dict[str, float]  # what fit and extraction reported (timings included)


def build_context(run: RunContext, data: ProtocolData, out_dir: Path) -> registry.BuildContext:
    return registry.BuildContext(
        device=run.device, seed=run.seed, image_size=data.train.images.shape[-1],
        n_fit_images=len(data.gan_images), out_dir=out_dir, arch=run.arch, bn_mode=run.bn_mode,
        discriminator=run.discriminator, resume=run.resume, configs=run.preset.extractors)


def learned_from(extractor: FeatureExtractor, data: ProtocolData) -> str:
    """A row's ``gan_data``: what the extractor learned from (a released D: what it was trained on; "-": nothing)."""
    if extractor.learns_from_data:
        return data.gan_description
    return getattr(extractor, "trained_on", "") or "-"


def make_validator(run: RunContext, data: ProtocolData, x: torch.Tensor, y: torch.Tensor):
    """Scores an extractor's current state by L2-SVM validation accuracy (chooses the GAN's length).

    The SVM sees only the protocol's smallest label budget (one label-scarce draw: 1,000
    labels in svhn_1000, 400 per class in the CIFAR-10 probe), so choosing the length uses
    no label the protocol does not allow; the validation split itself is the protocol's.
    """
    fit_idx = draw_per_class(data.train.labels, data.rest_idx, run.per_class, run.seed * 1000).to(x.device)
    val_rows = data.val_rows
    grid = run.preset.C_grid[::2]  # every other C: a score to rank lengths by, not the final choice

    def validate(extractor: FeatureExtractor) -> float:
        f, v = extractor.transform(x[fit_idx]), extractor.transform(x[val_rows])
        std = Standardizer.fit(f)
        clf = CLASSIFIERS["svm"](len(data.train.classes))
        preds = clf.sweep(std.apply_(f), y[fit_idx], grid)
        v = std.apply_(v)
        return max(evaluation.accuracy(p(v), y[val_rows]) for p in preds.values())

    return validate


def compute_features(run: RunContext, data: ProtocolData, extractor: FeatureExtractor, log=print) -> Features | None:
    """Fit the extractor on the unlabelled data, extract train and test features once, standardise.

    Under torchrun, rank 0 fits, every rank extracts its share of the images with rank 0's
    extractor, and rank 0 alone gets the features (the other ranks: ``None``).
    """
    world = run.world
    x, y = data.train.images.to(run.device), data.train.labels.to(run.device)
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if world.main:
        validate = make_validator(run, data, x, y) if run.preset.gan.eval_epochs else None
        info = extractor.fit(data.gan_images.to(run.device), validate=validate)
    extractor = share_object(extractor, world, run.device)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    f_train = gather_rows(extractor.transform, x, world)
    f_test = gather_rows(extractor.transform, data.test.images.to(run.device), world)
    features_s = time.perf_counter() - t0
    if not world.main:
        return None
    std = Standardizer.fit(f_train)  # statistics of the training features only
    std.apply_(f_train)
    std.apply_(f_test)
    log(f"[{extractor.label}] fit {fit_s:.1f} s, features {tuple(f_train.shape)} in {features_s:.1f} s")
    metrics = {k: float(v) for k, v in info.items()} | {"fit_s": fit_s, "features_s": features_s,
                                                       "feature_dim": f_train.shape[1], "world_size": world.size}
    return Features(extractor, f_train, f_test, metrics)


# ------------------------------------------------------------------ evaluate
@dataclass
class Scored:
    """One evaluation of one classifier, with the metric it reports and the solver's record."""
    metric: str
    value: float
    evaluation: Evaluation
    solver: list[dict[str, Any]]
    notes: str = ""  # what the row's notes say about this evaluation


def _stored(x: float) -> float:
    """What a row stores; logs print this too, so a log line and its table agree to the digit."""
    return round(x, 3)


def evaluate(run: RunContext, data: ProtocolData, feats: Features, kind: str, log=print) -> list[Scored]:
    """The protocol's evaluations of one classifier on the features: all labels (if the
    protocol has it) and the label-scarce draws.  Choices are made on validation only."""
    spec, preset = run.spec, run.preset
    cls = CLASSIFIERS[kind]
    grid = getattr(preset, cls.preset_grid)
    y, y_test = data.train.labels.to(run.device), data.test.labels.to(run.device)
    n_classes = len(data.train.classes)
    scored = []
    if spec.full_data:
        clf = cls(n_classes)
        ev = evaluation.full_data_eval(clf, feats.train, y, feats.test, y_test, data.val_rows, data.fit_rows, grid)
        scored.append(Scored("test_accuracy", ev.test_accuracy, ev, clf.diagnostics()))
        log(f"  all labels: {clf.hyper}={ev.chosen:g} (val {ev.val_scores[ev.chosen]:.2f}%) -> test "
            f"{format_value(_stored(ev.test_accuracy))}%")
        keep = kept_test_rows(run, data)
        if keep is not None:  # the same fit and C, scored on the test images without near-duplicates in train
            acc = evaluation.accuracy(ev.test_pred[keep], y_test[keep])
            removed = int((~keep).sum())
            scored.append(Scored("test_accuracy_no_near_duplicates", acc, ev, clf.diagnostics(),
                                 notes=f"{removed} of {len(keep)} test images removed: near-duplicates of train "
                                       f"images listed in {run.exclude_near_duplicates.path}"))
            log(f"  all labels without {removed} near-duplicate test images: test {format_value(_stored(acc))}%")
    clf = cls(n_classes)
    ev = evaluation.label_draws_eval(clf, feats.train, y, feats.test, y_test, data.val_rows, data.rest_idx,
                                     run.per_class, run.draws, run.seed, grid, cv_folds=spec.draws_cv_folds)
    value = 100.0 - ev.test_accuracy if spec.report_error else ev.test_accuracy
    metric = spec.draws_metric_for(run.per_class, n_classes)
    choice = draws_choice_note(spec.draws_cv_folds, clf.hyper, run.per_class * n_classes)
    scored.append(Scored(metric, value, ev, clf.diagnostics(), notes=choice))
    log(f"  {run.per_class} labels/class x {run.draws} draws: {clf.hyper}={ev.chosen:g} -> "
        f"{metric} {format_value(_stored(value), _stored(ev.test_std))}%" + (f" ({choice})" if choice else ""))
    for s in scored:
        if len(grid) > 1 and s.evaluation.chosen in (min(grid), max(grid)):
            log(f"  warning: {clf.hyper}={s.evaluation.chosen:g} is at the edge of the grid {list(grid)}; widen it")
    return scored


# ------------------------------------------------------------------ record

def _solver_warnings(scored: Scored) -> list[str]:
    bad = [f for f in scored.solver if not f["converged"]]
    if not bad:
        return []
    worst = max(bad, key=lambda f: f["rel_gap"])
    return [f"{scored.metric}: {len(bad)} of {len(scored.solver)} SVM solves stopped unconverged "
            f"(worst: C={worst['C']:g}, relative duality gap {worst['rel_gap']:.1e})"]


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GB (Linux reports kB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)


def record(run: RunContext, data: ProtocolData, feats: Features, kind: str, scored: list[Scored], mlflow_run,
           wall_s: float, log=print) -> list[ResultRow]:
    """Log one classifier's evaluations to MLflow (a nested run each) and make their rows."""
    import mlflow

    ex, prov = feats.extractor, provenance(run.device)
    clf_name, hyper = CLASSIFIERS[kind].name, CLASSIFIERS[kind].hyper
    rows = []
    for s in scored:
        ev = s.evaluation
        with mlflow.start_run(run_name=f"{clf_name}: {s.metric}", nested=True):
            mlflow.log_params({"classifier": clf_name, "hyper": hyper, "chosen": ev.chosen})
            for i, (h, acc) in enumerate(sorted(ev.val_scores.items())):
                mlflow.log_metric("val_accuracy", acc, step=i)
            for i, fit in enumerate(s.solver):  # per solve: the convergence certificate
                mlflow.log_metrics({f"solver_{k}": float(v) for k, v in fit.items()}, step=i)
            mlflow.log_metrics({s.metric: s.value} | ({s.metric + "_std": ev.test_std} if ev.kind == "draws" else {}))
            for d in ev.draws:
                with mlflow.start_run(run_name=f"label draw seed {d['seed']}", nested=True):
                    mlflow.log_params({"draw_seed": d["seed"], "per_class": run.per_class, hyper: ev.chosen})
                    mlflow.log_metrics({"val_accuracy": d["val_accuracy"], "test_accuracy": d["test_accuracy"]})
        mlflow.log_metric(f"{s.metric}.{kind}", s.value)
        warnings = _solver_warnings(s)
        for w in warnings:
            log(f"  warning: {w}")
        draws = ev.kind == "draws"
        rows.append(ResultRow(
            protocol=run.spec.name, dataset=data.train.description, extractor=ex.label, classifier=clf_name,
            gan_data=learned_from(ex, data),
            preset=run.preset.name,
            metric=s.metric, value=_stored(s.value), std=_stored(ev.test_std) if draws else None,
            n_draws=run.draws if draws else None, feature_dim=feats.train.shape[1],
            C=ev.chosen if hyper == "C" else None, k=ev.chosen if hyper == "k" else None,
            wall_s=round(wall_s, 1), n_train=run.per_class * len(data.train.classes) if draws else len(data.train),
            n_test=len(data.test), peak_rss_gb=peak_rss_gb(),
            device=prov["device"], torch=prov["torch"], commit=prov["commit"],
            dirty=prov["dirty"], date=dt.date.today().isoformat(), seed=run.seed, data_sha256=data.train.sha256,
            mlflow_run_id=mlflow_run.info.run_id, notes="; ".join(n for n in (ex.notes, s.notes, *warnings) if n)))
    return rows


def evaluate_extractor(run: RunContext, data: ProtocolData, name: str, kinds: list[str], log=print,
                       records: list[tuple] | None = None) -> list[ResultRow]:
    """One extractor: fit and extract once, then every classifier asked for, in one MLflow run.
    A GAN trained here appends its record (``gan_publish.training_record``) to ``records``."""
    import mlflow

    t0 = time.perf_counter()
    # One folder per (extractor, preset, seed, data), so --resume finds an interrupted run's checkpoint.
    out_dir = run.out / run.spec.name / f"{name}-{run.preset.name}-seed{run.seed}-{data.train.sha256[:8]}"
    extractor = registry.build(name, build_context(run, data, out_dir))
    check_unseen_validation(run, data, getattr(extractor, "trained_on", ""), getattr(extractor, "scored_on", None))
    if not run.world.main:  # its share of the extraction; rank 0 evaluates and records
        compute_features(run, data, extractor, log)
        return []
    config = _base_config(run, data) | {"extractor": extractor.label, "classifiers": kinds,
                                        "extractor_settings": extractor.settings()}
    with tracked_run(run.spec.name, f"{extractor.label} [{run.preset.name}]", config, run.device) as mlflow_run:
        limits = device_limits(run.device)  # what each phase's time is measured against
        mlflow.log_metrics(limits)
        log(f"[{extractor.label}] this device: {describe_limits(limits)}")
        feats = compute_features(run, data, extractor, log)
        mlflow.log_metrics(feats.metrics)
        if records is not None and getattr(feats.extractor, "training", None):
            records.append(_training_record(run, data, feats.extractor, mlflow_run.info.run_id))
        scored = {kind: evaluate(run, data, feats, kind, log) for kind in kinds}
        wall = time.perf_counter() - t0
        mlflow.log_metric("wall_s", wall)
        return [row for kind in kinds for row in record(run, data, feats, kind, scored[kind], mlflow_run, wall, log)]


def validation_description(run: RunContext, data: ProtocolData) -> str:
    """What ``make_validator`` scores: the words a published curve carries beside its numbers."""
    return (f"D's features on {data.train.description}'s {run.spec.name} validation split ({len(data.val_idx):,} "
            f"images), one {run.per_class * len(data.train.classes):,}-label draw, L2-SVM (never the test split)")


def _training_record(run: RunContext, data: ProtocolData, extractor: FeatureExtractor, run_id: str) -> tuple:
    return training_record(extractor.training, name=f"{run.spec.name}-{extractor.training['arch']}-{run_id[:8]}",
                           protocol=run.spec.name, gan_data=data.gan_description,
                           scored_by=validation_description(run, data),
                           provenance=provenance(run.device),
                           mlflow_run_id=run_id, command=f"nox -s {run.spec.name} -- --preset {run.preset.name}")


def _base_config(run: RunContext, data: ProtocolData) -> dict[str, Any]:
    return {"protocol": run.spec.name, "preset": run.preset.name, "dataset": data.train.description,
            "seed": run.seed, "arch": run.arch, "n_train": len(data.train), "n_val": len(data.val_idx),
            "n_test": len(data.test), "draws": run.draws, "per_class": run.per_class, "data": str(run.data),
            "data_sha256": data.train.sha256, "test_sha256": data.test.sha256, "gan_data": data.gan_description,
            "bn_mode": run.bn_mode, "preset_settings": run.preset.settings(),
            "exclude_near_duplicates": str(run.exclude_near_duplicates.path) if run.exclude_near_duplicates else None}


# ------------------------------------------------------------------ the whole protocol
def run_protocol(spec: ProtocolSpec, options: RunOptions | list[str] | None = None, log=print) -> list[ResultRow]:
    """The protocol, end to end: options built in Python (``RunOptions``), or a command line."""
    run = resolve_run(spec, options, log) if isinstance(options, RunOptions) else parse_run(spec, options, log)
    # Under torchrun the ranks share the feature extraction; the others wait while rank 0
    # fits (a GAN can take hours), so their collectives must wait that long.
    world, device = init_from_env(run.device, timeout=dt.timedelta(hours=48))
    if world.size > 1 and run.bn_mode == "batch":
        raise UserError("--bn-mode batch normalises each image with its batch's statistics, so its features "
                        "depend on how the images are split over ranks: run it in one process")
    run = dataclasses.replace(run, world=world, device=device)
    if not world.main:
        log = _quiet
    # Everything that can fail without computing fails first, in seconds: the store the
    # runs log to, and the folder the rows go to (not after an hour of compute).
    check_tracking_store()
    results_dir = checked_results_dir(run)
    by_extractor: dict[str, list[str]] = {}
    for name, kind in run.rows:  # one fit per extractor, however many classifiers
        by_extractor.setdefault(name, []).append(kind)
    log(f"{spec.name}: preset {run.preset.name}, device {run.device}, arch {run.arch}, rows: "
        f"{', '.join(f'{n}+{k}' for n, k in run.rows)}{''.join(f' + {c}' for c in run.controls)}")
    t0 = time.perf_counter()
    data = load_data(run, log)
    check_label_pool(run, data)
    keep = kept_test_rows(run, data)  # a list made for other data fails now, not after the extractor's fit
    if keep is not None:
        log(f"--exclude-near-duplicates: all-labels accuracy also without {int((~keep).sum())} of {len(keep)} "
            f"test images")
    rows: list[ResultRow] = []
    records: list[tuple] = []  # each GAN trained here: its curve, losses and samples, written beside the rows
    for name, kinds in by_extractor.items():
        rows += evaluate_extractor(run, data, name, kinds, log, records)
    if not world.main:
        return rows
    for control in run.controls:
        rows += CONTROLS[control](run, data, _base_config(run, data), log)
    log(f"{spec.name} done in {time.perf_counter() - t0:.1f} s\n")
    publish(run, table(spec.name), rows, results_dir, log)
    for record in records if run.write_results else ():
        log(f"wrote {write_record(results_dir / 'gan_runs' / record[0], *record[1:])}")
    return rows
