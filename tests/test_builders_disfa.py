"""DISFA-FER builder on small DISFA trees in the exact layout (tests/builder_fixtures.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from builder_fixtures import AUS, au_pattern, fast, make_disfa, write_mat  # noqa: E402

import builders.disfa as disfa  # noqa: E402
from builders._base import BuildError, SourceError  # noqa: E402
from builders.disfa import (  # noqa: E402
    AU_COLUMNS,
    DisfaBuilder,
    landmark_quality,
    parse_label_file,
)
from fuzzyemo._errors import InputError  # noqa: E402
from fuzzyemo._table import read_metadata  # noqa: E402
from fuzzyemo._vocab import COMPONENTS  # noqa: E402

N = 40  # frames per subject

DisfaBuilder = fast(DisfaBuilder)  # cached rule base, no plot (fast tests)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("disfa")
    written = make_disfa(root / "DISFA", n_frames=N, scrambled={"SN002": range(36, 38)})
    out = root / "out" / "disfa_fer.parquet"
    out.parent.mkdir()
    summary = DisfaBuilder(root / "DISFA", workers=1, plot=True).build(out)
    return written, out, summary, pd.read_parquet(out)


def test_rows_order_and_types(built):
    _, out, summary, df = built
    assert len(df) == 3 * N == summary.rows
    assert list(df["subject"].unique()) == ["SN001", "SN002", "SN031"]
    assert (df.groupby("subject")["frame"].apply(lambda f: list(f) == list(range(1, N + 1)))).all()
    schema = pq.read_schema(out)
    types = {f.name: str(f.type) for f in schema}
    assert types["frame"] == "int32" and types["timestamp"] == "double"
    assert types["valid"] == "bool" and types["subject"] == "string"
    assert all(types[c] == "int8" for c in AU_COLUMNS)
    assert types["x_0"] == "float" and types["y_65"] == "float" and "x_66" not in types
    assert all(types[c] == "double" for c in COMPONENTS)
    for col in ("label", "class_index", "happiness_low", "activation_fear",
                "eccentricity_anger", "mouth_code"):
        assert col in types
    np.testing.assert_allclose(df["timestamp"], (df["frame"] - 1) / 20.0)


def test_both_name_patterns_map_to_the_right_frame(built):
    written, _, _, df = built
    # SN001: SN001_NNNN_lm.mat in tmp_frame_lm; SN002: l0NNNN_lm.mat in frame_lm;
    # SN031: directly in the subject folder. All 0-based.
    for subject in ("SN001", "SN002", "SN031"):
        rows = df[(df["subject"] == subject) & df["valid"]]
        frame = int(rows["frame"].iloc[5])
        row = rows[rows["frame"] == frame].iloc[0]
        want = written["landmarks"][subject][frame - 1]
        got = np.stack([row[[f"x_{i}" for i in range(66)]].to_numpy(float),
                        row[[f"y_{i}" for i in range(66)]].to_numpy(float)], axis=1)
        np.testing.assert_allclose(got, want, atol=1e-3)


def test_au_ground_truth_and_splits(built):
    written, _, _, df = built
    for subject in ("SN001", "SN031"):
        got = df[df["subject"] == subject][list(AU_COLUMNS)].to_numpy(dtype=int)
        np.testing.assert_array_equal(got, written["au"][subject])
    folds = df.groupby("subject")["split"].first().to_dict()
    assert folds == {"SN001": "fold0", "SN002": "fold0", "SN031": "fold1"}


def test_missing_and_bad_frames_are_kept_marked_and_unlabelled(built):
    _, _, summary, df = built
    sn31 = df[df["subject"] == "SN031"].set_index("frame")
    assert not sn31.loc[20, "valid"] and sn31.loc[20, "invalid_reason"] == "missing"
    assert np.isnan(sn31.loc[20, "x_0"])
    for f in (30, 31, 32):
        assert not sn31.loc[f, "valid"] and sn31.loc[f, "invalid_reason"] == "degenerate"
    sn2 = df[df["subject"] == "SN002"].set_index("frame")
    assert (sn2.loc[[36, 37], "invalid_reason"] == "implausible shape").all()
    bad = df[~df["valid"]]
    assert len(bad) == 6
    assert (bad["label"] == "unknown").all() and (bad["class_index"] == -2).all()
    assert bad[list(COMPONENTS)].isna().all().all()
    good = df[df["valid"]]
    assert good["invalid_reason"].isna().all()
    assert np.isfinite(good[list(COMPONENTS)].to_numpy()).all()
    text = " ".join(map(str, summary.issues))
    assert "SN031: no landmarks for 1 frame(s): 20" in text
    assert "degenerate) in 3 frame(s): 30-32" in text


def test_measurements_follow_the_aus(built):
    _, _, _, df = built
    au = au_pattern(N)
    q = N // 5
    phase = np.tile(np.repeat(np.arange(5), q), 3)
    ok = df["valid"].to_numpy()
    mean = df[list(COMPONENTS)][ok].groupby(phase[ok]).mean()
    assert au[:q].sum() == 0
    # Per-subject baseline from all-AUs-0 frames: neutral frames measure ~0.
    assert mean.loc[0].abs().max() < 0.05
    assert mean.loc[1, "left_mouth_corner"] > 0.5 and mean.loc[1, "right_mouth_corner"] > 0.5
    assert mean.loc[2, "left_eyebrow"] > 0.5 and mean.loc[2, "mouth"] > 0.5
    assert mean.loc[3, "brow_crest"] > 0.3 and mean.loc[3, "left_mouth_corner"] < -0.3


def test_metadata_and_card(built):
    _, out, summary, df = built
    meta = read_metadata(out)
    assert meta["builder_version"] == disfa.VERSION and meta["dataset"] == "DISFA-FER"
    assert len(meta["rules_sha256"]) == 64
    assert meta["lambda_fcis"] == pytest.approx(0.4)
    assert set(meta["source_checksums"]) == {"SN001", "SN002", "SN031"}
    assert all(len(v["labels"]) == 64 for v in meta["source_checksums"].values())
    assert meta["command"] == "fuzzyemo build-dataset disfa --source $SOURCE -o disfa_fer.parquet"
    assert str(out.parent) not in str(meta)  # no absolute (tmp) paths
    assert "all 12 AUs at 0" in meta["baselines"]["SN001"]["source"]
    card = summary.card.read_text()
    assert summary.card.name == "dataset_card.md" and summary.card.parent == out.parent
    for needle in ("## How the labels were made", "fold0", "## Counts per class and split",
                   "non-commercial", "Mavadati", "SN031: no landmarks"):
        assert needle in card
    assert f"| unknown | {int((df['split'] == 'fold0').mul(df['label'] == 'unknown').sum())} |" \
        in card
    assert summary.plot is not None and summary.plot.read_bytes()[:4] == b"\x89PNG"


def test_readable_by_pyarrow_pandas_and_datasets(built):
    _, out, _, df = built
    t = pq.read_table(out)
    assert t.num_rows == len(df)
    assert str(t.schema.field("AU12_r").type) == "int8"
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert ds.num_rows == len(df) and ds[0]["subject"] == "SN001"


def test_deterministic_and_parallel_equals_serial(tmp_path):
    make_disfa(tmp_path / "DISFA", n_frames=20, missing={}, collapsed={})
    outs = []
    for i, workers in enumerate((1, 2)):
        d = tmp_path / f"o{i}"
        d.mkdir()
        DisfaBuilder(tmp_path / "DISFA", workers=workers).build(d / "x.parquet")
        outs.append(d / "x.parquet")
    assert hashlib.sha256(outs[0].read_bytes()).digest() == \
        hashlib.sha256(outs[1].read_bytes()).digest()
    assert not list(tmp_path.glob("o*/.x.parquet.parts"))  # parts removed after success


def test_doubled_landmark_folder_and_video_names(tmp_path):
    make_disfa(tmp_path, subjects=("SN003", "SN004"), n_frames=10, doubled=True, missing={},
               collapsed={})
    assert (tmp_path / "Landmark_Points/Landmark_Points/SN003/tmp_frame_lm").is_dir()
    b = DisfaBuilder(tmp_path, workers=1)
    df, prov = b.build_table()
    assert len(df) == 20 and df["valid"].all()
    vids = b.videos()
    assert vids["left"] == ["Videos_LeftCamera/LeftVideoSN003_comp.avi",
                            "Videos_LeftCamera/LeftVideoSN004_comp.avi"]
    assert "Video_RightCamera/RightVideoSN003_Comp.avi" in vids["right"]
    assert prov["folds"]["fold2"] == ["SN003", "SN004"]


def test_corrupt_mat_is_skipped_or_fails_under_strict(tmp_path):
    make_disfa(tmp_path / "DISFA", subjects=("SN001",), n_frames=12, missing={}, collapsed={},
               corrupt={"SN001": 5})
    (tmp_path / "o").mkdir()
    s = DisfaBuilder(tmp_path / "DISFA", workers=1).build(tmp_path / "o" / "a.parquet")
    df = pd.read_parquet(tmp_path / "o" / "a.parquet")
    assert df.loc[df["frame"] == 5, "invalid_reason"].item() == "unreadable"
    assert any("SN001_0004_lm.mat: cannot read .mat" in str(i) for i in s.issues)
    assert "SN001_0004_lm.mat" in s.card.read_text()
    with pytest.raises(BuildError, match=r"SN001_0004_lm\.mat: cannot read \.mat.*--strict"):
        DisfaBuilder(tmp_path / "DISFA", workers=1, strict=True).build(tmp_path / "o" / "b.parquet")
    assert not (tmp_path / "o" / "b.parquet").exists()


def test_truncated_label_file(tmp_path):
    make_disfa(tmp_path, subjects=("SN001",), n_frames=30, missing={}, collapsed={},
               truncated={"SN001": 12})
    df, _ = DisfaBuilder(tmp_path, workers=1).build_table()
    au12 = df["AU12_r"]
    assert au12.isna().any() and au12.iloc[:10].notna().all() and au12.iloc[-1] is pd.NA
    assert df["AU01_r"].notna().all() and len(df) == 30
    with pytest.raises(BuildError, match=r"SN001_au12\.txt:\d+: expected 'frame,intensity'"):
        DisfaBuilder(tmp_path, workers=1, strict=True).build_table()


def test_missing_source_names_expected_paths(tmp_path, monkeypatch):
    with pytest.raises(SourceError) as e:
        DisfaBuilder(tmp_path / "nowhere")
    assert "does not exist" in str(e.value) and "--source DIR" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError) as e:
        DisfaBuilder(tmp_path / "empty").build(tmp_path / "x.parquet")
    msg = str(e.value)
    assert "ActionUnit_Labels/SNxxx/SNxxx_au<N>.txt" in msg and "Landmark_Points" in msg
    assert "rerun with: fuzzyemo build-dataset disfa --source DIR -o OUT" in msg
    assert not (tmp_path / "x.parquet").exists()
    # Labels without landmarks: the subject's expected landmark path is named.
    make_disfa(tmp_path / "inc", subjects=("SN005",), n_frames=5, missing={}, collapsed={})
    import shutil

    shutil.rmtree(tmp_path / "inc" / "Landmark_Points" / "SN005")
    (tmp_path / "inc" / "Landmark_Points" / "SN006").mkdir()
    with pytest.raises(SourceError, match=r"SN005 is incomplete"):
        DisfaBuilder(tmp_path / "inc").build(tmp_path / "x.parquet")
    # FUZZYEMO_DATA_DIR/DISFA is found without --source.
    monkeypatch.delenv("FUZZYEMO_DATA_DIR", raising=False)
    with pytest.raises(SourceError, match="FUZZYEMO_DATA_DIR"):
        DisfaBuilder(None)
    make_disfa(tmp_path / "data" / "DISFA", subjects=("SN007",), n_frames=5, missing={},
               collapsed={})
    monkeypatch.setenv("FUZZYEMO_DATA_DIR", str(tmp_path / "data"))
    assert DisfaBuilder(None).source == tmp_path / "data" / "DISFA"


def test_interrupted_build_resumes_without_redoing_subjects(tmp_path, monkeypatch):
    make_disfa(tmp_path / "DISFA", n_frames=15, missing={}, collapsed={})
    out = tmp_path / "o" / "r.parquet"
    out.parent.mkdir()
    real = disfa.read_subject
    calls: list[str] = []

    def flaky(task):
        calls.append(task["subject"])
        if task["subject"] == "SN031":
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(disfa, "read_subject", flaky)
    with pytest.raises(KeyboardInterrupt):
        DisfaBuilder(tmp_path / "DISFA", workers=1).build(out)
    assert not out.exists()
    assert sorted(p.name for p in (out.parent / ".r.parquet.parts").iterdir()) == \
        ["SN001.npz", "SN002.npz"]
    calls.clear()
    monkeypatch.setattr(disfa, "read_subject", lambda t: (calls.append(t["subject"]), real(t))[1])
    s = DisfaBuilder(tmp_path / "DISFA", workers=1).build(out)
    assert calls == ["SN031"] and s.reused_parts == 2
    fresh = tmp_path / "f" / "r.parquet"
    fresh.parent.mkdir()
    DisfaBuilder(tmp_path / "DISFA", workers=1).build(fresh)
    assert out.read_bytes() == fresh.read_bytes()


def test_generate_examples_and_info(tmp_path):
    make_disfa(tmp_path, subjects=("SN001", "SN013"), n_frames=6, missing={}, collapsed={})
    b = DisfaBuilder(tmp_path, workers=1)
    info = b.info()
    assert info.schema.field("frame").type == "int32" and info.license and info.citation
    assert b.split_generators() == {"fold0": ["SN001"], "fold1": ["SN013"], "fold2": []}
    ex = list(b.generate_examples("fold1"))
    assert [k for k, _ in ex] == [f"SN013/{f:05d}" for f in range(1, 7)]
    assert ex[0][1]["subject"] == "SN013" and ex[0][1]["frame"] == 1
    assert [k for k, _ in b.generate_examples("fold1")] == [k for k, _ in ex]  # stable


def test_from_video(tmp_path):
    """--from-video: MediaPipe on the left-camera video (a short clip of a real face)."""
    make_disfa(tmp_path, subjects=("SN001",), n_frames=6, missing={}, collapsed={})
    if importlib.util.find_spec("mediapipe") is None or importlib.util.find_spec("cv2") is None:
        with pytest.raises(InputError, match=r"requires the \[video\] extra"):
            DisfaBuilder(tmp_path, from_video=True, workers=1).build(tmp_path / "v.parquet")
        return
    import cv2
    from matplotlib import cbook

    img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    video = tmp_path / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 20,
                        (img.shape[1], img.shape[0]))
    for _ in range(4):  # 4 video frames for 6 labelled frames: the last 2 are missing
        w.write(img)
    w.release()
    df, prov = DisfaBuilder(tmp_path, from_video=True, workers=1).build_table()
    assert prov["landmarks"].startswith("mediapipe478")
    assert df["valid"].tolist() == [True] * 4 + [False] * 2
    assert np.isfinite(df.loc[:3, list(COMPONENTS)].to_numpy()).all()
    assert df["x_0"].isna().all()  # 478 MediaPipe points do not fit DISFA's 66 columns


def test_label_parser_fast_and_slow_paths_agree():
    good = "".join(f"{f},{f % 6}\n" for f in range(1, 50)).encode()
    fr, val, issues = parse_label_file(good, "a.txt")
    assert issues == [] and fr.tolist() == list(range(1, 50)) and val[6] == 1
    bad = good + b"50,9\n51,x\n52,\n"
    fr2, val2, issues2 = parse_label_file(bad, "a.txt")
    assert fr2.tolist() == fr.tolist() and val2.tolist() == val.tolist()
    assert [i[0] for i in issues2] == ["a.txt:50", "a.txt:51", "a.txt:52"]


def test_landmark_quality_checks():
    from builder_fixtures import face

    lm = np.stack([face("disfa66", {}) for _ in range(8)])
    lm[1] = np.nan
    lm[2] = lm[2].mean(axis=0)
    lm[3] += 2000
    lm[4] = lm[4][::-1]
    present = np.ones(8, dtype=bool)
    present[5] = False
    reason = landmark_quality(lm, present)
    assert reason.tolist() == [0, 3, 4, 5, 6, 1, 0, 0]


def test_one_based_file_names_are_detected(tmp_path):
    make_disfa(tmp_path, subjects=("SN001",), n_frames=6, missing={}, collapsed={})
    d = tmp_path / "Landmark_Points" / "SN001" / "tmp_frame_lm"
    for f in sorted(d.iterdir(), reverse=True):  # shift names 0..5 -> 1..6
        i = int(f.name.split("_")[1])
        f.rename(d / f"SN001_{i + 1:04d}_lm.mat")
    df, prov = DisfaBuilder(tmp_path, workers=1).build_table()
    assert df["valid"].all() and prov["source_checksums"]["SN001"]["frame_index_base"] == 1


def _cli() -> typer.Typer:
    from fuzzyemo.cli import _build

    app = typer.Typer()
    app.add_typer(_build.build_app, name="build-dataset")
    app.add_typer(_build.report_app, name="report")
    return app


def test_cli(tmp_path):
    make_disfa(tmp_path / "DISFA", subjects=("SN001", "SN031"), n_frames=10, missing={},
               collapsed={}, corrupt={"SN031": 3})
    runner = CliRunner()
    out = tmp_path / "o.parquet"
    r = runner.invoke(_cli(), ["build-dataset", "disfa", "--source", str(tmp_path / "DISFA"),
                               "-o", str(out), "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert out.is_file() and "20 rows" in r.output and "1 source problem" in r.output
    assert "warning: 25 of DISFA's 27 subjects are not in the source (SN002, SN003" in r.output
    r = runner.invoke(_cli(), ["build-dataset", "disfa", "--source", str(tmp_path / "DISFA"),
                               "-o", str(tmp_path / "s.parquet"), "--workers", "1", "--strict"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "error: Landmark_Points/SN031/frame_lm/l00002_lm.mat: cannot read .mat" in r.output
    r = runner.invoke(_cli(), ["build-dataset", "disfa", "--source", str(tmp_path),
                               "-o", str(tmp_path / "e.parquet")])
    assert r.exit_code == 2 and r.output.count("expected:") == 2
    r = runner.invoke(_cli(), ["build-dataset", "disfa", "--source", str(tmp_path / "DISFA"),
                               "-o", str(tmp_path / "nodir" / "e.parquet")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_write_mat_helper_roundtrip(tmp_path):
    pts = np.arange(132, dtype=float).reshape(66, 2)
    write_mat(tmp_path / "a.mat", pts)
    np.testing.assert_array_equal(disfa.read_mat_points((tmp_path / "a.mat").read_bytes()), pts)
    write_mat(tmp_path / "b.mat", pts.T)  # a transposed export still reads
    np.testing.assert_array_equal(disfa.read_mat_points((tmp_path / "b.mat").read_bytes()), pts)
    with pytest.raises(ValueError, match="shape"):
        write_mat(tmp_path / "c.mat", pts[:10])
        disfa.read_mat_points((tmp_path / "c.mat").read_bytes())
    assert len(AUS) == 12


@pytest.mark.parametrize("compress", [False, True])
def test_fast_mat_reader_agrees_with_loadmat(compress):
    """The lean MAT v5 reader gives loadmat's values (compressed or not, any numeric storage
    type, other variables around); what it cannot parse goes to loadmat."""
    import io

    from scipy.io import loadmat, savemat

    rng = np.random.default_rng(4)
    reader = disfa.MatReader()  # reuses a layout across files: must notice when it changes
    for arr in (rng.random((66, 2)) * 900, rng.random((66, 2)) * 900,
                np.arange(132, dtype=np.int16).reshape(66, 2), rng.random((66, 2)) * 900,
                (rng.random((66, 2)) * 900).astype(np.float32), np.round(rng.random((66, 2))),
                rng.random((2, 66)) * 900):
        buf = io.BytesIO()
        savemat(buf, {"a": np.ones(3), "pts": arr, "z": "text"}, do_compression=compress)
        data = buf.getvalue()
        fast = disfa._fast_mat_variable(data, b"pts")
        assert fast is not None
        np.testing.assert_array_equal(fast, loadmat(io.BytesIO(data))["pts"].astype(float))
        want = arr.astype(float).T if arr.shape == (2, 66) else arr.astype(float)
        np.testing.assert_array_equal(disfa.read_mat_points(data), want)
        np.testing.assert_array_equal(reader.read(data), want)
        buf = io.BytesIO()
        savemat(buf, {"pts": arr}, do_compression=not compress)  # another layout in between
        np.testing.assert_array_equal(reader.read(buf.getvalue()), want)
    buf = io.BytesIO()
    savemat(buf, {"pts": rng.random((66, 2)) + 1j}, do_compression=compress)
    assert disfa._fast_mat_variable(buf.getvalue(), b"pts") is None  # complex: loadmat's job
    buf = io.BytesIO()
    savemat(buf, {"other": np.ones((66, 2))}, do_compression=compress)
    with pytest.raises(ValueError, match="no variable 'pts'"):
        disfa.read_mat_points(buf.getvalue())

