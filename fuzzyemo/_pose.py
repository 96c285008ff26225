"""Head pose from MediaPipe's facial transformation matrix, in OpenFace 2.0's convention.

MediaPipe (FaceLandmarker with ``output_facial_transformation_matrixes``) gives, per face, a
4x4 matrix ``M = [s*R_mp | t_mp]`` that maps its canonical face model into a metric camera
space (centimetres): OpenGL axes, x right, y up, z towards the viewer, the camera at the
origin looking down -z; perspective camera with a 63 degree vertical field of view and the
principal point at the image centre (MediaPipe's fixed assumptions). The canonical face has
x towards the image right of a frontal face, y up, z out of the face.

OpenFace 2.0 (FeatureExtraction/FaceLandmarkImg ``pose_*`` columns, ``GetPose``) uses
OpenCV's camera axes, x right, y down, z away from the camera, for both the head model and
the camera; ``pose_T*`` is the head position in millimetres and ``pose_R*`` the rotation as
Euler angles with ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` (``Utilities::Euler2RotationMatrix``;
``RotationMatrix2Euler`` inverts it). Changing both frames by ``F = diag(1, -1, -1)`` maps
MediaPipe's pose to OpenFace's: ``R = F R_mp F``, ``T = 10 * F t_mp``. The resulting signs
(checked by tests on real images): ``pose_Rx`` > 0 head pitched down (chin down), < 0 chin
up; ``pose_Ry`` > 0 head turned to the subject's right (the nose moves to the image's left);
``pose_Rz`` > 0 head rolled clockwise as seen in the image (towards the subject's left
shoulder).

:func:`transform_matrices` is a numpy port of MediaPipe's own geometry pipeline
(``face_geometry/libs/geometry_pipeline.cc`` and ``procrustes_solver.cc``, Apache-2.0) with
the canonical face read from the vendored ``.task`` bundle. It reproduces MediaPipe's matrix
from the same landmarks (a test checks it to 1e-5) and serves faces whose landmarks were
found in a crop and mapped back to the whole image, so that every face's pose is the one
MediaPipe would compute for those landmarks in the whole picture.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

POSE_COLUMNS = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
# MediaPipe FaceLandmarker's geometry environment (fixed in its Tasks graph; the port
# reproduces its matrices only with these values, which a test checks).
VERTICAL_FOV_DEG = 63.0
NEAR = 1.0
_FLIP = np.array([1.0, -1.0, -1.0])  # OpenGL <-> OpenCV axes
_FLIP2 = np.outer(_FLIP, _FLIP)  # F @ R @ F, elementwise


@dataclass(frozen=True)
class CanonicalFace:
    """MediaPipe's canonical face: ``vertices`` (468, 3) cm (x right, y up, z out of the face),
    Procrustes ``weights`` (468,) and the mesh ``triangles`` (898, 3) vertex indices."""

    vertices: np.ndarray
    weights: np.ndarray
    input_source: int
    triangles: np.ndarray


# ----------------------------------------------------------------------------- protobuf
def _varint(b: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        c = b[i]
        i += 1
        out |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return out, i


def _fields(b: bytes):
    """(field number, wire type, value) of a serialized protobuf message."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


@lru_cache(maxsize=4)
def canonical_face(model: bytes) -> CanonicalFace:
    """Parse ``geometry_pipeline_metadata_landmarks.binarypb`` of a FaceLandmarker bundle:
    ``GeometryPipelineMetadata{canonical_mesh=1: Mesh3d{vertex_buffer=3 (x,y,z,u,v per
    vertex)}, procrustes_landmark_basis=2: {landmark_id=1, weight=2}, input_source=3}``."""
    with zipfile.ZipFile(io.BytesIO(model)) as z:
        meta = z.read("geometry_pipeline_metadata_landmarks.binarypb")
    mesh, basis, source = b"", [], 0
    for number, _, value in _fields(meta):
        if number == 1:
            mesh = value
        elif number == 2:
            ref = {n: v for n, _, v in _fields(value)}
            basis.append((int(ref.get(1, 0)), struct.unpack("<f", ref[2])[0] if 2 in ref
                          else 0.0))
        elif number == 3:
            source = int(value)
    floats: list[float] = []
    index: list[int] = []
    for number, wire, value in _fields(mesh):
        if number == 3:
            floats.extend(np.frombuffer(value, "<f4") if wire == 2
                          else struct.unpack("<f", value))
        elif number == 4:
            if wire == 2:  # packed
                i = 0
                while i < len(value):
                    v, i = _varint(value, i)
                    index.append(v)
            else:
                index.append(int(value))
    buf = np.asarray(floats, np.float64).reshape(-1, 5)
    weights = np.zeros(len(buf))
    for i, w in basis:
        weights[i] = w
    return CanonicalFace(buf[:, :3].copy(), weights, source,
                         np.asarray(index, np.int64).reshape(-1, 3))


# ----------------------------------------------------------------------------- the port
def _weop(src: np.ndarray, tgt: np.ndarray, w: np.ndarray) -> np.ndarray:
    """MediaPipe's weighted orthogonal Procrustes (Akca 2003, section 2.4): the 4x4
    ``[s R | t]`` minimising ``sum_i w_i |s R src_i + t - tgt_i|^2``; points in columns."""
    sw = np.sqrt(w)
    ws, wt = src * sw, tgt * sw
    total = w.sum()
    centre = (ws * sw).sum(axis=1) / total
    cws = ws - centre[:, None] * sw[None, :]
    u, _, vt = np.linalg.svd(wt @ cws.T)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        u[:, 2] *= -1
    rot = u @ vt
    scale = float(((rot @ cws) * wt).sum() / (cws * ws).sum())
    rs = scale * rot
    t = ((wt - rs @ ws) * sw).sum(axis=1) / total
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rs, t
    return m


def transform_matrices(landmarks: np.ndarray, width: int, height: int,
                       canonical: CanonicalFace) -> np.ndarray:
    """MediaPipe's facial transformation matrices ``(n, 4, 4)`` for landmarks in pixels
    ``(n, >=468, 3)`` (x right, y down, z scaled like x) of an image ``width`` x ``height``.

    The screen landmarks are projected onto the near plane of the perspective camera, a
    first Procrustes fit gives a scale, the landmarks are unprojected with it, a second fit
    refines the scale, and the final fit of the canonical face to the metric landmarks is
    the matrix. Faces MediaPipe would skip (landmarks within 1e-3 of the image of each
    other) give NaN.
    """
    lm = np.asarray(landmarks, np.float64)
    out = np.full((len(lm), 4, 4), np.nan)
    h_near = 2.0 * NEAR * np.tan(0.5 * np.radians(VERTICAL_FOV_DEG))
    w_near = width * h_near / height
    src, w = canonical.vertices.T, canonical.weights
    for k, face in enumerate(lm):
        s = face[:468].T / np.array([width, height, width])[:, None]  # normalised
        if not np.isfinite(s).all():
            continue
        d = s[:2] - s[:2].mean(axis=1, keepdims=True)
        if np.sqrt((d ** 2).sum(axis=0).max()) <= 1e-3:
            continue
        s[1] = 1.0 - s[1]  # top-left origin -> bottom-up
        s *= np.array([w_near, h_near, w_near])[:, None]
        s[0] -= 0.5 * w_near
        s[1] -= 0.5 * h_near
        depth_offset = s[2].mean()

        def unproject(scale: float, s: np.ndarray = s, depth_offset: float = depth_offset
                      ) -> np.ndarray:
            m = s.copy()
            m[2] = (m[2] - depth_offset + NEAR) / scale
            m[0] *= m[2] / NEAR
            m[1] *= m[2] / NEAR
            m[2] *= -1.0
            return m

        first = s.copy()
        first[2] *= -1.0
        s1 = np.linalg.norm(_weop(src, first, w)[:3, 0])
        s2 = np.linalg.norm(_weop(src, unproject(s1), w)[:3, 0])
        out[k] = _weop(src, unproject(s1 * s2), w)
    return out


# ----------------------------------------------------------------------------- OpenFace
def openface_pose(matrices: np.ndarray) -> np.ndarray:
    """``(n, 6)`` = ``pose_Tx, pose_Ty, pose_Tz`` (mm) and ``pose_Rx, pose_Ry, pose_Rz``
    (radians) in OpenFace 2.0's convention from MediaPipe matrices ``(n, 4, 4)``.

    The rotation is ``F R_mp F`` (scale removed), decomposed as ``R = Rx @ Ry @ Rz``:
    ``Ry = asin(R[0, 2])``, ``Rx = atan2(-R[1, 2], R[2, 2])``, ``Rz = atan2(-R[0, 1],
    R[0, 0])`` (equal to OpenFace's quaternion formula in ``RotationMatrix2Euler`` for
    every rotation with ``|Ry| < 90`` degrees).
    """
    m = np.asarray(matrices, np.float64).reshape(-1, 4, 4)
    rs = m[:, :3, :3] * _FLIP2
    scale = np.sqrt((rs[:, :, 0] ** 2).sum(axis=1))  # s*R: every column has norm s
    r = rs / scale[:, None, None]
    yaw = np.arcsin(np.clip(r[:, 0, 2], -1.0, 1.0))
    pitch = np.arctan2(-r[:, 1, 2], r[:, 2, 2])
    roll = np.arctan2(-r[:, 0, 1], r[:, 0, 0])
    t = m[:, :3, 3] * _FLIP * 10.0  # cm -> mm, OpenCV axes
    return np.column_stack([t, pitch, yaw, roll])
