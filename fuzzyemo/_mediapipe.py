"""Landmarks from pixels, offline: MediaPipe Tasks ``FaceLandmarker`` with the vendored model.

The model (``fuzzyemo/models/face_landmarker.task``, Apache-2.0, see its NOTICE.md) ships
inside the package and its sha256 is checked before MediaPipe sees it, so a truncated or
swapped file is one clear error instead of a crash deep in TFLite. Nothing is downloaded.

:class:`FaceLandmarker` is a context manager (the MediaPipe task is always closed)::

    with FaceLandmarker(mode="video", max_faces=1) as lm:
        for i, rgb in enumerate(frames):
            faces = lm.detect(rgb, timestamp_ms=i * 33)
            faces.landmarks      # (faces, 478, 3) pixels: x right, y down, z ~ x scale
            faces.blendshapes    # (faces, 52), columns BLENDSHAPE_NAMES

``mode="image"`` treats every call as an unrelated still; ``mode="video"`` tracks the face
from frame to frame (faster, steadier) and needs increasing timestamps.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError

MODEL_PATH = Path(__file__).resolve().parent / "models" / "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_NAME = "face_landmarker.task (MediaPipe FaceLandmarker v2 with blendshapes)"
N_LANDMARKS = 478
INSTALL_HINT = 'pip install "fuzzyemo[video]"'
APT_HINT = "apt-get install libegl1 libgles2 libgl1 libglib2.0-0"

# The 52 blendshape categories of face_blendshapes.tflite, in the model's index order
# (ARKit names; index 0 is the model's "_neutral"). Fixed here so that tables have the
# same columns whether or not any frame had a face; a test checks them against the model.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
N_BLENDSHAPES = len(BLENDSHAPE_NAMES)

_XYZ = attrgetter("x", "y", "z")


def require_mediapipe() -> Any:
    """Import mediapipe's vision tasks, or raise a one-line InputError with the install hint."""
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions
    except (ImportError, OSError) as exc:  # OSError: a system library (libGL...) is missing
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else "not installed"
        if isinstance(exc, OSError):
            raise InputError(f"MediaPipe cannot start: {why} (on Debian/Ubuntu: "
                             f"{APT_HINT})") from None
        raise InputError(f"landmarking images needs MediaPipe ({why}); install it with: "
                         f"{INSTALL_HINT}") from None
    return mp, vision, BaseOptions


def mediapipe_version() -> str:
    try:
        from importlib.metadata import version

        return version("mediapipe")
    except Exception:  # noqa: BLE001 - only used for provenance
        return "unknown"


@lru_cache(maxsize=4)
def _read_model(path: str, mtime_ns: int, size: int) -> bytes:
    data = Path(path).read_bytes()
    return data


def load_model(path: str | os.PathLike | None = None,
               sha256: str | None = MODEL_SHA256) -> bytes:
    """The model bytes, checked against ``sha256`` (None skips the check for a user's own
    model). Cached per (path, mtime, size)."""
    p = Path(path) if path is not None else MODEL_PATH
    try:
        st = p.stat()
        data = _read_model(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError as exc:
        raise InputError(f"{p}: cannot read the face landmarker model ({exc.strerror}); "
                         f"reinstall with: {INSTALL_HINT}") from None
    if sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise InputError(f"{p}: face landmarker model has sha256 {got[:12]}..., expected "
                             f"{sha256[:12]}... (corrupt or replaced file; reinstall fuzzyemo)")
    return data


@dataclass(frozen=True)
class Faces:
    """One image's (or frame's) faces: every array has one entry per face, in MediaPipe's order.

    ``landmarks`` ``(faces, 478, 3)`` float32 pixels (x right, y down; z is MediaPipe's
    relative depth scaled like x). ``blendshapes`` ``(faces, 52)`` in ``BLENDSHAPE_NAMES``
    order. ``confidence`` ``(faces,)``: MediaPipe's FaceLandmarker reports no per-face score,
    only faces that passed its presence threshold, so this is 1.0 for every returned face.
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return int(self.landmarks.shape[0])


def _empty_faces() -> Faces:
    return Faces(np.empty((0, N_LANDMARKS, 3), np.float32), np.empty((0, N_BLENDSHAPES)),
                 np.empty(0))


class FaceLandmarker:
    """MediaPipe's FaceLandmarker on the vendored model, as a context manager.

    Parameters
    ----------
    mode: ``"image"`` (independent stills) or ``"video"`` (frames of one video, tracked).
    max_faces: how many faces to look for per image.
    min_detection_confidence, min_presence_confidence, min_tracking_confidence: MediaPipe's
        thresholds (0.5 each by default, MediaPipe's own defaults).
    model_path: another ``.task`` file (its hash is then not checked).
    fast: read results directly from MediaPipe's C result struct (checked layout, same
        numbers as the public API, which is used when the layout differs or fast=False).
    """

    def __init__(self, mode: str = "image", max_faces: int = 1, *,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5,
                 model_path: str | os.PathLike | None = None, fast: bool = True) -> None:
        if mode not in ("image", "video"):
            raise InputError(f"mode must be 'image' or 'video', got {mode!r}")
        if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 1:
            raise InputError(f"max_faces must be a positive integer, got {max_faces!r}")
        self.mode = mode
        self.max_faces = max_faces
        mp, vision, BaseOptions = require_mediapipe()
        model = load_model(model_path, None if model_path is not None else MODEL_SHA256)
        self._mp = mp
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=model),
            running_mode=vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=True,
        )
        try:
            self._task = vision.FaceLandmarker.create_from_options(options)
        except OSError as exc:
            # MediaPipe loads its C library (and with it libEGL/libGLESv2) only here.
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"MediaPipe cannot start: {why} (it needs the system OpenGL ES "
                             f"libraries; on Debian/Ubuntu: {APT_HINT})") from None
        except RuntimeError as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"MediaPipe cannot load the face landmarker model: {why}") from None
        self._last_ms = -1
        # Read results straight from MediaPipe's C struct when its layout is the one we know
        # (saves building ~500 Python objects per face per frame); else the public API.
        self._fast = _FastResults.probe(self._task, mp) if fast else None

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        task, self._task = getattr(self, "_task", None), None
        if task is not None:
            task.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; the context manager is the normal way
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    # -- use -----------------------------------------------------------------------
    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> Faces:
        """Faces in one RGB ``uint8`` image ``(h, w, 3)``.

        In video mode ``timestamp_ms`` is required; MediaPipe needs it strictly increasing,
        so a repeated or earlier timestamp (variable-rate files, rounding) is moved to one
        millisecond after the previous one instead of failing.
        """
        if self._task is None:
            raise InputError("the face landmarker is closed; use it inside its 'with' block")
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"expected an RGB uint8 image (h, w, 3), got {rgb.dtype} "
                             f"{tuple(rgb.shape)}")
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                               data=np.ascontiguousarray(rgb))
        ts = None
        if self.mode == "video":
            if timestamp_ms is None:
                raise InputError("video mode needs a timestamp_ms for every frame")
            ts = max(int(timestamp_ms), self._last_ms + 1)
            self._last_ms = ts
        h, w = rgb.shape[:2]
        if self._fast is not None:
            return self._fast.detect(self._task, image, ts, w, h)
        result = self._task.detect(image) if ts is None else self._task.detect_for_video(image, ts)
        return _to_faces(result, w, h)


def _to_faces(result: Any, width: int, height: int) -> Faces:
    """MediaPipe's result objects to arrays, landmarks scaled to pixels."""
    n = len(result.face_landmarks)
    if n == 0:
        return _empty_faces()
    lm = np.empty((n, N_LANDMARKS, 3), dtype=np.float32)
    for i, face in enumerate(result.face_landmarks):  # faces, not points: a short loop
        lm[i] = np.array(list(map(_XYZ, face)), dtype=np.float32)
    # Normalised [0, 1] -> pixels. z is on roughly the same scale as x (MediaPipe docs).
    lm *= np.array([width, height, width], dtype=np.float32)
    bs = np.full((n, N_BLENDSHAPES), np.nan)
    for i, cats in enumerate(result.face_blendshapes):
        for c in cats:
            if 0 <= c.index < N_BLENDSHAPES:
                bs[i, c.index] = c.score
    return Faces(lm, bs, np.ones(n))


class _FastResults:
    """Results read from MediaPipe's C result struct instead of its Python objects.

    MediaPipe 1.2's ``detect``/``detect_for_video`` run the C call, then build one Python
    ``NormalizedLandmark`` per point (~1 ms per face per frame, about 10% of the landmarking
    time at 640x480). This does the same C call through the same task wrapper (status checks
    included) and views the landmark and blendshape arrays with numpy. It relies on private
    names, so :meth:`probe` checks every one of them and the struct layouts, and returns None
    (public API) on any mismatch; a test checks both paths give identical numbers.
    """

    def __init__(self, module: Any, lm_size: int, cat_size: int) -> None:
        self.module = module
        self.lm_size = lm_size
        self.cat_size = cat_size

    @classmethod
    def probe(cls, task: Any, mp: Any) -> _FastResults | None:
        import ctypes

        try:
            from mediapipe.tasks.python.vision import face_landmarker as module

            result_c = module.MpFaceLandmarkerResultC
            lm_t = result_c._fields_[0][1]._type_._fields_[0][1]._type_   # landmark struct
            cat_t = result_c._fields_[2][1]._type_._fields_[0][1]._type_  # category struct
            ok = (
                [f[0] for f in result_c._fields_[:4]] == [
                    "face_landmarks", "face_landmarks_count", "face_blendshapes",
                    "face_blendshapes_count"]
                and [(n, t) for n, t in lm_t._fields_[:3]] == [
                    ("x", ctypes.c_float), ("y", ctypes.c_float), ("z", ctypes.c_float)]
                and (lm_t.x.offset, lm_t.y.offset, lm_t.z.offset) == (0, 4, 8)
                and [(n, t) for n, t in cat_t._fields_[:2]] == [
                    ("index", ctypes.c_int), ("score", ctypes.c_float)]
                and (cat_t.index.offset, cat_t.score.offset) == (0, 4)
                and all(hasattr(task, a) for a in ("_lib", "_handle"))
                and all(hasattr(task._lib, f) for f in (
                    "MpFaceLandmarkerDetectImage", "MpFaceLandmarkerDetectForVideo",
                    "MpFaceLandmarkerCloseResult"))
                and hasattr(mp.Image(image_format=mp.ImageFormat.SRGB,
                                     data=np.zeros((2, 2, 3), np.uint8)), "_image_ptr")
            )
        except Exception:  # noqa: BLE001 - any surprise means "use the public API"
            return None
        return cls(module, ctypes.sizeof(lm_t), ctypes.sizeof(cat_t)) if ok else None

    def detect(self, task: Any, image: Any, ts: int | None, width: int, height: int) -> Faces:
        import ctypes

        res = self.module.MpFaceLandmarkerResultC()
        if ts is None:
            task._lib.MpFaceLandmarkerDetectImage(task._handle, image._image_ptr, None,
                                                  ctypes.byref(res))
        else:
            task._lib.MpFaceLandmarkerDetectForVideo(task._handle, image._image_ptr, None, ts,
                                                     ctypes.byref(res))
        try:
            n = int(res.face_landmarks_count)
            if n == 0:
                return _empty_faces()
            lm = np.full((n, N_LANDMARKS, 3), np.nan, dtype=np.float32)
            for i in range(n):  # faces, not points
                item = res.face_landmarks[i]
                k = min(int(item.landmarks_count), N_LANDMARKS)
                if k:
                    lm[i, :k] = self._view(item.landmarks, k, self.lm_size, np.float32, 3)
            lm *= np.array([width, height, width], dtype=np.float32)
            bs = np.full((n, N_BLENDSHAPES), np.nan)
            for i in range(min(n, int(res.face_blendshapes_count))):
                item = res.face_blendshapes[i]
                k = int(item.categories_count)
                if k:
                    raw = self._view(item.categories, k, self.cat_size, np.int32, 2)
                    index = raw[:, 0]
                    score = raw[:, 1].copy().view(np.float32)
                    keep = (index >= 0) & (index < N_BLENDSHAPES)
                    bs[i, index[keep]] = score[keep]
            return Faces(lm, bs, np.ones(n))
        finally:
            task._lib.MpFaceLandmarkerCloseResult(ctypes.byref(res))

    @staticmethod
    def _view(pointer: Any, count: int, size: int, dtype: Any, width: int) -> np.ndarray:
        """A copy of the first ``width`` 4-byte fields of ``count`` structs of ``size`` bytes."""
        import ctypes

        buf = (ctypes.c_char * (count * size)).from_address(ctypes.addressof(pointer.contents))
        view = np.ndarray((count, width), dtype=dtype, buffer=buf, strides=(size, 4))
        return np.array(view)
