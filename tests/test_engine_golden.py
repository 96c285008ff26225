"""Golden input/output tables for tiny rule bases, every value derived by hand.

Each case writes a minimal rule base (a temporary copy of rules/ with every file
replaced), feeds hand-picked rows and compares with values computed analytically in the
comments (areas and first moments of the clipped / scaled intensity sets over U = [0, 1]).
Nothing here depends on the shipped rules.

Our FCIS for every case (lambda = reference, so no scaling):
    three-term components: low  trapmf [-1, -1, -0.5, 0]   -> mu = -2x      on [-0.5, 0]
                           normal trimf [-0.5, 0, 0.5]      -> mu = 1 - 2|x| on [-0.5, 0.5]
                           high trapmf [0, 0.5, 1, 1]       -> mu = 2x       on [0, 0.5]
    nose / nostril:        normal trapmf [-1, -1, 0, 0.5], high trapmf [0, 0.5, 1, 1]
so a condition "component is high" has membership exactly 2x for x in [0, 0.5]: x = h / 2
gives a firing strength of exactly h (powers of two keep it exact in binary).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from fuzzyemo import COMPONENT_TERMS, COMPONENTS, EMOTIONS, RuleBase, default_rules_dir

ANGER = EMOTIONS.index("anger")
MOUTH, LEFT_EYE, NOSE = (COMPONENTS.index(c) for c in ("mouth", "left_eye", "nose"))
TOL_ECC = 1e-6  # the exact centroid's own accuracy for firing strengths >= 1e-3
TOL_SPEC = 1e-4  # SPEC section 3 "Accuracy"
TOL_ACT = 1e-7  # memberships may be computed in float32
TOL_SCORE = 1e-5  # s = a * nu(eps): eps error times the steepest slope used (1/0.1)


def _fcis() -> dict[str, Any]:
    comps = {}
    for name, terms in COMPONENT_TERMS.items():
        out = {}
        for code, term in terms.items():
            if code == -1:
                mf = {"mf": "trapmf", "params": [-1, -1, -0.5, 0]}
            elif code == 1:
                mf = {"mf": "trapmf", "params": [0, 0.5, 1, 1]}
            elif -1 in terms:
                mf = {"mf": "trimf", "params": [-0.5, 0, 0.5]}
            else:
                mf = {"mf": "trapmf", "params": [-1, -1, 0, 0.5]}
            out[term] = {"code": code, **mf}
        comps[name] = {"description": name, "terms": out}
    return {"format": "fuzzyemo-fcis/1", "lambda": 0.4, "lambda_reference": 0.4,
            "components": comps}


PLAIN = {"low": {"mf": "trapmf", "params": [0, 0, 0.1, 0.3]},
         "medium": {"mf": "trimf", "params": [0.2, 0.5, 0.8]},
         "high": {"mf": "trapmf", "params": [0.6, 0.9, 1, 1]}}


def build(dest: Path, anger_rules: list[dict[str, Any]], intensity: dict[str, Any],
          other_rules: dict[str, list[dict[str, Any]]] | None = None, **engine: Any) -> RuleBase:
    """A rule base whose only rules are anger's (and ``other_rules``, emotion -> rules, with
    the PLAIN intensity functions); other emotions have none."""
    shutil.copytree(default_rules_dir(), dest)
    (dest / "fcis.yaml").write_text(yaml.safe_dump(_fcis(), sort_keys=False))
    (dest / "engine.yaml").write_text(yaml.safe_dump({"format": "fuzzyemo-engine/1", **engine}))
    for emo in EMOTIONS:
        rules = anger_rules if emo == "anger" else (other_rules or {}).get(emo, [])
        doc = {"format": "fuzzyemo-fkis/1", "emotion": emo, "lambda": 0.4,
               "lambda_reference": 0.4, "intensity": intensity if emo == "anger" else PLAIN,
               "rules": [{"id": f"{emo}-{i}", "source": "golden", **r}
                         for i, r in enumerate(rules)]}
        (dest / "fkis" / f"{emo}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return RuleBase.load(dest)


def row(**values: float) -> np.ndarray:
    x = np.zeros(12)
    for name, v in values.items():
        x[COMPONENTS.index(name)] = v
    return x


# ============================================================================ case 1
# One rule "mouth is open -> anger is medium", medium = trimf [0, 0.2, 1] (asymmetric),
# min implication: B(u) = min(h, tri(u)) with tri = 5u on [0, 0.2], 1.25 (1 - u) on [0.2, 1].
# B is the trapezoid: rise on [0, 0.2h] (B = 5u), flat h on [0.2h, 1 - 0.8h], fall on
# [1 - 0.8h, 1] (B = 1.25 (1 - u)).
#   area   = 0.1 h^2 + h (1 - h) + 0.4 h^2 = h (2 - h) / 2
#   moment = int_0^{0.2h} 5u^2 du                      = 0.04 h^3 / 3
#          + int_{0.2h}^{1-0.8h} h u du                 = h ((1-0.8h)^2 - (0.2h)^2) / 2
#          + int_0^{0.8h} 1.25 v (1 - v) dv  (v = 1-u)  = 1.25 (0.32 h^2 - 0.512 h^3 / 3)
# h = 0.5: area = 0.375; moment = 1/600 + 7/80 + 11/150 = 195/1200 = 0.1625
#          eps = 0.1625 / 0.375 = 13/30 = 0.4333...
# h = 1:   the whole triangle: eps = (0 + 0.2 + 1) / 3 = 0.4
# h -> 0:  B -> h on [0, 1]: eps -> 0.5
# Scores with low = trapmf [0, 0, 0.1, 0.3], high = trapmf [0.6, 0.9, 1, 1]:
#   h = 0.5: nu_medium(13/30) = 1.25 (1 - 13/30) = 17/24; s_medium = 0.5 * 17/24 = 17/48;
#            low(13/30) = 0 (13/30 > 0.3), high = 0 (13/30 < 0.6)   -> anger_medium
#   h = 1:   nu_medium(0.4) = 1.25 * 0.6 = 0.75; s = 0.75            -> anger_medium
TRI = {"low": {"mf": "trapmf", "params": [0, 0, 0.1, 0.3]},
       "medium": {"mf": "trimf", "params": [0, 0.2, 1]},
       "high": {"mf": "trapmf", "params": [0.6, 0.9, 1, 1]}}


def clipped_triangle_centroid(h: float) -> float:
    area = 0.1 * h * h + h * (1 - h) + 0.4 * h * h
    moment = (0.04 * h**3 / 3 + h * ((1 - 0.8 * h) ** 2 - (0.2 * h) ** 2) / 2
              + 1.25 * (0.32 * h * h - 0.512 * h**3 / 3))
    return moment / area


def test_closed_form_matches_hand_values() -> None:
    """The closed form above reproduces the hand-computed fractions."""
    assert clipped_triangle_centroid(0.5) == pytest.approx(13 / 30, abs=1e-15)
    assert clipped_triangle_centroid(1.0) == pytest.approx(0.4, abs=1e-15)
    assert clipped_triangle_centroid(1e-9) == pytest.approx(0.5, abs=1e-9)


@pytest.fixture(scope="module")
def tri_rb(tmp_path_factory: pytest.TempPathFactory) -> RuleBase:
    return build(tmp_path_factory.mktemp("tri") / "rules",
                 [{"when": {"mouth": "open"}, "then": "medium"}], TRI)


GOLDEN_TRI = [
    # (h, eps, s_low, s_medium, s_high, label)
    (1.0, 0.4, 0.0, 0.75, 0.0, "anger_medium"),
    (0.5, 13 / 30, 0.0, 17 / 48, 0.0, "anger_medium"),
    # h = 0.25: area = 0.25 * 1.75 / 2 = 0.21875;
    # moment = 0.04/3/64 + 0.25 (0.64 - 0.0025)/2 + 1.25 (0.02 - 0.008/3)
    #        = 0.000208333 + 0.0796875 + 0.0216667 = 0.1015625 -> eps = 0.4642857 = 13/28
    # nu_medium(13/28) = 1.25 * 15/28 = 75/112; s = 0.25 * 75/112 = 75/448
    (0.25, 13 / 28, 0.0, 75 / 448, 0.0, "anger_medium"),
]


@pytest.mark.parametrize(("h", "eps", "s_low", "s_med", "s_high", "label"), GOLDEN_TRI)
def test_clipped_triangle(tri_rb: RuleBase, h: float, eps: float, s_low: float, s_med: float,
                          s_high: float, label: str) -> None:
    assert clipped_triangle_centroid(h) == pytest.approx(eps, abs=1e-12)
    res = tri_rb.compile().evaluate(row(mouth=h / 2)[None])
    assert res.activations[0, ANGER] == pytest.approx(h, abs=TOL_ACT)
    assert res.eccentricity[0, ANGER] == pytest.approx(eps, abs=TOL_ECC)
    np.testing.assert_allclose(res.scores[0, 3:6], [s_low, s_med, s_high], atol=TOL_SCORE)
    assert res.labels[0] == label
    # The other emotions have no rules: inactive, NaN eccentricity, zero scores.
    assert (np.delete(res.activations[0], ANGER) == 0).all()
    assert np.isnan(np.delete(res.eccentricity[0], ANGER)).all()
    assert (np.delete(res.scores[0], [3, 4, 5]) == 0).all()


@pytest.mark.parametrize("h", [0.9, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3])
def test_clipped_triangle_sweep(tri_rb: RuleBase, h: float) -> None:
    res = tri_rb.compile().evaluate(row(mouth=h / 2)[None])
    assert res.eccentricity[0, ANGER] == pytest.approx(clipped_triangle_centroid(h), abs=TOL_ECC)


@pytest.mark.parametrize("h", [2.5e-4, 1e-4, 1e-5, 1e-6])
def test_clipped_triangle_tiny_strength_meets_spec(tri_rb: RuleBase, h: float) -> None:
    """Very weak firing: eps -> 0.5 (B -> a flat strip). SPEC's 1e-4 must still hold."""
    res = tri_rb.compile().evaluate(row(mouth=h / 2)[None])
    assert res.eccentricity[0, ANGER] == pytest.approx(clipped_triangle_centroid(h), abs=TOL_SPEC)


def test_clipped_triangle_tiny_strength_is_exact(tri_rb: RuleBase) -> None:
    """A strength below one table step (1/4096) is still exact to 1e-6 (an earlier engine
    interpolated linearly from level 0 and returned the centroid at one step: 2e-5 off)."""
    res = tri_rb.compile().evaluate(row(mouth=0.5e-4)[None])
    assert res.eccentricity[0, ANGER] == pytest.approx(clipped_triangle_centroid(1e-4),
                                                       abs=1e-6)


# ============================================================================ case 2
# Two levels fire: "mouth is open -> low" at strength 1 (mouth = 0.5) and
# "left_eye is wide -> high" at 0.5 (left_eye = 0.25). low = trapmf [0, 0, 0.2, 0.4],
# high = trapmf [0.6, 0.8, 1, 1] (disjoint supports), medium = trimf [0.2, 0.5, 0.8].
# min implication: B = low(u) on [0, 0.4]  +  min(0.5, high(u)) on [0.6, 1].
#   low part:  area = (0.4 + 0.2) / 2 = 0.3
#              moment = int_0^0.2 u du + int_0.2^0.4 (2 - 5u) u du = 0.02 + 2/75 = 7/150
#   high part: rise (u - 0.6)/0.2 up to 0.5 at u = 0.7, then flat 0.5 on [0.7, 1]
#              area = 0.5 * 0.1 * 0.5 + 0.5 * 0.3 = 0.175
#              moment = int_0.6^0.7 (5u - 3) u du + 0.5 (1 - 0.49) / 2 = 1/60 + 0.1275
#   area = 0.475 = 570/1200; moment = 56/1200 + 20/1200 + 153/1200 = 229/1200
#   eps = 229/570 = 0.401754...
# a = max(1, 0.5) = 1; low(229/570) = 0 (> 0.4), high = 0 (< 0.6),
# medium(229/570) = (229/570 - 0.2) / 0.3 = 115/171 -> s_medium = 115/171: a low rule and a
# high rule together give a *medium* anger, the centroid's compromise.
#
# product implication: B = low(u) + 0.5 high(u) (disjoint supports)
#   high part: area 0.5 * (0.4 + 0.2) / 2 = 0.15,
#              moment 0.5 * (int_0.6^0.8 5 (u - 0.6) u du + int_0.8^1 u du)
#                     = 0.5 * (11/150 + 0.18) = 19/150
#   eps = (7/150 + 19/150) / 0.45 = 52/135 = 0.385185...
#   medium(52/135) = (52/135 - 0.2) / 0.3 = 250/405 = 50/81, and now eps < 0.4, so
#   low(52/135) = (0.4 - 52/135) / 0.2 = (2/135) / 0.2 = 2/27 as well (medium still wins)
SPLIT = {"low": {"mf": "trapmf", "params": [0, 0, 0.2, 0.4]},
         "medium": {"mf": "trimf", "params": [0.2, 0.5, 0.8]},
         "high": {"mf": "trapmf", "params": [0.6, 0.8, 1, 1]}}
TWO_RULES = [{"when": {"mouth": "open"}, "then": "low"},
             {"when": {"left_eye": "wide"}, "then": "high"}]


@pytest.mark.parametrize(("implication", "eps", "s_low", "s_med"),
                         [("min", 229 / 570, 0.0, 115 / 171),
                          ("product", 52 / 135, 2 / 27, 50 / 81)])
def test_two_levels(tmp_path: Path, implication: str, eps: float, s_low: float,
                    s_med: float) -> None:
    rb = build(tmp_path / "rules", TWO_RULES, SPLIT, implication=implication)
    res = rb.compile().evaluate(row(mouth=0.5, left_eye=0.25)[None])
    assert res.activations[0, ANGER] == pytest.approx(1.0, abs=TOL_ACT)
    assert res.eccentricity[0, ANGER] == pytest.approx(eps, abs=TOL_ECC)
    np.testing.assert_allclose(res.scores[0, 3:6], [s_low, s_med, 0.0], atol=TOL_SCORE)
    assert res.labels[0] == "anger_medium"
    # Explain shows both rules with their strengths.
    top = {r["rule"]: r["strength"] for r in rb.compile().explain(row(mouth=0.5, left_eye=0.25))}
    assert top["anger-0"] == pytest.approx(1.0) and top["anger-1"] == pytest.approx(0.5)


# ============================================================================ case 3
# Product implication, one rule: B = h * tri(u) is the triangle scaled, so its centroid
# is the triangle's, (a + b + c) / 3 = (0 + 0.2 + 1) / 3 = 0.4, for every h > 0.
@pytest.mark.parametrize("h", [1.0, 0.5, 0.125, 1 / 1024])
def test_product_implication_scaled_triangle(tmp_path: Path, h: float) -> None:
    rb = build(tmp_path / "rules", [{"when": {"mouth": "open"}, "then": "medium"}], TRI,
               implication="product")
    res = rb.compile().evaluate(row(mouth=h / 2)[None])
    assert res.eccentricity[0, ANGER] == pytest.approx(0.4, abs=TOL_ECC)
    # s_medium = h * nu_medium(0.4) = h * 1.25 * 0.6 = 0.75 h
    assert res.scores[0, 4] == pytest.approx(0.75 * h, abs=TOL_SCORE)


# ============================================================================ case 4
# Shoulders.
# (a) Right shoulder with a vertical right side, high = trapmf [0.5, 1, 1, 1], clipped at
#     h = 0.5: rise 2(u - 0.5) on [0.5, 0.75], flat 0.5 on [0.75, 1].
#     area = 0.5 * 0.25 * 0.5 + 0.5 * 0.25 = 0.1875 = 36/192
#     moment = int_0.5^0.75 (2u - 1) u du + 0.5 (1 - 0.5625) / 2 = 1/24 + 7/64 = 29/192
#     eps = 29/36 = 0.80555...
# (b) Left shoulder from the edge of U, low = trapmf [0, 0, 0.2, 0.6], full strength:
#     area = (0.6 + 0.2) / 2 = 0.4; moment = 0.02 + int_0.2^0.6 2.5 (0.6 - u) u du
#            = 0.02 + 1/15 = 13/150;  eps = 13/60 = 0.21666...
# (c) A shoulder reaching past U: high = trapmf [0.8, 1.2, 1.5, 1.5] at full strength is
#     only its ramp (u - 0.8)/0.4 on [0.8, 1] inside U (the universe is [0, 1]): a right
#     triangle, eps = 0.8 + 2/3 * 0.2 = 14/15 = 0.9333...
SHOULDERS = {
    "a": ({"low": {"mf": "trapmf", "params": [0, 0, 0.1, 0.2]},
           "medium": {"mf": "trimf", "params": [0.2, 0.35, 0.5]},
           "high": {"mf": "trapmf", "params": [0.5, 1, 1, 1]}}, "high", 0.5, 29 / 36),
    "b": ({"low": {"mf": "trapmf", "params": [0, 0, 0.2, 0.6]},
           "medium": {"mf": "trimf", "params": [0.5, 0.7, 0.9]},
           "high": {"mf": "trapmf", "params": [0.8, 0.9, 1, 1]}}, "low", 1.0, 13 / 60),
    "c": ({"low": {"mf": "trapmf", "params": [0, 0, 0.1, 0.2]},
           "medium": {"mf": "trimf", "params": [0.2, 0.5, 0.8]},
           "high": {"mf": "trapmf", "params": [0.8, 1.2, 1.5, 1.5]}}, "high", 1.0, 14 / 15),
}


@pytest.mark.parametrize("case", sorted(SHOULDERS))
def test_shoulders(tmp_path: Path, case: str) -> None:
    intensity, level, h, eps = SHOULDERS[case]
    rb = build(tmp_path / "rules", [{"when": {"mouth": "open"}, "then": level}], intensity)
    res = rb.compile().evaluate(row(mouth=h / 2)[None])
    assert res.eccentricity[0, ANGER] == pytest.approx(eps, abs=TOL_ECC)
    k = ("low", "medium", "high").index(level)
    mf = intensity[level]["params"]
    # s at eps by hand: (a) high(29/36) = (29/36 - 0.5) / 0.5 = 11/18 -> s = 0.5 * 11/18
    #                   (b) low(13/60) = (0.6 - 13/60) / 0.4 = 23/24 -> s = 23/24
    #                   (c) high(14/15) = (14/15 - 0.8) / 0.4 = 1/3 -> s = 1/3
    expected = {"a": 0.5 * 11 / 18, "b": 23 / 24, "c": 1 / 3}[case]
    assert res.scores[0, 3 + k] == pytest.approx(expected, abs=TOL_SCORE), mf


# ============================================================================ case 5
# A Gaussian intensity set, medium = gaussmf [0.9, 0.2], at full strength (B = g on U):
#   A = int_0^1 g du = s sqrt(pi/2) [erf((1 - m)/(s sqrt 2)) - erf((0 - m)/(s sqrt 2))]
#   int_0^1 (u - m) g du = -s^2 [g]_0^1 = s^2 (g(0) - g(1))   (since g' = -(u - m)/s^2 g)
#   eps = m + s^2 (g(0) - g(1)) / A = 0.798172036... (checked against a 2e6-point trapezoid)
# Tolerance 1e-5, not 1e-6: the level-set width of a Gaussian, 2 s sqrt(-2 ln t), has a
# square-root singularity at its peak t = 1, so the exact centroid's tabulated layer-cake
# integral loses accuracy there (measured error 3.9e-6, still far inside SPEC's 1e-4).
TOL_GAUSS = 1e-5


def test_gaussian_truncated_by_universe(tmp_path: Path) -> None:
    m, s = 0.9, 0.2
    intensity = {"low": {"mf": "trapmf", "params": [0, 0, 0.1, 0.2]},
                 "medium": {"mf": "gaussmf", "params": [m, s]},
                 "high": {"mf": "trapmf", "params": [0.95, 1, 1, 1]}}
    rb = build(tmp_path / "rules", [{"when": {"mouth": "open"}, "then": "medium"}], intensity)
    res = rb.compile().evaluate(row(mouth=1.0)[None])

    def g(u: float) -> float:
        return math.exp(-((u - m) ** 2) / (2 * s * s))

    area = s * math.sqrt(math.pi / 2) * (math.erf((1 - m) / (s * math.sqrt(2)))
                                         - math.erf((0 - m) / (s * math.sqrt(2))))
    eps = m + s * s * (g(0) - g(1)) / area
    assert eps == pytest.approx(0.798172036045, abs=1e-11)
    assert res.eccentricity[0, ANGER] == pytest.approx(eps, abs=TOL_GAUSS)
    assert res.scores[0, 4] == pytest.approx(g(eps), abs=TOL_SCORE)


# ============================================================================ case 6
# Firing strength of "mouth is open and left_eye is wide" (weight w):
#   mouth = 0.25 -> 0.5, left_eye = 0.4 -> 0.8;   min: w * 0.5,  product: w * 0.4.
@pytest.mark.parametrize(("tnorm", "weight", "expected"),
                         [("min", 1.0, 0.5), ("product", 1.0, 0.4),
                          ("min", 0.5, 0.25), ("product", 0.5, 0.2)])
def test_tnorm_and_weight(tmp_path: Path, tnorm: str, weight: float, expected: float) -> None:
    rb = build(tmp_path / "rules",
               [{"when": {"mouth": "open", "left_eye": "wide"}, "then": "medium",
                 "weight": weight}], PLAIN, tnorm=tnorm)
    res = rb.compile().evaluate(row(mouth=0.25, left_eye=0.4)[None], strengths=True)
    assert res.activations[0, ANGER] == pytest.approx(expected, abs=TOL_ACT)
    assert res.strengths[0, 0] == pytest.approx(expected, abs=TOL_ACT)
    # medium = trimf [0.2, 0.5, 0.8] is symmetric: eps = 0.5 for any strength, nu = 1, s = a.
    assert res.eccentricity[0, ANGER] == pytest.approx(0.5, abs=TOL_ECC)
    assert res.scores[0, 4] == pytest.approx(expected, abs=TOL_SCORE)


# ============================================================================ case 7
# Labels: neutral below min_activation = 0.3 (strength 2x of mouth), unknown with a NaN,
# and a label exactly at the threshold (a = 0.3 is not < 0.3).
def test_neutral_unknown_threshold(tmp_path: Path) -> None:
    rb = build(tmp_path / "rules", [{"when": {"mouth": "open"}, "then": "medium"}], PLAIN,
               min_activation=0.3)
    x = np.array([row(mouth=0.125), row(mouth=0.25), row(mouth=0.0), row(mouth=0.25)])
    x[3, NOSE] = np.nan
    engine = rb.compile(precision="double") if _has_precision() else rb.compile()
    res = engine.evaluate(x)
    # a = 0.25 < 0.3 -> neutral; a = 0.5 -> anger_medium (eps 0.5, s 0.5); a = 0 -> neutral
    assert res.labels.tolist() == ["neutral", "anger_medium", "neutral", "unknown"]
    assert res.class_index.tolist() == [-1, 4, -1, -2]
    assert res.scores[1, 4] == pytest.approx(0.5, abs=TOL_SCORE)
    assert np.isnan(res.scores[3]).all() and np.isnan(res.eccentricity[2]).all()
    # 0.15 * 2 = 0.3 in double precision (0.15 is not exact, but 2 * fl(0.15) = fl(0.3)).
    at = engine.evaluate(row(mouth=0.15)[None])
    assert at.activations[0, ANGER] == 0.3
    assert at.labels[0] == "anger_medium"


def _has_precision() -> bool:
    import inspect

    from fuzzyemo import Engine

    return "precision" in inspect.signature(Engine.__init__).parameters


# ============================================================================ case 8
# Crisp codes with our FCIS (ties go to the term nearer 0, SPEC 3.1):
#   x =  0.25: normal 0.5 = high 0.5  -> 0 (tie)      x =  0.3: high 0.6 > normal 0.4 -> 1
#   x = -0.25: normal 0.5 = low 0.5   -> 0 (tie)      x = -0.3: low 0.6 > normal 0.4  -> -1
#   nose x = 0.25: normal 0.5 = wrinkled 0.5 -> 0;    nose x = -1: normal 1 -> 0
#   x = 1.7 is clipped to 1 -> 1;  x = -3 -> -1
def test_codes(tmp_path: Path) -> None:
    rb = build(tmp_path / "rules", [{"when": {"mouth": "open"}, "then": "medium"}], PLAIN)
    x = np.array([[0.25, 0.3, -0.25, -0.3, 1.7, 0.25, -1, -3, 0, 0, 0, 0]])
    assert rb.compile().evaluate(x).codes[0].tolist() == [0, 1, 0, -1, 1, 0, 0, -1, 0, 0, 0, 0]


# ============================================================================ case 9
# lambda knobs (our documented semantics: the core stays, slopes stretch by
# lambda / lambda_reference = 0.8 / 0.4 = 2):
#   FCIS: high trapmf [0, 0.5, 1, 1] -> [-0.5, 0.5, 1, 1]: mu(0.25) = 0.75/1 = 0.75
#   FKIS: medium trimf [0, 0.2, 1] -> [-0.2, 0.2, 1.8]; clipped at h = 0.75 it is
#         min(0.75, (u + 0.2)/0.4, (1.8 - u)/1.6): rise to 0.75 at u = 0.1, flat to
#         u = 1.8 - 1.2 = 0.6, fall to (1.8 - 1)/1.6 = 0.5 at u = 1.
#     area   = [0, 0.1]: (0.5 + 0.75)/2 * 0.1 = 0.0625    (B(0) = 0.2/0.4 = 0.5)
#            + [0.1, 0.6]: 0.75 * 0.5 = 0.375
#            + [0.6, 1]: (0.75 + 0.5)/2 * 0.4 = 0.25           total 0.6875
#     moment = int_0^0.1 (u + 0.2)/0.4 u du = 2.5 (0.001/3 + 0.1 * 0.01) = 1/300
#            + 0.75 (0.36 - 0.01)/2 = 0.13125
#            + int_0.6^1 (1.8 - u)/1.6 u du = (0.9 (1 - 0.36) - (1 - 0.216)/3)/1.6 = 59/300
#     total = 1/300 + 0.13125 + 59/300 = 0.33125 = 53/160;  area = 0.6875 = 110/160
#     eps = 53/110 = 0.481818...
def test_lambda_knobs(tmp_path: Path) -> None:
    rb = build(tmp_path / "rules", [{"when": {"mouth": "open"}, "then": "medium"}], TRI)
    rb = rb.with_options(lambda_fcis=0.8, lambda_fkis=0.8)
    res = rb.compile().evaluate(row(mouth=0.25)[None])
    assert res.activations[0, ANGER] == pytest.approx(0.75, abs=TOL_ACT)
    assert res.eccentricity[0, ANGER] == pytest.approx(53 / 110, abs=TOL_ECC)
    # nu_medium(53/110) = (198/110 - 53/110)/1.6 = 145/176 -> s = 0.75 * 145/176 = 435/704
    assert res.scores[0, 4] == pytest.approx(435 / 704, abs=TOL_SCORE)


# ============================================================================ case 10
# SPEC 3.7 rev. 2: the label is the most activated emotion, not the largest score.
# anger (index 1): "mouth is open -> low" and "left_eye is wide -> high", both at 0.53
#   (mouth = left_eye = 0.265: membership 2x). low = trapmf [0, 0, 0.1, 0.6] and
#   high = trapmf [0.4, 0.9, 1, 1] are mirror images about u = 0.5, so B is symmetric and
#   eps = 0.5 exactly; there nu_low = (0.6 - 0.5) / 0.5 = 0.2 = nu_high.
#   (a) medium = trimf [0.3, 0.35, 0.4]: nu_medium(0.5) = 0. low and high tie at 0.2: the
#       lower level wins -> anger_low; s_low = s_high = 0.53 * 0.2 = 0.106.
#   (b) medium = trimf [0.3, 0.5, 0.7] (fired by no rule): nu_medium(0.5) = 1 -> anger_medium,
#       s_medium = 0.53: the centroid between low and high reads as medium.
# happiness (index 0): "nose is wrinkled -> medium" at 0.23 (nose = 0.115), PLAIN medium
#   trimf [0.2, 0.5, 0.8] is symmetric: eps = 0.5, on medium's core: s = 0.23 * 1 = 0.23.
# Rev. 1 (the class of the largest score) labelled (a) happiness_medium (0.23 > 0.106):
# a weakly fired emotion on a level's core outranked a strongly fired one. Rev. 2: anger.
BLEND = {"low": {"mf": "trapmf", "params": [0, 0, 0.1, 0.6]},
         "high": {"mf": "trapmf", "params": [0.4, 0.9, 1, 1]}}


@pytest.mark.parametrize(("medium", "label", "s_anger"),
                         [([0.3, 0.35, 0.4], "anger_low", [0.106, 0.0, 0.106]),
                          ([0.3, 0.5, 0.7], "anger_medium", [0.106, 0.53, 0.106])])
def test_strongest_emotion_beats_a_weak_one_on_a_core(tmp_path: Path, medium: list[float],
                                                      label: str, s_anger: list[float]) -> None:
    intensity = {"low": BLEND["low"], "medium": {"mf": "trimf", "params": medium},
                 "high": BLEND["high"]}
    rb = build(tmp_path / "rules",
               [{"when": {"mouth": "open"}, "then": "low"},
                {"when": {"left_eye": "wide"}, "then": "high"}], intensity,
               other_rules={"happiness": [{"when": {"nose": "wrinkled"}, "then": "medium"}]})
    x = row(mouth=0.265, left_eye=0.265, nose=0.115)[None]
    for precision in ("single", "double"):
        res = rb.compile(precision=precision).evaluate(x)
        assert res.activations[0, ANGER] == pytest.approx(0.53, abs=TOL_ACT)
        assert res.activations[0, 0] == pytest.approx(0.23, abs=TOL_ACT)
        assert res.eccentricity[0, ANGER] == pytest.approx(0.5, abs=TOL_ECC)
        assert res.eccentricity[0, 0] == pytest.approx(0.5, abs=TOL_ECC)
        np.testing.assert_allclose(res.scores[0, 3:6], s_anger, atol=TOL_SCORE)
        np.testing.assert_allclose(res.scores[0, 0:3], [0.0, 0.23, 0.0], atol=TOL_SCORE)
        # The weak emotion's score (0.23) may be the largest; the label is still anger's.
        assert res.labels[0] == label, precision


# ============================================================================ case 11
# Linguistic hedges (docs/semantics.md: our extension of SPEC 3.2), by hand, in the style of pyfuzzylite's hedge tests:
# a membership m and each hedge's value (fuzzylite's definitions), exact decimals or roots.
#   m     any  not   seldom                  somewhat                very    extremely
HEDGE_TABLE = [
    (0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0),
    (0.1, 1.0, 0.9, math.sqrt(0.05), math.sqrt(0.1), 0.01, 0.02),
    (0.25, 1.0, 0.75, math.sqrt(0.125), 0.5, 0.0625, 0.125),
    (0.5, 1.0, 0.5, 0.5, math.sqrt(0.5), 0.25, 0.5),
    (0.75, 1.0, 0.25, 1 - math.sqrt(0.125), math.sqrt(0.75), 0.5625, 0.875),
    (0.9, 1.0, 0.1, 1 - math.sqrt(0.05), math.sqrt(0.9), 0.81, 0.98),
    (1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0),
]
HEDGE_ORDER = ("any", "not", "seldom", "somewhat", "very", "extremely")
# One rule per emotion, each on 'mouth is open' (membership exactly 2x for x in [0, 0.5])
# with one hedge, so one row gives all six hedged values as the six activations.
HEDGED_BY_EMOTION = {e: h for e, h in zip(EMOTIONS, HEDGE_ORDER, strict=True)}


def test_hedge_values_by_hand() -> None:
    from fuzzyemo._hedges import apply_hedges, hedge_value

    for m, *want in HEDGE_TABLE:
        for h, w in zip(HEDGE_ORDER, want, strict=True):
            assert hedge_value([h], m) == pytest.approx(w, abs=1e-15), (h, m)
            for dtype, tol in ((np.float64, 1e-15), (np.float32, 1e-7)):
                arr = np.array([m], dtype=dtype)
                assert apply_hedges([h], arr)[0] == pytest.approx(w, abs=tol), (h, m, dtype)
                assert arr.dtype == dtype
    # Chains apply right to left: not(very(0.5)) = 0.75; very(not(0.5)) = 0.25;
    # extremely(seldom(m)) = m (seldom is extremely's inverse on [0, 1]).
    assert hedge_value(["not", "very"], 0.5) == 0.75
    assert hedge_value(["very", "not"], 0.25) == 0.5625
    for m in (0.1, 0.3, 0.5, 0.7, 0.95):
        assert hedge_value(["extremely", "seldom"], m) == pytest.approx(m, abs=1e-15)
    assert hedge_value(["not", "any"], 0.3) == 0.0


@pytest.fixture(scope="module")
def hedge_rb(tmp_path_factory: pytest.TempPathFactory) -> RuleBase:
    rules = {e: [{"when": {"mouth": "any" if h == "any" else f"{h} open"}, "then": "medium"}]
             for e, h in HEDGED_BY_EMOTION.items()}
    return build(tmp_path_factory.mktemp("hedges") / "rules", rules.pop("anger"), PLAIN,
                 other_rules=rules)


@pytest.mark.parametrize("precision", ["single", "double"])
def test_hedged_activations_are_the_table(hedge_rb: RuleBase, precision: str) -> None:
    x = np.array([row(mouth=m / 2) for m, *_ in HEDGE_TABLE])
    res = hedge_rb.compile(precision=precision).evaluate(x)
    want = np.array([values for _, *values in HEDGE_TABLE])
    tol = 1e-15 if precision == "double" else 2e-7
    np.testing.assert_allclose(res.activations, want, rtol=0, atol=tol)
    # medium = trimf [0.2, 0.5, 0.8] is symmetric: eps = 0.5 and s_medium = a_e wherever a
    # rule fires; the label is the most activated emotion (ties: the lower index), medium.
    fired = res.activations > 0
    np.testing.assert_allclose(res.eccentricity[fired], 0.5, atol=TOL_ECC)
    np.testing.assert_allclose(res.scores[:, 1::3], res.activations, atol=TOL_SCORE)
    # Row m = 0: any and not fire at 1 (happiness wins the tie); m = 0.75: any (1) again.
    assert res.labels.tolist() == ["happiness_medium"] * len(HEDGE_TABLE)


# A hedged rule, end to end: "left_mouth_corner is raised and left_mouth_corner is not very
# raised -> anger is low", weight 1, with our FCIS (raised = 2x on [0, 0.5]).
# x = 0.3: m = 0.6, very = 0.36, not very = 0.64.  min: f = 0.6;  product: 0.6 * 0.64 = 0.384.
# PLAIN low = trapmf [0, 0, 0.1, 0.3] clipped at h: flat h on [0, 0.3 - 0.2h], then falling
#   area = 0.3h - 0.1h^2;  moment = h (0.3 - 0.2h)^2 / 2 + 0.03h^2 - 0.04h^3 / 3
#   h = 0.6: area = 0.144, moment = 0.00972 + 0.0108 - 0.00288 = 0.01764, eps = 0.1225
#   nu_low(0.1225) = (0.3 - 0.1225) / 0.2 = 0.8875 -> s_low = 0.5325; medium(0.1225) = 0
#   -> anger_low.
def clipped_low_centroid(h: float) -> float:
    return (h * (0.3 - 0.2 * h) ** 2 / 2 + 0.03 * h * h - 0.04 * h ** 3 / 3) / (0.3 * h - 0.1 * h * h)


@pytest.mark.parametrize(("tnorm", "strength"), [("min", 0.6), ("product", 0.384)])
def test_hedged_rule_firing_and_label(tmp_path: Path, tnorm: str, strength: float) -> None:
    assert clipped_low_centroid(0.6) == pytest.approx(0.1225, abs=1e-15)
    rb = build(tmp_path / "rules",
               [{"when": {"left_mouth_corner": ["raised", "not very raised"]}, "then": "low"}],
               PLAIN, tnorm=tnorm)
    (rule,) = rb.rules
    assert rule.hedges == ((), ("not", "very")) and rule.coding == "*" * 12
    x = row(left_mouth_corner=0.3)[None]
    for precision in ("single", "double"):
        res = rb.compile(precision=precision).evaluate(x, strengths=True)
        assert res.strengths[0, 0] == pytest.approx(strength, abs=TOL_ACT)
        eps = clipped_low_centroid(strength)
        assert res.eccentricity[0, ANGER] == pytest.approx(eps, abs=TOL_ECC)
        assert res.scores[0, 3] == pytest.approx(strength * (0.3 - eps) / 0.2, abs=TOL_SCORE)
        assert res.labels[0] == "anger_low"
    # explain shows the hedge words and the hedged membership next to the term's own.
    (why,) = rb.compile().explain(x[0], top=1)
    assert [(c["text"], c["hedges"]) for c in why["conditions"]] == [
        ("left_mouth_corner is raised", []),
        ("left_mouth_corner is not very raised", ["not", "very"])]
    assert [round(c["membership"], 6) for c in why["conditions"]] == [0.6, 0.64]
    assert [round(c["term_membership"], 6) for c in why["conditions"]] == [0.6, 0.6]
