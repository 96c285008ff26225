"""The DISFA-FER validity report: do our measurements and labels agree with FACS ground truth?

DISFA carries manual AU intensities (0-5) for every frame, so two questions have answers:

1. **Components vs AUs.** For each component, the Spearman correlation between our
   measurement and the AUs that should move it (:data:`AU_PAIRS`, with the expected sign),
   over valid frames, pooled and per subject.
2. **Labels vs FACS prototypes.** Each frame's AUs are matched to the EMFACS-style prototype
   of each emotion (:data:`PROTOTYPES`, reduced to the 12 AUs DISFA codes); we report how
   often our label's emotion is the prototype's, a confusion table, and whether our
   intensity grows with the prototype AUs' intensity.
3. **Landmark labels vs AU-truth labels.** The same rules on DISFA's own AU codes (the
   builder's ``label_au`` column, rules/aus.yaml) against the landmark-based ``label``: how
   far measuring the face from landmarks costs the rules, on real AU truth.

:func:`validity_report` computes everything from a DISFA-FER parquet; :func:`render_text`
and :func:`save_figure` present it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._errors import InputError
from ._files import save_png
from ._vocab import CLASS_NAMES, COMPONENTS, EMOTIONS, INTENSITIES

# (component, AU column, expected sign of the correlation), after FACS.
AU_PAIRS: tuple[tuple[str, str, int], ...] = (
    ("left_eyebrow", "AU01_r", 1), ("left_eyebrow", "AU02_r", 1),
    ("right_eyebrow", "AU01_r", 1), ("right_eyebrow", "AU02_r", 1),
    ("brow_crest", "AU04_r", 1),
    ("left_eye", "AU05_r", 1), ("right_eye", "AU05_r", 1),
    ("left_eye", "AU06_r", -1), ("right_eye", "AU06_r", -1),
    ("nose", "AU09_r", 1),
    ("left_mouth_corner", "AU12_r", 1), ("right_mouth_corner", "AU12_r", 1),
    ("left_mouth_corner", "AU15_r", -1), ("right_mouth_corner", "AU15_r", -1),
    ("lower_lip", "AU17_r", 1),
    ("mouth", "AU25_r", 1), ("mouth", "AU26_r", 1),
)
# EMFACS-style prototypes restricted to DISFA's 12 AUs (AU7, AU16, AU23 are not coded, so
# anger is AU4+AU5 and disgust AU9+AU15). An AU is "on" at intensity >= ON_LEVEL.
PROTOTYPES: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "anger": (4, 5),
    "sadness": (1, 4, 15),
    "disgust": (9, 15),
    "fear": (1, 2, 4, 5, 20, 26),
    "surprise": (1, 2, 5, 26),
}
ON_LEVEL = 2
MIN_ABS_R = 0.1  # below this a correlation is reported as "weak"


@dataclass
class ValidityReport:
    """All tables of the report (pandas frames) and headline numbers."""

    path: str
    n_frames: int
    n_valid: int
    correlations: pd.DataFrame     # one row per AU_PAIRS entry
    confusion: pd.DataFrame        # prototype (rows) x our emotion/neutral/unknown (cols)
    agreement: float               # share of prototype frames whose label emotion matches
    neutral_agreement: float       # share of all-AUs-0 frames labelled neutral
    intensity_r: float             # Spearman(prototype AU intensity, our intensity level)
    n_prototype: int
    # 3: landmark label vs AU-truth label (None for tables built before label_au existed)
    au_truth: pd.DataFrame | None = None      # AU-truth emotion (rows) x landmark emotion
    au_truth_agreement: float = float("nan")  # same emotion (neutral counts), valid frames
    au_truth_class_agreement: float = float("nan")  # same class (emotion and intensity)
    au_truth_emotion_agreement: float = float("nan")  # same emotion where AU truth has one

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "n_frames": self.n_frames, "n_valid": self.n_valid,
            "agreement": self.agreement, "neutral_agreement": self.neutral_agreement,
            "intensity_r": self.intensity_r, "n_prototype": self.n_prototype,
            "correlations": self.correlations.to_dict(orient="records"),
            "confusion": {str(k): {str(c): int(v) for c, v in row.items()}
                          for k, row in self.confusion.iterrows()},
            "au_truth": None if self.au_truth is None else {
                "agreement": self.au_truth_agreement,
                "class_agreement": self.au_truth_class_agreement,
                "emotion_agreement": self.au_truth_emotion_agreement,
                "confusion": {str(k): {str(c): int(v) for c, v in row.items()}
                              for k, row in self.au_truth.iterrows()}},
        }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); NaN with < 3 pairs or a constant input."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra = pd.Series(a[ok]).rank().to_numpy()
    rb = pd.Series(b[ok]).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def prototype_of(au: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the matching prototype emotion (``neutral`` when all AUs are 0, ``other``
    when none matches, ``missing`` without labels) and its AUs' mean intensity (NaN if none).

    When several prototypes match, the one with more AUs wins (fear over surprise and anger),
    then the higher mean intensity.
    """
    n = len(au)
    values = {a: au[f"AU{a:02d}_r"].astype("float64").to_numpy() for a in
              sorted({a for p in PROTOTYPES.values() for a in p} | {17, 25})}
    cols = [c for c in au.columns if c.startswith("AU") and c.endswith("_r")]
    allv = au[cols].astype("float64").to_numpy()
    best = np.full(n, "other", dtype=object)
    best_key = np.full((n, 2), -np.inf)
    best_int = np.full(n, np.nan)
    for emo, aus in PROTOTYPES.items():
        stack = np.stack([values[a] for a in aus], axis=1)
        with np.errstate(invalid="ignore"):
            match = (stack >= ON_LEVEL).all(axis=1)
        mean = stack.mean(axis=1)
        better = match & ((len(aus) > best_key[:, 0])
                          | ((len(aus) == best_key[:, 0]) & (mean > best_key[:, 1])))
        best[better] = emo
        best_key[better] = (len(aus), 0)
        best_key[better, 1] = mean[better]
        best_int[better] = mean[better]
    with np.errstate(invalid="ignore"):
        neutral = (allv == 0).all(axis=1)
    best[neutral] = "neutral"
    best[np.isnan(allv).any(axis=1)] = "missing"
    return best, best_int


def validity_report(path: str | os.PathLike) -> ValidityReport:
    """Compute the report from a DISFA-FER parquet (one line InputError if it is not one)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    au_cols = sorted({a for _, a, _ in AU_PAIRS} | {f"AU{a:02d}_r" for v in PROTOTYPES.values()
                                                    for a in v})
    need = ["subject", "valid", "label", *COMPONENTS, *au_cols]
    optional = ["label_au"]
    try:
        import pyarrow.parquet as pq

        have = set(pq.read_schema(p).names)
        # Only the columns the report uses: a DISFA-FER file has ~200 (landmarks...).
        df = pd.read_parquet(p, columns=[c for c in (*need, *optional) if c in have])
    except Exception as exc:  # noqa: BLE001 - any parser failure is the user's file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: cannot read parquet: {first}") from None
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"{p}: not a DISFA-FER table (missing column(s) "
                         f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}); "
                         "build one with: fuzzyemo build-dataset disfa")
    valid = df["valid"].to_numpy(dtype=bool)
    v = df[valid]
    rows = []
    for comp, au, sign in AU_PAIRS:
        x = v[comp].to_numpy(dtype=float)
        y = v[au].astype("float64").to_numpy()
        r = _spearman(x, y)
        per_subject = [_spearman(g[comp].to_numpy(dtype=float), g[au].astype("float64").to_numpy())
                       for _, g in v.groupby("subject", sort=True)]
        per = np.array([s for s in per_subject if np.isfinite(s)])
        agree = float((np.sign(per) == sign).mean()) if per.size else float("nan")
        if not np.isfinite(r):
            verdict = "no data"
        elif abs(r) < MIN_ABS_R:
            verdict = "weak"
        elif np.sign(r) == sign:
            verdict = "ok"
        else:
            verdict = "wrong sign"
        rows.append({"component": comp, "au": au, "expected": "+" if sign > 0 else "-",
                     "spearman_r": r, "n": int((np.isfinite(x) & np.isfinite(y)).sum()),
                     "subjects_expected_sign": agree, "verdict": verdict})
    corr = pd.DataFrame(rows)

    proto, proto_int = prototype_of(v[au_cols])
    label = v["label"].astype(str).to_numpy()
    ours = np.array([lb.rsplit("_", 1)[0] if lb in CLASS_NAMES else lb for lb in label],
                    dtype=object)
    rows_order = [*EMOTIONS, "neutral", "other", "missing"]
    cols_order = [*EMOTIONS, "neutral", "unknown"]
    confusion = pd.crosstab(pd.Series(proto, name="prototype"), pd.Series(ours, name="label"))
    confusion = confusion.reindex(index=rows_order, columns=cols_order, fill_value=0)
    is_proto = np.isin(proto, EMOTIONS)
    agreement = float((ours[is_proto] == proto[is_proto]).mean()) if is_proto.any() \
        else float("nan")
    neu = proto == "neutral"
    neutral_agreement = float((ours[neu] == "neutral").mean()) if neu.any() else float("nan")
    match = is_proto & (ours == proto)
    level = np.array([INTENSITIES.index(lb.rsplit("_", 1)[1]) + 1 if lb in CLASS_NAMES else 0
                      for lb in label], dtype=float)
    intensity_r = _spearman(proto_int[match], level[match]) if match.sum() >= 3 \
        else float("nan")
    rep = ValidityReport(str(p), len(df), int(valid.sum()), corr, confusion, agreement,
                         neutral_agreement, intensity_r, int(is_proto.sum()))
    if "label_au" in v.columns:
        _au_truth(rep, label, v["label_au"].astype(str).to_numpy())
    return rep


def _emotion(labels: np.ndarray) -> np.ndarray:
    return np.array([lb.rsplit("_", 1)[0] if lb in CLASS_NAMES else lb for lb in labels],
                    dtype=object)


def _au_truth(rep: ValidityReport, label: np.ndarray, label_au: np.ndarray) -> None:
    """Section 3: the landmark-based labels against the same rules on DISFA's AU codes."""
    known = label_au != "unknown"
    ours, truth = _emotion(label[known]), _emotion(label_au[known])
    order = [*EMOTIONS, "neutral", "unknown"]
    conf = pd.crosstab(pd.Series(truth, name="au_truth"), pd.Series(ours, name="label"))
    rep.au_truth = conf.reindex(index=order[:-1], columns=order, fill_value=0)
    if known.any():
        rep.au_truth_agreement = float((ours == truth).mean())
        rep.au_truth_class_agreement = float((label[known] == label_au[known]).mean())
        emo = np.isin(truth, EMOTIONS)
        if emo.any():
            rep.au_truth_emotion_agreement = float((ours[emo] == truth[emo]).mean())


def _fmt(x: float, pct: bool = False) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{x:.0%}" if pct else f"{x:+.2f}"


def render_text(rep: ValidityReport) -> str:
    """The report as plain text tables (what the CLI prints)."""
    lines = [f"DISFA-FER validity report: {rep.path}",
             f"frames: {rep.n_frames} ({rep.n_valid} valid)", "",
             "1. Components vs the AUs that should move them (Spearman r over valid frames)",
             f"{'component':<20}{'AU':<8}{'expect':>7}{'r':>8}{'n':>9}{'subjects':>10}  verdict"]
    for row in rep.correlations.itertuples():
        lines.append(f"{row.component:<20}{row.au:<8}{row.expected:>7}"
                     f"{_fmt(row.spearman_r):>8}{row.n:>9}"
                     f"{_fmt(row.subjects_expected_sign, pct=True):>10}  {row.verdict}")
    lines += ["", "2. Labels vs FACS prototypes (rows: prototype from the AUs, AU on at >= "
              f"{ON_LEVEL}; columns: our label's emotion)"]
    conf = rep.confusion
    lines.append(f"{'':<11}" + "".join(f"{c[:9]:>10}" for c in conf.columns))
    for idx, row in conf.iterrows():
        lines.append(f"{idx:<11}" + "".join(f"{int(v):>10}" for v in row.to_numpy()))
    lines += ["",
              f"agreement on prototype frames ({rep.n_prototype}): {_fmt(rep.agreement, True)}",
              f"all-AUs-0 frames labelled neutral: {_fmt(rep.neutral_agreement, True)}",
              f"intensity vs prototype AU intensity (Spearman, agreeing frames): "
              f"{_fmt(rep.intensity_r)}"]
    if rep.au_truth is not None:
        lines += ["", "3. Landmark labels vs AU-truth labels (rows: the rules on DISFA's AU "
                  "codes, rules/aus.yaml; columns: the rules on the landmarks)"]
        conf = rep.au_truth
        lines.append(f"{'':<11}" + "".join(f"{c[:9]:>10}" for c in conf.columns))
        for idx, row in conf.iterrows():
            lines.append(f"{idx:<11}" + "".join(f"{int(v):>10}" for v in row.to_numpy()))
        lines += ["",
                  f"same emotion (neutral included): {_fmt(rep.au_truth_agreement, True)}; "
                  f"same class: {_fmt(rep.au_truth_class_agreement, True)}; "
                  f"same emotion where the AUs show one: "
                  f"{_fmt(rep.au_truth_emotion_agreement, True)}"]
    wrong = rep.correlations[rep.correlations["verdict"] == "wrong sign"]
    if len(wrong):
        lines.append("components moving against FACS: "
                     + ", ".join(f"{r.component}~{r.au}" for r in wrong.itertuples())
                     + " (check rules/calibration.yaml and the landmark scheme)")
    return "\n".join(lines)


def save_figure(rep: ValidityReport, path: str | os.PathLike) -> Path:
    """Two panels: the correlations (bars, expected sign marked) and the confusion table."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("the report figure needs matplotlib: pip install matplotlib") from None
    out = Path(path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), dpi=100,
                                   gridspec_kw={"width_ratios": [1.2, 1]})
    c = rep.correlations
    r = c["spearman_r"].fillna(0).to_numpy()
    good = np.where(c["expected"] == "+", 1, -1) * r >= MIN_ABS_R
    ax1.barh(range(len(c)), r, color=np.where(good, "tab:green", "tab:red"))
    ax1.set_yticks(range(len(c)), [f"{a} ~ {b} ({e})" for a, b, e in
                                   zip(c["component"], c["au"], c["expected"], strict=True)],
                   fontsize=7)
    ax1.axvline(0, color="k", lw=0.5)
    ax1.invert_yaxis()
    ax1.set_xlim(-1, 1)
    ax1.set_xlabel("Spearman r (green: expected sign, |r| >= 0.1)")
    ax1.set_title("components vs AUs")
    conf = rep.confusion.to_numpy(dtype=float)
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    ax2.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax2.set_xticks(range(conf.shape[1]), rep.confusion.columns, rotation=45, ha="right",
                   fontsize=8)
    ax2.set_yticks(range(conf.shape[0]), rep.confusion.index, fontsize=8)
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            if conf[i, j]:
                ax2.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=6)
    ax2.set_xlabel("our label")
    ax2.set_ylabel("FACS prototype")
    ax2.set_title(f"labels vs prototypes (agreement {_fmt(rep.agreement, True)})")
    fig.tight_layout()
    try:
        save_png(fig, out)
    finally:
        plt.close(fig)
    return out
