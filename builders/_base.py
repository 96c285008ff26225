"""The shared builder base: info, source checks, issues, deterministic parquet, cards.

A builder is shaped like a TFDS / Hugging Face builder:

- :meth:`DatasetBuilder.info` gives the schema (an explicit pyarrow schema), version,
  licence, citation and homepage;
- :meth:`DatasetBuilder.split_generators` names the splits;
- :meth:`DatasetBuilder.generate_examples` yields ``(key, row)`` pairs with stable keys;
- :meth:`DatasetBuilder.build` is the fast path: the whole dataset as one vectorised table,
  written atomically and deterministically (same source -> byte-identical parquet), with a
  ``dataset_card.md`` beside it.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fuzzyemo._errors import InputError
from fuzzyemo._files import (
    InterruptedAfterWriting,
    atomic_path,
    commit_together,
    save_png,
    write_text_atomic,
)
from fuzzyemo._table import (
    ACTIVATION_COLUMNS,
    CODE_COLUMNS,
    ECCENTRICITY_COLUMNS,
    METADATA_KEY,
    SCORE_COLUMNS,
    rulebase_metadata,
)
from fuzzyemo._vocab import CLASS_NAMES, COMPONENTS, EMOTIONS

DATA_DIR_ENV = "FUZZYEMO_DATA_DIR"


# ----------------------------------------------------------------------------- errors
class SourceError(InputError):
    """The source database is missing or incomplete.

    The first line is the summary; the following lines name each expected path, where to
    get the data and the exact command to rerun (the CLI prints them all).
    """


class BuildError(InputError):
    """A problem in the source that fails the build (``--strict``) or makes it impossible."""


@dataclass(frozen=True)
class Issue:
    """One problem found in the source: the file, and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class IssueLog:
    """Collects source problems; under ``strict`` the first one fails the build."""

    strict: bool = False
    items: list[Issue] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        issue = Issue(str(path), message)
        if self.strict:
            raise BuildError(f"{issue} (--strict: the build stops at the first bad file; "
                             "rerun without --strict to skip and list such files)")
        self.items.append(issue)

    def extend(self, issues: Sequence[Issue | tuple[str, str]]) -> None:
        for i in issues:
            path, message = (i.path, i.message) if isinstance(i, Issue) else i
            self.add(path, message)


# ----------------------------------------------------------------------------- info
@dataclass(frozen=True)
class DatasetInfo:
    """What a builder produces (the TFDS ``DatasetInfo`` / HF ``DatasetInfo`` analogue)."""

    name: str
    version: str
    description: str
    homepage: str
    license: str
    citation: str
    schema: pa.Schema
    splits: tuple[str, ...]
    sort_keys: tuple[str, ...]


def result_fields() -> list[pa.Field]:
    """The standard inference columns of ``fuzzyemo._table.results_frame``, typed."""
    fields = [pa.field(c, pa.float64()) for c in COMPONENTS]
    fields += [pa.field(c, pa.int8()) for c in CODE_COLUMNS]
    fields += [pa.field(c, pa.float64()) for c in
               (*ACTIVATION_COLUMNS, *ECCENTRICITY_COLUMNS, *SCORE_COLUMNS)]
    fields += [pa.field("label", pa.string()), pa.field("class_index", pa.int16())]
    return fields


def landmark_fields(n_points: int) -> list[pa.Field]:
    return ([pa.field(f"x_{i}", pa.float32()) for i in range(n_points)]
            + [pa.field(f"y_{i}", pa.float32()) for i in range(n_points)])


# ----------------------------------------------------------------------------- source
def resolve_source(source: str | os.PathLike | None, dirnames: Sequence[str],
                   dataset: str) -> Path:
    """The database root: ``--source``, else ``$FUZZYEMO_DATA_DIR/<name>`` (or the variable
    itself when it already is the root). One clear error when neither is given.
    ``dataset`` is the builder name (``disfa`` / ``wflw``)."""
    if source is not None:
        p = Path(source).expanduser()
        if not p.is_dir():
            raise SourceError(
                f"{dataset.upper()} source directory {p} does not exist\n"
                f"  rerun with: fuzzyemo build-dataset {dataset.lower()} --source DIR -o OUT")
        return p
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        base = Path(env).expanduser()
        for name in dirnames:
            if (base / name).is_dir():
                return base / name
        return base
    raise SourceError(
        f"no {dataset.upper()} source given: pass --source DIR or set {DATA_DIR_ENV} "
        f"(to a folder holding {dirnames[0]}/)\n"
        f"  rerun with: fuzzyemo build-dataset {dataset.lower()} --source DIR -o OUT")


# ----------------------------------------------------------------------------- writing
def table_from_frame(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A pyarrow table with exactly ``schema`` (column order and types), from a frame.

    Nullable pandas columns (Int8, string) become arrow nulls; the pandas metadata is
    dropped so the file does not depend on the pandas version that wrote it.
    """
    missing = [f.name for f in schema if f.name not in df.columns]
    if missing:  # a programming error, not a user error
        raise KeyError(f"table lacks schema column(s): {', '.join(missing[:5])}")
    arrays = [pa.array(df[f.name], type=f.type, from_pandas=True) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema.remove_metadata())


def write_parquet(table: pa.Table, path: str | os.PathLike, metadata: Mapping[str, Any]) -> Path:
    """Write parquet atomically (temp file in the same folder, then rename).

    Deterministic: the metadata is canonical JSON (sorted keys) under the ``fuzzyemo`` key,
    row groups have a fixed size and nothing time- or host-dependent is recorded.
    """
    out = Path(path)
    if not out.parent.exists():
        raise InputError(f"{out}: output directory {out.parent} does not exist")
    meta = {METADATA_KEY: json.dumps(dict(metadata), sort_keys=True,
                                     separators=(",", ":")).encode()}
    table = table.replace_schema_metadata(meta)
    with atomic_path(out) as tmp:
        # Dictionary encoding only for text columns: on the many float columns it costs
        # 3-4x the write time and makes the file larger (the values hardly repeat).
        text = [f.name for f in table.schema if pa.types.is_string(f.type)]
        with pa.OSFile(tmp, "wb") as sink:  # closed even when the write fails
            pq.write_table(table, sink, compression="zstd", row_group_size=65536,
                           use_dictionary=text)
    return out


def save_npz_atomic(path: Path, **arrays: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def class_balance_plot(counts: pd.DataFrame, path: Path, title: str) -> bool:
    """A bar chart of rows per class and split; False (no file) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    bottom = np.zeros(len(counts.index))
    for split in counts.columns:
        ax.bar(range(len(counts.index)), counts[split].to_numpy(), bottom=bottom, label=split)
        bottom += counts[split].to_numpy()
    ax.set_xticks(range(len(counts.index)), counts.index, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        save_png(fig, path)  # reproducible bytes, like the parquet
    finally:
        plt.close(fig)
    return True


def label_counts(df: pd.DataFrame, split_col: str = "split") -> pd.DataFrame:
    """Rows per label (the 18 classes, then neutral and unknown) and split."""
    order = [*CLASS_NAMES, "neutral", "unknown"]
    tab = pd.crosstab(df["label"], df[split_col])
    tab = tab.reindex(index=order, fill_value=0)
    return tab.reindex(columns=sorted(tab.columns)).fillna(0).astype(int)


def markdown_table(df: pd.DataFrame, index_name: str = "") -> str:
    cols = [index_name, *map(str, df.columns)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx), *(str(v) for v in row.to_numpy())]) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- progress
class Progress:
    """Progress on stderr (no-op when disabled): a bar on a terminal, plain lines every
    tenth of the work elsewhere (CI logs, nohup), by :class:`fuzzyemo._progress.Reporter`."""

    def __init__(self, enabled: bool, description: str, total: int):
        from fuzzyemo._progress import Reporter

        self._reporter = Reporter(description, total, enabled=enabled and total > 0)

    def __enter__(self) -> Progress:
        self._reporter.__enter__()
        return self

    def advance(self, n: int = 1) -> None:
        self._reporter.advance(n)

    def __exit__(self, *exc: Any) -> None:
        self._reporter.__exit__(*exc)


# ----------------------------------------------------------------------------- builder
@dataclass
class BuildSummary:
    """What :meth:`DatasetBuilder.build` wrote."""

    output: Path
    card: Path
    rows: int
    counts: pd.DataFrame
    issues: list[Issue]
    plot: Path | None = None
    reused_parts: int = 0


class DatasetBuilder(ABC):
    """Base of the dataset builders (one module per dataset)."""

    name: ClassVar[str]
    VERSION: ClassVar[str]
    source_dirnames: ClassVar[tuple[str, ...]]

    def __init__(self, source: str | os.PathLike | None = None, *,
                 rules: str | os.PathLike | None = None, rulebase: Any = None,
                 workers: int | None = None, strict: bool = False, progress: bool = False,
                 plot: bool = True, scheduler: str | None = None,
                 scheduler_file: str | os.PathLike | None = None):
        from fuzzyemo import RuleBase
        from fuzzyemo._rulebase import resolve_rules

        self.source = resolve_source(source, self.source_dirnames, self.name)
        self.rulebase = rulebase if rulebase is not None else RuleBase.load(rules)
        # A profile name means its directory: a calibration.yaml or landmarks/ there wins.
        self.rules_dir = None if rules is None else resolve_rules(rules)[0]
        self.workers = max(1, int(workers)) if workers else (os.cpu_count() or 1)
        # Where per-subject / per-shard tasks run: local processes, or a Dask cluster.
        from fuzzyemo._scale.pool import Where

        self.where = Where(self.workers, scheduler,
                           None if scheduler_file is None else str(scheduler_file))
        self.strict = strict
        self.progress = progress
        self.plot = plot
        self.issues = IssueLog(strict)

    # -- TFDS / HF shaped API -----------------------------------------------------
    @classmethod
    @abstractmethod
    def info(cls) -> DatasetInfo: ...

    @abstractmethod
    def check_source(self) -> None:
        """Raise :class:`SourceError` naming every expected path that is missing."""

    @abstractmethod
    def split_generators(self) -> dict[str, Any]:
        """Split name -> what generate_examples needs for that split."""

    @abstractmethod
    def build_table(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The whole dataset as one frame (sorted, every schema column) and its provenance."""

    def generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, row)`` for one split; keys are stable across builds."""
        df, _ = self._cached_table()
        part = df[df["split"] == split]
        keys = self.example_keys(part)
        yield from zip(keys, part.to_dict(orient="records"), strict=True)

    @abstractmethod
    def example_keys(self, df: pd.DataFrame) -> list[str]: ...

    def _cached_table(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        if not hasattr(self, "_table_cache"):
            self._table_cache = self.build_table()
        return self._table_cache

    # -- the fast path ------------------------------------------------------------
    def metadata(self, provenance: Mapping[str, Any], command: str) -> dict[str, Any]:
        info = self.info()
        return rulebase_metadata(
            self.rulebase,
            dataset=info.name, builder_version=info.version, license=info.license,
            homepage=info.homepage, command=command, splits=list(info.splits),
            sort_keys=list(info.sort_keys), issues=[str(i) for i in self.issues.items],
            **provenance)

    def build(self, output: str | os.PathLike, command: str | None = None) -> BuildSummary:
        out = Path(output)
        if not out.parent.exists():
            raise InputError(f"{out}: output directory {out.parent} does not exist")
        self.check_source()
        self._output = out
        df, provenance = self._cached_table()
        if len(df) == 0:
            first = f"; first problem: {self.issues.items[0]}" if self.issues.items else ""
            raise BuildError(f"{self.source}: no rows could be built, refusing to write an "
                             f"empty dataset ({len(self.issues.items)} source problem(s){first})")
        info = self.info()
        meta = self.metadata(provenance, command or self.default_command())
        counts = label_counts(df)
        plot = out.with_name(f"{out.stem}_class_balance.png")
        card = out.parent / "dataset_card.md"
        # All or nothing, the parquet last: the files are staged and renamed together at the
        # end (Ctrl-C held back meanwhile), so an interrupted or failed build leaves no
        # dataset without its card and changes nothing it had not finished.
        try:
            with commit_together():
                has_plot = self.plot and class_balance_plot(
                    counts, plot, f"{info.name}: rows per class and split")
                write_text_atomic(card, self.card(df, meta, counts,
                                                  plot.name if has_plot else None))
                write_parquet(table_from_frame(df, info.schema), out, meta)
        except InterruptedAfterWriting:
            self.cleanup()  # the build is complete: its resumable state is not needed
            raise
        self.cleanup()
        return BuildSummary(out, card, len(df), counts, list(self.issues.items),
                            plot if has_plot else None, getattr(self, "reused_parts", 0))

    def cleanup(self) -> None:
        """Remove resumable state after a successful build (default: nothing)."""
        return None

    def default_command(self) -> str:
        return f"fuzzyemo build-dataset {self.name} --source $SOURCE -o {self._output.name}"

    @abstractmethod
    def card(self, df: pd.DataFrame, meta: Mapping[str, Any], counts: pd.DataFrame,
             plot: str | None) -> str: ...

    # -- shared card pieces -------------------------------------------------------
    def card_common(self, meta: Mapping[str, Any], counts: pd.DataFrame,
                    plot: str | None) -> str:
        info = self.info()
        emotion_counts = {e: int(counts.loc[[c for c in CLASS_NAMES if c.startswith(e + "_")]]
                                 .to_numpy().sum()) for e in EMOTIONS}
        lines = [
            "## Provenance",
            "",
            f"- builder: `{info.name}` version {info.version}, fuzzyemo "
            f"{meta['fuzzyemo_version']}",
            f"- rule base sha256: `{meta['rules_sha256']}`"
            + (f" (profile `{meta['rules_profile']}`)" if meta.get("rules_profile") else ""),
            f"- lambda1 (FCIS) = {meta['lambda_fcis']}, lambda2 (FKIS) = {meta['lambda_fkis']}",
            f"- engine: {json.dumps(meta['engine'], sort_keys=True)}",
            f"- command: `{meta['command']}`",
            "- source checksums: in the parquet metadata (key `fuzzyemo`, field "
            "`source_checksums`); read them with `fuzzyemo._table.read_metadata(path)`",
            "",
            "## Counts per class and split",
            "",
            markdown_table(counts, "label"),
            "",
            "Per emotion (all intensities, all splits): "
            + ", ".join(f"{e} {n}" for e, n in emotion_counts.items()),
            "",
        ]
        if plot:
            lines += [f"![class balance]({plot})", ""]
        issues = meta.get("issues") or []
        lines += ["## Skipped or damaged source files", ""]
        if issues:
            shown = issues[:200]
            lines += [f"- `{i}`" for i in shown]
            if len(issues) > len(shown):
                lines.append(f"- ... and {len(issues) - len(shown)} more (all are in the "
                             "parquet metadata, field `issues`)")
        else:
            lines.append("None.")
        lines.append("")
        return "\n".join(lines)
