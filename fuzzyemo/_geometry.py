"""From landmarks to the 12 component measurements of SPEC section 1.

Three steps, each documented in docs/geometry.md:

1. :func:`raw_features`: one raw measurement per component (``RAW_FEATURES``), in a face
   frame that removes roll, translation and scale: origin between the two eye centres, x
   along the eye-centre line towards the subject's left eye, y perpendicular to it pointing
   up the face (away from the mouth), unit = inter-ocular distance (IOD, eye centre to eye
   centre, each eye centre the midpoint of its two corners).
2. A :class:`Baseline`: the raw features of this person's neutral face.
3. A :class:`Calibration` (``rules/calibration.yaml``): per component, the raw change from
   the baseline that reads as x = +1 and as x = -1; x is clipped to [-1, 1].

:func:`measure` composes them. The geometry knows nothing of emotions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError, Problem, RuleBaseError, did_you_mean
from ._files import write_text_atomic
from ._landmarks import LandmarkScheme
from ._mediapipe import BLENDSHAPE_NAMES as _BLENDSHAPES
from ._vocab import COMPONENTS
from ._yaml import component_entries, components_section, known_keys, load_yaml, position

# One raw feature per component, in SPEC order (names are what calibration.yaml refers to).
RAW_FEATURES: tuple[str, ...] = (
    "left_brow_height",      # left_eyebrow: mean height of the 3 brow points above the eye line
    "right_brow_height",     # right_eyebrow
    "glabella_opening",      # brow_crest: inner-brow distance + mean inner-brow height
    "left_eye_opening",      # left_eye: lid gap / eye width
    "right_eye_opening",     # right_eye
    "nose_length",           # nose: eye line down to the alar base
    "ala_width",             # nostril: distance between the alae
    "mouth_height",          # mouth: outer upper-lip top to outer lower-lip bottom
    "upper_lip_thickness",   # upper_lip: outer to inner upper-lip contour
    "lower_lip_thickness",   # lower_lip: inner to outer lower-lip contour
    "left_corner_height",    # left_mouth_corner: corner height above the inner-lip midpoint
    "right_corner_height",   # right_mouth_corner
)
N_FEATURES = len(RAW_FEATURES)
_N_BLENDSHAPES = len(_BLENDSHAPES)
assert len(COMPONENTS) == N_FEATURES

CALIBRATION_FORMAT = "fuzzyemo-calibration/2"
CALIBRATION_FORMAT_1 = "fuzzyemo-calibration/1"  # geometry only; still read
BASELINE_FORMAT = "fuzzyemo-baseline/1"
# Self-calibration with blendshapes (Baseline.self_calibrate): a frame whose largest
# blendshape reading is at most this is "without expression"; a video needs this many such
# frames (and 2% of its frames) to have a neutral stretch.
NEUTRAL_MAX_ACTIVITY = 0.2
NEUTRAL_MIN_FRAMES = 5


class NoNeutralFrames(InputError):
    """Self-calibration found no stretch of frames without expression."""


# ----------------------------------------------------------------------------- geometry
def _as_named(named: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in named.items():
        a = np.asarray(v, dtype=float)
        out[k] = a[None] if a.ndim == 1 else a
    return out


def align(named: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Named points in the face frame: roll-aligned, centred, in units of the IOD.

    x points towards the subject's left eye, y points up the face; both eye centres land
    on (-0.5, 0) and (0.5, 0). Works for image coordinates (y down) and for y-up data: the
    "up" direction is taken as the side of the eye line away from the mouth. Frames whose
    eye points are missing (or coincide) give NaN everywhere.
    """
    pts = _as_named(named)
    for need in ("left_eye_inner", "left_eye_outer", "right_eye_inner", "right_eye_outer",
                 "left_mouth_corner", "right_mouth_corner"):
        if need not in pts:
            raise InputError(f"named points lack {need!r}; build them with LandmarkScheme.named")
    rc = (pts["right_eye_inner"] + pts["right_eye_outer"]) / 2
    lc = (pts["left_eye_inner"] + pts["left_eye_outer"]) / 2
    origin = (rc + lc) / 2
    ex = lc - rc
    iod = np.hypot(ex[:, 0], ex[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        iod = np.where(iod > 0, iod, np.nan)
        u = ex / iod[:, None]
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # u turned by +90 degrees
    # Make v point away from the mouth, so "up" means up the face whatever the y convention.
    # Where the mouth corners are missing, the nose (tip, then subnasale) stands in; with
    # neither, assume image coordinates (y down), so the rest of the face is still measured.
    below = (pts["left_mouth_corner"] + pts["right_mouth_corner"]) / 2
    for stand_in in ("nose_tip", "subnasale"):
        if stand_in in pts:
            below = np.where(np.isfinite(below), below, pts[stand_in])
    side = np.sign(np.einsum("nc,nc->n", origin - below, v))
    side = np.where(np.isfinite(side), side, np.sign(-v[:, 1]))
    v = v * np.where(side == 0, 1.0, side)[:, None]
    out = {}
    for name, p in pts.items():
        d = p - origin
        out[name] = np.stack([np.einsum("nc,nc->n", d, u), np.einsum("nc,nc->n", d, v)],
                             axis=1) / iod[:, None]
    return out


def raw_features(named: Mapping[str, Any]) -> np.ndarray:
    """The 12 raw measurements ``(n, 12)`` in ``RAW_FEATURES`` order (units: IOD or ratios).

    ``named`` is :meth:`LandmarkScheme.named`'s output. A feature is NaN when a point it
    depends on (or the eye points that define the face frame) is missing.
    """
    a = align(named)

    def y(name: str) -> np.ndarray:
        return a[name][:, 1]

    def dist(p: str, q: str) -> np.ndarray:
        d = a[p] - a[q]
        return np.hypot(d[:, 0], d[:, 1])

    try:
        brow_l = (y("left_brow_inner") + y("left_brow_centre") + y("left_brow_outer")) / 3
        brow_r = (y("right_brow_inner") + y("right_brow_centre") + y("right_brow_outer")) / 3
        # Eye centres lie on y = 0 in the face frame, so heights above the eye line are y.
        glabella = dist("left_brow_inner", "right_brow_inner") \
            + (y("left_brow_inner") + y("right_brow_inner")) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            eye_l = (y("left_eye_top") - y("left_eye_bottom")) / dist("left_eye_outer",
                                                                     "left_eye_inner")
            eye_r = (y("right_eye_top") - y("right_eye_bottom")) / dist("right_eye_outer",
                                                                       "right_eye_inner")
        nose = -(y("left_ala") + y("right_ala")) / 2
        ala = dist("left_ala", "right_ala")
        mouth = y("upper_lip_top") - y("lower_lip_bottom")
        upper = y("upper_lip_top") - y("upper_lip_bottom")
        lower = y("lower_lip_top") - y("lower_lip_bottom")
        centre = (y("upper_lip_bottom") + y("lower_lip_top")) / 2
        corner_l = y("left_mouth_corner") - centre
        corner_r = y("right_mouth_corner") - centre
    except KeyError as exc:
        raise InputError(f"named points lack {exc.args[0]!r}; "
                         "build them with LandmarkScheme.named") from None
    return np.stack([brow_l, brow_r, glabella, eye_l, eye_r, nose, ala, mouth, upper, lower,
                     corner_l, corner_r], axis=1)


# ----------------------------------------------------------------------------- calibration
def shipped_calibration_path() -> Path:
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "rules" / "calibration.yaml").is_file():
        return root / "rules" / "calibration.yaml"
    return Path(str(resources.files("fuzzyemo") / "_rules" / "calibration.yaml"))


@dataclass(frozen=True)
class BlendshapeEvidence:
    """How one component reads MediaPipe's blendshapes (a person-independent source).

    Evidence for the +1 term is ``sum(w * blendshape)`` over ``plus``, for the -1 term over
    ``minus``. Relative to a neutral face: ``d+ = max(e+ - n+, 0) / full_plus`` and
    ``d- = max(e- - n-, 0) / full_minus``, and the component reads ``x_b = d+ - d-``.
    ``neutral`` (n+, n-) is the population's neutral evidence; ``spread`` is how far
    neutral strangers' evidence goes above it, which is not read as an expression when the
    neutral face is the population's (a dead zone), only when it is the person's own.
    """

    plus: tuple[tuple[int, float], ...]
    minus: tuple[tuple[int, float], ...]
    full_plus: float
    full_minus: float
    neutral: tuple[float, float] = (0.0, 0.0)
    spread: tuple[float, float] = (0.0, 0.0)
    weight: float = 0.5


@dataclass(frozen=True)
class ComponentCalibration:
    """How one component's x is read from a raw feature (and, on MediaPipe, blendshapes).

    Geometry: ``d = sign * (raw[feature] - neutral[feature])``; when the neutral face is the
    population's, ``d`` shrinks towards 0 by ``spread`` (the ordinary difference between
    neutral strangers); ``x_g = d / plus`` if d >= 0 else ``d / minus``. So a raw change of
    ``sign * plus`` reads as x = +1 and ``-sign * minus`` as x = -1. With ``blendshapes``,
    the MediaPipe path reads ``x = (1 - weight) * x_g + weight * x_b``; x is clipped to
    [-1, 1].
    """

    component: str
    feature: str
    sign: int
    plus: float
    minus: float
    location: str = ""
    spread: float = 0.0
    blendshapes: BlendshapeEvidence | None = None


@dataclass(frozen=True, eq=False)
class Calibration:
    """The per-component calibration of ``rules/calibration.yaml``, in SPEC order."""

    components: tuple[ComponentCalibration, ...]
    path: str = ""
    sha256: str = ""

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Calibration:
        """Load a calibration file; a directory means ``DIR/calibration.yaml`` when it exists
        (else the shipped one); None means ``$FUZZYEMO_RULES/calibration.yaml`` when set and
        present, else the shipped file."""
        if path is None:
            env = os.environ.get("FUZZYEMO_RULES")
            p = Path(env) / "calibration.yaml" if env else None
            path = p if p is not None and p.is_file() else shipped_calibration_path()
        p = Path(path)
        if p.is_dir():
            p = p / "calibration.yaml" if (p / "calibration.yaml").is_file() \
                else shipped_calibration_path()
        try:
            st = p.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (0, 0)
        return _load_calibration(str(p.resolve()) if p.exists() else str(p), *stamp)

    @classmethod
    def default(cls) -> Calibration:
        """The shipped calibration."""
        return cls.load(shipped_calibration_path())

    @property
    def feature_index(self) -> np.ndarray:
        return np.array([RAW_FEATURES.index(c.feature) for c in self.components])

    @property
    def sign(self) -> np.ndarray:
        return np.array([c.sign for c in self.components], dtype=float)

    @property
    def plus(self) -> np.ndarray:
        return np.array([c.plus for c in self.components])

    @property
    def minus(self) -> np.ndarray:
        return np.array([c.minus for c in self.components])

    @property
    def spread(self) -> np.ndarray:
        return np.array([c.spread for c in self.components])

    @property
    def has_blendshapes(self) -> np.ndarray:
        """(12,) bool: components that read blendshapes on the MediaPipe path."""
        return np.array([c.blendshapes is not None for c in self.components])

    @property
    def blendshape_weight(self) -> np.ndarray:
        return np.array([c.blendshapes.weight if c.blendshapes else 0.0 for c in self.components])

    def reachable(self, blendshapes: bool = True) -> dict[str, tuple[float, float]]:
        """The interval of x each component can take: geometry reaches [-1, 1]; on the
        MediaPipe path (``blendshapes=True``) a component read from blendshapes with weight w
        reaches ``(1 - w) * [-1, 1] + w * [-1 if it has 'minus' blendshapes else 0,
        1 if it has 'plus' ones else 0]``. The lint's region (``fuzzyemo rules check``)."""
        out: dict[str, tuple[float, float]] = {}
        for c in self.components:
            b = c.blendshapes
            if not blendshapes or b is None:
                out[c.component] = (-1.0, 1.0)
                continue
            w = b.weight
            out[c.component] = (-(1 - w) - (w if b.minus else 0.0),
                                (1 - w) + (w if b.plus else 0.0))
        return out

    def evidence(self, blendshapes: Any) -> np.ndarray:
        """Blendshape evidence ``(n, 12, 2)`` (for the +1 and the -1 term) from MediaPipe's 52
        blendshapes ``(n, 52)``; NaN for components without a blendshape reading."""
        bs = np.asarray(blendshapes, dtype=float)
        if bs.ndim != 2 or bs.shape[1] != _N_BLENDSHAPES:
            raise InputError(f"blendshapes must have shape (n, {_N_BLENDSHAPES}), got {bs.shape}")
        out = np.full((bs.shape[0], N_FEATURES, 2), np.nan)
        for i, c in enumerate(self.components):
            b = c.blendshapes
            if b is None:
                continue
            for side, terms in enumerate((b.plus, b.minus)):
                acc = np.zeros(bs.shape[0])
                for j, w in terms:
                    acc += w * bs[:, j]
                out[:, i, side] = acc
        return out

    def neutral_evidence(self) -> np.ndarray:
        """(12, 2) the population's neutral evidence (NaN without a blendshape reading)."""
        return np.array([c.blendshapes.neutral if c.blendshapes else (np.nan, np.nan)
                         for c in self.components], dtype=float)

    def apply(self, raw: Any, neutral: Any, clip: bool = True, *, population: Any = False,
              evidence: Any = None, neutral_evidence: Any = None) -> np.ndarray:
        """x ``(n, 12)`` from raw features ``(n, 12)`` and neutral raw features ``(12,)`` or
        ``(n, 12)``; NaN stays NaN.

        ``population`` (bool or ``(n,)`` bools): the neutral is the population's, not the
        person's own, so each feature's ``spread`` is a dead zone. ``evidence`` ``(n, 12, 2)``
        (:meth:`evidence`) adds the blendshape reading where the calibration has one;
        ``neutral_evidence`` ``(12, 2)`` or ``(n, 12, 2)`` defaults to the population's. A
        row whose evidence is NaN (no blendshapes) uses geometry alone.
        """
        raw = np.asarray(raw, dtype=float)
        neutral = np.asarray(neutral, dtype=float)
        if raw.ndim != 2 or raw.shape[1] != N_FEATURES:
            raise InputError(f"raw features must have shape (n, {N_FEATURES}), got {raw.shape}")
        pop = np.broadcast_to(np.asarray(population, dtype=bool), (raw.shape[0],))[:, None]
        fi = self.feature_index
        d = self.sign * (raw[:, fi] - neutral[..., fi])
        # A population neutral is only an average face: a difference smaller than the ordinary
        # spread between neutral strangers says more about the person than the expression.
        d = np.where(pop, np.sign(d) * np.maximum(np.abs(d) - self.spread, 0.0), d)
        x = np.where(d >= 0, d / self.plus, d / self.minus)
        if evidence is not None:
            x = self._fuse(x, np.asarray(evidence, dtype=float), neutral_evidence, pop)
        return np.clip(x, -1.0, 1.0) if clip else x

    def _fuse(self, x: np.ndarray, ev: np.ndarray, neutral_ev: Any, pop: np.ndarray) -> np.ndarray:
        if ev.ndim != 3 or ev.shape[1:] != (N_FEATURES, 2) or ev.shape[0] != x.shape[0]:
            raise InputError(f"evidence must have shape ({x.shape[0]}, {N_FEATURES}, 2), "
                             f"got {ev.shape}")
        n_ev = self.neutral_evidence() if neutral_ev is None else np.asarray(neutral_ev, float)
        full = np.array([(c.blendshapes.full_plus, c.blendshapes.full_minus) if c.blendshapes
                         else (1.0, 1.0) for c in self.components])
        spread = np.array([c.blendshapes.spread if c.blendshapes else (0.0, 0.0)
                           for c in self.components])
        above = ev - n_ev
        above = np.where(pop[..., None], above - spread, above)
        dpm = np.maximum(above, 0.0) / full
        xb = np.clip(dpm[..., 0] - dpm[..., 1], -1.0, 1.0)
        w = self.blendshape_weight
        fused = (1.0 - w) * np.clip(x, -1.0, 1.0) + w * xb
        # Without blendshapes (faceless rows, other sources) or a component that has no
        # blendshape reading: geometry alone.
        return np.where(np.isfinite(xb), fused, x)

    def to_dict(self) -> dict[str, Any]:
        comps: dict[str, Any] = {}
        for c in self.components:
            d: dict[str, Any] = {"feature": c.feature, "sign": c.sign, "plus": c.plus,
                                 "minus": c.minus, "spread": c.spread}
            b = c.blendshapes
            if b is not None:
                d["blendshapes"] = {
                    "plus": {_BLENDSHAPES[j]: w for j, w in b.plus},
                    "minus": {_BLENDSHAPES[j]: w for j, w in b.minus},
                    "full": [b.full_plus, b.full_minus], "neutral": list(b.neutral),
                    "spread": list(b.spread), "weight": b.weight}
            comps[c.component] = d
        return {"format": CALIBRATION_FORMAT, "sha256": self.sha256, "components": comps}


_GEOMETRY_KEYS = ("feature", "sign", "plus", "minus", "spread", "blendshapes")
_BLEND_KEYS = ("plus", "minus", "full", "neutral", "spread", "weight")


@lru_cache(maxsize=16)
def _load_calibration(path: str, mtime_ns: int, size: int) -> Calibration:
    p = Path(path)
    data, positions = load_yaml(p, path)
    problems: list[Problem] = []

    def add(loc: tuple, message: str, hint: str | None = None) -> None:
        line, col = position(positions, loc)
        problems.append(Problem(path, line, col, message, hint))

    comps = components_section(data, add, (CALIBRATION_FORMAT, CALIBRATION_FORMAT_1),
                               "{feature, sign, plus, minus}")
    if comps is None:
        raise RuleBaseError(problems)
    parsed: dict[str, ComponentCalibration] = {}
    for name, loc, spec in component_entries(comps, add, "feature, sign, plus, minus"):
        ok = known_keys(spec, loc, _GEOMETRY_KEYS, name, add)
        feature = spec.get("feature")
        if feature not in RAW_FEATURES:
            add((*loc, "feature") if "feature" in spec else loc,
                f"{name}: unknown raw feature {feature!r}", did_you_mean(str(feature), RAW_FEATURES))
            ok = False
        sign = spec.get("sign", 1)
        if sign not in (1, -1) or isinstance(sign, bool):
            add((*loc, "sign"), f"{name}: sign must be 1 or -1, got {sign!r}")
            ok = False
        values = {}
        for key in ("plus", "minus"):
            v = spec.get(key)
            if not _positive(v):
                add((*loc, key) if key in spec else loc,
                    f"{name}: {key} must be a positive number (the raw change that reads as "
                    f"x = {'+1' if key == 'plus' else '-1'}), got {v!r}")
                ok = False
            else:
                values[key] = float(v)
        spread = spec.get("spread", 0.0)
        if not _nonnegative(spread):
            add((*loc, "spread"), f"{name}: spread must be a number >= 0 (raw units), "
                f"got {spread!r}")
            ok = False
        blend = None
        if spec.get("blendshapes") is not None:
            blend = _parse_blendshapes(spec["blendshapes"], (*loc, "blendshapes"), name, add)
            ok = ok and blend is not None
        if ok:
            line, _ = position(positions, loc)
            parsed[name] = ComponentCalibration(name, feature, int(sign), values["plus"],
                                                values["minus"], f"{path}:{line}",
                                                float(spread), blend)
    missing = [c for c in COMPONENTS if c not in comps]
    if missing:
        add(("components",), "missing component(s): " + ", ".join(missing))
    if problems:
        raise RuleBaseError(problems)
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    return Calibration(tuple(parsed[c] for c in COMPONENTS), path=path, sha256=sha)


def _positive(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _nonnegative(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0


def _parse_blendshapes(spec: Any, loc: tuple, name: str, add: Any) -> BlendshapeEvidence | None:
    """The ``blendshapes:`` block of one component, or None after reporting its problems."""
    if not isinstance(spec, Mapping):
        add(loc, f"{name}.blendshapes: expected a mapping with plus, minus, full")
        return None
    ok = known_keys(spec, loc, _BLEND_KEYS, f"{name}.blendshapes", add)
    sides = []
    for side in ("plus", "minus"):
        terms = spec.get(side) or {}
        if not isinstance(terms, Mapping):
            add((*loc, side), f"{name}.blendshapes.{side}: expected a mapping of blendshape "
                "name -> weight")
            ok = False
            continue
        parsed = []
        for bs_name, w in terms.items():
            if bs_name not in _BLENDSHAPES:
                add((*loc, side, bs_name), f"{name}.blendshapes.{side}: unknown blendshape "
                    f"{bs_name!r}", did_you_mean(str(bs_name), _BLENDSHAPES))
                ok = False
            elif not _positive(w):
                add((*loc, side, bs_name), f"{name}.blendshapes.{side}.{bs_name}: weight must "
                    f"be a positive number, got {w!r}")
                ok = False
            else:
                parsed.append((_BLENDSHAPES.index(bs_name), float(w)))
        sides.append(tuple(parsed))
    if ok and not (sides[0] or sides[1]):
        add(loc, f"{name}.blendshapes: name at least one blendshape under plus or minus")
        ok = False
    pairs = {}
    for key, default, check, what in (
            ("full", None, _positive, "a positive number or [plus, minus] of them"),
            ("neutral", 0.0, _nonnegative, "a number >= 0 or [plus, minus] of them"),
            ("spread", 0.0, _nonnegative, "a number >= 0 or [plus, minus] of them")):
        v = spec.get(key, default)
        if v is None:
            add(loc, f"{name}.blendshapes: missing required key {key!r} (the evidence above "
                "neutral that reads as x = +-1)")
            ok = False
            continue
        vv = list(v) if isinstance(v, (list, tuple)) else [v, v]
        if len(vv) != 2 or not all(check(q) for q in vv):
            add((*loc, key), f"{name}.blendshapes.{key}: expected {what}, got {v!r}")
            ok = False
            continue
        pairs[key] = (float(vv[0]), float(vv[1]))
    weight = spec.get("weight", 0.5)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        add((*loc, "weight"), f"{name}.blendshapes.weight: expected a number in [0, 1] (the "
            f"blendshapes' share of x on the MediaPipe path), got {weight!r}")
        ok = False
    if not ok:
        return None
    return BlendshapeEvidence(sides[0], sides[1], pairs["full"][0], pairs["full"][1],
                              pairs["neutral"], pairs["spread"], float(weight))


def expression_activity(evidence: Any, calibration: Calibration) -> np.ndarray:
    """(n,) the largest blendshape reading |x_b| over the components of each frame, against
    the population's neutral evidence with its dead zone: 0 for a face doing nothing that
    neutral strangers do not also do; NaN without evidence."""
    ev = np.asarray(evidence, dtype=float)
    has = calibration.has_blendshapes
    if not has.any():
        return np.full(ev.shape[0], np.nan)
    n_ev = calibration.neutral_evidence()
    spread = np.array([c.blendshapes.spread if c.blendshapes else (0.0, 0.0)
                       for c in calibration.components])
    full = np.array([(c.blendshapes.full_plus, c.blendshapes.full_minus) if c.blendshapes
                     else (1.0, 1.0) for c in calibration.components])
    reading = np.maximum(ev - n_ev - spread, 0.0) / full
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanmax(reading[:, has, :].reshape(ev.shape[0], -1), axis=1)


# ----------------------------------------------------------------------------- baselines
def _raw_matrix(raw: Any, what: str = "raw features") -> np.ndarray:
    arr = np.asarray(raw, dtype=float)
    if arr.ndim == 1 and arr.shape[0] == N_FEATURES:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != N_FEATURES:
        raise InputError(f"{what} must have shape (n, {N_FEATURES}), got {np.shape(raw)}")
    return arr


@dataclass(frozen=True, eq=False)
class Baseline:
    """The raw features of a neutral face, ``values`` ``(12,)`` in ``RAW_FEATURES`` order.

    Build one with :meth:`from_frames` (given neutral frames), :meth:`from_landmarks`,
    :meth:`population` (a scheme's neutral template), :meth:`self_calibrate` (a video's own
    most neutral frames) or :meth:`per_subject` (one per subject key); save and reload it
    with :meth:`save` / :meth:`load`.
    """

    values: np.ndarray
    source: str = ""
    n_frames: int = 0
    #: ``(12, 2)`` neutral blendshape evidence (:meth:`Calibration.evidence`) of this face, or
    #: None: the calibration's population value is used.
    evidence: np.ndarray | None = None
    #: True for an average face (the spread between people is then a dead zone).
    is_population: bool = False
    #: Indices (into the frames given to :meth:`self_calibrate`) of the frames used.
    frames: np.ndarray | None = None

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=float).reshape(-1)
        if v.shape != (N_FEATURES,):
            raise InputError(f"a baseline needs {N_FEATURES} raw features, got {v.shape[0]}")
        if not np.isfinite(v).all():
            bad = [RAW_FEATURES[i] for i in np.flatnonzero(~np.isfinite(v))]
            raise InputError("baseline has no finite value for " + ", ".join(bad))
        v.setflags(write=False)
        object.__setattr__(self, "values", v)
        if self.evidence is not None:
            e = np.array(self.evidence, dtype=float).reshape(N_FEATURES, 2)
            e.setflags(write=False)
            object.__setattr__(self, "evidence", e)

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_frames(cls, raw: Any, source: str = "given neutral frames") -> Baseline:
        """Per-feature median of the given neutral frames' raw features ``(n, 12)``.

        Frames with a missing feature are skipped (NaN-aware median per feature).
        """
        arr = _raw_matrix(raw)
        usable = np.isfinite(arr).any(axis=1)
        if not usable.any():
            raise InputError("no usable neutral frame: every frame's raw features are missing")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: reported below
            med = np.nanmedian(arr[usable], axis=0)
        return cls(med, source, int(usable.sum()))

    @classmethod
    def from_landmarks(cls, landmarks: Any, scheme: LandmarkScheme | str,
                       source: str = "given neutral frames") -> Baseline:
        """Baseline from neutral-face landmarks ``(n, K, 2|3)`` (or one frame ``(K, 2|3)``)."""
        scheme = LandmarkScheme.load(scheme)
        return cls.from_frames(raw_features(scheme.named(landmarks)), source)

    @classmethod
    def population(cls, scheme: LandmarkScheme | str) -> Baseline:
        """The population default: the raw features of the scheme's neutral ``template``,
        overridden feature by feature by the scheme file's ``population`` block.

        iBUG-68 (and DISFA-66, WFLW-98) use a mean face with the lips closed; MediaPipe's
        file gives values measured from a real detection, because its canonical mesh is not
        where the detector puts points on real faces (docs/geometry.md). Individual faces
        differ (brow height, lip thickness...), so prefer a person's own baseline.
        """
        scheme = LandmarkScheme.load(scheme)
        return _population(scheme)

    @classmethod
    def self_calibrate(cls, raw: Any, fraction: float = 0.1,
                       calibration: Calibration | None = None, *, evidence: Any = None,
                       max_activity: float = NEUTRAL_MAX_ACTIVITY,
                       min_frames: int = NEUTRAL_MIN_FRAMES, usable: Any = None) -> Baseline:
        """A video's own most neutral frames.

        With MediaPipe's blendshape ``evidence`` ``(n, 12, 2)`` (:meth:`Calibration.evidence`),
        frames are chosen by what the face does, not by how close they are to the video's
        average (a video of someone smiling throughout would otherwise make the smile its
        "neutral"):

        1. A frame's expression activity is the largest blendshape reading ``|x_b|`` over the
           components, against the population's neutral evidence with its dead zone (so the
           ordinary differences between neutral people read 0).
        2. Frames with activity <= ``max_activity`` are neutral candidates; if fewer than
           ``min_frames`` (and 2% of the frames) qualify, the video has no neutral stretch
           and :class:`NoNeutralFrames` is raised (callers fall back to the population face
           and say so).
        3. The baseline is the per-feature median of the ``fraction`` of frames (at least
           ``min_frames``, at most the candidates) with the lowest activity; its neutral
           evidence is their median evidence. ``frames`` records which frames were used.

        ``usable`` ``(n,)`` bools excludes frames from being chosen (e.g. faces beyond the
        pose limit or with a landmark misfit); they are still measured against the result.

        Without ``evidence`` (landmarks only) the geometry decides: start from the median of
        all complete frames (a person is neutral most of the time), score each frame by the
        sum over components of calibrated |x| against it, keep the ``fraction`` with the
        lowest score and take their median; repeat once.
        """
        if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
            raise InputError(f"fraction must be in (0, 1], got {fraction!r}")
        arr = _raw_matrix(raw)
        ok = np.isfinite(arr).all(axis=1)
        if usable is not None:
            ok &= np.asarray(usable, dtype=bool).reshape(-1)
        if not ok.any():
            raise InputError("cannot self-calibrate: no frame has all 12 raw features "
                             "(no face found?)")
        cal = calibration or Calibration.default()
        n_ok = int(ok.sum())
        k = max(1, math.ceil(fraction * n_ok))
        if evidence is not None:
            ev = np.asarray(evidence, dtype=float)
            if ev.shape != (arr.shape[0], N_FEATURES, 2):
                raise InputError(f"evidence must have shape ({arr.shape[0]}, {N_FEATURES}, 2), "
                                 f"got {ev.shape}")
            activity = expression_activity(ev, cal)
            usable = ok & np.isfinite(activity)
            candidates = np.flatnonzero(usable & (activity <= max_activity))
            need = max(int(min_frames), math.ceil(0.02 * int(usable.sum())))
            if len(candidates) < need:
                raise NoNeutralFrames(
                    f"no neutral stretch: {len(candidates)} of {int(usable.sum())} frames show "
                    f"no expression (blendshape activity <= {max_activity:g}), {need} needed")
            take = min(len(candidates), max(k, need))
            order = np.argsort(activity[candidates], kind="stable")[:take]
            chosen = np.sort(candidates[order])
            return cls(np.median(arr[chosen], axis=0),
                       f"self-calibrated: {take} frames without expression activity "
                       f"(blendshapes) of {arr.shape[0]}", take,
                       evidence=np.median(ev[chosen], axis=0), frames=chosen)
        rows = np.flatnonzero(ok)
        frames = arr[ok]
        ref = np.median(frames, axis=0)
        keep = np.arange(len(frames))
        for _ in range(2):
            score = np.abs(cal.apply(frames, ref)).sum(axis=1)
            keep = np.argsort(score, kind="stable")[:k]
            ref = np.median(frames[keep], axis=0)
        return cls(ref, f"self-calibrated: {k} most neutral of {frames.shape[0]} frames", k,
                   frames=np.sort(rows[keep]))

    @classmethod
    def per_subject(cls, raw: Any, groups: Any, neutral: Any = None, fraction: float = 0.1,
                    calibration: Calibration | None = None) -> dict[Hashable, Baseline]:
        """One baseline per subject key in ``groups`` ``(n,)``.

        A subject with frames marked True in ``neutral`` ``(n,)`` gets the median of those
        (:meth:`from_frames`); the others are self-calibrated on their own frames.
        """
        arr = _raw_matrix(raw)
        keys = np.asarray(groups)
        if keys.shape != (arr.shape[0],):
            raise InputError(f"groups must have one key per frame ({arr.shape[0]}), "
                             f"got shape {keys.shape}")
        mask = None
        if neutral is not None:
            mask = np.asarray(neutral, dtype=bool)
            if mask.shape != (arr.shape[0],):
                raise InputError(f"neutral must have one flag per frame ({arr.shape[0]}), "
                                 f"got shape {mask.shape}")
        uniq, inverse = np.unique(keys, return_inverse=True)
        out: dict[Hashable, Baseline] = {}
        for g, key in enumerate(uniq):
            rows = inverse == g
            label = key.item() if hasattr(key, "item") else key
            try:
                if mask is not None and (rows & mask).any():
                    out[label] = cls.from_frames(arr[rows & mask],
                                                 f"subject {label!r}: given neutral frames")
                else:
                    b = cls.self_calibrate(arr[rows], fraction, calibration)
                    out[label] = cls(b.values, f"subject {label!r}: {b.source}", b.n_frames)
            except InputError as exc:
                raise InputError(f"subject {label!r}: {exc}") from None
        return out

    # -- persistence -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": BASELINE_FORMAT, "source": self.source, "n_frames": self.n_frames,
            "features": {f: float(v) for f, v in zip(RAW_FEATURES, self.values, strict=True)}}
        if self.evidence is not None:  # MediaPipe blendshape evidence [+1 term, -1 term]
            out["evidence"] = {c: [float(a), float(b)] for c, (a, b)
                               in zip(COMPONENTS, self.evidence, strict=True)
                               if np.isfinite(a) and np.isfinite(b)}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "baseline") -> Baseline:
        feats = data.get("features") if isinstance(data, Mapping) else None
        if not isinstance(feats, Mapping):
            raise InputError(f"{where}: expected a 'features' mapping of the 12 raw features")
        unknown = [k for k in feats if k not in RAW_FEATURES]
        if unknown:
            hint = did_you_mean(str(unknown[0]), RAW_FEATURES)
            raise InputError(f"{where}: unknown raw feature {unknown[0]!r}"
                             + (f" ({hint})" if hint else ""))
        missing = [f for f in RAW_FEATURES if f not in feats]
        if missing:
            raise InputError(f"{where}: missing raw feature(s) " + ", ".join(missing))
        try:
            values = [float(feats[f]) for f in RAW_FEATURES]
        except (TypeError, ValueError):
            raise InputError(f"{where}: raw features must be numbers") from None
        evidence = None
        if data.get("evidence") is not None:
            ev = data["evidence"]
            bad = [k for k in ev if k not in COMPONENTS] if isinstance(ev, Mapping) else ["?"]
            if bad:
                raise InputError(f"{where}: 'evidence' must map component names to "
                                 f"[+1 evidence, -1 evidence], got {bad[0]!r}")
            evidence = np.full((N_FEATURES, 2), np.nan)
            for c, pair in ev.items():
                try:
                    evidence[COMPONENTS.index(c)] = [float(v) for v in pair]
                except (TypeError, ValueError):
                    raise InputError(f"{where}: evidence of {c} must be two numbers") from None
        return cls(np.array(values), str(data.get("source", "")), int(data.get("n_frames", 0)),
                   evidence=evidence)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (temp file, then rename)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Baseline:
        """Read a baseline written by :meth:`save` (JSON; YAML with the same keys also works)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{p}: cannot read baseline: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data, _ = load_yaml(p, str(p))
        return cls.from_dict(data, str(p))


@lru_cache(maxsize=16)
def _population(scheme: LandmarkScheme) -> Baseline:
    # Schemes hash by identity and loads are cached, so this runs once per loaded scheme.
    pop = scheme.population
    if scheme.template is None and len(pop) < N_FEATURES:
        raise InputError(f"landmark scheme {scheme.name!r} has no neutral 'template' and its "
                         f"'population' block lacks "
                         + ", ".join(f for f in RAW_FEATURES if f not in pop)
                         + f" ({scheme.path}); give a baseline explicitly")
    if scheme.template is not None:
        values = raw_features(scheme.named(scheme.template_landmarks()))[0]
    else:
        values = np.full(N_FEATURES, np.nan)
    for i, f in enumerate(RAW_FEATURES):
        values[i] = pop.get(f, values[i])
    what = "neutral template" if not pop else (
        "population values" if len(pop) == N_FEATURES else "neutral template + population values")
    return Baseline(values, f"population: {what} of {scheme.name}", 1, is_population=True)


# ----------------------------------------------------------------------------- measure
BaselineSpec = Baseline | Mapping[Hashable, Baseline] | str | None


def measure(landmarks: Any, scheme: LandmarkScheme | str, baseline: BaselineSpec = None,
            calibration: Calibration | str | os.PathLike | None = None, *,
            groups: Any = None, blendshapes: Any = None) -> np.ndarray:
    """The 12 component measurements ``(n, 12)`` in [-1, 1], SPEC order, from landmarks.

    ``landmarks``: ``(n, K, 2|3)`` in pixels (or any isotropic unit) of ``scheme``.
    ``baseline``: a :class:`Baseline`; ``None`` or ``"population"`` for the scheme's
    population default; ``"self"`` to self-calibrate on these frames (per subject when
    ``groups`` is given); or a mapping ``{subject key: Baseline}`` used with ``groups``
    (one key per frame). ``calibration``: a :class:`Calibration`, a path, or None for the
    shipped one. ``blendshapes``: MediaPipe's ``(n, 52)`` blendshape scores of the same
    frames, read where the calibration says (docs/geometry.md, "Measurement sources"); they
    also pick the neutral frames of ``"self"``. A component is NaN where the landmarks it
    needs are missing, so a frame with no face is a NaN row, and ``"self"`` on frames without
    one complete face gives NaN rows: missing data never raises (bad arguments do, as
    InputError). A video or subject without a neutral stretch falls back to the population
    face with a :class:`NeutralWarning`.
    """
    scheme = LandmarkScheme.load(scheme)
    cal = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
    raw = raw_features(scheme.named(landmarks))
    evidence = None if blendshapes is None else cal.evidence(_blendshape_rows(blendshapes, raw))
    ref = resolve_neutral(raw, scheme, baseline, cal, groups, evidence)
    for note in ref.notes:
        warnings.warn(note, NeutralWarning, stacklevel=2)
    return cal.apply(raw, ref.values, population=ref.population, evidence=evidence,
                     neutral_evidence=ref.evidence)


class NeutralWarning(UserWarning):
    """A neutral reference is weaker than asked for (e.g. a video without a neutral stretch)."""


def _blendshape_rows(blendshapes: Any, raw: np.ndarray) -> np.ndarray:
    bs = np.asarray(blendshapes, dtype=float)
    if bs.ndim != 2 or bs.shape[0] != raw.shape[0]:
        raise InputError(f"blendshapes must have one row per frame ({raw.shape[0]}), "
                         f"got shape {bs.shape}")
    return bs


@dataclass(frozen=True)
class NeutralReference:
    """The neutral face each frame is measured against (:func:`resolve_neutral`)."""

    values: np.ndarray            # (n, 12) neutral raw features
    evidence: np.ndarray | None   # (n, 12, 2) neutral blendshape evidence, or None
    population: np.ndarray        # (n,) True where the neutral is the population's face
    used: np.ndarray              # (n,) True for the frames a self-calibration took as neutral
    notes: tuple[str, ...] = ()   # warnings for the user (no neutral stretch, ...)
    describe: str = ""


def resolve_baseline(raw: np.ndarray, scheme: LandmarkScheme, baseline: BaselineSpec,
                     calibration: Calibration, groups: Any = None) -> np.ndarray:
    """Neutral raw features for each frame ``(n, 12)`` (geometry only)."""
    return resolve_neutral(raw, scheme, baseline, calibration, groups).values


def resolve_neutral(raw: np.ndarray, scheme: LandmarkScheme, baseline: BaselineSpec,
                    calibration: Calibration, groups: Any = None, evidence: Any = None,
                    labels: Any = None, usable: Any = None) -> NeutralReference:
    """The neutral reference of every frame.

    ``groups`` ``(n,)``: one key per frame (a face track, a subject); ``"self"`` calibrates
    each group on its own frames, with ``evidence`` (blendshapes) choosing the neutral ones.
    ``labels``: a ``{group key: name}`` mapping used in warnings; ``usable`` ``(n,)``: frames
    self-calibration may choose as neutral (default all). Self-calibration never
    raises: a group without one complete frame gets NaN (hence ``unknown`` rows); a group
    without a neutral stretch gets the population face and a note.
    """
    n = raw.shape[0]
    keys = None
    if groups is not None:
        keys = np.asarray(groups)
        if keys.shape != (n,):
            raise InputError(f"groups must have one key per frame ({n}), got shape {keys.shape}")
    none_used = np.zeros(n, bool)

    def fixed(b: Baseline, text: str) -> NeutralReference:
        ev = None if b.evidence is None else np.broadcast_to(b.evidence, (n, N_FEATURES, 2))
        return NeutralReference(np.broadcast_to(b.values, (n, N_FEATURES)), ev,
                                np.full(n, b.is_population), none_used, (), text)

    if baseline is None or (isinstance(baseline, str) and baseline == "population"):
        return fixed(Baseline.population(scheme), "population")
    if isinstance(baseline, Baseline):
        return fixed(baseline, f"given: {baseline.source or 'baseline'}")
    if isinstance(baseline, str):
        if baseline != "self":
            raise InputError(f"unknown baseline {baseline!r}: use 'population', 'self', "
                             "a Baseline, or a mapping of subject -> Baseline")
        if keys is None:
            keys = np.zeros(n, np.int64)
        return _self_neutral(raw, scheme, calibration, keys, evidence, labels or {},
                             usable)
    if isinstance(baseline, Mapping):
        if keys is None:
            raise InputError("a per-subject baseline mapping needs groups= (one key per frame)")
        uniq, inverse = np.unique(keys, return_inverse=True)
        table = np.empty((len(uniq), N_FEATURES))
        ev_table = np.full((len(uniq), N_FEATURES, 2), np.nan)
        pop = np.zeros(len(uniq), bool)
        has_ev = False
        for g, key in enumerate(uniq):
            label = key.item() if hasattr(key, "item") else key
            b = baseline.get(label)
            if not isinstance(b, Baseline):
                first = int(np.flatnonzero(inverse == g)[0])
                raise InputError(f"no baseline for subject {label!r} (first at frame index "
                                 f"{first})")
            table[g] = b.values
            pop[g] = b.is_population
            if b.evidence is not None:
                ev_table[g] = b.evidence
                has_ev = True
        if has_ev:  # subjects without their own evidence use the population's
            missing = ~np.isfinite(ev_table)
            ev_table[missing] = np.broadcast_to(calibration.neutral_evidence(),
                                                ev_table.shape)[missing]
        return NeutralReference(table[inverse], ev_table[inverse] if has_ev else None,
                                pop[inverse], none_used, (), "per subject")
    raise InputError(f"baseline must be a Baseline, a mapping, 'population' or 'self', "
                     f"got {type(baseline).__name__}")


def _self_neutral(raw: np.ndarray, scheme: LandmarkScheme, cal: Calibration, keys: np.ndarray,
                  evidence: Any, labels: Mapping[Any, str], usable: Any = None
                  ) -> NeutralReference:
    n = raw.shape[0]
    ev = None if evidence is None else np.asarray(evidence, dtype=float)
    values = np.full((n, N_FEATURES), np.nan)
    ev_out = None if ev is None else np.broadcast_to(cal.neutral_evidence(),
                                                     (n, N_FEATURES, 2)).copy()
    pop = np.zeros(n, bool)
    used = np.zeros(n, bool)
    notes: list[str] = []
    population = Baseline.population(scheme)
    uniq, inverse = np.unique(keys, return_inverse=True)
    for g, key in enumerate(uniq):
        rows = np.flatnonzero(inverse == g)
        sub = raw[rows]
        if not np.isfinite(sub).all(axis=1).any():
            continue  # no complete face: NaN baseline, hence NaN ("unknown") rows
        name = labels.get(key.item() if hasattr(key, "item") else key, f"group {key}")
        ok = None if usable is None else np.asarray(usable, bool)[rows]
        try:
            if ok is not None and not (ok & np.isfinite(sub).all(axis=1)).any():
                raise NoNeutralFrames("no neutral stretch: no frame is usable (every face is "
                                      "beyond the pose limit or misfit)")
            sub_ev = None if ev is None else ev[rows]
            if sub_ev is not None and not np.isfinite(sub_ev).any():
                sub_ev = None  # no blendshapes for this face (a landmark table): geometry
            b = Baseline.self_calibrate(sub, calibration=cal, evidence=sub_ev, usable=ok)
        except NoNeutralFrames as exc:
            notes.append(f"{name}: {exc}; measured against the population's neutral face "
                         "instead (pass --baseline FILE with this person's neutral face)")
            values[rows] = population.values
            pop[rows] = True
            continue
        values[rows] = b.values
        if ev_out is not None and b.evidence is not None:
            ev_out[rows] = b.evidence
        if b.frames is not None:
            used[rows[b.frames]] = True
    text = "self-calibrated" + (" (blendshapes choose the neutral frames)" if ev is not None
                                else "")
    return NeutralReference(values, ev_out, pop, used, tuple(notes), text)
