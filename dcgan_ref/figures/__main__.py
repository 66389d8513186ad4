"""``python -m dcgan_ref.figures [--generator <spec>] --data <real images> [--train-data ...]``
(``nox -s figures``): the figures of one G/D pair under ``<out>/<model>/``, the data's
de-duplication under ``<out>/``, PNG + JSON each, logged to MLflow (experiment ``figures``)."""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from dcgan_ref.datasets.loading import load_split
from dcgan_ref.features import set_population_bn_stats
from dcgan_ref.figures import arithmetic, collapse, dedup, guided_backprop, latent_walk, memorisation, page
from dcgan_ref.figures.inputs import FigureInputs, load_gan, prepare_generator
from dcgan_ref.models import build_gan
from dcgan_ref.newmu import SPEC_PREFIX
from dcgan_ref.runtime.errors import UserError, run_cli
from dcgan_ref.runtime.hardware import pick_device
from dcgan_ref.runtime.tracking import check_tracking_store, tracked_run

# name -> how to make it from the inputs, the output folder and the command line
MODEL_FIGURES = {
    "latent_walk": lambda inputs, out, args: latent_walk.make(inputs, out, spherical=args.spherical),
    "arithmetic": lambda inputs, out, args: arithmetic.make(inputs, out, args.recipe),
    "guided_backprop": lambda inputs, out, args: guided_backprop.make(inputs, out),
    "memorisation": lambda inputs, out, args: memorisation.make(inputs, out),
}
# name -> how to make it from the real data's train and test splits (no G needed)
DATA_FIGURES = {
    "dedup": lambda train, test, out, args: dedup.make(train.images, test.images, out, seed=args.seed,
                                                       data_label=test.description, test_sha256=test.sha256,
                                                       train_sha256=train.sha256),
}
FIGURES = (*MODEL_FIGURES, *DATA_FIGURES, "collapse")  # collapse: from training runs' MLflow records

# The worked example of Fig. 7 on the authors' SVHN G, picked by looking at its seed-0 sheet
# (docs/figures/newmu-svhn/arithmetic_sheet.png).  A first try, A = #5, #15, #49 (a 7, a 72,
# a 4), kept A's 7 in the result: A's exemplars need different digits for their mean to
# carry the style alone.
NEWMU_RECIPE = arithmetic.Recipe.parse(
    "34,49,19:11,71,42:57,41,87",
    "Picked by eye from the seed-0 sheet. A: light digits on dark blue (#34 '0', #49 '4', #19 '37'); "
    "B: dark digits on light grey (#11 '3', #71 '18', #42 '28'); C: dark 2s on light grey (#57, #41, #87). "
    "A - B + C: a light 2 on dark blue, the style carried from A to C's digit.")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dcgan_ref.figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", help="newmu-svhn:<dir> (the authors' SVHN G and D) or <run>/gan/last.pt "
                   f"(a GAN trained here): the figures {', '.join(MODEL_FIGURES)}")
    p.add_argument("--data", help="real images (any format the protocols read): D's batchnorm statistics come "
                   "from its train split, guided backprop uses its test split, dedup both")
    p.add_argument("--collapse-run", action="append", default=[], metavar="LABEL=RUN_ID",
                   help="an MLflow run of dcgan_ref.train (in MLFLOW_TRACKING_URI's store) for the collapse figure; "
                        "repeat for more runs")
    p.add_argument("--train-data", help="the images G was trained on, for the memorisation check (a path; "
                   "'data' = --data's train split); without it that figure is skipped")
    p.add_argument("--out", default="docs/figures", help="folder for the PNGs and JSONs (a model's go in "
                   "<out>/<model>/)")
    p.add_argument("--name", help="the model's folder under --out (default: newmu-svhn, or the run's folder name)")
    p.add_argument("--only", help=f"comma list of {', '.join(FIGURES)} (default: all that the inputs allow)")
    p.add_argument("--arithmetic", help="A:B:C sheet indices of the exemplars, e.g. 1,2,3:4,5,6:7,8,9 "
                   "(default: the worked example for newmu-svhn; else the sheet alone)")
    p.add_argument("--arithmetic-caption", default="", help="what A, B and C are and how they were picked")
    p.add_argument("--spherical", action="store_true", help="latent walks along great circles (slerp)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    return p


def _flat_numbers(prefix: str, value, out: dict[str, float]) -> dict[str, float]:
    """The JSON's scalars as MLflow metrics, ``figure.key.subkey``; characters MLflow refuses in a
    metric name (a run label's comma) become ``_``."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flat_numbers(prefix + "." + re.sub(r"[^\w\-. :/]", "_", str(k)), v, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix] = float(value)
    return out


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    default = ((*MODEL_FIGURES,) if args.generator else ()) + ((*DATA_FIGURES,) if args.data else ()) + (
        ("collapse",) if args.collapse_run else ())
    only = [f.strip() for f in (args.only or ",".join(default)).split(",") if f.strip()]
    unknown = sorted(set(only) - set(FIGURES))
    if unknown:
        raise UserError(f"--only {','.join(unknown)}: unknown figure; choose from {', '.join(FIGURES)}")
    for wanted, given, flag in ((set(MODEL_FIGURES), args.generator, "--generator"),
                                (set(MODEL_FIGURES) | set(DATA_FIGURES), args.data, "--data"),
                                ({"collapse"}, args.collapse_run, "--collapse-run")):
        if set(only) & wanted and not given:
            raise UserError(f"{', '.join(f for f in only if f in wanted)}: needs {flag}")
    if not only:
        raise UserError("nothing to draw: give --generator and --data (a model's figures), --data (dedup) or "
                        "--collapse-run (collapse)")
    collapse_runs = {}
    for spec in args.collapse_run:
        label, sep, run_id = spec.partition("=")
        if not sep or not run_id:
            raise UserError(f"--collapse-run {spec!r}: expected LABEL=RUN_ID")
        collapse_runs[label] = run_id
    device = pick_device(args.device)
    newmu = bool(args.generator) and args.generator.startswith(SPEC_PREFIX)
    try:
        args.recipe = (arithmetic.Recipe.parse(args.arithmetic, args.arithmetic_caption) if args.arithmetic
                       else NEWMU_RECIPE if newmu and args.seed == 0 else None)
    except ValueError as e:
        raise UserError(str(e)) from None
    g, d, label = load_gan(args.generator) if args.generator else (None, None, "data")  # a bad file fails now
    check_tracking_store()
    out = Path(args.out)
    model_out = out / (args.name or ("newmu-svhn" if newmu else Path(args.generator).parent.parent.name
                                     if args.generator else ""))
    if "memorisation" in only and not args.train_data:
        why = "the authors' G was trained on SVHN, which is not here" if newmu else "no --train-data given"
        print(f"memorisation: skipped ({why}); pass --train-data <the images G was trained on>")
        only.remove("memorisation")

    real = load_split(args.data, "train") if args.data else None
    held_out = load_split(args.data, "test") if args.data else None
    inputs = None
    if set(only) & set(MODEL_FIGURES):
        train = (real if args.train_data == "data" else load_split(args.train_data, "train") if args.train_data
                 else real)
        g = prepare_generator(g.to(device), seed=args.seed)
        random_d = build_gan(g.arch.name, seed=args.seed)[1].to(device)
        for net in (d.to(device), random_d):  # population statistics over (up to) 10,000 real images
            set_population_bn_stats(net, real.images[:10_000], seed=args.seed)
            net.eval()
        inputs = FigureInputs(g=g, d=d, random_d=random_d, label=label, train=train.images,
                              held_out=held_out.images, data_label=held_out.description, seed=args.seed)
    config = {"generator": args.generator, "label": label, "data": args.data, "train_data": args.train_data,
              "figures": only, "seed": args.seed, "out": str(out)}
    with tracked_run("figures", label, config, device):
        import mlflow

        for name in only:
            t0 = time.perf_counter()
            if name in MODEL_FIGURES:
                where, numbers = model_out, MODEL_FIGURES[name](inputs, model_out, args)
            elif name in DATA_FIGURES:
                where, numbers = out, DATA_FIGURES[name](real, held_out, out, args)
            else:
                where, numbers = out, collapse.make({k: collapse.from_mlflow(v) for k, v in collapse_runs.items()},
                                                    out, {k: collapse.describe(v) for k, v in collapse_runs.items()})
            mlflow.log_metrics(_flat_numbers(name, numbers, {}))
            written = sorted(where.glob(f"{name}*"))
            for f in written:
                mlflow.log_artifact(str(f), "figures")
            print(f"{name}: {', '.join(map(str, written))} ({time.perf_counter() - t0:.1f} s)")
    print(f"page: {page.write(out)}")  # the numbers a reader sees, from these JSONs


if __name__ == "__main__":
    run_cli(main)
