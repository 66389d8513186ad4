"""The two protocols as data (docs/PAPER.md): which splits, how many labels, which metrics,
which architecture.  Everything that differs between them lives here, not in the runner."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, kw_only=True)
class ProtocolSpec:
    name: str                       # experiment name and results file stem
    default_dataset: str            # "cifar10" | "svhn"
    arch: str                       # the paper's DCGAN architecture for this protocol
    n_val: Callable[[int], int]     # validation split size given the training-set size
    per_class: int                  # labels per class in the label-scarce draws
    full_data: bool                 # also the probe with every training label
    draws_metric: str               # metric name of the label-scarce result ({per_class}, {labels}: its size)
    report_error: bool              # label-scarce result as error (SVHN) or accuracy (CIFAR-10)
    gan_data_default: str           # "train" or "train-minus-val"
    controls: tuple[str, ...] = ()  # control evaluators this protocol has (the SVHN table's supervised CNN)
    # How the label draws choose C: k-fold cross-validation within each draw's own labels (k > 0; what
    # a user holding only those labels can do), or 0: mean accuracy over the draws on the validation split.
    draws_cv_folds: int = 0

    def draws_metric_for(self, per_class: int, n_classes: int) -> str:
        """The label-scarce metric's name at this size ("test_accuracy_400pc" at the paper's
        400 per class): a draw of another size is never filed as the paper's."""
        return self.draws_metric.format(per_class=per_class, labels=per_class * n_classes)


# Table 1: an imagenet32 D (trained on Imagenet-1k in the paper), every CIFAR-10 label and 400 per class.
# The paper does not say how the 400-per-class rows chose C; its 5,000-image validation split would hold
# more labels than the 4,000 a draw trains on, so each draw chooses C on its own labels.
CIFAR10_PROBE = ProtocolSpec(name="cifar10_probe", default_dataset="cifar10", arch="imagenet32",
                             n_val=lambda n: n // 10, per_class=400, full_data=True,
                             draws_metric="test_accuracy_{per_class}pc", report_error=False, gan_data_default="train",
                             draws_cv_folds=5)
# Table 2: the svhn32 D, 1,000 labels, a 10,000-image validation split (the paper's own SVHN rule: C by
# mean validation error over the draws), test error over draws.
SVHN_1000 = ProtocolSpec(name="svhn_1000", default_dataset="svhn", arch="svhn32",
                         n_val=lambda n: min(10_000, n // 5), per_class=100, full_data=False,
                         draws_metric="test_error_{labels}", report_error=True, gan_data_default="train-minus-val",
                         controls=("supervised",))
