"""DISFA-FER: every DISFA frame labelled with emotion and intensity by the rule engine.

Reads DISFA exactly as distributed (see docs/datasets.md for the layout and its variants):

    ActionUnit_Labels/SNxxx/SNxxx_au<N>.txt          lines "frame,intensity", 1-based
    Landmark_Points[/Landmark_Points]/SNxxx/<sub>/SNxxx_NNNN_lm.mat | l0NNNN_lm.mat
                                                     variable pts (66 x 2), 0-based frame
    Videos_LeftCamera/LeftVideoSNxxx_comp.avi        (only with --from-video)

One row per frame of the label files. Frames with missing or bad landmarks are kept with
``valid = False`` and an ``invalid_reason``, and are labelled ``unknown`` (excluded from
labels). The neutral baseline is per subject: the median raw features of that subject's valid
frames whose 12 AU intensities are all 0; a subject without any such frame is self-calibrated
on its own most neutral 10 % of frames (recorded in the card and metadata).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import struct
import zlib
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from fuzzyemo._errors import InputError
from fuzzyemo._table import results_frame
from fuzzyemo._vocab import COMPONENTS

from ._base import (
    BuildError,
    DatasetBuilder,
    DatasetInfo,
    Progress,
    SourceError,
    landmark_fields,
    result_fields,
    save_npz_atomic,
)

VERSION = "1.0.0"
SUBJECTS: tuple[str, ...] = (
    "SN001", "SN002", "SN003", "SN004", "SN005", "SN006", "SN007", "SN008", "SN009", "SN010",
    "SN011", "SN012", "SN013", "SN016", "SN017", "SN018", "SN021", "SN023", "SN024", "SN025",
    "SN026", "SN027", "SN028", "SN029", "SN030", "SN031", "SN032",
)
AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
AU_COLUMNS: tuple[str, ...] = tuple(f"AU{a:02d}_r" for a in AUS)
FPS = 20.0
FRAME_SIZE = (1024, 768)  # left camera, pixels (width, height)
N_POINTS = 66
# The subject-independent 3-fold partition used by most DISFA AU papers (e.g. JAA-Net's
# part1/part2/part3). Subjects outside the official 27 go round-robin in sorted order.
FOLDS: dict[str, tuple[str, ...]] = {
    "fold0": ("SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"),
    "fold1": ("SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"),
    "fold2": ("SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"),
}
# Why a frame is not valid (``invalid_reason``); index 0 = valid.
REASONS: tuple[str, ...] = ("", "missing", "unreadable", "not finite", "degenerate",
                            "outside the frame", "implausible shape")
HOMEPAGE = "http://mohammadmahoor.com/disfa/"
LICENSE = ("DISFA is distributed by its authors for non-commercial research only, to "
           "users who sign the DISFA agreement (see the homepage). DISFA-FER is derived "
           "data: it holds DISFA's landmarks and AU labels, so the same terms apply; do not "
           "redistribute it.")
CITATION = ("S. M. Mavadati, M. H. Mahoor, K. Bartlett, P. Trinh and J. F. Cohn, "
            "\"DISFA: A Spontaneous Facial Action Intensity Database\", IEEE Transactions on "
            "Affective Computing 4(2):151-160, 2013.")

_SUBJECT_RE = re.compile(r"^SN\d{3}$", re.IGNORECASE)
_LABEL_RE = re.compile(r"^(SN\d{3})_au(\d+)\.txt$", re.IGNORECASE)
# SNxxx_NNNN_lm.mat (0-based frame) or l0NNNN_lm.mat.
_MAT_RE = re.compile(r"^(?:SN\d{3}_(\d+)|l(\d+))_lm\.mat$", re.IGNORECASE)
_LANDMARK_ROOTS = ("Landmark_Points/Landmark_Points", "Landmark_Points")
_VIDEO_DIRS = ("Videos_LeftCamera", "Video_LeftCamera")


def fold_of(subjects: list[str]) -> dict[str, str]:
    """Subject -> fold name (the standard partition; others round-robin, sorted)."""
    known = {s: f for f, members in FOLDS.items() for s in members}
    out = {s: known[s] for s in subjects if s in known}
    others = sorted(s for s in subjects if s not in known)
    names = sorted(FOLDS)
    out.update({s: names[i % len(names)] for i, s in enumerate(others)})
    return out


# ----------------------------------------------------------------------------- reading
def parse_label_file(data: bytes, shown: str) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """(frames, intensities, issues) from one ``SNxxx_au<N>.txt`` (lines ``frame,intensity``).

    Fast path: the whole file as one integer array. On any irregularity (a truncated last
    line, text, out-of-range values) a line-by-line pass names each bad line; bad lines are
    dropped (their frames are then null for this AU).
    """
    text = data.decode("latin-1")
    lines = text.splitlines()
    n_lines = sum(map(bool, map(str.strip, lines)))
    try:
        arr = np.array(text.replace(",", " ").split(), dtype=np.int64)
        if arr.size == 2 * n_lines and text.count(",") == n_lines:
            pairs = arr.reshape(-1, 2)
            if ((pairs[:, 0] >= 1).all() and (pairs[:, 1] >= 0).all()
                    and (pairs[:, 1] <= 5).all()
                    and ((np.diff(pairs[:, 0]) > 0).all()  # sorted: no duplicates, cheaply
                         or np.unique(pairs[:, 0]).size == n_lines)):
                return pairs[:, 0], pairs[:, 1], []
    except ValueError:
        pass
    frames, values, issues, seen = [], [], [], set()
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            frame, value = int(parts[0]), int(parts[1])
        except ValueError:
            issues.append((f"{shown}:{no}", f"expected 'frame,intensity', got {line.strip()!r}"
                           " (truncated file?)"))
            continue
        if frame < 1 or not 0 <= value <= 5:
            issues.append((f"{shown}:{no}", f"frame must be >= 1 and intensity 0-5, got "
                                            f"{line.strip()!r}"))
            continue
        if frame in seen:
            issues.append((f"{shown}:{no}", f"frame {frame} is listed twice (first kept)"))
            continue
        seen.add(frame)
        frames.append(frame)
        values.append(value)
    return np.array(frames, dtype=np.int64), np.array(values, dtype=np.int64), issues


# MAT v5 storage types -> numpy dtypes (little-endian), for the fast reader.
_MI_DTYPES = {1: "<i1", 2: "<u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 9: "<f8",
              12: "<i8", 13: "<u8"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15


def _sub_element(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """(type, payload start, payload end, next position) of one MAT v5 sub-element."""
    first, second = struct.unpack_from("<II", buf, pos)
    if first >> 16:  # small data element: type and size in one word, data in the next
        return first & 0xFFFF, pos + 4, pos + 4 + (first >> 16), pos + 8
    return first, pos + 8, pos + 8 + second, pos + 8 + second + (-second % 8)


# (start, end, dtype, shape) of a variable's numbers inside an uncompressed file, or None.
Layout = tuple[int, int, str, tuple[int, ...]] | None


def _fast_mat_variable(data: bytes, name: bytes, layout: list[Layout] | None = None
                       ) -> np.ndarray | None:
    """A real numeric variable from a little-endian MAT v5 file, or None for anything else
    (then scipy.io.loadmat reads the file). ~20x faster than loadmat on DISFA's tiny files,
    whose reading dominates the build; tests check it against loadmat. With ``layout`` (a
    list), where the numbers lie is appended (None for compressed files)."""
    if len(data) < 136 or data[126:128] != b"IM":
        return None
    pos = 128
    while pos + 8 <= len(data):
        typ, nbytes = struct.unpack_from("<II", data, pos)
        buf, base, end = data, pos + 8, pos + 8 + nbytes
        pos = end
        compressed = typ == _MI_COMPRESSED
        if compressed:
            buf = zlib.decompress(data[base:end])
            typ, nbytes = struct.unpack_from("<II", buf, 0)
            base, end = 8, 8 + nbytes
        if typ != _MI_MATRIX:
            continue
        _, f0, _, p = _sub_element(buf, base)
        _, d0, d1, p = _sub_element(buf, p)
        _, n0, n1, p = _sub_element(buf, p)
        if buf[n0:n1] != name:
            continue
        word = struct.unpack_from("<I", buf, f0)[0]
        if not 6 <= (word & 0xFF) <= 15 or word & 0x800:  # numeric class, not complex
            return None
        rtype, r0, r1, _ = _sub_element(buf, p)
        if rtype not in _MI_DTYPES or r1 > end:
            return None
        shape = tuple(int(v) for v in np.frombuffer(buf[d0:d1], dtype="<i4"))
        dtype = _MI_DTYPES[rtype]
        arr = np.frombuffer(buf[r0:r1], dtype=dtype).reshape(shape, order="F")
        if layout is not None:
            layout.append(None if compressed else (r0, r1, dtype, shape))
        return arr.astype(np.float64)
    return None


def _points(pts: np.ndarray) -> np.ndarray:
    if pts.shape == (2, N_POINTS):
        pts = pts.T
    if pts.shape != (N_POINTS, 2):
        raise ValueError(f"pts has shape {pts.shape}, expected ({N_POINTS}, 2)")
    return pts


def read_mat_points(data: bytes, layout: list[Layout] | None = None) -> np.ndarray:
    """The 66 x 2 ``pts`` of one DISFA landmark file (raises ValueError with the reason).

    A lean reader handles the usual case (little-endian MAT v5, compressed or not); anything
    else, and anything it cannot parse, goes to ``scipy.io.loadmat``.
    """
    try:
        pts = _fast_mat_variable(data, b"pts", layout)
    except (struct.error, zlib.error, ValueError):
        pts = None
    if pts is None:
        from scipy.io import loadmat

        try:
            mat = loadmat(io.BytesIO(data), variable_names=("pts",))
        except Exception as exc:  # noqa: BLE001 - any decoder failure means a corrupt file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"cannot read .mat: {first}") from None
        if "pts" not in mat:
            raise ValueError("no variable 'pts' in the .mat file")
        pts = np.asarray(mat["pts"], dtype=np.float64)
    return _points(pts)


class MatReader:
    """Reads a subject's landmark files, reusing the first file's layout.

    Files written by one program share a byte layout: everything after the 128-byte text
    header (which holds a creation time) except the numbers themselves. When a file's
    structure bytes equal the last parsed file's, its numbers are one ``np.frombuffer`` at
    the known offset; any other file is parsed in full (:func:`read_mat_points`).
    """

    def __init__(self) -> None:
        self._known: tuple[int, int, int, str, tuple[int, ...], bytes, bytes] | None = None

    def read(self, data: bytes) -> np.ndarray:
        k = self._known
        if (k is not None and len(data) == k[0] and data[126:128] == b"IM"
                and data[128:k[1]] == k[5] and data[k[2]:] == k[6]):
            return _points(np.frombuffer(data, dtype=k[3], count=(k[2] - k[1]) // int(k[3][-1]),
                                         offset=k[1]).reshape(k[4], order="F")
                           .astype(np.float64))
        found: list[Layout] = []
        pts = read_mat_points(data, found)
        lay = found[0] if found else None
        self._known = None if lay is None else (
            len(data), lay[0], lay[1], lay[2], lay[3], data[128:lay[0]], data[lay[1]:])
        return pts


def landmark_quality(lm: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Reason code per frame (index into :data:`REASONS`; 0 = good), vectorised.

    ``lm`` is ``(n, 66, 2)`` pixels; ``present`` says which frames had a readable file.
    Checks, in order: all coordinates finite; eyes apart (inter-ocular distance >= 8 px) and
    the face at least 20 px wide; every point within the 1024 x 768 frame (10 % margin); and
    a plausible face: mouth below the eye line at 0.5-2.5 IODs, the IOD within 0.5-2x the
    subject's median, and the pose-normalised shape within 0.5 IOD (mean point distance) of
    the subject's median shape. This catches the tracker failures DISFA is known for
    (collapsed or drifted point sets) without touching real expressions, which move a few
    points by at most ~0.5 IOD.
    """
    reason = np.where(present, 0, 1).astype(np.int8)
    finite = np.isfinite(lm).all(axis=(1, 2))
    reason[present & ~finite] = 3
    ok = reason == 0
    if not ok.any():
        return reason
    with np.errstate(invalid="ignore"):
        right_eye = lm[:, 36:42].mean(axis=1)
        left_eye = lm[:, 42:48].mean(axis=1)
        eye_vec = left_eye - right_eye
        iod = np.hypot(eye_vec[:, 0], eye_vec[:, 1])
        width = lm[:, :, 0].max(axis=1) - lm[:, :, 0].min(axis=1)
    degenerate = ok & ((iod < 8) | (width < 20))
    reason[degenerate] = 4
    ok &= ~degenerate
    w, h = FRAME_SIZE
    x, y = lm[:, :, 0], lm[:, :, 1]
    with np.errstate(invalid="ignore"):
        outside = ((x < -0.1 * w) | (x > 1.1 * w) | (y < -0.1 * h) | (y > 1.1 * h)).any(axis=1)
    reason[ok & outside] = 5
    ok &= ~outside
    if not ok.any():
        return reason
    safe_iod = np.where(ok, iod, 1.0)
    u = eye_vec / safe_iod[:, None]
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # image y points down: v points down the face
    mid = (left_eye + right_eye) / 2
    d = lm - mid[:, None, :]
    norm = np.stack([np.einsum("npc,nc->np", d, u), np.einsum("npc,nc->np", d, v)],
                    axis=2) / safe_iod[:, None, None]
    mouth_depth = norm[:, 48:60, 1].mean(axis=1)
    median_iod = np.median(iod[ok])
    median_shape = np.median(norm[ok], axis=0)
    distance = np.hypot(*(norm - median_shape).transpose(2, 0, 1)).mean(axis=1)
    implausible = ok & ((mouth_depth < 0.5) | (mouth_depth > 2.5)
                        | (iod < 0.5 * median_iod) | (iod > 2 * median_iod) | (distance > 0.5))
    reason[implausible] = 6
    return reason


def _frame_index(name: str) -> int | None:
    m = _MAT_RE.match(name)
    if not m:
        return None
    return int(m.group(1) if m.group(1) is not None else m.group(2))


def list_landmark_files(subject_dir: Path) -> list[tuple[int, str]]:
    """``(0-based index, path)`` of every landmark file under a subject's folder, whatever
    the subfolder (``tmp_frame_lm``, ``frame_lm``, none ...); sorted by relative path."""
    found: list[tuple[int, str]] = []
    for root, dirs, files in os.walk(subject_dir):
        dirs.sort()
        for name in sorted(files):
            idx = _frame_index(name)
            if idx is not None:
                found.append((idx, os.path.join(root, name)))
    return found


def read_subject(task: Mapping[str, Any]) -> dict[str, Any]:
    """Read one subject (runs in a worker process): labels, landmarks, quality, checksums."""
    subject, root = task["subject"], Path(task["root"])
    issues: list[tuple[str, str]] = []

    prefix = os.path.join(str(root), "")

    def rel(p: str | Path) -> str:
        # String slicing, not pathlib: this runs once per landmark file (~130k times).
        p = str(p)
        return p[len(prefix):].replace(os.sep, "/") if p.startswith(prefix) else p

    # -- labels: frame count comes from the label files, not a constant.
    label_hash = hashlib.sha256()
    per_au: list[tuple[np.ndarray, np.ndarray]] = []
    for au in AUS:
        path = task["labels"][str(au)]
        with open(path, "rb") as f:
            data = f.read()
        label_hash.update(rel(path).encode() + b"\0" + data + b"\0")
        frames, values, bad = parse_label_file(data, rel(path))
        issues.extend(bad)
        per_au.append((frames, values))
    n = int(max((fr.max() for fr, _ in per_au if fr.size), default=0))
    au = np.full((n, len(AUS)), -1, dtype=np.int8)
    for j, (frames, values) in enumerate(per_au):
        au[frames - 1, j] = values
        if 0 < frames.size < n:
            path = rel(task["labels"][str(AUS[j])])
            issues.append((path, f"has {frames.size} of {n} frames (truncated?); the rest are "
                                 f"null for AU{AUS[j]:02d}"))

    lm = np.full((n, N_POINTS, 2), np.nan, dtype=np.float64)
    present = np.zeros(n, dtype=bool)
    reason_read = np.zeros(n, dtype=np.int8)
    lm_hash = hashlib.sha256()
    base = 0
    if task.get("video"):
        lm, present = _video_landmarks(task["video"], n)
        lm_hash.update(f"{Path(task['video']).name}|{os.path.getsize(task['video'])}".encode())
    else:
        files = task["landmarks"]
        idx = np.array([i for i, _ in files], dtype=np.int64)
        # 0-based names (the documented convention); a subject whose files run 1..n with no
        # 0 is 1-based (both spellings occur in the wild).
        base = 1 if idx.size and idx.min() >= 1 and idx.max() == n else 0
        beyond, seen = 0, np.zeros(n, dtype=bool)
        reader = MatReader()
        for i, path in files:
            frame = i + 1 - base
            if not 1 <= frame <= n:
                beyond += 1
                continue
            data = _read_bytes(path)
            lm_hash.update(rel(path).encode() + b"\0" + data + b"\0")
            if seen[frame - 1]:
                issues.append((rel(path), f"a second landmark file for frame {frame} (ignored)"))
                continue
            seen[frame - 1] = True
            try:
                lm[frame - 1] = reader.read(data)
                present[frame - 1] = True
            except ValueError as exc:
                issues.append((rel(path), str(exc)))
                reason_read[frame - 1] = 2
        if beyond:
            issues.append((rel(task["landmark_dir"]), f"{beyond} landmark file(s) beyond the "
                                                      f"{n} labelled frames (ignored)"))
    if task.get("video"):  # MediaPipe's own failures are frames without a face
        reason = np.where(present, 0, 1).astype(np.int8)
    else:
        reason = landmark_quality(lm, present)
    reason = np.where(reason_read > 0, reason_read, reason).astype(np.int8)
    missing = np.flatnonzero(reason == 1) + 1
    if missing.size:
        issues.append((rel(task.get("landmark_dir") or task.get("video") or root),
                       f"no landmarks for {missing.size} frame(s): {_ranges(missing)}"))
    for code in (3, 4, 5, 6):
        frames = np.flatnonzero(reason == code) + 1
        if frames.size:
            issues.append((rel(task.get("landmark_dir") or task.get("video") or root),
                           f"bad landmarks ({REASONS[code]}) in {frames.size} frame(s): "
                           f"{_ranges(frames)}"))
    return {
        "subject": subject, "au": au, "lm": lm.astype(np.float32), "reason": reason,
        "issues": np.array([f"{p}\t{m}" for p, m in issues], dtype=str),
        "labels_sha256": label_hash.hexdigest(), "landmarks_sha256": lm_hash.hexdigest(),
        "base": base,
    }


def _read_bytes(path: str) -> bytes:
    """A whole small file with raw os calls (a third of the cost of open().read() on
    DISFA's 1.2 kB landmark files, of which there are ~130k)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:
            chunks.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _ranges(frames: np.ndarray, limit: int = 8) -> str:
    """'3, 10-14, 20' for sorted frame numbers (at most ``limit`` ranges shown)."""
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    runs = np.split(frames, breaks)
    text = [f"{r[0]}" if r.size == 1 else f"{r[0]}-{r[-1]}" for r in runs[:limit]]
    if len(runs) > limit:
        text.append(f"... ({len(runs) - limit} more ranges)")
    return ", ".join(text)


def _video_landmarks(video: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """DISFA's left-camera video through MediaPipe (VIDEO mode, one face) ->
    ``(n, 478, 2)`` pixels (NaN where no face) and presence per frame.

    MediaPipe gives 478 points, not DISFA's 66, so the landmark columns of the table stay
    null and the components are measured with the mediapipe478 scheme.
    """
    try:
        from fuzzyemo._mediapipe import FaceLandmarker
        from fuzzyemo._video import collect_sources, read_frames
    except ImportError:
        raise InputError("--from-video requires the [video] extra (MediaPipe, OpenCV): "
                         "pip install 'fuzzyemo[video]'") from None
    out = np.full((n, 478, 2), np.nan)
    sources = collect_sources([video])
    fps = sources[0].fps or FPS
    with FaceLandmarker(mode="video", max_faces=1) as lm:
        for fr in read_frames(sources):
            if fr.number > n:
                break  # frames beyond the labels are not part of the dataset
            faces = lm.detect(fr.rgb, timestamp_ms=int(round((fr.number - 1) * 1000 / fps)))
            if len(faces):
                out[fr.number - 1] = faces.landmarks[0, :, :2]
    present = np.isfinite(out).all(axis=(1, 2))
    return out, present


# ----------------------------------------------------------------------------- builder
class DisfaBuilder(DatasetBuilder):
    """DISFA -> DISFA-FER (one row per frame, 27 subjects x ~4,845 frames)."""

    name: ClassVar[str] = "disfa"
    VERSION: ClassVar[str] = VERSION
    source_dirnames: ClassVar[tuple[str, ...]] = ("DISFA", "disfa")

    def __init__(self, source: str | os.PathLike | None = None, *, from_video: bool = False,
                 **kwargs: Any):
        self.from_video = from_video
        super().__init__(source, **kwargs)
        self.reused_parts = 0
        self._output: Path | None = None

    @classmethod
    def info(cls) -> DatasetInfo:
        fields = [pa.field("subject", pa.string()), pa.field("frame", pa.int32()),
                  pa.field("timestamp", pa.float64()), pa.field("split", pa.string()),
                  pa.field("valid", pa.bool_()), pa.field("invalid_reason", pa.string()),
                  *landmark_fields(N_POINTS), *result_fields(),
                  *[pa.field(c, pa.int8()) for c in AU_COLUMNS],
                  # The same rules on DISFA's own AU codes (rules/aus.yaml): "AU truth".
                  pa.field("label_au", pa.string()), pa.field("class_index_au", pa.int16())]
        return DatasetInfo(
            name="DISFA-FER", version=VERSION,
            description="DISFA frames with fine-grained emotion labels (6 emotions x 3 "
                        "intensities) from fuzzyemo's rules, plus DISFA's AU intensities.",
            homepage=HOMEPAGE, license=LICENSE, citation=CITATION,
            schema=pa.schema(fields), splits=tuple(sorted(FOLDS)),
            sort_keys=("subject", "frame"))

    # -- source ---------------------------------------------------------------------
    def _labels_dir(self) -> Path:
        return self.source / "ActionUnit_Labels"

    def _landmark_root(self) -> Path | None:
        for name in _LANDMARK_ROOTS:
            p = self.source / name
            # The doubled layout holds the subject folders one level down.
            if p.is_dir() and any(_SUBJECT_RE.match(c.name) for c in p.iterdir() if c.is_dir()):
                return p
        p = self.source / "Landmark_Points"
        return p if p.is_dir() else None

    def _video_dir(self) -> Path | None:
        for name in _VIDEO_DIRS:
            if (self.source / name).is_dir():
                return self.source / name
        return None

    def _rerun(self) -> str:
        return (f"  rerun with: fuzzyemo build-dataset disfa --source DIR -o OUT "
                f"(or set FUZZYEMO_DATA_DIR to the folder holding DISFA/)\n"
                f"  DISFA is licensed: request it at {HOMEPAGE}")

    def subjects(self) -> list[str]:
        d = self._labels_dir()
        if not d.is_dir():
            return []
        return sorted(c.name.upper() for c in d.iterdir() if c.is_dir() and _SUBJECT_RE.match(c.name))

    def check_source(self) -> None:
        src = self.source
        missing: list[str] = []
        if not self._labels_dir().is_dir():
            missing.append(str(self._labels_dir()) + "/SNxxx/SNxxx_au<N>.txt")
        if self.from_video:
            if self._video_dir() is None:
                missing.append(str(src / "Videos_LeftCamera") + "/LeftVideoSNxxx_comp.avi")
        elif self._landmark_root() is None:
            missing.append(str(src / "Landmark_Points") + "/SNxxx/<subfolder>/*_lm.mat")
        if missing:
            raise SourceError(f"{src}: not a DISFA folder (missing {len(missing)} expected "
                              "path(s))\n" + "\n".join(f"  expected: {m}" for m in missing)
                              + "\n" + self._rerun())
        subjects = self.subjects()
        if not subjects:
            raise SourceError(f"{self._labels_dir()}: no subject folders (SN001 ... SN032)\n"
                              + "\n".join(f"  expected: {self._labels_dir() / s}"
                                          for s in SUBJECTS[:3]) + "\n  ...\n" + self._rerun())
        # Listing is done once here (it raises SourceError naming the missing files).
        self._tasks = [self._subject_task(s) for s in subjects]

    def _subject_task(self, subject: str) -> dict[str, Any]:
        label_dir = self._labels_dir() / subject
        found: dict[int, Path] = {}
        for f in label_dir.iterdir() if label_dir.is_dir() else ():
            m = _LABEL_RE.match(f.name)
            if m and m.group(1).upper() == subject:
                found[int(m.group(2))] = f
        missing = [str(label_dir / f"{subject}_au{a}.txt") for a in AUS if a not in found]
        task: dict[str, Any] = {"subject": subject, "root": str(self.source),
                                "labels": {str(a): str(found[a]) for a in AUS if a in found}}
        if self.from_video:
            video = self._find_video(subject)
            if video is None:
                missing.append(str((self._video_dir() or self.source / "Videos_LeftCamera")
                                   / f"LeftVideo{subject}_comp.avi"))
            task["video"] = str(video) if video else None
        else:
            root = self._landmark_root()
            sdir = root / subject if root is not None else None
            if sdir is None or not sdir.is_dir():
                missing.append(str((root or self.source / "Landmark_Points") / subject)
                               + "/<subfolder>/*_lm.mat")
            else:
                task["landmark_dir"] = str(sdir)
                task["landmarks"] = list_landmark_files(sdir)
                if not task["landmarks"]:
                    missing.append(f"{sdir}/<subfolder>/{subject}_NNNN_lm.mat")
        if missing:
            raise SourceError(f"{self.source}: DISFA subject {subject} is incomplete "
                              f"({len(missing)} missing path(s))\n"
                              + "\n".join(f"  expected: {m}" for m in missing)
                              + "\n" + self._rerun())
        return task

    def _find_video(self, subject: str) -> Path | None:
        d = self._video_dir()
        if d is None:
            return None
        want = f"leftvideo{subject.lower()}_comp.avi"
        return next((f for f in sorted(d.iterdir()) if f.name.lower() == want), None)

    def videos(self) -> dict[str, list[str]]:
        """Video files found (both cameras; ``_comp`` or ``_Comp``), by camera."""
        out: dict[str, list[str]] = {}
        for camera in ("Left", "Right"):
            files: list[str] = []
            for dname in (f"Videos_{camera}Camera", f"Video_{camera}Camera"):
                d = self.source / dname
                if d.is_dir():
                    files += sorted(f"{dname}/{f.name}" for f in d.iterdir()
                                    if re.match(rf"^{camera}VideoSN\d{{3}}_comp\.avi$", f.name,
                                                re.IGNORECASE))
            out[camera.lower()] = files
        return out

    def split_generators(self) -> dict[str, list[str]]:
        folds = fold_of(self.subjects())
        return {f: [s for s in sorted(folds) if folds[s] == f] for f in sorted(FOLDS)}

    def example_keys(self, df: pd.DataFrame) -> list[str]:
        return [f"{s}/{f:05d}" for s, f in zip(df["subject"], df["frame"], strict=True)]

    # -- reading (parallel, resumable) ------------------------------------------------
    def _parts_dir(self) -> Path | None:
        if self._output is None:
            return None
        return self._output.parent / f".{self._output.name}.parts"

    @staticmethod
    def _fingerprint(task: Mapping[str, Any]) -> str:
        """Cheap identity of a subject's source for resuming: builder version, the label
        files' names, sizes and times, and the landmark files' names (statting ~4,845
        landmark files per subject would cost more than the check is worth)."""
        h = hashlib.sha256(f"{VERSION}|{task.get('video')}".encode())
        for path in task["labels"].values():
            st = os.stat(path)
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        for _, path in task.get("landmarks", ()):
            h.update(f"{path}\n".encode())
        return h.hexdigest()

    def read_all(self) -> list[dict[str, Any]]:
        """Every subject's raw arrays, from finished parts where possible."""
        subjects = self.subjects()
        tasks = getattr(self, "_tasks", None) or [self._subject_task(s) for s in subjects]
        parts_dir = self._parts_dir()
        if parts_dir is not None:
            parts_dir.mkdir(exist_ok=True)
        results: dict[str, dict[str, Any]] = {}
        todo = []
        for task in tasks:
            fp = self._fingerprint(task)
            task["fingerprint"] = fp
            part = parts_dir / f"{task['subject']}.npz" if parts_dir else None
            if part is not None and part.is_file():
                try:
                    with np.load(part, allow_pickle=False) as z:
                        if str(z["fingerprint"]) == fp:
                            results[task["subject"]] = {k: z[k] for k in z.files}
                            self.reused_parts += 1
                            continue
                except (OSError, ValueError, KeyError):
                    pass  # a damaged part is simply redone
            todo.append(task)

        def finish(task: dict[str, Any], res: dict[str, Any]) -> None:
            res["fingerprint"] = task["fingerprint"]
            if self.strict and len(res["issues"]):
                path, msg = str(res["issues"][0]).split("\t", 1)
                self.issues.add(path, msg)  # raises BuildError
            if parts_dir is not None:
                save_npz_atomic(parts_dir / f"{task['subject']}.npz", **res)
            results[task["subject"]] = res

        with Progress(self.progress, "DISFA subjects", len(todo)) as bar:
            if self.workers > 1 and len(todo) > 1:
                # Processes, not threads: loadmat is Python-heavy and holds the GIL.
                with ProcessPoolExecutor(min(self.workers, len(todo))) as pool:
                    pending: dict[Future, dict[str, Any]] = {
                        pool.submit(read_subject, t): t for t in todo}
                    try:
                        while pending:
                            done, _ = wait(pending, return_when=FIRST_COMPLETED)
                            for fut in done:
                                finish(pending.pop(fut), fut.result())
                                bar.advance()
                    except BaseException:
                        for fut in pending:
                            fut.cancel()
                        raise
            else:
                for task in todo:
                    finish(task, read_subject(task))
                    bar.advance()
        out = [results[s] for s in subjects]
        for res in out:  # issues in subject order, so metadata is deterministic
            for item in res["issues"]:
                path, msg = str(item).split("\t", 1)
                self.issues.add(path, msg)
        return out

    def cleanup(self) -> None:
        parts = self._parts_dir()
        if parts is not None and parts.is_dir():
            shutil.rmtree(parts, ignore_errors=True)

    # -- the table --------------------------------------------------------------------
    def build_table(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        from fuzzyemo._geometry import Baseline, Calibration, raw_features
        from fuzzyemo._landmarks import LandmarkScheme

        parts = self.read_all()
        if not parts:
            raise BuildError(f"{self._labels_dir()}: no subjects to build")
        scheme = LandmarkScheme.load("mediapipe478" if self.from_video else "disfa66",
                                     self.rules_dir)
        cal = Calibration.load(self.rules_dir)
        folds = fold_of([str(p["subject"]) for p in parts])
        blocks, baselines, checksums = [], {}, {}
        for p in parts:
            subject = str(p["subject"])
            au, reason = p["au"], p["reason"]
            n = au.shape[0]
            lm = p["lm"].astype(np.float64)
            raw = raw_features(scheme.named(lm))
            valid = (reason == 0) & np.isfinite(raw).all(axis=1)
            # Points that passed the checks but give no geometry (coincident eye corners).
            reason = np.where((reason == 0) & ~valid, 4, reason).astype(np.int8)
            neutral = valid & (au == 0).all(axis=1)
            if neutral.any():
                b = Baseline.from_frames(raw[neutral], f"{neutral.sum()} frames with all 12 "
                                                       "AUs at 0")
            elif valid.any():
                b = Baseline.self_calibrate(raw[valid])
            else:
                b = Baseline.population(scheme)
            baselines[subject] = {"source": b.source, "n_frames": int(b.n_frames)}
            x = cal.apply(raw, b.values)
            x[~valid] = np.nan
            checksums[subject] = {"labels": str(p["labels_sha256"]),
                                  "landmarks": str(p["landmarks_sha256"]),
                                  "frame_index_base": int(p["base"])}
            blocks.append((subject, n, valid, reason, p["lm"], x, au))
        x_all = np.concatenate([b[5] for b in blocks])
        res = results_frame(self.rulebase.compile().evaluate(x_all))
        n_total = x_all.shape[0]
        frame = np.concatenate([np.arange(1, b[1] + 1, dtype=np.int32) for b in blocks])
        subject_col = np.concatenate([np.full(b[1], b[0], dtype=object) for b in blocks])
        reason = np.concatenate([b[3] for b in blocks])
        lm_all = np.concatenate([b[4] for b in blocks]).astype(np.float32)
        if self.from_video:  # MediaPipe's 478 points do not fit the 66-point columns
            lm_all = np.full((n_total, N_POINTS, 2), np.nan, dtype=np.float32)
        au_all = np.concatenate([b[6] for b in blocks])
        data: dict[str, Any] = {
            "subject": subject_col, "frame": frame,
            "timestamp": (frame.astype(np.float64) - 1) / FPS,
            "split": np.concatenate([np.full(b[1], folds[b[0]], dtype=object) for b in blocks]),
            "valid": np.concatenate([b[2] for b in blocks]),
            "invalid_reason": np.where(reason == 0, None,
                                       np.array(REASONS, dtype=object)[reason]),
        }
        data.update({f"x_{i}": lm_all[:, i, 0] for i in range(N_POINTS)})
        data.update({f"y_{i}": lm_all[:, i, 1] for i in range(N_POINTS)})
        df = pd.concat([pd.DataFrame(data), res], axis=1)
        for j, c in enumerate(COMPONENTS):
            df[c] = x_all[:, j]
        for j, c in enumerate(AU_COLUMNS):
            col = pd.array(au_all[:, j], dtype="Int8")
            col[au_all[:, j] < 0] = pd.NA
            df[c] = col
        # "AU truth": the rules applied to DISFA's manual AU codes mapped onto the 12
        # components (rules/aus.yaml), beside the landmark-based label; `fuzzyemo report
        # disfa-fer` compares the two. Uncoded AUs (-1) make their components NaN: unknown.
        from fuzzyemo._aus import AuMapping
        from fuzzyemo._files import file_sha256

        mapping = AuMapping.load(self.rules_dir)
        au_float = np.where(au_all < 0, np.nan, au_all.astype(np.float64)) / 5.0
        x_au = mapping.measure({f"AU{a:02d}": au_float[:, j] for j, a in enumerate(AUS)},
                               n_total)
        res_au = results_frame(self.rulebase.compile().evaluate(x_au))
        df["label_au"] = res_au["label"].to_numpy()
        df["class_index_au"] = res_au["class_index"].to_numpy()
        provenance = {
            "source_checksums": checksums,
            "subjects": [b[0] for b in blocks],
            "folds": {f: [s for s in sorted(folds) if folds[s] == f] for f in sorted(FOLDS)},
            "baselines": baselines,
            "landmarks": "mediapipe478 (from the left-camera video)" if self.from_video
            else "disfa66 (shipped .mat files, left camera)",
            "calibration_sha256": cal.sha256,
            "aus_sha256": file_sha256(mapping.path),
            "fps": FPS,
        }
        return df, provenance

    def default_command(self) -> str:
        assert self._output is not None
        flags = " --strict" if self.strict else ""
        flags += " --from-video" if self.from_video else ""
        return (f"fuzzyemo build-dataset disfa --source $SOURCE -o {self._output.name}"
                f"{flags}")

    # -- the card ---------------------------------------------------------------------
    def card(self, df: pd.DataFrame, meta: Mapping[str, Any], counts: pd.DataFrame,
             plot: str | None) -> str:
        info = self.info()
        n_valid = int(df["valid"].sum())
        missing_subjects = [s for s in SUBJECTS if s not in meta["subjects"]]
        folds = meta["folds"]
        lines = [
            f"# {info.name}", "",
            info.description, "",
            f"- rows: {len(df)} frames of {len(meta['subjects'])} subjects "
            f"({n_valid} valid, {len(df) - n_valid} with missing or bad landmarks, "
            "labelled `unknown`)",
            f"- landmarks: {meta['landmarks']}",
            f"- file: `{self._output.name if self._output else ''}` (parquet; columns and "
            "types in docs/datasets.md)",
        ]
        if missing_subjects:
            lines.append(f"- subjects absent from the source ({len(missing_subjects)} of the "
                         f"official 27): {', '.join(missing_subjects)}")
        lines += [
            "", "## How the labels were made", "",
            "1. Landmarks: DISFA's 66-point landmarks of the left camera (one `.mat` per "
            "frame), checked for tracker failures (docs/datasets.md lists the checks). "
            "Frames with no file or bad landmarks are kept with `valid = false` and an "
            "`invalid_reason`, their measurements are null and their label is `unknown`.",
            "2. Geometry: the 12 raw component features (docs/geometry.md), relative to a "
            "per-subject neutral baseline (the median of that subject's valid frames whose 12 "
            "AU intensities are all 0; subjects with none are self-calibrated on their own "
            "most neutral 10 % of frames), mapped to [-1, 1] by rules/calibration.yaml.",
            "3. Rules: the FCIS/FKIS rule base (rule hash below) gives activations, "
            "eccentricities, the 18 intensity scores and the label (`neutral` below the "
            "rule base's min_activation).",
            "4. The AU intensities `AU01_r` ... `AU26_r` are DISFA's own manual FACS codes "
            "(0-5), null where a label file lacks the frame. They are ground truth for the "
            "AUs, not for the emotion labels: `fuzzyemo report disfa-fer` shows how the two "
            "agree.",
            "", "## Splits (subject-independent)", "",
        ]
        lines += [f"- `{f}`: {', '.join(members) or '(none)'}" for f, members in folds.items()]
        lines += ["", "Train on two folds, test on the third (the usual 3-fold DISFA "
                  "protocol).", "", "## Baselines", ""]
        lines += [f"- {s}: {b['source']}" for s, b in meta["baselines"].items()]
        lines += ["", self.card_common(meta, counts, plot),
                  "## Licence of the source", "", LICENSE, "",
                  "## Citation", "", CITATION, ""]
        return "\n".join(lines)
