"""A protocol run's options (``benchmarks.protocol.options``: the CLI's, or a study's own),
checked and resolved into one typed :class:`RunContext`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from baselines import registry
from benchmarks.classifiers.registry import CLASSIFIERS
from benchmarks.protocol.options import ExtractorOptions, RunOptions, parse_options
from benchmarks.protocol.presets import Preset, resolve_preset
from benchmarks.protocol.spec import ProtocolSpec
from dcgan_ref.datasets.near_duplicates import NearDuplicates, read_near_duplicates
from dcgan_ref.pretrained import load_discriminator
from dcgan_ref.runtime.distributed import World
from dcgan_ref.runtime.errors import UserError
from dcgan_ref.runtime.hardware import pick_device, training_bf16


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


def _split(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_run(spec: ProtocolSpec, argv: list[str] | None, log=print) -> RunContext:
    """The protocol's command line, resolved (``python -m benchmarks.<protocol> ...``)."""
    return resolve_run(spec, parse_options(spec, argv, tuple(CLASSIFIERS)), log)


def resolve_run(spec: ProtocolSpec, options: RunOptions, log=print) -> RunContext:
    """Options as given (the CLI's, or built in Python by a study), checked and resolved against
    the protocol, its preset and the device: every mistake is a UserError before data is read."""
    o, d, x, pr, out = options, options.data, options.extractors, options.probe, options.output
    device = pick_device(o.device)
    if x.discriminator:  # a bad file is an error now, not after the data has loaded
        load_discriminator(x.discriminator)
    try:
        preset = resolve_preset(o.preset, device, log=log, epochs=x.gan_epochs, eval_epochs=x.eval_epochs)
    except ValueError as e:
        raise UserError(str(e)) from None
    gan = preset.gan
    preset = preset.with_gan(bf16=training_bf16(x.precision, device, default=gan.recipe.bf16))
    late = [e for e in gan.eval_epochs if e > gan.epochs]
    if x.eval_epochs and late:
        raise UserError(f"--eval-epochs {','.join(f'{e:g}' for e in late)}: past the GAN's training length "
                        f"({gan.epochs:g} epochs)")
    if late:  # a shortened training keeps the preset's candidate lengths that it reaches
        preset = preset.with_gan(eval_epochs=tuple(e for e in gan.eval_epochs if e <= gan.epochs))
    rows, controls = _rows(spec, preset, x)
    near_duplicates = None
    if pr.exclude_near_duplicates:  # read now: a bad file fails before any data is read
        if not spec.full_data:
            raise UserError(f"--exclude-near-duplicates adds to the all-labels evaluation, which {spec.name} "
                            f"does not have")
        try:
            near_duplicates = read_near_duplicates(Path(pr.exclude_near_duplicates))
        except (ValueError, FileNotFoundError) as e:
            raise UserError(f"--exclude-near-duplicates {e}") from None
    data = d.data or f"data/{spec.default_dataset}"
    return RunContext(
        spec=spec, preset=preset, device=device, arch=x.arch or preset.arch or spec.arch,
        data=data, dataset=d.dataset or spec.default_dataset, gan_data=d.gan_data or spec.gan_data_default,
        gan_split=d.gan_split, rows=rows, controls=controls, discriminator=x.discriminator,
        bn_mode=x.bn_mode, draws=pr.draws or preset.n_draws,
        per_class=pr.per_class or preset.per_class or spec.per_class,
        trials=pr.trials or preset.supervised_trials, seed=o.seed,
        # A mistyped --data must not become a download target: fetch only into the default
        # folder, or where asked to.
        download=not d.no_download and (d.download or data == f"data/{spec.default_dataset}"),
        resume=out.resume, out=Path(out.out), results_dir=Path(out.results_dir) if out.results_dir else None,
        # smoke rows never reach the repo's results/, only a folder named with --results-dir
        write_results=(preset.writes_results or out.results_dir is not None) and not out.no_results,
        exclude_near_duplicates=near_duplicates,
    )


def _rows(spec: ProtocolSpec, preset: Preset, x: ExtractorOptions) -> tuple[tuple, tuple[str, ...]]:
    """The (extractor, classifier) rows and the controls asked for, each name checked."""
    names, kinds = _split(x.extractor), _split(x.classifier)
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
    if x.discriminator and not any(n == "dcgan" for n, _ in rows):
        raise UserError("--discriminator replaces the trained DCGAN: use it with --extractor dcgan (or all)")
    return rows, controls
