"""Reading and writing results files: a CSV written by any version of this project, or touched by hand,
read; a table written atomically under a lock.

A results file is versioned data: rows an older commit wrote lack today's newer columns, a
newer commit's file may carry columns this one does not know, and a person may have edited a
cell. :func:`read_table` fills missing columns with blanks, keeps unknown ones (they are
written back untouched, after the known ones), and refuses a malformed file with one line
naming the file, the row (its line in the file) and the column. Every reader and writer of
``results/`` goes through it, and every run reads its tables before any work, so a bad file
stops a run in seconds, never after hours of compute.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable

import pandas as pd

from dcgan_ref.runtime.errors import UserError


class ResultsFileError(UserError):
    """A results file that cannot be read as rows: what is wrong and where, in one line."""


def _is_number(text: str) -> bool:
    try:
        return not math.isinf(float(text))
    except ValueError:
        return False


def read_table(path: str | Path, columns: list[str], numeric: Iterable[str] = (),
               required: Iterable[str] = ()) -> pd.DataFrame:
    """``path``'s rows with ``columns`` first (blanks where the file lacks one) and any other
    columns after them; an absent, empty or header-only file is a table of no rows.

    Raises :class:`ResultsFileError` for a file that is not CSV text, a row with more cells than
    the header, a ``numeric`` cell that is not a number or a blank ``required`` cell."""
    path = Path(path)
    empty = pd.DataFrame(columns=columns)
    if not path.exists():
        return empty
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ResultsFileError(f"{path}: not UTF-8 text (byte {e.start}); restore it from git or delete it") from None
    if not text.strip():
        return empty
    # Check every cell as text first, so a bad cell is named here rather than turning a whole
    # column into strings that fail later in arithmetic (or after a run's work, in its writer).
    reader = csv.reader(io.StringIO(text))
    numeric, required = set(numeric), set(required)
    try:
        header = next(reader)
        if len(set(header)) != len(header) or any(not h.strip() for h in header):
            raise ResultsFileError(f"{path}: line 1 is not a header of distinct column names: "
                                   f"{','.join(header)[:200]}")
        missing = sorted(required - set(header))
        if missing:
            raise ResultsFileError(f"{path}: no column {', '.join(map(repr, missing))} in its header: not a results "
                                   f"table of this project")
        for cells in reader:
            where = f"{path}: row at line {reader.line_num}"
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                raise ResultsFileError(f"{where} has {len(cells)} cells, the header {len(header)}")
            for col, value in zip(header, cells + [""] * (len(header) - len(cells))):
                if col in required and not value.strip():
                    raise ResultsFileError(f"{where}, column {col!r} is blank")
                if col in numeric and value.strip() and not _is_number(value):
                    raise ResultsFileError(f"{where}, column {col!r}: {value!r} is not a number")
    except csv.Error as e:
        raise ResultsFileError(f"{path}: not a CSV table at line {reader.line_num} ({e})") from None
    df = pd.read_csv(io.StringIO(text))
    for col in numeric & set(df.columns):
        df[col] = pd.to_numeric(df[col])  # an all-blank column reads as float NaN, not text
    for col in columns:
        if col not in df:
            df[col] = math.nan
    return df[columns + [c for c in df.columns if c not in columns]]


def extra_columns(df: pd.DataFrame, columns: list[str]) -> list[str]:
    """The columns of ``df`` this version does not know, in their order: kept and written back."""
    return [c for c in df.columns if c not in columns]


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a table is a file like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(path: Path, timeout_s: float):
    """Hold an exclusive lock on ``path`` (a lock file beside the table) while merging: two
    runs finishing together would otherwise each read the old CSV and drop the other's rows."""
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError(f"another run has held {path} for over {timeout_s:g} s; if none is running, "
                                    f"delete the lock file and run again") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
