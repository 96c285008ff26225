"""Draw docs/img/geometry.png: the shipped neutral iBUG-68 face with the 12 measured
distances, and the measurements of two synthetic expressions.

    python docs/img/make_geometry_figure.py [OUT.png]

Needs matplotlib (not a fuzzyemo dependency: ``pip install matplotlib``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from fuzzyemo._geometry import Calibration, align, measure
from fuzzyemo._landmarks import LandmarkScheme
from fuzzyemo._vocab import COMPONENTS

OUT = Path(__file__).with_name("geometry.png")

# iBUG-68 outlines to draw (index runs; closed ones repeat their first point).
OUTLINES = [list(range(0, 17)), list(range(17, 22)), list(range(22, 27)), list(range(27, 31)),
            list(range(31, 36)), [*range(36, 42), 36], [*range(42, 48), 42],
            [*range(48, 60), 48], [*range(60, 68), 60]]


def expression(template: np.ndarray, **moves: float) -> np.ndarray:
    """Move template points (image coordinates, IOD units, y down) as action units would."""
    p = template.copy()
    up = np.array([0.0, -1.0])
    if a := moves.get("brows"):
        p[17:27] += a * up
    if a := moves.get("lids"):
        p[[37, 38, 43, 44]] += a * up
    if a := moves.get("jaw"):
        p[[55, 56, 57, 58, 59, 65, 66, 67]] -= a * up
        p[[48, 54, 60, 64]] -= a / 2 * up
    if a := moves.get("smile"):
        p[[48, 60]] += a * up + [-a / 2, 0]
        p[[54, 64]] += a * up + [a / 2, 0]
    if a := moves.get("cheeks"):
        p[[40, 41, 46, 47]] += a * up
    return p


def main(out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: this script needs matplotlib (pip install matplotlib)")

    scheme = LandmarkScheme.load("ibug68")
    template = scheme.template[:, :2]
    a = {k: v[0] for k, v in align(scheme.named(template[None])).items()}
    # All 68 points in the face frame too (y up): same transform as align() on the template.
    pts = template * np.array([1.0, -1.0])

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 7.6), gridspec_kw={"width_ratios": [1.3, 1]})
    for run in OUTLINES:
        ax.plot(pts[run, 0], pts[run, 1], "-", color="0.75", lw=1, zorder=1)
    ax.scatter(pts[:, 0], pts[:, 1], s=7, color="0.55", zorder=2)
    for name, p in a.items():
        ax.scatter(*p, s=22, color="k", zorder=4)
        if name in ("right_eye_outer", "nose_tip", "subnasale", "chin"):
            ax.annotate(name, p, xytext=(6, -10), textcoords="offset points", fontsize=7,
                        color="0.3")

    def seg(p, q, color, label=None, style="-", text_at=None):
        ax.plot([p[0], q[0]], [p[1], q[1]], style, color=color, lw=2.2, zorder=3)
        if label:
            tx, ty = text_at if text_at is not None else ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)
            ax.text(tx, ty, label, color=color, fontsize=8.5, ha="left", va="center",
                    bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})

    # Face frame: eye centres at (+-0.5, 0); the eye line is y = 0.
    ax.axhline(0, color="tab:gray", ls=":", lw=1)
    ax.plot([-0.5, 0.5], [0, 0], "o", color="tab:gray", ms=5)
    ax.text(-0.08, 0.04, "IOD = 1", fontsize=8, color="tab:gray")
    # 1-2 brow heights: mean of inner/centre/outer brow heights above the eye line.
    for side, sx in (("left", 1), ("right", -1)):
        h = np.mean([a[f"{side}_brow_{k}"][1] for k in ("inner", "centre", "outer")])
        x0 = a[f"{side}_brow_centre"][0] + 0.12 * sx
        seg((x0, 0), (x0, h), "tab:blue", f"{side}_brow_height" if side == "left" else None,
            text_at=(x0 + 0.03, h / 2))
        ax.plot([a[f"{side}_brow_outer"][0], a[f"{side}_brow_inner"][0]], [h, h], ":",
                color="tab:blue", lw=1)
    # 3 glabella opening: inner-brow distance + mean inner-brow height.
    seg(a["right_brow_inner"], a["left_brow_inner"], "tab:red", "glabella_opening",
        text_at=(-0.2, a["left_brow_inner"][1] + 0.07))
    # 4-5 eye opening: lid gap / eye width.
    for side in ("left", "right"):
        t, b = a[f"{side}_eye_top"], a[f"{side}_eye_bottom"]
        seg((t[0], t[1]), (t[0], b[1]), "tab:green")
        seg(a[f"{side}_eye_inner"], a[f"{side}_eye_outer"], "tab:green", style="--")
    ax.text(0.35, -0.14, "eye_opening = gap / width", color="tab:green", fontsize=8.5)
    # 6 nose length: eye line down to the alar base.
    base = (a["left_ala"][1] + a["right_ala"][1]) / 2
    seg((0.02, 0), (0.02, base), "tab:purple", "nose_length", text_at=(0.05, -0.3))
    # 7 ala width.
    seg(a["right_ala"], a["left_ala"], "tab:brown", "ala_width",
        text_at=(a["left_ala"][0] + 0.04, a["left_ala"][1]))
    # 8 mouth height (drawn left of the mouth), 9-10 lip thicknesses (at the midline).
    xm = a["right_mouth_corner"][0] - 0.17
    for key in ("upper_lip_top", "lower_lip_bottom"):
        ax.plot([xm, a[key][0]], [a[key][1]] * 2, ":", color="tab:orange", lw=1)
    seg((xm, a["upper_lip_top"][1]), (xm, a["lower_lip_bottom"][1]), "tab:orange",
        "mouth_height", text_at=(xm - 0.5, a["lower_lip_bottom"][1] - 0.1))
    seg((-0.015, a["upper_lip_top"][1]), (-0.015, a["upper_lip_bottom"][1]), "tab:pink")
    seg((0.015, a["lower_lip_top"][1]), (0.015, a["lower_lip_bottom"][1]), "tab:olive")

    def label(text, xy, xytext, color):
        ax.annotate(text, xy, xytext=xytext, color=color, fontsize=8.5, va="center",
                    arrowprops={"arrowstyle": "-", "color": color, "lw": 0.8})

    label("upper_lip_thickness", (0.0, (a["upper_lip_top"][1] + a["upper_lip_bottom"][1]) / 2),
          (0.7, a["upper_lip_top"][1] + 0.12), "tab:pink")
    label("lower_lip_thickness", (0.02, (a["lower_lip_top"][1] + a["lower_lip_bottom"][1]) / 2),
          (0.7, a["lower_lip_bottom"][1] - 0.1), "tab:olive")
    # 11-12 corner heights above the inner-lip midpoint (the lip-centre line).
    mid = (a["upper_lip_bottom"][1] + a["lower_lip_top"][1]) / 2
    ax.plot([-0.55, 0.55], [mid, mid], ":", color="tab:cyan", lw=1.2)
    for side in ("left", "right"):
        c = a[f"{side}_mouth_corner"]
        seg((c[0], mid), (c[0], c[1] + 1e-3), "tab:cyan")
    label("corner_height\n(above the lip-centre line)", (0.55, mid), (0.7, mid - 0.01),
          "tab:cyan")
    ax.set_aspect("equal")
    ax.set_xlim(-1.35, 1.75)
    ax.set_ylim(-2.0, 0.55)
    ax.set_title("Face frame: roll removed, origin between the eye centres, unit = IOD\n"
                 "(shipped neutral iBUG-68 template; subject's left on the right)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])

    # Right: the 12 measurements of two synthetic expressions (population baseline).
    faces = {
        "smile (AU12 + AU6)": expression(template, smile=0.07, cheeks=0.015),
        "surprise (AU1+2 + AU5 + AU26)": expression(template, brows=0.09, lids=0.025, jaw=0.2),
    }
    x = measure(np.stack(list(faces.values())), scheme)
    ypos = np.arange(len(COMPONENTS))
    for k, (label, color) in enumerate(zip(faces, ("tab:orange", "tab:blue"), strict=True)):
        bx.barh(ypos + (k - 0.5) * 0.38, x[k], height=0.36, color=color, label=label)
    bx.set_yticks(ypos, [f"{i + 1} {c}" for i, c in enumerate(COMPONENTS)], fontsize=9)
    bx.invert_yaxis()
    bx.axvline(0, color="k", lw=0.8)
    for v in (-1, -0.6, 0.6, 1):
        bx.axvline(v, color="0.85", lw=0.8, ls="--", zorder=0)
    bx.set_xlim(-1.05, 1.05)
    bx.set_xlabel("x (0 = neutral; dashed: +-0.6, where the +-1 terms reach membership 1)")
    bx.legend(loc="lower right", fontsize=8.5)
    cal = Calibration.default()
    bx.set_title(f"measure(): synthetic expressions, calibration {cal.sha256[:8]}", fontsize=10)
    fig.tight_layout()

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
