"""``annotate``: images and videos -> one table row per frame per face.

The flow composes the library's parts and adds no face or emotion knowledge of its own::

    read_frames (background decoding) -> FaceLandmarker (MediaPipe, vendored model)
      -> [One Euro smoothing of landmarks] -> LandmarkScheme("mediapipe478").named
      -> raw_features -> baseline + Calibration -> [smoothing of measurements]
      -> Engine.evaluate (ONE call over all frames) -> DataFrame (OpenFace-style columns)

Columns, in order: ``source``, ``frame`` (1-based), ``face_id``, ``timestamp`` (s),
``confidence``, ``success`` (0/1), the head pose ``pose_Tx, pose_Ty, pose_Tz`` (mm) and
``pose_Rx, pose_Ry, pose_Rz`` (radians, OpenFace 2.0's convention, ``fuzzyemo._pose``),
``quality`` (reasons not to trust the face, ``fuzzyemo._quality``), ``x_0..x_477``,
``y_0..y_477`` (pixels), the 12
measurements (named as the components), the engine's result columns (``<component>_code``,
``activation_<emotion>``, ``eccentricity_<emotion>``, the 18 scores, ``label``,
``class_index``; see ``fuzzyemo._table``) and MediaPipe's 52 blendshapes ``bs_<name>``.
A frame without a face is one row with ``success = 0``, NaN numbers and label ``unknown``.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._errors import InputError
from ._geometry import (
    Baseline,
    Calibration,
    NeutralReference,
    NeutralWarning,
    raw_features,
    resolve_neutral,
)
from ._landmark_tables import is_landmark_table
from ._landmarks import LandmarkScheme
from ._mediapipe import (
    BLENDSHAPE_NAMES,
    DETECTORS,
    MODEL_NAME,
    MODEL_SHA256,
    N_BLENDSHAPES,
    N_LANDMARKS,
    FaceLandmarker,
    Faces,
    mediapipe_version,
)
from ._pose import POSE_COLUMNS
from ._quality import assess
from ._rulebase import RuleBase
from ._smoothing import OneEuro, smooth_tracks
from ._table import METADATA_KEY, results_frame, rulebase_metadata
from ._table import write_table as _write_table
from ._video import Frame, Source, collect_sources, read_frames
from ._vocab import COMPONENTS

SCHEME = "mediapipe478"
META_COLUMNS = ("source", "frame", "face_id", "timestamp", "confidence", "success")
QUALITY_COLUMN = "quality"  # after the pose columns, before the landmarks
BASELINE_COLUMN = "baseline_frame"  # after quality: frames used as the neutral reference
VIDEO_CHECK_S = 1.0  # video faces: misfit re-checked when a track starts and every second
X_COLUMNS = tuple(f"x_{i}" for i in range(N_LANDMARKS))
Y_COLUMNS = tuple(f"y_{i}" for i in range(N_LANDMARKS))
# MediaPipe names its first category "_neutral"; the column drops the underscore.
BLENDSHAPE_COLUMNS = tuple(f"bs_{n.lstrip('_')}" for n in BLENDSHAPE_NAMES)
BASELINES = ("auto", "self", "population")
_TRACK_STRIDE = 1 << 16  # track key = source index * stride + face_id


# ----------------------------------------------------------------------------- public API
def annotate(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    rules: str | os.PathLike | RuleBase | None = None,
    baseline: str | os.PathLike | Baseline = "auto",
    every: int = 1,
    max_faces: int = 1,
    smoothing: str | OneEuro | None = None,
    progress: bool = True,
    *,
    calibration: str | os.PathLike | Calibration | None = None,
    model_path: str | os.PathLike | None = None,
    queue_size: int = 8,
    detector: str = "auto",
    verify: bool = True,
    min_confidence: float = 0.0,
    scheme: str | os.PathLike | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Landmark, measure and label every frame of images, folders of images and videos.

    Parameters
    ----------
    inputs: a path or paths: images, videos (anything OpenCV decodes) or folders of them.
    rules: a rule directory, a loaded :class:`RuleBase`, or None for the shipped rules.
        The directory's ``calibration.yaml`` is used when it has one.
    baseline: what "neutral" is (docs/geometry.md section 5):
        ``"auto"`` (default): each video's own most neutral frames, per face (self-
        calibration); the population default for still images.
        ``"self"``: self-calibration for videos as above, and for still images over all the
        images of the same folder (e.g. one person's photos).
        ``"population"``: the mean face of the MediaPipe scheme for everything.
        a path to a baseline JSON (``Baseline.save``) or a :class:`Baseline`: that face.
    every: landmark every N-th frame of videos (frame numbers stay the video's own).
    max_faces: faces looked for per frame; ``face_id`` follows each face through a video by
        position (0 = the first face found).
    smoothing: None, ``"landmarks"``, ``"measurements"`` or a :class:`OneEuro` with tuned
        parameters: a One Euro filter over each face's track (docs/annotate.md).
    progress: a progress bar with frames/s on stderr.
    calibration: override the calibration file (default: the rule directory's, else shipped).
    model_path: another FaceLandmarker ``.task`` file (default: the vendored, hash-checked one).
    detector: how faces are found in still images: ``"auto"`` (default; the full-range
        stage when ``max_faces > 1``), ``"short-range"`` (the landmarker's own detector only)
        or ``"full-range"`` (always add BlazeFace full-range over the image and its tiles).
        Videos always use the landmarker's tracking.
    verify: check that each face's landmarks fit (the ``misfit`` quality reason): stills are
        re-landmarked on a crop around every face, video faces when their track starts and
        then every second.
    scheme: for landmark tables (``.csv`` from OpenFace 2.0 or py-feat, iBUG ``.pts``): the
        landmark scheme, when the point count does not say it (see :func:`annotate_tables`).
    min_confidence: rows whose ``confidence`` is below this get the label ``unknown`` and
        class index -2 (their measurements and scores are kept). 0 (default) keeps every
        rule label; 0.5 drops all faces beyond the pose limit or with a misfit.
    workers: worker processes for the sources (default 1: this process; None: every core).
        Each unit of work (a video, an image; under ``baseline="self"`` the stills of one
        folder) is landmarked and labelled on its own, so the table is the same, byte for
        byte once written, whatever the number of workers.
    scheduler, scheduler_file: run the units on a Dask cluster instead (its scheduler's
        address, ``tcp://host:port``, or its scheduler file; the ``[distributed]`` extra).
        The inputs must be readable at the same paths on every worker.

    Returns a DataFrame (columns in the module docstring) whose ``attrs["fuzzyemo"]`` holds the
    provenance that :func:`write_table` stores (rule hash, model hash, versions, options).
    """
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if any(is_landmark_table(p) for p in paths):
        # Landmarks another tool found: geometry only, no MediaPipe, in this process (a
        # table of thousands of frames measures in a fraction of a second).
        if not all(is_landmark_table(p) for p in paths):
            raise InputError("landmark tables (.csv, .pts) and images or videos cannot be "
                             "annotated in one run: run them separately")
        return annotate_tables(paths, rules, baseline, scheme=scheme, calibration=calibration,
                               smoothing=smoothing, min_confidence=min_confidence)
    opts = annotate_options(every=every, max_faces=max_faces, detector=detector, verify=verify,
                            min_confidence=min_confidence, smoothing=smoothing,
                            baseline=baseline, model_path=model_path, queue_size=queue_size)
    from ._scale.annotate_run import annotate_units

    t0 = time.perf_counter()
    # Rules, calibration and landmark scheme are parsed (YAML, ~0.1-1 s) in a helper thread
    # while frames are landmarked; they are only needed afterwards. A broken rule file still
    # stops the run at once: the frame loop checks the helper after every frame.
    with ThreadPoolExecutor(1, thread_name_prefix="fuzzyemo-rules") as pool:
        prep = pool.submit(_prepare, rules, calibration)
        try:
            sources = collect_sources(inputs)
            started = time.perf_counter()
            # One table per unit of work (a video, an image; under baseline "self" the
            # stills of one folder), in input order; workers > 1 runs units in parallel.
            tables = annotate_units(sources, opts, prep, workers=workers, scheduler=scheduler,
                                    scheduler_file=scheduler_file, progress=progress)
            landmark_s = time.perf_counter() - started
        except BaseException:
            prep.cancel()
            raise
    df = combine_tables(tables, sources)
    # Timing lives outside "fuzzyemo" and is never written: equal inputs give equal bytes.
    df.attrs["timing"] = {"landmarking_s": landmark_s,
                          "total_s": time.perf_counter() - t0}
    return df


@dataclass(frozen=True)
class AnnotateOptions:
    """Everything but the rules that decides :func:`annotate`'s rows (checked, picklable:
    it travels to worker processes and Dask workers). ``baseline`` is a keyword of
    :data:`BASELINES` or a loaded :class:`Baseline`."""

    every: int = 1
    max_faces: int = 1
    detector: str = "auto"
    verify: bool = True
    min_confidence: float = 0.0
    smoothing: OneEuro | None = None
    baseline: str | Baseline = "auto"
    model_path: str | None = None
    queue_size: int = 8

    def metadata(self) -> dict[str, Any]:
        """The option fields of the output metadata (as :func:`annotate` has always written)."""
        return {
            "model": MODEL_NAME if self.model_path is None else str(self.model_path),
            "model_sha256": MODEL_SHA256 if self.model_path is None else None,
            "landmark_scheme": SCHEME,
            "every": self.every, "max_faces": self.max_faces, "detector": self.detector,
            "verify": self.verify, "min_confidence": self.min_confidence,
            "smoothing": self.smoothing.to_dict() if self.smoothing is not None else None,
        }


def annotate_options(every: int = 1, max_faces: int = 1, detector: str = "auto",
                     verify: bool = True, min_confidence: float = 0.0,
                     smoothing: str | OneEuro | None = None,
                     baseline: str | os.PathLike | Baseline = "auto",
                     model_path: str | os.PathLike | None = None,
                     queue_size: int = 8) -> AnnotateOptions:
    """Check :func:`annotate`'s options (one-line :class:`InputError`) and bundle them."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InputError(f"every must be a positive integer, got {every!r}")
    if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 1:
        raise InputError(f"max_faces must be a positive integer, got {max_faces!r}")
    if detector not in DETECTORS:
        raise InputError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) \
            or not 0.0 <= float(min_confidence) <= 1.0:
        raise InputError(f"min_confidence must be a number in [0, 1], got {min_confidence!r}")
    smooth = OneEuro.parse(smoothing)
    fixed = _fixed_baseline(baseline)
    return AnnotateOptions(every, max_faces, detector, bool(verify), float(min_confidence),
                           smooth, fixed if fixed is not None else str(baseline),
                           None if model_path is None else str(model_path), queue_size)


def annotate_sources(sources: list[Source], opts: AnnotateOptions, prep: Future | None = None,
                     prepared: tuple[RuleBase, Any, Calibration, LandmarkScheme] | None = None,
                     progress: Any = False) -> pd.DataFrame:
    """Landmark, measure and label one unit of work (sources that are calibrated together).

    ``prepared`` is ``_prepare``'s result, or ``prep`` a future of it (then the rules are
    parsed while the frames are landmarked). ``progress`` is a bool or an object with
    ``step(source)``, called once per frame. Returns the unit's table with its metadata in
    ``attrs["fuzzyemo"]``; NeutralWarnings are issued with ``warnings.warn``.
    """
    acc = _landmark_all(sources, opts.every, opts.max_faces, progress, opts.model_path,
                        opts.queue_size, prep, detector=opts.detector, verify=opts.verify)
    rb, engine, cal, scheme = prepared if prepared is not None else prep.result()
    fixed = opts.baseline if isinstance(opts.baseline, Baseline) else None
    df, baseline_text = _measure_and_label(acc, sources, engine, cal, scheme, opts.baseline,
                                           fixed, opts.smoothing, opts.min_confidence)
    df.attrs["fuzzyemo"] = rulebase_metadata(
        rb, **opts.metadata(), mediapipe_version=mediapipe_version(),
        calibration_sha256=cal.sha256, baseline=baseline_text,
        inputs=[s.name for s in sources],
        frames=int(len(np.unique(acc["frame_key"]))), rows=int(len(df)))
    return df


def combine_tables(tables: list[pd.DataFrame], sources: list[Source]) -> pd.DataFrame:
    """The units' tables as one, in order, with one metadata record for all of them."""
    df = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    meta = dict(tables[0].attrs["fuzzyemo"])
    meta.update(inputs=[s.name for s in sources],
                frames=sum(int(t.attrs["fuzzyemo"]["frames"]) for t in tables),
                rows=int(len(df)))
    df.attrs = {"fuzzyemo": meta}
    return df


def _measure_and_label(acc: dict[str, np.ndarray], sources: list[Source], engine: Any,
                       cal: Calibration, scheme: LandmarkScheme, baseline: Any,
                       fixed: Baseline | None, smooth: OneEuro | None,
                       min_confidence: float) -> tuple[pd.DataFrame, str]:
    """Landmarks and blendshapes of every row -> the 12 measurements -> labels -> the table."""
    lm, t, track = acc["landmarks"], acc["timestamp"], acc["track"]
    if smooth is not None and smooth.target == "landmarks":
        lm = _smooth_landmarks(lm, t, track, scheme, smooth)
    raw = raw_features(scheme.named(lm))
    evidence = cal.evidence(acc["blendshapes"])
    ref, baseline_text = _neutral(raw, evidence, scheme, cal, baseline, fixed, sources, acc)
    for note in ref.notes:
        warnings.warn(note, NeutralWarning, stacklevel=3)
    acc["baseline_frame"] = ref.used
    x = cal.apply(raw, ref.values, population=ref.population, evidence=evidence,
                  neutral_evidence=ref.evidence)
    if smooth is not None and smooth.target == "measurements":
        x = np.clip(smooth_tracks(x, t, track, smooth), -1.0, 1.0)
    result = engine.evaluate(x)  # one batched call for every frame of every input
    return _frame(sources, acc, lm, x, result, min_confidence), baseline_text


def relabel(table: pd.DataFrame, kinds: dict[str, str] | None = None,
            rules: str | os.PathLike | RuleBase | None = None,
            baseline: str | os.PathLike | Baseline = "auto", *,
            calibration: str | os.PathLike | Calibration | None = None,
            smoothing: str | OneEuro | None = None,
            min_confidence: float = 0.0) -> pd.DataFrame:
    """Measure and label an :func:`annotate` table again, without landmarking again.

    For trying other rules, another calibration or baseline on frames already landmarked:
    ``table`` needs annotate's ``source, frame, face_id, timestamp, confidence, success``,
    ``x_*``/``y_*`` landmark columns and ``bs_*`` blendshapes (pose and quality columns are
    carried over when present). ``kinds`` maps a source name to ``"video"`` or ``"image"``
    (default: a source with more than one frame number is a video). Returns the same
    columns as :func:`annotate` with the new measurements and labels.
    """
    missing = [c for c in (*META_COLUMNS, *X_COLUMNS[:1], *BLENDSHAPE_COLUMNS[:1])
               if c not in table.columns]
    if missing:
        raise InputError("relabel needs an annotate table; missing column(s): "
                         + ", ".join(missing[:5]))
    rb, engine, cal, scheme = _prepare(rules, calibration)
    smooth = OneEuro.parse(smoothing)
    fixed = _fixed_baseline(baseline)
    names = list(dict.fromkeys(table["source"].astype(str)))
    index = {n: i for i, n in enumerate(names)}
    src = table["source"].astype(str).map(index).to_numpy(np.int32)
    frames = table["frame"].to_numpy(np.int32)
    kinds = dict(kinds or {})
    for n in names:
        if n not in kinds:
            kinds[n] = "video" if len(np.unique(frames[src == index[n]])) > 1 else "image"
    sources = [Source(Path(n), kinds[n]) for n in names]
    n = len(table)
    lm = np.zeros((n, N_LANDMARKS, 3), np.float32)
    lm[:, :, 0] = table[list(X_COLUMNS)].to_numpy(np.float32)
    lm[:, :, 1] = table[list(Y_COLUMNS)].to_numpy(np.float32)
    success = table["success"].to_numpy(np.int8)
    lm[success == 0] = np.nan
    face_id = table["face_id"].to_numpy(np.int16)
    pose = (table[list(POSE_COLUMNS)].to_numpy(np.float64) if set(POSE_COLUMNS) <= set(table)
            else np.full((n, len(POSE_COLUMNS)), np.nan))
    acc = {
        "landmarks": lm,
        "blendshapes": table[list(BLENDSHAPE_COLUMNS)].to_numpy(np.float64),
        "source": src, "frame": frames, "face_id": face_id,
        "timestamp": table["timestamp"].to_numpy(np.float64),
        "confidence": table["confidence"].to_numpy(np.float32),
        "success": success, "pose": pose,
        "quality": (table[QUALITY_COLUMN].astype(str).to_numpy() if QUALITY_COLUMN in table
                    else np.full(n, "", object)),
        "frame_key": src.astype(np.int64) * (1 << 32) + frames,
        "track": src.astype(np.int64) * _TRACK_STRIDE + face_id,
    }
    df, baseline_text = _measure_and_label(acc, sources, engine, cal, scheme, baseline, fixed,
                                           smooth, float(min_confidence))
    meta = dict(table.attrs.get("fuzzyemo") or {})
    meta.update(rulebase_metadata(rb, calibration_sha256=cal.sha256, baseline=baseline_text,
                                  smoothing=smooth.to_dict() if smooth is not None else None,
                                  relabelled=True))
    df.attrs["fuzzyemo"] = meta
    return df


def annotate_tables(
    inputs: Iterable[str | os.PathLike],
    rules: str | os.PathLike | RuleBase | None = None,
    baseline: str | os.PathLike | Baseline = "auto",
    *,
    scheme: str | os.PathLike | None = None,
    calibration: str | os.PathLike | Calibration | None = None,
    smoothing: str | OneEuro | None = None,
    min_confidence: float = 0.0,
) -> pd.DataFrame:
    """Measure and label landmarks another tool found: OpenFace 2.0 CSV, py-feat Fex CSV,
    iBUG ``.pts`` (docs/annotate.md, "From OpenFace, py-feat and .pts files").

    Every file is read and checked before any is measured (:func:`read_landmark_table`).
    The scheme comes from the point count (68: ibug68, 66: disfa66, 98: wflw98) unless
    ``scheme`` forces one; all files of a run share it. A file with more than one frame is
    measured like a video (self-calibrated per ``face_id`` under baseline ``auto``); a single
    frame (a ``.pts``) against the population. The table has annotate's columns with the
    source's own frame numbers, timestamps, confidence and success, its landmarks in its
    scheme (``x_0..x_{K-1}``), its pose columns and its AU columns; geometry alone measures
    (no blendshapes). Failed frames are ``unknown`` rows.
    """
    from ._landmark_tables import read_landmark_table

    smooth = OneEuro.parse(smoothing)
    fixed = _fixed_baseline(baseline)
    tables = [read_landmark_table(p, scheme) for p in inputs]
    if not tables:
        raise InputError("no landmark table given")
    names = {t.scheme.name for t in tables}
    if len(names) > 1:
        raise InputError("landmark tables of one run must share a scheme; got "
                         + ", ".join(f"{t.path} ({t.scheme.name})" for t in tables))
    rb, engine, cal, _ = _prepare(rules, calibration)
    lm_scheme = tables[0].scheme
    sources = [Source(t.path, "video" if len(t) > 1 else "image", len(t)) for t in tables]
    n = sum(len(t) for t in tables)
    src = np.concatenate([np.full(len(t), i, np.int32) for i, t in enumerate(tables)])
    face_id = np.concatenate([t.face_id for t in tables]).astype(np.int16)
    k = lm_scheme.n_points
    lm = np.full((n, k, 3), np.nan, np.float32)
    lm[:, :, :2] = np.concatenate([t.landmarks for t in tables])
    pose = np.full((n, len(POSE_COLUMNS)), np.nan)
    extra = pd.concat([t.extra for t in tables], ignore_index=True)
    for j, col in enumerate(POSE_COLUMNS):
        if col in extra.columns:  # OpenFace's pose is ours (same convention and units)
            pose[:, j] = extra.pop(col).to_numpy(float)
    frame = np.concatenate([t.frame for t in tables])
    acc = {
        "landmarks": lm,
        "blendshapes": np.full((n, N_BLENDSHAPES), np.nan),
        "source": src, "frame": frame, "face_id": face_id,
        "timestamp": np.concatenate([t.timestamp for t in tables]),
        "confidence": np.concatenate([t.confidence for t in tables]),
        "success": np.concatenate([t.success for t in tables]).astype(np.int8),
        "pose": pose, "quality": np.full(n, "", object),
        "frame_key": src.astype(np.int64) * (1 << 32) + frame,
        "track": src.astype(np.int64) * _TRACK_STRIDE + face_id,
        "extra": extra,
    }
    df, baseline_text = _measure_and_label(acc, sources, engine, cal, lm_scheme, baseline,
                                           fixed, smooth, float(min_confidence))
    df.attrs["fuzzyemo"] = rulebase_metadata(
        rb, landmark_scheme=lm_scheme.name, calibration_sha256=cal.sha256,
        baseline=baseline_text, smoothing=smooth.to_dict() if smooth is not None else None,
        min_confidence=float(min_confidence), inputs=[s.name for s in sources],
        source_kinds=[t.kind for t in tables], rows=int(len(df)))
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike,
                metadata: dict[str, Any] | None = None) -> Path:
    """Write ``annotate``'s table: parquet (default) or CSV when ``path`` ends in ``.csv``.

    Atomic (temp file, then rename). Parquet stores ``df.attrs["fuzzyemo"]`` updated with
    ``metadata`` (rules_sha256, fuzzyemo_version, model_sha256, ...) as JSON under the schema
    key ``fuzzyemo``; the same table and metadata give the same bytes.
    """
    meta = dict(df.attrs.get("fuzzyemo") or {})
    meta.update(metadata or {})
    # pandas copies attrs into the parquet's "pandas" metadata too; the timing must stay out
    # of the file so that equal inputs give equal bytes.
    clean = df.copy(deep=False)
    clean.attrs = {}
    return _write_table(clean, path, meta)


def read_annotations(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A table written by :func:`write_table` and its fuzzyemo metadata (parquet only)."""
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return table.to_pandas(), (json.loads(raw) if raw else {})


# ----------------------------------------------------------------------------- options
def _prepare(rules: Any, calibration: Any) -> tuple[RuleBase, Any, Calibration, LandmarkScheme]:
    rb = rules if isinstance(rules, RuleBase) else RuleBase.load(rules)
    return rb, rb.compile(), _calibration(calibration, rb), LandmarkScheme.load(SCHEME)


def _calibration(calibration: Any, rb: RuleBase) -> Calibration:
    if isinstance(calibration, Calibration):
        return calibration
    if calibration is not None:
        return Calibration.load(calibration)
    src = Path(rb.source) if rb.source else None
    return Calibration.load(src if src is not None and src.is_dir() else None)


def _fixed_baseline(baseline: Any) -> Baseline | None:
    """A Baseline for explicit baselines (object or file), None for the keyword ones."""
    if isinstance(baseline, Baseline):
        return baseline
    if isinstance(baseline, str) and baseline in BASELINES:
        return None
    if isinstance(baseline, (str, os.PathLike)):
        p = Path(baseline)
        if not p.is_file():
            raise InputError(f"baseline {str(baseline)!r} is neither one of "
                             f"{', '.join(BASELINES)} nor an existing baseline file")
        return Baseline.load(p)
    raise InputError(f"baseline must be one of {', '.join(BASELINES)}, a baseline file or a "
                     f"Baseline, got {type(baseline).__name__}")


# ----------------------------------------------------------------------------- landmarking
class _Columns:
    """Grow-only per-row buffers (amortised doubling), so a long video costs no per-frame
    list of small arrays and no final concatenation of thousands of pieces."""

    def __init__(self, capacity: int = 256) -> None:
        self.n = 0
        self.cap = max(16, capacity)
        self.deferred: list[tuple[int, Future, int]] = []
        self.arrays: dict[str, np.ndarray] = {
            "landmarks": np.empty((self.cap, N_LANDMARKS, 3), np.float32),
            "blendshapes": np.empty((self.cap, N_BLENDSHAPES), np.float32),
            "source": np.empty(self.cap, np.int32),
            "frame": np.empty(self.cap, np.int32),
            "face_id": np.empty(self.cap, np.int16),
            "timestamp": np.empty(self.cap, np.float64),
            "confidence": np.empty(self.cap, np.float32),
            "success": np.empty(self.cap, np.int8),
            "pose": np.empty((self.cap, 6), np.float64),
            "misfit": np.empty(self.cap, np.float32),
            "width": np.empty(self.cap, np.int32),
            "height": np.empty(self.cap, np.int32),
            "frame_key": np.empty(self.cap, np.int64),
        }

    def _grow(self, need: int) -> None:
        if self.n + need <= self.cap:
            return
        self.cap = max(self.cap * 2, self.n + need)
        for k, a in self.arrays.items():
            b = np.empty((self.cap, *a.shape[1:]), a.dtype)
            b[: self.n] = a[: self.n]
            self.arrays[k] = b

    def add(self, frame: Frame, faces: Faces, ids: np.ndarray, serial: int) -> None:
        k = max(len(faces), 1)
        self._grow(k)
        s = slice(self.n, self.n + k)
        a = self.arrays
        if len(faces):
            a["landmarks"][s] = faces.landmarks
            a["blendshapes"][s] = faces.blendshapes
            a["confidence"][s] = faces.confidence
            a["success"][s] = 1
            a["pose"][s] = faces.pose
            a["misfit"][s] = faces.misfit
            a["face_id"][s] = ids
        else:  # no face: one row of NaNs, face 0
            a["landmarks"][s] = np.nan
            a["blendshapes"][s] = np.nan
            a["confidence"][s] = 0.0
            a["success"][s] = 0
            a["pose"][s] = np.nan
            a["misfit"][s] = np.nan
            a["face_id"][s] = 0
        a["source"][s] = frame.index
        a["frame"][s] = frame.number
        a["timestamp"][s] = frame.timestamp
        a["frame_key"][s] = serial
        a["height"][s], a["width"][s] = frame.rgb.shape[:2]
        self.n += k

    def defer_misfit(self, row: int, result: Future, j: int) -> None:
        """Row ``row``'s misfit is element ``j`` of ``result`` (a check still running)."""
        self.deferred.append((row, result, j))

    def finish(self) -> dict[str, np.ndarray]:
        for row, result, j in self.deferred:  # the checks ran beside the landmarking
            self.arrays["misfit"][row] = result.result()[j]
        self.deferred = []
        out = {k: v[: self.n] for k, v in self.arrays.items()}
        out["track"] = out["source"].astype(np.int64) * _TRACK_STRIDE + out["face_id"]
        # One quality rule for every row (stills and video frames alike).
        out["quality"], conf = assess(out["landmarks"], out["pose"], out["width"],
                                      out["height"], out["misfit"])
        out["confidence"] = conf.astype(np.float32)
        return out


class _Tracker:
    """Stable face ids within a video: each face keeps the id of the nearest face of the
    previous frame (greedy, by landmark centroid, within one face width); new faces get the
    next free id. Loops over faces only (a handful), never over points."""

    def __init__(self) -> None:
        self.last: dict[int, np.ndarray] = {}
        self.next_id = 0

    def reset(self) -> None:
        self.last, self.next_id = {}, 0

    def assign(self, faces: Faces, video: bool) -> np.ndarray:
        n = len(faces)
        if n == 0:
            return np.empty(0, np.int16)
        centres = faces.landmarks[:, :, :2].mean(axis=1)
        if not video:  # stills: left to right
            return np.argsort(np.argsort(centres[:, 0], kind="stable")).astype(np.int16)
        width = np.ptp(faces.landmarks[:, :, 0], axis=1)
        ids = np.full(n, -1, np.int64)
        if self.last:
            prev_ids = np.array(list(self.last))
            prev = np.stack([self.last[i] for i in prev_ids])
            d = np.linalg.norm(centres[:, None, :] - prev[None, :, :], axis=2)
            for flat in np.argsort(d, axis=None, kind="stable"):
                i, j = divmod(int(flat), len(prev_ids))
                if ids[i] < 0 and prev_ids[j] not in ids and d[i, j] <= width[i]:
                    ids[i] = prev_ids[j]
        for i in np.flatnonzero(ids < 0):
            ids[i] = self.next_id
            self.next_id += 1
        self.last = {int(ids[i]): centres[i] for i in range(n)}
        return ids.astype(np.int16)


def _reorder(faces: Faces, ids: np.ndarray) -> tuple[Faces, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    if np.array_equal(order, np.arange(len(ids))):
        return faces, ids
    return faces.take(order), ids[order]


class _VideoChecks:
    """The misfit check for video faces: run when a face's track starts and then every
    ``VIDEO_CHECK_S`` seconds; in between, a face carries its track's last result.

    A check re-landmarks a crop with a second MediaPipe task (about five frames' work), so it
    runs on its own thread beside the landmarking of the next frames (MediaPipe releases the
    GIL) and its result is filled in when the columns are finished: which frames get which
    check's result depends on timestamps only, never on timing, so the output is the same.
    """

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self.executor = executor
        self.last: dict[int, tuple[float, Future, int]] = {}  # face id -> (time, check, j)
        self.running: list[Future] = []

    def reset(self) -> None:
        """A new source: wait for the checks still running (their task closes next); their
        errors, if any, are raised where the results are read (``_Columns.finish``)."""
        wait(self.running)
        self.running = []
        self.last = {}

    def apply(self, lm: FaceLandmarker, frame: Frame, faces: Faces, ids: np.ndarray
              ) -> list[tuple[int, Future, int]]:
        """Start the checks due on this frame; ``(face position, check, j)`` per face."""
        if len(faces) == 0:
            self.last = {}  # the track is lost: the next face starts a new one
            return []
        t = frame.timestamp
        keys = [int(i) for i in ids]
        due = [k not in self.last or t - self.last[k][0] >= VIDEO_CHECK_S for k in keys]
        if any(due):
            check = self.executor.submit(lm.check, frame.rgb, faces.landmarks[np.array(due)])
            self.running = [c for c in self.running if not c.done()] + [check]
            for j, k in enumerate(k for k, d in zip(keys, due, strict=True) if d):
                self.last[k] = (t, check, j)
        self.last = {k: v for k, v in self.last.items() if k in set(keys)}
        return [(pos, self.last[k][1], self.last[k][2]) for pos, k in enumerate(keys)]


def _landmark_all(sources: list[Source], every: int, max_faces: int, progress: Any,
                  model_path: Any, queue_size: int, prep: Future | None = None, *,
                  detector: str = "auto", verify: bool = True) -> dict[str, np.ndarray]:
    total = sum(-(-max(s.n_frames, 1) // every) if s.kind == "video" else 1 for s in sources)
    cols = _Columns(capacity=min(total * max_faces + 16, 4096))  # grows by doubling
    tracker = _Tracker()
    with contextlib.ExitStack() as stack:
        checks = _VideoChecks(stack.enter_context(ThreadPoolExecutor(1, "fuzzyemo-check")))
        bar = stack.enter_context(_progress(progress, total))
        frames = stack.enter_context(contextlib.closing(
            read_frames(sources, every=every, queue_size=queue_size)))
        image_lm: FaceLandmarker | None = None    # stills
        recover_lm: FaceLandmarker | None = None  # video frames after a lost track
        video_lm: FaceLandmarker | None = None
        current = -1
        had_face = False
        try:
            for serial, frame in enumerate(frames):
                video = frame.source.kind == "video"
                if frame.index != current:
                    current = frame.index
                    had_face = False
                    tracker.reset()
                    checks.reset()
                    if video_lm is not None:  # one VIDEO-mode task per video (timestamps restart)
                        video_lm.close()
                        video_lm = None
                    if video:
                        video_lm = FaceLandmarker("video", max_faces, model_path=model_path,
                                                  verify=False)
                        stack.callback(video_lm.close)
                    elif image_lm is None:
                        image_lm = FaceLandmarker("image", max_faces, model_path=model_path,
                                                  detector=detector, verify=verify)
                        stack.callback(image_lm.close)
                if video:
                    assert video_lm is not None
                    faces = video_lm._detect(frame.rgb, int(round(frame.timestamp * 1000)),
                                             judge=False)
                    if len(faces) == 0 and had_face:
                        # VIDEO mode tracks the previous face's region; after a cut to another
                        # face it reports nothing for a frame before detecting again. A fresh
                        # IMAGE-mode detection recovers that frame (costs one detection per lost
                        # track, not per faceless frame).
                        if recover_lm is None:
                            recover_lm = FaceLandmarker("image", max_faces, model_path=model_path,
                                                        detector="short-range", verify=False)
                            stack.callback(recover_lm.close)
                        faces = recover_lm._detect(frame.rgb, judge=False)
                    had_face = len(faces) > 0
                else:
                    assert image_lm is not None
                    faces = image_lm._detect(frame.rgb, judge=False)
                if max_faces > 1:
                    ids = tracker.assign(faces, video)
                    faces, ids = _reorder(faces, ids)
                else:
                    ids = np.zeros(len(faces), np.int16)
                pending = checks.apply(video_lm, frame, faces, ids) if video and verify else []
                cols.add(frame, faces, ids, serial)
                for pos, check, j in pending:
                    cols.defer_misfit(cols.n - len(faces) + pos, check, j)
                bar.step(frame.source)
                if prep is not None and prep.done():
                    prep.result()  # raises the rule/calibration error now, not after the video
                    prep = None
        finally:
            checks.reset()  # every check done before the tasks close
    return cols.finish()


# ----------------------------------------------------------------------------- measuring
def _smooth_landmarks(lm: np.ndarray, t: np.ndarray, track: np.ndarray,
                      scheme: LandmarkScheme, spec: OneEuro) -> np.ndarray:
    # Speed in inter-ocular distances per second, so one beta suits every face size.
    named = scheme.named(lm)
    rc = (named["right_eye_inner"] + named["right_eye_outer"]) / 2
    lc = (named["left_eye_inner"] + named["left_eye_outer"]) / 2
    iod = np.hypot(*(lc - rc).T)
    flat = lm.reshape(len(lm), -1)
    out = smooth_tracks(flat, t, track, spec, scale=iod)
    return out.reshape(lm.shape).astype(np.float32)


def _neutral(raw: np.ndarray, evidence: np.ndarray, scheme: LandmarkScheme, cal: Calibration,
             spec: Any, fixed: Baseline | None, sources: list[Source],
             acc: dict[str, np.ndarray]) -> tuple[NeutralReference, str]:
    """The neutral reference of every row and a description for the metadata."""
    if fixed is not None:
        return resolve_neutral(raw, scheme, fixed, cal), \
            f"given: {fixed.source or 'baseline file'}"
    if spec == "population":
        return resolve_neutral(raw, scheme, "population", cal), "population"
    n = raw.shape[0]
    is_video = np.array([s.kind == "video" for s in sources], bool)[acc["source"]]
    # Self-calibration groups: one per face track in a video; for stills under "self", one
    # per folder (the face_id of unrelated photos means nothing).
    folder = {s.path.parent for s in sources if s.kind == "image"}
    folder_ids = {f: i for i, f in enumerate(sorted(folder))}
    still_group = np.array([folder_ids.get(s.path.parent, -1) for s in sources],
                           np.int64)[acc["source"]]
    groups = np.where(is_video, acc["track"], -1 - still_group)
    labels: dict[int, str] = {}
    for g, src, face in zip(groups, acc["source"], acc["face_id"], strict=True):
        if int(g) not in labels:
            s = sources[int(src)]
            labels[int(g)] = (f"{s.name} face {int(face)}" if s.kind == "video"
                              else f"images in {s.path.parent}")
    self_rows = is_video if spec == "auto" else np.ones(n, bool)
    pop = resolve_neutral(raw, scheme, "population", cal)
    values = np.array(pop.values)
    ev = np.broadcast_to(cal.neutral_evidence(), (n, raw.shape[1], 2)).copy()
    population = np.ones(n, bool)
    used = np.zeros(n, bool)
    notes: tuple[str, ...] = ()
    if self_rows.any():
        # Faces beyond the pose limit or with a misfit are measured, never taken as neutral.
        usable = np.asarray(acc["confidence"], float) >= 0.5
        own = resolve_neutral(raw[self_rows], scheme, "self", cal, groups[self_rows],
                              evidence[self_rows], labels, usable[self_rows])
        values[self_rows] = own.values
        if own.evidence is not None:
            ev[self_rows] = own.evidence
        population[self_rows] = own.population
        used[self_rows] = own.used
        notes = own.notes
    text = ("auto: videos self-calibrated per face, images population" if spec == "auto"
            else "self: self-calibrated per video face and per image folder")
    return NeutralReference(values, ev, population, used, notes, text), text


# ----------------------------------------------------------------------------- table
def _frame(sources: list[Source], acc: dict[str, np.ndarray], lm: np.ndarray, x: np.ndarray,
           result: Any, min_confidence: float = 0.0) -> pd.DataFrame:
    names = np.array([s.name for s in sources], dtype=object)
    meta = pd.DataFrame({
        "source": names[acc["source"]] if len(acc["source"]) else np.array([], object),
        "frame": acc["frame"],
        "face_id": acc["face_id"],
        "timestamp": acc["timestamp"],
        "confidence": acc["confidence"],
        "success": acc["success"],
    })
    pose = pd.DataFrame(acc["pose"], columns=list(POSE_COLUMNS))
    quality = pd.DataFrame({QUALITY_COLUMN: acc["quality"].astype(str),
                            # The frames self-calibration took as the face's neutral.
                            BASELINE_COLUMN: acc.get("baseline_frame",
                                                     np.zeros(len(acc["source"]), bool))})
    k = lm.shape[1]  # 478 for MediaPipe; a landmark table's own scheme otherwise
    xs = pd.DataFrame(np.ascontiguousarray(lm[:, :, 0], dtype=np.float32),
                      columns=X_COLUMNS if k == N_LANDMARKS else [f"x_{i}" for i in range(k)])
    ys = pd.DataFrame(np.ascontiguousarray(lm[:, :, 1], dtype=np.float32),
                      columns=Y_COLUMNS if k == N_LANDMARKS else [f"y_{i}" for i in range(k)])
    comps = pd.DataFrame(x, columns=list(COMPONENTS))
    res = results_frame(result)
    if min_confidence > 0:
        # Not confident enough: the label says so, the measurements and scores stay.
        low = (acc["success"] == 1) & (acc["confidence"] < min_confidence)
        res.loc[low, "label"] = "unknown"
        res.loc[low, "class_index"] = -2
    if "extra" in acc:  # a landmark table: its own pose and AU columns, no blendshapes
        return pd.concat([meta, pose, quality, xs, ys, comps, res, acc["extra"]], axis=1)
    bs = pd.DataFrame(acc["blendshapes"], columns=BLENDSHAPE_COLUMNS)
    return pd.concat([meta, pose, quality, xs, ys, comps, res, bs], axis=1)


# ----------------------------------------------------------------------------- progress
class _NoBar:
    def step(self, source: Source) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Bar:
    """A rich progress bar on stderr: source, bar, frames done/total, frames/s, time left.
    Redraws are rate-limited by rich's own refresh thread; step() only bumps a counter."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Fps(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:6.1f} frames/s" if speed else "  ?.? frames/s")

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Fps(),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False, speed_estimate_period=5.0)
        self.task = self.progress.add_task("annotate", total=total)
        self.name: str | None = None

    def step(self, source: Source) -> None:
        if source.name != self.name:
            self.name = source.name
            shown = source.path.name
            self.progress.update(self.task, description=shown[:40])
        self.progress.advance(self.task)

    def __enter__(self) -> _Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        task = self.progress.tasks[0]
        if not exc[0] and task.total is not None and task.completed != task.total:
            # Container frame counts are estimates: end the bar at what was really done.
            self.progress.update(self.task, total=task.completed)
        self.progress.__exit__(*exc)


def _progress(enabled: Any, total: int) -> Any:
    if hasattr(enabled, "step"):  # a caller's reporter (fuzzyemo._scale: progress across workers)
        return contextlib.nullcontext(enabled)
    return _Bar(total) if enabled else _NoBar()

