"""The paper's published rows (docs/PAPER.md) as :class:`ResultRow`s with ``source="paper"``,
and which of our rows each is comparable with."""
from __future__ import annotations

import re
from dataclasses import dataclass

from benchmarks.protocol.row import ResultRow

_CITE = "Radford et al. 2016"
_DRAWS = " (*: read from the table image; ± as published, 1.96 × std)"
_COATES = ("Coates, Lee & Ng 2011 (AISTATS), not the DCGAN paper: single-layer triangle K-means, whitened, "
           "4x4-quadrant pooling")

# (extractor, classifier, metric, value, std, feature_dim, note)
_CIFAR10 = [
    ("1-layer K-means (Coates & Ng)", "L2-SVM", "test_accuracy", 80.6, None, 4800, _CITE + ", Table 1"),
    ("1-layer K-means (Coates & Ng)", "L2-SVM", "test_accuracy_400pc", 63.7, 0.7, 4800, _CITE + ", Table 1" + _DRAWS),
    ("3-layer K-means, learned RF", "L2-SVM", "test_accuracy", 82.0, None, 3200, _CITE + ", Table 1"),
    ("3-layer K-means, learned RF", "L2-SVM", "test_accuracy_400pc", 70.7, 0.7, 3200, _CITE + ", Table 1" + _DRAWS),
    ("View-invariant K-means", "L2-SVM", "test_accuracy", 81.9, None, 6400, _CITE + ", Table 1 (*)"),
    ("View-invariant K-means", "L2-SVM", "test_accuracy_400pc", 72.6, 0.7, 6400, _CITE + ", Table 1" + _DRAWS),
    ("Exemplar CNN", "L2-SVM", "test_accuracy", 84.3, None, 1024, _CITE + ", Table 1"),
    ("Exemplar CNN", "L2-SVM", "test_accuracy_400pc", 77.4, 0.2, 1024, _CITE + ", Table 1" + _DRAWS),
    ("DCGAN (imagenet32, Imagenet-1k)", "L2-SVM", "test_accuracy", 82.8, None, 28672, _CITE + ", Table 1"),
    ("DCGAN (imagenet32, Imagenet-1k)", "L2-SVM", "test_accuracy_400pc", 73.8, 0.4, 28672,
     _CITE + ", Table 1" + _DRAWS),
    ("K-means 1,600 (Coates, Lee & Ng 2011)", "L2-SVM", "test_accuracy", 77.9, None, 6400, _COATES),
    ("K-means 4,000 (Coates, Lee & Ng 2011)", "L2-SVM", "test_accuracy", 79.6, None, 16000, _COATES),
]
_SVHN = [
    ("KNN", "KNN", 77.93, None), ("TSVM", "TSVM", 66.55, None), ("M1 + KNN", "KNN", 65.63, None),
    ("M1 + TSVM", "TSVM", 54.33, None), ("M1 + M2", "-", 36.02, None),
    ("SWWAE without dropout", "-", 27.83, None), ("SWWAE with dropout", "-", 23.56, None),
    ("DCGAN (svhn32)", "L2-SVM", 22.48, None), ("DCGAN (svhn32), later citation", "L2-SVM", 22.18, 1.13),
]

_ONE_LAYER = "1-layer K-means (Coates & Ng)"
# Which paper row a row of ours is compared with: (protocol, our label prefix, our classifier) -> the paper
# row (or rows, the first with the row's metric wins).
_COMPARABLE = {
    ("cifar10_probe", "dcgan", "L2-SVM"): "DCGAN (imagenet32, Imagenet-1k)",
    ("cifar10_probe", "newmu-svhn", "L2-SVM"): "DCGAN (imagenet32, Imagenet-1k)",
    ("cifar10_probe", "random-init D", "L2-SVM"): "DCGAN (imagenet32, Imagenet-1k)",
    # Coates & Ng's own rows first; their 400-per-class number exists only as the DCGAN paper's 1-layer row.
    ("cifar10_probe", "kmeans-1600", "L2-SVM"): ("K-means 1,600 (Coates, Lee & Ng 2011)", _ONE_LAYER),
    ("cifar10_probe", "kmeans-4000", "L2-SVM"): ("K-means 4,000 (Coates, Lee & Ng 2011)", _ONE_LAYER),
    ("svhn_1000", "dcgan", "L2-SVM"): "DCGAN (svhn32)",
    ("svhn_1000", "newmu-svhn", "L2-SVM"): "DCGAN (svhn32)",
    ("svhn_1000", "random-init D", "L2-SVM"): "DCGAN (svhn32)",
    ("svhn_1000", "pixels", "KNN"): "KNN",
    ("svhn_1000", "supervised CNN", "CNN"): "Supervised CNN (same architecture)",
}
# What the paper's DCGAN rows are: their architecture and what the GAN learned from.
_PAPER_SETTING = {"DCGAN (imagenet32, Imagenet-1k)": ("imagenet32", "Imagenet-1k"),
                  "DCGAN (svhn32)": ("svhn32", "SVHN")}
_OUR_ARCH = re.compile(r"\b(svhn32|imagenet32|dcgan64)\b")


def paper_rows(protocol: str) -> list[ResultRow]:
    base = dict(source="paper", protocol=protocol, preset="paper")
    if protocol == "cifar10_probe":
        return [ResultRow(**base, dataset="CIFAR-10", extractor=e, classifier=c, metric=m, value=v, std=s,
                          feature_dim=fd, notes=n) for e, c, m, v, s, fd, n in _CIFAR10]
    if protocol == "svhn_1000":
        rows = [ResultRow(**base, dataset="SVHN", extractor=e, classifier=c, metric="test_error_1000", value=v, std=s,
                          notes=_CITE + ", Table 2") for e, c, v, s in _SVHN]
        rows.append(ResultRow(**base, dataset="SVHN", extractor="Supervised CNN (same architecture)",
                              classifier="CNN", metric="val_error_1000", value=28.87,
                              notes=_CITE + ", Table 2 (validation error)"))
        return rows
    return []


@dataclass(frozen=True)
class Comparison:
    """The paper's row nearest to one of ours, and every way ours differs from it. Only a row
    with no difference is the paper's setting: its paper value and difference are shown."""

    paper: ResultRow | None       # None: the paper has no row for this protocol on this data
    differences: tuple[str, ...]

    @property
    def like(self) -> bool:
        return self.paper is not None and not self.differences

    def describe(self) -> str:
        """What a reader sees beside a row that is not like for like (no paper number in it)."""
        if self.like:
            return ""
        if self.paper is None:
            return "; ".join(self.differences)
        return f"nearest: {self.paper.extractor}; ours: {'; '.join(self.differences)}"


def _our_arch(extractor: str, feature_dim: object) -> str | None:
    if str(extractor).startswith("newmu-svhn"):
        return "svhn32"  # the authors' release is their SVHN model
    found = _OUR_ARCH.search(str(extractor))
    if found:
        return found.group(1)
    return {7168: "svhn32", 28672: "imagenet32"}.get(int(feature_dim)) if _number(feature_dim) else None


def _number(x: object) -> bool:
    try:
        return float(x) == float(x)  # not NaN
    except (TypeError, ValueError):
        return False


def compare(protocol: str, row: dict) -> Comparison | None:
    """How a row of ours (a results-CSV record) stands to the paper's rows; None where the
    paper has no counterpart of its kind at all (e.g. raw pixels with the L2-SVM)."""
    dataset, extractor, metric = str(row.get("dataset", "")), str(row.get("extractor", "")), row.get("metric")
    classifier = "" if row.get("classifier") is None else str(row.get("classifier"))
    match = next((paper for (proto, prefix, clf), paper in _COMPARABLE.items()
                  if proto == protocol and clf == classifier and extractor.startswith(prefix)), None)
    if match is None:
        return None
    candidates = (match,) if isinstance(match, str) else match
    paper = next((r for name in candidates for r in paper_rows(protocol) if r.extractor == name and r.metric == metric),
                 None)
    if paper is None:
        return None
    match = paper.extractor
    if not dataset.startswith(paper.dataset):
        return Comparison(None, (f"no paper row: the paper ran this protocol on {paper.dataset} only, this row on "
                                 f"{dataset}",))
    differences = []
    if match in _PAPER_SETTING:
        arch, learned_from = _PAPER_SETTING[match]
        ours = _our_arch(extractor, row.get("feature_dim"))
        if ours != arch:
            differences.append(f"{ours or 'another'} D, not {arch}")
        if extractor.startswith("random-init D"):
            differences.append("D not trained (random init)")
        elif extractor.startswith("newmu-svhn"):
            differences.append("the authors' released SVHN GAN" if learned_from != "SVHN" else "")
        else:
            gan_data = str(row.get("gan_data") or "")
            if learned_from not in gan_data:
                differences.append(f"GAN trained on {gan_data or 'unrecorded data'}, not {learned_from}")
    elif paper.feature_dim and _number(row.get("feature_dim")) and int(row["feature_dim"]) != paper.feature_dim:
        differences.append(f"{int(row['feature_dim']):,} features, not {paper.feature_dim:,}")
    if "JPEG copy" in dataset:
        differences.append("tested on the JPEG copy of the data (lossy), not the official images")
    return Comparison(paper, tuple(d for d in differences if d))
