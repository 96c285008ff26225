"""Frames/s of the whole ``annotate`` pipeline next to bare MediaPipe on the same frames.

    python benchmarks/annotate.py [--frames 300] [--repeats 3] [--json out.json]

1. Generates a 640x480, 30 fps MP4 (mp4v) in a temp folder: scikit-image's astronaut face
   drifting and zooming slowly over a grey background, so MediaPipe tracks a moving face.
2. decode: OpenCV decoding + BGR->RGB of every frame (context: what overlapping can hide).
3. bare: MediaPipe Tasks FaceLandmarker in VIDEO mode (blendshapes on, as annotate had it
   before the head pose) on the frames already decoded in memory: task creation +
   ``detect_for_video`` per frame, nothing else. This is the ceiling. ``bare + matrices``:
   the same with the facial transformation matrices on (the head pose), as annotate uses it.
4. landmarker only: fuzzyemo's ``FaceLandmarker`` (same task, results read from MediaPipe's C
   struct instead of its Python objects) on the same in-memory frames.
5. annotate: ``fuzzyemo.annotate(video)`` from the file: decoding (background thread),
   landmarking, geometry, self-calibration, one batched fuzzy inference, the DataFrame.
   Also ``annotate + write`` (the parquet file too).

All of them alternate ``--repeats`` times in the same process; the medians are compared,
and the best (fastest) runs too, which are steadier on a machine shared with other work.
Target: annotate >= 90% of bare MediaPipe.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_video(path: Path, n: int, size: tuple[int, int] = (640, 480), fps: float = 30.0,
               phase: float = 0.0) -> None:
    """The astronaut's head moving and zooming over a grey canvas; ``phase`` shifts the motion
    in time (benchmarks/scale.py gives each clip its own)."""
    import cv2
    from skimage import data

    w, h = size
    face = cv2.cvtColor(data.astronaut()[10:330, 90:410], cv2.COLOR_RGB2BGR)  # 320x320 head
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for k in range(n):
            i = k + phase
            side = int(320 * (1.0 + 0.15 * np.sin(i / 40)))
            f = cv2.resize(face, (side, side))
            canvas = np.full((h, w, 3), 110, np.uint8)
            x0 = int((w - side) / 2 + 60 * np.sin(i / 25))
            y0 = int((h - side) / 2 + 20 * np.cos(i / 30))
            xs, ys = max(x0, 0), max(y0, 0)
            xe, ye = min(x0 + side, w), min(y0 + side, h)
            canvas[ys:ye, xs:xe] = f[ys - y0:ye - y0, xs - x0:xe - x0]
            writer.write(canvas)
    finally:
        writer.release()


def decode_all(path: Path) -> tuple[list[np.ndarray], float]:
    import cv2

    t = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, time.perf_counter() - t


def bare_mediapipe(frames: list[np.ndarray], fps: float = 30.0, matrices: bool = False
                   ) -> float:
    """Seconds for task creation + detect_for_video on every frame (no conversion, no I/O)."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from fuzzyemo._mediapipe import load_model

    model = load_model()  # the same bytes annotate uses (hash checked outside the timing)
    t = time.perf_counter()
    opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_buffer=model),
                                        running_mode=vision.RunningMode.VIDEO, num_faces=1,
                                        output_face_blendshapes=True,
                                        output_facial_transformation_matrixes=matrices)
    with vision.FaceLandmarker.create_from_options(opts) as task:
        for i, rgb in enumerate(frames):
            task.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb),
                                  int(round(i * 1000 / fps)))
    return time.perf_counter() - t


def fuzzyemo_landmarker(frames: list[np.ndarray], fps: float = 30.0) -> float:
    """Seconds for fuzzyemo's FaceLandmarker (arrays read from the C result) on the frames."""
    from fuzzyemo._mediapipe import FaceLandmarker

    t = time.perf_counter()
    with FaceLandmarker("video", 1) as lm:
        for i, rgb in enumerate(frames):
            lm.detect(rgb, int(round(i * 1000 / fps)))
    return time.perf_counter() - t


def run_annotate(path: Path, out: Path | None) -> tuple[float, int]:
    from fuzzyemo._annotate import annotate, write_table
    from fuzzyemo._geometry import NeutralWarning

    t = time.perf_counter()
    with warnings.catch_warnings():  # the test clip has no neutral stretch: said once below
        warnings.simplefilter("ignore", NeutralWarning)
        df = annotate(path, progress=False)
    if out is not None:
        write_table(df, out)
    return time.perf_counter() - t, int(df["success"].sum())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import cv2
    import mediapipe

    from fuzzyemo import __version__

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench_640x480.mp4"
        make_video(video, args.frames)
        frames, _ = decode_all(video)  # warm the codec and the file cache
        n = len(frames)
        dec, bare, bare_m, own, ann, ann_w = [], [], [], [], [], []
        faces = 0
        run_annotate(video, None)  # warm-up: imports, model read, rule compile
        for _ in range(args.repeats):
            dec.append(decode_all(video)[1])
            bare.append(bare_mediapipe(frames))
            bare_m.append(bare_mediapipe(frames, matrices=True))
            own.append(fuzzyemo_landmarker(frames))
            s, faces = run_annotate(video, None)
            ann.append(s)
            ann_w.append(run_annotate(video, Path(tmp) / "out.parquet")[0])

    def fps(xs: list[float]) -> float:
        return n / statistics.median(xs)

    def best(xs: list[float]) -> float:
        return n / min(xs)

    res = {
        "frames": n, "faces_found": faces, "repeats": args.repeats,
        "decode_fps": fps(dec), "bare_mediapipe_fps": fps(bare),
        "bare_matrices_fps": fps(bare_m),
        "fuzzyemo_landmarker_fps": fps(own), "annotate_fps": fps(ann),
        "annotate_write_fps": fps(ann_w),
        "ratio_annotate_vs_bare": fps(ann) / fps(bare),
        "ratio_annotate_write_vs_bare": fps(ann_w) / fps(bare),
        "ratio_annotate_vs_landmarker": fps(ann) / fps(own),
        "ratio_matrices_vs_bare": fps(bare_m) / fps(bare),
        "best_fps": {"bare": best(bare), "bare_matrices": best(bare_m),
                     "fuzzyemo_landmarker": best(own), "annotate": best(ann),
                     "annotate_write": best(ann_w)},
        "best_ratio_annotate_vs_bare": best(ann) / best(bare),
        "runs_s": {"decode": dec, "bare": bare, "bare_matrices": bare_m,
                   "fuzzyemo_landmarker": own, "annotate": ann, "annotate_write": ann_w},
        "env": {"python": platform.python_version(), "mediapipe": mediapipe.__version__,
                "opencv": cv2.__version__, "fuzzyemo": __version__,
                "cpus": os.cpu_count(), "machine": platform.machine()},
    }
    print(f"{n} frames 640x480, {faces} with a face, {os.cpu_count()} CPUs, median of "
          f"{args.repeats} alternating runs")
    print(f"  decode only (OpenCV + RGB)      {res['decode_fps']:8.1f} frames/s")
    print(f"  bare MediaPipe VIDEO mode       {res['bare_mediapipe_fps']:8.1f} frames/s  "
          f"(best {res['best_fps']['bare']:.1f})")
    print(f"  bare + pose matrices            {res['bare_matrices_fps']:8.1f} frames/s  "
          f"(best {res['best_fps']['bare_matrices']:.1f}; "
          f"{100 * res['ratio_matrices_vs_bare']:.1f}% of bare)")
    print(f"  fuzzyemo FaceLandmarker only    {res['fuzzyemo_landmarker_fps']:8.1f} frames/s")
    print(f"  annotate()                      {res['annotate_fps']:8.1f} frames/s  "
          f"({100 * res['ratio_annotate_vs_bare']:.1f}% of bare, "
          f"{100 * res['ratio_annotate_vs_landmarker']:.1f}% of landmarker only; best "
          f"{res['best_fps']['annotate']:.1f}, "
          f"{100 * res['best_ratio_annotate_vs_bare']:.1f}% of the best bare)")
    print(f"  annotate() + write parquet      {res['annotate_write_fps']:8.1f} frames/s  "
          f"({100 * res['ratio_annotate_write_vs_bare']:.1f}% of bare)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
