"""The DCGAN discriminator as a feature extractor (also: random-init D, imported D).

``fit`` trains the GAN on unlabelled images (unless D is given or training is off),
optionally choosing the training length on a protocol's validation score, then sets
batchnorm population statistics over those images.  ``transform`` pools every conv
layer to 4x4 and concatenates.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from baselines.interface import FeatureExtractor, Validator
from dcgan_ref.features import BN_MODES, pooled_features, set_population_bn_stats
from dcgan_ref.models import Discriminator, build_gan, feature_dim
from dcgan_ref.train import TrainConfig, train


class DCGANExtractor(FeatureExtractor):
    """D features. ``train_cfg=None`` keeps D as given (or at its paper init)."""

    def __init__(self, arch: str, *, train_cfg: TrainConfig | None, name: str = "dcgan",
                 discriminator: Discriminator | None = None, eval_steps: tuple[int, ...] = (),
                 bn_mode: str = "population", out_dir: str | Path = "runs/dcgan", seed: int = 0,
                 bf16: bool = False, device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
        self.name, self.arch, self.train_cfg = name, arch, train_cfg
        self.eval_steps, self.bn_mode, self.out_dir, self.seed, self.bf16 = eval_steps, bn_mode, Path(out_dir), seed, bf16
        self.d = discriminator if discriminator is not None else build_gan(arch, seed)[1]
        self.d = self.d.to(self.device)
        self.g = None
        self.chosen_step: int | None = None

    @property
    def feature_dim(self) -> int:
        return feature_dim(self.arch)

    def settings(self) -> dict[str, Any]:
        return {"arch": self.arch, "bn_mode": self.bn_mode, "pool_grid": 4, "seed": self.seed,
                "trained": self.train_cfg is not None, "eval_steps": list(self.eval_steps),
                "train": vars(self.train_cfg) if self.train_cfg else None}

    def _prepare(self, images: torch.Tensor) -> None:
        if self.bn_mode == "population":
            set_population_bn_stats(self.d, images)

    def fit(self, images: torch.Tensor, validate: Validator | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.train_cfg is not None:
            scores: dict[int, float] = {}
            best: dict[str, Any] = {}

            def on_eval(step: int, g: torch.nn.Module, d: Discriminator) -> None:
                self.d = copy.deepcopy(d).eval()  # a snapshot: training state stays untouched
                self._prepare(images)
                scores[step] = validate(self)
                print(f"  validation score at step {step}: {scores[step]:.2f}")
                if not best or scores[step] > best["score"]:
                    best.update(score=scores[step], step=step, d=copy.deepcopy(self.d).cpu())

            eval_steps = frozenset(self.eval_steps) if validate is not None else frozenset()
            result = train(self.train_cfg, images, self.out_dir, device=self.device,
                           on_eval=on_eval, eval_steps=eval_steps)
            self.g = result.g
            info.update(train_img_per_s=result.img_per_s, train_wall_s=result.wall_s, train_steps=result.steps,
                        final_loss_D=result.last_losses[0], final_loss_G=result.last_losses[1])
            if best:
                self.d, self.chosen_step = best["d"].to(self.device), best["step"]
                info.update(chosen_step=best["step"], **{f"val_score_step_{s}": v for s, v in scores.items()})
            else:
                self.d, self.chosen_step = result.d, result.steps
        self.d.eval()
        self._prepare(images)
        return info

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        return pooled_features(self.d, images, bn_mode=self.bn_mode, bf16=self.bf16)
