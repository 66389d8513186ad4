"""The DCGAN discriminator rows: ``dcgan`` (trained here, or ``--discriminator``) and
``random-d`` (the same extractor with training off: D at its paper init)."""
from __future__ import annotations

from baselines.registry import BuildContext, register
from dcgan_ref.extractor import DCGANExtractor
from dcgan_ref.models import get_architecture
from dcgan_ref.pretrained import load_discriminator
from dcgan_ref.runtime.errors import UserError
from dcgan_ref.train import TrainConfig


def _check_image_size(arch: str, ctx: BuildContext, what: str) -> None:
    size = get_architecture(arch).image_size
    if size != ctx.image_size:
        raise UserError(f"{what} is a {arch} D for {size}x{size} images, but the data's images are "
                        f"{ctx.image_size}x{ctx.image_size}")


@register("dcgan")
def dcgan(ctx: BuildContext) -> DCGANExtractor:
    common = dict(bn_mode=ctx.bn_mode, seed=ctx.seed, device=ctx.device)
    if ctx.discriminator:
        pre = load_discriminator(ctx.discriminator, ctx.device)
        _check_image_size(pre.arch, ctx, f"--discriminator {ctx.discriminator}")
        extractor = DCGANExtractor(pre.arch, train_cfg=None, discriminator=pre.d, label=pre.label, **common)
        extractor.trained_on, extractor.scored_on, extractor.notes = pre.trained_on, pre.scored_on, pre.notes
        return extractor
    _check_image_size(ctx.arch, ctx, f"--arch {ctx.arch}")
    b = ctx.batch_size
    steps = max(1, round(ctx.gan_epochs * ctx.n_fit_images / b))
    epoch = max(1, ctx.n_fit_images // b)
    cfg = TrainConfig(arch=ctx.arch, steps=steps, batch_size=b, seed=ctx.seed, lr=ctx.lr,
                      weight_decay=ctx.weight_decay, schedule=ctx.schedule, bf16=ctx.bf16,
                      channels_last=ctx.channels_last, cuda_graph=ctx.cuda_graph,
                      log_every=max(1, min(100, steps // 10)),
                      ckpt_every=min(steps, epoch), sample_every=min(steps, epoch))  # a crash costs at most an epoch
    eval_steps = tuple(max(1, round(e * ctx.n_fit_images / b)) for e in ctx.eval_epochs)
    return DCGANExtractor(ctx.arch, train_cfg=cfg, eval_steps=eval_steps, out_dir=ctx.out_dir / "gan",
                          label=f"dcgan ({ctx.arch})", resume=ctx.resume, **common)


@register("random-d")
def random_d(ctx: BuildContext) -> DCGANExtractor:
    _check_image_size(ctx.arch, ctx, f"--arch {ctx.arch}")
    return DCGANExtractor(ctx.arch, train_cfg=None, label=f"random-init D ({ctx.arch})", bn_mode=ctx.bn_mode,
                          seed=ctx.seed, device=ctx.device)
