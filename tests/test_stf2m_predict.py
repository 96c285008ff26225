"""Predictions on new tables (Python and CLI), few-shot support tables and export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

import stf2m_fixtures as fx  # noqa: E402

from fuzzyemo import COMPONENTS  # noqa: E402
from fuzzyemo.cli import app  # noqa: E402
from stf2m_model import Predictor  # noqa: E402
from stf2m_model.config import Config  # noqa: E402
from stf2m_model.train import train  # noqa: E402

torch.set_num_threads(1)
runner = CliRunner()
WORLD = dict(n_frames=500, seed=0)  # one landmark "physics" for training and new subjects
CFG = Config(window=8, stride=4, n_way=5, k_shot=3, q_query=3, hidden=16, steps=60,
             beta=3e-3, method="protonet", log_every=30)


@pytest.fixture(scope="module")
def world():
    big = fx.disfa_like(n_subjects=15, **WORLD)
    held_out = ["SN012", "SN013", "SN014"]
    train_df = big[~big["subject"].isin(held_out)].reset_index(drop=True)
    new = big[big["subject"].isin(held_out)].reset_index(drop=True)
    return train_df, new


@pytest.fixture(scope="module")
def run(world, tmp_path_factory):
    df = world[0]
    tmp = tmp_path_factory.mktemp("pred")
    path = fx.write(df, tmp / "train.parquet")
    train(path, tmp / "run", CFG, frame=df)
    return tmp / "run"


def _annotate_like(df: pd.DataFrame) -> pd.DataFrame:
    """What `fuzzyemo annotate` writes: source/face_id tracks, success, no split/labels."""
    out = df.drop(columns=["split", "valid", "label", "class_index", "subject"])
    out.insert(0, "source", df["subject"] + ".mp4")
    out.insert(2, "face_id", 0)
    out["success"] = df["valid"].astype(int)
    return out


def test_python_predict_labels_new_subjects(run, world):
    new = world[1]
    predictor = Predictor.load(run)
    assert "neutral" in predictor.class_names and len(predictor.class_names) >= 10
    out = predictor.predict(_annotate_like(new))
    assert len(out) == len(new)
    assert list(out["frame"]) == list(new["frame"])  # input order kept
    face = out["pred_class_index"] > -2
    assert (face == new["valid"]).all()             # every face frame is labelled
    assert (out.loc[~face, "pred_label"] == "unknown").all()
    probs = out.loc[face, [f"prob_{c}" for c in predictor.class_names]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.isnan(out.loc[~face, "pred_confidence"]).all()
    # held-out subjects: far above chance over the support's classes
    hit = (out.loc[face, "pred_label"] == new.loc[face, "label"]).mean()
    assert hit > 3.0 / len(predictor.class_names), hit


def test_predictions_do_not_depend_on_batching_or_table_order(run, world):
    new = _annotate_like(world[1]).iloc[:400]
    predictor = Predictor.load(run)
    a = predictor.predict(new, batch_size=512)
    b = predictor.predict(new, batch_size=7)
    shuffled = new.sample(frac=1.0, random_state=0)
    c = predictor.predict(shuffled).set_index(shuffled.index).sort_index()
    cols = [k for k in a.columns if k.startswith("prob_")]
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(a[cols].to_numpy(), c[cols].to_numpy(), atol=1e-6)


def test_few_shot_adaptation_from_a_labelled_support_table(run, world):
    support = world[0]
    three = support[support["label"].isin(["anger_high", "fear_medium", "sadness_low"])]
    predictor = Predictor.load(run, support=three)
    assert predictor.class_names == ["anger_high", "sadness_low", "fear_medium"]
    out = predictor.predict(world[1].iloc[:300])
    assert set(out["pred_label"]) <= {"anger_high", "sadness_low", "fear_medium", "unknown"}
    with pytest.raises(Exception, match="class"):
        Predictor.load(run, support=support[support["label"] == "anger_high"])


def test_another_landmark_scheme_is_read_through_named_points(run):
    mp = fx.disfa_like(n_subjects=2, n_frames=40, seed=5, k=478)
    out = Predictor.load(run).predict(_annotate_like(mp))
    assert (out["pred_class_index"] > -2).sum() == mp["valid"].sum()


def test_export_gives_the_same_outputs(run, world, tmp_path):
    predictor = Predictor.load(run)
    path = predictor.export(tmp_path / "model.pt")
    files = {"classes.json": "", "layout.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=files)
    assert json.loads(files["classes.json"]) == predictor.class_names
    assert json.loads(files["layout.json"])["window"] == CFG.window
    from stf2m_model.data import FrameData

    data = FrameData.build(world[1], predictor.config, prep=predictor.prep, labelled=False)
    x = torch.as_tensor(data.gather(np.arange(37)))  # a batch size the trace never saw
    with torch.no_grad():
        assert torch.allclose(loaded(x), predictor.deployed(x), atol=1e-6)
    # torch.export, the format torch recommends from 2.x on, with a dynamic batch size
    program = torch.export.load(str(predictor.export(tmp_path / "model.pt2"))).module()
    with torch.no_grad():
        assert torch.allclose(program(x), predictor.deployed(x), atol=1e-6)
        assert torch.allclose(program(x[:3]), predictor.deployed(x[:3]), atol=1e-6)
    sidecar = json.loads((tmp_path / "model.json").read_text())
    assert sidecar["classes"] == predictor.class_names


def test_cli_predict_writes_a_deterministic_table_and_exports(run, world, tmp_path):
    table = fx.write(_annotate_like(world[1]).iloc[:300], tmp_path / "annot.parquet")
    outs = []
    for name in ("a.parquet", "b.parquet"):
        res = runner.invoke(app, ["predict", str(run), str(table), "-o", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        assert "labelled" in res.output
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]  # byte-identical
    got = pd.read_parquet(tmp_path / "a.parquet")
    assert {"source", "frame", "face_id", "pred_label", "pred_confidence"} <= set(got.columns)
    csv = runner.invoke(app, ["predict", str(run), str(table), "-o", str(tmp_path / "c.csv")])
    assert csv.exit_code == 0 and (tmp_path / "c.csv").read_text().startswith("source,")
    sup = fx.write(world[0], tmp_path / "sup.parquet")
    res = runner.invoke(app, ["predict", str(run), str(table), "-o", str(tmp_path / "d.parquet"),
                              "--support", str(sup)])
    assert res.exit_code == 0 and "sup.parquet" in res.output, res.output
    res = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "m.pt")])
    assert res.exit_code == 0 and (tmp_path / "m.pt").is_file(), res.output


def test_cli_predict_bad_inputs_are_one_line(run, tmp_path):
    cases = [
        (["predict", str(run), str(tmp_path / "none.parquet"), "-o", str(tmp_path / "o.parquet")],
         "not found"),
        (["predict", str(run), str(tmp_path / "x.parquet"), "-o", str(tmp_path / "o.txt")],
         ".parquet or .csv"),
        (["predict", str(tmp_path), str(tmp_path / "x.parquet"), "-o",
          str(tmp_path / "o.parquet")], "not a run directory"),
        (["predict", str(run), str(tmp_path / "x.parquet"), "-o", str(tmp_path / "o.parquet"),
          "--device", "gpu"], "is not a device"),
    ]
    bad = pd.DataFrame({"frame": [1, 2], **{c: [0.0, 0.1] for c in COMPONENTS}})
    fx.write(bad, tmp_path / "x.parquet")
    cases.append((["predict", str(run), str(tmp_path / "x.parquet"), "-o",
                   str(tmp_path / "o.parquet")], "no landmark columns"))
    for args, needle in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output and res.output.count("\n") == 1, res.output
        assert "Traceback" not in res.output


def test_real_annotate_output(run, tmp_path):
    """`fuzzyemo annotate` on a short clip (MediaPipe's 478 points, success flags, no split
    or labels): every face frame gets a label, the blank frames are unknown."""
    pytest.importorskip("mediapipe")
    cv2 = pytest.importorskip("cv2")
    skimage_data = pytest.importorskip("skimage.data")
    from fuzzyemo._annotate import annotate

    face = cv2.resize(cv2.cvtColor(skimage_data.astronaut()[:300, 100:400],
                                   cv2.COLOR_RGB2BGR), (256, 256))
    frames = [face] * 4 + [np.zeros_like(face)] * 2 + [face] * 3
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (256, 256))
    for frame in frames:
        writer.write(frame)
    writer.release()
    table = annotate([video], baseline="population", progress=False)
    assert "split" not in table.columns and (table["success"] == 0).sum() == 2
    out = Predictor.load(run).predict(table)
    assert len(out) == len(table) and list(out["frame"]) == list(table["frame"])
    assert ((out["pred_class_index"] > -2) == (table["success"] == 1)).all()
    assert (out.loc[table["success"] == 0, "pred_label"] == "unknown").all()
