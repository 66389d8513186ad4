"""The one results store: a :class:`Table` is ``<results dir>/<name>.csv`` (long format, one
:class:`~benchmarks.protocol.row.ResultRow` per line, full provenance) and its rendered ``.md``.

Every table that runs write goes through it (the protocols', throughput's, the sensitivity
study's), so each gets the same guarantees: a run replaces only its own earlier rows (same
``key``) and leaves every other row as it was; rows from any older version read (see
:mod:`benchmarks.protocol.results_io`); no machine path in a published row; the merge under a
lock, the files written atomically. A table differs only in its row type (its columns), its
key and how it renders.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from benchmarks.protocol.results_io import extra_columns, locked, read_table, write_atomic
from benchmarks.protocol.row import ResultRow, published_text

TEXT_COLUMNS = ("extractor", "gan_data", "dataset", "notes")  # free text that may hold a path
# Which existing rows a new run replaces beyond its rows' own keys: (existing, new) -> mask over existing.
Replaces = Callable[[pd.DataFrame, pd.DataFrame], pd.Series]


def _types(row_type: type[ResultRow]) -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(row_type)}


@dataclass(frozen=True)
class Table:
    name: str                                  # the file stem: results/<name>.csv
    row_type: type[ResultRow]
    key: tuple[str, ...]                       # what a row measured: a new row replaces the old one of its key
    render: Callable[[pd.DataFrame], str]      # the .md page from the merged rows
    required: tuple[str, ...] = ("source", "protocol", "metric", "value")  # a row without these measured nothing
    fixed_rows: Callable[[], Iterable[ResultRow]] = tuple  # rewritten on every write: the paper's ("source" paper)
    upgrade: Callable[[pd.DataFrame], pd.DataFrame] = lambda df: df  # an older version's columns, as today's

    @property
    def columns(self) -> list[str]:
        return list(_types(self.row_type))

    @property
    def numeric(self) -> list[str]:
        return [c for c, t in _types(self.row_type).items() if t.split(" |")[0] in ("int", "float")]

    @property
    def integer(self) -> list[str]:
        return [c for c, t in _types(self.row_type).items() if t == "int | None"]  # counts, seeds

    def read(self, path: str | Path) -> pd.DataFrame:
        """The table's CSV from any commit of this project; no file is a table of no rows."""
        return self.upgrade(read_table(path, self.columns, self.numeric, self.required))

    def frame(self, rows: Iterable[ResultRow]) -> pd.DataFrame:
        return pd.DataFrame([r.as_dict() for r in rows], columns=self.columns)

    def merge(self, existing: pd.DataFrame, rows: Iterable[ResultRow],
              replaces: Replaces | None = None) -> pd.DataFrame:
        """Existing rows minus those the new rows replace (same key, or picked by ``replaces``: a
        mask over the existing rows, given them and the new ones), after fresh fixed rows, then the new rows."""
        new, existing = _published(self.frame(rows)), _published(existing)
        ours = existing[existing["source"] != "paper"] if len(existing) else existing
        if len(ours) and len(new):
            ours = ours[~self._keys(ours).isin(set(self._keys(new)))]
            if replaces is not None:
                ours = ours[~replaces(ours, new)]
        frames = [f for f in (self.frame(self.fixed_rows()), ours, new) if len(f)]
        # Columns a newer version wrote stay, blank in the rows this one adds.
        columns = self.columns + extra_columns(existing, self.columns)
        merged = pd.concat(frames, ignore_index=True).reindex(columns=columns) if frames else self.frame([])
        # A column with blanks reads back as float: keep counts and seeds written as integers
        # ("10", not "10.0"), so a new row never rewrites the text of the rows beside it.
        for col in self.integer:
            values = pd.to_numeric(merged[col], errors="coerce")
            if values.notna().equals(merged[col].notna()) and (values.dropna() % 1 == 0).all():
                merged[col] = values.astype("Int64")
        return merged

    def write(self, rows: Iterable[ResultRow], results_dir: str | Path, lock_timeout_s: float = 120.0,
              replaces: Replaces | None = None) -> tuple[Path, Path]:
        """Merge ``rows`` into the CSV (see :meth:`merge`) and re-render the ``.md``."""
        out = Path(results_dir)
        out.mkdir(parents=True, exist_ok=True)
        csv_path, md_path = out / f"{self.name}.csv", out / f"{self.name}.md"
        with locked(out / f".{self.name}.lock", lock_timeout_s):
            merged = self.merge(self.read(csv_path), rows, replaces)
            write_atomic(csv_path, merged.to_csv(index=False))
            write_atomic(md_path, self.render(merged))
        return csv_path, md_path

    def rerender(self, results_dir: str | Path) -> Path:
        """The CSV in today's form and its ``.md`` re-rendered, the rows' values untouched."""
        csv_path = Path(results_dir) / f"{self.name}.csv"
        merged = self.merge(self.read(csv_path), [])
        write_atomic(csv_path, merged.to_csv(index=False))
        write_atomic(csv_path.with_suffix(".md"), self.render(merged))
        return csv_path.with_suffix(".md")

    def _keys(self, df: pd.DataFrame) -> pd.Series:
        """One string per row identifying what it measured (NaN and "" alike)."""
        def text(v: object) -> str:
            if pd.isna(v):
                return ""
            return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

        return df[list(self.key)].apply(lambda r: "|".join(text(v) for v in r), axis=1)


def _published(df: pd.DataFrame) -> pd.DataFrame:
    """No machine's absolute path in a published row (see :func:`benchmarks.protocol.row.published_text`)."""
    df = df.copy()
    for col in TEXT_COLUMNS:
        if col in df:
            df[col] = df[col].map(published_text)
    return df
