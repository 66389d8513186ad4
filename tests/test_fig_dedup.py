"""De-duplication by autoencoder hashing (Section 4.1.1) and the probe's
``--exclude-near-duplicates``: planted duplicates are found, the scores are right, the
protocol drops exactly the listed test images, and a list made for other data is refused."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from benchmarks import cifar10_probe
from benchmarks.protocol import runner as protocol
from benchmarks.protocol.context import parse_run
from benchmarks.protocol.runner import CIFAR10_PROBE, SVHN_1000, run_protocol
from dcgan_ref.datasets.loading import load_split
from dcgan_ref.datasets.near_duplicates import read_near_duplicates
from dcgan_ref.figures import dedup
from dcgan_ref.runtime.errors import UserError, run_cli

FAST = dedup.TrainSettings(epochs=3, batch_size=64)


def _planted(seed: int = 0):
    """Random images; test 0-4 copied exactly into train, test 5-9 copied with +-3/255 noise."""
    gen = torch.Generator().manual_seed(seed)
    train = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=gen)
    test = torch.randint(0, 256, (60, 3, 32, 32), dtype=torch.uint8, generator=gen)
    where = torch.tensor([10, 11, 12, 13, 14, 200, 201, 202, 203, 204])  # train slot of test image i
    train[where[:5]] = test[:5]
    noise = torch.randint(-3, 4, (5, 3, 32, 32), generator=gen)
    train[where[5:]] = (test[5:10].int() + noise).clamp(0, 255).to(torch.uint8)
    return train, test, where


def test_hash_and_exact_search_find_planted_duplicates(tmp_path):
    train, test, where = _planted()
    numbers = dedup.make(train, test, tmp_path, data_label="planted", test_sha256="a" * 64, settings=FAST,
                         log=lambda _: None)
    assert numbers["near_duplicate_test_indices"] == list(range(10))  # exact search: the planted ones, no others
    assert [p["train"] for p in numbers["pairs"]] == where.tolist()
    assert all(p["rms"] == 0 for p in numbers["pairs"][:5]) and all(0 < p["rms"] < 0.02 for p in numbers["pairs"][5:])
    exact = numbers["hash"]["radii"]["0"]
    assert exact["collisions"]["true_positives"] >= 5  # an exact copy has the same code
    assert exact["collisions"]["false_positives"] == 0
    assert numbers["hash"]["radii"]["8"]["confirmed"]["recall"] == 1.0  # +-3/255 flips a few bits at most
    assert (tmp_path / "dedup.png").stat().st_size > 10_000
    written = read_near_duplicates(tmp_path / "dedup.json")  # what the protocol reads back
    assert (written.test_sha256, written.n_test, written.test_indices) == ("a" * 64, 60, tuple(range(10)))


def test_training_is_seeded_and_the_hash_is_its_code_sign():
    train, test, _ = _planted()
    a, loss_a = dedup.train_autoencoder(train, FAST, seed=3, log=lambda _: None)
    b, loss_b = dedup.train_autoencoder(train, FAST, seed=3, log=lambda _: None)
    c, _ = dedup.train_autoencoder(train, FAST, seed=4, log=lambda _: None)
    assert loss_a == loss_b and all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                                        b.state_dict().values()))
    assert not torch.equal(a.enc.weight, c.enc.weight)
    codes = dedup.hash_codes(a, test)
    assert codes.shape == (60, dedup.CODE_BITS) and torch.equal(codes, a.encode(dedup.unit_rows(test)) > 0)


def test_hash_pairs_hamming_radius():
    test = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    train = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    t, j, ham = dedup.hash_pairs(test, train, radius=0)
    assert (t.tolist(), j.tolist()) == ([0], [0])
    t, j, ham = dedup.hash_pairs(test, train, radius=1)
    assert sorted(zip(t.tolist(), j.tolist(), ham.tolist())) == [(0, 0, 0), (0, 1, 1), (1, 1, 1)]
    with pytest.raises(ValueError, match="degenerate"):
        dedup.hash_pairs(test, train, radius=4, max_pairs=5)


def test_precision_recall_on_a_known_case():
    flagged = torch.tensor([1, 1, 1, 1, 0, 0], dtype=torch.bool)
    truth = torch.tensor([0, 0, 1, 1, 1, 0], dtype=torch.bool)
    assert dedup.precision_recall(flagged, truth) == {"flagged": 4, "true_positives": 2, "false_positives": 2,
                                                      "false_negatives": 1, "precision": 0.5, "recall": 2 / 3}
    none = dedup.precision_recall(torch.zeros(6, dtype=torch.bool), truth)
    assert none["precision"] is None and none["recall"] == 0


def test_near_duplicates_are_judged_against_the_kth_neighbour():
    dist = torch.tensor([[0.06, 0.065, 0.07], [0.05, 0.09, 0.2], [0.3, 0.35, 0.39]])
    assert dedup.near_duplicates(dist, ratio=0.75).tolist() == [False, True, False]


# ------------------------------------------------------------------ the probe's option
def _smoke(data, tmp_path, *extra):
    return ["--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "runs"), "--extractor", "pixels",
            "--no-results", *extra]


def _dedup_json(path, test_sha256, indices, n_test=200):
    """The fields of a dedup.json the protocol reads."""
    path.write_text(json.dumps({"test_sha256": test_sha256, "n_test": n_test, "near_duplicate_test_indices": indices}))
    return path


def test_exclusion_scores_the_same_fit_without_the_listed_test_images(tiny_folder, tmp_path, monkeypatch):
    """Known answer: the listed images are given a label no classifier predicts, so they are
    all wrong in ``test_accuracy``; without them the accuracy rises by exactly N / (N - removed)."""
    listed = [0, 3, 50, 120, 199]
    load = protocol.load_data

    def unpredictable_listed(run, log=print):
        data = load(run, log)
        labels = data.test.labels.clone()
        labels[listed] = -1
        data.test = dataclasses.replace(data.test, labels=labels)
        return data

    monkeypatch.setattr(protocol, "load_data", unpredictable_listed)
    sha = load_split(tiny_folder, "test").sha256
    rows = run_protocol(CIFAR10_PROBE, _smoke(tiny_folder, tmp_path, "--exclude-near-duplicates",
                                              str(_dedup_json(tmp_path / "dedup.json", sha, listed))))
    got = {r.metric: r for r in rows}
    full, kept = got["test_accuracy"], got["test_accuracy_no_near_duplicates"]
    assert kept.value == pytest.approx(full.value * 200 / 195, abs=2e-3)
    assert 0 < full.value <= 100 * 195 / 200 and kept.C == full.C
    assert "5 of 200 test images removed" in kept.notes and "removed" not in full.notes
    assert set(got) == {"test_accuracy", "test_accuracy_no_near_duplicates", "test_accuracy_10pc"}


@pytest.mark.parametrize("sha, n_test, message", [
    ("0" * 64, 200, "made for test data sha256 " + "0" * 64 + ", but this run's test data is "),
    (None, 10_000, "indexes the whole 10,000-image test split, but preset smoke tests on 200 of them"),
])
def test_a_list_for_other_test_data_is_refused_before_any_fit(sha, n_test, message, tiny_folder, tmp_path,
                                                              monkeypatch, capsys):
    monkeypatch.setattr(protocol, "compute_features", lambda *a, **k: pytest.fail("features were computed"))
    real = load_split(tiny_folder, "test").sha256
    path = _dedup_json(tmp_path / "dedup.json", sha or real, [1, 2], n_test)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cifar10_probe.main, _smoke(tiny_folder, tmp_path, "--exclude-near-duplicates", str(path)))
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and message in err and len(err.splitlines()) == 1
    if sha:
        assert real in err  # names both


def test_a_bad_list_fails_before_any_data_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "load_data", lambda *a, **k: pytest.fail("data was read"))
    base = ["--preset", "smoke", "--device", "cpu", "--exclude-near-duplicates"]
    with pytest.raises(UserError, match="no such file"):
        parse_run(CIFAR10_PROBE, [*base, str(tmp_path / "missing.json")])
    (tmp_path / "other.json").write_text('{"n_test": 5}')
    with pytest.raises(UserError, match="not a dedup.json"):
        parse_run(CIFAR10_PROBE, [*base, str(tmp_path / "other.json")])
    out_of_range = _dedup_json(tmp_path / "range.json", "0" * 64, [5], n_test=5)
    with pytest.raises(UserError, match=r"integers in \[0, 5\)"):
        parse_run(CIFAR10_PROBE, [*base, str(out_of_range)])
    with pytest.raises(UserError, match="svhn_1000 does not have"):
        parse_run(SVHN_1000, [*base, str(_dedup_json(tmp_path / "ok.json", "0" * 64, [1]))])
