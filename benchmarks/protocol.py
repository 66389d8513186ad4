"""One runner for every protocol: data -> extractor.fit -> features (once) -> classifier
chosen on validation -> test -> MLflow + results table.  A protocol is only a
``ProtocolSpec``: which splits, how many labels, which metrics.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from baselines.registry import EXTRACTORS, build_extractor, parse_extractors
from benchmarks import probe
from benchmarks.presets import PRESETS, Preset, resolve_preset
from benchmarks.results import merge_rows, render_markdown, write_results
from dcgan_ref.data import DataError, ImageSet, load_split
from dcgan_ref.errors import UserError
from dcgan_ref.tracking import provenance, tracked_run
from dcgan_ref.train import pick_device


@dataclass(frozen=True)
class ProtocolSpec:
    name: str                       # experiment name and results file stem
    default_dataset: str            # "cifar10" | "svhn"
    n_val: Callable[[int], int]     # validation split size given the training-set size
    per_class: int                  # labels per class in the label-scarce draws
    full_data: bool                 # also the probe with every training label
    draws_metric: str               # metric name of the label-scarce result
    report_error: bool              # label-scarce result as error (SVHN) or accuracy (CIFAR-10)
    gan_data_default: str           # "train" or "train-minus-val"
    supervised_control: bool = False  # the paper's supervised CNN row (SVHN table)


CIFAR10_PROBE = ProtocolSpec("cifar10_probe", "cifar10", lambda n: n // 10, 400, True,
                             "test_accuracy_400pc", False, "train")
SVHN_1000 = ProtocolSpec("svhn_1000", "svhn", lambda n: min(10_000, n // 5), 100, False,
                         "test_error_1000", True, "train-minus-val", supervised_control=True)


def build_parser(spec: ProtocolSpec) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{spec.name}",
                                description=f"The {spec.name} protocol (see README and shared/design/PAPER.md).")
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: paper on a GPU, quick otherwise")
    p.add_argument("--data", default=f"data/{spec.default_dataset}",
                   help="labelled data: official files folder, image-folder tree or archive")
    p.add_argument("--dataset", choices=["cifar10", "svhn"], default=spec.default_dataset,
                   help="which official set --data holds (used to fetch it when absent)")
    p.add_argument("--gan-data", help=f"unlabelled data for the GAN/K-means: a path, or 'train' / 'train+extra' "
                   f"(default: {spec.gan_data_default})")
    p.add_argument("--gan-split", default="train", help="split of --gan-data when it is a path")
    p.add_argument("--extractor", default="dcgan", help=f"comma list of {', '.join(EXTRACTORS)}"
                   f"{', supervised' if spec.supervised_control else ''}, or 'all'")
    p.add_argument("--classifier", default="svm", help="svm, knn or svm,knn")
    p.add_argument("--discriminator", help="use this D instead of training one: newmu-svhn:<dir> or <run>/gan/last.pt")
    p.add_argument("--bn-mode", choices=["population", "batch"], default="population")
    p.add_argument("--draws", type=int, help="label-scarce draws (default: the preset's)")
    p.add_argument("--trials", type=int, help="random-search trials of the supervised control (paper: 64)")
    p.add_argument("--gan-epochs", type=float, help="override the preset's GAN training length")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--out", default="runs", help="GAN checkpoints and samples go under <out>/<protocol>/")
    p.add_argument("--results-dir", help="where the tables go (default: the repo's results/)")
    p.add_argument("--no-results", action="store_true", help="do not write results/ (smoke never does)")
    return p


# ------------------------------------------------------------------ data
@dataclass
class ProtocolData:
    train: ImageSet
    test: ImageSet
    val_idx: torch.Tensor
    rest_idx: torch.Tensor
    gan_images: torch.Tensor
    gan_description: str


def load_data(spec: ProtocolSpec, args: argparse.Namespace, preset: Preset, log=print) -> ProtocolData:
    download = not args.no_download
    t0 = time.perf_counter()
    train, test = _load_splits(args.data, ("train", "test"), args.dataset, download)
    train = train.subset(probe.balanced_subset(train.labels, preset.train_images, args.seed))
    test = test.subset(probe.balanced_subset(test.labels, preset.test_images, args.seed + 1))
    n_val = preset.val_images or spec.n_val(len(train))
    val_idx, rest_idx = probe.class_balanced_split(train.labels, n_val, args.seed + 2)

    gan = args.gan_data or spec.gan_data_default
    if gan == "train":
        gan_images, gan_desc = train.images, f"{train.description} train"
    elif gan == "train-minus-val":
        gan_images, gan_desc = train.images[rest_idx], f"{train.description} train minus validation"
    elif gan == "train+extra":
        extra = load_split(args.data, "extra", dataset=args.dataset, download=download)
        gan_images, gan_desc = torch.cat([train.images[rest_idx], extra.images]), f"{train.description} train+extra"
    else:
        other = load_split(gan, args.gan_split, download=False)
        gan_images, gan_desc = other.images, f"{other.description} {args.gan_split}"
    if preset.gan_images is not None and preset.gan_images < len(gan_images):
        keep = torch.randperm(len(gan_images), generator=torch.Generator().manual_seed(args.seed + 3))
        gan_images = gan_images[keep[: preset.gan_images]]
    log(f"data: {train.description}: {len(train)} train ({len(val_idx)} validation), {len(test)} test; "
        f"GAN/unsupervised data: {gan_desc} ({len(gan_images)} images); loaded in {time.perf_counter() - t0:.1f} s")
    return ProtocolData(train, test, val_idx, rest_idx, gan_images, gan_desc)


def _load_splits(spec: str, splits: tuple[str, ...], dataset: str, download: bool) -> list[ImageSet]:
    """Every split the protocol needs; when some are missing or bad, one error naming them all."""
    loaded, errors = [], []
    for split in splits:
        try:
            loaded.append(load_split(spec, split, dataset=dataset, download=download))
        except DataError as e:
            errors.append(str(e))
    if errors:
        raise DataError("\n".join(errors))
    return loaded


# ------------------------------------------------------------------ one (extractor, classifier) row
def _classifier(kind: str, n_classes: int) -> probe.Classifier:
    return probe.L2SVMClassifier(n_classes) if kind == "svm" else probe.KNNClassifier(n_classes)


def _grid(kind: str, preset: Preset) -> tuple:
    return preset.C_grid if kind == "svm" else preset.knn_grid


def make_validator(x: torch.Tensor, y: torch.Tensor, data: ProtocolData, preset: Preset, seed: int):
    """Scores an extractor's current state: L2-SVM validation accuracy (for choosing GAN length)."""
    fit_idx = data.rest_idx[torch.randperm(len(data.rest_idx), generator=torch.Generator().manual_seed(seed))[:10_000]]
    clf = probe.L2SVMClassifier(len(data.train.classes))

    def validate(extractor) -> float:
        f, v = extractor.transform(x[fit_idx.to(x.device)]), extractor.transform(x[data.val_idx.to(x.device)])
        std = probe.Standardizer.fit(f)
        yf, yv = y[fit_idx.to(y.device)], y[data.val_idx.to(y.device)]
        preds = clf.sweep(std(f), yf.to(f.device), preset.C_grid[::2])
        return max(probe.accuracy(p(std(v)), yv) for p in preds.values())

    return validate


def evaluate_row(spec: ProtocolSpec, args, preset: Preset, data: ProtocolData, name: str, kind: str,
                 device: torch.device, log=print) -> list[dict[str, Any]]:
    """Fit one extractor, extract features once, run the protocol's evaluations; return rows."""
    import mlflow

    t0 = time.perf_counter()
    run_dir = Path(args.out) / spec.name / f"{dt.datetime.now():%Y%m%d-%H%M%S}-{name}"
    x, y = data.train.images.to(device), data.train.labels.to(device)
    x_test, y_test = data.test.images.to(device), data.test.labels.to(device)
    n_classes = len(data.train.classes)
    draws = args.draws or preset.n_draws
    per_class = preset.per_class or spec.per_class
    base = {"protocol": spec.name, "preset": preset.name, "dataset": data.train.description, "seed": args.seed,
            "n_train": len(x), "n_val": len(data.val_idx), "n_test": len(x_test), "draws": draws, "per_class": per_class,
            "data": str(args.data), "data_sha256": data.train.sha256, "test_sha256": data.test.sha256,
            "gan_data": data.gan_description, "preset_settings": dataclasses.asdict(preset)}

    if name == "supervised":
        return _supervised_row(spec, args, preset, data, device, base, t0, log)

    extractor = build_extractor(name, preset, device=device, seed=args.seed, n_fit_images=len(data.gan_images),
                                out_dir=run_dir, discriminator=args.discriminator)
    if hasattr(extractor, "bn_mode"):
        extractor.bn_mode = args.bn_mode
    label = extractor.name if name != "dcgan" or args.discriminator else f"dcgan ({preset.arch})"
    if name == "random-d":
        label = f"random-init D ({preset.arch})"
    config = base | {"extractor": label, "classifier": kind, "extractor_settings": extractor.settings()}
    with tracked_run(spec.name, f"{label} + {kind} [{preset.name}]", config, device) as run:
        validate = make_validator(x, y, data, preset, args.seed) if preset.eval_epochs else None
        t_fit = time.perf_counter()
        info = extractor.fit(data.gan_images.to(device), validate=validate)
        fit_s = time.perf_counter() - t_fit
        t_feat = time.perf_counter()
        f_train, f_test = extractor.transform(x), extractor.transform(x_test)
        feat_s = time.perf_counter() - t_feat
        std = probe.Standardizer.fit(f_train)
        f_train, f_test = std(f_train), std(f_test)
        mlflow.log_metrics({k: float(v) for k, v in info.items()} | {"fit_s": fit_s, "features_s": feat_s,
                                                                    "feature_dim": f_train.shape[1]})
        log(f"[{label} + {kind}] fit {fit_s:.1f} s, features {tuple(f_train.shape)} in {feat_s:.1f} s")

        clf, grid = _classifier(kind, n_classes), _grid(kind, preset)
        evaluations = []
        if spec.full_data:
            with mlflow.start_run(run_name="all labels: hyperparameter sweep", nested=True):
                ev = probe.full_data_eval(clf, f_train, y, f_test, y_test, data.val_idx, data.rest_idx, grid)
                mlflow.log_params({"hyper": clf.hyper, "chosen": ev.chosen})
                for i, (h, acc) in enumerate(ev.val_scores.items()):
                    mlflow.log_metric("val_accuracy", acc, step=i)
                mlflow.log_metric("test_accuracy", ev.test_accuracy)
            evaluations.append(("test_accuracy", ev))
            log(f"  all labels: {clf.hyper}={ev.chosen:g} (val {ev.val_scores[ev.chosen]:.2f}%) -> test {ev.test_accuracy:.2f}%")
        ev = probe.label_draws_eval(clf, f_train, y, f_test, y_test, data.val_idx, data.rest_idx, per_class, draws,
                                    args.seed, grid)
        for d in ev.draws:
            with mlflow.start_run(run_name=f"label draw seed {d['seed']}", nested=True):
                mlflow.log_params({"draw_seed": d["seed"], "per_class": per_class, clf.hyper: ev.chosen})
                mlflow.log_metrics({"val_accuracy": d["val_accuracy"], "test_accuracy": d["test_accuracy"]})
        evaluations.append((spec.draws_metric, ev))
        for _, e in evaluations:
            if len(grid) > 1 and e.chosen in (min(grid), max(grid)):
                log(f"  warning: {clf.hyper}={e.chosen:g} is at the edge of the grid {list(grid)}; widen it")
        log(f"  {per_class} labels/class x {draws} draws: {clf.hyper}={ev.chosen:g} -> test "
            f"{ev.test_accuracy:.2f} ± {ev.test_std:.2f}%")

        wall = time.perf_counter() - t0
        rows = []
        prov = provenance(device)
        for metric, ev in evaluations:
            value = 100.0 - ev.test_accuracy if spec.report_error and metric == spec.draws_metric else ev.test_accuracy
            mlflow.log_metric(metric, value)
            if ev.kind == "draws":
                mlflow.log_metric(metric + "_std", ev.test_std)
            rows.append({
                "protocol": spec.name, "dataset": data.train.description, "extractor": label, "classifier": clf.name,
                "gan_data": data.gan_description if _learns_from_data(name, args) else "-",
                "preset": preset.name, "metric": metric, "value": round(value, 3),
                "std": round(ev.test_std, 3) if ev.kind == "draws" else None,
                "n_draws": draws if ev.kind == "draws" else None, "feature_dim": f_train.shape[1],
                "C": ev.chosen if kind == "svm" else None, "k": ev.chosen if kind == "knn" else None,
                "batch": None, "wall_s": round(wall, 1), "device": prov["device"], "torch": prov["torch"],
                "commit": prov["commit"], "dirty": prov["dirty"], "date": dt.date.today().isoformat(), "seed": args.seed,
                "data_sha256": data.train.sha256, "mlflow_run_id": run.info.run_id,
                "notes": _notes(extractor, info, preset),
            })
        mlflow.log_metric("wall_s", wall)
    return rows


def _learns_from_data(name: str, args) -> bool:
    """Whether the extractor was fit on the unlabelled data (so the table names it)."""
    return (name == "dcgan" and not args.discriminator) or name.startswith("kmeans-")


def _notes(extractor, info: dict[str, Any], preset: Preset) -> str:
    if "chosen_step" in info and preset.eval_epochs:
        return f"GAN length chosen on validation: step {info['chosen_step']} of {info['train_steps']}"
    if "train_steps" in info:
        return f"GAN trained {info['train_steps']} steps ({preset.gan_epochs:g} epochs)"
    return ""


def _supervised_row(spec, args, preset, data, device, base, t0, log) -> list[dict[str, Any]]:
    import mlflow

    from baselines.supervised import evaluate_error, random_search

    per_class = preset.per_class or spec.per_class
    trials = args.trials or {"paper": 64, "quick": 4}.get(preset.name, 1)
    idx = probe.draw_per_class(data.train.labels, data.rest_idx, per_class, args.seed * 1000)
    x, y = data.train.images, data.train.labels
    label = f"supervised CNN ({preset.arch})"
    with tracked_run(spec.name, f"{label} [{preset.name}]", base | {"extractor": label, "trials": trials}, device) as run:
        result = random_search(preset.arch, x[idx].to(device), y[idx].to(device), x[data.val_idx].to(device),
                               y[data.val_idx].to(device), trials=trials, seed=args.seed, device=device,
                               n_classes=len(data.train.classes),
                               **({"max_epochs": 2} if preset.name == "smoke" else {}))
        test_error = evaluate_error(result.model, data.test.images.to(device), data.test.labels.to(device))
        mlflow.log_metrics({"val_error_1000": result.val_error, "test_error_1000": test_error})
        mlflow.log_dict({"trials": result.trials, "best": dataclasses.asdict(result.best)}, "random_search.json")
        log(f"[{label}] {trials} trials: val error {result.val_error:.2f}%, test error {test_error:.2f}%")
        prov, wall = provenance(device), time.perf_counter() - t0
        common = {"protocol": spec.name, "dataset": data.train.description, "extractor": label, "classifier": "CNN",
                  "gan_data": "-", "preset": preset.name, "n_draws": 1, "wall_s": round(wall, 1),
                  "device": prov["device"], "torch": prov["torch"], "commit": prov["commit"], "dirty": prov["dirty"],
                  "date": dt.date.today().isoformat(), "seed": args.seed, "data_sha256": data.train.sha256,
                  "mlflow_run_id": run.info.run_id, "notes": f"{trials} random-search trials on validation"}
        return [common | {"metric": "val_error_1000", "value": round(result.val_error, 3)},
                common | {"metric": "test_error_1000", "value": round(test_error, 3)}]


# ------------------------------------------------------------------ the whole protocol
def run_protocol(spec: ProtocolSpec, argv: list[str] | None = None, log=print) -> list[dict[str, Any]]:
    args = build_parser(spec).parse_args(argv)
    device = pick_device(args.device)
    names = [n.strip() for n in args.extractor.split(",")]
    if "supervised" in names and not spec.supervised_control:
        raise UserError(f"the supervised control belongs to svhn_1000, not {spec.name}")
    wants_supervised = spec.supervised_control and (args.extractor == "all" or "supervised" in names)
    rest = args.extractor if args.extractor == "all" else ",".join(n for n in names if n != "supervised")
    try:
        preset = resolve_preset(args.preset, device, log=log, gan_epochs=args.gan_epochs)
        pairs = parse_extractors(rest, args.classifier, preset.kmeans_ks) if rest else []
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.discriminator and not any(n == "dcgan" for n, _ in pairs):
        raise UserError("--discriminator replaces the trained DCGAN: use it with --extractor dcgan (or all)")
    log(f"{spec.name}: preset {preset.name}, device {device}, rows: "
        f"{', '.join(f'{n}+{k}' for n, k in pairs)}{' + supervised CNN' if wants_supervised else ''}")
    t0 = time.perf_counter()
    data = load_data(spec, args, preset, log)
    rows = []
    for name, kind in pairs:
        rows += evaluate_row(spec, args, preset, data, name, kind, device, log)
    if wants_supervised:
        rows += evaluate_row(spec, args, preset, data, "supervised", "cnn", device, log)
    log(f"{spec.name} done in {time.perf_counter() - t0:.1f} s\n")
    print(render_markdown(merge_rows(_empty(), rows, spec.name), spec.name))
    if preset.name == "smoke" or args.no_results:
        log(f"({'smoke preset' if preset.name == 'smoke' else '--no-results'}: results/ left untouched)")
    else:
        csv_path, md_path = write_results(spec.name, rows, args.results_dir)
        log(f"wrote {csv_path} and {md_path}")
    return rows


def _empty():
    import pandas as pd

    from benchmarks.results import COLUMNS

    return pd.DataFrame(columns=COLUMNS)
