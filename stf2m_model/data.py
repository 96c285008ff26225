"""Data: parquet -> per-frame feature table -> views -> windows -> N-way K-shot episodes.

Section IV-A of the paper: a long video is segmented by its emotion label sequence into
views (maximal runs of one subject's frames with one label), each frame carries a
positional encoding of where it sits in the video, and a meta-task is formed from views
with the same labels. Here:

- every frame becomes one row of a float32 *frame table* laid out as
  ``[mask | position (9) | region nodes (8 x F) | fuzzy | extra modalities]`` (see
  :class:`Layout`); a window of T frames is a gather ``table[idx]`` with ``idx = -1`` for
  padding (the table's last row is all zeros, mask 0), so batches cost one fancy index;
- ``unknown`` frames (or ``valid == False``) of up to ``max_gap`` frames inside a run of
  one label are bridged and masked (mask 0: they never reach the pooled embedding);
  ``neutral`` frames end a view; neither ever becomes a label;
- WFLW-style tables (no ``subject`` column) give one length-1 view per row.

Preprocessing statistics (reference face, scales, regions) are fitted on the meta-train
split only and stored with the model (:class:`Prep`), so evaluation data is transformed
exactly like training data.
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
from .graph import COMPONENT_REGION, REGIONS, region_assignment

N_REGIONS = len(REGIONS)
POS_DIM = 9  # relative position in the video + 4 sinusoid pairs of the frame index
SCORE_COLUMNS = CLASS_NAMES
ACTIVATION_COLUMNS = tuple(f"activation_{e}" for e in EMOTIONS)
_XCOL = re.compile(r"^x_(\d+)$")


# ----------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """Column blocks of the frame table (and of every model input)."""

    nodes: int          # regions * node_features
    node_features: int
    fuzzy: int
    extra: int
    image: int = 0      # conv4: pixels per frame (side * side), 0 otherwise

    @property
    def width(self) -> int:
        return 1 + POS_DIM + self.nodes + self.fuzzy + self.extra + self.image

    def slices(self) -> dict[str, slice]:
        out, at = {}, 0
        for name, n in (("mask", 1), ("pos", POS_DIM), ("nodes", self.nodes),
                        ("fuzzy", self.fuzzy), ("extra", self.extra), ("image", self.image)):
            out[name] = slice(at, at + n)
            at += n
        return out


@dataclass
class Corruption:
    """Robustness corruptions (Table IV / Fig. 6) at a level in [0, 1].

    occlusion: in a fraction ``level`` of frames one random facial region is hidden (its
    node features zeroed, its components missing so the fuzzy systems see it as unknown);
    noise: Gaussian noise of ``level`` x 0.1 x (landmark spread) on landmarks and ``level`` x 0.5
    on the components; speed: every view is resampled at a random speed in
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
    """Preprocessing fitted on meta-train data; saved in checkpoints."""

    n_points: int
    region_of_point: np.ndarray      # (K,)
    adjacency: np.ndarray            # (8, 8) 0/1
    graph_source: str
    reference: np.ndarray            # (K,) complex reference face (centred, unit scale)
    baseline: str                    # subject | dataset | none
    dataset_mean: np.ndarray         # (K,) complex mean aligned face of the train split
    scale: float                     # std of the baseline-relative coordinates
    slots: np.ndarray                # (8, Pmax) landmark index per node slot, -1 pad
    modality_columns: list[str]
    fuzzy_columns: int
    layout: Layout
    config: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["layout"] = dict(self.layout.__dict__)
        return d

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Prep:
        d = dict(d)
        d["layout"] = Layout(**d["layout"])
        return cls(**d)


@dataclass
class Episodes:
    """A batch of tasks: window ids and task-local labels (0..N-1), plus global classes."""

    support: np.ndarray   # (tasks, N*K) window ids
    support_y: np.ndarray
    query: np.ndarray     # (tasks, N*Q)
    query_y: np.ndarray
    classes: np.ndarray   # (tasks, N) global class of each local label


# ----------------------------------------------------------------------------- reading
def read_parquet(path) -> pd.DataFrame:
    from fuzzyemo._table import read_table

    return read_table(path)


def landmark_count(df: pd.DataFrame, source: str = "data") -> int:
    xs = sorted(int(m.group(1)) for c in df.columns if (m := _XCOL.match(str(c))))
    if not xs:
        raise InputError(f"{source}: no landmark columns x_0, x_1, ... found")
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


def _complex_landmarks(df: pd.DataFrame, k: int) -> np.ndarray:
    x = df[[f"x_{i}" for i in range(k)]].to_numpy(np.float64)
    y = df[[f"y_{i}" for i in range(k)]].to_numpy(np.float64)
    return x + 1j * y


def _normalise(z: np.ndarray) -> np.ndarray:
    """Centre each face and scale it to unit RMS radius (rows with NaN stay NaN)."""
    z0 = z - z.mean(1, keepdims=True)
    s = np.sqrt((np.abs(z0) ** 2).mean(1, keepdims=True))
    return z0 / np.where(s > 0, s, 1.0)  # an all-zero (invalid) face stays zero


def _rotate_to(z: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Similarity-align unit faces to ``ref`` (in-plane rotation; Procrustes in C)."""
    a = (np.conj(z) * ref[None]).sum(1, keepdims=True)
    m = np.abs(a)
    return z * np.where(m > 0, a / np.where(m > 0, m, 1.0), 1.0)


# ----------------------------------------------------------------------------- the table
class FrameData:
    """A parquet turned into the frame table, views and windows for one config + Prep.

    Build with :meth:`build`; ``prep=None`` fits the preprocessing on the train split.
    """

    def __init__(self) -> None:
        self.table: np.ndarray            # (n + 1, width) float32, last row zeros
        self.coords: np.ndarray           # (n + 1, K, 2) float32 aligned faces (conv4)
        self.images: np.ndarray | None    # (n + 1, side*side) crops from columns, or None
        self.prep: Prep
        self.config: Config
        self.win_idx: np.ndarray          # (W, T) frame row ids, -1 pad
        self.win_label: np.ndarray        # (W,) global class 0..17
        self.win_view: np.ndarray         # (W,) view id
        self.win_split: np.ndarray        # (W,) split name
        self.win_subject: np.ndarray      # (W,) subject / group name
        self.n_frames = 0
        self.n_views = 0

    # -- construction --------------------------------------------------------------
    @classmethod
    def build(cls, df: pd.DataFrame, config: Config, prep: Prep | None = None,
              corruption: Corruption | None = None, source: str = "data") -> FrameData:
        self = cls()
        self.config = config
        corruption = corruption or Corruption()
        rng = np.random.default_rng(corruption.seed + 7919)
        if "split" not in df.columns:
            raise InputError(f"{source}: needs a 'split' column (subject-independent folds)")
        k = landmark_count(df, source)
        if prep is not None and k != prep.n_points:
            raise InputError(f"{source}: {k} landmarks per frame but the model was trained "
                             f"on {prep.n_points}")
        sequences = "subject" in df.columns
        if sequences:
            order = ["subject", "frame"] if "frame" in df.columns else ["subject"]
            df = df.sort_values(order, kind="stable").reset_index(drop=True)
            group = df["subject"].astype(str).to_numpy()
        else:
            group = np.array([f"row{i}" for i in range(len(df))], dtype=object)
            if "image" in df.columns:
                fid = df["face_id"].astype(str) if "face_id" in df.columns else ""
                group = (df["image"].astype(str) + "#" + fid).to_numpy()
        n = len(df)
        if n == 0:
            raise InputError(f"{source}: the table has no rows")
        split = df["split"].astype(str).to_numpy()
        labels = _labels(df, source)
        z = _complex_landmarks(df, k)
        ok = np.isfinite(z).all(1)
        if "valid" in df.columns:
            ok &= df["valid"].fillna(False).astype(bool).to_numpy()
        labels = np.where(ok, labels, -2)
        comps = np.zeros((n, len(COMPONENTS)))
        has_comps = all(c in df.columns for c in COMPONENTS)
        if has_comps:
            comps = df[list(COMPONENTS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)

        # corruptions on the raw signals (before features), fuzzy info recomputed below
        occluded = np.full(n, -1)
        if corruption.active and corruption.kind == "noise":
            zf = np.where(ok[:, None], z, 0)
            spread = zf.real.std(1, keepdims=True) + zf.imag.std(1, keepdims=True)
            z = z + corruption.level * 0.1 * spread * (rng.standard_normal(z.shape)
                                                      + 1j * rng.standard_normal(z.shape))
            comps = np.clip(comps + corruption.level * 0.5 * rng.standard_normal(comps.shape),
                            -1, 1)
        if corruption.active and corruption.kind == "occlusion":
            hit = rng.random(n) < corruption.level
            occluded = np.where(hit, rng.integers(0, N_REGIONS, n), -1)
            comp_region = np.array([COMPONENT_REGION[c] for c in COMPONENTS])
            comps = np.where(comp_region[None] == occluded[:, None], np.nan, comps)

        zn = _normalise(np.where(ok[:, None], z, 0))
        train_mask = None
        if prep is None:
            test = _test_splits(split, config)
            train = _train_splits(split, test, config)
            train_mask = np.isin(split, list(train)) & ok
            if not train_mask.any():
                raise InputError(f"{source}: no valid frames in the meta-train split(s) "
                                 f"{', '.join(sorted(train))}")
            ref = zn[train_mask].mean(0)
            for _ in range(3):  # generalised Procrustes: align, re-average
                ref = _normalise(ref[None])[0]
                ref = _rotate_to(zn[train_mask], ref).mean(0)
            ref = _normalise(ref[None])[0]
        else:
            ref = prep.reference
        za = _rotate_to(zn, ref)
        base_mode = config.baseline
        if base_mode == "auto":
            base_mode = "subject" if sequences else "dataset"
        if prep is None:
            dataset_mean = za[train_mask].mean(0)
        else:
            dataset_mean = prep.dataset_mean
            base_mode = prep.baseline
        if base_mode == "subject":
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
            scale = float(np.sqrt(np.mean(np.abs(rel[train_mask]) ** 2) / 2)) or 1.0
            assign, adjacency, how = region_assignment(
                k, np.stack([ref.real, ref.imag], 1), config.seed)
            pmax = int(np.bincount(assign, minlength=N_REGIONS).max())
            slots = np.full((N_REGIONS, pmax), -1)
            for r in range(N_REGIONS):
                members = np.flatnonzero(assign == r)
                slots[r, : len(members)] = members
            mod_cols = _modality_columns(df, config.modality_prefixes)
            n_fuzzy = 0
            if config.fuzzy:
                n_fuzzy = 24 + (36 if config.fuzzy_memberships else 0)
            cmax = max(np.bincount(list(COMPONENT_REGION.values()), minlength=N_REGIONS))
            nf = 2 * pmax + (cmax if config.use_components else 0)
            image = config.image_size ** 2 if config.encoder == "conv4" else 0
            layout = Layout(nodes=int(N_REGIONS * nf), node_features=int(nf),
                            fuzzy=int(n_fuzzy), extra=len(mod_cols), image=int(image))
            prep = Prep(n_points=k, region_of_point=assign, adjacency=adjacency,
                        graph_source=how, reference=ref, baseline=base_mode,
                        dataset_mean=dataset_mean, scale=scale, slots=slots,
                        modality_columns=mod_cols, fuzzy_columns=n_fuzzy, layout=layout,
                        config=config.to_dict())
        self.prep = prep
        layout = prep.layout
        missing = [c for c in prep.modality_columns if c not in df.columns]
        if missing:
            raise InputError(f"{source}: missing modality column {missing[0]} "
                             "(the model was trained with it)")

        # --- frame table
        sl = layout.slices()
        # the conv4 image block is not stored: it is drawn (or read) per batch in gather()
        table = np.zeros((n + 1, layout.width - layout.image), dtype=np.float32)
        table[:n, 0] = ok
        table[:n, sl["pos"]] = _positions(df, group, sequences)
        relxy = np.stack([rel.real, rel.imag], -1) / prep.scale          # (n, K, 2)
        relxy = np.where(ok[:, None, None], relxy, 0.0)
        pad = np.concatenate([relxy, np.zeros((n, 1, 2))], 1)           # slot -1 -> zeros
        nodes = pad[:, prep.slots, :].reshape(n, N_REGIONS, -1)          # (n, 8, 2*Pmax)
        if layout.node_features > nodes.shape[2]:
            cfeat = np.zeros((n, N_REGIONS, layout.node_features - nodes.shape[2]))
            fill = np.zeros(N_REGIONS, dtype=int)
            for j, c in enumerate(COMPONENTS):
                r = COMPONENT_REGION[c]
                cfeat[:, r, fill[r]] = np.nan_to_num(comps[:, j])
                fill[r] += 1
            nodes = np.concatenate([nodes, cfeat], 2)
        if (occluded >= 0).any():
            nodes[np.flatnonzero(occluded >= 0), occluded[occluded >= 0]] = 0.0
        table[:n, sl["nodes"]] = nodes.reshape(n, -1)
        if layout.fuzzy:
            table[:n, sl["fuzzy"]] = _fuzzy_features(
                df, comps, config, has_comps=has_comps, source=source,
                recompute=corruption.kind in ("noise", "occlusion") and corruption.active)
        if layout.extra:
            extra = df[prep.modality_columns].apply(pd.to_numeric, errors="coerce")
            table[:n, sl["extra"]] = np.nan_to_num(extra.to_numpy(np.float32))
        table[:n] *= ok[:, None]  # invalid frames carry nothing
        self.table = table
        self.coords = np.zeros((n + 1, k, 2), dtype=np.float32)
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
        frame_no = df["frame"].to_numpy(np.int64) if "frame" in df.columns and sequences \
            else np.arange(n)
        eff, masked = _effective_labels(labels, group, config.max_gap)
        table[:n, 0] *= ~masked
        self._windows(eff, group, frame_no, split, config, corruption, rng)
        self._check_subjects(source)
        return self

    def _windows(self, eff, group, frame_no, split, config: Config, corruption, rng) -> None:
        n = len(eff)
        brk = np.ones(n, dtype=bool)
        brk[1:] = (group[1:] != group[:-1]) | (eff[1:] != eff[:-1]) | \
            (frame_no[1:] - frame_no[:-1] != 1)
        vid = np.cumsum(brk) - 1
        starts = np.flatnonzero(brk)
        lengths = np.diff(np.r_[starts, n])
        keep = eff[starts] >= 0
        valid_count = np.bincount(vid, weights=self.table[:n, 0], minlength=len(starts))
        keep &= valid_count >= max(config.min_view_length, 1)
        starts, lengths = starts[keep], lengths[keep]
        self.n_views = len(starts)
        # rows of each view in a virtual row space (identity, or resampled for speed)
        if corruption.active and corruption.kind == "speed":
            parts = []
            for s, ln in zip(starts, lengths, strict=True):
                f = rng.uniform(1 - corruption.level, 1 + corruption.level)
                f = max(f, 1e-3)
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
        self.win_split = split[first]
        self.win_subject = group[first]

    def _check_subjects(self, source: str) -> None:
        pairs = pd.DataFrame({"s": self.win_subject, "p": self.win_split}).drop_duplicates()
        multi = pairs["s"].duplicated(keep=False)
        if multi.any():
            subj = pairs.loc[multi, "s"].iloc[0]
            where = ", ".join(sorted(pairs.loc[pairs["s"] == subj, "p"]))
            raise InputError(f"{source}: subject {subj!r} appears in several splits ({where}); "
                             "meta-train and meta-test must be subject-independent")

    # -- selection -----------------------------------------------------------------
    def split_windows(self, which: str) -> np.ndarray:
        """Window ids of the meta-train (``"train"``) or meta-test (``"test"``) split(s)."""
        test = _test_splits(self.win_split, self.config)
        if which == "test":
            return np.flatnonzero(np.isin(self.win_split, list(test)))
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
        c = self.coords[idx]                                   # (..., K, 2)
        px = np.clip(((c + 2.0) / 4.0 * side).astype(np.int64), 0, side - 1)
        flat = px[..., 1] * side + px[..., 0]                  # (..., K)
        lead = int(np.prod(flat.shape[:-1]))
        img = np.zeros((lead, side * side), dtype=np.float32)
        rows = np.repeat(np.arange(lead), flat.shape[-1])
        np.add.at(img, (rows, flat.reshape(-1)), 1.0)
        return img.reshape(*idx.shape, side * side)

    def summary(self) -> dict[str, Any]:
        counts = np.bincount(self.win_label, minlength=len(CLASS_NAMES))
        return {"frames": int(self.n_frames), "views": int(self.n_views),
                "windows": int(len(self.win_label)), "landmarks": int(self.prep.n_points),
                "graph": self.prep.graph_source,
                "windows_per_class": {CLASS_NAMES[i]: int(c) for i, c in enumerate(counts) if c},
                "modality_columns": len(self.prep.modality_columns)}


def _positions(df: pd.DataFrame, group: np.ndarray, sequences: bool) -> np.ndarray:
    """Positional encoding per frame: relative place in its video + sinusoids of its index."""
    n = len(df)
    out = np.zeros((n, POS_DIM))
    if not sequences:
        return out
    f = df["frame"].to_numpy(float) if "frame" in df.columns else \
        pd.Series(np.ones(n)).groupby(group).cumsum().to_numpy()
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
    """The fuzzy semantic information per frame: 18 scores, 6 activations (+ memberships)."""
    cols = (*SCORE_COLUMNS, *ACTIVATION_COLUMNS)
    use_engine = recompute or config.fuzzy_source == "engine" or config.fuzzy_memberships
    if not use_engine:
        missing = [c for c in cols if c not in df.columns]
        if not missing:
            vals = df[list(cols)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
            return np.nan_to_num(vals)
        use_engine = True
    if not has_comps:
        raise InputError(f"{source}: the fuzzy layer needs the score columns "
                         f"({', '.join(cols[:2])}, ...) or the 12 component columns")
    from fuzzyemo import RuleBase

    rb = RuleBase.default().with_options(lambda_fcis=config.lambda_fcis,
                                         lambda_fkis=config.lambda_fkis)
    res = rb.compile().evaluate(comps, memberships=config.fuzzy_memberships)
    parts = [res.scores, res.activations]
    if config.fuzzy_memberships:
        parts.append(res.memberships.reshape(len(comps), -1))
    return np.nan_to_num(np.concatenate(parts, 1)).astype(np.float32)


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
    if len(names) < 2:
        raise InputError(f"the data has one split ({names[0] if names else 'none'}); "
                         "meta-train and meta-test need two (set test_split)")
    return {names[-1]}


def _train_splits(split: np.ndarray, test: set[str], config: Config) -> set[str]:
    names = set(map(str, split))
    if config.train_splits:
        return set(config.train_splits)
    return names - test - {"val", "valid", "validation"} or names - test


# ----------------------------------------------------------------------------- episodes
class EpisodeSampler:
    """N-way K-shot tasks from windows of one split (Section IV-A).

    Units are views (distinct views for support and query, one random window each) when
    at least N classes have K+Q views, else windows. Classes are drawn without
    replacement and relabelled 0..N-1 in random order for every task.
    """

    def __init__(self, data: FrameData, windows: np.ndarray, config: Config,
                 seed: int | None = None) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed if seed is None else seed)
        need = config.k_shot + config.q_query
        lab = data.win_label[windows]
        unit = config.sample_unit
        by_view: dict[int, list[np.ndarray]] = {}
        for c in np.unique(lab):
            w = windows[lab == c]
            views = data.win_view[w]
            order = np.argsort(views, kind="stable")
            w, views = w[order], views[order]
            cut = np.flatnonzero(np.diff(views)) + 1
            by_view[int(c)] = np.split(w, cut)
        if unit == "auto":
            enough = sum(len(v) >= need for v in by_view.values())
            unit = "view" if enough >= config.n_way else "window"
        self.unit = unit
        if unit == "view":
            self.units = {c: v for c, v in by_view.items() if len(v) >= need}
        else:
            self.units = {c: [np.array([w]) for w in np.concatenate(v)]
                          for c, v in by_view.items()}
            self.units = {c: v for c, v in self.units.items() if len(v) >= need}
        self.classes = np.array(sorted(self.units), dtype=np.int64)
        if len(self.classes) < config.n_way:
            raise InputError(
                f"only {len(self.classes)} class(es) have {need} {unit}s (k_shot + q_query) in "
                f"this split; lower n_way ({config.n_way}), k_shot or q_query")

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


# ----------------------------------------------------------------------------- persistence
def prep_to_json(prep: Prep) -> dict[str, Any]:
    """A JSON-able form of :class:`Prep` (complex faces as [re, im] pairs)."""
    d = prep.to_state()
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            if np.iscomplexobj(v):
                v = np.stack([v.real, v.imag], -1)
            out[k] = v.tolist()
        else:
            out[k] = v
    return out


def prep_from_json(d: dict[str, Any]) -> Prep:
    d = dict(d)
    for k in ("reference", "dataset_mean"):
        a = np.asarray(d[k], dtype=float)
        d[k] = a[..., 0] + 1j * a[..., 1]
    d["region_of_point"] = np.asarray(d["region_of_point"], dtype=np.int64)
    d["adjacency"] = np.asarray(d["adjacency"], dtype=float)
    d["slots"] = np.asarray(d["slots"], dtype=np.int64)
    return Prep.from_state(d)
