"""Generated DISFA-FER / WFLW-FER-shaped tables for the stf2m_model tests.

Every frame's 12 component measurements come from a prototype coding (scaled, with
noise), or from a neutral face; the rule engine labels them, exactly as the dataset
builders do, and the landmarks are a neutral template deformed by the components (each
component moves the points of its facial region in a fixed direction), plus a per-subject
face shape, head pose and noise. So the labels are learnable both from the fuzzy columns
and from the landmarks alone. Prototypes: by default one coding per class, a rule of the
default rule base whose own coding the engine labels with that class (so every class
occurs); ``prototypes="table2"`` uses the paper's 10 Table II codings the engine labels.

The landmark "physics" (which points a component moves, and how) is drawn from ``seed``:
tables of other seeds are other worlds. New subjects of the same world are the extra
subjects of a larger table with the same seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fuzzyemo import COMPONENTS, RuleBase, parse_coding
from fuzzyemo._table import results_frame

# A tiny ST-F2M run for CLI tests: seconds, not minutes.
TINY_TRAIN_CONFIG = """\
window: 8
stride: 4
n_way: 4
k_shot: 2
q_query: 2
hidden: 8
steps: 6
checkpoint_every: 3
log_every: 3
eval_episodes: 12
inner_steps_test: 2
"""

TABLE_II = {
    "anger_high": "0010010(-1)(-1)(-1)(-1)(-1)", "anger_medium": "(-1)0(-1)000101011",
    "happiness_high": "110110100111", "happiness_medium": "011011000(-1)00",
    "happiness_low": "(-1)010100010(-1)(-1)", "disgust_high": "11(-1)000001(-1)00",
    "disgust_medium": "110000000(-1)00", "sadness_high": "(-1)(-1)0(-1)(-1)100(-1)(-1)00",
    "sadness_medium": "(-1)(-1)0001000(-1)00", "surprise_low": "000110000011",
}
PROTOTYPES = np.array([parse_coding(c) for c in TABLE_II.values()], dtype=float)
_RULE_PROTOTYPES: np.ndarray | None = None


def rule_prototypes() -> np.ndarray:
    """One coding per class: the first rule whose own coding the engine labels its class."""
    global _RULE_PROTOTYPES
    if _RULE_PROTOTYPES is None:
        rb = RuleBase.default("paper")  # the profile the generated tables are labelled with
        engine = rb.compile()
        found: dict[str, np.ndarray] = {}
        for rule in rb.rules:
            x = np.zeros(len(COMPONENTS))
            for comp, code in rule.conditions:
                x[COMPONENTS.index(comp)] = code
            want = f"{rule.emotion}_{rule.then}"
            if want not in found and engine.evaluate(x[None]).labels[0] == want:
                found[want] = x
        _RULE_PROTOTYPES = np.array([found[k] for k in sorted(found)])
    return _RULE_PROTOTYPES


def _prototypes(kind: str) -> np.ndarray:
    return PROTOTYPES if kind == "table2" else rule_prototypes()


def _template(k: int, rng: np.random.Generator) -> np.ndarray:
    try:
        from fuzzyemo._landmarks import LandmarkScheme

        for name in LandmarkScheme.available():
            s = LandmarkScheme.load(name)
            if s.n_points == k and s.template is not None:
                return np.asarray(s.template, dtype=float)[:, :2]
    except Exception:  # noqa: BLE001 - no scheme: an ellipse of points is a face enough
        pass
    a = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return np.stack([np.cos(a), 1.3 * np.sin(a)], 1) * (1 + 0.2 * rng.random((k, 1)))


def _landmarks(comps: np.ndarray, subject_ids: np.ndarray, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    tpl = _template(k, rng)
    # each component moves the ~k/12 template points nearest to a random anchor point
    anchors = rng.choice(k, size=len(COMPONENTS), replace=False)
    d = ((tpl[:, None] - tpl[anchors][None]) ** 2).sum(-1)        # (k, 12)
    near = d <= np.sort(d, 0)[max(k // 12, 2)][None]
    move = near[:, :, None] * rng.normal(0, 1, (k, len(COMPONENTS), 2)) * 0.12
    frames = tpl[None] + np.einsum("nc,kcd->nkd", np.nan_to_num(comps), move)
    n_subj = int(subject_ids.max()) + 1
    shape = rng.normal(0, 0.03, (n_subj, k, 2))
    ang = rng.normal(0, 0.1, n_subj)
    scale = rng.uniform(80, 120, n_subj)
    shift = rng.uniform(150, 250, (n_subj, 2))
    frames = frames + shape[subject_ids] + rng.normal(0, 0.01, frames.shape)
    c, s = np.cos(ang)[subject_ids], np.sin(ang)[subject_ids]
    x = c[:, None] * frames[..., 0] - s[:, None] * frames[..., 1]
    y = s[:, None] * frames[..., 0] + c[:, None] * frames[..., 1]
    sc = scale[subject_ids][:, None]
    return np.stack([x * sc + shift[subject_ids, :1], y * sc + shift[subject_ids, 1:]], -1)


def _segments(rng: np.random.Generator, n_frames: int, protos: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Component measurements for one video: expression segments between neutral ones."""
    rows, seg = [], []
    s = 0
    while sum(len(r) for r in rows) < n_frames:
        if rng.random() < 0.3:
            ln = int(rng.integers(3, 8))
            rows.append(rng.normal(0, 0.03, (ln, 12)))
        else:
            ln = int(rng.integers(10, 24))
            p = protos[rng.integers(len(protos))]
            amp = rng.uniform(0.8, 1.0) * np.minimum(1, np.linspace(0.6, 1.6, ln))[:, None]
            rows.append(p[None] * amp + rng.normal(0, 0.06, (ln, 12)))
        seg.append(np.full(ln, s))
        s += 1
    return np.clip(np.concatenate(rows)[:n_frames], -1, 1), np.concatenate(seg)[:n_frames]


def disfa_like(n_subjects: int = 10, n_frames: int = 200, seed: int = 0, k: int = 66,
               unknown_rate: float = 0.02, text_dims: int = 0, prototypes: str = "rules",
               time_locked: bool = False) -> pd.DataFrame:
    """One row per frame, sorted by (subject, frame), with the DISFA-FER columns.

    ``time_locked``: every subject shows the same expression sequence at the same frames
    (as DISFA's subjects, who all watched one stimulus video), plus their own noise.
    """
    rng = np.random.default_rng(seed)
    protos = _prototypes(prototypes)
    comps, subj = [], []
    shared = _segments(np.random.default_rng(seed + 1), n_frames, protos)[0]
    for i in range(n_subjects):
        c, _ = _segments(rng, n_frames, protos)
        if time_locked:
            c = np.clip(shared + rng.normal(0, 0.03, shared.shape), -1, 1)
        comps.append(c)
        subj.append(np.full(n_frames, i))
    x = np.concatenate(comps)
    sid = np.concatenate(subj)
    bad = rng.random(len(x)) < unknown_rate
    lm = _landmarks(x, sid, k, seed)
    x[bad] = np.nan
    lm[bad] = np.nan
    res = RuleBase.default("paper").compile().evaluate(x)  # Table II codings: the paper profile
    n_test = max(2, n_subjects // 3)
    df = pd.DataFrame({
        "subject": [f"SN{i:03d}" for i in sid],
        "frame": np.tile(np.arange(1, n_frames + 1), n_subjects),
        "timestamp": np.tile(np.arange(n_frames) / 20.0, n_subjects),
        "split": np.where(sid >= n_subjects - n_test, "test", "train"),
        "valid": ~bad,
    })
    cols = {f"x_{j}": lm[:, j, 0] for j in range(k)} | {f"y_{j}": lm[:, j, 1] for j in range(k)}
    cols |= {c: x[:, j] for j, c in enumerate(COMPONENTS)}
    df = pd.concat([df, pd.DataFrame(cols), results_frame(res)], axis=1)
    if text_dims:
        onehot = np.eye(text_dims)[np.maximum(res.class_index, 0) % text_dims]
        for j in range(text_dims):
            df[f"emb_text_{j}"] = onehot[:, j] + rng.normal(0, 0.5, len(df))
    return df


def wflw_like(n_faces: int = 600, seed: int = 0, k: int = 98, prototypes: str = "rules"
              ) -> pd.DataFrame:
    """One row per face (length-1 sequences), train/test split by image."""
    rng = np.random.default_rng(seed)
    protos = _prototypes(prototypes)
    p = protos[rng.integers(len(protos), size=n_faces)]
    x = np.clip(p * rng.uniform(0.8, 1.0, (n_faces, 1)) + rng.normal(0, 0.06, p.shape), -1, 1)
    lm = _landmarks(x, np.arange(n_faces), k, seed)
    res = RuleBase.default("paper").compile().evaluate(x)  # Table II codings: the paper profile
    df = pd.DataFrame({"image": [f"img{i // 2:05d}.jpg" for i in range(n_faces)],
                       "face_id": np.arange(n_faces) % 2,
                       "split": np.where(np.arange(n_faces) < int(0.7 * n_faces), "train", "test")})
    cols = {f"x_{j}": lm[:, j, 0] for j in range(k)} | {f"y_{j}": lm[:, j, 1] for j in range(k)}
    cols |= {c: x[:, j] for j, c in enumerate(COMPONENTS)}
    return pd.concat([df, pd.DataFrame(cols), results_frame(res)], axis=1)


def write(df: pd.DataFrame, path: Path) -> Path:
    """Parquet with the provenance a builder records: the tables are labelled with the
    ``paper`` profile, and the model's fuzzy layer follows the dataset's profile."""
    from fuzzyemo._table import rulebase_metadata, write_table

    return write_table(df, path, metadata=rulebase_metadata(RuleBase.default("paper")))
