"""Shared fixtures: where the real offline data lives, and a scratch MLflow store."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`../shared/data` beside the checkout (override with DCGAN_REPRO_SHARED_DATA)."""
    return Path(os.environ.get("DCGAN_REPRO_SHARED_DATA", REPO.parent / "shared" / "data"))


LONGEST_FIRST = ("tests/test_regression.py", "tests/test_distributed.py")  # minutes and tens of seconds


def pytest_collection_modifyitems(session, config, items):
    """The longest tests first, then the other slow ones, then the rest (stable within each):
    under ``-n`` the real-data regression and torchrun start at once, not last behind the rest."""
    items.sort(key=lambda item: (not item.nodeid.startswith(LONGEST_FIRST), item.get_closest_marker("slow") is None))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "cifar10_jpeg.tar.xz").is_file():
        pytest.skip(f"real data not found at {path} (set DCGAN_REPRO_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One decoded-data cache for the whole test session (real data decodes once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def _empty_mlflow_db(tmp_path_factory) -> Path:
    """An initialised sqlite MLflow store, made once (its schema migrations take seconds)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch, session_cache, _empty_mlflow_db):
    """Every test logs to its own sqlite MLflow store; no test touches the user's cache."""
    import shutil

    db = tmp_path / "mlflow.db"
    shutil.copy(_empty_mlflow_db, db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.chdir(tmp_path)  # MLflow artifacts and default run folders land in the test's tmp dir
    monkeypatch.setenv("DCGAN_REPRO_CACHE", str(session_cache))


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_image_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """A synthetic ``<root>/{split}/<class>/N.png`` tree: each class a noisy colour pattern."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    bases = []
    for c in range(len(CIFAR_CLASSES)):
        base = rng.integers(0, 256, size=(1, 1, 3)) * np.ones((32, 32, 3))
        base[c * 3:(c * 3) + 4, :, :] = 255 - base[c * 3:(c * 3) + 4, :, :]  # a class-specific stripe
        bases.append(base)
    for split, n in per_class.items():
        for name, base in zip(CIFAR_CLASSES, bases):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(base + rng.normal(0, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """60 train / 20 test images per class, synthetic, as an image-folder tree."""
    return write_image_folder(tmp_path_factory.mktemp("tiny") / "tiny", {"train": 60, "test": 20})
