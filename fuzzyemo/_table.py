"""Tables in and out: component columns by name, result columns, atomic parquet/CSV.

Output column names (shared by ``infer``, ``annotate`` and the dataset builders):

- the 12 measurements: the component names (``left_eyebrow`` ... ``right_mouth_corner``)
- crisp codes: ``<component>_code`` (nullable int; null for unknown rows)
- activations: ``activation_<emotion>``; eccentricities: ``eccentricity_<emotion>``
- the 18 scores: the class names (``happiness_low`` ... ``surprise_high``)
- ``label`` (class name, ``neutral`` or ``unknown``) and ``class_index`` (0..17, -1, -2)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._engine import InferenceResult
from ._errors import InputError, did_you_mean
from ._files import atomic_path
from ._vocab import CLASS_NAMES, COMPONENTS, EMOTIONS

CODE_COLUMNS = tuple(f"{c}_code" for c in COMPONENTS)
ACTIVATION_COLUMNS = tuple(f"activation_{e}" for e in EMOTIONS)
ECCENTRICITY_COLUMNS = tuple(f"eccentricity_{e}" for e in EMOTIONS)
SCORE_COLUMNS = CLASS_NAMES
RESULT_COLUMNS = (*CODE_COLUMNS, *ACTIVATION_COLUMNS, *ECCENTRICITY_COLUMNS, *SCORE_COLUMNS,
                  "label", "class_index")
METADATA_KEY = b"fuzzyemo"


WRITE_SUFFIXES = (".parquet", ".pq", ".csv")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or parquet table; one-line InputError on any problem (a folder, a column
    name that appears twice: pandas would rename the second copy and use the first)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory; give a .csv or .parquet file")
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
            names = [str(c) for c in df.columns]
        elif suffix in (".csv", ".txt", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            df = pd.read_csv(p, sep=sep, comment=None)
            names = _csv_header(p, sep)
        else:
            raise InputError(f"{p}: unsupported table type {suffix!r} (use .csv or .parquet)")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is the user's file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: cannot read table: {first}") from None
    _refuse_duplicate_columns(names, p)
    return df


def _csv_header(path: Path, sep: str) -> list[str]:
    """The header row as written (pandas renames a repeated name 'x' to 'x.1')."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return next(csv.reader(f, delimiter=sep), [])


def _refuse_duplicate_columns(names: list[str], path: Path) -> None:
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names, 1):
        positions.setdefault(name.strip(), []).append(i)
    for name, at in positions.items():
        if len(at) > 1:
            raise InputError(f"{path}: column {name!r} appears {len(at)} times (columns "
                             f"{', '.join(map(str, at))}); which one is meant is unclear: "
                             "rename or drop the copies")


def require_rows(df: pd.DataFrame, source: str) -> None:
    """A table with a header and no rows is a mistake (an export cut short, a wrong file)."""
    if len(df) == 0:
        raise InputError(f"{source}: the table has no rows (only a header)")


def checked_components(df: pd.DataFrame, source: str = "input"
                       ) -> tuple[np.ndarray, list[str]]:
    """:func:`component_matrix` for user input, with ``+-inf`` made missing (NaN: the row is
    ``unknown``, as a missing landmark makes it, docs/geometry.md section 6) and the
    warnings a user should see: infinite values, and values outside [-1, 1] (which the engine
    clips: measurements are calibrated to [-1, 1], 0 = neutral; raw geometry numbers or
    percentages get plausible-looking but meaningless labels)."""
    x = component_matrix(df, source)
    notes = []
    inf = np.isinf(x)
    if inf.any():
        r, c = np.argwhere(inf)[0]
        rows = int(inf.any(axis=1).sum())
        notes.append(f"{source}: {int(inf.sum())} infinite value(s) treated as missing, "
                     f"{rows} row(s) labelled unknown (first: row {r + 1}, column "
                     f"{COMPONENTS[c]})")
        x = np.where(inf, np.nan, x)
    outside = np.abs(np.nan_to_num(x)) > 1.0
    if outside.any():
        flat = int(np.argmax(np.where(outside, np.abs(np.nan_to_num(x)), -1.0)))
        r, c = divmod(flat, x.shape[1])
        notes.append(f"{source}: {int(outside.sum())} value(s) outside [-1, 1] clipped to it "
                     f"(largest: {x[r, c]:g} at row {r + 1}, column {COMPONENTS[c]}); "
                     "measurements are calibrated to [-1, 1] with 0 = neutral, so raw or "
                     "uncalibrated numbers give meaningless labels (docs/geometry.md)")
    return x, notes


def component_matrix(df: pd.DataFrame, source: str = "input") -> np.ndarray:
    """The (n, 12) measurement matrix from a table's component columns, by name.

    Non-numeric cells become NaN (those rows are then ``unknown``, per SPEC).
    """
    missing = [c for c in COMPONENTS if c not in df.columns]
    if missing:
        hint = did_you_mean(missing[0], [str(c) for c in df.columns if c not in COMPONENTS])
        extra = f" ({hint.replace('did you mean', 'for ' + repr(missing[0]) + ', did you mean')})" \
            if hint and hint.startswith("did") else ""
        raise InputError(f"{source}: missing component column(s) {', '.join(missing)}{extra}")
    cols = []
    for c in COMPONENTS:
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col):
            converted = pd.to_numeric(col, errors="coerce")
            bad = col[converted.isna() & col.notna()]
            if len(bad):
                row = bad.index[0]
                raise InputError(f"{source}: column {c!r} has a non-numeric value "
                                 f"{bad.iloc[0]!r} at row {row + 1}")
            col = converted
        cols.append(col.to_numpy(dtype=float))
    return np.column_stack(cols) if cols else np.empty((len(df), 0))


def results_frame(res: InferenceResult) -> pd.DataFrame:
    """The inference outputs as named columns (see module docstring)."""
    data: dict[str, Any] = {}
    unknown = res.class_index == -2
    for j, name in enumerate(CODE_COLUMNS):
        data[name] = pd.array(np.where(unknown, 0, res.codes[:, j]), dtype="Int8")
        data[name][unknown] = pd.NA
    for block, names in ((res.activations, ACTIVATION_COLUMNS),
                         (res.eccentricity, ECCENTRICITY_COLUMNS),
                         (res.scores, SCORE_COLUMNS)):
        for j, name in enumerate(names):
            data[name] = block[:, j]
    data["label"] = res.labels.astype(str)
    data["class_index"] = res.class_index.astype(np.int16)
    return pd.DataFrame(data)


def rulebase_metadata(rulebase, **extra: Any) -> dict[str, Any]:
    """Provenance recorded in every output file's metadata."""
    from ._version import __version__

    profile = getattr(rulebase, "profile", None)
    return {
        "fuzzyemo_version": __version__,
        "rules_sha256": rulebase.sha256,
        # The shipped profile's name when one was used (SPEC "Rule profiles"), else absent.
        **({"rules_profile": profile} if profile else {}),
        "engine": dict(rulebase.options.__dict__),
        "lambda_fcis": rulebase.lambda_fcis,
        "lambda_fkis": rulebase.lambda_fkis,
        **extra,
    }


def write_table(df: pd.DataFrame, path: str | os.PathLike,
                metadata: Mapping[str, Any] | None = None) -> Path:
    """Write parquet (default) or CSV (by suffix) atomically: temp file, then rename.

    Parquet output is deterministic for the same frame and metadata; the metadata is
    stored as JSON under the schema key ``fuzzyemo`` (CSV has no place for it).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(path)
    if out.suffix.lower() not in WRITE_SUFFIXES:
        raise InputError(f"{out}: unsupported table type {out.suffix or '(none)'!r} "
                         "(use .parquet or .csv)")
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".csv":
            _short_floats(df).to_csv(tmp, index=False)
        else:
            table = pa.Table.from_pandas(df, preserve_index=False)
            meta = dict(table.schema.metadata or {})
            meta[METADATA_KEY] = json.dumps(dict(metadata or {}), sort_keys=True).encode()
            table = table.replace_schema_metadata(meta)
            # An open file, closed on the way out: a failed write (full disk) leaves no
            # handle open on the temp file (the traceback would keep pyarrow's writer alive).
            with pa.OSFile(tmp, "wb") as sink:
                pq.write_table(table, sink, compression="zstd")
    return out


def _short_floats(df: pd.DataFrame) -> pd.DataFrame:
    """For CSV: a float64 column whose every value is exactly a float32 (results computed in
    single precision, float32 inputs widened) is written as float32, whose shortest text is
    the number meant: 0.9, not 0.8999999761581421. Reading it back gives the same float32.
    Real float64 data is never exactly float32 throughout and keeps all its digits."""
    if df.columns.duplicated().any():
        return df
    narrowed = {}
    for name in df.columns:
        col = df[name]
        if col.dtype != np.float64:
            continue
        v = col.to_numpy()
        with np.errstate(over="ignore"):
            as32 = v.astype(np.float32)
        same = (as32.astype(np.float64) == v) | np.isnan(v)
        if same.all():
            narrowed[name] = as32
    if not narrowed:
        return df
    out = df.copy(deep=False)
    for name, values in narrowed.items():
        out[name] = values
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The fuzzyemo metadata of a parquet file written by :func:`write_table`."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}
