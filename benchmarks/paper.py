"""The paper's published rows (docs/PAPER.md) as :class:`ResultRow`s with ``source="paper"``,
and which of our rows each is comparable with."""
from __future__ import annotations

from benchmarks.row import ResultRow

_CITE = "Radford et al. 2016"
_DRAWS = " (*: read from the table image; ± as published, 1.96 × std)"

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
    ("kmeans-1600", "L2-SVM", "test_accuracy", 77.9, None, 6400, "Coates, Lee & Ng 2011"),
    ("kmeans-4000", "L2-SVM", "test_accuracy", 79.6, None, 16000, "Coates, Lee & Ng 2011"),
]
_SVHN = [
    ("KNN", "KNN", 77.93, None), ("TSVM", "TSVM", 66.55, None), ("M1 + KNN", "KNN", 65.63, None),
    ("M1 + TSVM", "TSVM", 54.33, None), ("M1 + M2", "-", 36.02, None),
    ("SWWAE without dropout", "-", 27.83, None), ("SWWAE with dropout", "-", 23.56, None),
    ("DCGAN (svhn32)", "L2-SVM", 22.48, None), ("DCGAN (svhn32), later citation", "L2-SVM", 22.18, 1.13),
]

# Which paper row a row of ours is compared with: (protocol, our label prefix, our classifier) -> paper row.
_COMPARABLE = {
    ("cifar10_probe", "dcgan", "L2-SVM"): "DCGAN (imagenet32, Imagenet-1k)",
    ("cifar10_probe", "newmu-svhn", "L2-SVM"): "DCGAN (imagenet32, Imagenet-1k)",
    ("cifar10_probe", "kmeans-1600", "L2-SVM"): "kmeans-1600",
    ("cifar10_probe", "kmeans-4000", "L2-SVM"): "kmeans-4000",
    ("svhn_1000", "dcgan", "L2-SVM"): "DCGAN (svhn32)",
    ("svhn_1000", "newmu-svhn", "L2-SVM"): "DCGAN (svhn32)",
    ("svhn_1000", "pixels", "KNN"): "KNN",
    ("svhn_1000", "supervised CNN", "CNN"): "Supervised CNN (same architecture)",
}


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


def paper_value(protocol: str, dataset: str, extractor: str, classifier: str, metric: str) -> float | None:
    """The paper's number a row of ours is comparable with, or None (e.g. the SVHN protocol
    run on CIFAR-10 has no paper counterpart)."""
    for (proto, prefix, clf), paper_extractor in _COMPARABLE.items():
        if proto == protocol and clf == classifier and str(extractor).startswith(prefix):
            for r in paper_rows(protocol):
                if r.extractor == paper_extractor and r.metric == metric and str(dataset).startswith(r.dataset):
                    return r.value
    return None
