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

Every face also gets its head pose (``Faces.pose``: OpenFace 2.0's ``pose_Tx..pose_Rz``, from
MediaPipe's facial transformation matrix, see ``fuzzyemo._pose``), a ``quality`` and a
``confidence`` (``fuzzyemo._quality``). Still images can be re-landmarked on a crop around
each face to check that the landmarks fit (``verify``), and searched for small faces with a
second detector (``detector="full-range"``, ``fuzzyemo._detect``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from ._detect import box_iou
from ._errors import InputError
from ._model_files import INSTALL_HINT, read_model_file
from ._pose import canonical_face, openface_pose, transform_matrices
from ._quality import MISFIT_LIMIT, assess, iod_3d
from ._quiet import native_logs_quieted

MODEL_PATH = Path(__file__).resolve().parent / "models" / "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_NAME = "face_landmarker.task (MediaPipe FaceLandmarker v2 with blendshapes)"
N_LANDMARKS = 478
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


def load_model(path: str | os.PathLike | None = None,
               sha256: str | None = MODEL_SHA256) -> bytes:
    """The model bytes, checked against ``sha256`` (None skips the check for a user's own
    model). Cached per (path, mtime, size)."""
    return read_model_file(path if path is not None else MODEL_PATH, sha256,
                           "face landmarker model")


@dataclass(frozen=True)
class Faces:
    """One image's (or frame's) faces: every array has one entry per face, in MediaPipe's order
    (faces found by the full-range stage after the landmarker's own).

    ``landmarks`` ``(faces, 478, 3)`` float32 pixels (x right, y down; z is MediaPipe's
    relative depth scaled like x). ``blendshapes`` ``(faces, 52)`` in ``BLENDSHAPE_NAMES``
    order. ``pose`` ``(faces, 6)``: ``pose_Tx, pose_Ty, pose_Tz`` (mm) and ``pose_Rx,
    pose_Ry, pose_Rz`` (radians) in OpenFace 2.0's convention (``fuzzyemo._pose``).
    ``quality`` ``(faces,)`` strings (``""``, or reasons such as ``"pose,small"``) and
    ``confidence`` ``(faces,)`` in (0, 1] (``fuzzyemo._quality``: 1.0 without a reason).
    ``misfit`` ``(faces,)``: the disagreement of a second landmarking in inter-ocular
    distances (NaN when not checked, inf when the second run found no face there).
    MediaPipe's FaceLandmarker itself reports no per-face score.
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    confidence: np.ndarray
    pose: np.ndarray = None  # type: ignore[assignment]
    quality: np.ndarray = None  # type: ignore[assignment]
    misfit: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = int(self.landmarks.shape[0])
        if self.pose is None:
            object.__setattr__(self, "pose", np.full((n, 6), np.nan))
        if self.quality is None:
            object.__setattr__(self, "quality", np.full(n, "", dtype=object))
        if self.misfit is None:
            object.__setattr__(self, "misfit", np.full(n, np.nan))

    def __len__(self) -> int:
        return int(self.landmarks.shape[0])

    def take(self, index: Any) -> Faces:
        """The faces at ``index`` (an index array or a boolean mask), in that order."""
        return Faces(self.landmarks[index], self.blendshapes[index], self.confidence[index],
                     self.pose[index], self.quality[index], self.misfit[index])


def _empty_faces() -> Faces:
    return Faces(np.empty((0, N_LANDMARKS, 3), np.float32), np.empty((0, N_BLENDSHAPES)),
                 np.empty(0))


def _concat(a: Faces, b: Faces) -> Faces:
    return Faces(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in (
        "landmarks", "blendshapes", "confidence", "pose", "quality", "misfit")))


DETECTORS = ("auto", "short-range", "full-range")
CROP_SIZE = 256       # pixels of the crops the landmarker re-runs on (its mesh input size)
# Crop side / detector box side for faces found by the full-range stage: the first, then a
# wider one (more context for the landmarker's own detector) when the first gives no face.
PROPOSAL_CROPS = (2.2, 3.0)
VERIFY_CROP = 1.6     # crop side / landmark box side, for the misfit check


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
    detector: how faces are found in still images. ``"short-range"``: only the landmarker's
        own BlazeFace short-range detector (faces that fill a good part of the picture).
        ``"full-range"``: also BlazeFace full-range over the image and its tiles, each face it
        finds landmarked on an upsampled crop and mapped back (group photos, small faces).
        ``"auto"`` (default): full-range when ``max_faces > 1`` in image mode, else
        short-range. Video mode always uses the landmarker's tracking (short-range).
    verify: re-landmark each face on a crop re-framed around it and compare (the ``misfit``
        check of ``fuzzyemo._quality``); one more landmarker run per face. Default: on in
        image mode, off in video mode (``annotate`` checks videos once per second per face).
    """

    def __init__(self, mode: str = "image", max_faces: int = 1, *,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5,
                 model_path: str | os.PathLike | None = None, fast: bool = True,
                 detector: str = "auto", verify: bool | None = None,
                 _landmarks_only: bool = False) -> None:
        if mode not in ("image", "video"):
            raise InputError(f"mode must be 'image' or 'video', got {mode!r}")
        if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 1:
            raise InputError(f"max_faces must be a positive integer, got {max_faces!r}")
        if detector not in DETECTORS:
            raise InputError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
        if mode == "video" and detector == "full-range":
            raise InputError("detector='full-range' is for still images; video mode tracks "
                             "faces with the landmarker's own detector")
        self.mode = mode
        self.max_faces = max_faces
        self.detector = detector
        self.full_range = mode == "image" and (
            detector == "full-range" or (detector == "auto" and max_faces > 1))
        self.verify = (mode == "image") if verify is None else bool(verify)
        mp, vision, BaseOptions = require_mediapipe()
        model = load_model(model_path, None if model_path is not None else MODEL_SHA256)
        self._mp = mp
        self._settings = dict(min_detection_confidence=min_detection_confidence,
                              min_presence_confidence=min_presence_confidence,
                              min_tracking_confidence=min_tracking_confidence,
                              model_path=model_path, fast=fast)
        try:
            self._canonical = canonical_face(model)
        except Exception as exc:  # noqa: BLE001 - a user's .task without geometry metadata
            raise InputError(f"the face landmarker model has no readable face geometry "
                             f"({type(exc).__name__}: {exc})") from None
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=model),
            running_mode=vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
            # _landmarks_only: the video misfit checker needs neither (saves ~20% a check).
            output_face_blendshapes=not _landmarks_only,
            output_facial_transformation_matrixes=not _landmarks_only,
        )
        try:
            # MediaPipe's graph logs routine lines to fd 2 while it starts: keep them off
            # the user's terminal (errors still get through).
            with native_logs_quieted():
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
        self._landmarks_only = _landmarks_only
        self._crops: FaceLandmarker | None = None   # IMAGE-mode landmarker for crops
        self._proposer: Any = None                   # FullRangeDetector, made when needed

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        task, self._task = getattr(self, "_task", None), None
        if task is not None:
            task.close()
        crops, self._crops = getattr(self, "_crops", None), None
        if crops is not None:
            crops.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; the context manager is the normal way
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    # -- use -----------------------------------------------------------------------
    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None, *,
               verify: bool | None = None) -> Faces:
        """Faces in one RGB ``uint8`` image ``(h, w, 3)``, with pose, quality and confidence.

        In video mode ``timestamp_ms`` is required; MediaPipe needs it strictly increasing,
        so a repeated or earlier timestamp (variable-rate files, rounding) is moved to one
        millisecond after the previous one instead of failing. ``verify`` overrides the
        landmarker's setting for this call.
        """
        return self._detect(rgb, timestamp_ms, verify=verify, judge=True)

    def _detect(self, rgb: np.ndarray, timestamp_ms: int | None = None, *,
                verify: bool | None = None, judge: bool = True) -> Faces:
        """:meth:`detect`; with ``judge=False`` the quality and confidence are left unset
        (``annotate`` judges all rows at once at the end)."""
        if self._task is None:
            raise InputError("the face landmarker is closed; use it inside its 'with' block")
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"expected an RGB uint8 image (h, w, 3), got {rgb.dtype} "
                             f"{tuple(rgb.shape)}")
        rgb = np.ascontiguousarray(rgb)
        ts = None
        if self.mode == "video":
            if timestamp_ms is None:
                raise InputError("video mode needs a timestamp_ms for every frame")
            ts = max(int(timestamp_ms), self._last_ms + 1)
            self._last_ms = ts
        h, w = rgb.shape[:2]
        faces = self._landmark(rgb, ts)
        if self.full_range and len(faces) < self.max_faces:
            faces = _concat(faces, self._full_range_faces(rgb, faces))
        misfit = None
        if (self.verify if verify is None else verify) and len(faces):
            misfit, second = self._check(rgb, faces.landmarks)
            if self.mode == "image":
                faces, misfit = self._repair(rgb, faces, misfit, second)
        if not judge:
            return faces if misfit is None else Faces(
                faces.landmarks, faces.blendshapes, faces.confidence, faces.pose,
                faces.quality, misfit)
        quality, confidence = assess(faces.landmarks, faces.pose, w, h, misfit)
        return Faces(faces.landmarks, faces.blendshapes, confidence, faces.pose, quality,
                     faces.misfit if misfit is None else misfit)

    def _landmark(self, rgb: np.ndarray, ts: int | None) -> Faces:
        """The landmarker's own result (MediaPipe's detector or tracker), with pose."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        h, w = rgb.shape[:2]
        if self._fast is not None:
            faces, matrices = self._fast.detect(self._task, image, ts, w, h)
        else:
            result = (self._task.detect(image) if ts is None
                      else self._task.detect_for_video(image, ts))
            faces, matrices = _to_faces(result, w, h)
        if len(faces) and not self._landmarks_only:
            if matrices is None or len(matrices) != len(faces):
                # MediaPipe skips the geometry of degenerate (sub-pixel) faces, so its
                # matrices no longer line up with the faces: compute them all here.
                matrices = transform_matrices(faces.landmarks, w, h, self._canonical)
            faces = Faces(faces.landmarks, faces.blendshapes, faces.confidence,
                          openface_pose(matrices))
        return faces

    def _crop_landmarker(self) -> FaceLandmarker:
        if self._crops is None:
            # Video landmarkers use it only for the misfit check: landmarks suffice.
            self._crops = FaceLandmarker("image", 2, detector="short-range", verify=False,
                                         _landmarks_only=self.mode == "video",
                                         **self._settings)
        return self._crops

    def _on_crop(self, rgb: np.ndarray, box: np.ndarray, scale: float
                 ) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmark a square crop of side ``scale`` x the box's longer side around the box
        (resampled to ``CROP_SIZE``) and return the landmarks (full-image pixels) and
        blendshapes of the face whose landmark centre lies in ``box`` (the largest
        landmark-box overlap with it), or None."""
        cv2 = _cv2()
        h, w = rgb.shape[:2]
        side = max(int(np.ceil(max(box[2] - box[0], box[3] - box[1]) * scale)), 8)
        x0 = int(np.floor((box[0] + box[2]) / 2 - side / 2))
        y0 = int(np.floor((box[1] + box[3]) / 2 - side / 2))
        patch = np.zeros((side, side, 3), np.uint8)
        xs, ys = max(x0, 0), max(y0, 0)
        xe, ye = min(x0 + side, w), min(y0 + side, h)
        if xe <= xs or ye <= ys:
            return None
        patch[ys - y0:ye - y0, xs - x0:xe - x0] = rgb[ys:ye, xs:xe]
        zoom = CROP_SIZE / side
        crop = cv2.resize(patch, (CROP_SIZE, CROP_SIZE),
                          interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
        found = self._crop_landmarker().detect(crop, verify=False)
        best, best_iou = None, -1.0
        for k in range(len(found)):
            lm = found.landmarks[k].astype(np.float64)
            lm[:, :2] = lm[:, :2] / zoom + (x0, y0)
            lm[:, 2] /= zoom
            cx, cy = lm[:, :2].mean(axis=0)
            if not (box[0] <= cx <= box[2] and box[1] <= cy <= box[3]):
                continue
            o = float(box_iou(box, _landmark_boxes(lm[None]))[0, 0])
            if o > best_iou:
                best, best_iou = (lm.astype(np.float32), found.blendshapes[k]), o
        return best

    def _full_range_faces(self, rgb: np.ndarray, have: Faces) -> Faces:
        """Faces the full-range detector finds that ``have`` lacks, landmarked on crops."""
        if self._proposer is None:
            from ._detect import FullRangeDetector

            self._proposer = FullRangeDetector()
        boxes, _ = self._proposer.detect(rgb)
        taken = _landmark_boxes(have.landmarks)
        lms, bss = [], []
        for box in boxes:
            if len(have) + len(lms) >= self.max_faces:
                break
            if len(taken) and _covered(box, taken):
                continue
            got = None
            for scale in PROPOSAL_CROPS:  # a wider view when the first is not landmarked
                got = self._on_crop(rgb, box, scale)
                if got is not None:
                    break
            if got is None:
                continue
            lm, bs = got
            lm_box = _landmark_boxes(lm[None])
            if len(taken) and _covered(lm_box[0], taken):
                continue  # the crop landmarked a face we already have
            lms.append(lm)
            bss.append(bs)
            taken = np.concatenate([taken, lm_box]) if len(taken) else lm_box
        if not lms:
            return _empty_faces()
        lm = np.stack(lms)
        h, w = rgb.shape[:2]
        pose = openface_pose(transform_matrices(lm, w, h, self._canonical))
        return Faces(lm, np.stack(bss), np.ones(len(lm)), pose)

    def check(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The misfit check: re-landmark each face on a square crop of ``VERIFY_CROP`` x its
        landmark box (another framing than the first detection's) and return the mean
        distance of the two landmark sets in inter-ocular distances ``(faces,)``; inf when
        the second run finds no face there."""
        return self._check(rgb, landmarks)[0]

    def _check(self, rgb: np.ndarray, landmarks: np.ndarray
               ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray] | None]]:
        """:meth:`check`, and the second landmarking of each face (landmarks, blendshapes)."""
        rgb = np.ascontiguousarray(rgb)
        lm = np.asarray(landmarks, np.float64).reshape(-1, N_LANDMARKS, 3)
        out = np.full(len(lm), np.inf)
        second: list[tuple[np.ndarray, np.ndarray] | None] = []
        iod = iod_3d(lm)
        for k, box in enumerate(_landmark_boxes(lm)):
            if not np.isfinite(box).all():
                out[k] = np.nan
                second.append(None)
                continue
            got = self._on_crop(rgb, box, VERIFY_CROP)
            second.append(got)
            if got is not None and iod[k] > 0:
                out[k] = float(np.linalg.norm(got[0][:, :2] - lm[k, :, :2], axis=1).mean()
                               / iod[k])
        return out, second

    def _repair(self, rgb: np.ndarray, faces: Faces, misfit: np.ndarray,
                second: list[tuple[np.ndarray, np.ndarray] | None]) -> tuple[Faces, np.ndarray]:
        """Stills: when the second landmarking disagrees with the first, landmark a third time
        around the second; if the third agrees with the second, the second replaces the
        first (its misfit is then the second-to-third distance). A mesh that slid off its
        face (found on a poor detector box) is so replaced by one that sits on it."""
        bad = [k for k in range(len(faces)) if misfit[k] > MISFIT_LIMIT and second[k]]
        if not bad:
            return faces, misfit
        lm, bs, pose = faces.landmarks.copy(), faces.blendshapes.copy(), faces.pose.copy()
        misfit = misfit.copy()
        h, w = rgb.shape[:2]
        for k in bad:
            cand_lm, cand_bs = second[k]  # type: ignore[misc]
            d, _ = self._check(rgb, cand_lm[None])
            if d[0] <= MISFIT_LIMIT:
                lm[k], bs[k], misfit[k] = cand_lm, cand_bs, d[0]
                pose[k] = openface_pose(transform_matrices(cand_lm[None], w, h,
                                                           self._canonical))[0]
        return Faces(lm, bs, faces.confidence, pose, faces.quality, faces.misfit), misfit


def _cv2() -> Any:
    from ._video import require_cv2

    return require_cv2()


def _landmark_boxes(landmarks: np.ndarray) -> np.ndarray:
    """``(n, 4)`` x0, y0, x1, y1 of each face's landmarks."""
    lm = np.asarray(landmarks, np.float64)
    if lm.size == 0:
        return np.empty((0, 4))
    return np.concatenate([lm[:, :, :2].min(axis=1), lm[:, :, :2].max(axis=1)], axis=1)


def _covered(box: np.ndarray, taken: np.ndarray) -> bool:
    """Whether a box is the same face as one of ``taken``: its centre inside one of them or
    an IoU above 0.3."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    inside = ((taken[:, 0] <= cx) & (cx <= taken[:, 2]) & (taken[:, 1] <= cy)
              & (cy <= taken[:, 3]))
    return bool(inside.any() or (box_iou(box, taken) > 0.3).any())


def _to_faces(result: Any, width: int, height: int) -> tuple[Faces, np.ndarray | None]:
    """MediaPipe's result objects to arrays, landmarks scaled to pixels; and the facial
    transformation matrices ``(k, 4, 4)`` (None when there are none)."""
    n = len(result.face_landmarks)
    if n == 0:
        return _empty_faces(), None
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
    mats = [np.asarray(m, np.float64) for m in (result.facial_transformation_matrixes or [])]
    matrices = np.stack(mats) if mats and all(m.shape == (4, 4) for m in mats) else None
    return Faces(lm, bs, np.ones(n)), matrices


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
            mat_t = result_c._fields_[4][1]._type_                        # matrix struct
            ok = (
                [f[0] for f in result_c._fields_[:6]] == [
                    "face_landmarks", "face_landmarks_count", "face_blendshapes",
                    "face_blendshapes_count", "facial_transformation_matrixes",
                    "facial_transformation_matrixes_count"]
                and [(n, t) for n, t in lm_t._fields_[:3]] == [
                    ("x", ctypes.c_float), ("y", ctypes.c_float), ("z", ctypes.c_float)]
                and (lm_t.x.offset, lm_t.y.offset, lm_t.z.offset) == (0, 4, 8)
                and [(n, t) for n, t in cat_t._fields_[:2]] == [
                    ("index", ctypes.c_int), ("score", ctypes.c_float)]
                and (cat_t.index.offset, cat_t.score.offset) == (0, 4)
                and [n for n, _ in mat_t._fields_[:3]] == ["rows", "cols", "data"]
                and mat_t._fields_[0][1] is ctypes.c_uint32
                and mat_t._fields_[1][1] is ctypes.c_uint32
                and mat_t._fields_[2][1] is ctypes.POINTER(ctypes.c_float)
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

    def detect(self, task: Any, image: Any, ts: int | None, width: int, height: int
               ) -> tuple[Faces, np.ndarray | None]:
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
                return _empty_faces(), None
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
            matrices = []
            for i in range(int(res.facial_transformation_matrixes_count)):
                m = res.facial_transformation_matrixes[i]
                rows, cols = int(m.rows), int(m.cols)
                if (rows, cols) != (4, 4) or not m.data:
                    matrices = []
                    break
                # Column-major floats, as MpMatrixC.to_numpy reads them.
                matrices.append(np.ctypeslib.as_array(m.data, shape=(cols, rows)).T
                                .astype(np.float64))
            return Faces(lm, bs, np.ones(n)), (np.stack(matrices) if matrices else None)
        finally:
            task._lib.MpFaceLandmarkerCloseResult(ctypes.byref(res))

    @staticmethod
    def _view(pointer: Any, count: int, size: int, dtype: Any, width: int) -> np.ndarray:
        """A copy of the first ``width`` 4-byte fields of ``count`` structs of ``size`` bytes."""
        import ctypes

        buf = (ctypes.c_char * (count * size)).from_address(ctypes.addressof(pointer.contents))
        view = np.ndarray((count, width), dtype=dtype, buffer=buf, strides=(size, 4))
        return np.array(view)
