"""Pictures of an ``annotate`` table: a timeline PNG and an overlay MP4.

:func:`plot_timeline` draws, for one source and face, each emotion's activation (how strongly
its rules fire) and intensity (its eccentricity, the centroid of the intensity set) over time,
with a band of the frame labels underneath. :func:`write_overlay` re-reads a video and draws
the landmarks and the current label on every frame. Both write atomically (temp file, then
rename). matplotlib is needed for the timeline only (``pip install "fuzzyemo[video]"``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._errors import InputError
from ._files import atomic_path, save_png
from ._progress import Reporter
from ._vocab import EMOTIONS

# One colour per emotion (colour-blind-safe Okabe-Ito), reused for the label band.
EMOTION_COLOURS = {
    "happiness": "#E69F00", "anger": "#D55E00", "sadness": "#0072B2",
    "disgust": "#009E73", "fear": "#CC79A7", "surprise": "#56B4E9",
}
NEUTRAL_COLOUR = "#DDDDDD"
UNKNOWN_COLOUR = "#FFFFFF"


def _select(df: pd.DataFrame, source: str | None, face_id: int) -> tuple[pd.DataFrame, str]:
    for col in ("source", "frame", "timestamp", "label"):
        if col not in df.columns:
            raise InputError(f"the table has no {col!r} column: is it an annotate table?")
    sources = list(dict.fromkeys(df["source"].astype(str)))
    if not sources:
        raise InputError("the table is empty: nothing to plot")
    if source is None:
        source = sources[0]
    elif source not in sources:
        raise InputError(f"source {source!r} is not in the table (it has {len(sources)}: "
                         f"{', '.join(sources[:3])}{'...' if len(sources) > 3 else ''})")
    rows = df[(df["source"].astype(str) == source) & (df["face_id"] == face_id)]
    if rows.empty:
        raise InputError(f"{source}: no rows for face_id {face_id}")
    return rows.sort_values("frame", kind="stable"), source


def _label_colours(labels: np.ndarray) -> list[str]:
    out = []
    for lab in labels:
        emo = str(lab).rsplit("_", 1)[0]
        out.append(EMOTION_COLOURS.get(emo, UNKNOWN_COLOUR if lab == "unknown"
                                       else NEUTRAL_COLOUR))
    return out


def plot_timeline(df: pd.DataFrame, path: str | os.PathLike, source: str | None = None,
                  face_id: int = 0, title: str | None = None, dpi: int = 120) -> Path:
    """Timeline PNG of one source's face: activation and intensity per emotion, label band.

    ``source`` defaults to the table's first source. For a still image (a single frame) the
    plot shows bars for that frame instead of lines.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise InputError('plots need matplotlib; install it with: pip install "fuzzyemo[video]"') \
            from None
    rows, source = _select(df, source, face_id)
    t = rows["timestamp"].to_numpy(float)
    single = len(rows) == 1 or np.ptp(t) == 0
    if single:
        t = np.arange(len(rows), dtype=float)
    labels = rows["label"].astype(str).to_numpy()

    fig, axes = plt.subplots(len(EMOTIONS) + 1, 1, sharex=True, figsize=(10, 1.25 * 7 + 0.6),
                             gridspec_kw={"height_ratios": [1] * len(EMOTIONS) + [0.45]})
    try:
        for ax, emo in zip(axes, EMOTIONS, strict=False):
            act = rows[f"activation_{emo}"].to_numpy(float)
            ecc = rows[f"eccentricity_{emo}"].to_numpy(float)
            colour = EMOTION_COLOURS[emo]
            if single:
                ax.bar(t - 0.15, act, width=0.3, color=colour, label="activation")
                ax.bar(t + 0.15, np.nan_to_num(ecc), width=0.3, color=colour, alpha=0.45,
                       hatch="//", label="intensity")
            else:
                ax.fill_between(t, 0, np.nan_to_num(act), color=colour, alpha=0.25, lw=0,
                                step="mid")
                ax.plot(t, act, color=colour, lw=1.4, label="activation", drawstyle="steps-mid")
                ax.plot(t, ecc, color="black", lw=1.0, ls="--", label="intensity")
            ax.set_ylim(0, 1.02)
            ax.set_ylabel(emo, rotation=0, ha="right", va="center")
            ax.set_yticks([0, 0.5, 1])
            ax.grid(axis="y", alpha=0.3)
        axes[0].legend(loc="upper right", fontsize=8, ncol=2, frameon=False)
        band = axes[-1]
        edges = _edges(t)
        band.bar(edges[:-1], 1, width=np.diff(edges), align="edge", color=_label_colours(labels),
                 edgecolor="none")
        band.set_ylim(0, 1)
        band.set_yticks([])
        band.set_ylabel("label", rotation=0, ha="right", va="center")
        band.set_xlabel("frame" if single else "time (s)")
        present = [e for e in EMOTIONS if any(str(lab).startswith(e) for lab in labels)]
        handles = [Patch(color=EMOTION_COLOURS[e], label=e) for e in present]
        handles += [Patch(facecolor=NEUTRAL_COLOUR, label="neutral")] \
            if (labels == "neutral").any() else []
        handles += [Patch(facecolor=UNKNOWN_COLOUR, edgecolor="grey", label="unknown (no face)")] \
            if (labels == "unknown").any() else []
        if handles:
            band.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.9),
                        ncol=min(len(handles), 8), fontsize=8, frameon=False)
        fig.suptitle(title or f"{Path(source).name} (face {face_id}): activation and "
                              "intensity per emotion", fontsize=11)
        fig.tight_layout()
        save_png(fig, path, dpi=dpi)  # the same table gives the same PNG bytes
    finally:
        plt.close(fig)
    return Path(path)


def _edges(t: np.ndarray) -> np.ndarray:
    """Bin edges around sample times (midpoints; the ends extend by half a step)."""
    if len(t) == 1:
        return np.array([t[0] - 0.5, t[0] + 0.5])
    mid = (t[1:] + t[:-1]) / 2
    return np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])


def write_overlay(df: pd.DataFrame, path: str | os.PathLike, source: str | None = None,
                  fps: float | None = None, point_radius: int = 1,
                  progress: bool = False) -> Path:
    """An MP4 of one video source with every face's landmarks and current label drawn.

    ``point_radius``: half-size in pixels of each landmark dot (0 = single pixels).
    ``progress``: a progress bar on stderr (plain lines when stderr is not a terminal).

    Frames that ``annotate`` skipped (``every`` > 1) show the latest annotated frame's
    landmarks and label. Written with OpenCV's ``mp4v`` codec to a temp file, then renamed.
    """
    from ._video import require_cv2

    cv2 = require_cv2()
    rows, source = _select(df, source, face_id=0)
    rows = df[df["source"].astype(str) == source].sort_values(["frame", "face_id"],
                                                             kind="stable")
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise InputError(f"{source}: cannot open the video for the overlay")
    try:
        ok, first = cap.read()
        if not ok:
            raise InputError(f"{source}: no decodable frames for the overlay")
        h, w = first.shape[:2]
        rate = fps or float(cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        xcols = [c for c in rows.columns if c.startswith("x_")]
        ycols = [c for c in rows.columns if c.startswith("y_")]
        xs = rows[xcols].to_numpy(np.float32)
        ys = rows[ycols].to_numpy(np.float32)
        frames = rows["frame"].to_numpy()
        labels = rows["label"].astype(str).to_numpy()
        ids = rows["face_id"].to_numpy()
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
        with atomic_path(path, ".mp4") as tmp, \
                Reporter("overlay", total, unit="frames", enabled=progress) as bar:
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), rate, (w, h))
            if not writer.isOpened():
                raise InputError(f"{path}: OpenCV cannot write MP4 (mp4v) here")
            try:
                number, img, shown = 1, first, -1
                while True:
                    # The rows of the latest annotated frame at or before this one.
                    upto = np.searchsorted(frames, number, side="right")
                    if upto:
                        shown = frames[upto - 1]
                    _draw(cv2, img, xs, ys, labels, ids, frames == shown, point_radius)
                    writer.write(img)
                    bar.update(number)
                    ok, img = cap.read()
                    if not ok:
                        break
                    number += 1
            finally:
                writer.release()
            _check_written_video(cv2, tmp, number, path)
    finally:
        cap.release()
    return Path(path)


def _check_written_video(cv2: Any, tmp: str, frames: int, shown: str | os.PathLike) -> None:
    """OpenCV's VideoWriter reports no write errors: a full disk gives a file without its
    index. Re-open the result and count its frames before it replaces anything."""
    check = cv2.VideoCapture(tmp)
    try:
        count = int(check.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if check.isOpened() else 0
    finally:
        check.release()
    if count != frames:
        free = ""
        with contextlib.suppress(OSError):
            st = os.statvfs(os.path.dirname(tmp) or ".")
            free = f"; {st.f_bavail * st.f_frsize / 1e6:,.1f} MB free there"
        raise InputError(f"{shown}: cannot write (the MP4 came out incomplete: {count} of "
                         f"{frames} frames readable{free})")


def _draw(cv2: Any, img: np.ndarray, xs: np.ndarray, ys: np.ndarray, labels: np.ndarray,
          ids: np.ndarray, mask: np.ndarray, radius: int = 1) -> None:
    for r in np.flatnonzero(mask):
        label = labels[r]
        emo = label.rsplit("_", 1)[0]
        hexcol = EMOTION_COLOURS.get(emo, NEUTRAL_COLOUR).lstrip("#")
        rgb = tuple(int(hexcol[i:i + 2], 16) for i in (0, 2, 4))
        bgr = rgb[::-1]
        ok = np.isfinite(xs[r]) & np.isfinite(ys[r])
        pts = np.stack([xs[r][ok], ys[r][ok]], axis=1).round().astype(np.int32)
        # Dots as small squares, all points at once (no per-point drawing calls).
        h, w = img.shape[:2]
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                px, py = pts[:, 0] + dx, pts[:, 1] + dy
                inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
                img[py[inside], px[inside]] = bgr
        if len(pts):
            x0, y0 = pts[:, 0].min(), max(pts[:, 1].min() - 10, 20)
        else:
            x0, y0 = 10, 30 + 30 * int(ids[r])
        text = f"face {int(ids[r])}: {label}"
        cv2.putText(img, text, (int(x0), int(y0)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4,
                    cv2.LINE_AA)
        cv2.putText(img, text, (int(x0), int(y0)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, bgr, 2,
                    cv2.LINE_AA)

