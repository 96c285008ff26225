"""Fixture generators: small DISFA and WFLW trees in the exact on-disk layouts.

Faces are the shipped neutral templates (rules/landmarks/*.yaml) in pixels, deformed by the
AU intensities of each frame (brows up for AU1/2, mouth corners up for AU12, jaw down for
AU26, ...), so the measurements move the way real faces do. Layout quirks covered:

DISFA: both landmark name patterns (``SNxxx_NNNN_lm.mat`` and ``l0NNNN_lm.mat``, 0-based),
three subfolder spellings (``tmp_frame_lm``, ``frame_lm``, none) and optionally the doubled
``Landmark_Points/Landmark_Points``, a missing landmark file, a range of collapsed and of
scrambled landmarks, a corrupt ``.mat``, a truncated label file, ``_comp`` / ``_Comp`` videos.
WFLW: 207-token lines, images with several faces, a short line and a non-numeric line.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)

# Index groups per scheme (iBUG order for DISFA's 66, WFLW's own 98).
_GROUPS: dict[str, dict[str, list[int]]] = {
    "disfa66": {
        "brows": list(range(17, 27)), "inner_brows": [20, 21, 22, 23],
        "right_inner_brow": [20, 21], "left_inner_brow": [22, 23],
        "upper_lids": [37, 38, 43, 44], "lower_lids": [40, 41, 46, 47],
        "right_corner": [48], "left_corner": [54],
        "lower_lip": [55, 56, 57, 58, 59, 63, 64, 65], "jaw": list(range(4, 13)),
    },
    "wflw98": {
        "brows": list(range(33, 51)), "inner_brows": [36, 37, 38, 42, 43, 50],
        "right_inner_brow": [36, 37, 38], "left_inner_brow": [42, 43, 50],
        "upper_lids": [61, 62, 63, 69, 70, 71], "lower_lids": [65, 66, 67, 73, 74, 75],
        "right_corner": [76, 88], "left_corner": [82, 92],
        "lower_lip": [83, 84, 85, 86, 87, 93, 94, 95], "jaw": list(range(6, 27)),
    },
}


@lru_cache(maxsize=1)
def rulebase():
    """The shipped rule base, loaded once per test session (YAML parsing is the slow part
    of a tiny build)."""
    from fuzzyemo import RuleBase

    return RuleBase.default()


def fast(cls: type) -> type:
    """A builder class whose instances default to the cached rule base and no plot, so the
    many tiny builds of the tests take milliseconds, not seconds."""

    class Fast(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("rulebase", rulebase())
            kwargs.setdefault("plot", False)
            super().__init__(*args, **kwargs)

    Fast.__name__ = cls.__name__
    return Fast


def template(scheme: str) -> np.ndarray:
    from fuzzyemo._landmarks import LandmarkScheme

    return LandmarkScheme.load(scheme).template.copy()


def face(scheme: str, au: Mapping[int, int], *, scale: float = 120.0,
         centre: tuple[float, float] = (512.0, 384.0), roll: float = 0.0) -> np.ndarray:
    """One face in pixels (y down) showing the given AU intensities (0-5)."""
    g = _GROUPS[scheme]
    p = template(scheme)
    a = {k: float(au.get(k, 0)) for k in AUS}
    p[g["brows"], 1] -= 0.03 * max(a[1], a[2])                 # AU1/2: brows up
    p[g["inner_brows"], 1] += 0.025 * a[4]                     # AU4: brows down and together
    p[g["right_inner_brow"], 0] += 0.02 * a[4]
    p[g["left_inner_brow"], 0] -= 0.02 * a[4]
    p[g["upper_lids"], 1] -= 0.012 * a[5]                      # AU5: lids apart
    p[g["lower_lids"], 1] -= 0.01 * a[6]                       # AU6: cheeks push lids up
    for side, sign in (("right_corner", -1.0), ("left_corner", 1.0)):
        p[g[side], 1] -= 0.035 * a[12] - 0.03 * a[15]          # AU12 up, AU15 down
        p[g[side], 0] += sign * 0.02 * a[12]
    drop = 0.06 * max(a[26], a[25] / 2)                        # AU25/26: mouth open
    p[g["lower_lip"], 1] += drop
    p[g["jaw"], 1] += drop * 0.8
    c, s = np.cos(roll), np.sin(roll)
    p = p @ np.array([[c, s], [-s, c]])
    return p * scale + np.asarray(centre)


# ----------------------------------------------------------------------------- DISFA
def au_pattern(n_frames: int) -> np.ndarray:
    """(n, 12) AU intensities: neutral, then a smile, a surprise, a frown, neutral."""
    au = np.zeros((n_frames, len(AUS)), dtype=int)
    col = {a: j for j, a in enumerate(AUS)}
    q = max(n_frames // 5, 1)
    smile = slice(q, 2 * q)
    au[smile, col[6]] = 3
    au[smile, col[12]] = 4
    au[smile, col[25]] = 2
    surprise = slice(2 * q, 3 * q)
    for a, v in ((1, 4), (2, 4), (5, 3), (25, 3), (26, 4)):
        au[surprise, col[a]] = v
    frown = slice(3 * q, 4 * q)
    au[frown, col[4]] = 4
    au[frown, col[15]] = 3
    au[frown, col[17]] = 2
    return au


def write_mat(path: Path, pts: np.ndarray) -> None:
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"pts": pts})
    path.write_bytes(buf.getvalue())


def make_disfa(root: Path, subjects: Sequence[str] = ("SN001", "SN002", "SN031"),
               n_frames: int = 40, *, doubled: bool = False, missing: Mapping[str, int] | None = None,
               collapsed: Mapping[str, range] | None = None,
               scrambled: Mapping[str, range] | None = None,
               corrupt: Mapping[str, int] | None = None,
               truncated: Mapping[str, int] | None = None,
               frames_per_subject: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Write a DISFA tree under ``root``; returns what was written (for assertions).

    Subject k uses name pattern ``k % 2`` (0: ``SNxxx_NNNN_lm.mat``, 1: ``l0NNNN_lm.mat``)
    and subfolder ``("tmp_frame_lm", "frame_lm", "")[k % 3]``. ``missing``: subject -> frame
    without a file; ``collapsed`` / ``scrambled``: subject -> frames with all points on one
    spot / in a random order; ``corrupt``: subject -> frame whose .mat is garbage;
    ``truncated``: subject -> AU whose label file is cut mid-line.
    """
    missing = {"SN031": 20} if missing is None else missing
    collapsed = {"SN031": range(30, 33)} if collapsed is None else collapsed
    scrambled = scrambled or {}
    corrupt = corrupt or {}
    truncated = truncated or {}
    rng = np.random.default_rng(0)
    labels_root = root / "ActionUnit_Labels"
    lm_root = root / "Landmark_Points" / ("Landmark_Points" if doubled else "")
    written: dict[str, Any] = {"au": {}, "landmarks": {}, "dirs": {}}
    for k, subject in enumerate(subjects):
        n = (frames_per_subject or {}).get(subject, n_frames)
        au = au_pattern(n)
        written["au"][subject] = au
        ldir = labels_root / subject
        ldir.mkdir(parents=True, exist_ok=True)
        for j, a in enumerate(AUS):
            text = "".join(f"{f + 1},{au[f, j]}\n" for f in range(n))
            if truncated.get(subject) == a:
                text = text[: len(text) * 2 // 3].rstrip("\n")
                text = text[: text.rfind(",") + 1]  # ends in "frame," : a cut-off line
            (ldir / f"{subject}_au{a}.txt").write_text(text)
        sub = ("tmp_frame_lm", "frame_lm", "")[k % 3]
        sdir = lm_root / subject / sub if sub else lm_root / subject
        sdir.mkdir(parents=True, exist_ok=True)
        written["dirs"][subject] = sdir
        roll = 0.05 * (k - 1)
        scale = 110.0 + 10 * k
        pts_all = np.stack([face("disfa66", dict(zip(AUS, au[f], strict=True)), scale=scale,
                                 centre=(500.0 + 8 * k, 380.0), roll=roll) for f in range(n)])
        pts_all += rng.normal(0, 0.3, pts_all.shape)  # tracker jitter
        for f in (f for f in collapsed.get(subject, ()) if f <= n):
            pts_all[f - 1] = pts_all[f - 1].mean(axis=0)
        for f in (f for f in scrambled.get(subject, ()) if f <= n):
            pts_all[f - 1] = pts_all[f - 1][rng.permutation(66)]
        written["landmarks"][subject] = pts_all
        for f in range(1, n + 1):
            if missing.get(subject) == f:
                continue
            name = f"{subject}_{f - 1:04d}_lm.mat" if k % 2 == 0 else f"l0{f - 1:04d}_lm.mat"
            if corrupt.get(subject) == f:
                (sdir / name).write_bytes(b"MATLAB 5.0 MAT-file, this is not a mat file" * 3)
            else:
                write_mat(sdir / name, pts_all[f - 1])
        # Videos: landmarks belong to the left camera; capital "Comp" on one right video.
        left = root / "Videos_LeftCamera"
        right = root / "Video_RightCamera"
        left.mkdir(exist_ok=True)
        right.mkdir(exist_ok=True)
        (left / f"LeftVideo{subject}_comp.avi").write_bytes(b"RIFF....AVI ")
        (right / f"RightVideo{subject}_{'Comp' if k == 0 else 'comp'}.avi").write_bytes(
            b"RIFF....AVI ")
    return written


# ----------------------------------------------------------------------------- WFLW
def wflw_line(pts: np.ndarray, box: Sequence[int], flags: Sequence[int], image: str) -> str:
    coords = " ".join(f"{v:.6f}" for v in pts.reshape(-1))
    return f"{coords} {' '.join(map(str, box))} {' '.join(map(str, flags))} {image}"


def make_wflw(root: Path, n_train: int = 12, n_test: int = 6, *, images: bool = False,
              bad_image: bool = False, malformed: bool = True) -> dict[str, Any]:
    """Write a WFLW tree under ``root``: annotation lists (with a two-face image, a short
    line and a non-numeric line per file) and, with ``images``, small JPEGs."""
    rng = np.random.default_rng(1)
    ann = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    ann.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {"faces": {}, "bad_lines": {}}
    for split, n in (("train", n_train), ("test", n_test)):
        lines, faces = [], []
        for i in range(n):
            smiling = i % 3 == 1
            au = {6: 3, 12: 5, 25: 2} if smiling else {}
            event = "0--Parade" if i % 2 == 0 else "37--Soccer"
            # Faces 0 and 1 share one image (a multi-face image); the rest have their own.
            image = f"0--Parade/{split}_group.jpg" if i < 2 else f"{event}/{split}_{i}.jpg"
            cx, cy = 160.0 + 90 * (i % 2), 150.0
            pts = face("wflw98", au, scale=40.0, centre=(cx, cy)) + rng.normal(0, 0.2, (98, 2))
            box = [int(pts[:, 0].min()), int(pts[:, 1].min()), int(pts[:, 0].max()) + 1,
                   int(pts[:, 1].max()) + 1]
            flags = [0, int(smiling), 0, 0, int(i % 4 == 3), 0]
            lines.append(wflw_line(pts, box, flags, image))
            faces.append({"image": image, "pts": pts, "box": box, "flags": flags,
                          "smiling": smiling})
        # Malformed lines: one token short, and a non-numeric coordinate.
        short = wflw_line(faces[0]["pts"], faces[0]["box"], faces[0]["flags"],
                          "0--Parade/short.jpg").split()
        del short[5]
        if malformed:
            lines.insert(3, " ".join(short))
        bad = wflw_line(faces[1]["pts"], faces[1]["box"], faces[1]["flags"],
                        "0--Parade/bad.jpg").split()
        bad[10] = "12.3.4"
        if malformed:
            lines.insert(6, " ".join(bad))
        written["bad_lines"][split] = (4, 7)
        (ann / f"list_98pt_rect_attr_{split}.txt").write_text("\n".join(lines) + "\n")
        written["faces"][split] = faces
        if images:
            from PIL import Image

            for f in faces:
                p = root / "WFLW_images" / f["image"]
                p.parent.mkdir(parents=True, exist_ok=True)
                if not p.exists():
                    arr = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
                    Image.fromarray(arr).save(p, format="JPEG")
            if bad_image:
                (root / "WFLW_images" / faces[-1]["image"]).write_bytes(b"not a jpeg")
    return written
