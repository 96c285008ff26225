"""Regenerate docs/img/annotate-timeline.png: a real `fuzzyemo annotate` timeline.

The video is made from the two public-domain faces that ship with installed packages:
Grace Hopper (matplotlib's sample data, a calm face) and the astronaut Eileen Collins
(scikit-image, a broad smile): 1 s of Grace, 1 s of the astronaut, two blank frames (no
face: `unknown`), then Grace again, at 10 frames/s.

    python docs/img/make_timeline_figure.py      # needs the [video] extra and scikit-image
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import skimage.data

from fuzzyemo._annotate import annotate
from fuzzyemo._plots import plot_timeline

SIZE = 512
OUT = Path(__file__).resolve().parent / "annotate-timeline.png"


def faces() -> tuple[np.ndarray, np.ndarray]:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return _square(grace), _square(astronaut)


def _square(image: np.ndarray) -> np.ndarray:
    """Centre-crop to a square, then resize: no change of aspect ratio (it would bend the face)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(image[top:top + side, left:left + side], (SIZE, SIZE))


def main() -> None:
    grace, astronaut = faces()
    frames = [grace] * 10 + [astronaut] * 10 + [np.zeros_like(grace)] * 2 + [grace] * 6
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "faces.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (SIZE, SIZE))
        for frame in frames:
            writer.write(frame)
        writer.release()
        # Population baseline: the clip is too short and too mixed for self-calibration.
        df = annotate([video], baseline="population", progress=False)
        plot_timeline(df, OUT, title="fuzzyemo annotate: Grace Hopper, the astronaut, blank frames")
    print(f"wrote {OUT}: labels {df['label'].value_counts().to_dict()}")


if __name__ == "__main__":
    main()
