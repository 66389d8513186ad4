"""The sensitivity table's knobs: each setting is the probe's default pipeline with one choice
changed, and :func:`plan` lists them for an extractor (or says why a knob cannot be measured
for it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.protocol import evaluation
from dcgan_ref.extractor import DCGANExtractor

KNOBS = ("batchnorm", "scaling", "layers", "pooling", "C choice", "GAN length", "encoding", "classifier loss")


@dataclass(frozen=True)
class Setting:
    """One evaluation: the default pipeline with (at most) one knob changed."""
    knob: str
    name: str
    default: bool = False
    bn: str = "probe"             # batchnorm at extraction: "probe" (population, probe train), "gan-data", "batch"
    pool: str = "max"
    grid: int = 4
    layers: tuple[int, ...] | None = None  # None: every conv layer
    scaling: str = "standardise"
    classifier: str = "svm"
    full_cv_folds: int = 0        # all labels: 0 chooses C on the validation split, k > 0 by k-fold CV
    draws_cv_folds: int | None = None  # label draws: None as the protocol chooses (spec.draws_cv_folds)
    data: str | None = None       # encoding knob: evaluate on this data instead (fit and all)

    @property
    def extraction(self) -> tuple[str, str, int]:
        return self.bn, self.pool, self.grid


@dataclass(frozen=True)
class Skipped:
    knob: str
    name: str
    reason: str


@dataclass
class Outcome:
    setting: Setting
    full: evaluation.Evaluation
    draws: evaluation.Evaluation
    feature_dim: int
    seconds: float
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def plan(extractor, *, bn_data: str | None, encoding_pair: tuple[str, str] | None, cv_folds: int,
         knobs: tuple[str, ...], pretrained: bool, draws_cv_folds: int = 0) -> list[Setting | Skipped]:
    """The default, then every knob's alternatives (or why a knob cannot be measured here)."""
    out: list[Setting | Skipped] = [Setting("default", "the probe's pipeline", default=True)]
    is_d = isinstance(extractor, DCGANExtractor)
    not_d = "not a DCGAN discriminator: this knob is D's"
    for knob in knobs:
        if knob == "batchnorm":
            if not is_d:
                out.append(Skipped(knob, "all", not_d))
                continue
            if bn_data:
                out.append(Setting(knob, "population stats over the GAN's data", bn="gan-data"))
            else:
                why = ("the D's training data is not on this machine: pass --bn-data <its training set>" if pretrained
                       else "a random-init D was trained on nothing")
                out.append(Skipped(knob, "population stats over the GAN's data", why))
            out.append(Setting(knob, "batch statistics (shuffled batches)", bn="batch"))
        elif knob == "scaling":
            out += [Setting(knob, "Coates: (x - mean) / sqrt(var + 0.01)", scaling="coates"),
                    Setting(knob, "L2-normalised rows", scaling="l2"), Setting(knob, "none", scaling="none")]
        elif knob == "layers":
            if not is_d:
                out.append(Skipped(knob, "all", not_d))
                continue
            n = len(extractor.d.arch.widths)
            out += [Setting(knob, "the last", layers=(n - 1,)), Setting(knob, "the last two", layers=(n - 2, n - 1))]
            out += [Setting(knob, f"layer {i + 1} of {n} alone", layers=(i,)) for i in range(n - 1)]
        elif knob == "pooling":
            if not is_d:
                out.append(Skipped(knob, "all", not_d))
                continue
            out += [Setting(knob, "4x4 average", pool="avg"), Setting(knob, "2x2 max", grid=2),
                    Setting(knob, "global max", grid=1)]
        elif knob == "C choice":  # the other way for each evaluation (the draws' default is the protocol's)
            out.append(Setting(knob, f"all labels: {cv_folds}-fold cross-validation over the training images",
                               full_cv_folds=cv_folds))
            if draws_cv_folds:
                out.append(Setting(knob, "label draws: on the validation split (mean over the draws; more labels "
                                         "than a draw holds)", draws_cv_folds=0))
            else:
                out.append(Setting(knob, f"label draws: {cv_folds}-fold cross-validation within each draw",
                                   draws_cv_folds=cv_folds))
            # "on the test set" comes from the default's own fits (test_every), never from a choice.
        elif knob == "GAN length":
            out.append(Skipped(knob, "each saved epoch", not_d if not is_d else
                               "this D was not trained by this run (a released or random-init D has one length); "
                               "for a D trained here the probe logs every candidate length's validation score"))
        elif knob == "encoding":
            if encoding_pair is None:
                out.append(Skipped(knob, "lossless vs JPEG", "pass --encoding-pair <lossless data>,<the same images "
                                                          "from the JPEG copy>"))
            else:
                lossless, jpeg = encoding_pair
                out += [Setting(knob, "the same images from the JPEG copy", data=jpeg),
                        Setting(knob, "lossless originals", data=lossless)]
        elif knob == "classifier loss":
            out += [Setting(knob, "hinge (L1-SVM)", classifier="hinge"),
                    Setting(knob, "logistic regression (multinomial)", classifier="logistic")]
    return out
