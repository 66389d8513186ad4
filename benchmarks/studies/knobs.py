"""The sensitivity table's knobs: each setting is the probe's default pipeline with one choice
changed, and :func:`plan` lists them for an extractor (or says why a knob cannot be measured
for it).

A knob is one function registered with ``@knob(name)``: given the plan's context it returns
its settings. Knobs that vary a discriminator's extraction (batchnorm, layers, pooling) ask
the extractor for that capability (``baselines.interface.LayeredExtractor``), not its class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from baselines.interface import LayeredExtractor
from benchmarks.protocol import evaluation


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


@dataclass(frozen=True)
class PlanContext:
    """What a knob may ask when it lists its settings."""
    extractor: Any
    bn_data: str | None                      # the D's own training images (--bn-data), if given
    encoding_pair: tuple[str, str] | None    # (lossless, JPEG) data specs, if given
    cv_folds: int
    draws_cv_folds: int                      # how the protocol's label draws choose C (0: on validation)
    pretrained: bool                         # the D was trained elsewhere (--discriminator)

    @property
    def layered(self) -> LayeredExtractor | None:
        """The extractor, where its features are a discriminator's layers with extraction variants."""
        return self.extractor if isinstance(self.extractor, LayeredExtractor) else None


Knob = Callable[[PlanContext], list["Setting | Skipped"]]
KNOBS: dict[str, Knob] = {}  # in the table's order
NOT_D = "not a DCGAN discriminator: this knob is D's"


def knob(name: str) -> Callable[[Knob], Knob]:
    def register(fn: Knob) -> Knob:
        KNOBS[name] = fn
        return fn
    return register


@knob("batchnorm")
def _batchnorm(c: PlanContext) -> list[Setting | Skipped]:
    if c.layered is None:
        return [Skipped("batchnorm", "all", NOT_D)]
    name = "population stats over the GAN's data"
    if c.bn_data:
        first: Setting | Skipped = Setting("batchnorm", name, bn="gan-data")
    else:
        first = Skipped("batchnorm", name, "the D's training data is not on this machine: pass --bn-data <its "
                        "training set>" if c.pretrained else "a random-init D was trained on nothing")
    return [first, Setting("batchnorm", "batch statistics (shuffled batches)", bn="batch")]


@knob("scaling")
def _scaling(c: PlanContext) -> list[Setting | Skipped]:
    return [Setting("scaling", "Coates: (x - mean) / sqrt(var + 0.01)", scaling="coates"),
            Setting("scaling", "L2-normalised rows", scaling="l2"), Setting("scaling", "none", scaling="none")]


@knob("layers")
def _layers(c: PlanContext) -> list[Setting | Skipped]:
    if c.layered is None:
        return [Skipped("layers", "all", NOT_D)]
    n = c.layered.n_layers
    return ([Setting("layers", "the last", layers=(n - 1,)), Setting("layers", "the last two", layers=(n - 2, n - 1))]
            + [Setting("layers", f"layer {i + 1} of {n} alone", layers=(i,)) for i in range(n - 1)])


@knob("pooling")
def _pooling(c: PlanContext) -> list[Setting | Skipped]:
    if c.layered is None:
        return [Skipped("pooling", "all", NOT_D)]
    return [Setting("pooling", "4x4 average", pool="avg"), Setting("pooling", "2x2 max", grid=2),
            Setting("pooling", "global max", grid=1)]


@knob("C choice")
def _c_choice(c: PlanContext) -> list[Setting | Skipped]:
    """The other way for each evaluation (the draws' default is the protocol's). "On the test
    set" comes from the default's own fits (``test_every``), never from a choice."""
    full = Setting("C choice", f"all labels: {c.cv_folds}-fold cross-validation over the training images",
                   full_cv_folds=c.cv_folds)
    if c.draws_cv_folds:
        return [full, Setting("C choice", "label draws: on the validation split (mean over the draws; more labels "
                                          "than a draw holds)", draws_cv_folds=0)]
    return [full, Setting("C choice", f"label draws: {c.cv_folds}-fold cross-validation within each draw",
                          draws_cv_folds=c.cv_folds)]


@knob("GAN length")
def _gan_length(c: PlanContext) -> list[Setting | Skipped]:
    return [Skipped("GAN length", "each saved epoch", NOT_D if c.layered is None else
                    "this D was not trained by this run (a released or random-init D has one length); "
                    "for a D trained here the probe logs every candidate length's validation score")]


@knob("encoding")
def _encoding(c: PlanContext) -> list[Setting | Skipped]:
    if c.encoding_pair is None:
        return [Skipped("encoding", "lossless vs JPEG", "pass --encoding-pair <lossless data>,<the same images "
                                                        "from the JPEG copy>")]
    lossless, jpeg = c.encoding_pair
    return [Setting("encoding", "the same images from the JPEG copy", data=jpeg),
            Setting("encoding", "lossless originals", data=lossless)]


@knob("classifier loss")
def _classifier_loss(c: PlanContext) -> list[Setting | Skipped]:
    return [Setting("classifier loss", "hinge (L1-SVM)", classifier="hinge"),
            Setting("classifier loss", "logistic regression (multinomial)", classifier="logistic")]


def plan(extractor, *, bn_data: str | None, encoding_pair: tuple[str, str] | None, cv_folds: int,
         knobs: tuple[str, ...], pretrained: bool, draws_cv_folds: int = 0) -> list[Setting | Skipped]:
    """The default, then every knob's alternatives (or why a knob cannot be measured here)."""
    context = PlanContext(extractor, bn_data, encoding_pair, cv_folds, draws_cv_folds, pretrained)
    return [Setting("default", "the probe's pipeline", default=True), *(s for k in knobs for s in KNOBS[k](context))]
