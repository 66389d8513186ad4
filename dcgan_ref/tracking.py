"""MLflow runs with provenance: config, seed, commit, versions, device; FAILED on a crash.

The store is MLflow's own default (an embedded sqlite file, ``mlflow.db`` in the working
folder); ``MLFLOW_TRACKING_URI`` points it elsewhere.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterator

import torch

REPO = Path(__file__).resolve().parents[1]

for _name in ("mlflow", "alembic"):  # their schema-migration chatter is not our output
    logging.getLogger(_name).setLevel(logging.WARNING)


def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the checkout this code runs from; ("unknown", True) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", True


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def provenance(device: torch.device) -> dict[str, str]:
    """What every run and every results row records about where it came from."""
    commit, dirty = git_state()
    return {
        "commit": commit,
        "dirty": str(dirty),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "device": device_name(device),
    }


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v, default=str)
    return out


@contextlib.contextmanager
def tracked_run(experiment: str, run_name: str, config: dict[str, Any], device: torch.device,
                nested: bool = False) -> Iterator[Any]:
    """An MLflow run holding the full config and provenance tags.

    Any exception inside ends the run FAILED (MLflow's context manager does this) and
    propagates; only a clean exit ends it FINISHED.
    """
    import mlflow

    if not nested:
        mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, nested=nested) as run:
        mlflow.set_tags(provenance(device))
        params = _flatten(config)
        for start in range(0, len(params), 100):  # MLflow caps one batch at 100 params
            mlflow.log_params(dict(list(params.items())[start:start + 100]))
        mlflow.log_dict(config, "config.json")
        yield run
