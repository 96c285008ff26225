"""Per-face quality: why a face's measurements may not be trusted, and a confidence.

``quality`` is a comma-separated list of reasons, in this order (``""`` when none applies):

* ``misfit``: the landmarks are not reproduced by a second, independent landmarking of the
  face (a crop re-framed around the first result): their mean distance exceeds
  ``MISFIT_LIMIT`` inter-ocular distances (IOD), or the second run finds no face there.
  Real faces agree within 0.005-0.05 IOD; meshes laid on non-faces (textures, a cat, cells)
  differ by 0.24 IOD or more, or are not found again. (In still images a mesh whose second
  landmarking is reproduced by a third is replaced by it first: ``FaceLandmarker._repair``.)
* ``pose``: the head is turned beyond ``YAW_LIMIT_DEG`` or pitched beyond
  ``PITCH_LIMIT_DEG`` (``pose_Ry``, ``pose_Rx``). Roll has no limit: the landmarker and the
  geometry both remove in-plane rotation.
* ``edge``: the face is cut by the image border (landmarks outside the picture).
* ``small``: the face is smaller than ``IOD_MIN_PX`` pixels between the eye centres (3-D
  distance, so turning the head does not shrink it).

``confidence`` is 1.0 for a face without a reason and the product of one factor per reason:

* misfit: ``0.5 * MISFIT_LIMIT / d`` (d the disagreement in IOD; a face not found again
  counts as d = 0.5, i.e. 0.1);
* pose: ``0.5 / q`` with ``q = max(|yaw| / YAW_LIMIT_DEG, |pitch| / PITCH_LIMIT_DEG) > 1``;
* edge: the share of the 478 landmarks inside the image, at most 0.4 when one of the
  points the geometry measures (brows, eyes, nose, mouth) is outside;
* small: ``IOD / IOD_MIN_PX``.

So a misfit or pose reason alone always gives a confidence below 0.5, and ``confidence >=
0.5`` keeps only faces whose landmarks fit and whose pose is within the limits (small and
edge faces down to half the limit size and with all measured points inside). A face not
checked for misfit (``misfit`` NaN) is judged on the other reasons only.
"""

from __future__ import annotations

import math

import numpy as np

YAW_LIMIT_DEG = 30.0
PITCH_LIMIT_DEG = 25.0
IOD_MIN_PX = 30.0
MISFIT_LIMIT = 0.1
MISFIT_NOT_FOUND = 0.5  # the disagreement a face that is not found again counts as
REASONS = ("misfit", "pose", "edge", "small")

# The points the mediapipe478 scheme measures (brows, eyes, nose, mouth; docs/geometry.md);
# a test checks them against rules/landmarks/mediapipe478.yaml.
MEASURED_POINTS = np.array(sorted({
    70, 105, 107, 55, 336, 285, 334, 300,                          # brows
    33, 133, 160, 158, 153, 144, 362, 263, 385, 387, 373, 380,     # eyes
    168, 6, 4, 98, 2, 327,                                         # nose
    61, 291, 37, 0, 267, 82, 13, 312, 317, 14, 87, 314, 17, 84, 78, 308,  # mouth
}))


def iod_3d(landmarks: np.ndarray) -> np.ndarray:
    """Eye-centre to eye-centre distance in pixels (each centre the midpoint of the eye's
    corners, as in the geometry), using MediaPipe's z (scaled like x). ``(n,)``."""
    lm = np.asarray(landmarks, np.float64)
    right = (lm[:, 33] + lm[:, 133]) / 2
    left = (lm[:, 263] + lm[:, 362]) / 2
    return np.linalg.norm(left - right, axis=1)


def pose_excess(pose: np.ndarray) -> np.ndarray:
    """``q = max(|yaw| / YAW_LIMIT_DEG, |pitch| / PITCH_LIMIT_DEG)`` per face from OpenFace
    pose rows ``(n, 6)`` (``pose_Rx`` pitch at 3, ``pose_Ry`` yaw at 4); NaN without pose.
    The face is beyond the pose limit when q > 1."""
    p = np.asarray(pose, np.float64).reshape(-1, 6)
    return np.maximum(np.abs(np.degrees(p[:, 4])) / YAW_LIMIT_DEG,
                      np.abs(np.degrees(p[:, 3])) / PITCH_LIMIT_DEG)


def assess(landmarks: np.ndarray, pose: np.ndarray, width: np.ndarray | int,
           height: np.ndarray | int, misfit: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(quality, confidence)`` for faces: ``quality`` an object array of strings,
    ``confidence`` float64 in (0, 1]. Rows whose landmarks are all NaN (no face) get
    ``""`` and confidence 0.

    ``landmarks`` ``(n, 478, 3)`` pixels, ``pose`` ``(n, 6)`` OpenFace pose, ``width`` /
    ``height`` the image size (scalars or per row), ``misfit`` the re-detection
    disagreement in IOD per face (NaN: not checked, inf: not found again).
    """
    lm = np.asarray(landmarks, np.float64)
    n = lm.shape[0]
    w = np.broadcast_to(np.asarray(width, np.float64), (n,))
    h = np.broadcast_to(np.asarray(height, np.float64), (n,))
    face = np.isfinite(lm[:, :, :2]).all(axis=(1, 2)) if n else np.zeros(0, bool)
    d = (np.full(n, np.nan) if misfit is None
         else np.asarray(misfit, np.float64).reshape(n).copy())
    d[np.isinf(d)] = MISFIT_NOT_FOUND

    factors: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = d > MISFIT_LIMIT
        factors["misfit"] = np.where(bad, 0.5 * MISFIT_LIMIT / d, 1.0)
        q = pose_excess(pose) if n else np.zeros(0)
        factors["pose"] = np.where(q > 1.0, 0.5 / q, 1.0)
        x, y = lm[:, :, 0], lm[:, :, 1]
        inside = (x >= 0) & (x <= w[:, None]) & (y >= 0) & (y <= h[:, None])
        share = inside.mean(axis=1) if n else np.zeros(0)
        key_out = ~inside[:, MEASURED_POINTS].all(axis=1) if n else np.zeros(0, bool)
        factors["edge"] = np.where(key_out, np.minimum(share, 0.4), share)
        iod = iod_3d(lm) if n else np.zeros(0)
        factors["small"] = np.where(iod < IOD_MIN_PX, iod / IOD_MIN_PX, 1.0)

    confidence = np.where(face, 1.0, 0.0)
    quality = np.full(n, "", dtype=object)
    for reason in REASONS:
        f = np.nan_to_num(factors[reason], nan=1.0)
        hit = face & (f < 1.0)
        confidence = np.where(hit, confidence * f, confidence)
        quality[hit] = [f"{q_},{reason}" if q_ else reason for q_ in quality[hit]]
    return quality, confidence


def pose_factor(yaw_deg: float, pitch_deg: float) -> float:
    """The pose factor of the confidence for one head pose in degrees (1.0 within limits)."""
    q = max(abs(yaw_deg) / YAW_LIMIT_DEG, abs(pitch_deg) / PITCH_LIMIT_DEG)
    return 1.0 if q <= 1.0 or math.isnan(q) else 0.5 / q
