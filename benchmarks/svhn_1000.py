"""SVHN with 1,000 labels (Table 2): D features + L2-SVM, mean ± std test error over draws.

``python -m benchmarks.svhn_1000 --help`` or ``nox -s svhn_1000 -- ...``.  ``--dataset cifar10``
runs the identical protocol on CIFAR-10.
"""
from __future__ import annotations

from benchmarks.protocol.runner import SVHN_1000, run_protocol
from dcgan_ref.runtime.errors import run_cli


def main(argv: list[str] | None = None) -> None:
    run_protocol(SVHN_1000, argv)


if __name__ == "__main__":
    run_cli(main)
