"""Scale-out with ``torchrun``: one GAN trained by N processes with DistributedDataParallel.

    torchrun --nproc_per_node N -m dcgan_ref.train --data ... --batch-size 128 ...

``--batch-size`` stays the *global* batch: every rank draws the same permutation and the
same z for each global batch (same seeds) and takes its shard, so N ranks compute what one
process computes, up to float rounding, and a checkpoint resumes with any world size.
Batchnorm statistics are the global batch's: ``nn.SyncBatchNorm`` on GPUs, and on CPUs
(where it does not run) :class:`GlobalBatchNorm`, the same computation over gloo.  NCCL on
GPUs, gloo on CPUs; rank 0 alone writes checkpoints, samples and MLflow.
"""
from __future__ import annotations

import datetime as dt
import io
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dcgan_ref.runtime.errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch."""
        per_rank = len(batch) // self.size
        return batch[self.rank * per_rank:(self.rank + 1) * per_rank]


def init_from_env(device: torch.device, timeout: dt.timedelta | None = None) -> tuple[World, torch.device]:
    """The process group torchrun describes in the environment (none: a single process).

    ``timeout``: how long a collective may wait (the default, 10-30 min, is too short for
    ranks that wait while rank 0 trains a GAN)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    return world, device


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batchnorm whose training statistics are those of the global batch across ranks.

    ``nn.SyncBatchNorm`` for CPUs: per-channel sums and sums of squares are all-reduced
    with a differentiable all-reduce (so the backward pass is global too); eval mode and a
    single process are plain batchnorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 4):
            raise ValueError(f"expected 2-D or 4-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = dist_fn.all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean, var = stats[:c] / n, stats[c:2 * c] / n - (stats[:c] / n) ** 2  # biased, as batchnorm normalises
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        shape = (1, c) if x.dim() == 2 else (1, c, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every batchnorm of ``module`` computed over the global batch."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            bn = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats).to(child.weight.device)
            bn.load_state_dict(child.state_dict())
            setattr(module, name, bn)
        else:
            convert_batchnorm(child, device)
    return module


def wrap(module: nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP over ``module``; buffers are not broadcast (batchnorm statistics are already global)."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def check_batch(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise UserError(f"--batch-size {batch_size} (the global batch) must divide evenly over "
                        f"{world.size} ranks")


def all_mean(t: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of ``t`` over ranks (for logging losses; a no-op in one process)."""
    if world.size > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= world.size
    return t


# ------------------------------------------------------------------ sharded feature extraction
def share_object(obj, world: World, device: torch.device):
    """Rank 0's ``obj`` (a fitted extractor) on every rank, its tensors on this rank's device.

    ``torch.save`` / ``torch.load(map_location=...)`` rather than pickle: rank 0's CUDA
    tensors land on each rank's own GPU.  The bytes come from rank 0 of this same job, so
    loading them with ``weights_only=False`` runs no one else's code.
    """
    if world.size == 1:
        return obj
    payload = [None]
    if world.main:
        buf = io.BytesIO()
        torch.save(obj, buf)
        payload = [buf.getvalue()]
    dist.broadcast_object_list(payload, src=0)
    return obj if world.main else torch.load(io.BytesIO(payload[0]), map_location=device, weights_only=False)


def row_bounds(n: int, world: World) -> tuple[int, int]:
    """This rank's contiguous share of ``n`` rows (the first ``n % size`` ranks take one more)."""
    per, extra = divmod(n, world.size)
    start = world.rank * per + min(world.rank, extra)
    return start, start + per + (world.rank < extra)


def gather_rows(fn, x: torch.Tensor, world: World) -> torch.Tensor | None:
    """``fn(x)`` computed by the ranks together: each maps its share of the rows, rank 0
    receives the whole ``(len(x), ...)`` result in row order, the other ranks ``None``.
    ``fn`` must map each row independently of the others (batchnorm in eval mode, say)."""
    if world.size == 1:
        return fn(x)
    start, stop = row_bounds(len(x), world)
    part = fn(x[start:stop])
    longest = -(-len(x) // world.size)
    padded = part.new_zeros((longest, *part.shape[1:]))  # gather needs equal shapes
    padded[:len(part)] = part
    parts = [torch.empty_like(padded) for _ in range(world.size)] if world.main else None
    dist.gather(padded, parts, dst=0)
    if not world.main:
        return None
    return torch.cat([p[:b - a] for p, (a, b) in zip(parts, (row_bounds(len(x), World(r, world.size))
                                                              for r in range(world.size)))])
