"""The DCGAN discriminator as a feature extractor (also: random-init D, a pretrained D).

``fit`` trains the GAN on unlabelled images (unless training is off), optionally choosing
the training length on a protocol's validation score, then sets batchnorm population
statistics over those images.  ``transform`` pools every conv layer to 4x4 and
concatenates.  It satisfies ``baselines.interface.FeatureExtractor`` structurally.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from dcgan_ref.features import BN_MODES, layer_columns, pooled_features, set_population_bn_stats
from dcgan_ref.models import Discriminator, build_gan, feature_dim
from dcgan_ref.runtime import checkpoint
from dcgan_ref.runtime.hardware import training_precision
from dcgan_ref.train import TrainConfig, train


class DCGANExtractor:
    """D features.  ``train_cfg=None`` keeps D as given (or at its paper init).

    Args:
        label: the name results tables show, e.g. ``"dcgan (svhn32)"``.
        discriminator: a D to start from (a pretrained one); default: a fresh paper-init D.
        eval_steps: training steps at which ``validate`` scores D; the best one is kept.
        resume: continue an interrupted training from ``out_dir/last.pt``; the scores and
            the best D found before the interruption come from ``out_dir/length_choice.pt``.
        bn_mode: batchnorm at extraction, ``"population"`` (statistics over the fit images)
            or ``"batch"`` (each extraction batch's).
    """

    def __init__(self, arch: str, *, train_cfg: TrainConfig | None, label: str,
                 discriminator: Discriminator | None = None, eval_steps: tuple[int, ...] = (),
                 bn_mode: str = "population", pool: str = "max", grid: int = 4, out_dir: str | Path = "runs/dcgan",
                 seed: int = 0, resume: bool = False, device: torch.device | str = "cpu") -> None:
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
        self.device = torch.device(device)
        self.label, self.arch, self.train_cfg = label, arch, train_cfg
        self.learns_from_data = train_cfg is not None  # trained here on the unlabelled data
        self.eval_steps, self.bn_mode, self.out_dir, self.seed = eval_steps, bn_mode, Path(out_dir), seed
        self.pool, self.grid = pool, grid
        self.resume = resume
        self.d = (discriminator if discriminator is not None else build_gan(arch, seed)[1]).to(self.device)
        self.g = None
        self.notes = ""
        self.trained_on = ""  # a pretrained D's training data, where known (see dcgan_ref.pretrained)
        self.scored_on: dict | None = None  # and whose validation split chose its length
        # After an in-process training: its length scores and chosen step, what its published
        # record is written from (benchmarks.protocol.gan_record). None for a D not trained here.
        self.training: dict[str, Any] | None = None

    @property
    def feature_dim(self) -> int:
        return feature_dim(self.arch, self.grid)

    def flops_per_image(self) -> int:
        """FLOPs of one image's features (D's forward and the pooling), counted on a CPU copy of D."""
        d, size = copy.deepcopy(self.d).cpu(), self.d.arch.image_size
        with FlopCounterMode(display=False) as counter:
            pooled_features(d, torch.zeros(2, 3, size, size, dtype=torch.uint8), bn_mode="batch", batch_size=2)
        return int(counter.get_total_flops()) // 2

    @property
    def n_layers(self) -> int:  # the features concatenate every conv layer's pooled maps
        return len(self.d.arch.widths)

    def layer_columns(self, layers: tuple[int, ...]) -> torch.Tensor:
        """The feature columns of these conv layers (0-based), at this extraction's pooling grid."""
        return layer_columns(self.d.arch.widths, layers, self.grid)

    def with_extraction(self, *, bn_mode: str | None = None, pool: str | None = None,
                        grid: int | None = None) -> "DCGANExtractor":
        """This fitted extractor with other extraction settings (the same D, not a copy):
        what the sensitivity table varies one at a time."""
        other = copy.copy(self)
        other.bn_mode = bn_mode or self.bn_mode
        other.pool, other.grid = pool or self.pool, grid or self.grid
        return other

    def with_population_stats(self, images: torch.Tensor) -> "DCGANExtractor":
        """A copy whose D (deep-copied) has batchnorm population statistics over ``images``."""
        other = self.with_extraction(bn_mode="population")
        other.d = copy.deepcopy(self.d)
        set_population_bn_stats(other.d, images.to(self.device), seed=self.seed)
        return other

    def settings(self) -> dict[str, Any]:
        return {"arch": self.arch, "bn_mode": self.bn_mode, "pool": self.pool, "pool_grid": self.grid,
                "seed": self.seed, "trained": self.train_cfg is not None, "eval_steps": list(self.eval_steps),
                "train": vars(self.train_cfg) if self.train_cfg else None}

    def _prepare(self, images: torch.Tensor) -> None:
        if self.bn_mode == "population":
            set_population_bn_stats(self.d, images, seed=self.seed)

    def fit(self, images: torch.Tensor, validate: Callable[[Any], float] | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.train_cfg is not None:
            info = self._train(images, validate)
        self.d.eval()
        self._prepare(images)
        return info

    def _train(self, images: torch.Tensor, validate: Callable[[Any], float] | None) -> dict[str, Any]:
        choice_path = self.out_dir / "length_choice.pt"
        scores: dict[int, float] = {}
        best: dict[str, Any] = {}
        if self.resume and choice_path.exists():  # candidates scored before the interruption
            saved = checkpoint.load(choice_path)
            scores.update({int(s): float(v) for s, v in saved["scores"].items()})
            d = build_gan(self.arch)[1]
            d.load_state_dict(saved["best_d"])
            best.update(score=float(saved["best_score"]), step=int(saved["best_step"]), d=d)

        def on_eval(step: int, g: torch.nn.Module, d: Discriminator) -> None:
            if step in scores:
                return
            self.d = copy.deepcopy(d).eval()  # a snapshot: the training state stays untouched
            self._prepare(images)
            scores[step] = validate(self)
            print(f"  validation score at step {step}: {scores[step]:.2f}")
            if not best or scores[step] > best["score"]:
                best.update(score=scores[step], step=step, d=copy.deepcopy(self.d).cpu())
            checkpoint.save_atomic({"scores": {str(s): v for s, v in scores.items()}, "best_step": best["step"],
                                    "best_score": best["score"], "best_d": best["d"].state_dict()}, choice_path)

        cfg = self.train_cfg
        # Candidate lengths: the eval steps and the final step (scoring needs a validator).
        scored = validate is not None and bool(self.eval_steps)
        eval_steps = frozenset(self.eval_steps) | {cfg.steps} if scored else frozenset()
        result = train(cfg, images, self.out_dir, device=self.device, resume=self.resume, on_eval=on_eval,
                       eval_steps=eval_steps)
        self.g = result.g
        info = {"train_img_per_s": result.img_per_s, "train_wall_s": result.wall_s, "train_steps": result.steps,
                "final_loss_D": result.last_losses[0], "final_loss_G": result.last_losses[1]}
        def epochs(steps: int) -> str:
            return f"{steps * cfg.batch_size / len(images):.3g}"

        precision = training_precision(cfg.bf16, self.device)
        trained = f"GAN ({cfg.arch}) trained {epochs(result.steps)} epochs on {len(images):,} images, {precision}"
        self.training = {"arch": cfg.arch, "batch_size": cfg.batch_size, "steps": result.steps,
                         "n_images": len(images), "precision": precision, "img_per_s": result.img_per_s,
                         "scores": dict(sorted(scores.items())), "chosen_step": best.get("step"),
                         "out_dir": self.out_dir}
        if best:
            self.d = best["d"].to(self.device)
            info.update(chosen_step=best["step"], **{f"val_score_step_{s}": v for s, v in scores.items()})
            self.notes = (f"{trained}; length chosen on validation: epoch {epochs(best['step'])} "
                          f"(step {best['step']} of {result.steps})")
            # The chosen D as a checkpoint --discriminator loads, for other protocols to reuse.
            checkpoint.save_atomic({"config": dataclasses.asdict(cfg), "step": best["step"],
                                    "d": best["d"].state_dict()}, self.out_dir / "chosen.pt")
        else:
            self.d = result.d
            self.notes = trained
        return info

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        return pooled_features(self.d, images, grid=self.grid, pool=self.pool, bn_mode=self.bn_mode, seed=self.seed)
