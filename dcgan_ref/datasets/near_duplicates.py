"""The list of test images that near-duplicate training images (``dedup.json``, written by
``dcgan_ref.figures.dedup``), as the protocols read it for ``--exclude-near-duplicates``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NearDuplicates:
    """The test images a ``dedup.json`` lists, and which data it was made from."""
    path: Path
    test_sha256: str
    train_sha256: str | None
    n_test: int
    test_indices: tuple[int, ...]


def read_near_duplicates(path: Path) -> NearDuplicates:
    """A ``dedup.json`` written by :func:`make`.  Raises FileNotFoundError or ValueError (what is wrong)."""
    try:
        numbers = json.loads(Path(path).read_text())
        sha, n, indices = numbers["test_sha256"], int(numbers["n_test"]), numbers["near_duplicate_test_indices"]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a dedup.json written by dcgan_ref.figures.dedup ({type(e).__name__}: {e})"
                         ) from None
    if not isinstance(sha, str) or len(sha) != 64:
        raise ValueError(f"{path}: no test data sha256 recorded (make it with test_sha256=<the test split's sha256>)")
    if not all(isinstance(i, int) and 0 <= i < n for i in indices):
        raise ValueError(f"{path}: near_duplicate_test_indices must be integers in [0, {n})")
    return NearDuplicates(Path(path), sha, numbers.get("train_sha256"), n, tuple(sorted(set(indices))))
