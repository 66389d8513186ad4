"""Atomic, code-free checkpoints.

Written to a temp file beside the target, fsynced, then renamed: a crash mid-write leaves
the previous checkpoint intact and never a half-written one.  Read with
``torch.load(weights_only=True)``: a checkpoint holds only tensors, numbers, strings and
containers of them, so a file someone hands you cannot run code when loaded.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_atomic(state: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is a file like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line), "")
        if not unsafe:  # not a refused global: the bytes are simply not a checkpoint
            raise ValueError(f"checkpoint {path} is unreadable (not a torch checkpoint file); "
                             "delete it or point --out at another folder") from None
        # weights_only refused a global: the file asks to call something, i.e. to run code
        raise ValueError(f"checkpoint {path} holds more than tensors and plain data and was not loaded, "
                         f"since loading it could run code ({unsafe})") from None
    except Exception as e:  # truncated or foreign file
        raise ValueError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); "
                         "delete it or point --out at another folder") from e
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint dict")
    return state
