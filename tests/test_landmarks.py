"""Landmark schemes: shipped files, index conventions, named points, file validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuzzyemo._errors import InputError, RuleBaseError
from fuzzyemo._geometry import align
from fuzzyemo._landmarks import POINTS, REQUIRED, LandmarkScheme

SHIPPED = ("disfa66", "ibug68", "mediapipe478", "wflw98")


def ibug_to_wflw(ibug: np.ndarray) -> np.ndarray:
    """An iBUG-68 face (n, 68, 2) as WFLW-98, via WFLW's iBUG-68 subset; the points WFLW adds
    are interpolated (the same rule that derived wflw98.yaml's template)."""
    i = np.asarray(ibug, dtype=float)
    n = i.shape[0]
    w = np.zeros((n, 98, 2))
    w[:, 0:33:2] = i[:, 0:17]
    w[:, 1:33:2] = (i[:, 0:16] + i[:, 1:17]) / 2
    w[:, 33:38] = i[:, 17:22]
    w[:, 42:47] = i[:, 22:27]
    rc, lc = (i[:, 36] + i[:, 39]) / 2, (i[:, 42] + i[:, 45]) / 2
    iod = np.linalg.norm(lc - rc, axis=-1)
    e = (lc - rc) / iod[:, None]
    down = np.stack([-e[:, 1], e[:, 0]], axis=-1)

    def lower(upper: np.ndarray) -> np.ndarray:  # 5 upper-edge points -> 4 lower-edge points
        return (upper[:, :-1] + upper[:, 1:]) / 2 + 0.07 * iod[:, None, None] * down[:, None]

    w[:, 38:42] = lower(i[:, 17:22])[:, ::-1]
    w[:, 47:51] = lower(i[:, 26:21:-1])
    w[:, 51:60] = i[:, 27:36]
    eye = {60: 36, 61: 37, 63: 38, 64: 39, 65: 40, 67: 41,
           68: 42, 69: 43, 71: 44, 72: 45, 73: 46, 75: 47}
    for k, v in eye.items():
        w[:, k] = i[:, v]
    for k, (a, b) in {62: (37, 38), 66: (40, 41), 70: (43, 44), 74: (46, 47)}.items():
        w[:, k] = (i[:, a] + i[:, b]) / 2
    w[:, 76:96] = i[:, 48:68]
    w[:, 96] = i[:, 36:42].mean(axis=1)
    w[:, 97] = i[:, 42:48].mean(axis=1)
    return w


def ibug_to_disfa(ibug: np.ndarray) -> np.ndarray:
    return np.delete(np.asarray(ibug, dtype=float), [60, 64], axis=1)


# ----------------------------------------------------------------------------- shipped
def test_shipped_schemes_are_available_and_complete():
    assert set(SHIPPED) <= set(LandmarkScheme.available())
    for name in SHIPPED:
        s = LandmarkScheme.load(name)
        assert s.name == name
        assert set(REQUIRED) <= set(s.points)
        assert set(s.points) <= set(POINTS)
        assert s.template is not None and s.template.shape == (s.n_points, 2)
        assert all(0 <= i < s.n_points for idx in s.points.values() for i in idx)
    assert LandmarkScheme.load("mediapipe478").n_points == 478
    assert LandmarkScheme.load("disfa66").n_points == 66


@pytest.mark.parametrize("name", SHIPPED)
def test_template_anatomy_left_right_up_down(name):
    """In each shipped neutral template (a non-mirrored image, y down) the subject's left is
    on the image's right, lids and brows are where they belong: catches swapped indices."""
    s = LandmarkScheme.load(name)
    p = {k: v[0] for k, v in s.named(s.template_landmarks()).items()}
    x = {k: v[0] for k, v in p.items()}
    y = {k: v[1] for k, v in p.items()}
    assert x["right_eye_outer"] < x["right_eye_inner"] < x["left_eye_inner"] < x["left_eye_outer"]
    assert x["right_brow_outer"] < x["right_brow_centre"] < x["right_brow_inner"] \
        < x["left_brow_inner"] < x["left_brow_centre"] < x["left_brow_outer"]
    assert x["right_ala"] < x["subnasale"] < x["left_ala"]
    assert x["right_mouth_corner"] < x["upper_lip_top"] < x["left_mouth_corner"]
    for side in ("left", "right"):
        assert y[f"{side}_brow_centre"] < y[f"{side}_eye_top"] < y[f"{side}_eye_bottom"]
        if f"{side}_pupil" in p:
            assert x["right_eye_outer" if side == "right" else "left_eye_inner"] \
                < x[f"{side}_pupil"] < x["right_eye_inner" if side == "right" else "left_eye_outer"]
    assert y["nose_bridge_top"] < y["nose_tip"] < y["subnasale"] < y["upper_lip_top"] \
        < y["upper_lip_bottom"] < y["lower_lip_bottom"] < y["chin"]
    # The templates' lips are closed: the inner contours meet (to rounding).
    assert abs(y["lower_lip_top"] - y["upper_lip_bottom"]) < 0.005


def test_mediapipe_points_agree_with_ibug_points():
    """MediaPipe's canonical face and the mean iBUG face are different faces, but a named
    point in one lies within 0.15 IOD of the same point in the other: a wrong index (a point
    on another feature) would be several tenths away."""
    ib, mp = LandmarkScheme.load("ibug68"), LandmarkScheme.load("mediapipe478")
    a = align(ib.named(ib.template_landmarks()))
    b = align(mp.named(mp.template_landmarks()))
    for name in set(a) & set(b):
        gap = float(np.linalg.norm(a[name] - b[name]))
        assert gap < 0.15, (name, gap)


def test_wflw_and_disfa_templates_are_the_ibug_template_converted():
    ib = LandmarkScheme.load("ibug68").template_landmarks()
    np.testing.assert_allclose(LandmarkScheme.load("wflw98").template_landmarks(),
                               ibug_to_wflw(ib), atol=1e-4)
    np.testing.assert_allclose(LandmarkScheme.load("disfa66").template_landmarks(),
                               ibug_to_disfa(ib), atol=1e-12)


def test_same_face_same_named_points_across_68_family():
    rng = np.random.default_rng(0)
    ib = LandmarkScheme.load("ibug68").template_landmarks() * 150 + rng.normal(0, 2, (4, 68, 2))
    a = LandmarkScheme.load("ibug68").named(ib)
    for scheme, conv in (("wflw98", ibug_to_wflw), ("disfa66", ibug_to_disfa)):
        b = LandmarkScheme.load(scheme).named(conv(ib))
        for name in REQUIRED:
            np.testing.assert_allclose(b[name], a[name], atol=1e-9, err_msg=f"{scheme}:{name}")


# ----------------------------------------------------------------------------- named()
def test_named_averages_vectorises_and_drops_z():
    s = LandmarkScheme.load("ibug68")
    lm = np.arange(5 * 68 * 3, dtype=float).reshape(5, 68, 3)
    out = s.named(lm)
    assert all(v.shape == (5, 2) for v in out.values())
    np.testing.assert_allclose(out["right_eye_top"], (lm[:, 37, :2] + lm[:, 38, :2]) / 2)
    np.testing.assert_allclose(out["upper_lip_top"], lm[:, [50, 51, 52], :2].mean(axis=1))
    np.testing.assert_allclose(out["chin"], lm[:, 8, :2])
    one = s.named(lm[2, :, :2])  # a single frame (K, 2)
    np.testing.assert_allclose(one["chin"], lm[2:3, 8, :2])


def test_named_propagates_nan_only_where_used():
    s = LandmarkScheme.load("ibug68")
    lm = np.tile(s.template_landmarks(), (3, 1, 1))
    lm[1, 38] = np.nan          # one of the two right_eye_top points
    lm[2, 0] = np.inf           # a jaw point no named point uses; inf counts as missing
    out = s.named(lm)
    assert np.isnan(out["right_eye_top"][1]).all()
    assert np.isfinite(out["right_eye_top"][[0, 2]]).all()
    assert np.isfinite(out["left_eye_top"]).all()
    assert all(np.isfinite(v[2]).all() for v in out.values())


def test_named_rejects_wrong_shapes():
    s = LandmarkScheme.load("ibug68")
    with pytest.raises(InputError, match="expects 68 points per frame, got 66"):
        s.named(np.zeros((2, 66, 2)))
    with pytest.raises(InputError, match="shape"):
        s.named(np.zeros((2, 68, 4)))


def test_load_by_path_and_unknown_name(tmp_path):
    shipped = Path(LandmarkScheme.load("ibug68").path)
    copy = tmp_path / "my68.yaml"
    copy.write_text(shipped.read_text())
    s = LandmarkScheme.load(copy)
    assert s.name == "my68" and s.points == LandmarkScheme.load("ibug68").points
    with pytest.raises(InputError, match="unknown landmark scheme 'ibug86'.*ibug68"):
        LandmarkScheme.load("ibug86")
    # A rules directory's own landmarks/ folder is searched first.
    (tmp_path / "landmarks").mkdir()
    (tmp_path / "landmarks" / "custom.yaml").write_text(shipped.read_text())
    assert "custom" in LandmarkScheme.available(tmp_path)
    assert LandmarkScheme.load("custom", rules=tmp_path).n_points == 68


# ----------------------------------------------------------------------------- validation
GOOD = """\
format: fuzzyemo-landmarks/1
n_points: 68
points:
{points}
"""


def _scheme_text(extra: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> str:
    base = dict(LandmarkScheme.load("ibug68").points)
    lines = [f"  {k}: {list(v) if len(v) > 1 else v[0]}" for k, v in base.items() if k not in drop]
    for k, v in (extra or {}).items():
        lines.append(f"  {k}: {v}")
    return GOOD.format(points="\n".join(lines))


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1)
                if line.lstrip().startswith(needle))


def test_minimal_scheme_without_template_loads(tmp_path):
    f = tmp_path / "mini.yaml"
    f.write_text(_scheme_text())
    s = LandmarkScheme.load(f)
    assert s.template is None
    with pytest.raises(InputError, match="no neutral 'template'"):
        s.template_landmarks()


def test_unknown_point_name_gives_path_and_line(tmp_path):
    text = _scheme_text({"left_brow_middle": "24"})
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(RuleBaseError) as exc:
        LandmarkScheme.load(f)
    line = _line_of(text, "left_brow_middle")
    assert f"{f}:{line}:" in str(exc.value)
    assert "unknown point name 'left_brow_middle'" in str(exc.value)
    assert "did you mean" in str(exc.value)


def test_index_out_of_range_gives_path_and_line(tmp_path):
    text = _scheme_text({"left_pupil": "[42, 68]", "right_pupil": "-1"})
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(RuleBaseError) as exc:
        LandmarkScheme.load(f)
    msg = str(exc.value)
    assert f"{f}:{_line_of(text, 'left_pupil')}:" in msg and "index 68 is out of range" in msg
    assert f"{f}:{_line_of(text, 'right_pupil')}:" in msg and "index -1 is out of range" in msg
    assert len(exc.value.problems) == 2


def test_missing_required_bad_format_and_template(tmp_path):
    text = _scheme_text(drop=("chin", "nose_tip")).replace("fuzzyemo-landmarks/1", "landmarks/0")
    text += "template:\n  - [0, 0]\n"
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(RuleBaseError) as exc:
        LandmarkScheme.load(f)
    msg = str(exc.value)
    assert f"{f}:1:" in msg and "format must be" in msg
    assert f"{f}:{_line_of(text, 'points:')}:" in msg and "missing required point(s)" in msg
    assert "nose_tip" in msg and "chin" in msg
    assert f"{f}:{_line_of(text, 'template:')}:" in msg and "1 rows but n_points = 68" in msg


def test_non_integer_index_and_unknown_key(tmp_path):
    text = _scheme_text({"left_pupil": "43.5"}) + "colour: red\n"
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(RuleBaseError) as exc:
        LandmarkScheme.load(f)
    msg = str(exc.value)
    assert f"{f}:{_line_of(text, 'left_pupil')}:" in msg and "must be an integer" in msg
    assert f"{f}:{_line_of(text, 'colour')}:" in msg and "unknown key 'colour'" in msg


def test_unreadable_and_invalid_yaml(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("format: [unclosed\n")
    with pytest.raises(RuleBaseError, match=r"broken\.yaml:\d+:\d+: invalid YAML"):
        LandmarkScheme.load(f)
    with pytest.raises(RuleBaseError, match="cannot read file"):
        LandmarkScheme.load(tmp_path / "absent.yaml")
