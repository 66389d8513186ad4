"""The one GAN training set-up: optimisers, the D+G step, and the batcher.

Used by the trainer (``train.py``), the throughput suite's fast path and its naive path,
so what is timed is what trains.  The paper's recipe: Adam(lr 2e-4, beta1 0.5), BCE on
logits, one D update (real + fake) then one G update per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcgan_ref.datasets.loading import to_unit_range
from dcgan_ref.fast_step import GraphedStep, StepFn
from dcgan_ref.models import Discriminator, Generator, build_gan
from dcgan_ref.runtime import distributed
from dcgan_ref.runtime.distributed import World


@dataclass(frozen=True)
class StepSettings:
    """How a step runs; the ``paper`` preset's GPU settings turn all three on."""

    bf16: bool = False           # autocast G and D to bf16 (losses stay fp32)
    channels_last: bool = False  # NHWC weights and batches: the layout tensor cores want
    cuda_graph: bool = False     # the whole step one CUDA graph (ignored off CUDA)

    def describe(self) -> str:
        parts = [n for n, on in (("bf16", self.bf16), ("channels_last", self.channels_last),
                                 ("CUDA graph", self.cuda_graph)) if on]
        return ", ".join(parts) or "fp32 eager"

    @classmethod
    def fastest(cls, device: torch.device) -> "StepSettings":
        """bf16 + channels_last + CUDA graph on CUDA; plain fp32 eager elsewhere."""
        cuda = device.type == "cuda"
        return cls(bf16=cuda, channels_last=cuda, cuda_graph=cuda)


def make_adam(module: torch.nn.Module, *, lr: float = 2e-4, beta1: float = 0.5, weight_decay: float = 0.0,
              fused: bool = False, capturable: bool = False) -> torch.optim.Adam:
    """The paper's optimiser (Adam, beta2 0.999)."""
    return torch.optim.Adam(module.parameters(), lr, betas=(beta1, 0.999), weight_decay=weight_decay,
                            fused=fused, capturable=capturable)


UPDATES = ("both", "d", "g")


def make_step(g: nn.Module, d: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
              bf16: bool, updates: str = "both", d_for_g: nn.Module | None = None) -> StepFn:
    """``step(real_u8, z) -> losses (D, G)`` on the device.

    ``updates="both"``: one D update, then one G update on the same batch (the paper's
    text read literally).  ``"d"`` / ``"g"``: only that network's update, for the authors'
    schedule of alternating the two over consecutive batches; the loss not computed is NaN.
    ``d_for_g``: the D that G's loss goes through (under DDP the unwrapped one: D's weights
    get no gradient there, so there is nothing for DDP to reduce).
    """
    if updates not in UPDATES:
        raise ValueError(f"updates must be one of {UPDATES}, got {updates!r}")
    device_type = next(d.parameters()).device.type
    d_params = list(d.parameters())
    d_for_g = d if d_for_g is None else d_for_g
    nan = torch.tensor(float("nan"), device=next(d.parameters()).device)

    def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        logits = logits.float()  # the loss in fp32 whatever the autocast dtype
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def update_d(real_u8: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss_d = bce(d(to_unit_range(real_u8)), 1.0) + bce(d(fake.detach()), 0.0)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        return loss_d.detach()

    def update_g(fake: torch.Tensor) -> torch.Tensor:
        # G's loss back-propagates through D; D's weight gradients would be thrown away
        # (D's next step starts from zero), so they are not computed at all.
        for p in d_params:
            p.requires_grad_(False)
        try:
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                loss_g = bce(d_for_g(fake), 1.0)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            for p in d_params:
                p.requires_grad_(True)
        opt_g.step()
        return loss_g.detach()

    def step(real_u8: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # A D-only step needs no graph through G (and under DDP must not start a G backward).
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16), torch.set_grad_enabled(updates != "d"):
            fake = g(z)
        loss_d = update_d(real_u8, fake) if updates != "g" else nan
        loss_g = update_g(fake) if updates != "d" else nan
        return torch.stack([loss_d, loss_g])

    return step


@dataclass
class GanSetup:
    """G, D and their optimisers as training builds them; :meth:`make_step` gives the step.

    With ``world.size > 1`` (torchrun) batchnorm is global and the step runs through DDP
    wrappers of ``g`` and ``d``; ``g`` and ``d`` themselves stay the plain modules, so
    checkpoints are the same whatever the world size.
    """

    g: Generator
    d: Discriminator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    settings: StepSettings
    world: World = World()
    _ddp: tuple[nn.Module, nn.Module] | None = None

    @classmethod
    def create(cls, arch: str, settings: StepSettings, device: torch.device, *, seed: int = 0, lr: float = 2e-4,
               beta1: float = 0.5, weight_decay: float = 0.0, world: World = World()) -> "GanSetup":
        g, d = build_gan(arch, seed)
        g, d = g.to(device), d.to(device)
        if world.size > 1:  # before the optimisers: they must hold the converted layers' parameters
            g, d = distributed.convert_batchnorm(g, device), distributed.convert_batchnorm(d, device)
            settings = StepSettings(settings.bf16, settings.channels_last, cuda_graph=False)  # DDP: eager
        if settings.channels_last:
            g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        cuda = device.type == "cuda"
        graphed = settings.cuda_graph and cuda  # capture needs capturable Adam (its state on the device)
        opt_g, opt_d = (make_adam(m, lr=lr, beta1=beta1, weight_decay=weight_decay, fused=cuda, capturable=graphed)
                        for m in (g, d))
        return cls(g, d, opt_g, opt_d, settings, world)

    @property
    def graphed(self) -> bool:
        return self.settings.cuda_graph and next(self.d.parameters()).device.type == "cuda"

    def make_step(self, updates: str = "both") -> StepFn:
        """The step; build it after any checkpoint is loaded (a graph captures the tensors it sees)."""
        if self.world.size > 1:
            if self._ddp is None:  # one DDP wrapper per module, shared by the D and G steps
                device = next(self.d.parameters()).device
                self._ddp = (distributed.wrap(self.g, device), distributed.wrap(self.d, device))
            return make_step(*self._ddp, self.opt_g, self.opt_d, self.settings.bf16, updates, d_for_g=self.d)
        eager = make_step(self.g, self.d, self.opt_g, self.opt_d, self.settings.bf16, updates)
        if self.graphed:
            return GraphedStep(eager, (self.g, self.d), (self.opt_g, self.opt_d))
        return eager


class ResidentBatches:
    """Batches drawn from a device-resident uint8 tensor by a per-epoch ``randperm``.

    Indexing a tensor already on the device replaces a DataLoader: no workers, no
    host->device copies, no per-sample Python.  Only full batches are drawn (a graphed
    step needs one shape); the tail of each permutation is skipped.  ``state``/``load``
    carry the data order through checkpoints.
    """

    def __init__(self, images: torch.Tensor, batch: int, *, channels_last: bool = False, seed: int = 0) -> None:
        if len(images) < batch:
            raise ValueError(f"{len(images)} images is fewer than one batch of {batch}")
        self.images, self.batch, self.channels_last = images, batch, channels_last
        self.gen = torch.Generator(images.device).manual_seed(seed)
        self.perm, self.pos = torch.empty(0, dtype=torch.long, device=images.device), len(images)

    def next(self) -> torch.Tensor:
        n, b = len(self.images), self.batch
        if self.pos + b > n:  # new epoch: one randperm on the device
            self.perm, self.pos = torch.randperm(n, device=self.images.device, generator=self.gen), 0
        real = self.images[self.perm[self.pos:self.pos + b]]
        self.pos += b
        return real.contiguous(memory_format=torch.channels_last) if self.channels_last else real

    def state(self) -> dict[str, object]:
        return {"data_gen": self.gen.get_state(), "pos": self.pos, "perm": self.perm.cpu()}

    def load(self, state: dict[str, object]) -> None:
        self.gen.set_state(state["data_gen"])
        self.pos, self.perm = int(state["pos"]), state["perm"].to(self.images.device)
