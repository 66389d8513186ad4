"""The one results row type: every table line (ours, the paper's, throughput) is a ``ResultRow``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(kw_only=True)
class ResultRow:
    """One measured (or published) number and where it came from: the results columns."""

    source: str = "ours"          # "ours" | "paper"
    protocol: str
    dataset: str = ""
    extractor: str = ""           # the extractor's table label
    classifier: str = ""
    gan_data: str = ""            # what the extractor learned from ("-": nothing)
    preset: str = ""
    metric: str
    value: float
    std: float | None = None      # ours: std over label draws (ddof 1); paper: as published
    n_draws: int | None = None
    feature_dim: int | None = None
    C: float | None = None
    k: int | None = None
    batch: int | None = None
    wall_s: float | None = None
    device: str = ""
    torch: str = ""
    commit: str = ""
    dirty: str = ""
    date: str = ""
    seed: int | None = None
    data_sha256: str = ""
    mlflow_run_id: str = ""
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


COLUMNS = [f.name for f in dataclasses.fields(ResultRow)]
