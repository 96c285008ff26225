"""WFLW-FER builder on small WFLW trees in the exact layout (tests/builder_fixtures.py)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from builder_fixtures import fast, make_wflw  # noqa: E402

from builders._base import BuildError, SourceError  # noqa: E402
from builders.wflw import FLAGS, VERSION, WflwBuilder, crop_transform, parse_annotations  # noqa: E402
from fuzzyemo._table import read_metadata  # noqa: E402
from fuzzyemo._vocab import COMPONENTS  # noqa: E402

ANN = "WFLW_annotations/list_98pt_rect_attr_train_test"

WflwBuilder = fast(WflwBuilder)  # cached rule base, no plot (fast tests)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("wflw")
    written = make_wflw(root / "WFLW", n_train=12, n_test=6)
    out = root / "out" / "wflw_fer.parquet"
    out.parent.mkdir()
    summary = WflwBuilder(root / "WFLW", workers=1, plot=True).build(out)
    return root, written, out, summary, pd.read_parquet(out)


def test_rows_sorted_and_typed(built):
    _, _, out, summary, df = built
    assert len(df) == 18 == summary.rows
    key = list(zip(df["split"], df["image"], df["face_id"], strict=True))
    assert key == sorted(key) and len(set(key)) == len(key)
    assert df["split"].value_counts().to_dict() == {"train": 12, "test": 6}
    types = {f.name: str(f.type) for f in pq.read_schema(out)}
    assert all(types[f] == "int8" for f in FLAGS)
    assert types["x_97"] == "float" and "x_98" not in types and types["face_id"] == "int32"
    assert all(types[c] == "double" for c in COMPONENTS)
    assert {"label", "class_index", "surprise_high", "nose_code"} <= set(types)


def test_multi_face_image_and_values(built):
    _, written, _, _, df = built
    group = df[(df["image"] == "0--Parade/train_group.jpg")]
    assert group["face_id"].tolist() == [0, 1]
    for face_id in (0, 1):
        want = written["faces"]["train"][face_id]
        row = group[group["face_id"] == face_id].iloc[0]
        got = np.stack([row[[f"x_{i}" for i in range(98)]].to_numpy(float),
                        row[[f"y_{i}" for i in range(98)]].to_numpy(float)], axis=1)
        np.testing.assert_allclose(got, want["pts"], atol=1e-4)
        assert row[["x_min", "y_min", "x_max", "y_max"]].tolist() == want["box"]
        assert row[list(FLAGS)].tolist() == want["flags"]


def test_malformed_lines_are_reported_with_file_and_line(built):
    _, _, _, summary, _ = built
    text = [str(i) for i in summary.issues]
    assert f"{ANN}/list_98pt_rect_attr_train.txt:4: expected 207 tokens " \
           "(196 coordinates, 4 box, 6 flags, image path), got 206" in text
    assert f"{ANN}/list_98pt_rect_attr_test.txt:7: not a number: '12.3.4'" in text
    assert len(text) == 4
    assert "list_98pt_rect_attr_test.txt:7" in summary.card.read_text()


def test_population_baseline_and_expression(built):
    _, _, out, _, df = built
    neutral = df[(df["expression"] == 0) & (df["split"] == "train")]
    smiling = df[df["expression"] == 1]
    assert neutral[list(COMPONENTS)].median().abs().max() < 0.05
    assert smiling["left_mouth_corner"].mean() > 0.5
    assert smiling["right_mouth_corner"].mean() > 0.5
    meta = read_metadata(out)
    assert "training faces without the expression flag" in meta["baseline"]["source"]
    assert meta["builder_version"] == VERSION and meta["dataset"] == "WFLW-FER"
    root = out.parent.parent / "WFLW"
    for split in ("train", "test"):
        rel = f"{ANN}/list_98pt_rect_attr_{split}.txt"
        assert meta["source_checksums"][rel] == hashlib.sha256((root / rel).read_bytes()).hexdigest()
    assert meta["command"] == "fuzzyemo build-dataset wflw --source $SOURCE -o wflw_fer.parquet"


def test_deterministic(built, tmp_path):
    root, _, out, _, _ = built
    again = tmp_path / "wflw_fer.parquet"
    WflwBuilder(root / "WFLW", workers=2).build(again)
    assert again.read_bytes() == out.read_bytes()


def test_strict_fails_on_a_malformed_line(built, tmp_path):
    root = built[0]
    with pytest.raises(BuildError, match=r"list_98pt_rect_attr_test\.txt:4: expected 207"):
        WflwBuilder(root / "WFLW", strict=True).build(tmp_path / "s.parquet")
    assert not (tmp_path / "s.parquet").exists()


def test_missing_source(tmp_path):
    (tmp_path / "WFLW" / ANN).mkdir(parents=True)
    (tmp_path / "WFLW" / ANN / "list_98pt_rect_attr_train.txt").write_text("")
    with pytest.raises(SourceError) as e:
        WflwBuilder(tmp_path / "WFLW").build(tmp_path / "x.parquet")
    msg = str(e.value)
    assert f"expected: {tmp_path / 'WFLW' / ANN / 'list_98pt_rect_attr_test.txt'}" in msg
    assert "train.txt" not in msg and "fuzzyemo build-dataset wflw --source DIR" in msg


def test_empty_annotations_never_give_an_empty_dataset(tmp_path):
    for split in ("train", "test"):
        p = tmp_path / ANN / f"list_98pt_rect_attr_{split}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("1 2 3\n")
    with pytest.raises(BuildError, match="refusing to write an empty dataset"):
        WflwBuilder(tmp_path).build(tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_parser_face_ids_follow_file_order():
    line = " ".join(["1.0"] * 196 + ["0", "0", "5", "5", "0", "1", "0", "0", "0", "0"])
    data = "\n".join(f"{line} {img}" for img in ("b.jpg", "a.jpg", "b.jpg", "b.jpg")).encode()
    arrays, issues = parse_annotations(data, "f.txt", "train")
    assert issues == [] and arrays["face_id"].tolist() == [0, 0, 1, 2]
    assert arrays["flags"][:, 1].tolist() == [1] * 4 and arrays["lm"].shape == (4, 98, 2)
    bad = data.replace(b" 0 1 0 0 0 0 a.jpg", b" 0 7 0 0 0 0 a.jpg")
    arrays, issues = parse_annotations(bad, "f.txt", "train")
    assert [i[0] for i in issues] == ["f.txt:2"] and arrays["face_id"].tolist() == [0, 1, 2]


def test_crops(tmp_path):
    pytest.importorskip("PIL")
    make_wflw(tmp_path / "WFLW", n_train=5, n_test=3, images=True, bad_image=True,
              malformed=False)
    crops = tmp_path / "crops"
    s = WflwBuilder(tmp_path / "WFLW", crops=crops, workers=1).build(tmp_path / "w.parquet")
    index = pd.read_csv(crops / "crops.csv")
    from PIL import Image

    assert len(index) == s.rows - 2  # one unreadable image per split: no crop for its face
    for name in index["crop"]:
        with Image.open(crops / name) as im:
            assert im.size == (224, 224)
    assert any("cannot read image" in str(i) and i.path.startswith("WFLW_images/")
               for i in s.issues)
    with pytest.raises(BuildError, match="cannot read image"):
        WflwBuilder(tmp_path / "WFLW", crops=tmp_path / "c2", strict=True).build(
            tmp_path / "w2.parquet")


def test_crop_transform_puts_the_eyes_on_the_template():
    from builder_fixtures import face

    lm = np.stack([face("wflw98", {}, scale=50, centre=(300, 200), roll=0.3)])
    a, b, c, d, e, f = crop_transform(lm, size=224)[0]
    for crop_xy, idx in (((0.35 * 224, 0.40 * 224), slice(60, 68)),
                         ((0.65 * 224, 0.40 * 224), slice(68, 76))):
        x, y = crop_xy
        np.testing.assert_allclose([a * x + b * y + c, d * x + e * y + f],
                                   lm[0, idx].mean(axis=0), atol=1e-9)


def test_cli(built, tmp_path):
    from fuzzyemo.cli import _build

    app = typer.Typer()
    app.add_typer(_build.build_app, name="build-dataset")
    root = built[0]
    r = CliRunner().invoke(app, ["build-dataset", "wflw", "--source", str(root / "WFLW"),
                                 "-o", str(tmp_path / "w.parquet"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "18 rows" in r.output and "4 source problem(s)" in r.output
    r = CliRunner().invoke(app, ["build-dataset", "wflw", "--source", str(root / "WFLW"),
                                 "-o", str(tmp_path / "s.parquet"), "--strict"])
    assert r.exit_code == 2 and r.output.strip().startswith("error: WFLW_annotations/")
