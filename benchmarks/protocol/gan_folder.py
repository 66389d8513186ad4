"""A long GAN run's folder (outside the work tree, so it outlives a session): its files, the
one-trainer lock, and the stopping rule its validation curve is read with. ``benchmarks.gan_run``
trains in it; ``benchmarks.protocol.gan_record`` publishes from it."""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

from dcgan_ref.datasets.loading import default_cache_dir
from dcgan_ref.runtime.errors import UserError

CURVE_FIELDS = ("images_seen", "step", "val_score", "score_s", "train_img_per_s", "precision", "commit", "date")


def runs_root() -> Path:
    return default_cache_dir() / "gan-runs"


@dataclasses.dataclass
class RunFiles:
    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / "last.pt"

    @property
    def curve(self) -> Path:
        return self.root / "curve.csv"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def chosen(self) -> Path:
        return self.root / "chosen.pt"

    def snapshot(self, images_seen: int) -> Path:
        return self.root / f"d_{images_seen:08d}.pt"

    def read_curve(self) -> list[dict[str, Any]]:
        if not self.curve.is_file():
            return []
        with open(self.curve, newline="") as f:
            return [{**r, "images_seen": int(r["images_seen"]), "step": int(r["step"]),
                     "val_score": float(r["val_score"])} for r in csv.DictReader(f)]

    def write_curve(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.curve.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, CURVE_FIELDS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.curve)

    def write_status(self, status: dict[str, Any]) -> None:
        tmp = self.status.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, self.status)

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status.read_text())
        except (OSError, ValueError):
            return {}


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """One trainer per run folder: a second gets a clear error, not a corrupted checkpoint."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{root} is being trained by another process (see "
                            f"python -m benchmarks.gan_run status --run-dir {root})") from None
        yield


def locked(root: Path) -> bool:
    try:
        with open(root / "lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def plateaued(curve: list[dict[str, Any]], apart: int, points: float) -> tuple[int, int] | None:
    """The first (earlier, later) images-seen pair about ``apart`` apart whose scores differ by
    less than ``points``: the stopping rule. Scores fall on whole steps (124,928 images, not
    125,000, at batch 128), so the earlier one is the score nearest to ``later - apart``, within
    a tenth of ``apart``. None while there is none."""
    seen = sorted(r["images_seen"] for r in curve)
    by_images = {r["images_seen"]: r["val_score"] for r in curve}
    for later in seen:
        earlier = min((s for s in seen if s < later), key=lambda s: abs(later - apart - s), default=None)
        if earlier is not None and abs(later - apart - earlier) <= apart / 10 \
                and abs(by_images[later] - by_images[earlier]) < points:
            return earlier, later
    return None
