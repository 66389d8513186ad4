"""The classifiers a protocol fits on features: the L2-SVM (its solver in ``svm``), the plain hinge,
KNN, logistic regression, and the registry the protocols pick them from. Imports nothing else
from benchmarks/."""
