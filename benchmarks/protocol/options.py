"""A protocol run's options, declared once: typed, nested by what they configure (the data,
the extractors, the label draws, the output), each field with its help text.

The protocols' command line is generated from these fields (``build_parser``), and the
studies build the same objects in Python (``run_protocol(spec, RunOptions(...))``) instead of
assembling argv; ``to_argv`` gives the command that reproduces a set of options. Defaults that
depend on the protocol (its dataset, its GAN data) are ``None`` here and resolved in
``benchmarks.protocol.context``. Every numeric option is range-checked by argparse itself, so a
bad value exits 2 with a one-line message before any data is read.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmarks.protocol.presets import PRESETS
from benchmarks.protocol.spec import ProtocolSpec
from dcgan_ref.models import ARCHITECTURES


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


def positive_floats(text: str) -> tuple[float, ...]:
    values = tuple(POSITIVE_FLOAT(t) for t in text.split(",") if t.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of numbers > 0")
    return tuple(sorted(set(values)))


def option(default: Any = None, help: str = "", **argparse_kw: Any) -> Any:
    """One option: its default, its help (``{spec.<field>}`` filled in per protocol), and what
    argparse needs beyond that (type, choices, metavar, required). A ``False`` default is a flag."""
    return field(default=default, metadata={"help": help, **argparse_kw})


@dataclass(frozen=True)
class DataOptions:
    data: str | None = option(None, "labelled data: official files folder, image-folder tree or archive "
                                  "(default: data/{spec.default_dataset})")
    dataset: str | None = option(None, "which official set --data holds (used to fetch it when absent; default: "
                                     "{spec.default_dataset})", choices=["cifar10", "svhn"])
    gan_data: str | None = option(None, "unlabelled data for the GAN/K-means: a path, or 'train' / 'train+extra' "
                                      "(default: {spec.gan_data_default})")
    gan_split: str = option("train", "split of --gan-data when it is a path")
    download: bool = option(False, "fetch the official files into --data when they are missing (default: only into "
                                 "data/<set>)")
    no_download: bool = option(False, "never fetch, not even into data/<set>")


@dataclass(frozen=True)
class ExtractorOptions:
    extractor: str = option("dcgan", "comma list of registered extractors (dcgan, random-d, pixels, kmeans-<K>, "
                                   "...){controls}, or 'all'")
    classifier: str = option("svm", "comma list of {classifiers}")
    arch: str | None = option(None, "DCGAN architecture (default: the preset's, else the protocol's: {spec.arch})",
                            choices=sorted(ARCHITECTURES))
    discriminator: str | None = option(None, "use this D instead of training one: newmu-svhn:<dir> or "
                                           "<run>/gan/last.pt")
    bn_mode: str = option("population", "", choices=["population", "batch"])
    gan_epochs: float | None = option(None, "override the preset's GAN training length", type=POSITIVE_FLOAT)
    precision: str = option("preset", "the GAN's training precision: the preset's (fp32: bf16 autocast lost "
                                    "accuracy in its A/B, REPORT.md), or forced (bf16: only where native)",
                          choices=["preset", "bf16", "fp32"])
    eval_epochs: tuple[float, ...] | None = option(
        None, "comma list of GAN lengths (epochs) scored on validation, the best kept; the final length always is "
              "(default: the preset's, those within --gan-epochs)", type=positive_floats)


@dataclass(frozen=True)
class ProbeOptions:
    draws: int | None = option(None, "label-scarce draws (default: the preset's)", type=POSITIVE_INT)
    per_class: int | None = option(None, "labels per class in each label-scarce draw (default: the preset's, else "
                                       "{spec.per_class})", type=POSITIVE_INT)
    trials: int | None = option(None, "random-search trials of the supervised control (paper: 64)", type=POSITIVE_INT)
    exclude_near_duplicates: str | None = option(
        None, "also report all-labels test accuracy without the test images that this dedup.json "
              "(dcgan_ref.figures.dedup.make) lists as near-duplicates of train images", metavar="DEDUP_JSON")


@dataclass(frozen=True)
class OutputOptions:
    out: str = option("runs", "GAN checkpoints and samples go under <out>/<protocol>/")
    resume: bool = option(False, "continue an interrupted GAN training from its checkpoint under --out (same "
                               "settings)")
    results_dir: str | None = option(None, "where the tables go (default: the repo's results/)")
    no_results: bool = option(False, "do not write results/ (smoke never does)")


@dataclass(frozen=True)
class RunOptions:
    """Everything a protocol run can be asked, before the protocol and device resolve it."""
    preset: str | None = option(None, "default: paper on a GPU, quick otherwise", choices=sorted(PRESETS))
    device: str | None = option(None, "cpu, cuda, cuda:<n> (default: a GPU if there is one)")
    seed: int = option(0, "", type=NONNEGATIVE_INT)
    data: DataOptions = field(default_factory=DataOptions)
    extractors: ExtractorOptions = field(default_factory=ExtractorOptions)
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    output: OutputOptions = field(default_factory=OutputOptions)


SECTIONS = ("data", "extractors", "probe", "output")


def _leaves(cls: type = RunOptions):
    """(section or None, field) for every option, in declaration order."""
    for f in dataclasses.fields(cls):
        if f.name in SECTIONS:
            yield from ((f.name, g) for g in dataclasses.fields(f.default_factory))
        else:
            yield None, f


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(spec: ProtocolSpec, classifiers: tuple[str, ...]) -> argparse.ArgumentParser:
    """The protocol's command line, one option per field."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{spec.name}",
                                description=f"The {spec.name} protocol (see README and docs/PAPER.md).")
    fill = {"spec": spec, "controls": "".join(", " + c for c in spec.controls), "classifiers": ", ".join(classifiers)}
    groups: dict[str | None, Any] = {}
    for section, f in _leaves():
        add_option(groups.get(section) or groups.setdefault(section, p.add_argument_group(section or "run")), f, fill)
    return p


def add_option(parser: Any, f: dataclasses.Field, fill: dict[str, Any] | None = None) -> None:
    """One declared field (:func:`option`) as a command-line option of ``parser`` (or of an argument
    group): ``--field-name``, its default, its help with ``fill``'s placeholders filled in."""
    meta = dict(f.metadata)
    help_text = meta.pop("help").format(**(fill or {})) or None
    if f.default is False:
        parser.add_argument(_flag(f.name), action="store_true", help=help_text)
    else:
        default = None if f.default is dataclasses.MISSING else f.default
        parser.add_argument(_flag(f.name), default=default, help=help_text, **meta)


def parse_options(spec: ProtocolSpec, argv: list[str] | None, classifiers: tuple[str, ...]) -> RunOptions:
    ns = vars(build_parser(spec, classifiers).parse_args(argv))
    sections = {s: f.default_factory(**{g.name: ns[g.name] for g in dataclasses.fields(f.default_factory)})
                for f in dataclasses.fields(RunOptions) if (s := f.name) in SECTIONS}
    return RunOptions(**{f.name: ns[f.name] for s, f in _leaves() if s is None}, **sections)


def to_argv(options: RunOptions) -> list[str]:
    """The command-line arguments that give these options (those not at their default)."""
    argv: list[str] = []
    for section, f in _leaves():
        value = getattr(getattr(options, section) if section else options, f.name)
        if value == f.default:
            continue
        if value is True:
            argv.append(_flag(f.name))
        else:
            text = ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)
            argv += [_flag(f.name), text]
    return argv
