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


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or parquet table; one-line InputError on any problem."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", comment=None)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the user's file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: cannot read table: {first}") from None
    raise InputError(f"{p}: unsupported table type {suffix!r} (use .csv or .parquet)")


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
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".csv":
            df.to_csv(tmp, index=False)
        else:
            table = pa.Table.from_pandas(df, preserve_index=False)
            meta = dict(table.schema.metadata or {})
            meta[METADATA_KEY] = json.dumps(dict(metadata or {}), sort_keys=True).encode()
            table = table.replace_schema_metadata(meta)
            pq.write_table(table, tmp, compression="zstd")
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The fuzzyemo metadata of a parquet file written by :func:`write_table`."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}
