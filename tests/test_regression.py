"""CI's regression check: one `quick` CIFAR-10 probe on real images (the JPEG copy).

Fails when the test accuracy drops more than 2 points below the value recorded in
``tests/regression_quick.json``, which holds the first honestly measured value and the
command that produced it.  Takes a few minutes on 2 CPU cores.
"""
import json
from pathlib import Path

import pytest

from benchmarks.protocol import CIFAR10_PROBE, run_protocol

RECORD = Path(__file__).with_name("regression_quick.json")


@pytest.mark.slow
def test_quick_cifar10_probe_has_not_regressed(shared_data, tmp_path):
    record = json.loads(RECORD.read_text())
    argv = record["argv"] + ["--data", str(shared_data / "cifar10_jpeg.tar.xz"), "--out", str(tmp_path / "runs"),
                             "--results-dir", str(tmp_path / "results")]
    rows = run_protocol(CIFAR10_PROBE, argv)
    got = {r["metric"]: r["value"] for r in rows}
    assert got["test_accuracy"] >= record["test_accuracy"] - record["tolerance_points"], (
        f"quick-preset test accuracy {got['test_accuracy']:.2f}% is more than {record['tolerance_points']} points "
        f"below the recorded {record['test_accuracy']:.2f}% ({record['command']})")
    assert (tmp_path / "results" / "cifar10_probe.csv").exists()  # quick rows are written, labelled quick
