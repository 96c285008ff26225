"""Measurement sources: calibration format 2 (geometry + MediaPipe blendshapes), the
population dead zone, blendshape evidence, and self-calibration that picks frames that
really are neutral (docs/geometry.md, "Measurement sources" and "Neutral reference")."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from fuzzyemo import Baseline, Calibration, LandmarkScheme, NeutralWarning, measure
from fuzzyemo._errors import InputError, RuleBaseError
from fuzzyemo._geometry import (
    NEUTRAL_MIN_FRAMES,
    NoNeutralFrames,
    expression_activity,
    raw_features,
    resolve_neutral,
)
from fuzzyemo._mediapipe import BLENDSHAPE_NAMES
from fuzzyemo._vocab import COMPONENTS

C = {name: i for i, name in enumerate(COMPONENTS)}
B = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}
CAL = Calibration.default()
MP = LandmarkScheme.load("mediapipe478")
IBUG = LandmarkScheme.load("ibug68")


def blendshapes(n: int = 1, **values: float) -> np.ndarray:
    bs = np.zeros((n, len(BLENDSHAPE_NAMES)))
    for name, v in values.items():
        bs[:, B[name]] = v
    return bs


# ----------------------------------------------------------------------------- format 2
def test_shipped_calibration_reads_blendshapes_where_documented():
    has = dict(zip(COMPONENTS, CAL.has_blendshapes, strict=True))
    # MediaPipe's noseSneer never fires and no blendshape measures the alae: geometry only.
    assert not has["nose"] and not has["nostril"]
    assert all(has[c] for c in COMPONENTS if c not in ("nose", "nostril"))
    smile = CAL.components[C["left_mouth_corner"]].blendshapes
    assert [BLENDSHAPE_NAMES[j] for j, _ in smile.plus] == ["mouthSmileLeft"]
    assert [BLENDSHAPE_NAMES[j] for j, _ in smile.minus] == ["mouthFrownLeft"]
    assert all(0 <= w <= 1 for w in CAL.blendshape_weight)
    assert (CAL.spread >= 0).all() and CAL.spread.max() < 0.2


def test_format_1_files_still_load(tmp_path: Path):
    text = CAL.path and Path(CAL.path).read_text()
    lines = [ln for ln in text.splitlines()]
    # Strip every format-2 addition: spread and blendshapes blocks.
    out, skip = [], False
    for ln in lines:
        if ln.startswith("    blendshapes:"):
            skip = True
            continue
        if skip and ln.startswith("      "):
            continue
        skip = False
        if ln.startswith("    spread:"):
            continue
        out.append(ln.replace("fuzzyemo-calibration/2", "fuzzyemo-calibration/1"))
    p = tmp_path / "calibration.yaml"
    p.write_text("\n".join(out) + "\n")
    old = Calibration.load(p)
    assert not old.has_blendshapes.any() and (old.spread == 0).all()
    np.testing.assert_array_equal(old.plus, CAL.plus)


@pytest.mark.parametrize("pattern, bad, message", [
    (r"mouthSmileLeft: 1", "mouthSmileLeftt: 1", "unknown blendshape 'mouthSmileLeftt'"),
    (r"full: \[0\.6, 0\.6\]", "full: [0.6, -1]",
     "full: expected a positive number or [plus, minus] of them"),
    (r"weight: 0\.75", "weight: 1.5", "weight: expected a number in [0, 1]"),
    (r"(?m)^    spread: [\d.]+$", "    spread: -0.1", "spread must be a number >= 0"),
])
def test_bad_calibration_entries_point_at_the_line(tmp_path: Path, pattern: str, bad: str,
                                                    message: str):
    import re

    text = Path(CAL.path).read_text()
    assert re.search(pattern, text), pattern
    p = tmp_path / "calibration.yaml"
    p.write_text(re.sub(pattern, bad, text, count=1))
    with pytest.raises(RuleBaseError) as err:
        Calibration.load(p)
    first = err.value.problems[0]
    assert message in first.message
    assert bad.strip() in p.read_text().splitlines()[first.line - 1]


# ----------------------------------------------------------------------------- evidence
def test_evidence_sums_the_named_blendshapes():
    ev = CAL.evidence(blendshapes(1, mouthSmileLeft=0.5, mouthFrownLeft=0.2, eyeBlinkLeft=0.4,
                                  eyeSquintLeft=0.2))
    assert ev.shape == (1, 12, 2)
    assert ev[0, C["left_mouth_corner"]].tolist() == pytest.approx([0.5, 0.2])
    assert ev[0, C["left_eye"], 1] == pytest.approx(0.4 + 0.5 * 0.2)
    assert np.isnan(ev[0, C["nose"]]).all()
    with pytest.raises(InputError, match="blendshapes must have shape"):
        CAL.evidence(np.zeros((2, 51)))


def _neutral_raw(n: int = 1) -> np.ndarray:
    return np.broadcast_to(LandmarkScheme.load("mediapipe478").population and
                           Baseline.population(MP).values, (n, 12)).copy()


def test_blendshapes_read_a_smile_the_geometry_alone_misses():
    raw = _neutral_raw()
    neutral = Baseline.population(MP).values
    geo = CAL.apply(raw, neutral, population=True)
    smile = CAL.apply(raw, neutral, population=True,
                      evidence=CAL.evidence(blendshapes(1, mouthSmileLeft=0.8,
                                                        mouthSmileRight=0.8)))
    assert geo[0, C["left_mouth_corner"]] == 0
    w = CAL.components[C["left_mouth_corner"]].blendshapes.weight
    assert smile[0, C["left_mouth_corner"]] == pytest.approx(w * 1.0)  # evidence saturates
    # Nothing else moves: every other blendshape is 0, below its neutral value.
    others = [i for i in range(12) if i not in (C["left_mouth_corner"], C["right_mouth_corner"])]
    assert np.all(smile[0, others] <= 0)


def test_population_dead_zone_applies_only_to_an_average_face():
    neutral = Baseline.population(MP).values
    raw = neutral[None].copy()
    i = C["left_mouth_corner"]
    c = CAL.components[i]
    raw[0, CAL.feature_index[i]] += 0.8 * c.spread  # within ordinary person-to-person spread
    assert CAL.apply(raw, neutral, population=True)[0, i] == 0
    assert CAL.apply(raw, neutral, population=False)[0, i] == pytest.approx(0.8 * c.spread / c.plus)
    raw[0, CAL.feature_index[i]] += c.plus  # a clear raise reads past the dead zone
    assert CAL.apply(raw, neutral, population=True)[0, i] == pytest.approx(
        min(1.0, (c.plus + 0.8 * c.spread - c.spread) / c.plus))


def test_rows_without_blendshapes_fall_back_to_geometry():
    neutral = Baseline.population(MP).values
    raw = np.vstack([neutral, neutral])
    raw[:, CAL.feature_index[C["mouth"]]] += 0.2
    ev = CAL.evidence(blendshapes(2, jawOpen=0.5))
    ev[1] = np.nan  # e.g. a face from a landmark table
    x = CAL.apply(raw, neutral, evidence=ev)
    geo = CAL.apply(raw, neutral)
    assert x[1].tolist() == pytest.approx(geo[1].tolist())
    assert x[0, C["mouth"]] != pytest.approx(geo[0, C["mouth"]])


# ----------------------------------------------------------------------------- neutral frames
def _video(n_smiling: int, n_neutral: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw features and evidence of a face that smiles, then rests (geometry follows)."""
    neutral = Baseline.population(MP).values
    raw = np.repeat(neutral[None], n_smiling + n_neutral, axis=0)
    rng = np.random.default_rng(0)
    raw += rng.normal(0, 0.003, raw.shape)
    for side in ("left_mouth_corner", "right_mouth_corner"):
        raw[:n_smiling, CAL.feature_index[C[side]]] += 0.09  # a broad smile lifts the corners
    bs = blendshapes(n_smiling + n_neutral)
    bs[:n_smiling, B["mouthSmileLeft"]] = bs[:n_smiling, B["mouthSmileRight"]] = 0.8
    return raw, CAL.evidence(bs)


def test_self_calibration_takes_the_frames_without_expression():
    # 70% of the video smiles: the old "closest to the median" rule would take a smile as
    # neutral. Blendshapes say which frames show nothing.
    raw, ev = _video(70, 30)
    b = Baseline.self_calibrate(raw, calibration=CAL, evidence=ev)
    assert b.frames is not None and b.frames.min() >= 70
    x = CAL.apply(raw, b.values, evidence=ev, neutral_evidence=b.evidence)
    assert (x[:70, C["left_mouth_corner"]] > 0.5).all()
    assert np.abs(x[70:]).max() < 0.2
    # Without evidence the geometry's rule is kept, and it is fooled here.
    old = Baseline.self_calibrate(raw, calibration=CAL)
    assert old.frames.max() < 70


def test_activity_is_zero_for_ordinary_neutral_blendshapes():
    ev = CAL.evidence(blendshapes(1, eyeSquintLeft=0.3, eyeSquintRight=0.3, eyeBlinkLeft=0.1,
                                  eyeBlinkRight=0.1, browDownLeft=0.05, mouthPressLeft=0.05))
    assert expression_activity(ev, CAL)[0] < 0.2
    ev = CAL.evidence(blendshapes(1, jawOpen=0.6))
    assert expression_activity(ev, CAL)[0] > 0.5


def test_a_video_without_a_neutral_stretch_falls_back_with_a_warning():
    raw, ev = _video(100, NEUTRAL_MIN_FRAMES - 1)
    with pytest.raises(NoNeutralFrames, match="no neutral stretch"):
        Baseline.self_calibrate(raw, calibration=CAL, evidence=ev)
    ref = resolve_neutral(raw, MP, "self", CAL, np.zeros(len(raw)), ev, {0: "clip.mp4 face 0"})
    assert ref.population.all() and not ref.used.any()
    assert len(ref.notes) == 1 and ref.notes[0].startswith("clip.mp4 face 0: no neutral stretch")
    np.testing.assert_allclose(ref.values[0], Baseline.population(MP).values)


def test_measure_warns_and_records_the_fallback():
    # measure() on landmarks + blendshapes of a face that smiles in every frame.
    lm = np.repeat(MP.template_landmarks(), 20, axis=0)
    bs = blendshapes(20, mouthSmileLeft=0.9, mouthSmileRight=0.9)
    with pytest.warns(NeutralWarning, match="no neutral stretch"):
        x = measure(lm, "mediapipe478", baseline="self", blendshapes=bs)
    assert (x[:, C["left_mouth_corner"]] > 0.5).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a neutral face gives no warning
        measure(lm, "mediapipe478", baseline="self", blendshapes=blendshapes(20))


def test_baseline_carries_its_evidence_and_kind():
    pop = Baseline.population(IBUG)
    assert pop.is_population and pop.evidence is None
    raw, ev = _video(10, 40)
    own = Baseline.self_calibrate(raw, calibration=CAL, evidence=ev)
    assert not own.is_population and own.evidence.shape == (12, 2)
    assert len(own.frames) == own.n_frames


def test_68_point_population_agrees_with_mediapipe_on_what_neutral_is():
    # calibrate.py derives the 68-point schemes' neutral from MediaPipe's; a neutral face in
    # either scheme reads within the dead zone of the other's neutral.
    a = Baseline.population(IBUG).values
    b = Baseline.population(MP).values
    assert np.all(np.abs(a - b) <= np.maximum(CAL.spread, 0.01) + 0.09)
    for name in ("disfa66", "wflw98"):
        np.testing.assert_allclose(Baseline.population(name).values, a)


def test_raw_features_of_the_population_neutral_read_zero():
    x = measure(IBUG.template_landmarks(), "ibug68")
    assert np.abs(x).max() < 0.35
    assert np.isfinite(raw_features(IBUG.named(IBUG.template_landmarks()))).all()


# ----------------------------------------------------------------------------- lint region
def _one_sided_mouth(directory: Path) -> None:
    """The copy's calibration reads `mouth` from blendshapes alone, without 'minus' ones:
    on the MediaPipe path it cannot go below 0."""
    p = directory / "calibration.yaml"
    text = p.read_text()
    start = text.index("  mouth:")
    end = text.index("  upper_lip:")
    block = text[start:end]
    block = block.replace("      weight: 0.75", "      weight: 1.0")
    block = "\n".join(ln for ln in block.split("\n") if not ln.startswith("      minus:")) + ""
    p.write_text(text[:start] + block + text[end:])


def test_reachable_region_follows_the_calibration(tmp_path: Path):
    from fuzzyemo._rulebase import copy_profile

    assert set(CAL.reachable().values()) == {(-1.0, 1.0)}
    rules = copy_profile("facs", tmp_path / "rules")
    _one_sided_mouth(rules)
    cal = Calibration.load(rules)
    assert cal.reachable()["mouth"] == (0.0, 1.0)
    assert cal.reachable(blendshapes=False)["mouth"] == (-1.0, 1.0)


def test_rules_check_reports_rules_the_calibration_makes_unreachable(tmp_path: Path):
    from typer.testing import CliRunner

    from fuzzyemo._rulebase import copy_profile
    from fuzzyemo.cli import app

    rules = copy_profile("facs", tmp_path / "rules")
    runner = CliRunner()
    clean = runner.invoke(app, ["rules", "check", str(rules)])
    assert clean.exit_code == 0 and "unreachable" not in clean.output
    _one_sided_mouth(rules)
    res = runner.invoke(app, ["rules", "check", str(rules)])
    assert res.exit_code == 0, res.output  # warnings only
    assert "anger-4-24/low" in res.output and "unreachable" in res.output
    assert runner.invoke(app, ["rules", "check", str(rules), "--strict"]).exit_code == 1


def test_rules_check_validates_the_calibration_it_would_use(tmp_path: Path):
    from typer.testing import CliRunner

    from fuzzyemo._rulebase import copy_profile
    from fuzzyemo.cli import app

    rules = copy_profile("facs", tmp_path / "rules")
    p = rules / "calibration.yaml"
    p.write_text(p.read_text().replace("mouthSmileLeft: 1", "mouthSmileLeftt: 1", 1))
    res = CliRunner().invoke(app, ["rules", "check", str(rules)])
    assert res.exit_code == 2
    assert f"{p}:" in res.output and "unknown blendshape 'mouthSmileLeftt'" in res.output
    assert "Traceback" not in res.output
