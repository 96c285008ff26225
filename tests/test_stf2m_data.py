"""stf2m_model data: views, masking, windows, the honest protocol, episodes, modalities."""

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
from stf2m_model.data import (  # noqa: E402
    POS_DIM,
    Corruption,
    EpisodeSampler,
    FrameData,
    class_partition,
    prep_from_json,
    prep_to_json,
    sampling_units,
)
from stf2m_model.fuzzy import rules_dict  # noqa: E402
from stf2m_model.model import build_model  # noqa: E402

CFG = Config(window=8, stride=4, n_way=5, k_shot=2, q_query=3, hidden=8)


@pytest.fixture(scope="module")
def disfa() -> pd.DataFrame:
    return fx.disfa_like(n_subjects=12, n_frames=500, seed=1)


@pytest.fixture(scope="module")
def data(disfa) -> FrameData:
    return FrameData.build(disfa, CFG)


def _tiny(labels: list[str], frames=None, subject="S1") -> pd.DataFrame:
    """A hand-made one-subject table with the given label sequence."""
    base = fx.disfa_like(n_subjects=2, n_frames=len(labels), seed=3,
                         unknown_rate=0).iloc[: len(labels)].copy()
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


def test_views_bridge_short_unknown_gaps_and_never_label_unknown():
    a, b = "anger_high", "happiness_low"
    labels = [a, a, "unknown", a, a, "neutral", a, b, b, "unknown", "unknown", "unknown", b]
    d = FrameData.build(_tiny(labels), CFG.replace(window=16, max_gap=2))
    train = d.split_windows("train")
    got = [(CLASS_NAMES[lab] if lab >= 0 else "neutral", [int(i) for i in row if i >= 0])
           for lab, row in zip(d.win_label[train], d.win_idx[train], strict=True)]
    # the unknown frame 2 is inside the first view but masked; neutral is a view of its own
    # (a support class for prediction, never a training label); the run of three
    # unknowns (> max_gap) ends the b view.
    assert got == [(a, [0, 1, 2, 3, 4]), ("neutral", [5]), (a, [6]), (b, [7, 8]), (b, [12])]
    assert d.table[2, 0] == 0 and d.table[[0, 1, 3, 4], 0].min() == 1
    units = sampling_units(d, train, "view")
    assert set(units) <= set(range(18))  # neutral never becomes an episode class


def test_frame_gaps_end_views():
    a = "anger_high"
    d = FrameData.build(_tiny([a] * 6, frames=[1, 2, 3, 7, 8, 9]), CFG.replace(window=16))
    lens = (d.win_idx[d.split_windows("train")] >= 0).sum(1)
    assert sorted(lens.tolist()) == [3, 3]


def test_windows_cover_long_views_with_fixed_length(data):
    assert data.win_idx.shape[1] == CFG.window
    lengths = (data.win_idx >= 0).sum(1)
    assert lengths.min() >= 1 and lengths.max() == CFG.window
    assert data.n_views > 100


def test_layout_named_points_components_no_positions(data):
    lay = data.prep.layout
    assert data.prep.landmarks == "named" and data.prep.scheme == "disfa66"
    assert lay.points == 2 * len(data.prep.point_names) and len(data.prep.point_names) >= 20
    assert lay.comps == 12 and lay.pos == 0 and lay.fuzzy == 0  # F(Z) reads no fuzzy input
    s = EpisodeSampler(data, data.split_windows("train"), CFG, seed=0)
    ep = s.sample(3)
    x = data.gather(ep.support)
    assert x.shape == (3, CFG.n_way * CFG.k_shot, CFG.window, lay.width)
    m = build_model(lay, CFG, rules_dict(), data.prep)
    assert m(torch.as_tensor(x[0])).shape == (CFG.n_way * CFG.k_shot, 1)  # one shared row
    assert m(torch.as_tensor(x[0]), embed_only=True).shape[1] == m.dim


def test_positions_are_a_switch(disfa):
    on = FrameData.build(disfa, CFG.replace(positions=True))
    off = FrameData.build(disfa, CFG)
    assert on.prep.layout.pos == POS_DIM and off.prep.layout.pos == 0
    shifted = disfa.assign(frame=disfa["frame"] + 1000)
    # with positions off nothing in the input depends on where a frame sits in its video
    assert np.array_equal(FrameData.build(shifted, CFG).table, off.table)
    assert not np.array_equal(FrameData.build(shifted, CFG.replace(positions=True)).table,
                              on.table)


def test_support_and_query_never_share_frames(data):
    for unit in ("view", "window"):
        s = EpisodeSampler(data, data.split_windows("train"), CFG, unit=unit, seed=2)
        ep = s.sample(40)
        for t in range(40):
            sup = set(data.win_idx[ep.support[t]].ravel()) - {-1}
            qry = set(data.win_idx[ep.query[t]].ravel()) - {-1}
            assert not sup & qry, unit
            # and no two support (or query) windows share a frame either
            rows = data.win_idx[np.r_[ep.support[t], ep.query[t]]]
            flat = rows[rows >= 0]
            assert len(flat) == len(set(flat.tolist())), unit


def test_meta_train_and_meta_test_classes_are_disjoint_by_default(data):
    part = class_partition(data, CFG)
    assert part["class_split"] == "disjoint"
    assert not set(part["train"]) & set(part["test"])
    assert len(part["train"]) >= CFG.n_way and len(part["test"]) >= CFG.n_way
    train = EpisodeSampler(data, data.split_windows("train"), CFG, part["train"], part["unit"])
    test = EpisodeSampler(data, data.split_windows("test"), CFG, part["test"], part["unit"])
    assert set(train.sample(20).classes.ravel()) <= set(part["train"])
    assert set(test.sample(20).classes.ravel()) <= set(part["test"])
    # the draw is fixed by class_split_seed, not by the model seed
    assert class_partition(data, CFG.replace(seed=5)) == part
    assert class_partition(data, CFG.replace(class_split_seed=1))["test"] != part["test"]
    shared = class_partition(data, CFG.replace(class_split="shared"))
    assert set(shared["train"]) & set(shared["test"])
    fixed = [CLASS_NAMES[c] for c in shared["test"][-5:]]
    got = class_partition(data, CFG.replace(test_classes=fixed))
    assert [CLASS_NAMES[c] for c in got["test"]] == fixed
    assert not set(got["train"]) & set(got["test"])
    with pytest.raises(InputError, match="test_classes: happiness_low has fewer"):
        class_partition(data, CFG.replace(test_classes=["happiness_low"], k_shot=40))


def test_too_few_classes_is_one_line_naming_the_fix():
    few = fx.disfa_like(n_subjects=6, n_frames=300, seed=1, prototypes="table2")
    d = FrameData.build(few, CFG)
    with pytest.raises(InputError) as exc:
        class_partition(d, CFG.replace(n_way=6))
    msg = str(exc.value)
    assert "\n" not in msg and "class-disjoint" in msg
    assert "lower n_way" in msg and "class_split: shared" in msg


def test_subject_independent_splits(data, disfa):
    train, test = data.split_windows("train"), data.split_windows("test")
    assert not set(data.win_subject[train]) & set(data.win_subject[test])
    bad = disfa.copy()
    bad.loc[bad.index[:5], "split"] = "test"  # SN000 now in both
    with pytest.raises(InputError, match="SN000.*several splits"):
        FrameData.build(bad, CFG)


def test_masked_frames_do_not_change_the_output(data):
    torch.manual_seed(0)
    m = build_model(data.prep.layout, CFG, rules_dict(), data.prep)
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


def test_sampler_seed_determinism(data):
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
    assert set(np.unique(data.win_split[e1.support])) == {"train"}


def test_wflw_rows_are_length_one_sequences():
    d = FrameData.build(fx.wflw_like(n_faces=300), CFG)
    assert ((d.win_idx >= 0).sum(1) == 1).all()
    assert len(d.win_label) == d.n_views <= 300
    assert d.prep.scheme == "wflw98"


def test_named_points_let_one_scheme_read_another(data):
    """A model fitted on 66-point DISFA tables reads 98-point and 478-point tables."""
    for k in (98, 478):
        other = fx.disfa_like(n_subjects=2, n_frames=40, seed=3, k=k).drop(columns=["split"])
        d = FrameData.build(other, CFG, prep=data.prep, labelled=False)
        assert d.prep.layout == data.prep.layout and d.table.shape[1] == data.table.shape[1]
        assert (d.table[:-1, 0] > 0).mean() > 0.9


def test_raw_landmarks_any_count_and_extra_modalities():
    df = fx.disfa_like(n_subjects=4, n_frames=60, k=20, text_dims=3, seed=2)
    d = FrameData.build(df, CFG)
    assert d.prep.landmarks == "raw" and d.prep.graph_source == "k-means"
    assert d.prep.layout.extra == 3
    assert d.prep.modality_columns == ["emb_text_0", "emb_text_1", "emb_text_2"]
    m = build_model(d.prep.layout, CFG.replace(spatial="regions"), rules_dict(), d.prep)
    assert m(torch.as_tensor(d.gather(np.arange(4)))).shape == (4, 1)
    # the same preprocessing, restored from JSON, transforms new data identically
    p2 = prep_from_json(prep_to_json(d.prep))
    d2 = FrameData.build(df, CFG, prep=p2)
    assert np.array_equal(d.table, d2.table)
    with pytest.raises(InputError, match="emb_text_0"):
        FrameData.build(df.drop(columns=["emb_text_0"]), CFG, prep=p2)
    with pytest.raises(InputError, match="30 landmarks per frame .* trained on 20"):
        FrameData.build(fx.disfa_like(n_subjects=4, n_frames=20, k=30, seed=2), CFG, prep=p2)


def test_components_only_and_landmarks_only_inputs(disfa):
    comps_only = FrameData.build(disfa, CFG.replace(landmarks="none"))
    assert comps_only.prep.layout.points == 0 and comps_only.prep.layout.comps == 12
    lm_only = FrameData.build(disfa, CFG.replace(use_components=False, fuzzy="none"))
    assert lm_only.prep.layout.comps == 0 and lm_only.prep.layout.fuzzy == 0
    with pytest.raises(InputError, match="no input"):
        FrameData.build(disfa, CFG.replace(landmarks="none", use_components=False))


def test_user_errors_are_one_line(disfa):
    with pytest.raises(InputError, match="y_3"):
        FrameData.build(disfa.drop(columns=["y_3"]), CFG)
    with pytest.raises(InputError, match="split"):
        FrameData.build(disfa.drop(columns=["split"]), CFG)
    with pytest.raises(InputError, match="only .* class"):
        d = FrameData.build(disfa, CFG)
        EpisodeSampler(d, d.split_windows("train"), CFG.replace(n_way=19))
    with pytest.raises(InputError, match="single.*supervised"):
        Config(method="single")
    with pytest.raises(InputError, match="device must be"):
        Config(device="mps")


def test_corruptions_change_inputs(disfa, data):
    occ = FrameData.build(disfa, CFG, prep=data.prep, corruption=Corruption("occlusion", 0.5, 1))
    sl = data.prep.layout.slices()
    pts = occ.table[:-1, sl["points"]].reshape(len(occ.table) - 1, -1, 2)
    regions = data.prep.region_of_point
    hidden = np.stack([(np.abs(pts[:, regions == r]).sum((1, 2)) == 0)
                       for r in range(8) if (regions == r).any()], 1)
    valid = data.table[:-1, 0] > 0
    assert 0.3 < hidden[valid].any(1).mean() < 0.7
    noisy = FrameData.build(disfa, CFG, prep=data.prep, corruption=Corruption("noise", 0.3, 1))
    assert not np.allclose(noisy.table, data.table)
    assert np.array_equal(noisy.win_idx, data.win_idx)
    fast = FrameData.build(disfa, CFG, prep=data.prep, corruption=Corruption("speed", 0.5, 1))
    assert fast.win_idx.shape != data.win_idx.shape or \
        not np.array_equal(fast.win_idx, data.win_idx)
    with pytest.raises(InputError):
        Corruption("fog", 0.1)


def test_on_time_locked_data_the_frame_position_alone_predicts_the_label():
    """Why positions are off by default: when every subject shows the same sequence (as
    DISFA's subjects, who watched one stimulus video), the majority label of the training
    subjects at a frame number labels the test subjects' frames."""
    df = fx.disfa_like(n_subjects=9, n_frames=300, seed=2, time_locked=True)
    labelled = df[df["class_index"] >= 0]
    train = labelled[labelled["split"] == "train"]
    test = labelled[labelled["split"] == "test"]
    by_frame = train.groupby("frame")["class_index"].agg(lambda s: s.mode().iloc[0])
    guess = test["frame"].map(by_frame)
    assert (guess == test["class_index"]).mean() > 0.8
    # not so without time-locking: the same lookup is near chance
    free = fx.disfa_like(n_subjects=9, n_frames=300, seed=2)
    free = free[free["class_index"] >= 0]
    tr, te = free[free["split"] == "train"], free[free["split"] == "test"]
    guess = te["frame"].map(tr.groupby("frame")["class_index"].agg(lambda s: s.mode().iloc[0]))
    assert (guess == te["class_index"]).mean() < 0.3


def test_the_fuzzy_layer_follows_the_datasets_rule_profile(tmp_path):
    """F(Z) must be the rule engine that labelled the data: a dataset's recorded profile (or
    the shipped profile with its rules_sha256) is the run's rules; unknown rules warn."""
    import warnings

    from fuzzyemo import RuleBase
    from fuzzyemo._table import rulebase_metadata, write_table
    from stf2m_model.data import dataset_rules

    df = fx.disfa_like(n_subjects=2, n_frames=20, seed=1)
    paper = RuleBase.default("paper")
    write_table(df, tmp_path / "p.parquet", metadata=rulebase_metadata(paper))
    assert dataset_rules(tmp_path / "p.parquet") == "paper"
    meta = rulebase_metadata(paper)
    del meta["rules_profile"]  # e.g. built with --rules rules/paper (a path)
    write_table(df, tmp_path / "s.parquet", metadata=meta)
    assert dataset_rules(tmp_path / "s.parquet") == "paper"
    write_table(df, tmp_path / "n.parquet")
    assert dataset_rules(tmp_path / "n.parquet") is None  # no provenance: the default
    write_table(df, tmp_path / "c.parquet", metadata={**meta, "rules_sha256": "0" * 64})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert dataset_rules(tmp_path / "c.parquet") is None
    assert any("not a shipped profile" in str(w.message) for w in caught)
