"""CI's regression check: the ``ci`` preset of the CIFAR-10 probe on real images (the JPEG
copy), a DCGAN trained here and a random-init D, about 2 minutes on 2 CPU cores.

The check is two-sided and paired, because a bug can move a number either way:

* each row's test accuracy must stay within ``tolerance_points`` of the value recorded in
  ``tests/regression_ci.json`` (a label leak through batchnorm pushes it *up*);
* the trained D must beat the random-init D on the same images by ``min_gain_points``
  (a GAN that does not train leaves the two equal).

``python tests/regression_power.py`` plants known bugs one at a time and shows this check
fails on each; its last output is recorded in the JSON beside the values.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.protocol.runner import CIFAR10_PROBE, run_protocol

RECORD = Path(__file__).with_name("regression_ci.json")


def measure(data: Path, out: Path) -> dict[str, float]:
    """Test accuracy (all labels) per extractor label, from one run of the recorded command."""
    record = json.loads(RECORD.read_text())
    rows = run_protocol(CIFAR10_PROBE, record["argv"] + ["--data", str(data), "--out", str(out)])
    return {r.extractor: r.value for r in rows if r.metric == "test_accuracy"}


def failures(got: dict[str, float]) -> list[str]:
    """What the check finds wrong with a measurement ([] = it passes)."""
    record = json.loads(RECORD.read_text())
    tol, problems = record["tolerance_points"], []
    for label, want in record["test_accuracy"].items():
        if label not in got:
            problems.append(f"{label}: no row")
        elif abs(got[label] - want) > tol:
            problems.append(f"{label}: {got[label]:.2f}% is more than {tol} points from the recorded {want:.2f}%")
    trained, random_init = (got.get(label) for label in record["test_accuracy"])
    if trained is not None and random_init is not None and trained - random_init < record["min_gain_points"]:
        problems.append(f"the trained D ({trained:.2f}%) beats the random-init D ({random_init:.2f}%) by less "
                        f"than {record['min_gain_points']} points: the GAN did not learn")
    return problems


@pytest.mark.slow
def test_ci_cifar10_probe_has_not_regressed(shared_data, tmp_path):
    got = measure(shared_data / "cifar10_jpeg.tar.xz", tmp_path / "runs")
    problems = failures(got)
    assert not problems, "; ".join(problems) + f" (command: {json.loads(RECORD.read_text())['command']})"


def test_the_check_rejects_moves_either_way_and_an_untrained_gan():
    record = json.loads(RECORD.read_text())
    trained, random_init = record["test_accuracy"]
    good = dict(record["test_accuracy"])
    assert failures(good) == []
    tol = record["tolerance_points"]
    assert failures(good | {trained: good[trained] + tol + 0.5})  # too good: a leak
    assert failures(good | {trained: good[trained] - tol - 0.5})  # too bad
    assert failures(good | {trained: good[random_init]})           # D equal to its init
