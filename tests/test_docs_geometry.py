"""docs/geometry.md says what the code does: its code block runs, its tables and numbers are
the shipped schemes', calibration's and code's, and its measurements on real photographs
(MediaPipe, skipped when it is not installed) are what the page states.

Numbers are read from the page, so a test fails when the page and the code disagree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from docs_fixtures import first_table

from fuzzyemo import RuleBase
from fuzzyemo._errors import InputError, RuleBaseError
from fuzzyemo._geometry import (
    RAW_FEATURES,
    Baseline,
    Calibration,
    align,
    measure,
    raw_features,
)
from fuzzyemo._landmarks import _TOP_KEYS, FORMAT, POINTS, REQUIRED, LandmarkScheme
from fuzzyemo._vocab import COMPONENTS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "geometry.md"
TEXT = DOC.read_text(encoding="utf-8")
C = {c: i for i, c in enumerate(COMPONENTS)}
SCHEME_OF = {"iBUG-68": "ibug68", "DISFA-66": "disfa66", "WFLW-98": "wflw98",
             "MediaPipe-478": "mediapipe478", "iBUG": "ibug68", "WFLW": "wflw98",
             "MediaPipe": "mediapipe478"}


def section(title_start: str) -> str:
    """The page's text from the heading starting with ``title_start`` to the next heading of
    the same or a higher level."""
    m = re.search(rf"^(#+) {re.escape(title_start)}.*$", TEXT, re.M)
    assert m, f"no heading {title_start!r} in {DOC}"
    level = len(m.group(1))
    nxt = re.compile(rf"^#{{1,{level}}} ", re.M).search(TEXT, m.end())
    return TEXT[m.end(): nxt.start() if nxt else len(TEXT)]


def table(text: str) -> list[list[str]]:
    """The first markdown table in ``text``: header row first, separator dropped."""
    rows = first_table(text)
    assert rows, "no table found"
    return rows


def number(pattern: str, text: str = TEXT) -> float:
    m = re.search(pattern, " ".join(text.split()))
    assert m, f"the page no longer says {pattern!r}"
    return float(m.group(1))


def placed(p: np.ndarray, angle_deg: float, scale: float = 140.0,
           shift: tuple[float, float] = (320.0, 240.0)) -> np.ndarray:
    t = np.radians(angle_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (np.asarray(p) @ rot.T) * scale + np.asarray(shift)


def frames_of(scheme: str, n: int = 6, seed: int = 0) -> np.ndarray:
    """n frames of a scheme's template in pixels: rolled, with landmark jitter; frame 0 exact."""
    rng = np.random.default_rng(seed)
    t = LandmarkScheme.load(scheme).template_landmarks()[0]
    out = [placed(t, 0.0)]
    for _ in range(n - 1):
        out.append(placed(t + rng.normal(0, 0.01, t.shape), rng.uniform(-20, 20)))
    return np.stack(out)


# ----------------------------------------------------------------------------- the code block
def test_python_block_runs_with_the_stated_shapes():
    blocks = re.findall(r"```python\n(.*?)```", TEXT, re.S)
    assert len(blocks) == 1
    ns: dict = {"neutral_lm": frames_of("ibug68", 1)[0],
                "subject_ids": np.array(["a", "a", "a", "b", "b", "b"]),
                "bs": np.zeros((6, 52))}
    ran = 0
    for stmt in blocks[0].splitlines():
        if not stmt.strip():
            continue
        # The lines are alternatives for different schemes: give each its scheme's landmarks.
        m = re.search(r'measure\(landmarks, "(\w+)"', stmt)
        if m:
            ns["landmarks"] = frames_of(m.group(1))
        exec(stmt, ns)
        if m:
            ran += 1
            x = ns["x"]
            assert x.shape == (6, 12), stmt
            assert np.isfinite(x).all() and (np.abs(x) <= 1).all(), stmt
            if "baseline=" not in stmt:  # population baseline: the template is within the
                assert np.abs(x[0]).max() < 0.35   # population's ordinary spread
    assert ran == 4


# ----------------------------------------------------------------------------- section 1
def _indices(cell: str) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in re.findall(r"\d+", tok))
            for tok in re.findall(r"\[[\d,\s]+\]|\d+", cell)]


def test_point_name_table_is_the_shipped_schemes():
    rows = table(section("Point names"))
    header, body = rows[0], rows[1:]
    schemes = {col: LandmarkScheme.load(SCHEME_OF[h]) for col, h in enumerate(header) if
               h in SCHEME_OF}
    assert sorted(s.name for s in schemes.values()) == sorted(LandmarkScheme.available())
    ibug_col = header.index("iBUG-68")
    named = set()
    for row in body:
        spans = re.findall(r"`(\w+)`", row[0])
        names = [spans[0]] + [spans[0].rsplit("_", 1)[0] + s if s.startswith("_") else s
                              for s in spans[1:]]
        named.update(names)
        for col, scheme in schemes.items():
            cell = row[ibug_col] if row[col] == "same" else row[col]
            idx = _indices(cell)
            assert len(idx) == len(names), row
            for name, i in zip(names, idx, strict=True):
                assert scheme.points[name] == i, (scheme.name, name, scheme.points[name], i)
    assert named == set(REQUIRED)


def test_optional_points_paragraph_is_the_shipped_schemes():
    para = " ".join(re.search(r"Optional: (.*?)The full vocabulary", TEXT, re.S).group(1).split())
    stated: dict[str, dict[str, tuple[int, ...]]] = {}
    groups = re.findall(r"((?:`\w+`(?: / )?)+) \(([^)]*)\)", para)
    assert len(groups) == 3
    for names_text, where in groups:
        names = re.findall(r"`(\w+)`", names_text)
        for part in where.split(", "):
            label, nums = part.split(" ", 1)
            idx = [int(v) for v in nums.split(" / ")]
            for name, i in zip(names, idx, strict=True):
                stated.setdefault(SCHEME_OF[label], {})[name] = (i,)
    for name in LandmarkScheme.available():
        s = LandmarkScheme.load(name)
        optional = {k: v for k, v in s.points.items() if k not in REQUIRED}
        assert optional == stated.get(name, {}), name
    # Required + optional names are the whole vocabulary.
    assert set(POINTS) == set(REQUIRED) | {n for d in stated.values() for n in d}


def test_yaml_example_is_a_valid_scheme_excerpt():
    block = re.search(r"```yaml\n(.*?)```", TEXT, re.S).group(1)
    data = yaml.safe_load("\n".join(ln for ln in block.splitlines() if ln.strip() != "..."))
    assert set(data) <= set(_TOP_KEYS)
    assert data["format"] == FORMAT
    ibug = LandmarkScheme.load("ibug68")
    assert data["description"] == ibug.description and data["n_points"] == ibug.n_points
    for name, v in data["points"].items():
        assert ibug.points[name] == tuple(v if isinstance(v, list) else [v])
    np.testing.assert_allclose(data["template"][0], ibug.template[0], atol=1e-4)
    assert set(data["population"]) <= set(RAW_FEATURES)


def test_disfa_is_ibug_without_the_inner_mouth_corners():
    ib, df = LandmarkScheme.load("ibug68"), LandmarkScheme.load("disfa66")
    keep = [i for i in range(68) if i not in (60, 64)]
    for name, idx in df.points.items():
        assert tuple(keep[i] for i in idx) == ib.points[name], name


def test_mediapipe_and_ibug_templates_agree_within_the_stated_iod():
    tol = number(r"agree point by point within ([\d.]+) IOD")
    ib, mp = LandmarkScheme.load("ibug68"), LandmarkScheme.load("mediapipe478")
    a = align(ib.named(ib.template_landmarks()))
    b = align(mp.named(mp.template_landmarks()))
    gaps = {n: float(np.linalg.norm(a[n] - b[n])) for n in set(a) & set(b)}
    assert max(gaps.values()) < tol, gaps


def test_scheme_lookup_order_and_more_validation(tmp_path, monkeypatch):
    """Names: <rules>/landmarks, then $FUZZYEMO_RULES/landmarks, then shipped; an index
    listed twice and an unknown top-level key (with a did-you-mean) are path:line:col."""
    text = Path(LandmarkScheme.load("ibug68").path).read_text()
    env, rules = tmp_path / "env", tmp_path / "rules"
    for d, desc in ((env, "from env"), (rules, "from rules")):
        (d / "landmarks").mkdir(parents=True)
        (d / "landmarks" / "ibug68.yaml").write_text(
            text.replace("description: iBUG", f"description: {desc} iBUG"))
    monkeypatch.setenv("FUZZYEMO_RULES", str(env))
    assert LandmarkScheme.load("ibug68", rules=rules).description.startswith("from rules")
    assert LandmarkScheme.load("ibug68").description.startswith("from env")
    monkeypatch.delenv("FUZZYEMO_RULES")
    assert LandmarkScheme.load("ibug68").description.startswith("iBUG")

    bad = text.replace("right_eye_top: [37, 38]", "right_eye_top: [37, 37]").replace(
        "n_points: 68", "n_points: 68\nn_point: 68")
    f = tmp_path / "bad.yaml"
    f.write_text(bad)
    with pytest.raises(RuleBaseError) as exc:
        LandmarkScheme.load(f)
    lines = bad.splitlines()
    twice = next(i for i, s in enumerate(lines, 1) if "[37, 37]" in s)
    key = next(i for i, s in enumerate(lines, 1) if s.startswith("n_point:"))
    msg = str(exc.value)
    assert re.search(rf"{re.escape(str(f))}:{twice}:\d+: .*index 37 is listed twice", msg)
    assert re.search(rf"{re.escape(str(f))}:{key}:\d+: unknown key 'n_point'.*n_points", msg)


# ----------------------------------------------------------------------------- section 3
def test_raw_feature_table_and_formulas():
    rows = table(section("3. The 12 raw features"))[1:]
    assert [int(r[0]) for r in rows] == list(range(1, 13))
    assert tuple(r[1] for r in rows) == COMPONENTS
    assert tuple(r[2].strip("`") for r in rows) == RAW_FEATURES

    ib = LandmarkScheme.load("ibug68")
    rng = np.random.default_rng(3)
    t = ib.template_landmarks()[0]
    lm = np.stack([placed(t + rng.normal(0, 0.03, t.shape), a) for a in (-30, 5, 80)])
    named = ib.named(lm)
    a = align(named)

    def y(n):
        return a[n][:, 1]

    def dist(p, q):
        return np.linalg.norm(a[p] - a[q], axis=1)

    lip_centre = (y("upper_lip_bottom") + y("lower_lip_top")) / 2
    expected = {
        "left_brow_height": (y("left_brow_inner") + y("left_brow_centre")
                             + y("left_brow_outer")) / 3,
        "right_brow_height": (y("right_brow_inner") + y("right_brow_centre")
                              + y("right_brow_outer")) / 3,
        "glabella_opening": dist("left_brow_inner", "right_brow_inner")
        + (y("left_brow_inner") + y("right_brow_inner")) / 2,
        "left_eye_opening": (y("left_eye_top") - y("left_eye_bottom"))
        / dist("left_eye_outer", "left_eye_inner"),
        "right_eye_opening": (y("right_eye_top") - y("right_eye_bottom"))
        / dist("right_eye_outer", "right_eye_inner"),
        "nose_length": -(y("left_ala") + y("right_ala")) / 2,
        "ala_width": dist("left_ala", "right_ala"),
        "mouth_height": y("upper_lip_top") - y("lower_lip_bottom"),
        "upper_lip_thickness": y("upper_lip_top") - y("upper_lip_bottom"),
        "lower_lip_thickness": y("lower_lip_top") - y("lower_lip_bottom"),
        "left_corner_height": y("left_mouth_corner") - lip_centre,
        "right_corner_height": y("right_mouth_corner") - lip_centre,
    }
    raw = raw_features(named)
    for i, f in enumerate(RAW_FEATURES):
        np.testing.assert_allclose(raw[:, i], expected[f], atol=1e-12, err_msg=f)


# ----------------------------------------------------------------------------- section 4
def test_calibration_table_is_the_shipped_calibration_and_neutrals():
    from fuzzyemo._mediapipe import BLENDSHAPE_NAMES

    rows = table(section("4. Calibration"))
    header, body = rows[0], rows[1:]
    assert header == ["component", "feature", "sign", "plus", "minus", "spread",
                      "blendshapes: +1 term / -1 term", "weight"]
    cal = Calibration.default()
    assert [r[0] for r in body] == list(COMPONENTS)

    def terms(cell: str) -> list[tuple[str, float]]:
        out = []
        for part in (p.strip() for p in cell.split(",") if p.strip()):
            name, *w = part.split()
            out.append((name, float(w[0]) if w else 1.0))
        return out

    for i, (row, c) in enumerate(zip(body, cal.components, strict=True)):
        assert row[1] == c.feature == RAW_FEATURES[i]
        assert int(row[2]) == c.sign and float(row[3]) == c.plus and float(row[4]) == c.minus
        assert float(row[5]) == c.spread
        b = c.blendshapes
        if b is None:
            assert row[6] == "-" and row[7] == "-", row[0]
            continue
        plus, minus = row[6].split(" / ")
        assert terms(plus) == [(BLENDSHAPE_NAMES[j], w) for j, w in b.plus], row[0]
        assert terms(minus) == [(BLENDSHAPE_NAMES[j], w) for j, w in b.minus], row[0]
        assert float(row[7]) == b.weight


def test_blendshape_claims_of_section_4():
    """'noseSneer never fires' and 'neutral people's mouthSmile below 0.03 for 80%': the
    shipped constants say so (benchmarks/calibrate.py measured them on the dev split)."""
    cal = Calibration.default()
    para = " ".join(section("4. Calibration").split())
    smile = cal.components[C["left_mouth_corner"]].blendshapes
    stated = number(r"`bs_mouthSmile\*` below ([\d.]+) for 80% of them", para)
    assert smile.neutral[0] + smile.spread[0] <= stated + 0.005  # 90th percentile even
    assert cal.components[C["nose"]].blendshapes is None
    assert cal.components[C["nostril"]].blendshapes is None
    assert number(r"The `nose` dead zone \(([\d.]+)\)", para) == cal.components[C["nose"]].spread
    assert number(r"is larger than its `plus` \(([\d.]+)\)", para) == cal.components[C["nose"]].plus


def test_fcis_terms_are_full_at_the_stated_x_and_nose_nostril_are_one_sided():
    full = number(r"the \+-1 terms reach full membership at \|x\| = ([\d.]+)")
    for comp in RuleBase.default().components:
        for term in comp.terms:
            if term.code:
                s = term.code
                assert float(term.mf(s * full)) == 1.0, (comp.name, term.name)
                assert float(term.mf(s * (full - 0.01))) < 1.0, (comp.name, term.name)
        codes = {t.code for t in comp.terms}
        if comp.name in ("nose", "nostril"):
            assert codes == {0, 1}
        else:
            assert codes == {-1, 0, 1}


def test_calibration_load_rules(tmp_path, monkeypatch):
    shipped = Path(Calibration.default().path)
    text = shipped.read_text()
    assert Calibration.default().sha256 == hashlib.sha256(shipped.read_bytes()).hexdigest()
    # A directory without calibration.yaml means the shipped file.
    assert Calibration.load(tmp_path).path == Calibration.default().path
    # None means $FUZZYEMO_RULES/calibration.yaml when present.
    (tmp_path / "calibration.yaml").write_text(text.replace("plus: 0.12", "plus: 0.24", 1))
    monkeypatch.setenv("FUZZYEMO_RULES", str(tmp_path))
    assert Calibration.load().components[0].plus == 0.24
    monkeypatch.setenv("FUZZYEMO_RULES", str(tmp_path / "nowhere"))
    assert Calibration.load().path == Calibration.default().path
    # Unknown component, a sign other than +-1, a missing component: path:line:col each.
    bad = text.replace("  nostril:", "  nostrill:").replace("    sign: -1", "    sign: 2", 1)
    f = tmp_path / "bad.yaml"
    f.write_text(bad)
    with pytest.raises(RuleBaseError) as exc:
        Calibration.load(f)
    lines = bad.splitlines()
    msg = str(exc.value)
    for needle, what in (("  nostrill:", "unknown component 'nostrill'"),
                         ("sign: 2", "sign must be 1 or -1"),
                         ("components:", "missing component(s): nostril")):
        line = next(i for i, s in enumerate(lines, 1) if s.strip() == needle.strip())
        assert re.search(rf"{re.escape(str(f))}:{line}:\d+: .*{re.escape(what)}", msg), what


# ----------------------------------------------------------------------------- section 5
def test_self_calibration_is_the_described_algorithm():
    rng = np.random.default_rng(5)
    raw = Baseline.population("ibug68").values + rng.normal(0, 0.05, (50, 12))
    raw[rng.random(50) < 0.3] += 0.1  # expressive frames
    raw[7, 3] = np.nan                # an incomplete frame is left out
    cal = Calibration.default()
    complete = raw[np.isfinite(raw).all(axis=1)]
    ref = np.median(complete, axis=0)                         # step 1
    k = max(1, round(0.1 * len(complete)))
    for _ in range(2):                                        # steps 2-3, then once more
        score = np.abs(np.clip(cal.apply(complete, ref, clip=False), -1, 1)).sum(axis=1)
        ref = np.median(complete[np.argsort(score)[:k]], axis=0)
    b = Baseline.self_calibrate(raw)
    np.testing.assert_allclose(b.values, ref)
    assert b.n_frames == k
    # "at least one" frame.
    assert Baseline.self_calibrate(raw[:3], fraction=0.01).n_frames == 1


def test_baseline_save_is_json_and_load_reads_yaml_too(tmp_path):
    b = Baseline.population("ibug68")
    f = tmp_path / "b.json"
    b.save(f)
    data = json.loads(f.read_text())
    assert list(data["features"]) == list(RAW_FEATURES)
    y = tmp_path / "b.yaml"
    y.write_text(yaml.safe_dump(data))
    np.testing.assert_array_equal(Baseline.load(y).values, b.values)
    del data["features"]["ala_width"]
    f.write_text(json.dumps(data))
    with pytest.raises(InputError, match="missing raw feature.*ala_width"):
        Baseline.load(f)


# ----------------------------------------------------------------------------- section 7
def test_opening_the_mouth_and_blinking():
    """Corner height rises by gap/2 - corner drop; a closed eye reads x = -1."""
    ib = LandmarkScheme.load("ibug68")
    t = ib.template_landmarks()[0]
    i = {f: RAW_FEATURES.index(f) for f in RAW_FEATURES}
    base = raw_features(ib.named(t[None]))[0]
    for gap, drop in ((0.2, 0.0), (0.2, 0.05), (0.2, 0.1), (0.2, 0.15)):
        p = t.copy()
        p[[55, 56, 57, 58, 59, 65, 66, 67], 1] += gap   # y down: the lower lip drops
        p[[48, 54, 60, 64], 1] += drop
        raw = raw_features(ib.named(p[None]))[0]
        for side in ("left", "right"):
            rise = raw[i[f"{side}_corner_height"]] - base[i[f"{side}_corner_height"]]
            assert rise == pytest.approx(gap / 2 - drop, abs=1e-9)
    p = t.copy()
    p[[37, 38, 43, 44]] = p[[41, 40, 47, 46]]           # lids shut
    x = measure(placed(p, 10)[None], ib)[0]
    assert x[C["left_eye"]] == -1 and x[C["right_eye"]] == -1


# ----------------------------------------------------------------------------- section 8
def _params(obj) -> list[inspect.Parameter]:
    ps = list(inspect.signature(obj).parameters.values())
    return ps[1:] if ps and ps[0].name == "self" else ps


def _check_signature(obj, doc_params: str, exact: bool) -> None:
    items = [s.strip() for s in doc_params.split(",") if s.strip()]
    actual = _params(obj)
    names = [p.name for p in actual]
    if exact:
        assert [s.split("=")[0] for s in items if s != "*"] == names, (obj, doc_params)
    for j, item in enumerate(items):
        if item == "*":
            nxt = items[j + 1].split("=")[0]
            assert actual[names.index(nxt)].kind is inspect.Parameter.KEYWORD_ONLY, obj
        elif "=" in item:
            name, default = item.split("=")
            assert name in names, (obj, name)
            assert repr(actual[names.index(name)].default) == default, (obj, item)
    assert len([s for s in items if s != "*"]) <= len(actual), (obj, doc_params)


def test_api_summary_names_and_signatures():
    body = section("8. API summary")
    bullets = re.split(r"^\* ", body, flags=re.M)[1:]
    checked = 0
    for bullet in bullets:
        spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", bullet)]
        module = importlib.import_module(spans[0])
        owner = None
        for span in spans[1:]:
            m = re.fullmatch(r"(\.?)([\w.]+)(?:\((.*)\))?", span)
            assert m, span
            dot, name, params = m.groups()
            if dot:
                fields = {f.name for f in dataclasses.fields(owner)}
                assert hasattr(owner, name) or name in fields, (owner, name)
                obj = getattr(owner, name, None)
            else:
                obj = module
                for part in name.split("."):
                    obj = getattr(obj, part)
                top = getattr(module, name.split(".")[0])
                owner = top if inspect.isclass(top) else owner
            if params is not None:
                _check_signature(obj, params, exact=True)
            checked += 1
    assert checked > 20


def test_signatures_quoted_in_the_prose():
    """`Class.method(a, k=v)` in sections 1-7: the defaults are the code's."""
    prose = TEXT[: TEXT.index("## 8. API summary")]
    spans = re.findall(r"`(Baseline|Calibration|LandmarkScheme)\.(\w+)\(([^`]*)\)`", prose)
    assert len(spans) >= 8
    for cls, meth, params in spans:
        _check_signature(getattr(globals()[cls], meth), " ".join(params.split()), exact=False)


def test_figure_script_runs(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "geometry.png"
    script = ROOT / "docs" / "img" / "make_geometry_figure.py"
    assert f"python {script.relative_to(ROOT)}" in TEXT
    subprocess.run([sys.executable, str(script), str(out)], check=True, cwd=ROOT,
                   capture_output=True, timeout=60)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- real faces
@pytest.fixture(scope="module")
def photos():
    """MediaPipe landmarks of skimage's astronaut and of matplotlib's grace_hopper.jpg, the
    latter also mirrored, at half size and rotated by 10 degrees."""
    pytest.importorskip("mediapipe")
    cv2 = pytest.importorskip("cv2")
    data = pytest.importorskip("skimage.data")
    cbook = pytest.importorskip("matplotlib.cbook")
    from fuzzyemo._mediapipe import FaceLandmarker

    grace = cv2.cvtColor(cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg",
                                                              asfileobj=False))),
                         cv2.COLOR_BGR2RGB)
    h, w = grace.shape[:2]
    images = {"astronaut": np.ascontiguousarray(data.astronaut()), "grace": grace,
              "mirror": np.ascontiguousarray(grace[:, ::-1]),
              "half": cv2.resize(grace, (w // 2, h // 2)),
              "rotated": cv2.warpAffine(grace, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.0),
                                        (w, h))}
    with FaceLandmarker("image") as lm:
        out = {k: lm.detect(v).landmarks.astype(float) for k, v in images.items()}
    assert all(v.shape == (1, 478, 3) for v in out.values())
    return out


MP = "mediapipe478"
SWAP = [1, 0, 2, 4, 3, 5, 6, 7, 8, 9, 11, 10]  # left <-> right features


def test_real_photographs_read_as_stated(photos):
    lim = " ".join(section("7. Limits").split())
    x = measure(photos["astronaut"], MP)[0]
    m = re.search(r"both mouth corners read ([+-][\d.]+) and ([+-][\d.]+)", lim)
    assert m, "the astronaut sentence changed"
    assert x[C["left_mouth_corner"]] == pytest.approx(float(m.group(1)), abs=0.02)
    assert x[C["right_mouth_corner"]] == pytest.approx(float(m.group(2)), abs=0.02)
    assert x[C["nostril"]] == pytest.approx(number(r"the nostrils ([+-][\d.]+)", lim), abs=0.02)
    for comp, pattern in (("mouth", r"the mouth reads ([+-]?[\d.]+)"),
                          ("upper_lip", r"the upper lip ([+-]?[\d.]+)"),
                          ("nose", r"the nose ([+-]?[\d.]+)"),
                          ("brow_crest", r"the brow crest ([+-]?[\d.]+)")):
        assert x[C[comp]] == pytest.approx(number(pattern, lim), abs=0.02), comp
    g = measure(photos["grace"], MP)[0]
    assert np.abs(g).max() == pytest.approx(number(r"reads within \+-([\d.]+) of 0", lim),
                                            abs=0.02)


def test_canonical_mesh_as_baseline_reads_as_stated(photos):
    para = " ".join(section("5. Baselines").split())
    m = re.search(r"read eyes \+([\d.]+) to \+([\d.]+), nostrils \+1 and mouth corners "
                  r"\+([\d.]+) to \+1", para)
    assert m, "the canonical-mesh sentence changed"
    eye_lo, eye_hi, corner_lo = map(float, m.groups())
    mp = LandmarkScheme.load(MP)
    mesh = Baseline(raw_features(mp.named(mp.template_landmarks()))[0])
    x = np.concatenate([measure(photos[k], MP, baseline=mesh) for k in ("astronaut", "grace")])
    eyes = x[:, [C["left_eye"], C["right_eye"]]]
    corners = x[:, [C["left_mouth_corner"], C["right_mouth_corner"]]]
    assert eyes.min() == pytest.approx(eye_lo, abs=0.02)
    assert eyes.max() == pytest.approx(eye_hi, abs=0.02)
    assert (x[:, C["nostril"]] == 1).all()
    assert corners.min() == pytest.approx(corner_lo, abs=0.02) and corners.max() == 1


def _grace_raw(photos) -> np.ndarray:
    """Raw features of the four grace_hopper variants, mirrored one with left/right swapped
    (a mirror image shows the subject's left side as a right side)."""
    mp = LandmarkScheme.load(MP)
    raw = np.stack([raw_features(mp.named(photos[k][:, :, :2]))[0]
                    for k in ("grace", "mirror", "half", "rotated")])
    raw[1] = raw[1][SWAP]
    return raw


def test_population_blocks_are_the_measured_ones():
    """Section 5: MediaPipe's population is the dev split's 25 people (mediapipe478.yaml's
    comment says so); the 68-point schemes share one population, within a few hundredths
    of MediaPipe's (the measured difference between the schemes' point placements)."""
    para = " ".join(section("5. Baselines").split())
    people = int(number(r"on the dev split's (\d+) people", para))
    text = Path(LandmarkScheme.load(MP).path).read_text()
    assert f"on {people} people" in " ".join(text.split())
    ib = Baseline.population("ibug68").values
    for name in ("disfa66", "wflw98"):
        np.testing.assert_allclose(Baseline.population(name).values, ib)
    assert np.abs(ib - Baseline.population(MP).values).max() < 0.1
    assert Baseline.population(MP).is_population


def test_landmark_jitter_as_stated(photos):
    lim = " ".join(section("7. Limits").split())
    m = re.search(r"by ([\d.]+)-([\d.]+) IOD \(standard deviation\), i\.e\. up to ~([\d.]+) in x "
                  r"for the lips .*? and ~([\d.]+)-([\d.]+) elsewhere", lim)
    assert m, "the jitter sentence changed"
    lo, hi, lips, else_lo, else_hi = map(float, m.groups())
    sd = _grace_raw(photos).std(axis=0)
    assert lo - 0.001 <= sd.min() and sd.max() <= hi + 0.001, sd
    in_x = sd / Calibration.default().plus
    lip = [C[c] for c in ("mouth", "upper_lip", "lower_lip", "left_mouth_corner",
                          "right_mouth_corner")]
    rest = [i for i in range(12) if i not in lip]
    assert in_x[lip].max() == pytest.approx(lips, abs=0.02)
    assert else_lo - 0.01 <= in_x[rest].min() and in_x[rest].max() <= else_hi + 0.01, in_x


def test_head_pitch_moves_the_alar_base_as_stated(photos):
    """Turn the 3-D MediaPipe landmarks by +-10 degrees of pitch about the eye line and
    project them: nose_length changes by about the stated amount, a full nose unit."""
    shift = number(r"at 10 degrees of pitch the alar base shifts by about ([\d.]+) IOD")
    plus = number(r"more than half a `nose` unit \(its `plus` is ([\d.]+)\)")
    assert Calibration.default().components[C["nose"]].plus == plus and shift > plus / 2
    mp = LandmarkScheme.load(MP)
    i = RAW_FEATURES.index("nose_length")
    moves = []
    for k in ("astronaut", "grace"):
        lm = photos[k][0]
        centre = lm[[33, 133, 263, 362]].mean(axis=0)
        before = raw_features(mp.named(lm[None, :, :2]))[0, i]
        for deg in (10, -10):
            t = math.radians(deg)
            rot = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)],
                            [0, math.sin(t), math.cos(t)]])
            turned = (lm - centre) @ rot.T + centre
            moves.append(abs(raw_features(mp.named(turned[None, :, :2]))[0, i] - before))
    assert 0.5 * shift <= np.mean(moves) <= 1.5 * shift, moves


def test_au_table_is_the_shipped_mapping():
    from fuzzyemo._aus import AuMapping

    m = AuMapping.load()
    rows = table(section("5b. AU intensities"))[1:]
    seen = set()
    for row in rows:
        for comp in (c.strip() for c in row[0].split(",")):
            r = m.readings[C[comp]]
            for cell, terms in ((row[1], r.plus), (row[2], r.minus)):
                want = [] if cell == "-" else [(p.split()[0], float(p.split()[1]))
                                               for p in cell.split(", ")]
                assert want == list(terms), (comp, cell)
            seen.add(comp)
    assert seen == set(COMPONENTS)

