"""Action-unit intensities as a measurement source: ``rules/aus.yaml`` maps FACS AU
intensities (OpenFace's ``AU01_r``, py-feat's ``AU01``, DISFA's labels) onto the 12 component
measurements (docs/geometry.md, "AU intensities as a measurement source").

:class:`AuMapping` is the validated file; :func:`au_columns` finds and normalises the AU
columns of a table; :meth:`AuMapping.measure` turns them into ``(n, 12)`` measurements.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError, Problem, RuleBaseError
from ._vocab import COMPONENTS
from ._yaml import component_entries, components_section, known_keys, load_yaml, position

FORMAT = "fuzzyemo-aus/1"
# FACS action units (Ekman, Friesen & Hager 2002): the numbers a mapping may name.
KNOWN_AUS = frozenset(range(1, 47)) | {51, 52, 53, 54, 55, 56, 57, 58, 61, 62, 63, 64}
_AU_COLUMN = re.compile(r"^\s*AU[_ ]?0*(\d+)(_r)?\s*$", re.IGNORECASE)


def au_name(number: int) -> str:
    return f"AU{number:02d}"


@dataclass(frozen=True)
class AuReading:
    """One component's AU reading: weighted AU sums for its +1 and -1 terms, read at ``full``."""

    plus: tuple[tuple[str, float], ...]
    minus: tuple[tuple[str, float], ...]
    full_plus: float
    full_minus: float


@dataclass(frozen=True, eq=False)
class AuMapping:
    """The 12 components' AU readings, in SPEC order (a component may have none)."""

    readings: tuple[AuReading | None, ...]
    path: str = ""

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> AuMapping:
        """Load ``aus.yaml``: a file, a rule directory holding one, or None for the shipped one."""
        p = Path(path) if path is not None else shipped_aus_path()
        if p.is_dir():
            p = p / "aus.yaml" if (p / "aus.yaml").is_file() else shipped_aus_path()
        try:
            st = p.stat()
        except OSError:
            raise InputError(f"{p}: AU mapping file not found") from None
        return _load(str(p.resolve()), st.st_mtime_ns, st.st_size)

    @property
    def aus(self) -> tuple[str, ...]:
        """Every AU the mapping reads, sorted."""
        names = {a for r in self.readings if r for a, _ in (*r.plus, *r.minus)}
        return tuple(sorted(names))

    def measure(self, aus: Mapping[str, Any], n: int) -> np.ndarray:
        """``(n, 12)`` measurements from AU intensities on a 0-1 scale (``{AUxx: (n,)}``).

        An AU the table lacks counts as 0; a NaN intensity makes the components it feeds NaN
        (an ``unknown`` row when the engine sees it).
        """
        x = np.zeros((n, len(COMPONENTS)))
        for i, reading in enumerate(self.readings):
            if reading is None:
                continue
            sides = []
            for terms, full in ((reading.plus, reading.full_plus),
                                (reading.minus, reading.full_minus)):
                e = np.zeros(n)
                for au, w in terms:
                    if au in aus:
                        e = e + w * np.asarray(aus[au], dtype=float)
                sides.append(np.clip(e / full, 0.0, 1.0))
            x[:, i] = sides[0] - sides[1]
        return x

    def unread(self, available: set[str]) -> list[str]:
        """Components none of whose AUs is in ``available`` (they will read 0)."""
        out = []
        for c, reading in zip(COMPONENTS, self.readings, strict=True):
            names = {a for a, _ in (*reading.plus, *reading.minus)} if reading else set()
            if not names & available:
                out.append(c)
        return out


def shipped_aus_path() -> Path:
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "rules" / "aus.yaml").is_file():
        return root / "rules" / "aus.yaml"
    return Path(str(resources.files("fuzzyemo") / "_rules" / "aus.yaml"))


def au_columns(columns: Any) -> dict[str, str]:
    """``{normalised AU name: column}`` for a table's AU intensity columns.

    ``AU01_r`` (OpenFace intensity), ``AU01`` / ``AU1`` (py-feat, DISFA) count; OpenFace's
    presence columns ``AU01_c`` do not. When a table has both ``AU12`` and ``AU12_r`` the
    intensity (``_r``) wins.
    """
    out: dict[str, str] = {}
    for col in columns:
        m = _AU_COLUMN.match(str(col))
        if not m:
            continue
        name = au_name(int(m.group(1)))
        if name not in out or m.group(2):
            out[name] = str(col)
    return out


def au_scale(values: np.ndarray, columns: list[str]) -> float:
    """The divisor that brings a table's AU intensities to 0-1: 5 for OpenFace's ``_r``
    columns and for any table whose largest intensity exceeds 1 (DISFA's 0-5), else 1."""
    if any(c.lower().endswith("_r") for c in columns):
        return 5.0
    finite = values[np.isfinite(values)]
    return 5.0 if finite.size and finite.max() > 1.0 else 1.0


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> AuMapping:
    data, positions = load_yaml(Path(path), path)
    problems: list[Problem] = []

    def add(loc: tuple, message: str, hint: str | None = None) -> None:
        line, col = position(positions, loc)
        problems.append(Problem(path, line, col, message, hint))

    comps = components_section(data, add, (FORMAT,), "{plus, minus, full}")
    if comps is None:
        raise RuleBaseError(problems)
    readings: dict[str, AuReading] = {}
    for name, loc, spec in component_entries(comps, add, "plus, minus and full"):
        known_keys(spec, loc, ("plus", "minus", "full"), name, add)
        sides: list[tuple[tuple[str, float], ...]] = []
        for side in ("plus", "minus"):
            terms = spec.get(side) or {}
            if not isinstance(terms, Mapping):
                add((*loc, side), f"{name}.{side}: expected a mapping of AU -> weight")
                sides.append(())
                continue
            parsed = []
            for au, w in terms.items():
                m = _AU_COLUMN.match(str(au))
                if not m or int(m.group(1)) not in KNOWN_AUS:
                    add((*loc, side, au), f"{name}.{side}: {au!r} is not a FACS action unit",
                        "write AU01, AU12, ...")
                elif isinstance(w, bool) or not isinstance(w, (int, float)) or not (
                        math.isfinite(w) and w > 0):
                    add((*loc, side, au), f"{name}.{side}.{au}: weight must be a positive "
                        f"number, got {w!r}")
                else:
                    parsed.append((au_name(int(m.group(1))), float(w)))
            sides.append(tuple(parsed))
        full = spec.get("full", [0.6, 0.6])
        pair = list(full) if isinstance(full, (list, tuple)) else [full, full]
        if len(pair) != 2 or not all(not isinstance(v, bool) and isinstance(v, (int, float))
                                     and math.isfinite(v) and v > 0 for v in pair):
            add((*loc, "full"), f"{name}.full: expected a positive number or [plus, minus] "
                f"of them, got {full!r}")
            continue
        if not (sides[0] or sides[1]):
            add(loc, f"{name}: name at least one AU under plus or minus")
            continue
        readings[name] = AuReading(sides[0], sides[1], float(pair[0]), float(pair[1]))
    if problems:
        raise RuleBaseError(problems)
    return AuMapping(tuple(readings.get(c) for c in COMPONENTS), path)


def measure_aus(table: Any, mapping: AuMapping | str | os.PathLike | None = None,
                scale: float | None = None, *, source: str = "table"
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """``(n, 12)`` component measurements from a DataFrame's AU intensity columns.

    ``scale`` divides the intensities to 0-1 (default :func:`au_scale`: 5 for OpenFace's
    ``_r`` columns and 0-5 tables, else 1). Returns the measurements and what was read:
    ``{"columns": {AU: column}, "scale": ..., "unread": [components no AU of which the
    table has]}``. A table without AU columns is an InputError naming ``source``.
    """
    import pandas as pd

    m = mapping if isinstance(mapping, AuMapping) else AuMapping.load(mapping)
    cols = au_columns(table.columns)
    if not cols:
        raise InputError(f"{source}: no AU intensity columns (AU01_r, AU01 or AU1 ...; "
                         "OpenFace's AU01_c presence columns are not intensities)")
    values = table[list(cols.values())].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = np.isnan(values) & table[list(cols.values())].notna().to_numpy()
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"{source}: row {r + 1}, column {list(cols.values())[c]}: "
                         f"{table[list(cols.values())[c]].iat[r]!r} is not a number")
    if scale is None:
        scale = au_scale(values, list(cols.values()))
    elif not (isinstance(scale, (int, float)) and scale > 0):
        raise InputError(f"AU scale must be a positive number, got {scale!r}")
    aus = {name: values[:, j] / scale for j, name in enumerate(cols)}
    x = m.measure(aus, len(table))
    return x, {"columns": cols, "scale": float(scale),
               "unread": m.unread(set(cols) & set(m.aus)), "mapping": m.path}

