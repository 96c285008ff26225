"""Landmark schemes as data: which landmark index is which anatomical point.

A scheme is a YAML file (``rules/landmarks/<name>.yaml``)::

    format: fuzzyemo-landmarks/1
    description: iBUG 300-W 68-point markup
    n_points: 68
    points:                      # named point -> index, or a list of indices (averaged)
      right_eye_outer: 36
      right_eye_top: [37, 38]
      ...
    template:                    # optional: a neutral face, one [x, y] per landmark
      - [-1.13, 0.03]            # 0
      ...

Point names come from a fixed vocabulary (:data:`POINTS`) so that the geometry can rely on
them; "left"/"right" are always the SUBJECT's own. Adding a scheme means adding a file: no
code. Every problem in a file is reported as ``path:line:col: message``, all at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError, Problem, RuleBaseError, did_you_mean
from ._yaml import Positions, load_yaml, position, top_level_problem

FORMAT = "fuzzyemo-landmarks/1"

# The vocabulary of named points: name -> what it is. "left"/"right" = the subject's own.
POINTS: dict[str, str] = {
    "left_brow_inner": "inner (medial) end of the subject's left eyebrow",
    "left_brow_centre": "middle of the left eyebrow",
    "left_brow_outer": "outer (lateral) end of the left eyebrow",
    "right_brow_inner": "inner end of the subject's right eyebrow",
    "right_brow_centre": "middle of the right eyebrow",
    "right_brow_outer": "outer end of the right eyebrow",
    "left_eye_inner": "inner corner (endocanthion) of the subject's left eye",
    "left_eye_outer": "outer corner (exocanthion) of the left eye",
    "left_eye_top": "upper lid margin of the left eye, at its middle",
    "left_eye_bottom": "lower lid margin of the left eye, at its middle",
    "left_pupil": "centre of the left pupil / iris",
    "right_eye_inner": "inner corner of the subject's right eye",
    "right_eye_outer": "outer corner of the right eye",
    "right_eye_top": "upper lid margin of the right eye, at its middle",
    "right_eye_bottom": "lower lid margin of the right eye, at its middle",
    "right_pupil": "centre of the right pupil / iris",
    "forehead": "top of the forehead on the midline",
    "nose_bridge_top": "top of the nasal bridge, between the eyes (sellion)",
    "nose_tip": "tip of the nose (pronasale)",
    "left_ala": "outer-lower edge of the subject's left nostril wing (alar base)",
    "right_ala": "outer-lower edge of the right nostril wing",
    "subnasale": "where the columella meets the upper lip",
    "upper_lip_top": "upper border of the upper lip (outer contour) at the midline",
    "upper_lip_bottom": "lower border of the upper lip (inner contour) at the midline",
    "lower_lip_top": "upper border of the lower lip (inner contour) at the midline",
    "lower_lip_bottom": "lower border of the lower lip (outer contour) at the midline",
    "left_mouth_corner": "the subject's left mouth corner (outer lip contour, cheilion)",
    "right_mouth_corner": "the subject's right mouth corner",
    "left_mouth_inner_corner": "left corner of the inner lip contour",
    "right_mouth_inner_corner": "right corner of the inner lip contour",
    "chin": "lowest point of the chin on the midline (menton)",
}

# The points the geometry needs; every scheme must name them.
REQUIRED: tuple[str, ...] = (
    "left_brow_inner", "left_brow_centre", "left_brow_outer",
    "right_brow_inner", "right_brow_centre", "right_brow_outer",
    "left_eye_inner", "left_eye_outer", "left_eye_top", "left_eye_bottom",
    "right_eye_inner", "right_eye_outer", "right_eye_top", "right_eye_bottom",
    "nose_bridge_top", "nose_tip", "left_ala", "right_ala", "subnasale",
    "upper_lip_top", "upper_lip_bottom", "lower_lip_top", "lower_lip_bottom",
    "left_mouth_corner", "right_mouth_corner", "chin",
)

_TOP_KEYS = ("format", "description", "source", "n_points", "points", "template", "population")


def shipped_landmarks_dir() -> Path:
    """The shipped schemes: the checkout's rules/landmarks, else the wheel's copy."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "rules" / "landmarks").is_dir():
        return root / "rules" / "landmarks"
    return Path(str(resources.files("fuzzyemo") / "_rules" / "landmarks"))


def _search_dirs(rules: str | os.PathLike | None) -> list[Path]:
    """Where scheme names are looked up: ``rules/landmarks`` first, then the shipped ones."""
    dirs: list[Path] = []
    if rules is not None:
        dirs.append(Path(rules) / "landmarks")
    env = os.environ.get("FUZZYEMO_RULES")
    if env:
        dirs.append(Path(env) / "landmarks")
    dirs.append(shipped_landmarks_dir())
    return dirs


@dataclass(frozen=True, eq=False)
class LandmarkScheme:
    """A landmark layout: ``points`` maps each named anatomical point to indices (averaged).

    Build it with :meth:`load`; :meth:`named` turns ``(n, K, 2|3)`` landmark arrays into
    named ``(n, 2)`` points, vectorised over frames.
    """

    name: str
    n_points: int
    points: dict[str, tuple[int, ...]]
    template: np.ndarray | None = None  # (n_points, 2) neutral face, or None
    description: str = ""
    path: str = ""
    # Raw features of a neutral face overriding the template's in Baseline.population.
    population: dict[str, float] = field(default_factory=dict)
    # Gather tables for named(): indices padded to a common width with a member index
    # (weight 0), so one fancy-index + weighted sum does every point of every frame.
    _gather: np.ndarray = field(init=False, repr=False)
    _weights: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = list(self.points)
        width = max((len(v) for v in self.points.values()), default=1)
        gather = np.zeros((len(names), width), dtype=np.intp)
        weights = np.zeros((len(names), width))
        for i, name in enumerate(names):
            idx = self.points[name]
            gather[i, :] = idx[0]
            gather[i, : len(idx)] = idx
            weights[i, : len(idx)] = 1.0 / len(idx)
        object.__setattr__(self, "_gather", gather)
        object.__setattr__(self, "_weights", weights)

    # -- construction ------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | os.PathLike | LandmarkScheme,
             rules: str | os.PathLike | None = None) -> LandmarkScheme:
        """Load a scheme by shipped name (``"ibug68"``) or from a YAML file path.

        Names are looked up in ``<rules>/landmarks/`` (when ``rules`` is given), then in
        ``$FUZZYEMO_RULES/landmarks/``, then among the shipped schemes. A scheme object is
        returned as is. Loads are cached (and re-read when the file changes).
        """
        if isinstance(name_or_path, LandmarkScheme):
            return name_or_path
        text = os.fspath(name_or_path)
        p = Path(text)
        looks_like_path = p.suffix in (".yaml", ".yml") or os.sep in text or "/" in text
        if looks_like_path or p.is_file():
            return _load_cached(str(p.resolve()) if p.exists() else text, *_stamp(p))
        for d in _search_dirs(rules):
            f = d / f"{text}.yaml"
            if f.is_file():
                return _load_cached(str(f.resolve()), *_stamp(f))
        known = cls.available(rules)
        hint = did_you_mean(text, known)
        raise InputError(f"unknown landmark scheme {text!r}"
                         + (f" ({hint})" if hint else "")
                         + "; give a shipped name or a path to a scheme .yaml file")

    @staticmethod
    def available(rules: str | os.PathLike | None = None) -> tuple[str, ...]:
        """Names of the schemes that :meth:`load` finds by name (shipped ones included)."""
        names: set[str] = set()
        for d in _search_dirs(rules):
            if d.is_dir():
                names.update(f.stem for f in d.glob("*.yaml"))
        return tuple(sorted(names))

    # -- use ---------------------------------------------------------------------
    def named(self, landmarks: Any) -> dict[str, np.ndarray]:
        """Named points from landmarks ``(n, K, 2|3)`` (or one frame ``(K, 2|3)``).

        Returns ``{name: (n, 2) array}`` in the scheme's point order; z is dropped. Points
        that are averages of several landmarks are NaN when any of those is not finite,
        so missing landmarks propagate as NaN and never raise.
        """
        arr = np.asarray(landmarks, dtype=float)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[2] not in (2, 3):
            raise InputError(f"landmarks must have shape (frames, {self.n_points}, 2 or 3), "
                             f"got {tuple(np.shape(landmarks))}")
        if arr.shape[1] != self.n_points:
            raise InputError(f"landmark scheme {self.name!r} expects {self.n_points} points "
                             f"per frame, got {arr.shape[1]}")
        xy = arr[:, :, :2]
        xy = np.where(np.isfinite(xy), xy, np.nan)  # inf is as missing as NaN
        # (n, points, width, 2) * (points, width, 1) summed over width.
        out = np.einsum("npwc,pw->npc", xy[:, self._gather, :], self._weights)
        # einsum turns 0-weight pads into 0*x, which is NaN only if x is (and then a real
        # member is too): NaN propagation stays exact.
        return {name: out[:, i, :] for i, name in enumerate(self.points)}

    def template_landmarks(self) -> np.ndarray:
        """The neutral template face as ``(1, n_points, 2)``; InputError if there is none."""
        if self.template is None:
            raise InputError(f"landmark scheme {self.name!r} has no neutral 'template' "
                             f"({self.path}); give a baseline explicitly")
        return self.template[None].copy()

    def __repr__(self) -> str:
        return f"LandmarkScheme({self.name!r}, n_points={self.n_points}, points={len(self.points)})"


# ----------------------------------------------------------------------------- loading
def _stamp(p: Path) -> tuple[int, int]:
    """(mtime_ns, size) so edits to a scheme file invalidate the cache."""
    try:
        st = p.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return 0, 0


@lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int, size: int) -> LandmarkScheme:
    return _load_file(Path(path))


class _Problems:
    """Collects problems for one file, resolving value paths to line:col."""

    def __init__(self, shown: str, positions: Positions):
        self.shown, self.positions, self.items = shown, positions, []

    def add(self, loc: tuple, message: str, hint: str | None = None) -> None:
        line, col = position(self.positions, loc)
        self.items.append(Problem(self.shown, line, col, message, hint))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _load_file(path: Path) -> LandmarkScheme:
    shown = str(path)
    data, positions = load_yaml(path, shown)
    pr = _Problems(shown, positions)
    if not isinstance(data, Mapping):
        pr.add((), top_level_problem(data))
        raise RuleBaseError(pr.items)
    for key in data:
        if key not in _TOP_KEYS:
            pr.add((key,), f"unknown key {key!r}", did_you_mean(str(key), _TOP_KEYS))
    if data.get("format") != FORMAT:
        pr.add(("format",) if "format" in data else (),
               f"format must be {FORMAT!r}, got {data.get('format')!r}")
    n_points = data.get("n_points")
    if not _is_int(n_points) or n_points < 1:
        pr.add(("n_points",) if "n_points" in data else (),
               f"n_points must be a positive integer, got {n_points!r}")
        n_points = None
    for key in ("description", "source"):
        if not isinstance(data.get(key, ""), str):
            pr.add((key,), f"{key} must be text")
    description = str(data.get("description", ""))

    points: dict[str, tuple[int, ...]] = {}
    raw_points = data.get("points")
    if not isinstance(raw_points, Mapping):
        pr.add(("points",) if "points" in data else (),
               "points must be a mapping of point name -> index or list of indices")
        raw_points = {}
    for name, value in raw_points.items():
        loc = ("points", name)
        if name not in POINTS:
            pr.add(loc, f"unknown point name {name!r}",
                   did_you_mean(str(name), POINTS) or "see docs/geometry.md for the names")
            continue
        items = value if isinstance(value, list) else [value]
        if not items:
            pr.add(loc, f"point {name!r} has an empty index list")
            continue
        idx: list[int] = []
        for j, v in enumerate(items):
            vloc = (*loc, j) if isinstance(value, list) else loc
            if not _is_int(v):
                pr.add(vloc, f"point {name!r}: index must be an integer, got {v!r}")
            elif n_points is not None and not 0 <= v < n_points:
                pr.add(vloc, f"point {name!r}: index {v} is out of range for n_points = "
                             f"{n_points} (valid: 0..{n_points - 1})")
            elif v in idx:
                pr.add(vloc, f"point {name!r}: index {v} is listed twice")
            else:
                idx.append(v)
        if len(idx) == len(items):
            points[name] = tuple(idx)
    if isinstance(data.get("points"), Mapping):
        missing = [n for n in REQUIRED if n not in raw_points]
        if missing:
            pr.add(("points",), "missing required point(s): " + ", ".join(missing),
                   "the geometry needs every one of them")

    template = None
    if "template" in data and data["template"] is not None:
        template = _parse_template(data["template"], n_points, pr)
    population = _parse_population(data.get("population"), pr)
    if pr.items:
        raise RuleBaseError(pr.items)
    assert n_points is not None
    return LandmarkScheme(name=path.stem, n_points=n_points, points=points, template=template,
                          description=description, path=shown, population=population)


def _parse_population(block: Any, pr: _Problems) -> dict[str, float]:
    if block is None:
        return {}
    from ._geometry import RAW_FEATURES  # deferred: _geometry imports this module

    if not isinstance(block, Mapping):
        pr.add(("population",), "population must be a mapping of raw feature -> neutral value")
        return {}
    out: dict[str, float] = {}
    for key, value in block.items():
        if key not in RAW_FEATURES:
            pr.add(("population", key), f"unknown raw feature {key!r}",
                   did_you_mean(str(key), RAW_FEATURES))
        elif not _is_num(value):
            pr.add(("population", key), f"population {key}: expected a number, got {value!r}")
        else:
            out[key] = float(value)
    return out


def _parse_template(rows: Any, n_points: int | None, pr: _Problems) -> np.ndarray | None:
    if not isinstance(rows, list):
        pr.add(("template",), "template must be a list of [x, y] rows, one per landmark")
        return None
    if n_points is not None and len(rows) != n_points:
        pr.add(("template",), f"template has {len(rows)} rows but n_points = {n_points}")
        return None
    out = np.full((len(rows), 2), np.nan)
    ok = True
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) in (2, 3) and all(_is_num(v) for v in row)):
            pr.add(("template", i), f"template row {i} must be [x, y] (or [x, y, z]) numbers")
            ok = False
            continue
        out[i] = row[:2]
    return out if ok else None
