"""The DISFA-FER validity report (fuzzyemo/_report.py) and `fuzzyemo report disfa-fer`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from builder_fixtures import fast, make_disfa  # noqa: E402

from builders.disfa import AU_COLUMNS, DisfaBuilder  # noqa: E402
from fuzzyemo._errors import InputError  # noqa: E402
from fuzzyemo._report import (  # noqa: E402
    AU_PAIRS,
    _spearman,
    prototype_of,
    render_text,
    save_figure,
    validity_report,
)

DisfaBuilder = fast(DisfaBuilder)  # cached rule base, no plot (fast tests)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    make_disfa(root / "DISFA", n_frames=40)
    out = root / "disfa_fer.parquet"
    DisfaBuilder(root / "DISFA", workers=1).build(out)
    return out


def test_correlations_follow_facs_on_faces_that_move_as_facs_says(table):
    rep = validity_report(table)
    c = rep.correlations.set_index(["component", "au"])
    assert len(c) == len(AU_PAIRS)
    for key in (("left_eyebrow", "AU01_r"), ("brow_crest", "AU04_r"),
                ("left_mouth_corner", "AU12_r"), ("right_mouth_corner", "AU15_r"),
                ("mouth", "AU26_r"), ("left_eye", "AU05_r")):
        row = c.loc[key]
        assert row["verdict"] == "ok", key
        assert row["subjects_expected_sign"] == 1.0
    assert c.loc[("nose", "AU09_r"), "verdict"] == "no data"  # AU9 never occurs here
    assert rep.n_frames == 120 and rep.n_valid == 116


def test_wrong_sign_is_reported(table, tmp_path):
    df = pd.read_parquet(table)
    df["left_eyebrow"] = -df["left_eyebrow"]  # a broken calibration
    bad = tmp_path / "bad.parquet"
    df.to_parquet(bad)
    rep = validity_report(bad)
    row = rep.correlations.set_index(["component", "au"]).loc[("left_eyebrow", "AU01_r")]
    assert row["verdict"] == "wrong sign" and row["spearman_r"] < -0.3
    assert "components moving against FACS: left_eyebrow~AU01_r" in render_text(rep)


def test_prototypes():
    rows = {
        "happy": {6: 3, 12: 4},
        "fear": {1: 2, 2: 2, 4: 3, 5: 2, 20: 2, 26: 3},   # also matches surprise and anger
        "surprise": {1: 3, 2: 3, 5: 2, 26: 4},
        "neutral": {},
        "weak smile": {6: 1, 12: 1},
    }
    au = pd.DataFrame([[v.get(int(c[2:4]), 0) for c in AU_COLUMNS] for v in rows.values()],
                      columns=list(AU_COLUMNS)).astype("Int8")
    au.loc[len(au)] = [pd.NA] + [0] * 11
    proto, intensity = prototype_of(au)
    assert proto.tolist() == ["happiness", "fear", "surprise", "neutral", "other", "missing"]
    assert intensity[0] == pytest.approx(3.5) and np.isnan(intensity[3])


def test_confusion_and_agreement(table):
    rep = validity_report(table)
    assert rep.confusion.loc["surprise"].sum() > 0 and rep.confusion.loc["happiness"].sum() > 0
    # Every valid frame is counted once, invalid frames are not counted.
    assert int(rep.confusion.to_numpy().sum()) == rep.n_valid
    assert rep.n_prototype == int(rep.confusion.loc[["happiness", "anger", "sadness",
                                                     "disgust", "fear", "surprise"]]
                                  .to_numpy().sum())
    diag = sum(int(rep.confusion.loc[e, e]) for e in
               ("happiness", "anger", "sadness", "disgust", "fear", "surprise"))
    assert rep.agreement == pytest.approx(diag / rep.n_prototype)
    assert 0 <= rep.neutral_agreement <= 1


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, 200).astype(float)
    b = a + rng.normal(0, 2, 200)
    b[5] = np.nan
    ok = np.isfinite(b)
    assert _spearman(a, b) == pytest.approx(spearmanr(a[ok], b[ok]).statistic, abs=1e-12)
    assert np.isnan(_spearman(np.ones(10), b[:10]))


def test_figure_and_not_a_disfa_table(table, tmp_path):
    rep = validity_report(table)
    fig = save_figure(rep, tmp_path / "r.png")
    assert fig.read_bytes()[:4] == b"\x89PNG"
    other = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(other)
    with pytest.raises(InputError, match="not a DISFA-FER table"):
        validity_report(other)
    with pytest.raises(InputError, match="file not found"):
        validity_report(tmp_path / "missing.parquet")


def test_cli(table, tmp_path):
    from fuzzyemo.cli import _build

    app = typer.Typer()
    app.add_typer(_build.report_app, name="report")
    app.add_typer(_build.build_app, name="build-dataset")
    fig, js = tmp_path / "f.png", tmp_path / "r.json"
    r = CliRunner().invoke(app, ["report", "disfa-fer", str(table), "--figure", str(fig),
                                 "--json", str(js)])
    assert r.exit_code == 0, r.output
    assert "left_mouth_corner   AU12_r" in r.output and "agreement on prototype" in r.output
    assert fig.is_file() and json.loads(js.read_text())["n_frames"] == 120
    r = CliRunner().invoke(app, ["report", "disfa-fer", str(tmp_path / "nope.parquet")])
    assert r.exit_code == 2 and "file not found" in r.output and "Traceback" not in r.output
