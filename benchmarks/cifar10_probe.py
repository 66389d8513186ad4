"""CIFAR-10 probe (Table 1): D features + L2-SVM, all labels and 400 per class.

``python -m benchmarks.cifar10_probe --help`` or ``nox -s cifar10_probe -- ...``.
"""
from __future__ import annotations

from benchmarks.protocol.runner import CIFAR10_PROBE, run_protocol
from dcgan_ref.runtime.errors import run_cli


def main(argv: list[str] | None = None) -> None:
    run_protocol(CIFAR10_PROBE, argv)


if __name__ == "__main__":
    run_cli(main)
