"""What every figure is made from: a G/D pair, a random-init D, real images; and the two
things every figure does with them (decode z, write its PNG and JSON)."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dcgan_ref.models import ARCHITECTURES, Architecture, Discriminator, Generator, build_gan
from dcgan_ref.newmu import SPEC_PREFIX, load_newmu_svhn, parse_discriminator_spec
from dcgan_ref.runtime import checkpoint
from dcgan_ref.runtime.errors import UserError


@dataclass
class FigureInputs:
    g: Generator            # eval mode, population batchnorm statistics (see prepare_generator)
    d: Discriminator        # the trained D; eval mode, population statistics over ``train``
    random_d: Discriminator  # same architecture at its paper init, population statistics over ``train``
    label: str              # how captions name the model, e.g. "newmu-svhn (authors' release)"
    train: torch.Tensor     # real images, uint8 (N, 3, H, W): the set G's samples are compared with
    held_out: torch.Tensor  # real images G never saw, uint8
    data_label: str         # how captions name the real images
    seed: int = 0

    @property
    def arch(self) -> Architecture:
        return self.g.arch


def load_gan(spec: str) -> tuple[Generator, Discriminator, str]:
    """G and D from ``newmu-svhn:<dir>`` (the authors' release) or a ``train.py`` checkpoint."""
    if spec.startswith(SPEC_PREFIX):
        try:
            g, d = load_newmu_svhn(parse_discriminator_spec(spec))
        except (ValueError, FileNotFoundError) as e:
            raise UserError(f"--generator {spec}: {e}") from None
        return g, d, "newmu-svhn (authors' release)"
    path = Path(spec)
    try:
        state = checkpoint.load(path)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(f"--generator {spec}: {e}") from None
    arch = state.get("config", {}).get("arch") if isinstance(state.get("config"), dict) else None
    if arch not in ARCHITECTURES or not isinstance(state.get("g"), dict) or not isinstance(state.get("d"), dict):
        raise UserError(f"--generator {spec}: not a checkpoint written by dcgan_ref.train (it needs a config "
                        f"naming one of {sorted(ARCHITECTURES)}, and G's and D's weights)")
    g, d = build_gan(arch)
    try:
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
    except RuntimeError as e:
        raise UserError(f"--generator {spec}: its weights do not fit a {arch} GAN ({str(e).splitlines()[0]})") from None
    return g, d, f"dcgan {arch} ({path.parent.parent.name}, step {state.get('step', '?')})"  # the run, not the path


@torch.no_grad()
def prepare_generator(g: Generator, n: int = 4096, batch: int = 512, seed: int = 0) -> Generator:
    """A copy of ``g`` in eval mode whose batchnorm uses population statistics over ``n``
    random z, so that each z decodes to the same image whatever else is in its batch (the
    authors' release carries no running statistics; they sample with batch statistics)."""
    g = copy.deepcopy(g)
    bns = [m for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    g.train()
    device = next(g.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    for _ in range(max(1, n // batch)):
        g(g.arch.sample_z(batch, generator=gen).to(device))
    return g.eval()


@torch.no_grad()
def decode(g: Generator, z: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Images in [0, 1], float32 (N, 3, H, W), for latent codes ``z`` (G in eval mode)."""
    device = next(g.parameters()).device
    return torch.cat([g(z[i:i + batch].to(device)).add(1).div(2).clamp(0, 1).cpu()
                      for i in range(0, len(z), batch)])


def save_figure(fig, path: Path, title: str | None = None, fontsize: float = 8) -> Path:
    """A figure's PNG: its title, a tight layout, the folder made (every figure ends here)."""
    if title is not None:
        fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_json(numbers: dict[str, Any], path: Path) -> Path:
    """The numbers a figure shows, beside its PNG (atomic: no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(numbers, indent=2, sort_keys=True, default=float) + "\n")
    tmp.replace(path)
    return path
