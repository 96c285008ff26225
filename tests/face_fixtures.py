"""Real faces for the pose, quality and detection tests, and ways to move them.

The faces are public domain and ship with installed packages: scikit-image's ``astronaut``
(Eileen Collins) and matplotlib's ``grace_hopper.jpg``. :func:`turn` re-renders a face with
a known head rotation: MediaPipe's own 3-D mesh of the face (its 478 landmarks, z scaled like
x) is rotated about its centre and drawn back triangle by triangle (the canonical mesh's 898
triangles, textured from the photo, far ones first), on a grey background. :func:`group`
pastes faces at chosen sizes into one wide picture.
"""

from __future__ import annotations

import numpy as np


def video_frames(cv2, path) -> list[np.ndarray]:
    """Every frame of a video file, as OpenCV decodes it (BGR)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def load_grace(cv2) -> np.ndarray:
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))


def load_astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """OpenFace's ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` (degrees) in OpenCV axes (x right,
    y down, z away from the camera), as ``Utilities::Euler2RotationMatrix`` builds it."""
    p, y, r = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rx @ ry @ rz


def turn(cv2, rgb: np.ndarray, landmarks: np.ndarray, triangles: np.ndarray,
         pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0, bg: int = 110) -> np.ndarray:
    """The face of ``rgb`` (its MediaPipe ``landmarks`` in pixels) re-rendered after rotating
    the head by ``rotation(pitch, yaw, roll)`` about its centre, orthographic projection.
    Positive yaw turns the head to the subject's right (nose towards the image's left),
    positive pitch lowers the chin, positive roll turns the face clockwise on screen."""
    src3 = np.asarray(landmarks[:468], np.float64)
    centre = src3.mean(axis=0)
    dst3 = (src3 - centre) @ rotation(pitch, yaw, roll).T + centre
    out = np.full_like(rgb, bg)
    h, w = rgb.shape[:2]
    for t in np.argsort(-dst3[triangles, 2].mean(axis=1)):  # far triangles first
        src = src3[triangles[t], :2].astype(np.float32)
        dst = dst3[triangles[t], :2]
        x0, y0 = np.floor(dst.min(axis=0)).astype(int)
        x1, y1 = np.ceil(dst.max(axis=0)).astype(int) + 1
        xs, ys, xe, ye = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if xe <= xs or ye <= ys:
            continue
        m = cv2.getAffineTransform(src, (dst - [x0, y0]).astype(np.float32))
        patch = cv2.warpAffine(rgb, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round(dst - [x0, y0]).astype(np.int32), 1)
        sub = mask[ys - y0:ye - y0, xs - x0:xe - x0].astype(bool)
        out[ys:ye, xs:xe][sub] = patch[ys - y0:ye - y0, xs - x0:xe - x0][sub]
    return out


def rotate_image(cv2, rgb: np.ndarray, degrees_ccw: float) -> np.ndarray:
    """The picture rotated about its centre by ``degrees_ccw`` (counter-clockwise on screen),
    on a canvas large enough to keep the corners."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees_ccw, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgb, m, (nw, nh), borderMode=cv2.BORDER_REPLICATE)


# Face crops (x0, y0, x1, y1) around each head, generous enough for the detectors.
GRACE_HEAD = (90, 60, 430, 460)
ASTRONAUT_HEAD = (130, 20, 340, 260)


def group(cv2, faces: list[tuple[np.ndarray, int]], size: tuple[int, int] = (1600, 900),
          seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A wide picture with each ``(head, width_px)`` pasted left to right on a textured
    background (a blurred noise field), at its own height; returns it and the pasted boxes."""
    w, h = size
    rng = np.random.default_rng(seed)
    noise = rng.integers(60, 200, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    canvas = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    boxes = []
    slot = w / len(faces)
    for k, (head, width) in enumerate(faces):
        scale = width / head.shape[1]
        img = cv2.resize(head, None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x0 = int(slot * k + (slot - img.shape[1]) / 2)
        y0 = int((h - img.shape[0]) * (0.25 + 0.5 * ((k * 37) % 10) / 10))
        canvas[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
        boxes.append((x0, y0, x0 + img.shape[1], y0 + img.shape[0]))
    return canvas, boxes
