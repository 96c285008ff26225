"""Landmarks from other tools as annotate sources: OpenFace 2.0 CSV, py-feat Fex CSV and iBUG
``.pts`` files (docs/annotate.md, "From OpenFace, py-feat and .pts files").

:func:`read_landmark_table` reads one file into a :class:`LandmarkTable`: per row the
source's own frame number, face id, timestamp, confidence and success, the landmarks in the
file's scheme (detected from the point count, or forced), the pose columns and the AU
columns when the file has them. A frame whose landmarks are missing or all zero (OpenFace's
failed frames) is a row with ``success`` 0 and NaN landmarks, not an error; a malformed
file is one :class:`InputError` naming the file and the line or column.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._errors import InputError
from ._landmarks import LandmarkScheme

TABLE_SUFFIXES = (".csv", ".pts")
# The scheme of a file is detected from its number of points.
SCHEME_BY_POINTS = {68: "ibug68", 66: "disfa66", 98: "wflw98", 478: "mediapipe478"}
OPENFACE_POSE = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
FEX_POSE = ("Pitch", "Roll", "Yaw")
_X_COLUMN = re.compile(r"^x_(\d+)$")


def is_landmark_table(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in TABLE_SUFFIXES


@dataclass
class LandmarkTable:
    """One landmark file, one row per frame per face (see the module docstring)."""

    path: Path
    kind: str                  # "openface", "fex", "pts" or "csv" (x_*/y_* columns only)
    scheme: LandmarkScheme
    frame: np.ndarray          # (n,) int64, the source's own numbers
    face_id: np.ndarray        # (n,) int64
    timestamp: np.ndarray      # (n,) float64 seconds (0 when the file has none)
    confidence: np.ndarray     # (n,) float64
    success: np.ndarray        # (n,) int8
    landmarks: np.ndarray      # (n, K, 2) float64 pixels; NaN where success is 0
    extra: pd.DataFrame        # pose and AU columns carried over as the file names them

    def __len__(self) -> int:
        return len(self.frame)


def read_landmark_table(path: str | os.PathLike, scheme: str | LandmarkScheme | None = None
                        ) -> LandmarkTable:
    """Read an OpenFace / py-feat CSV or an iBUG ``.pts`` file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found" if not p.exists() else
                         f"{p}: is a directory, not a landmark file")
    if p.suffix.lower() == ".pts":
        return _read_pts(p, scheme)
    return _read_csv(p, scheme)


def _scheme_for(p: Path, n_points: int, scheme: str | LandmarkScheme | None) -> LandmarkScheme:
    if scheme is not None:
        s = LandmarkScheme.load(scheme)
        if s.n_points != n_points:
            raise InputError(f"{p}: has {n_points} points per face, but landmark scheme "
                             f"{s.name!r} has {s.n_points}")
        return s
    name = SCHEME_BY_POINTS.get(n_points)
    if name is None:
        known = ", ".join(f"{n} ({s})" for n, s in sorted(SCHEME_BY_POINTS.items()))
        raise InputError(f"{p}: {n_points} points per face: no shipped landmark scheme has "
                         f"{n_points} (known: {known}); pass --scheme NAME or a scheme file")
    return LandmarkScheme.load(name)


def _read_pts(p: Path, scheme: str | LandmarkScheme | None) -> LandmarkTable:
    """iBUG .pts: ``version: 1``, ``n_points: N``, ``{``, N lines ``x y``, ``}``; 1-based
    pixel coordinates (as menpo reads them), so 1 is subtracted."""
    try:
        lines = p.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read .pts file: {exc}") from None
    declared = None
    start = None
    for i, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("n_points:"):
            try:
                declared = int(text.split(":", 1)[1])
            except ValueError:
                raise InputError(f"{p}:{i}: n_points must be an integer, got "
                                 f"{text.split(':', 1)[1].strip()!r}") from None
        elif text == "{":
            start = i
            break
    if start is None:
        raise InputError(f"{p}: not an iBUG .pts file (no '{{' line opening the points)")
    points = []
    end = None
    for i in range(start, len(lines)):
        text = lines[i].strip()
        if text == "}":
            end = i + 1
            break
        if not text:
            continue
        parts = text.split()
        try:
            if len(parts) != 2:
                raise ValueError
            points.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise InputError(f"{p}:{i + 1}: expected two numbers 'x y', got {text!r}") from None
    if end is None:
        raise InputError(f"{p}: the points are not closed by a '}}' line")
    if declared is not None and declared != len(points):
        raise InputError(f"{p}:{end}: n_points says {declared} but the file lists "
                         f"{len(points)} points")
    s = _scheme_for(p, len(points), scheme)
    lm = np.asarray(points, dtype=float)[None] - 1.0
    ok = bool(np.isfinite(lm).all() and np.abs(lm).sum() > 0)
    if not ok:
        lm[:] = np.nan
    return LandmarkTable(p, "pts", s, np.array([1]), np.array([0]), np.array([0.0]),
                         np.array([1.0 if ok else 0.0]), np.array([int(ok)], np.int8), lm,
                         pd.DataFrame(index=range(1)))


def _read_csv(p: Path, scheme: str | LandmarkScheme | None) -> LandmarkTable:
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            header = [c.strip() for c in f.readline().rstrip("\r\n").split(",")]
    except OSError as exc:
        raise InputError(f"{p}: cannot read CSV: {exc.strerror}") from None
    seen: set[str] = set()
    for name in header:  # pandas would silently rename a second 'x_17' to 'x_17.1'
        if name in seen and name:
            raise InputError(f"{p}: column {name!r} appears more than once")
        seen.add(name)
    try:
        # OpenFace pads its header with spaces after the commas.
        df = pd.read_csv(p, skipinitialspace=True, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: cannot read CSV: {first}") from None
    df.columns = [str(c).strip() for c in df.columns]
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise InputError(f"{p}: column {dup[0]!r} appears more than once")
    xs = sorted(int(m.group(1)) for c in df.columns if (m := _X_COLUMN.match(c)))
    if not xs:
        raise InputError(f"{p}: no landmark columns x_0, x_1, ... and y_0, y_1, ... (an "
                         "OpenFace 2.0 or py-feat table has them)")
    k = xs[-1] + 1
    for i in range(k):
        for axis in ("x", "y"):
            if f"{axis}_{i}" not in df.columns:
                raise InputError(f"{p}: landmark column {axis}_{i} is missing (the file has "
                                 f"x_0 .. x_{k - 1})")
    s = _scheme_for(p, k, scheme)
    coords = []
    for axis in ("x", "y"):
        block = df[[f"{axis}_{i}" for i in range(k)]]
        values = block.apply(pd.to_numeric, errors="coerce")
        bad = values.isna() & block.notna()
        if bad.to_numpy().any():
            r, c = np.argwhere(bad.to_numpy())[0]
            raise InputError(f"{p}:{r + 2}: column {block.columns[c]}: "
                             f"{block.iat[r, c]!r} is not a number")
        coords.append(values.to_numpy(float))
    lm = np.stack(coords, axis=2)  # (n, K, 2)
    n = len(df)
    kind = ("openface" if {"success", "confidence"} <= set(df.columns)
            else "fex" if "FaceRectX" in df.columns else "csv")

    def column(name: str, default: float) -> np.ndarray:
        if name not in df.columns:
            return np.full(n, default, dtype=float)
        values = pd.to_numeric(df[name], errors="coerce")
        if values.isna().any() and df[name].notna().any():
            r = int(np.flatnonzero(values.isna() & df[name].notna())[0]) \
                if (values.isna() & df[name].notna()).any() else None
            if r is not None:
                raise InputError(f"{p}:{r + 2}: column {name}: {df[name].iat[r]!r} is not a "
                                 "number")
        return values.to_numpy(float)

    frame = column("frame", np.nan)
    if np.isnan(frame).all():
        frame = np.arange(1, n + 1, dtype=float)
    face_id = column("face_id", 0.0)
    timestamp = column("timestamp", 0.0)
    confidence = column("confidence", np.nan) if kind == "openface" else (
        column("FaceScore", 1.0) if kind == "fex" else np.ones(n))
    success = column("success", 1.0) if kind == "openface" else np.ones(n)
    # A frame the tool failed on: OpenFace writes success 0 and zeros; others leave NaN.
    failed = (success == 0) | ~np.isfinite(lm).all(axis=(1, 2)) | (np.abs(lm).sum(axis=(1, 2)) == 0)
    lm[failed] = np.nan
    success = np.where(failed, 0, 1).astype(np.int8)
    confidence = np.where(failed, 0.0, np.nan_to_num(confidence, nan=1.0))
    keep = [c for c in (*OPENFACE_POSE, *FEX_POSE) if c in df.columns]
    from ._aus import au_columns

    keep += [c for c in au_columns(df.columns).values() if c not in keep]
    extra = df[keep].apply(pd.to_numeric, errors="coerce").reset_index(drop=True)
    return LandmarkTable(p, kind, s, frame.astype(np.int64), face_id.astype(np.int64),
                         np.nan_to_num(timestamp, nan=0.0), confidence, success, lm, extra)
