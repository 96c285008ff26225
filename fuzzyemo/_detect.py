"""Face proposals for still images with several faces: MediaPipe's full-range BlazeFace.

The FaceLandmarker's own detector is BlazeFace *short-range* (128x128 input, faces within
~2 m of a phone's front camera): in a group photo it misses most faces. Google's
*full-range* BlazeFace (``face_detection_full_range.tflite``, 192x192 input, "faces within 5
meters", Apache-2.0, vendored unmodified with its hash checked like the landmarker's; see
``fuzzyemo/models/NOTICE.md``) finds them. It runs here through OpenCV's DNN module (which
imports TFLite; opencv-contrib-python comes with mediapipe), with MediaPipe's own decoding:
one anchor per cell of a 48x48 grid, fixed anchor size, sigmoid scores, weighted
non-maximum suppression at IoU 0.3 (``face_detection_full_range.pbtxt``).

To reach faces that are small in a big picture, the image is also cut into overlapping
square tiles at halving sizes (:func:`tiles`) and every tile is detected on its own;
detections of all tiles are merged by weighted NMS. The boxes are proposals: the landmarker
then runs on an upsampled crop around each one (``fuzzyemo._mediapipe``), which also rejects
proposals that are not faces.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError
from ._model_files import read_model_file

DETECTOR_PATH = Path(__file__).resolve().parent / "models" / "face_detection_full_range.tflite"
DETECTOR_SHA256 = "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"
INPUT_SIZE = 192
MIN_SCORE = 0.5          # proposals below are dropped (MediaPipe's own default is 0.6)
NMS_IOU = 0.3            # MediaPipe's full-range graph
MIN_TILE = 240           # the smallest tile side in pixels (see tiles())
TILE_OVERLAP = 0.25      # neighbouring tiles share this fraction of their side


def load_detector_model(path: str | os.PathLike | None = None,
                        sha256: str | None = DETECTOR_SHA256) -> bytes:
    """The full-range detector's bytes, checked against ``sha256``."""
    return read_model_file(path if path is not None else DETECTOR_PATH, sha256,
                           "face detector model")


def _anchors() -> np.ndarray:
    g = INPUT_SIZE // 4
    ys, xs = np.mgrid[0:g, 0:g]
    return np.stack([(xs + 0.5) / g, (ys + 0.5) / g], axis=-1).reshape(-1, 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes ``(n, 4)`` and ``(m, 4)`` as x0, y0, x1, y1."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(inter / (area_a[:, None] + area_b[None, :] - inter))


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU
                 ) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-maximum suppression: the best-scoring box and all boxes
    overlapping it by more than ``iou`` are replaced by their score-weighted mean (score of
    the best). Returns boxes and scores, best first."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    out_b, out_s = [], []
    alive = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        o = box_iou(boxes[i], boxes)[0]
        group = alive & (o > iou)
        group[i] = True
        w = scores[group]
        out_b.append((boxes[group] * w[:, None]).sum(axis=0) / w.sum())
        out_s.append(scores[i])
        alive &= ~group
    if not out_b:
        return np.empty((0, 4)), np.empty(0)
    return np.array(out_b), np.array(out_s)


def tiles(height: int, width: int, min_tile: int = MIN_TILE,
          overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """Square tiles ``(x0, y0, x1, y1)``: the whole image, then tiles of half the longer
    side, a quarter, ... while the side is at least ``min_tile`` pixels, each level
    covering the image with neighbours overlapping by ``overlap`` of the side. A face is
    found when it spans at least ~8% of the detector's input, i.e. of its tile; the
    smallest tiles thus reach faces of about ``0.08 * min_tile`` pixels."""
    out = [(0, 0, width, height)]
    side = max(height, width) / 2.0
    while side >= min_tile:
        step = side * (1.0 - overlap)
        nx = 1 if width <= side else int(np.ceil((width - side) / step)) + 1
        ny = 1 if height <= side else int(np.ceil((height - side) / step)) + 1
        xs = np.linspace(0, max(width - side, 0), nx)
        ys = np.linspace(0, max(height - side, 0), ny)
        for y in ys:
            for x in xs:
                out.append((int(round(x)), int(round(y)), int(round(min(x + side, width))),
                            int(round(min(y + side, height)))))
        side /= 2.0
    return out


class FullRangeDetector:
    """BlazeFace full-range through OpenCV DNN: :meth:`detect` gives face boxes and scores."""

    def __init__(self, min_score: float = MIN_SCORE, min_tile: int = MIN_TILE) -> None:
        from ._video import require_cv2

        cv2 = require_cv2()
        self._cv2 = cv2
        self.min_score = float(min_score)
        self.min_tile = int(min_tile)
        buf = np.frombuffer(load_detector_model(), np.uint8)
        try:
            self._net = cv2.dnn.readNetFromTFLite(buf)
        except cv2.error as exc:  # an OpenCV build without the TFLite importer
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
            raise InputError(f"OpenCV cannot load the face detector model: {first}") from None
        self._outs = self._net.getUnconnectedOutLayersNames()
        self._anchors = _anchors()

    def _run(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass over a ``INPUT_SIZE`` square RGB tile (zero-padded where the image ends):
        boxes in tile pixels and scores."""
        blob = tile.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
        self._net.setInput(np.ascontiguousarray(blob))
        out = self._net.forward(self._outs)
        reg, cls = (out[0], out[1]) if out[0].shape[-1] == 16 else (out[1], out[0])
        logits = np.clip(cls.reshape(-1), -100.0, 100.0)
        score = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(score >= self.min_score)
        r = reg.reshape(-1, 16)[keep, :4] / INPUT_SIZE
        a = self._anchors[keep]
        cx, cy = a[:, 0] + r[:, 0], a[:, 1] + r[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2,
                          cy + r[:, 3] / 2], axis=1) * INPUT_SIZE
        return boxes, score[keep]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes ``(n, 4)`` (x0, y0, x1, y1 pixels) and scores ``(n,)`` over the
        whole image and its tiles (:func:`tiles`), merged, best first.

        The image is resized once per tile size (area averaging) so that a tile becomes the
        detector's 192x192 input, and the tiles are cut from that copy."""
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        all_b, all_s = [], []
        by_side: dict[float, list[tuple[int, int, int, int]]] = {}
        for t in tiles(h, w, self.min_tile):
            side = float(max(t[2] - t[0], t[3] - t[1]))
            by_side.setdefault(side, []).append(t)
        for side, level in by_side.items():
            zoom = INPUT_SIZE / side
            nw, nh = max(1, int(round(w * zoom))), max(1, int(round(h * zoom)))
            small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if zoom < 1
                               else cv2.INTER_LINEAR)
            for x0, y0, _, _ in level:
                sx, sy = int(round(x0 * zoom)), int(round(y0 * zoom))
                tile = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
                part = small[sy:sy + INPUT_SIZE, sx:sx + INPUT_SIZE]
                tile[:part.shape[0], :part.shape[1]] = part
                b, s = self._run(tile)
                all_b.append((b + [sx, sy, sx, sy]) / zoom)
                all_s.append(s)
        boxes, scores = np.concatenate(all_b), np.concatenate(all_s)
        return weighted_nms(boxes, scores)


def crop_transform(box: Any, scale: float, size: int) -> tuple[np.ndarray, float, float, float]:
    """The affine map (2x3) of a square crop of side ``scale`` x the box's longer side,
    centred on the box, resampled to ``size`` pixels; and its (zoom, x0, y0) so that
    ``full = crop / zoom + (x0, y0)``."""
    b = np.asarray(box, np.float64)
    side = max(b[2] - b[0], b[3] - b[1]) * scale
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    x0, y0 = cx - side / 2, cy - side / 2
    zoom = size / side
    m = np.array([[zoom, 0.0, -x0 * zoom], [0.0, zoom, -y0 * zoom]])
    return m, zoom, x0, y0
