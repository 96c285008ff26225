"""Outputs for big corpora: one parquet file, or a partitioned dataset with a part per unit.

``-o out.parquet`` (or ``.csv``) is one file, as before. ``-o DIR/`` (a trailing slash, or a
folder that exists) is a dataset: one ``<stem>-<hash>.parquet`` per unit of work
(:attr:`Unit.part_name`), all with the same columns, so pandas, ``pyarrow.dataset``,
``dask.dataframe`` and Hugging Face ``datasets`` read the folder in one call. Every part
carries the run's provenance (rule hash, options, ...) and a ``part`` record: the unit's key,
its sources with their sizes, head-and-tail probes and sha256, and the ``resume_key`` (a
hash of the rules and every option that changes rows). A rerun skips a unit whose part has
the same resume key and the same sources at the same sizes with the same probes.

Paths may be fsspec URLs (``s3://bucket/run/``, ``gs://...``, ``file://...``); the matching
fsspec backend (s3fs, gcsfs, ...) must be installed where the parts are written (on every
worker with ``--scheduler``). Local parts are written to a hidden temp file and renamed;
remote parts are uploaded in one piece (one PUT on object stores), so readers never see half
a part. Names starting with ``.`` or ``_`` are ignored by all four readers.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .._errors import InputError
from .._table import METADATA_KEY

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
FSSPEC_HINT = 'pip install "fuzzyemo[distributed]" (and s3fs, gcsfs, ... for the URL scheme)'


def is_url(path: str) -> bool:
    return bool(_URL.match(path)) and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


@dataclass(frozen=True)
class Output:
    """Where a run writes: ``dataset`` (a folder of parts) or one file; local or a URL."""

    path: str  # a local path (``file://`` removed) or an fsspec URL
    dataset: bool
    remote: bool

    @classmethod
    def parse(cls, output: str | os.PathLike) -> Output:
        text = os.fspath(output)
        remote = is_url(text)
        path = text if remote else _local(text)
        # An existing folder is a dataset output, unless its name says table (then the user
        # meant a file, and the output check says a directory is in the way).
        dataset = text.endswith(("/", os.sep)) or (
            not remote and os.path.isdir(path)
            and not text.lower().endswith((".parquet", ".csv")))
        if dataset:
            path = path.rstrip("/" + os.sep) or "/"
        return cls(path, dataset, remote)

    def __str__(self) -> str:
        return self.path + ("/" if self.dataset else "")

    def absolute(self) -> Output:
        """Local paths made absolute, for workers whose working directory differs."""
        return self if self.remote else Output(os.path.abspath(self.path), self.dataset, False)

    # -- file system ----------------------------------------------------------------
    def _fs(self) -> tuple[Any, str]:
        try:
            from fsspec.core import url_to_fs
        except ImportError:
            raise InputError(f"{self.path}: writing to a URL needs fsspec: {FSSPEC_HINT}") \
                from None
        try:
            return url_to_fs(self.path)
        except (ImportError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown scheme"
            raise InputError(f"{self.path}: cannot open this URL ({first}); {FSSPEC_HINT}") \
                from None

    def check(self) -> None:
        """Before any work: the place exists (a dataset folder is created in an existing
        parent), so a long run never ends on a missing folder."""
        if self.remote:
            fs, root = self._fs()
            if self.dataset:
                try:
                    fs.makedirs(root, exist_ok=True)
                except OSError as exc:
                    raise InputError(f"{self}: cannot create the dataset folder "
                                     f"({exc.strerror or exc})") from None
            return
        p = Path(self.path)
        if self.dataset:
            if p.exists() and not p.is_dir():
                raise InputError(f"{self}: exists and is not a folder")
            if not p.parent.is_dir():
                raise InputError(f"{self}: output directory {p.parent} does not exist")
            p.mkdir(exist_ok=True)
        elif not p.parent.is_dir():
            raise InputError(f"{p}: output directory {p.parent} does not exist")

    def part(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}" if self.remote else os.path.join(self.path, name)

    def part_names(self) -> set[str]:
        """The ``*.parquet`` files in the dataset folder now (hidden ones excluded)."""
        if self.remote:
            fs, root = self._fs()
            try:
                entries = fs.ls(root, detail=False)
            except FileNotFoundError:
                return set()
            names = {e.rstrip("/").rsplit("/", 1)[-1] for e in entries}
        else:
            try:
                names = {e.name for e in os.scandir(self.path) if e.is_file()}
            except FileNotFoundError:
                return set()
        return {n for n in names if n.endswith(".parquet") and not n.startswith((".", "_"))}

    def read_part_metadata(self, name: str) -> dict[str, Any] | None:
        """A part's fuzzyemo metadata (its footer only), or None when it cannot be read."""
        import pyarrow.parquet as pq

        try:
            if self.remote:
                fs, _ = self._fs()
                with fs.open(self.part(name), "rb") as f:
                    meta = pq.read_schema(f).metadata or {}
            else:
                meta = pq.read_schema(self.part(name)).metadata or {}
            raw = meta.get(METADATA_KEY)
            return json.loads(raw) if raw else None
        except Exception:  # noqa: BLE001 - a damaged or foreign part is simply redone
            return None

    def write(self, df: pd.DataFrame, metadata: Mapping[str, Any], name: str | None = None
              ) -> str:
        """Write a table (a part ``name`` of the dataset, or the single file) atomically."""
        from .._annotate import write_table

        target = self.part(name) if name is not None else self.path
        if not self.remote:
            write_table(df, target, dict(metadata))
            return target
        if target.lower().endswith(".csv"):
            clean = df.copy(deep=False)
            clean.attrs = {}
            data = clean.to_csv(index=False).encode()
        else:
            data = parquet_bytes(df, metadata)
        from fsspec.core import url_to_fs

        fs, where = url_to_fs(target)
        fs.pipe_file(where, data)  # one upload: all or nothing
        return target

    def sweep(self, names: Iterable[str]) -> None:
        """Remove the hidden temp files a killed worker left for these parts (local only)."""
        if self.remote or not self.dataset:
            return
        wanted = tuple(f".{n}." for n in names)
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return
        for e in entries:
            if e.name.startswith(wanted) and e.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(e.path)


def parquet_bytes(df: pd.DataFrame, metadata: Mapping[str, Any]) -> bytes:
    """The bytes :func:`fuzzyemo._annotate.write_table` writes for this table, in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    clean = df.copy(deep=False)
    clean.attrs = {}
    table = pa.Table.from_pandas(clean, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(dict(metadata), sort_keys=True).encode()
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf, compression="zstd")
    return buf.getvalue()


def resume_key(settings: Mapping[str, Any]) -> str:
    """sha256 of every setting that changes a part's rows (rules, calibration, model,
    versions, options), as canonical JSON."""
    text = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def part_record(key: str, sources: list[tuple[str, int, str]], resume: str) -> dict[str, Any]:
    """The ``part`` entry of a part's metadata: per source its name, size and ``probe``
    (:func:`fuzzyemo._files.head_tail_sha256`); the full ``sha256`` is added by the worker
    that reads the source."""
    return {"key": key, "resume_key": resume,
            "sources": [{"name": n, "bytes": b, "probe": p} for n, b, p in sources]}


def is_finished(meta: Mapping[str, Any] | None, record: Mapping[str, Any]) -> bool:
    """Whether a part's metadata says it holds this unit, done with these settings, from
    sources of the same names, sizes and probes (a part without probes is redone)."""
    part = (meta or {}).get("part") or {}
    fields = ("name", "bytes", "probe")
    have = [tuple(s.get(f) for f in fields) for s in part.get("sources", [])]
    want = [tuple(s[f] for f in fields) for s in record["sources"]]
    return part.get("resume_key") == record["resume_key"] and have == want
