"""The DCGAN discriminator rows: ``dcgan`` (trained here, or ``--discriminator``) and
``random-d`` (the same extractor with training off: D at its paper init)."""
from __future__ import annotations

from dataclasses import dataclass, field

from baselines.registry import BuildContext, register
from dcgan_ref.extractor import DCGANExtractor
from dcgan_ref.models import get_architecture
from dcgan_ref.pretrained import load_discriminator
from dcgan_ref.runtime.errors import UserError
from dcgan_ref.train import Recipe, TrainConfig


@dataclass(frozen=True)
class GanConfig:
    """The ``dcgan`` row's own settings (a preset's entry): how its GAN trains, and for how long."""
    recipe: Recipe = field(default_factory=Recipe)
    epochs: float = 25                       # over the protocol's unlabelled images
    eval_epochs: tuple[float, ...] = ()      # lengths scored on validation; the best is kept


def _check_image_size(arch: str, ctx: BuildContext, what: str) -> None:
    size = get_architecture(arch).image_size
    if size != ctx.image_size:
        raise UserError(f"{what} is a {arch} D for {size}x{size} images, but the data's images are "
                        f"{ctx.image_size}x{ctx.image_size}")


@register("dcgan", config=GanConfig)
def dcgan(ctx: BuildContext, gan: GanConfig) -> DCGANExtractor:
    common = dict(bn_mode=ctx.bn_mode, seed=ctx.seed, device=ctx.device)
    if ctx.discriminator:
        pre = load_discriminator(ctx.discriminator, ctx.device)
        _check_image_size(pre.arch, ctx, f"--discriminator {ctx.discriminator}")
        extractor = DCGANExtractor(pre.arch, train_cfg=None, discriminator=pre.d, label=pre.label, **common)
        extractor.trained_on, extractor.scored_on, extractor.notes = pre.trained_on, pre.scored_on, pre.notes
        return extractor
    _check_image_size(ctx.arch, ctx, f"--arch {ctx.arch}")
    b = gan.recipe.batch_size
    steps = max(1, round(gan.epochs * ctx.n_fit_images / b))
    epoch = max(1, ctx.n_fit_images // b)
    cfg = TrainConfig.of(gan.recipe, arch=ctx.arch, steps=steps, seed=ctx.seed, log_every=max(1, min(100, steps // 10)),
                         ckpt_every=min(steps, epoch), sample_every=min(steps, epoch))  # a crash costs at most an epoch
    eval_steps = tuple(max(1, round(e * ctx.n_fit_images / b)) for e in gan.eval_epochs)
    return DCGANExtractor(ctx.arch, train_cfg=cfg, eval_steps=eval_steps, out_dir=ctx.out_dir / "gan",
                          label=f"dcgan ({ctx.arch})", resume=ctx.resume, **common)


@register("random-d")
def random_d(ctx: BuildContext) -> DCGANExtractor:
    _check_image_size(ctx.arch, ctx, f"--arch {ctx.arch}")
    return DCGANExtractor(ctx.arch, train_cfg=None, label=f"random-init D ({ctx.arch})", bn_mode=ctx.bn_mode,
                          seed=ctx.seed, device=ctx.device)
