"""A protocol's command line, parsed and checked into one typed :class:`RunContext`.

Every numeric option is range-checked by argparse itself, so a bad value exits 2 with a
one-line message before any data is read.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from baselines import registry
from benchmarks.classifiers.registry import CLASSIFIERS
from benchmarks.protocol.presets import PRESETS, Preset, resolve_preset
from benchmarks.protocol.spec import ProtocolSpec
from dcgan_ref.datasets.near_duplicates import NearDuplicates, read_near_duplicates
from dcgan_ref.models import ARCHITECTURES
from dcgan_ref.pretrained import load_discriminator
from dcgan_ref.runtime.distributed import World
from dcgan_ref.runtime.errors import UserError
from dcgan_ref.runtime.hardware import training_bf16
from dcgan_ref.train import pick_device


def _number(kind: type, low: float, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


POSITIVE_INT = _number(int, 1, "an integer >= 1")
NONNEGATIVE_INT = _number(int, 0, "an integer >= 0")
POSITIVE_FLOAT = _number(float, 1e-300, "a number > 0")


def _positive_floats(text: str) -> tuple[float, ...]:
    values = tuple(POSITIVE_FLOAT(t) for t in text.split(",") if t.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of numbers > 0")
    return tuple(sorted(set(values)))


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Everything one protocol run was asked to do, resolved."""

    spec: ProtocolSpec
    preset: Preset
    device: torch.device
    arch: str                       # the DCGAN architecture of this run
    data: str
    dataset: str
    gan_data: str
    gan_split: str
    rows: tuple[tuple[str, str], ...]  # (extractor, classifier) to evaluate
    controls: tuple[str, ...]       # the protocol's control evaluators asked for (e.g. "supervised")
    discriminator: str | None
    bn_mode: str
    draws: int
    per_class: int
    trials: int
    seed: int
    download: bool
    resume: bool
    out: Path
    results_dir: Path | None
    write_results: bool
    exclude_near_duplicates: NearDuplicates | None = None  # test images the all-labels evaluation also scores without
    world: World = World()          # under torchrun: this rank (feature extraction shards over ranks)


def build_parser(spec: ProtocolSpec) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{spec.name}",
                                description=f"The {spec.name} protocol (see README and docs/PAPER.md).")
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: paper on a GPU, quick otherwise")
    p.add_argument("--data", default=f"data/{spec.default_dataset}",
                   help="labelled data: official files folder, image-folder tree or archive")
    p.add_argument("--dataset", choices=["cifar10", "svhn"], default=spec.default_dataset,
                   help="which official set --data holds (used to fetch it when absent)")
    p.add_argument("--gan-data", help=f"unlabelled data for the GAN/K-means: a path, or 'train' / 'train+extra' "
                   f"(default: {spec.gan_data_default})")
    p.add_argument("--gan-split", default="train", help="split of --gan-data when it is a path")
    p.add_argument("--extractor", default="dcgan",
                   help="comma list of registered extractors (dcgan, random-d, pixels, kmeans-<K>, ...)"
                        f"{''.join(', ' + c for c in spec.controls)}, or 'all'")
    p.add_argument("--classifier", default="svm", help=f"comma list of {', '.join(CLASSIFIERS)}")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES),
                   help=f"DCGAN architecture (default: the preset's, else the protocol's: {spec.arch})")
    p.add_argument("--discriminator", help="use this D instead of training one: newmu-svhn:<dir> or <run>/gan/last.pt")
    p.add_argument("--bn-mode", choices=["population", "batch"], default="population")
    p.add_argument("--draws", type=POSITIVE_INT, help="label-scarce draws (default: the preset's)")
    p.add_argument("--per-class", type=POSITIVE_INT,
                   help=f"labels per class in each label-scarce draw (default: the preset's, else {spec.per_class})")
    p.add_argument("--trials", type=POSITIVE_INT, help="random-search trials of the supervised control (paper: 64)")
    p.add_argument("--gan-epochs", type=POSITIVE_FLOAT, help="override the preset's GAN training length")
    p.add_argument("--precision", choices=["preset", "bf16", "fp32"], default="preset",
                   help="the GAN's training precision: the preset's (paper: bf16 autocast where the device runs "
                   "bf16 natively, else fp32), or forced (an A/B of the two)")
    p.add_argument("--eval-epochs", type=_positive_floats,
                   help="comma list of GAN lengths (epochs) scored on validation, the best kept; the final "
                        "length always is (default: the preset's, those within --gan-epochs)")
    p.add_argument("--seed", type=NONNEGATIVE_INT, default=0)
    p.add_argument("--device")
    p.add_argument("--download", action="store_true",
                   help="fetch the official files into --data when they are missing (default: only into data/<set>)")
    p.add_argument("--no-download", action="store_true", help="never fetch, not even into data/<set>")
    p.add_argument("--out", default="runs", help="GAN checkpoints and samples go under <out>/<protocol>/")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted GAN training from its checkpoint under --out (same settings)")
    p.add_argument("--exclude-near-duplicates", metavar="DEDUP_JSON",
                   help="also report all-labels test accuracy without the test images that this dedup.json "
                        "(dcgan_ref.figures.dedup.make) lists as near-duplicates of train images")
    p.add_argument("--results-dir", help="where the tables go (default: the repo's results/)")
    p.add_argument("--no-results", action="store_true", help="do not write results/ (smoke never does)")
    return p


def _split(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_run(spec: ProtocolSpec, argv: list[str] | None, log=print) -> RunContext:
    args = build_parser(spec).parse_args(argv)
    device = pick_device(args.device)
    if args.discriminator:  # a bad file is an error now, not after the data has loaded
        load_discriminator(args.discriminator)
    try:
        preset = resolve_preset(args.preset, device, log=log, gan_epochs=args.gan_epochs,
                                eval_epochs=args.eval_epochs)
    except ValueError as e:
        raise UserError(str(e)) from None
    preset = dataclasses.replace(preset, bf16=training_bf16(args.precision, device, default=preset.bf16))
    late = [e for e in preset.eval_epochs if e > preset.gan_epochs]
    if args.eval_epochs and late:
        raise UserError(f"--eval-epochs {','.join(f'{e:g}' for e in late)}: past the GAN's training length "
                        f"({preset.gan_epochs:g} epochs)")
    if late:  # a shortened training keeps the preset's candidate lengths that it reaches
        preset = dataclasses.replace(preset, eval_epochs=tuple(e for e in preset.eval_epochs if e <= preset.gan_epochs))
    names, kinds = _split(args.extractor), _split(args.classifier)
    for k in kinds:
        if k not in CLASSIFIERS:
            raise UserError(f"unknown classifier {k!r}; choose from {', '.join(CLASSIFIERS)}")
    if names == ["all"]:
        rows, controls = preset.all_rows, spec.controls
    else:
        controls = tuple(n for n in names if n in spec.controls)
        rows = tuple((n, k) for n in names if n not in spec.controls for k in kinds)
        for n, _ in rows:
            try:
                registry.resolve(n)
            except ValueError as e:
                raise UserError(str(e)) from None
    if args.discriminator and not any(n == "dcgan" for n, _ in rows):
        raise UserError("--discriminator replaces the trained DCGAN: use it with --extractor dcgan (or all)")
    near_duplicates = None
    if args.exclude_near_duplicates:  # read now: a bad file fails before any data is read
        if not spec.full_data:
            raise UserError(f"--exclude-near-duplicates adds to the all-labels evaluation, which {spec.name} "
                            f"does not have")
        try:
            near_duplicates = read_near_duplicates(Path(args.exclude_near_duplicates))
        except (ValueError, FileNotFoundError) as e:
            raise UserError(f"--exclude-near-duplicates {e}") from None
    return RunContext(
        spec=spec, preset=preset, device=device, arch=args.arch or preset.arch or spec.arch,
        data=args.data, dataset=args.dataset, gan_data=args.gan_data or spec.gan_data_default,
        gan_split=args.gan_split, rows=rows, controls=controls, discriminator=args.discriminator,
        bn_mode=args.bn_mode, draws=args.draws or preset.n_draws,
        per_class=args.per_class or preset.per_class or spec.per_class,
        trials=args.trials or preset.supervised_trials, seed=args.seed,
        # A mistyped --data must not become a download target: fetch only into the default
        # folder, or where asked to.
        download=not args.no_download and (args.download or args.data == f"data/{spec.default_dataset}"),
        resume=args.resume, out=Path(args.out), results_dir=Path(args.results_dir) if args.results_dir else None,
        # smoke rows never reach the repo's results/, only a folder named with --results-dir
        write_results=(preset.writes_results or args.results_dir is not None) and not args.no_results,
        exclude_near_duplicates=near_duplicates,
    )
