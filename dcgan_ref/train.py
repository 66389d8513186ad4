"""Train a DCGAN with the paper's recipe.  ``python -m dcgan_ref.train --help``.

Adam(2e-4, beta1 0.5), batch 128, BCE on logits, z per architecture.  Batches are drawn
by indexing a device-resident uint8 tensor with a per-epoch ``randperm``; losses stay on
the device and are read only every ``log_every`` steps.  Checkpoints (atomic) hold model,
optimiser, data-order and RNG states, so ``--resume`` continues exactly where a run
stopped.  A non-finite loss stops the run with ``TrainingDiverged``.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from dcgan_ref import checkpoint
from dcgan_ref.errors import TrainingDiverged, UserError, run_cli
from dcgan_ref.models import Discriminator, Generator, build_gan, get_architecture


@dataclass
class TrainConfig:
    arch: str = "imagenet32"
    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    weight_decay: float = 0.0
    seed: int = 0
    bf16: bool = False
    channels_last: bool = False
    cuda_graph: bool = False
    deterministic: bool = False
    log_every: int = 100
    ckpt_every: int = 1000
    sample_every: int = 1000


@dataclass
class TrainResult:
    g: Generator
    d: Discriminator
    steps: int
    img_per_s: float
    wall_s: float
    last_losses: tuple[float, float]


def pick_device(name: str | None = None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_determinism(on: bool) -> None:
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.benchmark = not on


def make_step(g: Generator, d: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
              bf16: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One D update (real and fake) then one G update; returns the losses (D, G) on device."""
    device_type = next(d.parameters()).device.type

    def step(real_u8: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        real = real_u8.float().div_(127.5).sub_(1.0)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            fake = g(z)
            out_real, out_fake = d(real), d(fake.detach())
            loss_d = (F.binary_cross_entropy_with_logits(out_real.float(), torch.ones_like(out_real, dtype=torch.float))
                      + F.binary_cross_entropy_with_logits(out_fake.float(), torch.zeros_like(out_fake, dtype=torch.float)))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            out_gen = d(fake)
            loss_g = F.binary_cross_entropy_with_logits(out_gen.float(), torch.ones_like(out_gen, dtype=torch.float))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return torch.stack([loss_d.detach(), loss_g.detach()])

    return step


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
          on_eval: Callable[[int, Generator, Discriminator], None] | None = None,
          eval_steps: frozenset[int] = frozenset(),
          log: Callable[[str], None] = print) -> TrainResult:
    """Train G and D on uint8 images (N, 3, H, W); ``on_eval`` is called at ``eval_steps``."""
    arch = get_architecture(cfg.arch)
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, arch.image_size, arch.image_size):
        raise UserError(f"{cfg.arch} trains on uint8 images (N, 3, {arch.image_size}, {arch.image_size}); "
                        f"got {tuple(images.shape)} {images.dtype}")
    if len(images) < cfg.batch_size:
        raise UserError(f"{len(images)} training images is fewer than one batch of {cfg.batch_size}")
    set_determinism(cfg.deterministic)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "last.pt"
    torch.manual_seed(cfg.seed)

    data = images.to(device)
    g, d = build_gan(cfg.arch, cfg.seed)
    g, d = g.to(device), d.to(device)
    if cfg.channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    fused = device.type == "cuda"
    graphed = cfg.cuda_graph and device.type == "cuda"  # capture needs capturable Adam (state on the device)
    opt_g = torch.optim.Adam(g.parameters(), cfg.lr, betas=(cfg.beta1, 0.999), weight_decay=cfg.weight_decay, fused=fused,
                             capturable=graphed)
    opt_d = torch.optim.Adam(d.parameters(), cfg.lr, betas=(cfg.beta1, 0.999), weight_decay=cfg.weight_decay, fused=fused,
                             capturable=graphed)
    data_gen = torch.Generator(device).manual_seed(cfg.seed + 1)
    z_gen = torch.Generator(device).manual_seed(cfg.seed + 2)
    fixed_z = arch.sample_z(64, device, torch.Generator(device).manual_seed(cfg.seed + 3))
    step, pos, perm = 0, len(data), torch.empty(0, dtype=torch.long, device=device)

    if resume and ckpt_path.exists():
        state = checkpoint.load(ckpt_path, map_location=device)
        if state["config"] != dataclasses.asdict(cfg) | {"steps": state["config"]["steps"]}:
            raise UserError(f"--resume: {ckpt_path} was written with a different config "
                            f"({state['config']}); use a fresh --out or the same settings")
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        data_gen.set_state(state["data_gen"])
        z_gen.set_state(state["z_gen"])
        step, pos, perm = state["step"], state["pos"], state["perm"].to(device)
        log(f"resumed from {ckpt_path} at step {step}")
    elif resume:
        log(f"--resume: no checkpoint at {ckpt_path}, starting fresh")

    def write_checkpoint() -> None:
        checkpoint.save_atomic({
            "config": dataclasses.asdict(cfg), "step": step, "pos": pos, "perm": perm.cpu(),
            "g": g.state_dict(), "d": d.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "data_gen": data_gen.get_state(), "z_gen": z_gen.get_state(),
        }, ckpt_path)

    if graphed:  # built after any resume; the graph is captured on the first call, from the loaded state
        from dcgan_ref.fast_step import make_graphed_step

        step_fn = make_graphed_step(g, d, opt_g, opt_d, bf16=cfg.bf16)
    else:
        step_fn = make_step(g, d, opt_g, opt_d, cfg.bf16)
    b, n = cfg.batch_size, len(data)
    loss_sum = torch.zeros(2, device=device)
    window_start, window_steps, last = time.perf_counter(), 0, (math.nan, math.nan)
    t0, start_step = time.perf_counter(), step
    log(f"training {cfg.arch} on {n} images, {device}, batch {b}, {cfg.steps} steps "
        f"({cfg.steps * b / n:.1f} epochs){', bf16' if cfg.bf16 else ''}{', CUDA graph' if graphed else ''}")
    while step < cfg.steps:
        if pos + b > n:  # new epoch: one randperm on the device
            perm, pos = torch.randperm(n, device=device, generator=data_gen), 0
        real = data[perm[pos:pos + b]]
        if cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        pos += b
        loss_sum += step_fn(real, arch.sample_z(b, device, z_gen))
        step += 1
        window_steps += 1

        boundary = step == cfg.steps or step in eval_steps
        if step % cfg.log_every == 0 or step % cfg.ckpt_every == 0 or boundary:
            loss_d, loss_g = (loss_sum / window_steps).tolist()  # the only host sync
            if not (math.isfinite(loss_d) and math.isfinite(loss_g)):
                raise TrainingDiverged(f"non-finite loss at step {step} (loss_D={loss_d}, loss_G={loss_g}); "
                                       f"the last good checkpoint is {ckpt_path if ckpt_path.exists() else 'none'}")
            now = time.perf_counter()
            rate = window_steps * b / (now - window_start)
            eta = (cfg.steps - step) * b / rate
            log(f"step {step}/{cfg.steps} epoch {step * b / n:.2f} | loss_D {loss_d:.3f} loss_G {loss_g:.3f} | "
                f"{rate:,.0f} img/s | ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}")
            if _mlflow_active():
                import mlflow

                mlflow.log_metrics({"loss_D": loss_d, "loss_G": loss_g, "train_img_per_s": rate}, step=step)
            last = (loss_d, loss_g)
            loss_sum.zero_()
            window_start, window_steps = time.perf_counter(), 0
        if step % cfg.sample_every == 0 or step == cfg.steps:
            grid = save_samples(g, fixed_z, out_dir / f"samples_{step:07d}.png")
            if _mlflow_active():
                import mlflow

                mlflow.log_artifact(str(grid), "samples")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            write_checkpoint()
        if on_eval is not None and step in eval_steps:
            on_eval(step, g, d)

    wall = time.perf_counter() - t0
    rate = (step - start_step) * b / wall if step > start_step else 0.0
    return TrainResult(g, d, step, rate, wall, last)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dcgan_ref.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="training images: official CIFAR-10/SVHN folder, Imagenet32 "
                   "batches, an image-folder tree or its .tar.xz/.tar.gz/.zip")
    p.add_argument("--split", default="train")
    p.add_argument("--dataset", choices=["cifar10", "svhn", "imagenet32"], help="official set to fetch if --data is empty")
    p.add_argument("--no-download", action="store_true")
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
    from dcgan_ref.data import load_split
    from dcgan_ref.tracking import tracked_run

    args = build_parser().parse_args(argv)
    device = pick_device(args.device)
    data = load_split(args.data, args.split, dataset=args.dataset, download=not args.no_download)
    images = data.images[: args.limit] if args.limit else data.images
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    if args.epochs is not None:
        cfg.steps = max(1, round(args.epochs * len(images) / cfg.batch_size))
    run_config = dataclasses.asdict(cfg) | {"data": str(args.data), "data_sha256": data.sha256,
                                            "data_description": data.description, "n_images": len(images)}
    with tracked_run("dcgan_train", f"{cfg.arch}-{data.description}", run_config, device) as run:
        result = train(cfg, images, args.out, device=device, resume=args.resume)
        import mlflow

        mlflow.log_metrics({"train_wall_s": result.wall_s, "train_img_per_s_mean": result.img_per_s})
        print(f"done: {result.steps} steps, {result.img_per_s:,.0f} img/s, {result.wall_s:.1f} s; "
              f"checkpoint {Path(args.out) / 'last.pt'}; MLflow run {run.info.run_id}")


if __name__ == "__main__":
    run_cli(main)
