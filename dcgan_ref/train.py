"""Train a DCGAN with the paper's recipe.  ``python -m dcgan_ref.train --help``.

Adam(2e-4, beta1 0.5), batch 128, BCE on logits, z per architecture.  Batches are drawn
by indexing a device-resident uint8 tensor with a per-epoch ``randperm``; losses stay on
the device and are read only every ``log_every`` steps.  Checkpoints (atomic) hold model,
optimiser, data-order and RNG states, so ``--resume`` continues exactly where a run
stopped.  A non-finite loss stops the run with ``TrainingDiverged``.  At every epoch's end
a mode-collapse check (``dcgan_ref.collapse``) logs G's sample diversity and warns when it
collapses.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torchvision.utils import make_grid, save_image

from dcgan_ref.collapse import CollapseMonitor
from dcgan_ref.datasets.loading import load_split
from dcgan_ref.models import Discriminator, Generator, get_architecture
from dcgan_ref.runtime import checkpoint
from dcgan_ref.runtime.distributed import World, all_mean, check_batch, init_from_env
from dcgan_ref.runtime.errors import TrainingDiverged, UserError, run_cli
from dcgan_ref.runtime.hardware import pick_device
from dcgan_ref.runtime.tracking import check_tracking_store, tracked_run
from dcgan_ref.step import GanSetup, ResidentBatches, StepSettings


@dataclass
class Recipe:
    """How the GAN trains, whatever its length: the paper's text (Adam, lr 2e-4, beta1 0.5, batch
    128) unless a preset says otherwise. Declared once: a preset's ``GanConfig`` holds one and
    :class:`TrainConfig` extends it."""
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    weight_decay: float = 0.0
    # "both": a D and a G update on every batch (the paper's text); "alternate": D on one
    # batch, G on the next, as the authors' released training script does (k = 1).
    schedule: str = "both"
    bf16: bool = False
    channels_last: bool = False
    cuda_graph: bool = False


@dataclass
class TrainConfig(Recipe):
    """One training: a recipe, the architecture, the length and the bookkeeping."""
    arch: str = "imagenet32"
    steps: int = 1000
    seed: int = 0
    deterministic: bool = False
    log_every: int = 100
    ckpt_every: int = 1000
    sample_every: int = 1000

    @classmethod
    def of(cls, recipe: Recipe, **run: object) -> "TrainConfig":
        """The recipe's fields plus this run's own (arch, steps, seed, ...)."""
        return cls(**{f.name: getattr(recipe, f.name) for f in dataclasses.fields(Recipe)}, **run)


@dataclass
class TrainResult:
    g: Generator
    d: Discriminator
    steps: int
    img_per_s: float
    wall_s: float
    last_losses: tuple[float, float]
    # One dict per epoch's end (and the run's): step, epoch, diversity, near_identical, flag,
    # and loss_D/loss_G of the latest logged window (NaN before the first).
    collapse: list[dict] = dataclasses.field(default_factory=list)


def set_determinism(on: bool) -> None:
    """``on``: deterministic kernels (bitwise-repeatable runs, slower).  Off leaves the
    caller's global flags alone and only lets cuDNN autotune where determinism is not asked."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True  # fixed shapes every step: autotuning pays for itself


def _tensor_sha256(images: torch.Tensor) -> str:
    """sha256 of the training images' bytes (150 MB for CIFAR-10: a fraction of a second)."""
    return hashlib.sha256(images.cpu().contiguous().numpy().tobytes()).hexdigest()


def save_samples(g: Generator, z: torch.Tensor, path: Path) -> Path:
    """An 8-wide grid of G(z) (G in eval mode, its state untouched)."""
    was_training = g.training
    g.eval()
    with torch.no_grad():
        images = g(z).float().add(1).div(2).clamp(0, 1).cpu()
    g.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(images, nrow=8, padding=2), path)
    return path


def _mlflow_active() -> bool:
    import mlflow

    return mlflow.active_run() is not None


def train(cfg: TrainConfig, images: torch.Tensor, out_dir: str | os.PathLike, *, device: torch.device,
          resume: bool = False,
          on_eval: Callable[[int, Generator, Discriminator], bool | None] | None = None,
          eval_steps: frozenset[int] = frozenset(),
          log: Callable[[str], None] = print, world: World = World(),
          ckpt_every_s: float | None = None,
          on_progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Train G and D on uint8 images (N, 3, H, W); ``on_eval`` is called at ``eval_steps``
    (after a checkpoint there) and stops the training by returning True.

    ``world``: under torchrun, this rank's place (see ``dcgan_ref.runtime.distributed``); every rank
    passes the same images and config, rank 0 alone writes and logs.
    ``ckpt_every_s``: also checkpoint once this many seconds have passed since the last one
    (checked at each log line), so a run that dies loses at most that much.
    ``on_progress``: called at each log line with step, steps, images seen, img/s, ETA, losses.
    """
    arch = _check_inputs(cfg, images, world, validating=on_eval is not None)
    log = log if world.main else (lambda _: None)
    set_determinism(cfg.deterministic)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "last.pt"  # one checkpoint, replaced atomically: a crash never leaves half of one
    torch.manual_seed(cfg.seed)

    # G and D, their optimisers and the step: the same set-up the throughput suite times (graphs: CUDA only).
    graphs = cfg.cuda_graph and device.type == "cuda"
    setup = GanSetup.create(cfg.arch, StepSettings(cfg.bf16, cfg.channels_last, graphs), device, seed=cfg.seed,
                            lr=cfg.lr, beta1=cfg.beta1, weight_decay=cfg.weight_decay, world=world)
    g, d = setup.g, setup.d
    batches, z_gen, fixed_z, monitor = _streams(cfg, arch, images, device, g)
    data_id = {"sha256": _tensor_sha256(images), "n_images": len(images)}
    step = _resume(ckpt_path, cfg, data_id, setup, batches, z_gen, device, log) if resume else 0

    def write_checkpoint() -> None:
        if world.main:
            _save_checkpoint(ckpt_path, cfg, data_id, step, setup, batches, z_gen)

    if on_eval is not None and step in eval_steps and step > 0 and on_eval(step, g, d):  # resumed at a candidate
        return TrainResult(g, d, step, 0.0, 0.0, (math.nan, math.nan), [])  # length it may not have scored yet
    steps_by_parity = _steps_by_parity(setup, cfg.schedule)  # after any resume: a CUDA graph captures that state
    last_losses = torch.zeros(2, device=device)  # alternate: each network's latest loss, for the log
    b, n, loss_sum = cfg.batch_size, len(images), torch.zeros(2, device=device)
    window_start, window_steps, last = time.perf_counter(), 0, (math.nan, math.nan)
    t0 = last_ckpt = time.perf_counter()
    start_step = step
    steps_per_epoch = n // b  # ResidentBatches draws full batches only: a pass over the data is n // b steps
    collapse_history: list[dict] = []
    log(f"training {cfg.arch} on {n} images, {device}, batch {b}, {cfg.steps} steps "
        f"({cfg.steps * b / n:.1f} epochs), {setup.settings.describe()}")
    while step < cfg.steps:
        # Every rank draws the same global batch and z, and keeps its shard: N ranks compute
        # what one process does, and any world size can resume any checkpoint.
        real, z = world.shard(batches.next()), world.shard(arch.sample_z(b, device, z_gen))
        last_losses = _latest(cfg.schedule, last_losses, steps_by_parity[step % 2](real, z), step % 2)
        loss_sum += last_losses  # on the device: reading it every step would sync host and device
        step, window_steps = step + 1, window_steps + 1
        if step % cfg.log_every == 0 or step % cfg.ckpt_every == 0 or step == cfg.steps or step in eval_steps:
            last = _window_losses(loss_sum / window_steps, step, ckpt_path, world)  # the only host sync
            now = time.perf_counter()
            _report(cfg, step, n, last, window_steps * b / (now - window_start), world, log, on_progress)
            if ckpt_every_s is not None and now - last_ckpt >= ckpt_every_s and step % cfg.ckpt_every:
                write_checkpoint()
                last_ckpt = time.perf_counter()
            loss_sum.zero_()
            window_start, window_steps = time.perf_counter(), 0
        if step % steps_per_epoch == 0 or step == cfg.steps:
            collapse_history.append(_collapse_check(monitor, g, step, step / steps_per_epoch, last, world, log))
        if world.main and (step % cfg.sample_every == 0 or step == cfg.steps):
            _samples(g, fixed_z, out_dir / f"samples_{step:07d}.png")
        if step % cfg.ckpt_every == 0 or step == cfg.steps or step in eval_steps:
            write_checkpoint()
            last_ckpt = time.perf_counter()
        if on_eval is not None and step in eval_steps:  # after the checkpoint: a crash in scoring loses nothing
            if on_eval(step, g, d):
                break
        if window_steps == 0:  # a window just closed: the next one times training, not the collapse
            window_start = time.perf_counter()  # check, samples, checkpoint and scoring that followed it

    wall = time.perf_counter() - t0
    rate = (step - start_step) * b / wall if step > start_step else 0.0
    return TrainResult(g, d, step, rate, wall, last, collapse_history)


def _streams(cfg: TrainConfig, arch, images: torch.Tensor, device: torch.device, g: Generator):
    """The run's batches, z stream, the sample grid's fixed z and the collapse monitor."""
    # The whole uint8 set lives on the device (CIFAR-10: 150 MB): batches are an index, not a DataLoader.
    batches = ResidentBatches(images.to(device), cfg.batch_size, channels_last=cfg.channels_last, seed=cfg.seed + 1)
    # Separate generators for data order, z and the sample grid's fixed z: each stream is
    # checkpointed on its own, so a resumed run draws exactly what an uninterrupted one would.
    z_gen = torch.Generator(device).manual_seed(cfg.seed + 2)
    fixed_z = arch.sample_z(64, device, torch.Generator(device).manual_seed(cfg.seed + 3))
    # The collapse check's fixed z and real reference: their own seeds, so nothing to checkpoint.
    return batches, z_gen, fixed_z, CollapseMonitor(g, images, device, seed=cfg.seed + 4)


def _save_checkpoint(path: Path, cfg: TrainConfig, data_id: dict, step: int, setup: GanSetup,
                     batches: ResidentBatches, z_gen: torch.Generator) -> None:
    checkpoint.save_atomic({
        "config": dataclasses.asdict(cfg), "data": data_id, "step": step, **batches.state(),
        "g": setup.g.state_dict(), "d": setup.d.state_dict(), "opt_g": setup.opt_g.state_dict(),
        "opt_d": setup.opt_d.state_dict(), "z_gen": z_gen.get_state(),
    }, path)


def _latest(schedule: str, last_losses: torch.Tensor, losses: torch.Tensor, parity: int) -> torch.Tensor:
    """Each network's latest loss: alternate steps update one of the two (a real NaN still
    reaches the window's check)."""
    if schedule == "both":
        return losses
    last_losses = last_losses.clone()
    last_losses[parity] = losses[parity]
    return last_losses


def _window_losses(mean: torch.Tensor, step: int, ckpt_path: Path, world: World) -> tuple[float, float]:
    """The window's mean (loss_D, loss_G) over every rank; a non-finite one stops the run."""
    loss_d, loss_g = all_mean(mean, world).tolist()
    if not (math.isfinite(loss_d) and math.isfinite(loss_g)):
        raise TrainingDiverged(f"non-finite loss at step {step} (loss_D={loss_d}, loss_G={loss_g}); "
                               f"the last good checkpoint is {ckpt_path if ckpt_path.exists() else 'none'}")
    return loss_d, loss_g


def _samples(g: Generator, fixed_z: torch.Tensor, path: Path) -> None:
    grid = save_samples(g, fixed_z, path)
    if _mlflow_active():
        import mlflow

        mlflow.log_artifact(str(grid), "samples")


def _check_inputs(cfg: TrainConfig, images: torch.Tensor, world: World, validating: bool):
    """The architecture, once the images, batch and world are known to fit it."""
    arch = get_architecture(cfg.arch)
    shape = (3, arch.image_size, arch.image_size)
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != shape:
        raise UserError(f"{cfg.arch} trains on uint8 images (N, 3, {arch.image_size}, {arch.image_size}); "
                        f"got {tuple(images.shape)} {images.dtype}")
    if len(images) < cfg.batch_size:
        raise UserError(f"{len(images)} training images is fewer than one batch of {cfg.batch_size}")
    check_batch(cfg.batch_size, world)
    if world.size > 1 and validating:
        raise UserError("choosing the GAN's length on validation runs in one process, not under torchrun")
    return arch


def _resume(ckpt_path: Path, cfg: TrainConfig, data_id: dict, setup: GanSetup, batches: ResidentBatches,
            z_gen: torch.Generator, device: torch.device, log: Callable[[str], None]) -> int:
    """The step to go on from: the checkpoint's, with every network, optimiser and random
    stream restored; 0 (said in one line) without a checkpoint. A checkpoint of another run
    (data, config, architecture) is refused."""
    if not ckpt_path.exists():
        log(f"--resume: no checkpoint at {ckpt_path}, starting fresh")
        return 0
    try:
        state = checkpoint.load(ckpt_path, map_location=device)
    except ValueError as e:
        raise UserError(f"--resume: {e}") from None
    missing = [k for k in ("config", "step", "g", "d", "opt_g", "opt_d", "z_gen") if k not in state]
    if missing:
        raise UserError(f"--resume: {ckpt_path} is not a training checkpoint of dcgan_ref.train (it has no "
                        f"{', '.join(missing)}); use a fresh --out")
    if state.get("data") != data_id:
        raise UserError(f"--resume: {ckpt_path} was trained on other data ({state.get('data')}) than this run's "
                        f"({data_id}); use the same data or a fresh --out")
    if state["config"] != dataclasses.asdict(cfg) | {"steps": state["config"]["steps"]}:
        raise UserError(f"--resume: {ckpt_path} was written with a different config "
                        f"({state['config']}); use a fresh --out or the same settings")
    try:
        setup.g.load_state_dict(state["g"])
        setup.d.load_state_dict(state["d"])
        setup.opt_g.load_state_dict(state["opt_g"])
        setup.opt_d.load_state_dict(state["opt_d"])
        batches.load(state)
        z_gen.set_state(state["z_gen"])
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--resume: {ckpt_path} does not fit this {cfg.arch} run ({first}); use a fresh "
                        f"--out") from None
    log(f"resumed from {ckpt_path} at step {state['step']}")
    return state["step"]


def _steps_by_parity(setup: GanSetup, schedule: str) -> tuple:
    """The step function for even and odd global steps."""
    if schedule == "both":
        return (setup.make_step(),) * 2
    if schedule == "alternate":  # the parity of the global step picks the network: resumes exactly
        return setup.make_step("d"), setup.make_step("g")
    raise UserError(f"schedule must be 'both' or 'alternate', got {schedule!r}")


def _report(cfg: TrainConfig, step: int, n: int, losses: tuple[float, float], rate: float, world: World,
            log: Callable[[str], None], on_progress: Callable[[dict], None] | None) -> None:
    """One log line (and its MLflow metrics and progress callback) for a closed window."""
    b, (loss_d, loss_g) = cfg.batch_size, losses
    eta = (cfg.steps - step) * b / rate
    log(f"step {step}/{cfg.steps} epoch {step * b / n:.2f} | loss_D {loss_d:.3f} loss_G {loss_g:.3f} | "
        f"{rate:,.0f} img/s | ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}")
    if _mlflow_active():
        import mlflow

        mlflow.log_metrics({"loss_D": loss_d, "loss_G": loss_g, "train_img_per_s": rate}, step=step)
    if on_progress is not None and world.main:
        on_progress({"step": step, "steps": cfg.steps, "images_seen": step * b, "img_per_s": rate,
                     "eta_s": eta, "loss_D": loss_d, "loss_G": loss_g})


def _collapse_check(monitor: CollapseMonitor, g: Generator, step: int, epoch: float, last: tuple[float, float],
                    world: World, log: Callable[[str], None]) -> dict:
    """The epoch's collapse statistics (logged, and warned about when they flag collapse)."""
    stats = monitor.check(g)  # on every rank: under torchrun, G's batchnorm is a collective
    log(f"{'WARNING: ' if stats.flag else ''}collapse check at step {step} (epoch {epoch:.2f}): "
        f"{stats.describe()}")
    if world.main and _mlflow_active():
        import mlflow

        mlflow.log_metrics(stats.metrics(), step=step)
    return {"step": step, "epoch": epoch, **stats.as_dict(), "loss_D": last[0], "loss_G": last[1]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dcgan_ref.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="training images: official CIFAR-10/SVHN folder, Imagenet32 "
                   "batches, an image-folder tree or its .tar.xz/.tar.gz/.zip")
    p.add_argument("--split", default="train")
    p.add_argument("--dataset", choices=["cifar10", "svhn", "imagenet32"],
                   help="official set to fetch if --data is empty")
    p.add_argument("--download", action="store_true", help="fetch the official files into --data if missing")
    p.add_argument("--no-download", action="store_true", help=argparse.SUPPRESS)  # the default; kept for old scripts
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--out", default="runs/train", help="checkpoints and sample grids go here")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--device")
    p.add_argument("--epochs", type=float, help="training length in epochs (overrides --steps)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", default=f.default)
        else:
            p.add_argument(flag, type=type(f.default), default=f.default)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    world, device = init_from_env(pick_device(args.device))  # torchrun: one process per rank
    if world.main:
        check_tracking_store()
    data = load_split(args.data, args.split, dataset=args.dataset, download=args.download and not args.no_download)
    images = data.images[: args.limit] if args.limit else data.images
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    if args.epochs is not None:
        cfg.steps = max(1, round(args.epochs * len(images) / cfg.batch_size))
    run_config = dataclasses.asdict(cfg) | {"data": str(args.data), "data_sha256": data.sha256,
                                            "data_description": data.description, "n_images": len(images)}
    if not world.main:  # MLflow, checkpoints and samples are rank 0's
        train(cfg, images, args.out, device=device, resume=args.resume, world=world)
        return
    run_config |= {"world_size": world.size}
    with tracked_run("dcgan_train", f"{cfg.arch}-{data.description}", run_config, device) as run:
        result = train(cfg, images, args.out, device=device, resume=args.resume, world=world)
        import mlflow

        mlflow.log_metrics({"train_wall_s": result.wall_s, "train_img_per_s_mean": result.img_per_s})
        print(f"done: {result.steps} steps, {result.img_per_s:,.0f} img/s, {result.wall_s:.1f} s"
              f"{f' on {world.size} ranks' if world.size > 1 else ''}; checkpoint {Path(args.out) / 'last.pt'}; "
              f"MLflow run {run.info.run_id}")


if __name__ == "__main__":
    run_cli(main)
