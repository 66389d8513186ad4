"""A row's dirty flag says whether the code differs from its commit: the results tables the runs
themselves write do not count (else every row after a session's first would read dirty)."""
from __future__ import annotations

import subprocess

from dcgan_ref.runtime import tracking


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_dirty_means_code_changed_not_results(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "cifar10_probe.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c")
    monkeypatch.setattr(tracking, "REPO", tmp_path)
    assert tracking.git_state()[1] is False
    (tmp_path / "results" / "cifar10_probe.csv").write_text("a\nb\n")  # the run before wrote its row
    assert tracking.git_state()[1] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert tracking.git_state()[1] is True
