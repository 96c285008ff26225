"""Geometry: raw features, calibration, baselines and measure() on synthetic faces.

Faces are the shipped neutral iBUG-68 template (units of inter-ocular distance, y down)
with points moved as action units would move them, then placed in an image by a similarity
transform. Converting them to WFLW-98 and DISFA-66 uses tests/test_landmarks.py's converters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_landmarks import ibug_to_disfa, ibug_to_wflw  # tests/ is on sys.path (rootdir)

from fuzzyemo._errors import InputError, RuleBaseError
from fuzzyemo._geometry import (
    RAW_FEATURES,
    Baseline,
    Calibration,
    align,
    measure,
    raw_features,
)
from fuzzyemo._landmarks import LandmarkScheme
from fuzzyemo._vocab import COMPONENTS

C = {name: i for i, name in enumerate(COMPONENTS)}
IBUG = LandmarkScheme.load("ibug68")
NEUTRAL = IBUG.template_landmarks()[0]  # (68, 2), eye centres at (+-0.5, 0), y down
UP = np.array([0.0, -1.0])
LEFT = np.array([1.0, 0.0])  # towards the subject's left = the image's right

R_BROW, L_BROW = list(range(17, 22)), list(range(22, 27))
UPPER_LIDS, LOWER_LIDS = [37, 38, 43, 44], [40, 41, 46, 47]
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
UPPER_LIP_OUTER = [49, 50, 51, 52, 53]


def face(**moves: float) -> np.ndarray:
    """The neutral template with action-unit-like moves applied (amounts in IOD)."""
    p = NEUTRAL.copy()
    if a := moves.get("brows_up"):          # AU1+AU2, both brows
        p[R_BROW + L_BROW] += a * UP
    if a := moves.get("left_brow_up"):      # one brow, outer part only (AU2 on the left)
        p[[24, 25, 26]] += a * UP
    if a := moves.get("frown"):             # AU4: inner brows together and down
        p[21] += a * LEFT + a * -UP
        p[22] += a * -LEFT + a * -UP
    if a := moves.get("eyes_wide"):         # AU5: upper lids up
        p[UPPER_LIDS] += a * UP
    if a := moves.get("squint"):            # AU6/7: lower lids up
        p[LOWER_LIDS] += a * UP
    if a := moves.get("nose_wrinkle"):      # AU9: alae and nasal base up
        p[31:36] += a * UP
    if a := moves.get("nostrils"):          # AU38: alae outward
        p[31] += a * -LEFT
        p[35] += a * LEFT
    if a := moves.get("mouth_open"):        # AU26: lower lip drops; corners by half as much
        p[LOWER_LIP] += a * -UP
        p[[48, 54, 60, 64]] += a / 2 * -UP
    if a := moves.get("lip_press"):         # AU24: red lips compressed towards the lip line
        p[UPPER_LIP_OUTER] += a * -UP
        p[[55, 56, 57, 58, 59]] += a * UP
    if a := moves.get("upper_lip_raise"):   # AU10: upper lip's outer contour up
        p[UPPER_LIP_OUTER] += a * UP
    if a := moves.get("smile"):             # AU12: corners up and out
        p[[48, 60]] += a * UP + a / 2 * -LEFT
        p[[54, 64]] += a * UP + a / 2 * LEFT
    if a := moves.get("left_corner_down"):  # AU15 on the subject's left side only
        p[[54, 64]] += a * -UP
    return p


# The template's own neutral face: the geometry's tests measure against the person's own
# neutral (no population dead zone), so every action's size reads through unchanged.
OWN = Baseline.from_landmarks(NEUTRAL, IBUG, "the template face")


def place(p: np.ndarray, angle_deg: float = 0.0, scale: float = 120.0,
          shift: tuple[float, float] = (320.0, 240.0)) -> np.ndarray:
    """Put a face into an image: rotate by angle (roll), scale to pixels, translate."""
    t = np.radians(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (np.asarray(p) @ rot.T) * scale + np.asarray(shift)


# Each action: the moves; the components it is for (sign, and |x| > 0.2 there); side
# effects the geometry implies (sign only); all other components must stay at 0 (to 1e-9:
# the moved points do not enter them).
ACTIONS = {
    "brows_up": ({"brows_up": 0.08},
                 {"left_eyebrow": 1, "right_eyebrow": 1, "brow_crest": -1}, {}),
    "left_brow_up": ({"left_brow_up": 0.08}, {"left_eyebrow": 1}, {}),
    # Lowering the inner brows also lowers each brow's mean height a little.
    "frown": ({"frown": 0.04}, {"brow_crest": 1}, {"left_eyebrow": -1, "right_eyebrow": -1}),
    "eyes_wide": ({"eyes_wide": 0.03}, {"left_eye": 1, "right_eye": 1}, {}),
    "squint": ({"squint": 0.03}, {"left_eye": -1, "right_eye": -1}, {}),
    "nose_wrinkle": ({"nose_wrinkle": 0.03}, {"nose": 1}, {}),
    "nostrils": ({"nostrils": 0.02}, {"nostril": 1}, {}),
    "mouth_open": ({"mouth_open": 0.15}, {"mouth": 1}, {}),
    "lip_press": ({"lip_press": 0.03}, {"mouth": -1, "upper_lip": -1, "lower_lip": -1}, {}),
    # A thicker upper lip also makes the mouth (outer lip height) taller.
    "upper_lip_raise": ({"upper_lip_raise": 0.03}, {"upper_lip": 1}, {"mouth": 1}),
    "smile": ({"smile": 0.06}, {"left_mouth_corner": 1, "right_mouth_corner": 1}, {}),
    "left_corner_down": ({"left_corner_down": 0.04}, {"left_mouth_corner": -1}, {}),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_action_moves_its_components_and_nothing_else(action):
    moves, primary, side = ACTIONS[action]
    x = measure(place(face(**moves), angle_deg=20, scale=3 * 120)[None], "ibug68", OWN)[0]
    for comp, i in C.items():
        if comp in primary:
            assert np.sign(x[i]) == primary[comp] and abs(x[i]) > 0.2, (comp, x[i])
        elif comp in side:
            assert np.sign(x[i]) == side[comp], (comp, x[i])
        else:
            assert abs(x[i]) < 1e-9, (comp, x[i])


def test_neutral_face_measures_zero_with_population_baseline():
    """The template face reads 0 against itself, and within the population's dead zone
    (person-to-person spread) against the population neutral of its scheme."""
    for name in ("ibug68", "wflw98", "disfa66"):
        s = LandmarkScheme.load(name)
        lm = place(s.template_landmarks()[0], angle_deg=-7)[None]
        own = Baseline.from_landmarks(s.template_landmarks(), s)
        np.testing.assert_allclose(measure(lm, s, own), 0, atol=1e-9)
        assert np.abs(measure(lm, s)).max() < 0.35


def test_population_block_overrides_the_template(tmp_path):
    """mediapipe478.yaml's measured population values replace its canonical mesh's; a
    partial block overrides only the features it names; bad names are file:line errors."""
    mp = LandmarkScheme.load("mediapipe478")
    pop = Baseline.population(mp).values
    np.testing.assert_allclose(pop, [mp.population[f] for f in RAW_FEATURES])
    import re

    shipped = Path(IBUG.path).read_text()
    block = re.search(r"(?m)^population:\n(?:  .*\n)+", shipped).group(0)
    # A partial block: only ala_width overrides the template.
    text = shipped.replace(block, "population:\n  ala_width: 0.6\n")
    f = tmp_path / "ibug_pop.yaml"
    f.write_text(text)
    b = Baseline.population(LandmarkScheme.load(f)).values
    ref = raw_features(IBUG.named(IBUG.template_landmarks()))[0]
    i = RAW_FEATURES.index("ala_width")
    assert b[i] == 0.6
    np.testing.assert_allclose(np.delete(b, i), np.delete(ref, i))
    f.write_text(text.replace("ala_width: 0.6", "ala_widht: 0.6"))
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "ala_width: 0.6" in t)
    with pytest.raises(RuleBaseError, match=rf"{f}:{line}:.*unknown raw "
                                            r"feature 'ala_widht'.*ala_width"):
        LandmarkScheme.load(f)


def test_roll_scale_translation_invariance():
    p = face(smile=0.05, brows_up=0.04, mouth_open=0.1, squint=0.01, nostrils=0.01)
    ref = raw_features(IBUG.named(place(p, 0, 1.0, (0, 0))[None]))
    frames = np.stack([place(p, a, s, (tx, 480 - tx))
                       for a, s, tx in [(20, 3.0, 0), (-35, 0.5, 100), (90, 250, 7), (179, 12, 3)]])
    raw = raw_features(IBUG.named(frames))
    np.testing.assert_allclose(raw, np.repeat(ref, 4, axis=0), atol=1e-9)


def test_y_up_coordinates_measure_like_image_coordinates():
    """Up is found from the mouth, not assumed from the y axis: a y-up copy agrees."""
    p = face(smile=0.05, brows_up=0.05)
    flipped = p * np.array([1.0, -1.0])
    np.testing.assert_allclose(measure(flipped[None], "ibug68"), measure(p[None], "ibug68"),
                               atol=1e-9)


def test_align_puts_eye_centres_on_the_axis():
    a = align(IBUG.named(place(face(), 33, 77)[None]))
    rc = (a["right_eye_inner"] + a["right_eye_outer"]) / 2
    lc = (a["left_eye_inner"] + a["left_eye_outer"]) / 2
    np.testing.assert_allclose(rc, [[-0.5, 0]], atol=1e-12)
    np.testing.assert_allclose(lc, [[0.5, 0]], atol=1e-12)
    assert a["chin"][0, 1] < -1 and a["left_brow_centre"][0, 1] > 0  # y up the face


def test_calibration_constants_are_what_x_reads():
    """Moving a feature by exactly `plus` reads x = 1; by `minus` the other way x = -1;
    beyond is clipped."""
    cal = Calibration.default()
    plus = {c.component: c.plus for c in cal.components}
    minus = {c.component: c.minus for c in cal.components}
    x = measure(place(face(brows_up=plus["left_eyebrow"]))[None], "ibug68", OWN)[0]
    assert x[C["left_eyebrow"]] == pytest.approx(1.0, abs=1e-9)
    x = measure(place(face(smile=minus["left_mouth_corner"] / 2))[None], "ibug68", OWN)[0]
    assert x[C["left_mouth_corner"]] == pytest.approx(0.5 * minus["left_mouth_corner"]
                                                      / plus["left_mouth_corner"], abs=1e-9)
    x = measure(place(face(left_corner_down=minus["left_mouth_corner"]))[None], "ibug68",
                OWN)[0]
    assert x[C["left_mouth_corner"]] == pytest.approx(-1.0, abs=1e-9)
    x = measure(place(face(mouth_open=3.0))[None], "ibug68", OWN)[0]
    assert x[C["mouth"]] == 1.0  # clipped


def test_same_face_in_ibug_wflw_disfa_gives_same_measurements():
    """Tolerance 1e-9: the three schemes name the same anatomical points, so the same face
    gives the same numbers (the population baselines agree too)."""
    faces = np.stack([place(face(**m), ang) for (m, _, _), ang
                      in zip(ACTIONS.values(), np.linspace(-30, 30, len(ACTIONS)), strict=True)])
    x68 = measure(faces, "ibug68")
    np.testing.assert_allclose(measure(ibug_to_wflw(faces), "wflw98"), x68, atol=1e-9)
    np.testing.assert_allclose(measure(ibug_to_disfa(faces), "disfa66"), x68, atol=1e-9)
    # ... and with a self-calibrated baseline as well.
    np.testing.assert_allclose(measure(ibug_to_wflw(faces), "wflw98", baseline="self"),
                               measure(faces, "ibug68", baseline="self"), atol=1e-9)


# ----------------------------------------------------------------------------- NaN
def test_nan_landmarks_give_nan_where_needed_and_never_raise():
    frames = np.stack([place(face(smile=0.05))] * 4)
    frames[1] = np.nan                       # no face at all
    frames[2, 57] = np.nan                   # one lower-lip point
    frames[3, 39] = np.inf                   # an eye corner: the face frame is lost
    x = measure(frames, "ibug68")
    assert np.isfinite(x[0]).all()
    assert np.isnan(x[1]).all() and np.isnan(x[3]).all()
    nan2 = {COMPONENTS[i] for i in np.flatnonzero(np.isnan(x[2]))}
    assert nan2 == {"mouth", "lower_lip"}
    np.testing.assert_allclose(x[2][~np.isnan(x[2])], x[0][~np.isnan(x[2])])


def test_missing_mouth_keeps_the_upper_face():
    """Without mouth corners (e.g. an occluded mouth) "up" comes from the nose, or from the
    image convention: brows, eyes and nose are still measured, in either y convention."""
    p = place(face(brows_up=0.05, eyes_wide=0.02), angle_deg=40)
    frames = np.stack([p, p, p * [1, -1]])
    frames[:, [48, 54]] = np.nan
    frames[1, 27:36] = np.nan  # no nose either: image convention (y down) is assumed
    x = measure(frames, "ibug68")
    ref = measure(p[None], "ibug68")[0]
    upper = [C[c] for c in ("left_eyebrow", "right_eyebrow", "brow_crest", "left_eye",
                            "right_eye")]
    np.testing.assert_allclose(x[:, upper], np.repeat(ref[None, upper], 3, axis=0), atol=1e-9)
    assert np.isnan(x[:, C["left_mouth_corner"]]).all()


def test_nan_rows_are_unknown_for_the_engine():
    from fuzzyemo import RuleBase

    frames = np.stack([place(face(smile=0.08)), np.full((68, 2), np.nan)])
    res = RuleBase.default().compile().evaluate(measure(frames, "ibug68"))
    assert res.labels[1] == "unknown"
    assert res.labels[0] != "unknown"


# ----------------------------------------------------------------------------- baselines
def test_baseline_from_frames_is_the_nan_aware_median():
    raw = np.arange(36, dtype=float).reshape(3, 12)
    raw[1, 0] = np.nan
    b = Baseline.from_frames(raw)
    expected = np.median(raw, axis=0)
    expected[0] = np.median([0.0, 24.0])
    np.testing.assert_allclose(b.values, expected)
    assert b.n_frames == 3
    with pytest.raises(InputError, match="no usable neutral frame"):
        Baseline.from_frames(np.full((2, 12), np.nan))
    with pytest.raises(InputError, match=r"shape \(n, 12\)"):
        Baseline.from_frames(np.zeros((2, 11)))


def test_baseline_from_landmarks_and_population():
    own = Baseline.from_landmarks(place(face(brows_up=0.05))[None], "ibug68")
    x = measure(place(face(brows_up=0.05))[None], "ibug68", baseline=own)
    np.testing.assert_allclose(x, 0, atol=1e-9)
    pop = {n: Baseline.population(n).values for n in ("ibug68", "wflw98", "disfa66")}
    np.testing.assert_allclose(pop["wflw98"], pop["ibug68"], atol=1e-12)
    np.testing.assert_allclose(pop["disfa66"], pop["ibug68"], atol=1e-12)
    mp = Baseline.population("mediapipe478").values
    assert np.isfinite(mp).all() and not np.allclose(mp, pop["ibug68"])


def test_self_calibration_finds_the_neutral_frames():
    """A 'video': 70 neutral frames (landmark jitter) and 30 frames of a big smile with
    raised brows, shuffled. Self-calibration recovers the neutral face: neutral frames read
    ~0 and smiling frames read raised corners, while the plain mean would be biased."""
    rng = np.random.default_rng(1)
    person = face(brows_up=0.03)  # this person's brows sit higher than the template's
    neutral = np.stack([person + rng.normal(0, 0.004, person.shape) for _ in range(70)])
    smiles = np.stack([face(brows_up=0.03 + 0.08, smile=0.08) + rng.normal(0, 0.004, (68, 2))
                       for _ in range(30)])
    frames = np.concatenate([neutral, smiles])
    order = rng.permutation(len(frames))
    frames, is_smile = frames[order], (order >= 70)
    frames = np.stack([place(f, a) for f, a in zip(frames, rng.uniform(-25, 25, 100),
                                                   strict=True)])
    raw = raw_features(IBUG.named(frames))
    b = Baseline.self_calibrate(raw, fraction=0.2)
    true = raw_features(IBUG.named(place(person)[None]))[0]
    cal = Calibration.default()
    err = np.abs(cal.apply(true[None], b.values, clip=False))[0]
    assert err.max() < 0.1, dict(zip(COMPONENTS, err.round(3), strict=True))
    # ... where the plain mean of all frames is pulled towards the smile.
    assert np.abs(cal.apply(true[None], raw.mean(axis=0), clip=False)).max() > 0.3
    x = measure(frames, "ibug68", baseline="self")
    corners = x[:, [C["left_mouth_corner"], C["right_mouth_corner"]]]
    assert (corners[is_smile] > 0.5).all()
    assert np.abs(np.median(x[~is_smile], axis=0)).max() < 0.1
    # Against the population, brows 0.03 IOD higher than average are within the ordinary
    # spread between people (a dead zone); 0.03 more than that reads raised.
    cal = Calibration.default()
    assert 0.03 < cal.spread[C["left_eyebrow"]] < 0.06
    pop = measure(place(person)[None], "ibug68", Baseline.from_landmarks(NEUTRAL, IBUG))[0]
    assert pop[C["left_eyebrow"]] > 0.2
    assert measure(place(person)[None], "ibug68")[0][C["left_eyebrow"]] < 0.2
    with pytest.raises(InputError, match="fraction"):
        Baseline.self_calibrate(raw, fraction=0)
    with pytest.raises(InputError, match="no frame has all 12"):
        Baseline.self_calibrate(np.full((3, 12), np.nan))


def test_self_baseline_without_any_face_gives_nan_rows_not_errors():
    faceless = np.full((5, 68, 2), np.nan)
    assert np.isnan(measure(faceless, "ibug68", baseline="self")).all()
    frames = np.stack([place(face(smile=0.05))] * 3 + [np.full((68, 2), np.nan)] * 2)
    x = measure(frames, "ibug68", baseline="self", groups=["a", "a", "a", "b", "b"])
    assert np.isfinite(x[:3]).all() and np.isnan(x[3:]).all()
    assert len(measure(np.zeros((0, 68, 2)), "ibug68")) == 0


def test_per_subject_baselines_by_group_key():
    a_neutral, b_neutral = face(), face(brows_up=0.06, smile=0.03)  # B looks 'happy' at rest
    frames = np.stack([place(a_neutral), place(a_neutral), place(face(smile=0.08)),
                       place(b_neutral), place(b_neutral), place(face(brows_up=0.06, smile=0.11))])
    groups = np.array(["a", "a", "a", "b", "b", "b"])
    neutral = np.array([True, True, False, True, True, False])
    raw = raw_features(IBUG.named(frames))
    per = Baseline.per_subject(raw, groups, neutral=neutral)
    assert set(per) == {"a", "b"}
    x = measure(frames, "ibug68", baseline=per, groups=groups)
    np.testing.assert_allclose(x[[0, 1, 3, 4]], 0, atol=1e-9)
    # Each subject's smile frame: the same corner rise over their own neutral face.
    np.testing.assert_allclose(x[2], x[5], atol=1e-9)
    assert x[2, C["left_mouth_corner"]] > 0.5
    # Without neutral flags each subject self-calibrates on its own frames.
    x_self = measure(frames, "ibug68", baseline="self", groups=groups)
    assert np.abs(x_self[[0, 1, 3, 4]]).max() < 1e-9
    with pytest.raises(InputError, match="no baseline for subject 'b'.*frame index 3"):
        measure(frames, "ibug68", baseline={"a": per["a"]}, groups=groups)
    with pytest.raises(InputError, match="needs groups"):
        measure(frames, "ibug68", baseline=per)


def test_baseline_save_load_round_trip(tmp_path):
    b = Baseline.self_calibrate(raw_features(IBUG.named(place(face())[None])))
    f = tmp_path / "neutral.json"
    b.save(f)
    back = Baseline.load(f)
    np.testing.assert_array_equal(back.values, b.values)
    assert back.source == b.source
    bad = tmp_path / "bad.json"
    bad.write_text('{"features": {"left_brow_hieght": 0.3}}')
    with pytest.raises(InputError, match="unknown raw feature 'left_brow_hieght'.*left_brow_height"):
        Baseline.load(bad)
    with pytest.raises(InputError, match="finite"):
        Baseline(np.full(12, np.nan))
    with pytest.raises(InputError, match="unknown baseline 'neutral'"):
        measure(place(face())[None], "ibug68", baseline="neutral")


# ----------------------------------------------------------------------------- calibration file
def test_shipped_calibration_covers_every_component_in_order():
    cal = Calibration.default()
    assert tuple(c.component for c in cal.components) == COMPONENTS
    assert tuple(c.feature for c in cal.components) == RAW_FEATURES
    assert all(c.plus > 0 and c.minus > 0 for c in cal.components)
    assert len(cal.sha256) == 64


def test_calibration_file_errors_point_at_lines(tmp_path):
    shipped = Path(Calibration.default().path).read_text()
    text = shipped
    text = text.replace("feature: nose_length", "feature: nose_lenght", 1)
    text = text.replace("plus: 0.08\n    minus: 0.08\n    spread:", "plus: -0.05\n    minus: 0.08\n"
                        "    spread:", 1)
    f = tmp_path / "calibration.yaml"
    f.write_text(text)
    with pytest.raises(RuleBaseError) as exc:
        Calibration.load(f)
    lines = text.splitlines()
    l_feat = next(i for i, s in enumerate(lines, 1) if "nose_lenght" in s)
    l_plus = next(i for i, s in enumerate(lines, 1) if "plus: -0.05" in s)
    msg = str(exc.value)
    assert f"{f}:{l_feat}:" in msg and "unknown raw feature 'nose_lenght'" in msg
    assert f"{f}:{l_plus}:" in msg and "plus must be a positive number" in msg
    # A directory means DIR/calibration.yaml; a custom one changes the measurements.
    good = shipped.replace("plus: 0.12", "plus: 0.24", 1)
    f.write_text(good)
    x = measure(place(face(brows_up=0.12))[None], "ibug68", OWN, calibration=tmp_path)[0]
    assert x[C["left_eyebrow"]] == pytest.approx(0.5, abs=1e-9)


def test_measure_is_vectorised_and_fast():
    import time

    mp = LandmarkScheme.load("mediapipe478")
    frames = np.repeat(mp.template_landmarks() * 300, 5000, axis=0)
    measure(frames[:10], mp)
    t = time.perf_counter()
    x = measure(frames, mp)
    assert x.shape == (5000, 12)
    assert time.perf_counter() - t < 2.0
