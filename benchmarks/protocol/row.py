"""The one results row type: every table line (ours, the paper's, throughput) is a ``ResultRow``."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# An absolute path in running text (not a URL's path, not "4,000 / 1,000").
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~])/(?:[\w.+-]+/)+[\w.+-]*")


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
    n_train: int | None = None    # the images the row's classifier trained on / was tested on
    n_test: int | None = None
    peak_rss_gb: float | None = None  # the run's process: its peak resident memory when the row was made
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


def published_text(text: Any) -> Any:
    """``text`` with every absolute path made shareable: relative to the repository inside it,
    else ``.../<name>``. A published row names files, never one machine's folders."""
    if not isinstance(text, str):
        return text

    def shareable(m: re.Match) -> str:
        path = Path(m.group(0))
        try:
            return str(path.relative_to(REPO))
        except ValueError:
            return f".../{path.name}" if path.name else ".../"

    return _ABSOLUTE_PATH.sub(shareable, text)
