"""Regenerate docs/img/validity-sheet.png: the validity corpus's redistributable faces with the
label a person gave them and the label fuzzyemo gives them (default `facs` rules).

Only media whose licence allows redistribution are drawn (public-domain portraits and the
author's own photo in an MIT package, vendored under tests/data/validity/); the rest of the
corpus is fetched at run time by benchmarks/validity.py and never committed.

    python docs/img/make_validity_sheet.py      # needs the [video] extra
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "validity"))

from fetch import load_manifest  # noqa: E402

import fuzzyemo  # noqa: E402
from fuzzyemo._files import save_png  # noqa: E402

OUT = Path(__file__).resolve().parent / "validity-sheet.png"
TILE = 260


def faces() -> list[dict]:
    """One entry per labelled face of the vendored media: crop, human label, our label."""
    out = []
    for m in load_manifest()["media"]:
        if not m.get("vendored") or m["kind"] != "image":
            continue
        path = ROOT / m["vendored"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fuzzyemo.NeutralWarning)
            df = fuzzyemo.annotate([path], max_faces=len(m["faces"]) + 1, progress=False)
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for face in m["faces"]:
            x0, y0, x1, y1 = face["bbox"]
            found = df[df["success"] == 1]
            cx = (found.filter(regex=r"^x_\d+$").min(axis=1) + found.filter(regex=r"^x_\d+$").max(axis=1)) / 2
            cy = (found.filter(regex=r"^y_\d+$").min(axis=1) + found.filter(regex=r"^y_\d+$").max(axis=1)) / 2
            inside = found[(cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)]
            ours = str(inside["label"].iloc[0]) if len(inside) else "not found"
            human = face["expression"] + (f"_{face['intensity']}" if face.get("intensity") else "")
            pad = int(0.25 * (x1 - x0))
            crop = image[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad]
            out.append({"crop": crop, "human": f"{human} ({face['certainty']})", "ours": ours,
                        "id": m["id"], "split": m["split"]})
    return out


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = faces()
    fig, axes = plt.subplots(1, len(items), figsize=(2.6 * len(items), 3.4), dpi=100)
    for ax, item in zip(np.atleast_1d(axes), items, strict=True):
        crop = cv2.resize(item["crop"], (TILE, int(TILE * item["crop"].shape[0] / item["crop"].shape[1])))
        ax.imshow(crop)
        agree = item["ours"].split("_")[0] == item["human"].split("_")[0].split(" ")[0]
        ax.set_title(f"person: {item['human']}\nfuzzyemo: {item['ours']}", fontsize=8,
                     color="black" if agree else "firebrick")
        ax.set_xlabel(f"{item['id']} ({item['split']})", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_png(fig, OUT)
    print(f"wrote {OUT}: " + ", ".join(f"{i['id']} {i['human']} -> {i['ours']}" for i in items))


if __name__ == "__main__":
    main()
