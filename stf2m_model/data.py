"""Data: a table -> per-frame feature table -> views -> windows -> N-way K-shot episodes.

Section IV-A of the paper: a long video is segmented by its emotion label sequence into
views (maximal runs of one track's frames with one label) and meta-tasks are formed from
views. Here:

- a *track* is one face in one video: ``subject`` (DISFA-FER), else ``source`` + ``face_id``
  (``fuzzyemo annotate`` output), else one row per track (WFLW-FER: ``image`` + ``face_id``);
- every frame becomes one row of a float32 *frame table* laid out as
  ``[mask | position | landmark points | components | precomputed fuzzy | extra modalities]``
  (see :class:`Layout`; blocks a config turns off have width 0); a window of T frames is a
  gather ``table[idx]`` with ``idx = -1`` for padding (the table's last row is all zeros);
- landmarks enter as the *named anatomical points* of their landmark scheme (66 DISFA,
  68 iBUG, 98 WFLW, 478 MediaPipe points all give the same named points), so a model
  trained on one scheme reads tables of another; aligned to the meta-train mean face and
  taken relative to the track's median face;
- ``unknown`` frames inside a run of one label (up to ``max_gap``) are bridged and masked;
  ``neutral`` ends a view; neither is ever a label. Without labels (prediction) views are
  runs of valid frames.

Preprocessing statistics are fitted on the meta-train split only and stored with the
model (:class:`Prep`), so any later table is transformed exactly like the training data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fuzzyemo._errors import InputError
from fuzzyemo._vocab import CLASS_NAMES, COMPONENTS, EMOTIONS

from .config import Config
from .graph import COMPONENT_REGION, POINT_REGION, REGIONS, region_assignment

N_REGIONS = len(REGIONS)
POS_DIM = 9  # relative position in the video + 4 sinusoid pairs of the frame index
N_FUZZY = 24  # precomputed fuzzy block: 18 scores + 6 activations
SCORE_COLUMNS = CLASS_NAMES
ACTIVATION_COLUMNS = tuple(f"activation_{e}" for e in EMOTIONS)
VAL_SPLITS = ("val", "valid", "validation")
_XCOL = re.compile(r"^x_(\d+)$")


# ----------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """Column blocks of the frame table (and of every model input), in this order."""

    pos: int            # positional encoding (0 when positions are off)
    points: int         # 2 x named points (or raw landmarks)
    comps: int          # 12 component measurements (0 when not used)
    fuzzy: int          # precomputed fuzzy block (24 when fuzzy: precomputed)
    extra: int          # extra modality columns
    image: int = 0      # conv4: pixels per frame (side * side), 0 otherwise

    @property
    def width(self) -> int:
        return 1 + self.pos + self.points + self.comps + self.fuzzy + self.extra + self.image

    @property
    def features(self) -> int:
        """Width of the per-frame measurement block (points + components)."""
        return self.points + self.comps

    def slices(self) -> dict[str, slice]:
        out, at = {}, 0
        for name, n in (("mask", 1), ("pos", self.pos), ("points", self.points),
                        ("comps", self.comps), ("fuzzy", self.fuzzy), ("extra", self.extra),
                        ("image", self.image)):
            out[name] = slice(at, at + n)
            at += n
        out["features"] = slice(out["points"].start, out["comps"].stop)
        return out


@dataclass
class Corruption:
    """Robustness corruptions (Table IV / Fig. 6) at a level in [0, 1].

    occlusion: in a fraction ``level`` of frames one random facial region is hidden (its
    landmark points zeroed, its components missing, so the fuzzy systems see it as
    unknown); noise: Gaussian noise of ``level`` x 0.1 x (landmark spread) on landmarks and
    ``level`` x 0.5 on the components; speed: every view is resampled at a random speed in
    [1 - level, 1 + level] (faster views are shorter, slower ones repeat frames).
    """

    kind: str = "none"
    level: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "occlusion", "noise", "speed"):
            raise InputError(f"unknown corruption {self.kind!r} (occlusion, noise or speed)")
        if not 0.0 <= self.level <= 1.0:
            raise InputError(f"corruption level must be in [0, 1], got {self.level}")

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.level > 0


@dataclass
class Prep:
    """Preprocessing fitted on meta-train data; saved in run directories (prep.json)."""

    landmarks: str                   # named | raw | none
    scheme: str | None               # landmark scheme of the training table (named)
    n_points: int                    # raw landmark count of the training table
    point_names: list[str]           # named points used (named mode)
    region_of_point: np.ndarray      # (P,) region of every point
    adjacency: np.ndarray            # (8, 8) 0/1 region graph
    graph_source: str
    reference: np.ndarray            # (P,) complex reference face (centred, unit scale)
    baseline: str                    # subject | dataset | none
    dataset_mean: np.ndarray         # (P,) complex mean aligned face of the train split
    scale: float                     # std of the baseline-relative coordinates
    region_columns: np.ndarray       # (8, W) feature column per region node slot (pad: F)
    modality_columns: list[str]
    layout: Layout
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def n_used_points(self) -> int:
        return len(self.reference)


@dataclass
class Episodes:
    """A batch of tasks: window ids and task-local labels (0..N-1), plus global classes."""

    support: np.ndarray   # (tasks, N*K) window ids
    support_y: np.ndarray
    query: np.ndarray     # (tasks, N*Q)
    query_y: np.ndarray
    classes: np.ndarray   # (tasks, N) global class of each local label


# ----------------------------------------------------------------------------- reading
def dataset_rules(path) -> str | None:
    """The shipped rule profile that labelled the dataset at ``path``: its metadata's
    ``rules_profile``, else the shipped profile whose sha256 equals its ``rules_sha256``.
    None when the file has no fuzzyemo metadata (the default profile is then used); a
    warning when it was labelled with rules that are not shipped (give them as ``rules:``)."""
    import warnings

    from fuzzyemo import RuleBase
    from fuzzyemo._rulebase import profiles
    from fuzzyemo._table import read_metadata

    try:
        meta = read_metadata(path)
    except Exception:  # noqa: BLE001 - a CSV or a foreign parquet: nothing recorded
        return None
    if meta.get("rules_profile") in profiles():
        return meta["rules_profile"]
    sha = meta.get("rules_sha256")
    if not sha:
        return None
    for name in profiles():
        if RuleBase.load(name).sha256 == sha:
            return name
    warnings.warn(f"{path}: labelled with rules (sha256 {sha[:12]}...) that are not a shipped "
                  "profile; the fuzzy layer uses the default profile unless the config names "
                  "them (rules: DIR)", stacklevel=2)
    return None


def read_parquet(path) -> pd.DataFrame:
    from fuzzyemo._table import read_table

    return read_table(path)


def landmark_count(df: pd.DataFrame, source: str = "data") -> int:
    """K of the landmark columns x_0..x_{K-1}, y_0..y_{K-1}; 0 when there are none."""
    xs = sorted(int(m.group(1)) for c in df.columns if (m := _XCOL.match(str(c))))
    if not xs:
        return 0
    k = len(xs)
    if xs != list(range(k)):
        raise InputError(f"{source}: landmark columns must be x_0..x_{k - 1} without gaps")
    missing = [f"y_{i}" for i in range(k) if f"y_{i}" not in df.columns]
    if missing:
        raise InputError(f"{source}: missing landmark column {missing[0]} (have x_0..x_{k - 1})")
    return k


def _labels(df: pd.DataFrame, source: str) -> np.ndarray:
    if "class_index" in df.columns:
        lab = pd.to_numeric(df["class_index"], errors="coerce").fillna(-2).to_numpy(np.int64)
    elif "label" in df.columns:
        names = {n: i for i, n in enumerate(CLASS_NAMES)} | {"neutral": -1, "unknown": -2}
        raw = df["label"].astype(str)
        bad = ~raw.isin(list(names))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{source}: unknown label {raw.iloc[row]!r} at row {row + 1}")
        lab = raw.map(names).to_numpy(np.int64)
    else:
        raise InputError(f"{source}: needs a 'label' or 'class_index' column")
    bad = (lab < -2) | (lab >= len(CLASS_NAMES))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source}: class_index {lab[row]} out of range at row {row + 1}")
    return lab


def _modality_columns(df: pd.DataFrame, prefixes: list[str]) -> list[str]:
    cols = []
    for pre in prefixes:
        pat = re.compile(rf"^{re.escape(pre)}(.*?)(\d+)$")
        found = [(m.group(1), int(m.group(2)), str(c)) for c in df.columns
                 if (m := pat.match(str(c)))]
        cols += [c for _, _, c in sorted(found)]
    return cols


def _normalise(z: np.ndarray) -> np.ndarray:
    """Centre each face and scale it to unit RMS radius (an all-zero face stays zero)."""
    z0 = z - z.mean(1, keepdims=True)
    s = np.sqrt((np.abs(z0) ** 2).mean(1, keepdims=True))
    return z0 / np.where(s > 0, s, 1.0)


def _rotate_to(z: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Similarity-align unit faces to ``ref`` (in-plane rotation; Procrustes in C)."""
    a = (np.conj(z) * ref[None]).sum(1, keepdims=True)
    m = np.abs(a)
    return z * np.where(m > 0, a / np.where(m > 0, m, 1.0), 1.0)


def tracks(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, bool]:
    """(table sorted by track and frame, track name per row, whether rows are sequences).

    A track is one face followed through one video: ``subject`` (DISFA-FER), else
    ``source`` + ``face_id`` (``fuzzyemo annotate`` output), else one row per track
    (``image`` + ``face_id`` names it, as in WFLW-FER).
    """
    if "subject" in df.columns or "source" in df.columns:
        if "subject" in df.columns:
            key = df["subject"].astype(str)
        else:
            fid = df["face_id"].astype(str) if "face_id" in df.columns else "0"
            key = df["source"].astype(str) + "#" + fid
        order = key.to_frame("k")
        if "frame" in df.columns:
            order["f"] = pd.to_numeric(df["frame"], errors="coerce")
        idx = order.sort_values(list(order.columns), kind="stable").index
        df = df.loc[idx].reset_index(drop=True)
        return df, key.loc[idx].to_numpy(dtype=object), True
    if "image" in df.columns:
        fid = df["face_id"].astype(str) if "face_id" in df.columns else ""
        group = (df["image"].astype(str) + "#" + fid).to_numpy(dtype=object)
    else:
        group = np.array([f"row{i}" for i in range(len(df))], dtype=object)
    return df.reset_index(drop=True), group, False


def _scheme_for(k: int):
    from fuzzyemo._landmarks import LandmarkScheme

    for name in LandmarkScheme.available():
        scheme = LandmarkScheme.load(name)
        if scheme.n_points == k:
            return scheme
    return None


def _points(df: pd.DataFrame, k: int, prep: Prep | None, mode: str, source: str
            ) -> tuple[np.ndarray, str, str | None, list[str]]:
    """Landmarks as complex points (n, P): named points of the scheme, or the raw ones."""
    if k == 0:
        raise InputError(f"{source}: no landmark columns x_0, x_1, ... found "
                         "(set landmarks: none to train on the 12 components alone)")
    xy = np.stack([df[[f"x_{i}" for i in range(k)]].to_numpy(np.float64),
                   df[[f"y_{i}" for i in range(k)]].to_numpy(np.float64)], -1)
    if mode == "auto":
        mode = "named" if _scheme_for(k) is not None else "raw"
    if mode == "raw":
        if prep is not None and k != prep.n_points:
            raise InputError(f"{source}: {k} landmarks per frame but the model was trained "
                             f"on {prep.n_points} raw landmarks (landmarks: raw)")
        return xy[..., 0] + 1j * xy[..., 1], "raw", None, []
    scheme = _scheme_for(k)
    if scheme is None:
        raise InputError(f"{source}: no landmark scheme has {k} points, so named points "
                         "cannot be found; use landmarks: raw (or a 66/68/98/478-point table)")
    named = scheme.named(xy)
    names = prep.point_names if prep is not None else \
        [p for p in scheme.points if p in POINT_REGION]
    missing = [p for p in names if p not in named]
    if missing:
        raise InputError(f"{source}: landmark scheme {scheme.name} has no point {missing[0]!r} "
                         "that the model was trained on")
    pts = np.stack([named[p] for p in names], 1)
    return pts[..., 0] + 1j * pts[..., 1], "named", scheme.name, list(names)


# ----------------------------------------------------------------------------- the table
class FrameData:
    """A table turned into the frame table, views and windows for one config + Prep.

    Build with :meth:`build`; ``prep=None`` fits the preprocessing on the train split.
    ``labelled=False`` (prediction) needs neither labels nor splits: views are the runs of
    valid frames of each track.
    """

    def __init__(self) -> None:
        self.table: np.ndarray            # (n + 1, width - image) float32, last row zeros
        self.coords: np.ndarray           # (n + 1, P, 2) float32 aligned faces (conv4)
        self.images: np.ndarray | None    # (n + 1, side*side) crops from columns, or None
        self.prep: Prep
        self.config: Config
        self.frame: pd.DataFrame          # the input rows in table order (sorted by track)
        self.win_idx: np.ndarray          # (W, T) frame row ids, -1 pad
        self.win_label: np.ndarray        # (W,) global class 0..17 (-2 without labels)
        self.win_view: np.ndarray         # (W,) view id
        self.win_offset: np.ndarray       # (W,) first frame's position inside its view
        self.win_split: np.ndarray        # (W,) split name
        self.win_subject: np.ndarray      # (W,) track name
        self.n_frames = 0
        self.n_views = 0

    # -- construction --------------------------------------------------------------
    @classmethod
    def build(cls, df: pd.DataFrame, config: Config, prep: Prep | None = None,
              corruption: Corruption | None = None, source: str = "data",
              labelled: bool = True) -> FrameData:
        self = cls()
        self.config = config
        corruption = corruption or Corruption()
        rng = np.random.default_rng(corruption.seed + 7919)
        if len(df) == 0:
            raise InputError(f"{source}: the table has no rows")
        if prep is None and "split" not in df.columns:
            raise InputError(f"{source}: needs a 'split' column (subject-independent folds)")
        if prep is None and not labelled:
            raise ValueError("preprocessing is fitted on labelled training data only")
        df, group, sequences = tracks(df)
        self.frame = df
        n = len(df)
        split = df["split"].astype(str).to_numpy() if "split" in df.columns \
            else np.full(n, "", dtype=object)
        labels = _labels(df, source) if labelled else np.zeros(n, np.int64)
        mode = prep.landmarks if prep is not None else config.landmarks
        k = landmark_count(df, source)
        if mode == "auto" and k == 0:
            mode = "none"
        ok = np.ones(n, dtype=bool)
        for col in ("valid", "success"):
            if col in df.columns:
                ok &= pd.to_numeric(df[col], errors="coerce").fillna(0).to_numpy() > 0
        has_comps = all(c in df.columns for c in COMPONENTS)
        comps = np.full((n, len(COMPONENTS)), np.nan)
        if has_comps:
            comps = df[list(COMPONENTS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        use_comps = prep.layout.comps > 0 if prep is not None else config.use_components
        if use_comps and not has_comps:
            raise InputError(f"{source}: needs the 12 component columns ({COMPONENTS[0]}, ...)"
                             " (or set use_components: false)")
        if mode == "none":
            z = np.zeros((n, 0), complex)
            scheme, names = None, []
            if not use_comps:
                raise InputError("config: landmarks: none with use_components: false leaves "
                                 "the model no input")
            ok &= np.isfinite(comps).any(1)
        else:
            z, mode, scheme, names = _points(df, k, prep, mode, source)
            ok &= np.isfinite(z).all(1)
        labels = np.where(ok, labels, -2)
        if labelled and "split" in df.columns:
            self._check_subjects(group, split, source)

        # corruptions on the raw signals (before features); fuzzy info recomputed below
        occluded = np.full(n, -1)
        if corruption.active and corruption.kind == "noise":
            zf = np.where(ok[:, None], z, 0)
            spread = zf.real.std(1, keepdims=True) + zf.imag.std(1, keepdims=True) \
                if z.shape[1] else 0.0
            z = z + corruption.level * 0.1 * spread * (rng.standard_normal(z.shape)
                                                      + 1j * rng.standard_normal(z.shape))
            comps = np.clip(comps + corruption.level * 0.5 * rng.standard_normal(comps.shape),
                            -1, 1)
        if corruption.active and corruption.kind == "occlusion":
            hit = rng.random(n) < corruption.level
            occluded = np.where(hit, rng.integers(0, N_REGIONS, n), -1)
            comp_region = np.array([COMPONENT_REGION[c] for c in COMPONENTS])
            comps = np.where(comp_region[None] == occluded[:, None], np.nan, comps)

        zn = _normalise(np.where(ok[:, None], z, 0)) if z.shape[1] else z
        train_mask = None
        if prep is None:
            test = _test_splits(split, config)
            train = _train_splits(split, test, config)
            train_mask = np.isin(split, list(train)) & ok
            if not train_mask.any():
                raise InputError(f"{source}: no valid frames in the meta-train split(s) "
                                 f"{', '.join(sorted(train))}")
            ref = zn[train_mask].mean(0)
            if z.shape[1]:
                for _ in range(3):  # generalised Procrustes: align, re-average
                    ref = _normalise(ref[None])[0]
                    ref = _rotate_to(zn[train_mask], ref).mean(0)
                ref = _normalise(ref[None])[0]
        else:
            ref = prep.reference
        za = _rotate_to(zn, ref) if z.shape[1] else zn
        base_mode = config.baseline if prep is None else prep.baseline
        if base_mode == "auto":
            base_mode = "subject" if sequences else "dataset"
        dataset_mean = za[train_mask].mean(0) if prep is None else prep.dataset_mean
        if base_mode == "subject" and z.shape[1]:
            zr = pd.DataFrame(np.ascontiguousarray(np.where(ok[:, None], za, np.nan))
                              .view(np.float64))
            med = zr.groupby(group).transform("median").to_numpy()
            med = np.ascontiguousarray(med).view(np.complex128)
            med = np.where(np.isfinite(med), med, dataset_mean[None])
            rel = za - med
        elif base_mode == "dataset":
            rel = za - dataset_mean[None]
        else:
            rel = za
        if prep is None:
            prep = self._fit_prep(df, config, mode, scheme, names, k, ref, base_mode,
                                  dataset_mean, rel, train_mask, use_comps)
        self.prep = prep
        layout = prep.layout
        missing = [c for c in prep.modality_columns if c not in df.columns]
        if missing:
            raise InputError(f"{source}: missing modality column {missing[0]} "
                             "(the model was trained with it)")

        # --- frame table
        sl = layout.slices()
        table = np.zeros((n + 1, layout.width - layout.image), dtype=np.float32)
        table[:n, 0] = ok
        if layout.pos:
            table[:n, sl["pos"]] = _positions(df, group, sequences)
        if layout.points:
            relxy = np.stack([rel.real, rel.imag], -1) / prep.scale          # (n, P, 2)
            relxy = np.where(ok[:, None, None], relxy, 0.0)
            if (occluded >= 0).any():
                hide = prep.region_of_point[None, :] == occluded[:, None]     # (n, P)
                relxy = np.where(hide[..., None], 0.0, relxy)
            table[:n, sl["points"]] = relxy.reshape(n, -1)
        if layout.comps:
            table[:n, sl["comps"]] = np.nan_to_num(np.clip(comps, -1, 1))
        if layout.fuzzy:
            table[:n, sl["fuzzy"]] = _fuzzy_features(
                df, comps, config, has_comps=has_comps, source=source,
                recompute=corruption.kind in ("noise", "occlusion") and corruption.active)
        if layout.extra:
            extra = df[prep.modality_columns].apply(pd.to_numeric, errors="coerce")
            table[:n, sl["extra"]] = np.nan_to_num(extra.to_numpy(np.float32))
        table[:n] *= ok[:, None]  # invalid frames carry nothing
        self.table = table
        p = prep.n_used_points
        self.coords = np.zeros((n + 1, p, 2), dtype=np.float32)
        if p:
            self.coords[:n] = np.where(ok[:, None, None], np.stack([za.real, za.imag], -1), 0)
        self.images = None
        if layout.image:
            crop = [c for c in df.columns if re.fullmatch(re.escape(config.image_prefix)
                                                          + r"\d+", str(c))]
            if len(crop) == layout.image:
                crop.sort(key=lambda c: int(str(c)[len(config.image_prefix):]))
                self.images = np.zeros((n + 1, layout.image), dtype=np.float32)
                self.images[:n] = np.nan_to_num(df[crop].to_numpy(np.float32))
        self.n_frames = n

        # --- views and windows
        frame_no = pd.to_numeric(df["frame"], errors="coerce").fillna(-1).to_numpy(np.int64) \
            if "frame" in df.columns and sequences else np.arange(n)
        eff, masked = _effective_labels(labels, group, config.max_gap)
        table[:n, 0] *= ~masked
        self._windows(eff, group, frame_no, split, config, corruption, rng)
        return self

    def _fit_prep(self, df, config: Config, mode: str, scheme, names, k, ref, base_mode,
                  dataset_mean, rel, train_mask, use_comps: bool) -> Prep:
        p = len(ref)
        scale = float(np.sqrt(np.mean(np.abs(rel[train_mask]) ** 2) / 2)) if p else 1.0
        scale = scale or 1.0
        if mode == "named":
            region = np.array([POINT_REGION[n] for n in names], dtype=np.int64)
            from .graph import named_adjacency

            adjacency, how = named_adjacency(), f"named points of landmark scheme {scheme}"
        elif mode == "raw":
            region, adjacency, how = region_assignment(
                k, np.stack([ref.real, ref.imag], 1), config.seed)
        else:
            from .graph import named_adjacency

            region, adjacency, how = np.zeros(0, np.int64), named_adjacency(), "components only"
        n_comps = len(COMPONENTS) if use_comps else 0
        features = 2 * p + n_comps
        members: list[list[int]] = [[] for _ in range(N_REGIONS)]
        for i, r in enumerate(region):
            members[int(r)] += [2 * i, 2 * i + 1]
        if use_comps:
            for j, c in enumerate(COMPONENTS):
                members[COMPONENT_REGION[c]].append(2 * p + j)
        width = max(max(len(m) for m in members), 1)
        region_columns = np.full((N_REGIONS, width), features, dtype=np.int64)  # pad: zero
        for r, m in enumerate(members):
            region_columns[r, : len(m)] = m
        mod_cols = _modality_columns(df, config.modality_prefixes)
        image = config.image_size ** 2 if config.encoder == "conv4" else 0
        layout = Layout(pos=POS_DIM if config.positions else 0, points=2 * p, comps=n_comps,
                        fuzzy=N_FUZZY if config.fuzzy == "precomputed" else 0,
                        extra=len(mod_cols), image=int(image))
        return Prep(landmarks=mode, scheme=scheme, n_points=k, point_names=list(names),
                    region_of_point=region, adjacency=adjacency, graph_source=how,
                    reference=ref, baseline=base_mode, dataset_mean=dataset_mean, scale=scale,
                    region_columns=region_columns, modality_columns=mod_cols, layout=layout,
                    config=config.to_dict())

    def _windows(self, eff, group, frame_no, split, config: Config, corruption, rng) -> None:
        n = len(eff)
        brk = np.ones(n, dtype=bool)
        brk[1:] = (group[1:] != group[:-1]) | (eff[1:] != eff[:-1]) | \
            (frame_no[1:] - frame_no[:-1] != 1)
        vid = np.cumsum(brk) - 1
        starts = np.flatnonzero(brk)
        lengths = np.diff(np.r_[starts, n])
        keep = eff[starts] >= -1  # neutral views stay (a support class for prediction)
        valid_count = np.bincount(vid, weights=self.table[:n, 0], minlength=len(starts))
        keep &= valid_count >= max(config.min_view_length, 1)
        starts, lengths = starts[keep], lengths[keep]
        self.n_views = len(starts)
        # rows of each view in a virtual row space (identity, or resampled for speed)
        if corruption.active and corruption.kind == "speed":
            parts = []
            for s, ln in zip(starts, lengths, strict=True):
                f = max(rng.uniform(1 - corruption.level, 1 + corruption.level), 1e-3)
                pos = np.minimum(np.floor(np.arange(0, ln, f)).astype(np.int64), ln - 1)
                parts.append(s + pos)
            lengths = np.array([len(p) for p in parts], dtype=np.int64)
            vrows = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            vstart = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        else:
            vrows = np.arange(n)
            vstart = starts
        t, s = config.window, config.stride
        nw = np.where(lengths <= t, 1, -(-(lengths - t) // s) + 1)
        view_of = np.repeat(np.arange(len(starts)), nw)
        j = np.arange(len(view_of)) - np.repeat(np.cumsum(nw) - nw, nw)
        offset = np.minimum(j * s, np.maximum(lengths[view_of] - t, 0))
        pos = offset[:, None] + np.arange(t)[None]
        inside = pos < lengths[view_of][:, None]
        ridx = vstart[view_of][:, None] + np.where(inside, pos, 0)
        idx = np.where(inside, vrows[np.minimum(ridx, max(len(vrows) - 1, 0))]
                       if len(vrows) else 0, -1)
        first = vrows[vstart[view_of]] if len(vrows) else np.zeros(0, np.int64)
        self.win_idx = idx.astype(np.int64)
        self.win_label = eff[first].astype(np.int64)
        self.win_view = view_of
        self.win_offset = offset.astype(np.int64)
        self.win_split = split[first]
        self.win_subject = group[first]

    @staticmethod
    def _check_subjects(group: np.ndarray, split: np.ndarray, source: str) -> None:
        pairs = pd.DataFrame({"s": group, "p": split}).drop_duplicates()
        multi = pairs["s"].duplicated(keep=False)
        if multi.any():
            subj = pairs.loc[multi, "s"].iloc[0]
            where = ", ".join(sorted(pairs.loc[pairs["s"] == subj, "p"]))
            raise InputError(f"{source}: subject {subj!r} appears in several splits ({where}); "
                             "meta-train and meta-test must be subject-independent")

    # -- selection -----------------------------------------------------------------
    def split_windows(self, which: str) -> np.ndarray:
        """Window ids of the ``"train"``, ``"val"`` or ``"test"`` split(s)."""
        test = _test_splits(self.win_split, self.config)
        if which == "test":
            return np.flatnonzero(np.isin(self.win_split, list(test)))
        val = _val_splits(self.win_split, test, self.config)
        if which == "val":
            return np.flatnonzero(np.isin(self.win_split, list(val)))
        train = _train_splits(self.win_split, test, self.config)
        return np.flatnonzero(np.isin(self.win_split, list(train)))

    def gather(self, windows: np.ndarray) -> np.ndarray:
        """Model inputs (..., T, width) for window ids of any shape."""
        idx = self.win_idx[np.asarray(windows)]
        out = self.table[idx]
        if self.prep.layout.image:
            img = self.images[idx] if self.images is not None else self._raster(idx)
            out = np.concatenate([out, img * out[..., :1]], -1)
        return out

    def _raster(self, idx: np.ndarray) -> np.ndarray:
        """Landmarks drawn into a side x side occupancy image per frame (conv4 option)."""
        side = self.config.image_size
        c = self.coords[idx]                                   # (..., P, 2)
        px = np.clip(((c + 2.0) / 4.0 * side).astype(np.int64), 0, side - 1)
        flat = px[..., 1] * side + px[..., 0]                  # (..., P)
        lead = int(np.prod(flat.shape[:-1]))
        img = np.zeros((lead, side * side), dtype=np.float32)
        rows = np.repeat(np.arange(lead), flat.shape[-1])
        np.add.at(img, (rows, flat.reshape(-1)), 1.0)
        return img.reshape(*idx.shape, side * side)

    def summary(self) -> dict[str, Any]:
        counts = np.bincount(self.win_label[self.win_label >= 0], minlength=len(CLASS_NAMES))
        return {"frames": int(self.n_frames), "views": int(self.n_views),
                "windows": int(len(self.win_label)), "landmarks": self.prep.landmarks,
                "scheme": self.prep.scheme, "points": int(self.prep.n_used_points),
                "graph": self.prep.graph_source,
                "windows_per_class": {CLASS_NAMES[i]: int(c) for i, c in enumerate(counts) if c},
                "modality_columns": len(self.prep.modality_columns)}


def _positions(df: pd.DataFrame, group: np.ndarray, sequences: bool) -> np.ndarray:
    """Positional encoding per frame: relative place in its video + sinusoids of its index."""
    n = len(df)
    out = np.zeros((n, POS_DIM))
    if not sequences:
        return out
    f = pd.to_numeric(df["frame"], errors="coerce").fillna(0).to_numpy(float) \
        if "frame" in df.columns else pd.Series(np.ones(n)).groupby(group).cumsum().to_numpy()
    g = pd.Series(f).groupby(group)
    lo, hi = g.transform("min").to_numpy(), g.transform("max").to_numpy()
    out[:, 0] = np.where(hi > lo, (f - lo) / np.where(hi > lo, hi - lo, 1), 0.0)
    for i in range(4):
        w = 1.0 / (4.0 * 8.0 ** i)
        out[:, 1 + 2 * i] = np.sin(f * w)
        out[:, 2 + 2 * i] = np.cos(f * w)
    return out


def _fuzzy_features(df: pd.DataFrame, comps: np.ndarray, config: Config, recompute: bool,
                    has_comps: bool, source: str) -> np.ndarray:
    """The precomputed fuzzy semantics per frame: the engine's 18 scores and 6 activations,
    read from the table's columns, or recomputed from the components (always when the
    components were corrupted, or when lambdas or rules other than the table's are set)."""
    cols = (*SCORE_COLUMNS, *ACTIVATION_COLUMNS)
    own = config.lambda_fcis is None and config.lambda_fkis is None and config.rules is None
    if not recompute and own and all(c in df.columns for c in cols):
        vals = df[list(cols)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        return np.nan_to_num(vals)
    if not has_comps:
        raise InputError(f"{source}: fuzzy: precomputed needs the score columns "
                         f"({', '.join(cols[:2])}, ...) or the 12 component columns")
    from fuzzyemo import RuleBase

    rb = RuleBase.default() if config.rules is None else RuleBase.load(config.rules)
    rb = rb.with_options(lambda_fcis=config.lambda_fcis, lambda_fkis=config.lambda_fkis)
    res = rb.compile().evaluate(comps)
    return np.nan_to_num(np.concatenate([res.scores, res.activations], 1)).astype(np.float32)


def _effective_labels(labels: np.ndarray, group: np.ndarray, max_gap: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Bridge short runs of unknown frames inside a run of one label.

    Returns (effective label per frame, masked): a bridged frame takes the label of the
    run around it but is masked; unknown frames elsewhere stay -2 and end views.
    """
    n = len(labels)
    known = labels != -2
    s = pd.Series(np.where(known, labels, np.nan))
    prev = s.groupby(group).ffill().to_numpy()
    nxt = s.groupby(group).bfill().to_numpy()
    change = np.ones(n, dtype=bool)
    change[1:] = (group[1:] != group[:-1]) | (known[1:] != known[:-1])
    block = np.cumsum(change) - 1
    size = np.bincount(block)[block]
    bridged = ~known & (prev == nxt) & (prev >= 0) & (size <= max_gap)
    eff = np.where(known, labels, np.where(bridged, np.nan_to_num(prev, nan=-2), -2))
    return eff.astype(np.int64), ~known


def _test_splits(split: np.ndarray, config: Config) -> set[str]:
    names = sorted(set(map(str, split)))
    if config.test_split is not None:
        want = {s.strip() for s in str(config.test_split).split(",")}
        unknown = want - set(names)
        if unknown:
            raise InputError(f"test_split {sorted(unknown)[0]!r} not in the data's splits "
                             f"({', '.join(names)})")
        return want
    if "test" in names:
        return {"test"}
    rest = [n for n in names if n not in VAL_SPLITS]
    if len(rest) < 2:
        raise InputError(f"the data has one split ({rest[0] if rest else 'none'}); "
                         "meta-train and meta-test need two (set test_split)")
    return {rest[-1]}


def _val_splits(split: np.ndarray, test: set[str], config: Config) -> set[str]:
    names = set(map(str, split))
    if config.val_split is not None:
        want = {s.strip() for s in str(config.val_split).split(",")}
        unknown = want - names
        if unknown:
            raise InputError(f"val_split {sorted(unknown)[0]!r} not in the data's splits "
                             f"({', '.join(sorted(names))})")
        return want - test
    return (names & set(VAL_SPLITS)) - test


def _train_splits(split: np.ndarray, test: set[str], config: Config) -> set[str]:
    names = set(map(str, split))
    if config.train_splits:
        return set(config.train_splits)
    return names - test - _val_splits(split, test, config)


# ----------------------------------------------------------------------------- episodes
def sampling_units(data: FrameData, windows: np.ndarray, unit: str, neutral: bool = False
                   ) -> dict[int, list[np.ndarray]]:
    """Sampling units per class: disjoint sets of windows, no frame shared between units.

    ``view``: each view is a unit (a task draws one random window of it); distinct views
    never share frames. ``window``: each view is tiled into windows that do not overlap
    (the greedy chain of windows starting at least ``window`` frames apart), each its own
    unit, so overlapping windows of one view can never land in a support and a query set.
    """
    lab = data.win_label[windows]
    t = data.config.window
    out: dict[int, list[np.ndarray]] = {}
    for c in np.unique(lab[lab >= (-1 if neutral else 0)]):
        w = windows[lab == c]
        order = np.lexsort((data.win_offset[w], data.win_view[w]))
        w = w[order]
        cut = np.flatnonzero(np.diff(data.win_view[w])) + 1
        views = np.split(w, cut)
        if unit == "view":
            out[int(c)] = views
            continue
        units = []
        for v in views:
            last = -t
            for win in v:
                if data.win_offset[win] >= last + t:
                    units.append(np.array([win]))
                    last = data.win_offset[win]
        out[int(c)] = units
    return out


def class_partition(data: FrameData, config: Config, recorded: dict | None = None
                    ) -> dict[str, Any]:
    """Meta-train / meta-test classes and the sampling unit (Section III-A).

    ``class_split: disjoint`` (default): no class is both a meta-train and a meta-test
    class. Meta-test classes are drawn (seed ``class_split_seed``) among the classes with
    enough units in the test split, about ``test_class_fraction`` of all classes and at
    least ``n_way``, keeping ``n_way`` classes for meta-training; ``test_classes`` fixes
    them. ``shared``: every class with enough units on each side (not the paper's
    protocol; for data with too few classes). Units are views when that works, else
    non-overlapping windows (``sample_unit``).
    """
    need = config.k_shot + config.q_query
    tr, te = data.split_windows("train"), data.split_windows("test")
    units = ("view", "window") if config.sample_unit == "auto" else (config.sample_unit,)
    problem = ""
    for unit in units:
        r_ok = {c for c, u in sampling_units(data, tr, unit).items() if len(u) >= need}
        t_ok = {c for c, u in sampling_units(data, te, unit).items() if len(u) >= need}
        if recorded is not None:
            train_c = set(recorded["train"])
            test_c = set(recorded["test"]) & t_ok
        elif config.class_split == "shared":
            train_c, test_c = r_ok, t_ok
        elif config.test_classes:
            unknown = [c for c in config.test_classes if c not in CLASS_NAMES]
            if unknown:
                raise InputError(f"test_classes: unknown class {unknown[0]!r}")
            test_c = {CLASS_NAMES.index(c) for c in config.test_classes}
            short = sorted(test_c - t_ok)
            if short and unit == units[-1]:
                raise InputError(f"test_classes: {CLASS_NAMES[short[0]]} has fewer than "
                                 f"{need} {unit}s (k_shot + q_query) in the meta-test split")
            test_c &= t_ok
            train_c = r_ok - test_c
        else:
            n_all = len(r_ok | t_ok)
            n_test = max(config.n_way, int(round(config.test_class_fraction * n_all)))
            perm = np.random.default_rng(config.class_split_seed).permutation(sorted(t_ok))
            test_c: set[int] = set()
            for c in perm:
                if len(test_c) < n_test and len(r_ok - test_c - {int(c)}) >= config.n_way:
                    test_c.add(int(c))
            train_c = r_ok - test_c
        if len(train_c) >= config.n_way and len(test_c) >= config.n_way:
            return {"train": sorted(train_c), "test": sorted(test_c), "unit": unit,
                    "class_split": config.class_split if recorded is None else "recorded"}
        problem = (f"{len(r_ok)} class(es) have {need} {unit}s (k_shot + q_query) in the "
                   f"meta-train split and {len(t_ok)} in the meta-test split "
                   f"({len(r_ok & t_ok)} in both)")
    if recorded is not None:
        raise InputError(f"only {len(set(recorded['test']) & t_ok)} of the run's meta-test "
                         f"classes have {need} units here; {config.n_way}-way tasks need "
                         f"{config.n_way} (lower k_shot or q_query in the run's config.yaml)")
    if config.class_split == "disjoint":
        raise InputError(f"class-disjoint {config.n_way}-way tasks need {config.n_way} "
                         f"meta-train and {config.n_way} other meta-test classes, but "
                         f"{problem}; lower n_way, k_shot or q_query, or set "
                         "class_split: shared (classes then overlap; not the paper's protocol)")
    raise InputError(f"{config.n_way}-way tasks need {config.n_way} classes on each side, "
                     f"but {problem}; lower n_way, k_shot or q_query")


class EpisodeSampler:
    """N-way K-shot tasks over the given classes from windows of one split (Section IV-A).

    Classes are drawn without replacement and relabelled 0..N-1 in random order for every
    task; support and query take distinct units (see :func:`sampling_units`), so they never
    share a frame.
    """

    def __init__(self, data: FrameData, windows: np.ndarray, config: Config,
                 classes: list[int] | None = None, unit: str = "view",
                 seed: int | None = None) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed if seed is None else seed)
        need = config.k_shot + config.q_query
        self.unit = unit
        units = sampling_units(data, windows, unit)
        if classes is not None:
            units = {c: u for c, u in units.items() if c in set(classes)}
        self.units = {c: u for c, u in units.items() if len(u) >= need}
        self.classes = np.array(sorted(self.units), dtype=np.int64)
        if len(self.classes) < config.n_way:
            raise InputError(
                f"only {len(self.classes)} class(es) have {need} {unit}s (k_shot + q_query) "
                f"here; lower n_way ({config.n_way}), k_shot or q_query")

    def sample(self, n_tasks: int) -> Episodes:
        c = self.config
        n, k, q = c.n_way, c.k_shot, c.q_query
        sup = np.empty((n_tasks, n * k), np.int64)
        qry = np.empty((n_tasks, n * q), np.int64)
        classes = np.empty((n_tasks, n), np.int64)
        for t in range(n_tasks):
            chosen = self.rng.choice(self.classes, size=n, replace=False)
            classes[t] = chosen
            for j, cls in enumerate(chosen):
                units = self.units[int(cls)]
                pick = self.rng.choice(len(units), size=k + q, replace=False)
                wins = [units[u][self.rng.integers(len(units[u]))] for u in pick]
                sup[t, j * k:(j + 1) * k] = wins[:k]
                qry[t, j * q:(j + 1) * q] = wins[k:]
        sy = np.repeat(np.arange(n), k)[None].repeat(n_tasks, 0)
        qy = np.repeat(np.arange(n), q)[None].repeat(n_tasks, 0)
        return Episodes(sup, sy, qry, qy, classes)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def reference_support(data: FrameData, config: Config, seed: int,
                      windows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """K windows per class (one per unit, distinct units) for every class with K units,
    ``neutral`` (-1) included: the labelled support a run adapts on to label new data.
    Returns (window ids, classes)."""
    windows = np.flatnonzero(data.win_label >= -1) if windows is None else windows
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for unit in ("view", "window"):
        per_class = {c: u for c, u in sampling_units(data, windows, unit, True).items()
                     if len(u) >= config.k_shot}
        if len(per_class) >= 2:
            break
    if len(per_class) < 2:
        raise InputError(f"the support table has {len(per_class)} class(es) with "
                         f"{config.k_shot} labelled views (k_shot); predictions need two")
    for c in sorted(per_class):
        units = per_class[c]
        for u in rng.choice(len(units), size=config.k_shot, replace=False):
            ids.append(units[u][rng.integers(len(units[u]))])
            labels.append(c)
    return np.array(ids, np.int64), np.array(labels, np.int64)


# ----------------------------------------------------------------------------- persistence
def prep_to_json(prep: Prep) -> dict[str, Any]:
    """A JSON-able form of :class:`Prep` (complex faces as [re, im] pairs)."""
    out: dict[str, Any] = {}
    for k, v in prep.__dict__.items():
        if isinstance(v, np.ndarray):
            if np.iscomplexobj(v):
                v = np.stack([v.real, v.imag], -1)
            out[k] = v.tolist()
        elif isinstance(v, Layout):
            out[k] = dict(v.__dict__)
        else:
            out[k] = v
    return out


def prep_from_json(d: dict[str, Any]) -> Prep:
    d = dict(d)
    for k in ("reference", "dataset_mean"):
        a = np.asarray(d[k], dtype=float).reshape(-1, 2)
        d[k] = a[..., 0] + 1j * a[..., 1]
    d["region_of_point"] = np.asarray(d["region_of_point"], dtype=np.int64)
    d["adjacency"] = np.asarray(d["adjacency"], dtype=float)
    d["region_columns"] = np.asarray(d["region_columns"], dtype=np.int64)
    d["layout"] = Layout(**d["layout"])
    return Prep(**d)
