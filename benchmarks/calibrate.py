"""Population constants of rules/calibration.yaml and rules/landmarks/mediapipe478.yaml,
measured on the neutral faces of the validity corpus's **dev** split (never heldout).

    python benchmarks/calibrate.py            # prints the measured constants
    python benchmarks/calibrate.py --check    # exit 1 when the shipped files differ by > 0.005

What it measures (docs/geometry.md, "Population neutral"):
- the neutral raw features of MediaPipe's geometry: per person the median over their neutral
  faces (stills labelled neutral, frontal; video frames in neutral segments), then the median
  over people, so a person with many frames weighs as much as one with one photo;
- each feature's ``spread``: the ``SPREAD_PERCENTILE``th percentile over people of
  |person - population|, the
  ordinary difference between neutral strangers (a dead zone under a population neutral);
- per component, the blendshape evidence of neutral people: ``neutral`` = median over people,
  ``spread`` = ``SPREAD_PERCENTILE``th percentile minus the median.
- the 68-point schemes' population (ibug68, and disfa66 / wflw98, which name the same
  points): MediaPipe's plus the median difference, feature by feature, between the same
  face measured from its 68 points and from MediaPipe, over the dev faces that ship 68-point
  files (so a 68-point face and its MediaPipe reading agree on what "neutral" is).
Faces are landmarked on a crop around each labelled box (upsampled to >= 256 px), so face
finding does not decide which faces count.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "validity"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fetch import fetch, load_manifest  # noqa: E402

from fuzzyemo import Calibration, LandmarkScheme, raw_features  # noqa: E402
from fuzzyemo._geometry import RAW_FEATURES  # noqa: E402
from fuzzyemo._vocab import COMPONENTS  # noqa: E402

# The dead zone under a population neutral covers this percentile of neutral strangers'
# differences from the population (chosen by leave-one-person-out on dev: docs/validity.md).
SPREAD_PERCENTILE = 90


def _crop_landmarks(lm, rgb: np.ndarray, box) -> tuple[np.ndarray, np.ndarray] | None:
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    a0, b0 = int(max(0, cx - s)), int(max(0, cy - s))
    a1, b1 = int(min(w, cx + s)), int(min(h, cy + s))
    crop = rgb[b0:b1, a0:a1]
    scale = 1.0
    if max(crop.shape[:2]) < 256:
        scale = 256 / max(crop.shape[:2])
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    faces = lm.detect(np.ascontiguousarray(crop))
    if len(faces) == 0:
        return None
    centres = faces.landmarks[:, :, :2].mean(axis=1)
    i = int(np.argmin(np.linalg.norm(centres - [crop.shape[1] / 2, crop.shape[0] / 2], axis=1)))
    pts = faces.landmarks[i].copy()
    pts[:, :2] = pts[:, :2] / scale + [a0, b0]
    return pts, faces.blendshapes[i]


def neutral_faces(split: str = "dev") -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """{person group: [(landmarks (478, 3), blendshapes (52,)), ...]} of neutral faces."""
    import cv2

    from fuzzyemo._mediapipe import FaceLandmarker

    corpus = load_manifest()
    media = [m for m in corpus["media"] if m["split"] == split]
    paths = fetch(ids=[m["id"] for m in media])
    out: dict[str, list] = {}
    with FaceLandmarker("image", 3, verify=False) as lm:
        for m in media:
            if m["kind"] != "image":
                continue
            rgb = cv2.cvtColor(cv2.imread(str(paths[m["id"]])), cv2.COLOR_BGR2RGB)
            for i, face in enumerate(m.get("faces", [])):
                if face.get("expression") != "neutral" or face.get("pose") != "frontal":
                    continue
                got = _crop_landmarks(lm, rgb, face["bbox"])
                if got is not None:
                    # Each face of a group photo is its own person.
                    key = m["group"] if m.get("category") != "group" else f"{m['id']}#{i}"
                    out.setdefault(key, []).append(got)
    for m in media:
        if m["kind"] != "video":
            continue
        frames = set()
        for seg in m.get("segments", []):
            if seg.get("expression") == "neutral" and seg.get("pose") == "frontal":
                frames.update(range(seg["start"], seg["end"] + 1))
        if not frames:
            continue
        cap = cv2.VideoCapture(str(paths[m["id"]]))
        fps = m.get("fps") or 30.0
        with FaceLandmarker("video", 1, verify=False) as lm:
            n = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                n += 1
                faces = lm.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), int(n * 1000 / fps))
                if n in frames and len(faces):
                    out.setdefault(m["group"], []).append((faces.landmarks[0],
                                                           faces.blendshapes[0]))
    return out


def measure_population(people: dict) -> dict:
    scheme = LandmarkScheme.load("mediapipe478")
    cal = Calibration.default()
    raw_by_person, ev_by_person = [], []
    for faces in people.values():
        lms = np.stack([f[0] for f in faces])
        bss = np.stack([f[1] for f in faces])
        raw_by_person.append(np.nanmedian(raw_features(scheme.named(lms)), axis=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # components without blendshapes
            ev_by_person.append(np.nanmedian(cal.evidence(bss), axis=0))
    raw = np.array(raw_by_person)
    ev = np.array(ev_by_person)
    pop = np.median(raw, axis=0)
    # Left/right twins share one value: a population face is symmetric.
    for a, b in (("left_brow_height", "right_brow_height"), ("left_eye_opening",
                 "right_eye_opening"), ("left_corner_height", "right_corner_height")):
        i, j = RAW_FEATURES.index(a), RAW_FEATURES.index(b)
        pop[i] = pop[j] = (pop[i] + pop[j]) / 2
    spread = np.percentile(np.abs(raw - pop), SPREAD_PERCENTILE, axis=0)
    ev_neutral = np.median(ev, axis=0)
    ev_spread = np.percentile(ev, SPREAD_PERCENTILE, axis=0) - ev_neutral
    for a, b in (("left_eyebrow", "right_eyebrow"), ("left_eye", "right_eye"),
                 ("left_mouth_corner", "right_mouth_corner")):
        i, j = COMPONENTS.index(a), COMPONENTS.index(b)
        for arr in (ev_neutral, ev_spread):
            arr[i] = arr[j] = (arr[i] + arr[j]) / 2
    for f in (("left_brow_height", "right_brow_height"), ("left_eye_opening",
              "right_eye_opening"), ("left_corner_height", "right_corner_height")):
        i, j = RAW_FEATURES.index(f[0]), RAW_FEATURES.index(f[1])
        spread[i] = spread[j] = (spread[i] + spread[j]) / 2
    return {"people": len(people), "faces": sum(len(v) for v in people.values()),
            "population": dict(zip(RAW_FEATURES, pop.round(3).tolist(), strict=True)),
            "spread": dict(zip(RAW_FEATURES, spread.round(3).tolist(), strict=True)),
            "evidence_neutral": {c: ev_neutral[i].round(3).tolist()
                                 for i, c in enumerate(COMPONENTS)},
            "evidence_spread": {c: ev_spread[i].round(3).tolist()
                                for i, c in enumerate(COMPONENTS)}}


def scheme_offsets(split: str = "dev") -> tuple[np.ndarray, int]:
    """Median (68-point raw features - MediaPipe raw features) over faces with 68-point files."""
    import cv2
    from fetch import fetch_landmarks
    from validity import read_points  # benchmarks/validity.py

    from fuzzyemo._mediapipe import FaceLandmarker

    corpus = load_manifest()
    media = [m for m in corpus["media"] if m["split"] == split and m.get("landmarks")]

    files = fetch_landmarks(ids=[m["id"] for m in media])
    paths = fetch(ids=[m["id"] for m in media])
    s68, smp = LandmarkScheme.load("ibug68"), LandmarkScheme.load("mediapipe478")
    diffs = []
    with FaceLandmarker("image", 3, verify=False) as lm:
        for m in media:
            rgb = cv2.cvtColor(cv2.imread(str(paths[m["id"]])), cv2.COLOR_BGR2RGB)
            for entry, path in files[m["id"]]:
                face = m["faces"][entry.get("face", 1) - 1]
                got = _crop_landmarks(lm, rgb, face["bbox"])
                if got is None:
                    continue
                r68 = raw_features(s68.named(read_points(entry, path)[None]))[0]
                rmp = raw_features(smp.named(got[0][None]))[0]
                diffs.append(r68 - rmp)
    d = np.median(np.array(diffs), axis=0)
    for a, b in (("left_brow_height", "right_brow_height"), ("left_eye_opening",
                 "right_eye_opening"), ("left_corner_height", "right_corner_height")):
        i, j = RAW_FEATURES.index(a), RAW_FEATURES.index(b)
        d[i] = d[j] = (d[i] + d[j]) / 2
    return d, len(diffs)


SCHEMES_68 = ("ibug68", "disfa66", "wflw98")


def check(measured: dict, tol: float = 0.005) -> list[str]:
    """Differences between the measured constants and the shipped files."""
    scheme = LandmarkScheme.load("mediapipe478")
    cal = Calibration.default()
    bad = []
    for name in SCHEMES_68:
        pop = LandmarkScheme.load(name).population
        for f, v in measured["population_68"].items():
            if f not in pop or abs(pop[f] - v) > tol:
                bad.append(f"{name} population {f}: shipped {pop.get(f)}, measured {v}")
    for f, v in measured["population"].items():
        if abs(scheme.population.get(f, np.nan) - v) > tol or np.isnan(scheme.population.get(f, np.nan)):
            bad.append(f"mediapipe478 population {f}: shipped {scheme.population.get(f)}, measured {v}")
    for c in cal.components:
        if abs(c.spread - measured["spread"][c.feature]) > tol:
            bad.append(f"calibration {c.component}.spread: shipped {c.spread}, "
                       f"measured {measured['spread'][c.feature]}")
        b = c.blendshapes
        if b is None:
            continue
        for key, shipped in (("evidence_neutral", b.neutral), ("evidence_spread", b.spread)):
            got = measured[key][c.component]
            if any(abs(s - g) > tol for s, g in zip(shipped, got, strict=True)):
                bad.append(f"calibration {c.component}.blendshapes.{key.split('_')[1]}: "
                           f"shipped {list(shipped)}, measured {got}")
    return bad


def write(measured: dict) -> None:
    """Put the measured constants into the shipped files, keeping every comment."""
    import re

    cal_path = ROOT / "rules" / "calibration.yaml"
    lines = cal_path.read_text().split("\n")
    comp = None
    in_blend = False
    feature = {c.component: c.feature for c in Calibration.load(cal_path).components}
    for i, line in enumerate(lines):
        m = re.match(r"^  ([a-z_]+):\s*$", line)
        if m:
            comp, in_blend = m.group(1), False
        elif comp and line.startswith("    blendshapes:"):
            in_blend = True
        elif comp and re.match(r"^    spread:", line):
            lines[i] = f"    spread: {measured['spread'][feature[comp]]}"
        elif comp and in_blend and re.match(r"^      (neutral|spread):", line):
            key = "evidence_" + line.split(":")[0].strip()
            a, b = measured[key][comp]
            lines[i] = f"      {line.split(':')[0].strip()}: [{a}, {b}]"
    cal_path.write_text("\n".join(lines))
    mp_path = ROOT / "rules" / "landmarks" / "mediapipe478.yaml"
    text = mp_path.read_text()
    for f, v in measured["population"].items():
        text = re.sub(rf"(?m)^(  {f}:) .*$", rf"\g<1> {v}", text, count=1)
    mp_path.write_text(text)
    for name in SCHEMES_68:
        path = ROOT / "rules" / "landmarks" / f"{name}.yaml"
        text = path.read_text()
        block = ("population:\n"
                 "  # Neutral raw features for Baseline.population, written by benchmarks/calibrate.py:\n"
                 "  # MediaPipe's population neutral (mediapipe478.yaml) plus the median difference\n"
                 "  # between 68-point and MediaPipe measurements of the same faces (dev split), so\n"
                 "  # both schemes agree on what a neutral face is (docs/geometry.md).\n"
                 + "".join(f"  {f}: {v}\n" for f, v in measured["population_68"].items()))
        if re.search(r"(?m)^population:", text):
            text = re.sub(r"(?m)^population:\n(?:  .*\n)+", block, text, count=1)
        else:
            text = text.replace("\ntemplate:", "\n" + block + "template:", 1)
        path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped files")
    ap.add_argument("--write", action="store_true", help="write them into the shipped files")
    args = ap.parse_args(argv)
    measured = measure_population(neutral_faces("dev"))
    offsets, n68 = scheme_offsets("dev")
    pop = np.array([measured["population"][f] for f in RAW_FEATURES])
    measured["population_68"] = dict(zip(RAW_FEATURES, (pop + offsets).round(3).tolist(),
                                         strict=True))
    print(f"dev split: {measured['faces']} neutral faces of {measured['people']} people; "
          f"{n68} faces with 68-point files")
    for key in ("population", "population_68", "spread", "evidence_neutral", "evidence_spread"):
        print(f"{key}:")
        for k, v in measured[key].items():
            print(f"  {k}: {v}")
    if args.write:
        write(measured)
    if args.check:
        bad = check(measured)
        for line in bad:
            print(line)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
