"""A discriminator someone else trained: the authors' release or one of our checkpoints.

``--discriminator newmu-svhn:<dir>`` (the authors' SVHN DCGAN, ``newmu.py``) or
``--discriminator <run>/gan/last.pt`` (written by ``train.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dcgan_ref.models import ARCHITECTURES, Discriminator, build_gan
from dcgan_ref.newmu import SPEC_PREFIX, load_newmu_svhn, parse_discriminator_spec
from dcgan_ref.runtime import checkpoint
from dcgan_ref.runtime.errors import UserError


@dataclass
class PretrainedD:
    arch: str
    d: Discriminator
    label: str  # how results tables name it
    trained_on: str = ""  # what it was trained on, where the checkpoint says (a results row's gan_data)
    notes: str = ""       # how long, in what precision, on which CPU, how the length was chosen
    scored_on: dict | None = None  # the protocol and seed whose validation split chose its length (gan_run)


def load_discriminator(spec: str, device: torch.device | str = "cpu") -> PretrainedD:
    if spec.startswith(SPEC_PREFIX):
        try:
            d = load_newmu_svhn(parse_discriminator_spec(spec), generator=False)[1]
        except (ValueError, FileNotFoundError) as e:
            raise UserError(f"--discriminator {spec}: {e}") from None
        return PretrainedD("svhn32", d.to(device), "newmu-svhn (authors' release)")
    path = Path(spec)
    if path.suffix == ".pt":
        try:
            state = checkpoint.load(path)
        except (ValueError, FileNotFoundError) as e:
            raise UserError(f"--discriminator {spec}: {e}") from None
        arch = state.get("config", {}).get("arch") if isinstance(state.get("config"), dict) else None
        if arch not in ARCHITECTURES or not isinstance(state.get("d"), dict):
            raise UserError(f"--discriminator {spec}: not a checkpoint written by dcgan_ref.train (it needs a "
                            f"config naming one of the architectures {sorted(ARCHITECTURES)}, and D's weights)")
        d = build_gan(arch)[1]
        try:
            d.load_state_dict(state["d"])
        except RuntimeError as e:  # missing keys or wrong shapes
            first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
            raise UserError(f"--discriminator {spec}: its D weights do not fit a {arch} D ({first})") from None
        trained = state.get("trained")
        if isinstance(trained, dict):  # written by benchmarks.gan_run: the row names its training
            t = trained
            notes = (f"GAN trained {t['images_seen']:,} images on {t['gan_data']}, {t['precision']}, on {t['cpu']}"
                     + (f"; length chosen on validation: {state['chosen']}" if state.get("chosen") else ""))
            return PretrainedD(arch, d.to(device), f"dcgan ({arch}, run {t['run']}, {t['images_seen']:,} images)",
                               trained_on=str(t["gan_data"]), notes=notes, scored_on=t.get("scored_on"))
        # "dcgan (svhn32, <run folder>/chosen.pt)": the architecture and which run, not a machine's path
        return PretrainedD(arch, d.to(device), f"dcgan ({arch}, {path.parent.parent.name}/{path.name})")
    raise UserError(f"--discriminator {spec!r}: expected {SPEC_PREFIX}<dir> or a checkpoint file last.pt")
