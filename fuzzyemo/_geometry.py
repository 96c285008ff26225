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
from ._vocab import COMPONENTS
from ._yaml import load_yaml, position

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
assert len(COMPONENTS) == N_FEATURES

CALIBRATION_FORMAT = "fuzzyemo-calibration/1"
BASELINE_FORMAT = "fuzzyemo-baseline/1"


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
class ComponentCalibration:
    """How one component's x is read from a raw feature.

    ``d = sign * (raw[feature] - neutral[feature])``; ``x = d / plus`` if d >= 0 else
    ``d / minus``; clipped to [-1, 1]. So a raw change of ``sign * plus`` reads as x = +1 and
    ``-sign * minus`` as x = -1.
    """

    component: str
    feature: str
    sign: int
    plus: float
    minus: float
    location: str = ""


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

    def apply(self, raw: Any, neutral: Any, clip: bool = True) -> np.ndarray:
        """x ``(n, 12)`` from raw features ``(n, 12)`` and neutral raw features ``(12,)`` or
        ``(n, 12)``; NaN stays NaN."""
        raw = np.asarray(raw, dtype=float)
        neutral = np.asarray(neutral, dtype=float)
        if raw.ndim != 2 or raw.shape[1] != N_FEATURES:
            raise InputError(f"raw features must have shape (n, {N_FEATURES}), got {raw.shape}")
        fi = self.feature_index
        d = self.sign * (raw[:, fi] - neutral[..., fi])
        x = np.where(d >= 0, d / self.plus, d / self.minus)
        return np.clip(x, -1.0, 1.0) if clip else x

    def to_dict(self) -> dict[str, Any]:
        return {"format": CALIBRATION_FORMAT, "sha256": self.sha256,
                "components": {c.component: {"feature": c.feature, "sign": c.sign,
                                             "plus": c.plus, "minus": c.minus}
                               for c in self.components}}


@lru_cache(maxsize=16)
def _load_calibration(path: str, mtime_ns: int, size: int) -> Calibration:
    p = Path(path)
    data, positions = load_yaml(p, path)
    problems: list[Problem] = []

    def add(loc: tuple, message: str, hint: str | None = None) -> None:
        line, col = position(positions, loc)
        problems.append(Problem(path, line, col, message, hint))

    if not isinstance(data, Mapping):
        add((), f"expected a mapping at the top of the file, got {type(data).__name__}")
        raise RuleBaseError(problems)
    for key in data:
        if key not in ("format", "components"):
            add((key,), f"unknown key {key!r}", did_you_mean(str(key), ("format", "components")))
    if data.get("format") != CALIBRATION_FORMAT:
        add(("format",) if "format" in data else (),
            f"format must be {CALIBRATION_FORMAT!r}, got {data.get('format')!r}")
    comps = data.get("components")
    if not isinstance(comps, Mapping):
        add(("components",) if "components" in data else (),
            "components must be a mapping of component name -> {feature, sign, plus, minus}")
        raise RuleBaseError(problems)
    parsed: dict[str, ComponentCalibration] = {}
    for name, spec in comps.items():
        loc = ("components", name)
        if name not in COMPONENTS:
            add(loc, f"unknown component {name!r}", did_you_mean(str(name), COMPONENTS))
            continue
        if not isinstance(spec, Mapping):
            add(loc, f"{name}: expected a mapping with feature, sign, plus, minus")
            continue
        ok = True
        for key in spec:
            if key not in ("feature", "sign", "plus", "minus"):
                add((*loc, key), f"{name}: unknown key {key!r}",
                    did_you_mean(str(key), ("feature", "sign", "plus", "minus")))
                ok = False
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
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0:
                add((*loc, key) if key in spec else loc,
                    f"{name}: {key} must be a positive number (the raw change that reads as "
                    f"x = {'+1' if key == 'plus' else '-1'}), got {v!r}")
                ok = False
            else:
                values[key] = float(v)
        if ok:
            line, _ = position(positions, loc)
            parsed[name] = ComponentCalibration(name, feature, int(sign), values["plus"],
                                                values["minus"], f"{path}:{line}")
    missing = [c for c in COMPONENTS if c not in comps]
    if missing:
        add(("components",), "missing component(s): " + ", ".join(missing))
    if problems:
        raise RuleBaseError(problems)
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    return Calibration(tuple(parsed[c] for c in COMPONENTS), path=path, sha256=sha)


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

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=float).reshape(-1)
        if v.shape != (N_FEATURES,):
            raise InputError(f"a baseline needs {N_FEATURES} raw features, got {v.shape[0]}")
        if not np.isfinite(v).all():
            bad = [RAW_FEATURES[i] for i in np.flatnonzero(~np.isfinite(v))]
            raise InputError("baseline has no finite value for " + ", ".join(bad))
        v.setflags(write=False)
        object.__setattr__(self, "values", v)

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
                       calibration: Calibration | None = None) -> Baseline:
        """A video's own most neutral frames.

        1. Start from the per-feature median of all complete frames (a person is neutral
           most of the time, so the median is near neutral).
        2. Score every frame by how far it is from that reference in calibrated units:
           the sum over the 12 components of |x| (clipped at 1, so one wild feature cannot
           dominate).
        3. Keep the ``fraction`` of frames with the lowest score (at least one) and take their
           per-feature median; repeat steps 2-3 once with that as the reference.
        """
        if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
            raise InputError(f"fraction must be in (0, 1], got {fraction!r}")
        arr = _raw_matrix(raw)
        ok = np.isfinite(arr).all(axis=1)
        if not ok.any():
            raise InputError("cannot self-calibrate: no frame has all 12 raw features "
                             "(no face found?)")
        frames = arr[ok]
        cal = calibration or Calibration.default()
        k = max(1, math.ceil(fraction * frames.shape[0]))
        ref = np.median(frames, axis=0)
        for _ in range(2):
            score = np.abs(cal.apply(frames, ref)).sum(axis=1)
            keep = np.argsort(score, kind="stable")[:k]
            ref = np.median(frames[keep], axis=0)
        return cls(ref, f"self-calibrated: {k} most neutral of {frames.shape[0]} frames", k)

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
        return {"format": BASELINE_FORMAT, "source": self.source, "n_frames": self.n_frames,
                "features": {f: float(v) for f, v in zip(RAW_FEATURES, self.values, strict=True)}}

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
        return cls(np.array(values), str(data.get("source", "")), int(data.get("n_frames", 0)))

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
    return Baseline(values, f"population: {what} of {scheme.name}", 1)


# ----------------------------------------------------------------------------- measure
BaselineSpec = Baseline | Mapping[Hashable, Baseline] | str | None


def measure(landmarks: Any, scheme: LandmarkScheme | str, baseline: BaselineSpec = None,
            calibration: Calibration | str | os.PathLike | None = None, *,
            groups: Any = None) -> np.ndarray:
    """The 12 component measurements ``(n, 12)`` in [-1, 1], SPEC order, from landmarks.

    ``landmarks``: ``(n, K, 2|3)`` in pixels (or any isotropic unit) of ``scheme``.
    ``baseline``: a :class:`Baseline`; ``None`` or ``"population"`` for the scheme's
    population default; ``"self"`` to self-calibrate on these frames (per subject when
    ``groups`` is given); or a mapping ``{subject key: Baseline}`` used with ``groups``
    (one key per frame). ``calibration``: a :class:`Calibration`, a path, or None for the
    shipped one. A component is NaN where the landmarks it needs are missing, so a frame with
    no face is a NaN row, and ``"self"`` on frames without one complete face gives NaN rows:
    missing data never raises (bad arguments do, as InputError).
    """
    scheme = LandmarkScheme.load(scheme)
    cal = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
    raw = raw_features(scheme.named(landmarks))
    neutral = resolve_baseline(raw, scheme, baseline, cal, groups)
    return cal.apply(raw, neutral)


def _self_or_nan(raw: np.ndarray, calibration: Calibration) -> np.ndarray:
    if not np.isfinite(raw).all(axis=1).any():
        return np.full(N_FEATURES, np.nan)
    return Baseline.self_calibrate(raw, calibration=calibration).values


def resolve_baseline(raw: np.ndarray, scheme: LandmarkScheme, baseline: BaselineSpec,
                     calibration: Calibration, groups: Any = None) -> np.ndarray:
    """Neutral raw features for each frame: ``(12,)`` or ``(n, 12)``."""
    n = raw.shape[0]
    keys = None
    if groups is not None:
        keys = np.asarray(groups)
        if keys.shape != (n,):
            raise InputError(f"groups must have one key per frame ({n}), got shape {keys.shape}")
    if baseline is None or (isinstance(baseline, str) and baseline == "population"):
        return Baseline.population(scheme).values
    if isinstance(baseline, Baseline):
        return baseline.values
    if isinstance(baseline, str):
        if baseline != "self":
            raise InputError(f"unknown baseline {baseline!r}: use 'population', 'self', "
                             "a Baseline, or a mapping of subject -> Baseline")
        # Self-calibration inside measure() never raises: a video (or subject) without a
        # single complete frame gets a NaN baseline, hence NaN rows ("unknown" labels).
        if keys is None:
            return _self_or_nan(raw, calibration)
        uniq, inverse = np.unique(keys, return_inverse=True)
        table = np.stack([_self_or_nan(raw[inverse == g], calibration)
                          for g in range(len(uniq))])
        return table[inverse]
    if isinstance(baseline, Mapping):
        if keys is None:
            raise InputError("a per-subject baseline mapping needs groups= (one key per frame)")
        uniq, inverse = np.unique(keys, return_inverse=True)
        table = np.empty((len(uniq), N_FEATURES))
        for g, key in enumerate(uniq):
            label = key.item() if hasattr(key, "item") else key
            b = baseline.get(label)
            if not isinstance(b, Baseline):
                first = int(np.flatnonzero(inverse == g)[0])
                raise InputError(f"no baseline for subject {label!r} (first at frame index "
                                 f"{first})")
            table[g] = b.values
        return table[inverse]
    raise InputError(f"baseline must be a Baseline, a mapping, 'population' or 'self', "
                     f"got {type(baseline).__name__}")
