"""Property tests of the engine (SPEC section 3) with hypothesis.

The rule bases here are written by the tests into temporary copies of ``rules/`` (every
file replaced), so the properties hold for the engine whatever the shipped rule content;
the shipped rule base is only used as one more input, never for specific outcomes.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzzyemo import (
    CLASS_NAMES,
    COMPONENT_TERMS,
    COMPONENTS,
    EMOTIONS,
    INTENSITIES,
    RuleBase,
    default_rules_dir,
)

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ============================================================================ rule bases
def _fcis_doc(half: float = 0.5) -> dict[str, Any]:
    """Our own FCIS (not the shipped one): shoulders at +-1, triangle 'normal' at 0."""
    comps = {}
    for name, terms in COMPONENT_TERMS.items():
        out = {}
        for code, term in terms.items():
            if code == -1:
                mf = {"mf": "trapmf", "params": [-1, -1, -half, 0]}
            elif code == 1:
                mf = {"mf": "trapmf", "params": [0, half, 1, 1]}
            elif -1 in terms:
                mf = {"mf": "trimf", "params": [-half, 0, half]}
            else:  # two-term component: 'normal' is a shoulder over x <= 0
                mf = {"mf": "trapmf", "params": [-1, -1, 0, half]}
            out[term] = {"code": code, **mf}
        comps[name] = {"description": f"test {name}", "terms": out}
    return {"format": "fuzzyemo-fcis/1", "lambda": 0.4, "lambda_reference": 0.4,
            "components": comps}


DEFAULT_INTENSITY = {
    "low": {"mf": "trapmf", "params": [0, 0, 0.15, 0.35]},
    "medium": {"mf": "trimf", "params": [0.2, 0.5, 0.8]},
    "high": {"mf": "trapmf", "params": [0.65, 0.85, 1, 1]},
}


def write_rulebase(dest: Path, rules: dict[str, list[dict[str, Any]]], *,
                   intensity: dict[str, dict] | None = None,
                   engine: dict[str, Any] | None = None, fcis_half: float = 0.5) -> RuleBase:
    """Copy rules/ to ``dest`` and replace every file: our FCIS, our FKIS, our options.

    ``rules``: emotion -> [{"when": {component: code}, "then": level, "weight": w}].
    """
    shutil.copytree(default_rules_dir(), dest)
    (dest / "fcis.yaml").write_text(yaml.safe_dump(_fcis_doc(fcis_half), sort_keys=False))
    eng = {"format": "fuzzyemo-engine/1", **(engine or {})}
    (dest / "engine.yaml").write_text(yaml.safe_dump(eng, sort_keys=False))
    for emo in EMOTIONS:
        doc = {
            "format": "fuzzyemo-fkis/1", "emotion": emo, "lambda": 0.4, "lambda_reference": 0.4,
            "intensity": (intensity or {}).get(emo, DEFAULT_INTENSITY),
            "rules": [{"id": f"{emo}-{i}", "when": dict(r["when"]), "then": r["then"],
                       "weight": float(r.get("weight", 1.0)), "source": "property test"}
                      for i, r in enumerate(rules.get(emo, []))],
        }
        (dest / "fkis" / f"{emo}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return RuleBase.load(dest)


# ============================================================================ strategies
COMPONENT_CODES = [(c, v) for c in COMPONENTS for v in COMPONENT_TERMS[c]]


@st.composite
def rule_specs(draw: st.DrawFn) -> dict[str, Any]:
    comps = draw(st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4, unique=True))
    when = {c: draw(st.sampled_from(sorted(COMPONENT_TERMS[c]))) for c in comps}
    return {"when": when, "then": draw(st.sampled_from(INTENSITIES)),
            "weight": draw(st.floats(0.05, 1.0))}


@st.composite
def intensity_mf(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["trimf", "trapmf", "gaussmf"]))
    if kind == "gaussmf":
        return {"mf": kind, "params": [draw(st.floats(0, 1)), draw(st.floats(0.03, 0.5))]}
    n = 3 if kind == "trimf" else 4
    pts = sorted(draw(st.lists(st.floats(-0.2, 1.2), min_size=n, max_size=n)))
    # Keep a non-degenerate part inside U = [0, 1] (a spike or a set outside U has no area).
    if pts[-1] - pts[0] < 0.1 or pts[-1] < 0.1 or pts[0] > 0.9:
        pts = [0.2, 0.5, 0.8] if n == 3 else [0.1, 0.3, 0.6, 0.9]
    return {"mf": kind, "params": [round(p, 6) for p in pts]}


@st.composite
def rulebase_specs(draw: st.DrawFn) -> dict[str, Any]:
    emotions = draw(st.lists(st.sampled_from(EMOTIONS), min_size=1, max_size=3, unique=True))
    rules = {e: draw(st.lists(rule_specs(), min_size=1, max_size=3)) for e in emotions}
    intensity = {e: {k: draw(intensity_mf()) for k in INTENSITIES} for e in emotions}
    engine = {"tnorm": draw(st.sampled_from(["min", "product"])),
              "implication": draw(st.sampled_from(["min", "product"])),
              "min_activation": draw(st.sampled_from([0.0, 0.1, 0.3]))}
    if engine["implication"] == "min" and draw(st.booleans()):
        engine["resolution"] = 2001
    return {"rules": rules, "intensity": intensity, "engine": engine,
            "fcis_half": draw(st.sampled_from([0.3, 0.5, 0.8]))}


def rows_for(rules: dict[str, list[dict[str, Any]]]) -> st.SearchStrategy[np.ndarray]:
    """Rows that mix uniform values in [-1.2, 1.2] with rows near the rules' antecedents."""
    anchors = [r["when"] for rs in rules.values() for r in rs] or [{}]

    @st.composite
    def one(draw: st.DrawFn) -> list[float]:
        row = draw(st.lists(st.floats(-1.2, 1.2), min_size=12, max_size=12))
        if draw(st.booleans()):
            for c, v in draw(st.sampled_from(anchors)).items():
                row[COMPONENTS.index(c)] = v + draw(st.floats(-0.4, 0.4))
        return row

    return st.lists(one(), min_size=1, max_size=40).map(lambda r: np.array(r, dtype=float))


def _fields(res: Any) -> dict[str, np.ndarray]:
    return {"codes": np.asarray(res.codes), "activations": np.asarray(res.activations),
            "eccentricity": np.asarray(res.eccentricity), "scores": np.asarray(res.scores),
            "class_index": np.asarray(res.class_index)}


def _assert_identical(a: Any, b: Any) -> None:
    fa, fb = _fields(a), _fields(b)
    for k in fa:
        assert np.array_equal(fa[k], fb[k], equal_nan=True), k


# ============================================================================ invariants
def check_invariants(rb: RuleBase, engine: Any, x: np.ndarray) -> None:
    res = engine.evaluate(x)
    act, ecc, scores = res.activations, res.eccentricity, res.scores
    cls = res.class_index.astype(np.int64)
    unknown = np.isnan(x).any(axis=1)
    known = ~unknown
    # SPEC 2: unknown exactly for rows with a NaN, with NaN outputs.
    assert (cls[unknown] == -2).all() and (cls[known] != -2).all()
    assert np.isnan(scores[unknown]).all() and np.isnan(act[unknown]).all()
    act, ecc, scores, cls = act[known], ecc[known], scores[known], cls[known]
    # Ranges.
    assert ((act >= 0) & (act <= 1)).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    finite = ~np.isnan(ecc)
    assert ((ecc[finite] >= 0) & (ecc[finite] <= 1)).all()
    # SPEC 3.5: NaN exactly where a_e = 0, however small a_e > 0 is (see also
    # test_tiny_activation_has_a_centroid).
    assert np.isnan(ecc[act == 0]).all()
    assert finite[act > 0].all()
    # SPEC 3.6: s = a_e * nu_k(eps_e), 0 where a_e = 0; hence every s <= a_e.
    for e, emo in enumerate(EMOTIONS):
        block = scores[:, 3 * e:3 * e + 3]
        assert (block[act[:, e] == 0] == 0).all()
        assert (block <= act[:, e:e + 1] + 1e-12).all()
        on = act[:, e] > 0
        for k, level in enumerate(INTENSITIES):
            nu = rb.intensity_mf(emo, level)(ecc[on, e])
            np.testing.assert_allclose(block[on, k], act[on, e] * nu, rtol=0, atol=1e-12)
    # SPEC 3.7 (rev. 2): neutral exactly when max activation < min_activation; else the
    # first most activated emotion, at the first level maximising nu_k(eps) of that emotion
    # (nu taken as 0 where the emotion did not fire). Both decided up to 1e-12
    # (docs/semantics.md): equal values reached along different paths differ by rounding
    # (~1e-16) and still count as tied.
    tie = 1e-12
    neutral = act.max(axis=1) < rb.options.min_activation - tie
    assert (cls[neutral] == -1).all()
    a = act[~neutral]
    emotion = np.argmax(a >= a.max(axis=1, keepdims=True) - tie, axis=1)
    rows = np.flatnonzero(~neutral)
    nu = np.zeros((len(rows), 3))
    for i, (r, e) in enumerate(zip(rows, emotion, strict=True)):
        if act[r, e] > 0:
            nu[i] = [float(rb.intensity_mf(EMOTIONS[e], k)(ecc[r, e])) for k in INTENSITIES]
    level = np.argmax(nu >= nu.max(axis=1, keepdims=True) - tie, axis=1)
    assert np.array_equal(cls[~neutral], 3 * emotion + level)
    # The label's emotion is the most activated one, whatever the scores say.
    assert (a[np.arange(len(a)), emotion] >= a.max(axis=1) - tie).all()
    names = np.array([*CLASS_NAMES, "unknown", "neutral"], dtype=object)
    assert np.array_equal(res.labels, names[res.class_index.astype(np.int64)])


@pytest.fixture(scope="module")
def shipped() -> RuleBase:
    return RuleBase.default()


@pytest.fixture(scope="module")
def shipped_engine(shipped: RuleBase) -> Any:
    return shipped.compile()


@SETTINGS
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1,
                                                   max_side=30).map(lambda s: (s[0], 12)),
                    elements=st.floats(-1.5, 1.5) | st.sampled_from([-1.0, 0.0, 1.0, np.nan])))
def test_invariants_shipped(shipped: RuleBase, shipped_engine: Any, x: np.ndarray) -> None:
    check_invariants(shipped, shipped_engine, x)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=rulebase_specs(), data=st.data())
def test_invariants_random_rulebases(tmp_path_factory: pytest.TempPathFactory,
                                     spec: dict[str, Any], data: st.DataObject) -> None:
    rb = write_rulebase(tmp_path_factory.mktemp("rb") / "rules", spec["rules"],
                        intensity=spec["intensity"], engine=spec["engine"],
                        fcis_half=spec["fcis_half"])
    x = data.draw(rows_for(spec["rules"]))
    engine = rb.compile()
    check_invariants(rb, engine, x)
    # Don't care: a component no rule names never changes activations or scores.
    named = {c for rs in spec["rules"].values() for r in rs for c in r["when"]}
    free = [i for i, c in enumerate(COMPONENTS) if c not in named]
    if free:
        y = x.copy()
        y[:, free] = data.draw(hnp.arrays(np.float64, (len(x), len(free)),
                                          elements=st.floats(-1.2, 1.2)))
        a, b = engine.evaluate(x), engine.evaluate(y)
        for k in ("activations", "eccentricity", "scores", "class_index"):
            assert np.array_equal(_fields(a)[k], _fields(b)[k], equal_nan=True), k


# ============================================================================ execution
@pytest.fixture(scope="module")
def big_input(shipped: RuleBase) -> np.ndarray:
    rng = np.random.default_rng(42)
    x = rng.uniform(-1.2, 1.2, (3000, 12))
    x[::3] = rng.integers(-1, 2, (1000, 12))  # crisp rows fire the rules
    x[::3] += rng.normal(0, 0.15, (1000, 12))
    x[5::97, 4] = np.nan
    return x


@pytest.mark.parametrize(("chunk_size", "n_jobs"),
                         [(1, 1), (7, 2), (128, 1), (1000, 2), (4096, 2), (100_000, 1)])
def test_chunking_and_threads_are_bit_identical(shipped: RuleBase, big_input: np.ndarray,
                                                chunk_size: int, n_jobs: int) -> None:
    x = big_input if chunk_size > 1 else big_input[:300]
    ref = shipped.compile(chunk_size=len(x), n_jobs=1).evaluate(x)
    _assert_identical(shipped.compile(chunk_size=chunk_size, n_jobs=n_jobs).evaluate(x), ref)


def test_iter_evaluate_matches_evaluate(shipped: RuleBase, big_input: np.ndarray) -> None:
    engine = shipped.compile(chunk_size=700)
    parts = list(engine.iter_evaluate(big_input))
    whole = _fields(engine.evaluate(big_input))
    for k, v in whole.items():
        assert np.array_equal(np.concatenate([_fields(p)[k] for p in parts]), v,
                              equal_nan=True), k


@pytest.fixture(scope="module")
def chunked_engines(shipped: RuleBase) -> dict[int, Any]:
    return {chunk: shipped.compile(chunk_size=chunk) for chunk in (64, 1000, 16384)}


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), chunk=st.sampled_from([64, 1000, 16384]))
def test_row_permutation_invariance(chunked_engines: dict[int, Any], big_input: np.ndarray,
                                    seed: int, chunk: int) -> None:
    perm = np.random.default_rng(seed).permutation(len(big_input))
    engine = chunked_engines[chunk]
    a = engine.evaluate(big_input)
    b = engine.evaluate(big_input[perm])
    for k, v in _fields(a).items():
        assert np.array_equal(v[perm], _fields(b)[k], equal_nan=True), k


@SETTINGS
@given(x=hnp.arrays(np.float64, (20, 12), elements=st.floats(-5, 5)))
def test_clipping_is_exact(shipped_engine: Any, x: np.ndarray) -> None:
    engine = shipped_engine
    _assert_identical(engine.evaluate(x), engine.evaluate(np.clip(x, -1, 1)))


def test_precisions_agree(shipped: RuleBase, big_input: np.ndarray) -> None:
    """float32 memberships (the default) stay within the bounds docs/semantics.md states:
    activations 5e-7, scores 1e-6, eccentricities 2e-5 (SPEC allows 1e-4)."""
    try:
        single = shipped.compile(precision="single").evaluate(big_input)
        double = shipped.compile(precision="double").evaluate(big_input)
    except TypeError:
        pytest.skip("this engine has no precision option")
    np.testing.assert_allclose(single.activations, double.activations, rtol=0, atol=5e-7)
    np.testing.assert_allclose(single.eccentricity, double.eccentricity, rtol=0, atol=2e-5)
    np.testing.assert_allclose(single.scores, double.scores, rtol=0, atol=1e-6)


# ============================================================================ monotonicity
SINGLE_RULES = [
    ({"mouth": 1, "left_eye": 1}, "high", 1.0, "min"),
    ({"brow_crest": -1, "nose": 1, "right_mouth_corner": -1}, "medium", 0.7, "min"),
    ({"left_eyebrow": 1, "upper_lip": 0}, "low", 0.9, "product"),
    ({"nostril": 0, "lower_lip": -1, "right_eye": 0, "mouth": -1}, "high", 1.0, "product"),
]


@pytest.fixture(scope="module")
def single_rule_bases(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[RuleBase, dict]]:
    out = []
    for i, (when, then, weight, tnorm) in enumerate(SINGLE_RULES):
        rb = write_rulebase(tmp_path_factory.mktemp(f"single{i}") / "rules",
                            {"fear": [{"when": when, "then": then, "weight": weight}]},
                            engine={"tnorm": tnorm})
        out.append((rb, when))
    return out


@SETTINGS
@given(which=st.integers(0, len(SINGLE_RULES) - 1),
       x=hnp.arrays(np.float64, (25, 12), elements=st.floats(-1.2, 1.2)),
       t=hnp.arrays(np.float64, (25, 12), elements=st.floats(0, 1)))
def test_single_rule_monotone(single_rule_bases: list[tuple[RuleBase, dict]], which: int,
                              x: np.ndarray, t: np.ndarray) -> None:
    """Moving any condition's measurement toward its code never lowers the activation.

    Every term is 1 at its code and convex, so its membership rises toward the code; with a
    monotone t-norm the single rule's strength, and so the emotion's activation, rises too.
    """
    rb, when = single_rule_bases[which]
    engine = rb.compile()
    y = np.clip(x, -1, 1)
    for c, v in when.items():
        i = COMPONENTS.index(c)
        y[:, i] = y[:, i] + t[:, i] * (v - y[:, i])
    fear = EMOTIONS.index("fear")
    before = engine.evaluate(x).activations[:, fear]
    after = engine.evaluate(y).activations[:, fear]
    assert (after >= before - 1e-7).all()  # 1e-7: float32 rounding of the measurements
    # And the strength is exactly weight * T(memberships of the named terms).
    res = engine.evaluate(x, memberships=True)
    mus = np.stack([res.memberships[:, COMPONENTS.index(c), v + 1] for c, v in when.items()])
    tnorm = np.prod(mus, axis=0) if rb.options.tnorm == "product" else mus.min(axis=0)
    weight = rb.rules[0].weight
    np.testing.assert_allclose(res.activations[:, fear], weight * tnorm, rtol=1e-6, atol=1e-7)
    # Only fear has rules: every other emotion is inactive.
    others = np.delete(res.activations, fear, axis=1)
    assert (others == 0).all()


@pytest.mark.parametrize("implication", ["min", "product"])
def test_weight_scales_activation(tmp_path: Path, implication: str) -> None:
    """a_e is linear in the rule weight (SPEC 3.2), and with product implication so is B,
    whose centroid is then independent of the weight."""
    x = np.random.default_rng(1).uniform(-1, 1, (500, 12))
    x[:, COMPONENTS.index("mouth")] = np.linspace(0.2, 1, 500)
    acts, eccs = [], []
    for w in (1.0, 0.5, 0.25):
        rb = write_rulebase(tmp_path / f"w{w}" / "rules",
                            {"anger": [{"when": {"mouth": 1}, "then": "medium", "weight": w}]},
                            engine={"implication": implication})
        res = rb.compile(chunk_size=64).evaluate(x)
        acts.append(res.activations[:, 1])
        eccs.append(res.eccentricity[:, 1])
    assert (acts[0] > 0).sum() > 300
    np.testing.assert_allclose(acts[1], 0.5 * acts[0], rtol=1e-6)
    np.testing.assert_allclose(acts[2], 0.25 * acts[0], rtol=1e-6)
    if implication == "product":
        on = acts[0] > 0
        np.testing.assert_allclose(eccs[1][on], eccs[0][on], atol=1e-9)


def test_codes_follow_memberships(shipped: RuleBase, big_input: np.ndarray) -> None:
    """Crisp code = highest-membership term, ties to the term nearer 0 (SPEC 3.1)."""
    res = shipped.compile().evaluate(big_input, memberships=True)
    known = ~np.isnan(big_input).any(axis=1)
    mu = res.memberships[known]  # (n, 12, 3), slot = code + 1
    for i, c in enumerate(COMPONENTS):
        slots = [v + 1 for v in sorted(COMPONENT_TERMS[c], key=lambda v: (abs(v), v))]
        best = np.array(slots)[np.argmax(mu[:, i, slots], axis=1)] - 1
        assert np.array_equal(res.codes[known, i], best), c
    # Crisp inputs give their own code back (SPEC 1: membership 1 at the code).
    crisp = np.array([[v if v in COMPONENT_TERMS[c] else 0 for c in COMPONENTS]
                      for v in (-1, 0, 1)], dtype=float)
    assert np.array_equal(shipped.compile().evaluate(crisp).codes, crisp.astype(np.int8))


# ============================================================================ tiny activations
@pytest.mark.parametrize("engine", [
    {"tnorm": "product"},
    {"tnorm": "product", "implication": "product"},
    {"tnorm": "product", "resolution": 2001},
], ids=["exact", "grid-product", "grid-2001"])
@pytest.mark.parametrize("precision", ["single", "double"])
def test_tiny_activation_has_a_centroid(tmp_path: Path, engine: dict[str, Any],
                                        precision: str) -> None:
    """SPEC 3.5: the eccentricity is NaN only where a_e = 0, however small a_e > 0 is."""
    # Product t-norm of three memberships of ~1e-6 each: a_e ~ 1e-18, representable in
    # float32 and float64. Only 'medium' (trimf [0.2, 0.5, 0.8], symmetric) fires, so B is
    # min(a, nu_medium) (or a * nu_medium), symmetric about 0.5: its centroid is exactly 0.5
    # for any a > 0.
    rb = write_rulebase(tmp_path / "rules",
                        {"sadness": [{"when": {"mouth": 1, "nose": 1, "left_eye": 1},
                                      "then": "medium"}]},
                        engine=engine)
    x = np.zeros((1, 12))
    for c in ("mouth", "nose", "left_eye"):
        x[0, COMPONENTS.index(c)] = 0.5e-6  # raised/wide trapmf [0, 0.5, 1, 1]: mu = 1e-6
    try:
        compiled = rb.compile(precision=precision)
    except TypeError:
        pytest.skip("this engine has no precision option")
    res = compiled.evaluate(x)
    a = res.activations[0, EMOTIONS.index("sadness")]
    assert 0 < a < 1e-15
    assert res.eccentricity[0, EMOTIONS.index("sadness")] == pytest.approx(0.5, abs=1e-4)


def test_everything_is_deterministic(shipped: RuleBase, big_input: np.ndarray) -> None:
    engine = shipped.compile(n_jobs=2, chunk_size=256)
    runs = [engine.evaluate(big_input) for _ in range(3)]
    for a, b in itertools.pairwise(runs):
        _assert_identical(a, b)


# ============================================================================ hedges
HEDGE_CHAINS = [(), ("very",), ("somewhat",), ("extremely",), ("seldom",), ("not",),
                ("not", "very"), ("very", "very"), ("somewhat", "not"), ("any",)]


@st.composite
def hedged_rule_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A rule whose conditions carry hedge chains; a component may appear twice."""
    comps = draw(st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=3, unique=True))
    when: dict[str, Any] = {}
    anchor: dict[str, int] = {}
    for c in comps:
        conds = []
        for _ in range(draw(st.integers(1, 2))):
            code = draw(st.sampled_from(sorted(COMPONENT_TERMS[c])))
            chain = draw(st.sampled_from(HEDGE_CHAINS))
            text = " ".join(chain) if chain[-1:] == ("any",) else " ".join(
                [*chain, COMPONENT_TERMS[c][code]])
            if text not in conds:
                conds.append(text)
            anchor.setdefault(c, code)
        when[c] = conds if len(conds) > 1 else conds[0]
    return {"when": when, "anchor": anchor, "then": draw(st.sampled_from(INTENSITIES)),
            "weight": draw(st.floats(0.05, 1.0))}


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rules=st.dictionaries(st.sampled_from(EMOTIONS), st.lists(hedged_rule_specs(),
                                                                 min_size=1, max_size=3),
                             min_size=1, max_size=3),
       tnorm=st.sampled_from(["min", "product"]), data=st.data())
def test_invariants_hedged_rulebases(tmp_path_factory: pytest.TempPathFactory,
                                     rules: dict[str, list[dict[str, Any]]], tnorm: str,
                                     data: st.DataObject) -> None:
    """SPEC 3 invariants hold with hedges; each rule's strength is weight * T over its
    conditions of the hedged memberships, computed here from the memberships and
    fuzzyemo._hedges.hedge_value; single and double precision agree."""
    from fuzzyemo._hedges import hedge_value

    rb = write_rulebase(tmp_path_factory.mktemp("hedged") / "rules", rules,
                        engine={"tnorm": tnorm})
    x = data.draw(rows_for({e: [{"when": r["anchor"]} for r in rs] for e, rs in rules.items()}))
    engine = rb.compile(precision="double")
    check_invariants(rb, engine, x)
    res = engine.evaluate(x, memberships=True, strengths=True)
    known = ~np.isnan(x).any(axis=1)
    for j, rule in enumerate(rb.rules):
        for i in np.flatnonzero(known):
            parts = [hedge_value(c.hedges, res.memberships[i, COMPONENTS.index(c.component),
                                                             c.code + 1]) for c in rule.terms]
            want = rule.weight * (np.prod(parts) if tnorm == "product" else min(parts))
            assert res.strengths[i, j] == pytest.approx(want, abs=1e-12), (rule.id, i)
    single = rb.compile(precision="single").evaluate(x)
    np.testing.assert_allclose(single.activations, res.activations, rtol=0, atol=1e-6)


def test_hedged_chunking_threads_and_precision(hedged_rulebase: RuleBase,
                                               big_input: np.ndarray) -> None:
    """The extra hedged membership rows keep evaluation bit-identical across chunkings and
    threads, and the precisions within the documented bounds."""
    ref = hedged_rulebase.compile(chunk_size=len(big_input), n_jobs=1).evaluate(big_input)
    for chunk, jobs in ((7, 2), (1000, 2), (4096, 1)):
        got = hedged_rulebase.compile(chunk_size=chunk, n_jobs=jobs).evaluate(big_input)
        _assert_identical(got, ref)
    engine = hedged_rulebase.compile()
    check_invariants(hedged_rulebase, engine, big_input)  # NaN rows stay unknown, etc.
    assert np.isnan(big_input).any() and (ref.class_index[np.isnan(big_input).any(1)] == -2).all()
    assert len(engine.hedged_rows) == len({(c.component, c.code, c.hedges)
                                           for r in hedged_rulebase.rules for c in r.terms
                                           if c.hedges})
    double = hedged_rulebase.compile(precision="double").evaluate(big_input)
    np.testing.assert_allclose(ref.activations, double.activations, rtol=0, atol=5e-7)
    np.testing.assert_allclose(ref.eccentricity, double.eccentricity, rtol=0, atol=2e-5)
    np.testing.assert_allclose(ref.scores, double.scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize("hedge", ["somewhat", "seldom"])
def test_square_root_hedges_are_exact_in_single_precision(tmp_path: Path, hedge: str) -> None:
    """sqrt-type hedges amplify a membership's rounding near 0 and 1 (float32 rounding of
    6e-8 becomes 2.4e-4): single precision computes hedged rows from the float64 input."""
    rb = write_rulebase(tmp_path / "rules", {"fear": [{"when": {"mouth": f"{hedge} open"},
                                                       "then": "medium"}]})
    # open = trapmf [0, 0.5, 1, 1]: membership 2x. Tiny x, and x just below the core.
    x = np.zeros((6, 12))
    x[:, COMPONENTS.index("mouth")] = [1e-9, 3e-8, 1e-7, 0.5 - 1e-9, 0.5 - 3e-8, 0.5 - 1e-7]
    single = rb.compile(precision="single").evaluate(x).activations[:, EMOTIONS.index("fear")]
    double = rb.compile(precision="double").evaluate(x).activations[:, EMOTIONS.index("fear")]
    np.testing.assert_allclose(single, double, rtol=0, atol=1e-7)


def test_rule_with_more_conditions_than_components(tmp_path: Path) -> None:
    """A component may carry several conditions, so a rule can have more than 12."""
    when: dict[str, Any] = {c: "normal" for c in COMPONENTS}
    when["mouth"] = ["normal", "not very open", "not very pressed"]
    when["nose"] = ["normal", "somewhat normal"]
    rb = write_rulebase(tmp_path / "rules", {"sadness": [{"when": when, "then": "low"}]})
    (rule,) = rb.rules
    assert len(rule.conditions) == 15
    x = np.random.default_rng(3).uniform(-0.3, 0.3, (50, 12))
    res = rb.compile(precision="double").evaluate(x, memberships=True, strengths=True)
    from fuzzyemo._hedges import hedge_value

    for i in range(len(x)):
        want = min(hedge_value(c.hedges, res.memberships[i, COMPONENTS.index(c.component),
                                                         c.code + 1]) for c in rule.terms)
        assert res.strengths[i, 0] == pytest.approx(want, abs=1e-12)
    assert (res.strengths[:, 0] > 0).any()
