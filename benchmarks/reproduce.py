"""``python -m benchmarks.reproduce`` / ``nox -s reproduce``: every row of the paper's Tables 1
and 2 that the data at hand allows, within a time budget, then ``results/REPORT.md``.

It plans first and says so: the rows in order of value, each with a time estimate for this
device (from an earlier row of the same extractor in the results: one of the same preset, else
another preset's scaled by its training images; else a rough per-image cost, plus a GAN's
training at this CPU class's measured ``cpu_step`` rate or its FLOPs at the device's measured
GEMM rate), and which rows it must skip to fit ``--budget-min``.  Each row is one protocol run, which
writes its own rows when it finishes, so a later failure loses nothing; a row already in the
results at this commit, preset and data hash is skipped, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from baselines import registry
from benchmarks.classifiers.registry import CLASSIFIERS
from benchmarks.protocol import control as supervised_control
from benchmarks.protocol.options import DataOptions, ExtractorOptions, OutputOptions, RunOptions, to_argv
from benchmarks.protocol.presets import PRESETS, Preset
from benchmarks.protocol.results import RESULTS_DIR, read_results
from benchmarks.protocol.runner import CIFAR10_PROBE, SVHN_1000, run_protocol
from benchmarks.protocol.spec import ProtocolSpec
from benchmarks.report import render as report
from benchmarks.throughput.cli import main as throughput_main
from benchmarks.throughput.cpu_step import isa_slug
from benchmarks.throughput.timing import dcgan_flops
from dcgan_ref.datasets.loading import load_split
from dcgan_ref.models import ARCHITECTURES
from dcgan_ref.runtime.errors import Terminated, run_cli
from dcgan_ref.runtime.hardware import native_bf16, pick_device
from dcgan_ref.runtime.limits import device_limits
from dcgan_ref.runtime.tracking import check_tracking_store, device_name, git_state

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NEWMU = REPO.parent / "shared" / "data" / "newmu_svhn_dcgan"


@dataclass(frozen=True)
class Job:
    spec: ProtocolSpec
    extractor: str          # registry name, or a protocol control ("supervised")
    classifier: str = "svm"
    discriminator: str | None = None

    @property
    def name(self) -> str:
        what = "newmu-svhn D" if self.discriminator else self.extractor
        return f"{self.spec.name}: {what} + {self.classifier}"


# The floor an estimate falls back to where this device has no earlier row of an extractor: its
# FLOPs at the device's measured fp32 GEMM rate. The L2-SVM's passes per C value are the one
# assumption (the paper-scale rows' solver logs show 27 to 115); a supervised trial's epochs are
# the mean of their sampled range (50-200).
SOLVER_PASSES = 100
SUPERVISED_EPOCHS = 125


def plan(args: argparse.Namespace) -> list[Job]:
    """Table 1 then Table 2, each in order of value: the preset's rows (our DCGAN, random-init
    D, pixels with the SVM and KNN, K-means), the authors' D right after ours, the controls."""
    newmu = f"newmu-svhn:{args.newmu}" if args.newmu and Path(args.newmu).is_dir() else None
    jobs = []
    for spec in (CIFAR10_PROBE, SVHN_1000):
        for name, classifier in PRESETS[args.preset].all_rows:
            jobs.append(Job(spec, name, classifier))
            if name == "dcgan" and newmu:
                jobs.append(Job(spec, "dcgan", discriminator=newmu))
        jobs += [Job(spec, control, "cnn") for control in spec.controls]
    if args.extractor:
        wanted = set(args.extractor.split(","))
        jobs = [j for j in jobs if ("newmu-svhn" in wanted if j.discriminator else j.extractor in wanted)]
    return jobs


def _options(job: Job, args: argparse.Namespace) -> RunOptions:
    """The protocol run of one job, as the protocol's own options."""
    svhn = job.spec is SVHN_1000
    return RunOptions(
        preset=args.preset, device=args.device, seed=args.seed,
        # Table 2's protocol on the CIFAR-10 data at hand (labelled so), unless SVHN itself is given
        data=DataOptions(data=args.svhn_data if svhn and args.svhn_data else args.data,
                         dataset="cifar10" if svhn and not args.svhn_data else None, gan_data=args.gan_data,
                         no_download=args.no_download),
        extractors=ExtractorOptions(extractor=job.extractor, classifier="svm" if job.classifier == "cnn"
                                    else job.classifier, discriminator=job.discriminator,
                                    arch=args.arch if job.extractor not in job.spec.controls else None),
        output=OutputOptions(out=args.out, results_dir=str(args.results_dir)))
def _extractor(job: Job, args: argparse.Namespace, device: torch.device):
    """The row's extractor, unfitted (building one is cheap; fitting it is not): its table label and
    its cost figures. None for a protocol control."""
    preset = PRESETS[args.preset]
    if job.extractor in job.spec.controls:
        return None
    ctx = registry.BuildContext(device=device, seed=args.seed, image_size=32, n_fit_images=1, out_dir=Path(args.out),
                                arch=_arch(job, args), discriminator=job.discriminator, configs=preset.extractors)
    return registry.build(job.extractor, ctx)


def _arch(job: Job, args: argparse.Namespace) -> str:
    preset = PRESETS[args.preset]
    if job.extractor in job.spec.controls:
        return preset.arch or job.spec.arch
    return args.arch or preset.arch or job.spec.arch


def _flop_floor(job: Job, extractor, arch: str, preset: Preset, n_train: int,
                device: torch.device) -> tuple[float, str]:
    """Seconds of the row's FLOPs at this device's fp32 GEMM rate: extraction of every train and test
    image and the L2-SVM's sweeps (all labels: the C grid and a refit; each label draw: the grid in
    every cross-validation fold and its fit), or a supervised control's trials. No step reaches the
    GEMM rate, so this is a floor."""
    tflops = device_limits(device)["limit_gemm_fp32_tflops"]
    n_classes, grid, labels = 10, len(preset.C_grid), (preset.per_class or job.spec.per_class) * 10
    if extractor is None:  # the supervised CNN: D's conv stack trained (forward + backward: 3 forwards)
        flops = preset.supervised_trials * SUPERVISED_EPOCHS * labels * 3 * dcgan_flops(arch).extract
        what = f"{preset.supervised_trials} trials of {SUPERVISED_EPOCHS} epochs"
    else:
        n_test = preset.test_images or 10_000
        extract = extractor.flops_per_image() if hasattr(extractor, "flops_per_image") else 0
        fits = ((grid + 1) * n_train if job.spec.full_data else 0) + \
            preset.n_draws * (job.spec.draws_cv_folds + 1) * grid * labels
        flops = extract * (n_train + n_test) + 4 * extractor.feature_dim * n_classes * SOLVER_PASSES * fits
        what = f"extraction and {SOLVER_PASSES} L2-SVM passes per fit"
    return flops / (tflops * 1e12), f"a FLOP floor ({what} at this device's {tflops:.2f} TFLOP/s fp32 GEMM rate)"


def _row_estimate(job: Job, label: str, existing: pd.DataFrame, device: torch.device, n_train: int,
                  preset: str) -> tuple[float, str] | None:
    """Seconds from an earlier row of this extractor on this kind of device: one of the same preset
    as it took, else another preset's scaled by its training images (linear: the features, the
    SVM's passes and a GAN's epochs all scale with them); a row from this very CPU model first."""
    if not len(existing):
        return None
    rows = existing[(existing["source"] == "ours") & (existing["protocol"] == job.spec.name)
                    & (existing["extractor"] == label) & existing["wall_s"].notna()
                    & existing["device"].astype(str).str.startswith("NVIDIA" if device.type == "cuda" else "cpu")]
    rows = rows.assign(here=rows["device"].astype(str) == device_name(device)).sort_values("here", kind="stable")
    where = " on this CPU" if device.type == "cpu" else ""
    same = rows[rows["preset"] == preset]
    if len(same):
        r = same.iloc[-1]
        return float(r["wall_s"]), "an earlier row of the same kind" + (where if r["here"] else "")
    scaled = rows[rows["n_train"].notna() & (rows["n_train"] > 0)]
    if len(scaled):
        r = scaled.iloc[-1]
        return (float(r["wall_s"]) * n_train / float(r["n_train"]),
                f"an earlier {r['preset']} row{where if r['here'] else ''} ({int(r['n_train']):,} training images), "
                f"scaled to {n_train:,}")
    return None


def _estimate(job: Job, label: str, existing: pd.DataFrame, device: torch.device, n_train: int, preset: str,
              extractor=None, arch: str = "imagenet32") -> tuple[float, str]:
    recorded = _row_estimate(job, label, existing, device, n_train, preset)
    if recorded is not None:
        return recorded
    p = PRESETS[preset]
    seconds, source = _flop_floor(job, extractor, arch, p, n_train, device)
    if job.extractor == "dcgan" and not job.discriminator:  # plus training the GAN
        img_per_s, how = train_rate(arch, device, bf16=p.gan.recipe.bf16 and native_bf16(device))
        seconds += p.gan.epochs * min(p.gan_images or n_train, n_train) / img_per_s
        source += f", training at {img_per_s:,.0f} img/s ({how})"
    return seconds, source


def train_rate(arch: str, device: torch.device, bf16: bool, cpu_step_dir: Path | None = None) -> tuple[float, str]:
    """The GAN training rate to plan with, img/s, and where it comes from: this CPU class's
    ``cpu_step`` row for the trainer's setting (bf16 or fp32, channels_last), else the step's FLOP
    count at this device's measured GEMM rate (a rate no step reaches: the estimate is a floor)."""
    setting = "bf16, channels_last" if bf16 else "fp32, channels_last"
    if device.type == "cpu":
        path = (cpu_step_dir or RESULTS_DIR / "cpu_step" / isa_slug()) / "cpu_step.csv"
        rows = read_results(path) if path.exists() else pd.DataFrame()
        if len(rows):
            hit = rows[(rows["extractor"] == arch) & (rows["classifier"] == setting)
                       & (rows["metric"] == "train_img_per_s")]
            if len(hit):
                return float(hit["value"].iloc[-1]), f"the cpu_step row for {setting} on this CPU class"
    limits = device_limits(device)
    tflops = limits.get("limit_gemm_bf16_tflops") if bf16 else None
    tflops = tflops or limits["limit_gemm_fp32_tflops"]
    rate = tflops * 1e12 / dcgan_flops(arch).train_step
    return rate, f"{arch}'s FLOPs at this device's {tflops:.2f} TFLOP/s GEMM rate"


# How a protocol names the GAN data it drew from the labelled set itself (benchmarks/protocol/data.py).
_OWN_GAN_DATA = {"train": "train", "train-minus-val": "train minus validation", "train+extra": "train+extra"}


def _same_gan_data(job: Job, args: argparse.Namespace, foreign: str | None) -> Callable[[pd.Series], bool]:
    """Whether an existing row's D/K-means learned from the data this run would give it: the same
    label at the same commit on other GAN data (a D trained on Tiny-ImageNet) is another row."""
    choice = args.gan_data or job.spec.gan_data_default

    def same(row: pd.Series) -> bool:
        if job.discriminator or row["gan_data"] == "-":  # learns nothing from --gan-data
            return True
        if foreign is not None:
            return str(row["gan_data"]).startswith(f"{foreign} train")
        return row["gan_data"] == f"{row['dataset']} {_OWN_GAN_DATA[choice]}"

    return same


def _done(job: Job, label: str, existing: pd.DataFrame, commit: str, preset: str, sha: str,
          same_gan_data: Callable[[pd.Series], bool] = lambda row: True) -> bool:
    if not len(existing):
        return False
    clf = CLASSIFIERS[job.classifier].name if job.classifier in CLASSIFIERS else supervised_control.CLASSIFIER
    hit = existing[(existing["protocol"] == job.spec.name) & (existing["extractor"] == label)
                   & (existing["classifier"] == clf) & (existing["preset"] == preset)
                   & (existing["commit"] == commit) & (existing["data_sha256"] == sha)]
    return bool(len(hit)) and bool(hit.apply(same_gan_data, axis=1).any())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default=None, choices=sorted(PRESETS), help="default: paper on a GPU, quick otherwise")
    p.add_argument("--data", required=True, help="CIFAR-10: official files, an image-folder tree or its archive")
    p.add_argument("--svhn-data", help="official SVHN .mat folder for Table 2 (default: Table 2's protocol on --data)")
    p.add_argument("--gan-data", help="unlabelled data for the GAN/K-means (passed to every row)")
    p.add_argument("--newmu", default=str(DEFAULT_NEWMU), help="folder of the authors' released SVHN DCGAN")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES),
                   help="every D's architecture (default: the preset's, else each protocol's own)")
    p.add_argument("--extractor", help="only these rows (comma list of extractor names, or newmu-svhn)")
    p.add_argument("--budget-min", type=float, default=60.0, help="skip rows that would not fit (estimated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    p.add_argument("--out", default="runs")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--no-download", action="store_true")
    return p


def main(argv: list[str] | None = None, log=print) -> list[str]:
    """Run the plan; return the status line of every job."""
    args = build_parser().parse_args(argv)
    device = pick_device(args.device)
    args.preset = args.preset or ("paper" if device.type == "cuda" else "quick")
    check_tracking_store()
    train = load_split(args.data, "train", dataset="cifar10", download=not args.no_download)
    commit, _ = git_state()
    preset = PRESETS[args.preset]
    n_train = min(len(train), preset.train_images or len(train))
    frames = [read_results(p) for p in (args.results_dir / f"{s.name}.csv" for s in (CIFAR10_PROBE, SVHN_1000))
              if p.exists()]
    existing = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    budget_s, planned, statuses = args.budget_min * 60, [], []
    foreign = (None if args.gan_data in (None, *_OWN_GAN_DATA)
               else load_split(args.gan_data, "train", download=False).description)
    log(f"reproduce: preset {args.preset}, device {device}, budget {args.budget_min:g} min, data {train.description}"
        + (f", GAN data {foreign}" if foreign else ""))
    for job in plan(args):
        extractor = _extractor(job, args, device)
        label = extractor.label if extractor is not None else supervised_control.label(_arch(job, args))
        if _done(job, label, existing, commit, args.preset, train.sha256, _same_gan_data(job, args, foreign)):
            statuses.append(f"skip (already in the results at this commit): {job.name}")
            continue
        seconds, source = _estimate(job, label, existing, device, n_train, args.preset, extractor, _arch(job, args))
        if seconds > budget_s:
            statuses.append(f"skip (estimated {seconds / 60:.1f} min from {source}, over the budget left): {job.name}")
            continue
        budget_s -= seconds
        planned.append(job)
        statuses.append(f"run (estimated {seconds / 60:.1f} min from {source}): {job.name}")
    for line in statuses:
        log(f"  {line}")

    commands, results, stopped = [], [], None
    for job in planned:
        options = _options(job, args)
        commands.append(f"python -m benchmarks.{job.spec.name} {shlex.join(to_argv(options))}")
        t0 = time.perf_counter()
        try:
            run_protocol(job.spec, options, log=log)
            results.append(f"done in {time.perf_counter() - t0:.0f} s: {job.name}")
        except (Exception, KeyboardInterrupt, Terminated) as e:  # finished rows are written; go on with the rest
            results.append(f"FAILED after {time.perf_counter() - t0:.0f} s ({type(e).__name__}: {e}): {job.name}")
            if not isinstance(e, Exception):  # stopped by the user or the scheduler: report, then stop
                stopped = e
                break
    if device.type == "cuda":  # the throughput suite measures only on a GPU
        throughput_main(["--out-dir", str(args.results_dir), "--data", args.data])
    path = report.write_report(args.results_dir, commands)
    for line in results:
        log(f"  {line}")
    log(f"wrote {path}")
    if stopped is not None:
        raise stopped
    return statuses + results


if __name__ == "__main__":
    run_cli(main)
