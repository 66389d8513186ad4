"""A GAN training that outlives a session, scored along the way: ``python -m benchmarks.gan_run``.

    python -m benchmarks.gan_run start --name tiny-imagenet32 --gan-data <Tiny-ImageNet> --data <CIFAR-10> --detach
    python -m benchmarks.gan_run status [--name tiny-imagenet32]
    python -m benchmarks.gan_run publish --name tiny-imagenet32   # its record into results/gan_runs/

``start`` trains ``--arch`` on ``--gan-data`` in a run folder outside the work tree
(``$DCGAN_REPRO_CACHE/gan-runs/<name>``, else ``--run-dir``). Running the same command again
resumes exactly from the folder's checkpoint (written atomically at least every
``--ckpt-minutes`` of training); when the folder or its checkpoint is gone (a new machine), it
says so in one line and starts from step 0. ``--detach`` runs it in the background with its log
in ``<run>/train.log``; ``status`` prints the step, the images seen, img/s, the ETA and the
validation curve. One run folder takes one trainer at a time (a lock file).

The budget is counted in images seen (``--budget-images``, default 1,250,000: 25 CIFAR-10
epochs). Every ``--eval-every`` images, D is saved (``d_<images>.pt``) and scored as the
``--protocol`` chooses a GAN's length: one draw of its smallest label budget (400 per class in
the CIFAR-10 probe, 1,000 labels in svhn_1000), an L2-SVM over every other C of the grid,
accuracy on that protocol's validation split (never test). Batchnorm
statistics for that score come from a fixed ``--bn-images`` sample of the GAN data (the final
evaluation uses all of it). Training stops early once two scores ``--plateau-images`` apart
differ by less than ``--plateau-points``. A run that is done says so and trains nothing unless
``--budget-images`` is raised past what it has seen. ``chosen.pt`` is the best-scoring D so far, with what
a results row must say about it; ``curve.csv`` holds every score.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.protocol import gan_record as gan_publish
from benchmarks.protocol.context import RunContext, resolve_run
from benchmarks.protocol.data import ProtocolData, load_data
from benchmarks.protocol.gan_folder import RunFiles, exclusive, locked, plateaued, runs_root
from benchmarks.protocol.options import (
    NONNEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    DataOptions,
    ExtractorOptions,
    OutputOptions,
    RunOptions,
    add_option,
    option,
)
from benchmarks.protocol.results import RESULTS_DIR
from benchmarks.protocol.runner import CIFAR10_PROBE, SVHN_1000, make_validator, validation_description
from dcgan_ref.extractor import DCGANExtractor
from dcgan_ref.models import ARCHITECTURES
from dcgan_ref.runtime import checkpoint
from dcgan_ref.runtime.errors import UserError, run_cli
from dcgan_ref.runtime.hardware import cpu_name, training_bf16, training_precision
from dcgan_ref.runtime.tracking import check_tracking_store, git_state, tracked_run
from dcgan_ref.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
# The protocol whose validation split and smallest label budget score the D along the way (--protocol).
# A D for the 1,000-label protocol trains on "train-minus-val" and is scored on that protocol's own
# 10,000-image split, so the row it makes never saw its validation images.
SCORING = {s.name: s for s in (CIFAR10_PROBE, SVHN_1000)}


@dataclass(frozen=True)
class StartOptions:
    """``gan_run start``: one long GAN training, declared once (the command line is made from it)."""
    name: str = option("default", "run folder name under $DCGAN_REPRO_CACHE/gan-runs/")
    run_dir: str | None = option(None, "the run folder itself (overrides --name)")
    gan_data: str = option(None, "what the GAN trains on: a path, or 'train' / 'train-minus-val' (the labelled "
                                 "data's training images, without the scoring protocol's validation split)",
                           required=True)
    data: str = option(None, "CIFAR-10 (the labelled data, for validation scores)", required=True)
    protocol: str = option("cifar10_probe", "whose validation split and smallest label budget score the D: "
                                            "cifar10_probe (5,000 images, 400 labels per class) or svhn_1000 "
                                            "(10,000 images, 1,000 labels)", choices=sorted(SCORING))
    arch: str = option("imagenet32", "", choices=sorted(ARCHITECTURES))
    preset: str = option("paper", "the scoring protocol's preset (paper: its own split sizes)")
    budget_images: int = option(1_250_000, "images seen at most (1,250,000: 25 CIFAR-10 epochs)", type=POSITIVE_INT)
    eval_every: int = option(125_000, "images between validation scores", type=POSITIVE_INT)
    plateau_images: int = option(250_000, "stop when two scores this many images apart ...", type=POSITIVE_INT)
    plateau_points: float = option(0.3, "... differ by less than this many points", type=POSITIVE_FLOAT)
    bn_images: int = option(10_000, "GAN images whose batchnorm statistics the validation scores use",
                            type=POSITIVE_INT)
    batch_size: int = option(128, "", type=POSITIVE_INT)
    precision: str = option("auto", "auto: fp32, or a resumed run's own precision (bf16 autocast lost accuracy "
                                    "in its A/B: REPORT.md, results/precision_ab)", choices=["auto", "bf16", "fp32"])
    ckpt_minutes: float = option(10.0, "a checkpoint at least this often (minutes of training)", type=POSITIVE_FLOAT)
    log_every: int = option(20, "steps between progress lines", type=POSITIVE_INT)
    threads: int | None = option(None, "torch threads (default: every core)", type=POSITIVE_INT)
    seed: int = option(0, "", type=NONNEGATIVE_INT)
    detach: bool = option(False, "run in the background, log in <run>/train.log")
def run_folder(args: argparse.Namespace) -> Path:
    return Path(args.run_dir).expanduser() if args.run_dir else runs_root() / args.name


# ------------------------------------------------------------------ start
def _probe_context(args: argparse.Namespace) -> tuple[RunContext, ProtocolData]:
    """The scoring protocol (the CIFAR-10 probe unless --protocol) at paper scale, as the protocol
    itself loads it: its validation split and label draws score the D, so the score obeys the
    protocol's label budget."""
    options = RunOptions(preset=args.preset, device="cpu", seed=args.seed,
                         data=DataOptions(data=args.data, gan_data=args.gan_data, no_download=True),
                         extractors=ExtractorOptions(arch=args.arch), output=OutputOptions(no_results=True))
    run = resolve_run(SCORING[args.protocol], options, log=lambda *_: None)
    return run, load_data(run)


def _precision(args: argparse.Namespace, files: RunFiles) -> bool:
    """bf16 autocast or not. ``auto`` is fp32, except that a run resumed from its checkpoint keeps the
    precision it was trained in (the resume refuses a changed config)."""
    resumed = files.checkpoint.exists() and files.read_status().get("precision") == "bf16 autocast"
    return training_bf16(args.precision, torch.device("cpu"), default=resumed)


def start(args: argparse.Namespace) -> None:
    root = run_folder(args)
    finished = _finished(RunFiles(root), args)
    if finished:
        print(finished)
        return
    # The run's MLflow store lives with the run (it outlives the work tree too), unless one is named.
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root.resolve() / 'mlflow.db'}")
    if args.detach:
        return _detach(args, root)
    files = RunFiles(root)
    with exclusive(root):
        _train(args, files)


def _finished(files: RunFiles, args: argparse.Namespace) -> str | None:
    """Why the same command again would train nothing: the run is done and the budget not raised."""
    s = files.read_status()
    budget = args.budget_images // args.batch_size * args.batch_size
    if not str(s.get("state", "")).startswith("done") or not files.checkpoint.exists() or budget > s["images_seen"]:
        return None
    return (f"{files.root} is {s['state']} at {s['images_seen']:,} images; nothing to train (chosen D: "
            f"{files.chosen}). A --budget-images above {s['images_seen']:,} trains on from its checkpoint.")


def _detach(args: argparse.Namespace, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if locked(root):
        raise UserError(f"{root} is already being trained; python -m benchmarks.gan_run status --run-dir {root}")
    argv = [a for a in args.argv if a != "--detach"]
    with open(RunFiles(root).log, "a") as log:
        log.write(f"\n=== {dt.datetime.now():%Y-%m-%d %H:%M:%S} started: python -m benchmarks.gan_run "
                  f"{' '.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-u", "-m", "benchmarks.gan_run", *argv], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=os.getcwd(),
                                start_new_session=True, env=os.environ | {"PYTHONPATH": str(REPO)})
    print(f"training in the background, pid {proc.pid}; log {RunFiles(root).log}\n"
          f"progress: python -m benchmarks.gan_run status --run-dir {root}")


def _train(args: argparse.Namespace, files: RunFiles) -> None:
    bf16 = _precision(args, files)
    if args.threads:
        torch.set_num_threads(args.threads)
    check_tracking_store()
    if not files.checkpoint.exists():
        if files.curve.exists():
            files.curve.rename(files.curve.with_suffix(f".stale-{dt.datetime.now():%Y%m%d-%H%M%S}.csv"))
        print(f"no checkpoint at {files.checkpoint}: starting from step 0")
    run, data = _probe_context(args)
    images, b = data.gan_images, args.batch_size
    steps = args.budget_images // b
    every = max(1, args.eval_every // b)
    eval_steps = frozenset(range(every, steps + 1, every)) | {steps}
    cfg = TrainConfig(arch=args.arch, steps=steps, batch_size=b, seed=args.seed, bf16=bf16, channels_last=True,
                      log_every=args.log_every, ckpt_every=every, sample_every=every)
    precision = training_precision(bf16, torch.device("cpu"))
    x, y = data.train.images, data.train.labels
    validate = make_validator(run, data, x, y)
    bn_sample = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed + 5))
                       [: args.bn_images]]
    commit = git_state()[0][:7]
    curve = files.read_curve()
    started = dt.datetime.now().isoformat(timespec="seconds")
    state = {"name": files.root.name, "pid": os.getpid(), "started": started, "state": "running",
             "protocol": args.protocol, "seed": args.seed, "gan_data": data.gan_description, "arch": args.arch,
             "precision": precision, "cpu": cpu_name(), "budget_images": steps * b, "n_gan_images": len(images),
             "eval_every_images": every * b, "scored_by": validation_description(run, data),
             "command": "python -m benchmarks.gan_run " + " ".join(args.argv),
             "tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}  # where its losses are (publish reads them)
    last_rate = [0.0]

    def progress(p: dict[str, Any]) -> None:
        last_rate[0] = p["img_per_s"]
        files.write_status(state | p | {"updated": dt.datetime.now().isoformat(timespec="seconds")})

    def score(step: int, g: torch.nn.Module, d: torch.nn.Module) -> bool:
        seen = step * b
        if not any(r["images_seen"] == seen for r in curve):
            t0 = time.perf_counter()
            ex = DCGANExtractor(args.arch, train_cfg=None, discriminator=copy.deepcopy(d), label="", seed=args.seed)
            ex.fit(bn_sample)
            value = validate(ex)
            checkpoint.save_atomic({"config": dataclasses.asdict(cfg), "step": step, "d": d.state_dict(),
                                    "trained": _trained(state, seen, precision)}, files.snapshot(seen))
            curve.append({"images_seen": seen, "step": step, "val_score": round(value, 3),
                          "score_s": round(time.perf_counter() - t0, 1), "train_img_per_s": round(last_rate[0], 1),
                          "precision": precision, "commit": commit, "date": dt.date.today().isoformat()})
            files.write_curve(curve)
            best = max(curve, key=lambda r: r["val_score"])
            checkpoint.save_atomic(checkpoint.load(files.snapshot(best["images_seen"])) | {
                "chosen": f"best validation score {best['val_score']:.2f} of {len(curve)} scored lengths"},
                files.chosen)
            print(f"validation score at {seen:,} images seen (step {step}): {value:.2f}% "
                  f"(scored in {curve[-1]['score_s']:.0f} s; best {best['val_score']:.2f} at "
                  f"{best['images_seen']:,})", flush=True)
            _log_curve(curve[-1])
        stop = plateaued(curve, args.plateau_images, args.plateau_points)
        if stop:
            print(f"stopping: the scores at {stop[0]:,} and {stop[1]:,} images differ by less than "
                  f"{args.plateau_points} points", flush=True)
        return stop is not None

    config = vars(args) | {"gan_data_description": data.gan_description, "precision": precision,
                           "run_dir": str(files.root), "n_gan_images": len(images)}
    with tracked_run("gan_run", f"{args.arch} on {data.gan_description} [{files.root.name}]", config,
                     torch.device("cpu")):
        try:
            result = train(cfg, images, files.root, device=torch.device("cpu"), resume=True, on_eval=score,
                           eval_steps=eval_steps, ckpt_every_s=args.ckpt_minutes * 60, on_progress=progress,
                           log=lambda m: print(m, flush=True))
        except BaseException as e:
            files.write_status(files.read_status() | {"state": f"stopped ({type(e).__name__})",
                                                       "updated": dt.datetime.now().isoformat(timespec="seconds")})
            raise
    done = "plateau" if plateaued(curve, args.plateau_images, args.plateau_points) else "budget spent"
    files.write_status(files.read_status() | {"state": f"done ({done})", "step": result.steps,
                                              "images_seen": result.steps * b,
                                              "updated": dt.datetime.now().isoformat(timespec="seconds")})
    print(f"done ({done}) at {result.steps * b:,} images; chosen D: {files.chosen}")


def _trained(state: dict[str, Any], seen: int, precision: str) -> dict[str, Any]:
    """What a results row says about a D of this run (read by dcgan_ref.pretrained)."""
    return {"run": state["name"], "gan_data": state["gan_data"], "images_seen": seen, "precision": precision,
            "cpu": state["cpu"], "scored_on": {"protocol": state["protocol"], "seed": state["seed"]}}


def _log_curve(row: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_metrics({"val_score": row["val_score"], "score_s": row["score_s"]}, step=row["images_seen"])


# ------------------------------------------------------------------ status
def status(args: argparse.Namespace) -> None:
    roots = [run_folder(args)] if (args.run_dir or args.name) else sorted(
        p for p in runs_root().glob("*") if p.is_dir()) if runs_root().is_dir() else []
    if not roots:
        raise UserError(f"no GAN runs under {runs_root()}; start one with python -m benchmarks.gan_run start")
    for root in roots:
        files = RunFiles(root)
        if not root.is_dir():
            raise UserError(f"no run folder {root}")
        s = files.read_status()
        alive = locked(root)
        state = "running" if alive else (s.get("state", "not started") if s.get("state") != "running"
                                         else "not running (stopped without a trace: killed or the machine ended)")
        print(f"{root}: {state}")
        if "step" in s:
            eta = dt.timedelta(seconds=round(s["eta_s"])) if alive else "-"
            print(f"  step {s['step']:,}/{s['steps']:,}, {s['images_seen']:,} of {s['budget_images']:,} images seen, "
                  f"{s['img_per_s']:.1f} img/s, ETA {eta}; {s['arch']} on {s['gan_data']}, {s['precision']}, "
                  f"{s['cpu']}; updated {s['updated']}")
        for r in files.read_curve():
            print(f"  validation {r['val_score']:6.2f}% at {r['images_seen']:>9,} images (step {r['step']})")
        if files.checkpoint.exists():
            written = dt.datetime.fromtimestamp(files.checkpoint.stat().st_mtime)
            print(f"  checkpoint {files.checkpoint} (written {written:%Y-%m-%d %H:%M:%S})")
        if not alive and s.get("command"):
            print(f"  resume: {s['command']}")


# ------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gan_run", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="train (or resume) a GAN in its run folder")
    for f in dataclasses.fields(StartOptions):
        add_option(s, f)
    t = sub.add_parser("status", help="where each run stands")
    t.add_argument("--name")
    t.add_argument("--run-dir")
    u = sub.add_parser("publish", help="copy a run's curve, losses and samples into results/gan_runs/<name>/ "
                                      "(what the report draws; the run folder stays on its machine)")
    u.add_argument("--name", default="default")
    u.add_argument("--run-dir")
    u.add_argument("--results-dir", default=str(RESULTS_DIR))
    return p


def publish(args: argparse.Namespace) -> None:
    root = run_folder(args)
    if not root.is_dir():
        raise UserError(f"no run folder {root}")
    print(f"published {gan_publish.publish(RunFiles(root), Path(args.results_dir))}")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what resumes it: the same command
    {"start": start, "status": status, "publish": publish}[args.command](args)


if __name__ == "__main__":
    run_cli(main)
