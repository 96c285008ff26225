"""Validity: do fuzzyemo's labels agree with what a person sees on real faces?

Runs ``fuzzyemo.annotate`` on the validity corpus (benchmarks/validity/: real photos and
videos from public packages, every face labelled by looking, blind to fuzzyemo) and prints

- per-emotion agreement and a confusion matrix (stills: faces; videos: labelled frames);
- the issue-9 targets: clearly expressive stills, video frames, smiles, sustained crying,
  false alarms on neutral and smiling faces;
- the spread of neutral strangers' components (population neutral);
- cross-scheme differences: the same face through its 68 annotated points and MediaPipe;
- face finding in group photos, and how many turned faces the quality check flags.

    python benchmarks/validity.py                    # dev split, the default `facs` rules
    python benchmarks/validity.py --split heldout    # the part the rules were not designed on
    python benchmarks/validity.py --split fresh      # stage 3: new people, measured once
    python benchmarks/validity.py --rules paper --json out.json --sheet faces.png

Landmarking is cached per media file (``$FUZZYEMO_CACHE`` or ~/.cache/fuzzyemo/validity/
annotate); measurement and labels are recomputed from the cache with the rules and
calibration given (``fuzzyemo._annotate.relabel``), so trying a rule change takes seconds.
``--refresh`` landmarks again. A face the detector misses counts as missed, not as a wrong
label: the agreement figures are over faces found, the face-finding table says how many.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "validity"))

from fetch import default_cache_dir, fetch, fetch_landmarks, load_manifest  # noqa: E402

import fuzzyemo  # noqa: E402
from fuzzyemo._vocab import COMPONENTS, EMOTIONS  # noqa: E402

EXPRESSIONS = ("neutral", *EMOTIONS)
NEGATIVE = ("anger", "disgust", "fear", "sadness")
CACHE_VERSION = "1"


# ----------------------------------------------------------------------------- landmarking
def _cache_path(media: dict, options: dict) -> Path:
    key = json.dumps({"sha": media["sha256"], "v": CACHE_VERSION,
                      "fuzzyemo": fuzzyemo.__version__, **options}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return default_cache_dir() / "annotate" / f"{media['id']}-{digest}.parquet"


def annotated(media: dict, path: Path, refresh: bool = False):
    """annotate's table for one media file (cached)."""
    import pandas as pd

    video = media["kind"] == "video"
    options = {"max_faces": 1 if video else len(media.get("faces", [])) + 2}
    cache = _cache_path(media, options)
    if cache.is_file() and not refresh:
        return pd.read_parquet(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fuzzyemo.NeutralWarning)
        df = fuzzyemo.annotate([path], progress=False, **options)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    df.to_parquet(tmp)
    tmp.replace(cache)
    return df


def relabelled(table, media: dict, rules, notes: list[str], smoothing: str | None = None):
    from fuzzyemo._annotate import relabel

    name = str(table["source"].iloc[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fuzzyemo.NeutralWarning)
        out = relabel(table, {name: media["kind"]}, rules=rules,
                      smoothing=smoothing if media["kind"] == "video" else None)
    notes.extend(f"{media['id']}: {w.message}" for w in caught
                 if issubclass(w.category, fuzzyemo.NeutralWarning))
    return out


# ----------------------------------------------------------------------------- matching
def _boxes(df) -> np.ndarray:
    xs = df[[f"x_{i}" for i in range(478)]].to_numpy()
    ys = df[[f"y_{i}" for i in range(478)]].to_numpy()
    return np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_faces(labelled: list[dict], df) -> dict[int, int]:
    """{labelled face index: table row} by IoU >= 0.3 or detected centre in the box."""
    found = df[df["success"] == 1]
    if found.empty:
        return {}
    boxes = _boxes(found)
    pairs = []
    for i, face in enumerate(labelled):
        box = face["bbox"]
        for j, b in enumerate(boxes):
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            inside = box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
            score = _iou(box, b)
            if score >= 0.3 or inside:
                pairs.append((score + (0.5 if inside else 0.0), i, j))
    out: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs, reverse=True):
        if i not in out and j not in used:
            out[i] = int(found.index[j])
            used.add(j)
    return out


def emotion_of(label: str) -> str:
    return label.split("_")[0] if "_" in label else label


# ----------------------------------------------------------------------------- landmarks
def read_points(entry: dict, path: Path) -> np.ndarray:
    """(68, 2) pixel landmarks from a .pts or one-face dlib XML file."""
    if entry["format"] == "pts":
        text = path.read_text()
        body = text[text.index("{") + 1:text.index("}")]
        pts = np.array([[float(v) for v in line.split()] for line in body.strip().splitlines()])
        return pts - 1.0  # .pts is 1-based
    root = ET.parse(path).getroot()
    image = next(i for i in root.iter("image") if i.get("file") == entry["image_file"])
    box = list(image.iter("box"))[entry.get("box_index", 0)]
    parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
    return np.array([[float(p.get("x")), float(p.get("y"))] for p in parts])


# ----------------------------------------------------------------------------- run
def evaluate(split: str, rules: str, refresh: bool = False, smoothing: str | None = None) -> dict:
    corpus = load_manifest()
    media = [m for m in corpus["media"] if split == "all" or m["split"] == split]
    paths = fetch(ids=[m["id"] for m in media])
    rb = fuzzyemo.RuleBase.load(rules)
    notes: list[str] = []
    stills, frames, found, quality = [], [], [], []
    tables = {}
    for m in media:
        table = relabelled(annotated(m, paths[m["id"]], refresh), m, rb, notes, smoothing)
        tables[m["id"]] = table
        if m["kind"] == "image":
            faces = m.get("faces", [])
            hit = match_faces(faces, table)
            for i, face in enumerate(faces):
                if face.get("ignore"):
                    continue
                row = table.loc[hit[i]] if i in hit else None
                found.append({"media": m["id"], "category": m["category"], "found": row is not None,
                              "size": face["bbox"][2] - face["bbox"][0]})
                if face.get("expression") is None or row is None:
                    continue
                stills.append({"media": m["id"], "face": face, "label": str(row["label"]),
                               "x": row[list(COMPONENTS)].to_numpy(float),
                               "quality": str(row.get("quality", "")),
                               "confidence": float(row["confidence"])})
        else:
            seg_of = {}
            for seg in m.get("segments", []):
                for f in range(seg["start"], seg["end"] + 1):
                    seg_of[f] = seg
            for _, row in table.iterrows():
                seg = seg_of.get(int(row["frame"]))
                if seg is None or seg.get("expression") is None:
                    continue
                frames.append({"media": m["id"], "face": seg, "label": str(row["label"]),
                               "quality": str(row.get("quality", ""))})
    turned = [r for r in stills + frames if r["face"].get("pose") in ("turned", "profile")]
    quality = {"turned_or_profile": len(turned),
               "flagged_pose": sum("pose" in r["quality"] for r in turned)}
    from fuzzyemo._files import file_sha256

    cal = fuzzyemo.Calibration.load(rb.source)
    return {"split": split, "rules": rules, "rules_sha256": rb.sha256,
            "calibration_sha256": cal.sha256,
            "corpus_sha256": file_sha256(ROOT / "benchmarks" / "validity" / "corpus.yaml"),
            "stills": summarise(stills), "video": summarise(frames),
            "targets": targets(stills, frames),
            "neutral_spread": neutral_spread(stills),
            "cross_scheme": cross_scheme(media, tables),
            "face_finding": face_finding(found), "pose": quality, "notes": notes,
            "_rows": {"stills": stills, "frames": frames}}


def summarise(rows: list[dict]) -> dict:
    confusion: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        confusion[r["face"]["expression"]][emotion_of(r["label"])] += 1
    per = {}
    for truth, got in confusion.items():
        n = sum(got.values())
        per[truth] = {"n": n, "agree": got[truth] / n if n else float("nan")}
    judged = [r for r in rows if r["face"]["expression"] in EXPRESSIONS]
    agree = sum(emotion_of(r["label"]) == r["face"]["expression"] for r in judged)
    return {"n": len(judged), "agreement": agree / len(judged) if judged else float("nan"),
            "per_emotion": per,
            "confusion": {t: dict(c) for t, c in sorted(confusion.items(), key=lambda kv: str(kv[0]))}}


def _rate(rows, ok) -> dict:
    n = len(rows)
    k = sum(1 for r in rows if ok(r))
    return {"n": n, "rate": k / n if n else float("nan")}


def targets(stills: list[dict], frames: list[dict]) -> dict:
    def clear(r):
        f = r["face"]
        return f.get("certainty") == "sure" and f.get("intensity") in ("medium", "high") \
            and f["expression"] in EMOTIONS

    def agree(r):
        return emotion_of(r["label"]) == r["face"]["expression"]

    def false_alarm(r):
        label = r["label"]
        return emotion_of(label) in NEGATIVE and label.endswith(("_medium", "_high"))

    calm = [r for r in stills + frames if r["face"]["expression"] in ("neutral", "happiness")]
    return {
        "clearly_expressive_stills": _rate([r for r in stills if clear(r)], agree),
        "video_frames": _rate([r for r in frames if r["face"]["expression"] in EXPRESSIONS], agree),
        "smiles_happiness": _rate([r for r in stills + frames
                                   if r["face"]["expression"] == "happiness"], agree),
        "crying_sadness": _rate([r for r in frames if r["face"]["expression"] == "sadness"], agree),
        "false_alarms_neutral_smiling": _rate(calm, false_alarm),
    }


def neutral_spread(stills: list[dict]) -> dict:
    xs = np.array([r["x"] for r in stills if r["face"]["expression"] == "neutral"
                   and r["face"].get("pose") == "frontal"])
    if len(xs) == 0:
        return {"n": 0}
    a = np.abs(xs)
    return {"n": len(xs),
            "within_0.3": dict(zip(COMPONENTS, np.nanmean(a <= 0.3, axis=0).round(3).tolist(),
                                   strict=True)),
            "p90_abs": dict(zip(COMPONENTS, np.nanpercentile(a, 90, axis=0).round(3).tolist(),
                                strict=True))}


def cross_scheme(media: list[dict], tables: dict) -> dict:
    """|x(68 points) - x(MediaPipe)| per component, both with the population neutral."""
    ids = [m["id"] for m in media if m.get("landmarks")]
    if not ids:
        return {"n": 0}
    files = fetch_landmarks(ids=ids)
    by_id = {m["id"]: m for m in media}
    diffs, hand = [], []
    for mid, entries in files.items():
        m = by_id[mid]
        table = tables[mid]
        for entry, path in entries:
            k = entry.get("face", 1) - 1
            faces = m.get("faces", [])
            if k >= len(faces):
                continue
            hit = match_faces([faces[k]], table)
            if 0 not in hit:
                continue
            pts = read_points(entry, path)
            x68 = fuzzyemo.measure(pts[None], "ibug68")[0]
            xmp = table.loc[hit[0], list(COMPONENTS)].to_numpy(float)
            diffs.append(np.abs(x68 - xmp))
            hand.append(bool(entry.get("hand_annotated")))
    if not diffs:
        return {"n": 0}
    d = np.array(diffs)
    h = np.array(hand)

    def stats(sel):
        if not sel.any():
            return None
        return {"n": int(sel.sum()),
                "median": dict(zip(COMPONENTS, np.nanmedian(d[sel], 0).round(3).tolist(), strict=True)),
                "within_0.25": float(np.nanmean(d[sel] <= 0.25))}
    return {"n": len(d), "hand_annotated": stats(h), "model_68": stats(~h)}


def face_finding(found: list[dict]) -> dict:
    group = [f for f in found if f["category"] in ("group", "collage")]
    return {"group_faces": len(group),
            "recall": sum(f["found"] for f in group) / len(group) if group else float("nan"),
            "all_faces": len(found),
            "recall_all": sum(f["found"] for f in found) / len(found) if found else float("nan")}


# ----------------------------------------------------------------------------- output
def report(res: dict) -> str:
    out = [f"fuzzyemo validity, split {res['split']}, rules {res['rules']} "
           f"({res['rules_sha256'][:12]})", ""]
    t = res["targets"]
    out.append("targets (issue 9)                         n     value   target")
    for key, goal in (("clearly_expressive_stills", ">= 0.80"), ("video_frames", ">= 0.70"),
                      ("smiles_happiness", ">= 0.90"), ("crying_sadness", "mostly"),
                      ("false_alarms_neutral_smiling", "<= 0.10")):
        v = t[key]
        out.append(f"  {key:36s} {v['n']:6d}   {v['rate']:6.3f}   {goal}")
    for part in ("stills", "video"):
        s = res[part]
        out.append("")
        out.append(f"{part}: {s['n']} judged, agreement {s['agreement']:.3f}")
        heads = [*EXPRESSIONS, "unknown"]
        out.append("  truth \\ label " + "".join(f"{h[:7]:>8s}" for h in heads) + "   agree")
        for truth, got in s["confusion"].items():
            n = sum(got.values())
            out.append(f"  {str(truth):14s}" + "".join(f"{got.get(h, 0):8d}" for h in heads)
                       + f"   {got.get(truth, 0) / n:5.2f}")
    ns = res["neutral_spread"]
    if ns.get("n"):
        out.append("")
        out.append(f"neutral strangers (frontal stills, population neutral): {ns['n']} faces")
        out.append("  component            within +-0.3   p90 |x|")
        for c in COMPONENTS:
            out.append(f"  {c:20s} {ns['within_0.3'][c]:10.2f}   {ns['p90_abs'][c]:8.2f}")
    cs = res["cross_scheme"]
    if cs.get("n"):
        out.append("")
        out.append("cross-scheme |x(68 points) - x(MediaPipe)| (median per component)")
        for kind in ("hand_annotated", "model_68"):
            st = cs[kind]
            if st:
                out.append(f"  {kind} ({st['n']} faces): within 0.25 for "
                           f"{st['within_0.25']:.2f} of components; "
                           + ", ".join(f"{c} {v:.2f}" for c, v in st["median"].items()))
    ff = res["face_finding"]
    out.append("")
    out.append(f"face finding: group photos {ff['group_faces']} faces, recall {ff['recall']:.3f}; "
               f"all labelled faces {ff['all_faces']}, recall {ff['recall_all']:.3f}")
    p = res["pose"]
    out.append(f"turned/profile faces judged: {p['turned_or_profile']}, flagged 'pose': "
               f"{p['flagged_pose']}")
    for note in res["notes"]:
        out.append(f"note: {note}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="dev", choices=("dev", "heldout", "fresh", "all"))
    ap.add_argument("--rules", default="facs", help="profile name or rule directory")
    ap.add_argument("--refresh", action="store_true", help="landmark again (ignore the cache)")
    ap.add_argument("--smoothing", default=None, choices=("landmarks", "measurements"),
                    help="annotate's One Euro smoothing for the videos (default: none)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    res = evaluate(args.split, args.rules, args.refresh, args.smoothing)
    print(report(res))
    if args.json:
        clean = {k: v for k, v in res.items() if not k.startswith("_")}
        args.json.write_text(json.dumps(clean, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
