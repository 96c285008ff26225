"""stf2m_model data: views, masking, windows, episodes, modalities, corruptions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

import stf2m_fixtures as fx  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threads only contend on a small shared CPU

from fuzzyemo import CLASS_NAMES, InputError  # noqa: E402
from stf2m_model.config import Config  # noqa: E402
from stf2m_model.data import Corruption, EpisodeSampler, FrameData, prep_from_json, prep_to_json  # noqa: E402
from stf2m_model.model import build_model  # noqa: E402

CFG = Config(window=8, stride=4, n_way=5, k_shot=2, q_query=3, hidden=8)


@pytest.fixture(scope="module")
def disfa() -> pd.DataFrame:
    return fx.disfa_like(n_subjects=9, n_frames=160, seed=1)


@pytest.fixture(scope="module")
def data(disfa) -> FrameData:
    return FrameData.build(disfa, CFG)


def _tiny(labels: list[str], frames=None, subject="S1") -> pd.DataFrame:
    """A hand-made one-subject table with the given label sequence."""
    base = fx.disfa_like(n_subjects=2, n_frames=len(labels), seed=3, unknown_rate=0).iloc[: len(labels)].copy()
    base["label"] = labels
    base["class_index"] = [CLASS_NAMES.index(s) if s in CLASS_NAMES else
                           (-1 if s == "neutral" else -2) for s in labels]
    base["valid"] = [s != "unknown" for s in labels]
    base["subject"] = subject
    base["frame"] = frames if frames is not None else np.arange(1, len(labels) + 1)
    other = base.copy()
    other["subject"], other["split"] = "S2", "test"
    base["split"] = "train"
    return pd.concat([base, other], ignore_index=True)


def test_views_bridge_short_unknown_gaps_and_never_label_neutral_or_unknown():
    a, b = "anger_high", "happiness_low"
    labels = [a, a, "unknown", a, a, "neutral", a, b, b, "unknown", "unknown", "unknown", b]
    d = FrameData.build(_tiny(labels), CFG.replace(window=16, max_gap=2))
    train = d.split_windows("train")
    idx = d.win_idx[train]
    got = [(CLASS_NAMES[lab], [int(i) for i in row if i >= 0])
           for lab, row in zip(d.win_label[train], idx, strict=True)]
    # the unknown frame 2 is inside the first view but masked; neutral ends it; the run of
    # three unknowns (> max_gap) ends the b view.
    assert got == [(a, [0, 1, 2, 3, 4]), (a, [6]), (b, [7, 8]), (b, [12])]
    assert d.table[2, 0] == 0 and d.table[[0, 1, 3, 4], 0].min() == 1
    assert set(d.win_label) <= set(range(18))


def test_frame_gaps_end_views():
    a = "anger_high"
    d = FrameData.build(_tiny([a] * 6, frames=[1, 2, 3, 7, 8, 9]), CFG.replace(window=16))
    lens = (d.win_idx[d.split_windows("train")] >= 0).sum(1)
    assert sorted(lens.tolist()) == [3, 3]


def test_windows_cover_long_views_with_fixed_length(data):
    assert data.win_idx.shape[1] == CFG.window
    lengths = (data.win_idx >= 0).sum(1)
    assert lengths.min() >= 1 and lengths.max() == CFG.window
    # every window's frames share the window's label and subject
    rows = data.win_idx[data.win_idx >= 0]
    assert len(rows) > 0
    assert data.n_views > 20


def test_gather_shapes_and_layout(data):
    s = EpisodeSampler(data, data.split_windows("train"), CFG)
    ep = s.sample(3)
    x = data.gather(ep.support)
    assert x.shape == (3, CFG.n_way * CFG.k_shot, CFG.window, data.prep.layout.width)
    assert ep.query_y.shape == (3, CFG.n_way * CFG.q_query)
    assert data.prep.layout.fuzzy == 24 and data.prep.layout.extra == 0
    m = build_model(data.prep.layout, data.prep.adjacency, CFG)
    assert m(torch.as_tensor(x[0])).shape == (CFG.n_way * CFG.k_shot, CFG.n_way)
    assert m(torch.as_tensor(x[0]), embed_only=True).shape[1] == m.dim


def test_conv4_backbone_on_landmark_images_and_crop_columns(disfa):
    from stf2m_model import meta

    cfg = CFG.replace(encoder="conv4", image_size=16)
    d = FrameData.build(disfa, cfg)
    ep = EpisodeSampler(d, d.split_windows("train"), cfg, seed=0).sample(1)
    x = d.gather(ep.support)
    img = x[..., d.prep.layout.slices()["image"]]
    assert x.shape[-1] == d.prep.layout.width and img.shape[-1] == 16 * 16
    # every valid frame draws all its landmarks; padded frames draw nothing
    valid = x[..., 0] > 0
    assert np.allclose(img[valid].sum(-1), d.prep.n_points) and img[~valid].sum() == 0
    m = build_model(d.prep.layout, d.prep.adjacency, cfg)
    batch = [torch.as_tensor(a) for a in (x, ep.support_y, d.gather(ep.query), ep.query_y)]
    loss, _ = meta.meta_loss(m, meta.params_of(m), *batch, cfg.replace(first_order=True))
    loss.backward()
    assert all(p.grad is not None for p in m.g.parameters())
    crops = pd.DataFrame(np.random.default_rng(0).random((len(disfa), 16 * 16)),
                         columns=[f"crop_{i}" for i in range(256)])
    dc = FrameData.build(pd.concat([disfa, crops], axis=1), cfg)
    assert dc.images is not None
    xc = dc.gather(np.arange(3))
    row = dc.win_idx[0, 0]
    assert np.allclose(xc[0, 0, dc.prep.layout.slices()["image"]], crops.iloc[row].to_numpy())


def test_masked_frames_do_not_change_the_output(data):
    torch.manual_seed(0)
    m = build_model(data.prep.layout, data.prep.adjacency, CFG.replace(kernel=3))
    w = np.flatnonzero((data.win_idx >= 0).sum(1) < CFG.window)[:6]  # padded windows
    x = torch.as_tensor(data.gather(w))
    masked = x[..., 0] == 0
    assert masked.any()
    y = x.clone()
    y[masked] = torch.randn_like(y[masked]) * 5
    y[..., 0] = x[..., 0]
    assert torch.allclose(m(x), m(y), atol=1e-5)
    z = x.clone()
    z[~masked] += 0.5 * torch.randn_like(z[~masked])
    z[..., 0] = x[..., 0]
    assert not torch.allclose(m(x), m(z), atol=1e-3)


def test_sampler_tasks_and_seed_determinism(data):
    train = data.split_windows("train")
    e1 = EpisodeSampler(data, train, CFG, seed=5).sample(4)
    e2 = EpisodeSampler(data, train, CFG, seed=5).sample(4)
    e3 = EpisodeSampler(data, train, CFG, seed=6).sample(4)
    assert np.array_equal(e1.support, e2.support) and np.array_equal(e1.query, e2.query)
    assert not np.array_equal(e1.support, e3.support)
    for t in range(4):
        assert len(set(e1.classes[t])) == CFG.n_way
        assert np.array_equal(data.win_label[e1.support[t]], e1.classes[t][e1.support_y[t]])
        assert np.array_equal(data.win_label[e1.query[t]], e1.classes[t][e1.query_y[t]])
        assert not set(e1.support[t]) & set(e1.query[t])
    assert set(np.unique(data.win_split[e1.support])) == {"train"}


def test_subject_independent_splits(data, disfa):
    train, test = data.split_windows("train"), data.split_windows("test")
    assert not set(data.win_subject[train]) & set(data.win_subject[test])
    bad = disfa.copy()
    bad.loc[bad.index[:5], "split"] = "test"  # SN000 now in both
    with pytest.raises(InputError, match="SN000.*several splits"):
        FrameData.build(bad, CFG)


def test_wflw_rows_are_length_one_sequences():
    d = FrameData.build(fx.wflw_like(n_faces=200), CFG)
    assert ((d.win_idx >= 0).sum(1) == 1).all()
    assert len(d.win_label) == d.n_views <= 200
    assert d.prep.n_points == 98


def test_any_landmark_count_and_extra_modalities():
    df = fx.disfa_like(n_subjects=4, n_frames=60, k=20, text_dims=3, seed=2)
    d = FrameData.build(df, CFG)
    assert d.prep.n_points == 20 and d.prep.graph_source == "k-means"
    assert d.prep.layout.extra == 3
    assert d.prep.modality_columns == ["emb_text_0", "emb_text_1", "emb_text_2"]
    m = build_model(d.prep.layout, d.prep.adjacency, CFG)
    assert m(torch.as_tensor(d.gather(np.arange(4)))).shape == (4, CFG.n_way)
    # the same preprocessing, restored from JSON, transforms new data identically
    p2 = prep_from_json(prep_to_json(d.prep))
    d2 = FrameData.build(df, CFG, prep=p2)
    assert np.array_equal(d.table, d2.table)
    with pytest.raises(InputError, match="emb_text_0"):
        FrameData.build(df.drop(columns=["emb_text_0"]), CFG, prep=p2)


def test_user_errors_are_one_line(disfa):
    with pytest.raises(InputError, match="y_3"):
        FrameData.build(disfa.drop(columns=["y_3"]), CFG)
    with pytest.raises(InputError, match="split"):
        FrameData.build(disfa.drop(columns=["split"]), CFG)
    with pytest.raises(InputError, match="only .* class"):
        d = FrameData.build(disfa, CFG)
        EpisodeSampler(d, d.split_windows("train"), CFG.replace(n_way=18))


def test_corruptions_change_inputs(disfa, data):
    occ = FrameData.build(disfa, CFG, prep=data.prep, corruption=Corruption("occlusion", 0.5, 1))
    sl = data.prep.layout.slices()
    nodes = occ.table[:-1, sl["nodes"]].reshape(len(occ.table) - 1, 8, -1)
    zero_regions = (np.abs(nodes).sum(2) == 0).sum(1)
    valid = data.table[:-1, 0] > 0
    assert 0.3 < (zero_regions[valid] >= 1).mean() < 0.7
    noisy = FrameData.build(disfa, CFG, prep=data.prep, corruption=Corruption("noise", 0.3, 1))
    assert not np.allclose(noisy.table, data.table)
    assert np.array_equal(noisy.win_idx, data.win_idx)
    fast = FrameData.build(disfa, CFG, prep=data.prep, corruption=Corruption("speed", 0.5, 1))
    assert not np.array_equal(fast.win_idx.shape, data.win_idx.shape) or \
        not np.array_equal(fast.win_idx, data.win_idx)
    with pytest.raises(InputError):
        Corruption("fog", 0.1)
