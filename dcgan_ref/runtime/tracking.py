"""MLflow runs with provenance: config, seed, commit, versions, device; FAILED on a crash.

The store is MLflow's own default (an embedded sqlite file, ``mlflow.db`` in the working
folder); ``MLFLOW_TRACKING_URI`` points it elsewhere.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import torch

from dcgan_ref.runtime.errors import UserError
from dcgan_ref.runtime.hardware import cpu_name

REPO = Path(__file__).resolve().parents[2]

for _name in ("mlflow", "alembic"):  # their schema-migration chatter is not our output
    logging.getLogger(_name).setLevel(logging.WARNING)


def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the checkout this code runs from, dirty when a tracked file outside
    ``results/`` differs from the commit; ("unknown", True) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        # results/ is what runs write (each protocol run adds its rows there): a table changed by the
        # run before is not a change to the code, or every row after the first of a session would be dirty.
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)results"], cwd=REPO, capture_output=True, text=True, check=True,
                                timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", True


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {cpu_name()}"  # model and ISA: an AMX Xeon and an AVX2 EPYC differ 1,000x in bf16


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


def unwritable(path: Path) -> str | None:
    """Why ``path`` (a folder, or an existing file) cannot be written, or None.  Tried for
    real, not with ``os.access``: root passes every permission check but not a read-only mount."""
    try:
        if path.is_dir():
            with tempfile.TemporaryFile(dir=path):
                pass
        else:
            with open(path, "r+b"):
                pass
    except OSError as e:
        return f"{path} is not writable ({e.strerror or e})"
    return None


STORE_HELP = ("MLFLOW_TRACKING_URI takes sqlite:///<path>/mlflow.db (the default is mlflow.db in the working "
              "folder) or http(s)://<host>:<port> of a running tracking server")


def _create_once(uri: str, path: Path) -> None:
    """Create (or migrate) a sqlite store under a lock: two runs starting together on a new
    store otherwise race on its schema migration, and one fails ("Online migration expected to
    match one row ... alembic_version")."""
    import mlflow

    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
        except Exception as e:  # not a store: a corrupt file, another program's database
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UserError(f"MLflow store {uri} cannot be opened ({first}); {STORE_HELP}") from None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_tracking_store(timeout_s: float = 3.0) -> str:
    """Fail in seconds, with one line, when the MLflow store cannot be written; return its URI.

    MLflow itself retries an unreachable server for minutes and a read-only sqlite file for
    about two, then prints a long traceback: check once, before any data is loaded.
    """
    import mlflow

    uri = mlflow.get_tracking_uri()
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
        if path is not None and str(path) not in ("", ":memory:"):
            if not path.parent.is_dir():
                raise UserError(f"MLflow store {uri}: the folder {path.parent} does not exist; create it or "
                                f"{STORE_HELP}")
            problem = unwritable(path.parent) or (unwritable(path) if path.exists() else None)
            if problem:  # sqlite writes its journal beside the file: both must be writable
                raise UserError(f"MLflow store {uri}: {problem}; {STORE_HELP}")
            _create_once(uri, path)
        return uri
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
        except OSError as e:
            raise UserError(f"MLflow tracking server {uri} is unreachable ({e.strerror or e}); start it, or "
                            f"{STORE_HELP}") from None
        return uri
    if parsed.scheme in ("", "file"):
        raise UserError(f"MLflow store {uri!r} is a plain folder, which MLflow >= 3.13 no longer accepts; "
                        f"{STORE_HELP}")
    return uri  # another scheme (databricks, postgresql, ...): MLflow's own checks apply


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            plain = isinstance(v, (int, float, str, bool)) or v is None
            out[f"{prefix}{k}"] = v if plain else json.dumps(v, default=str)
    return out


def command_line() -> str:
    """This process's command as a user would type it: ``python -m <module> <args>`` (the module's
    name, not the absolute path of its file that ``sys.argv[0]`` holds)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = f"python -m {spec.name.removesuffix('.__main__')}" if spec else f"python {Path(sys.argv[0]).name}"
    return f"{head} {shlex.join(sys.argv[1:])}".strip()


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
        mlflow.set_tags(provenance(device) | {"command": command_line()})
        params = _flatten(config)
        for start in range(0, len(params), 100):  # MLflow caps one batch at 100 params
            mlflow.log_params(dict(list(params.items())[start:start + 100]))
        mlflow.log_dict(config, "config.json")
        yield run
