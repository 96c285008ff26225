"""docs/semantics.md against the code: the numbers, counts and rules the page states.

The page has no Python code blocks; its checkable claims are read from the page itself
(so the test fails when page and code disagree) and checked against the engine. What other
test files already check (NaN rows, the peer comparison, lambda cores, the [gap] warning)
is only referenced by name.
"""

from __future__ import annotations

import dataclasses
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fuzzyemo import (
    COMPONENT_TERMS,
    COMPONENTS,
    EMOTIONS,
    INTENSITIES,
    Engine,
    MembershipFunction,
    Rule,
    RuleBase,
)
from fuzzyemo._defuzz import ExactCentroid, GridCentroid
from fuzzyemo._vocab import MAX_TERMS

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
PROSE = " ".join(PAGE.split())  # line breaks do not matter to the claims


def stated(pattern: str) -> str:
    """The first group of ``pattern`` in the page's prose (fails if the page lacks it)."""
    m = re.search(pattern, PROSE)
    assert m, f"docs/semantics.md no longer states {pattern!r}"
    return m.group(1)


def number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def shipped() -> RuleBase:
    # The engine's mechanics are stated on the `paper` profile (no hedged rows); the facs
    # figures the page also gives are checked separately.
    return RuleBase.default("paper")


# ============================================================================ references
def test_bracketed_tests_exist() -> None:
    """"Every statement here is checked by a test named in brackets": the names exist."""
    refs = re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", PAGE)
    assert len(refs) >= 10
    for file, name in refs:
        path = ROOT / "tests" / file
        assert path.is_file(), file
        if name:
            assert re.search(rf"^def {name}\(", path.read_text(), re.M), f"{file}::{name}"


# ============================================================================ 1. FCIS
def test_crisp_code_ties() -> None:
    """Highest membership wins; ties go to the term nearer 0; a -1/+1 tie goes to -1."""
    cases = [  # (low, normal, high) -> code
        ((0.2, 0.5, 0.1), 0), ((0.7, 0.3, 0.0), -1), ((0.0, 0.3, 0.7), 1),
        ((0.5, 0.5, 0.0), 0), ((0.0, 0.5, 0.5), 0), ((0.5, 0.5, 0.5), 0),
        ((0.4, 0.1, 0.4), -1), ((0.0, 0.0, 0.0), 0),
    ]
    mu = np.zeros((len(COMPONENTS), MAX_TERMS, len(cases)))
    for j, (memberships, _) in enumerate(cases):
        mu[:, :, j] = memberships
    codes = Engine._codes(mu.reshape(len(COMPONENTS) * MAX_TERMS, len(cases)))
    want = np.array([code for _, code in cases], dtype=np.int8)
    assert all(np.array_equal(row, want) for row in codes)


@pytest.mark.parametrize(("kind", "params"), [("trapmf", (-0.5, -0.15, 0.15, 0.5)),
                                              ("trimf", (0.1, 0.39, 0.68)),
                                              ("gaussmf", (0.3, 0.1))])
@pytest.mark.parametrize("s", [0.5, 2.5])
def test_lambda_formulas(kind: str, params: tuple[float, ...], s: float) -> None:
    """The three stretching formulas of the page, s = lambda / lambda_reference."""
    got = MembershipFunction(kind, params).scaled(s).params
    if kind == "trapmf":
        a, b, c, d = params
        want = (b - (b - a) * s, b, c, c + (d - c) * s)
    elif kind == "trimf":
        a, b, c = params
        want = (b - (b - a) * s, b, b + (c - b) * s)
    else:
        mean, sigma = params
        want = (mean, sigma * s)
    assert got == pytest.approx(want, abs=1e-15)


def test_lambda_overrides(shipped: RuleBase) -> None:
    """`--lambda-fcis`, `--lambda-fkis` and `with_options(lambda_fcis=..)` exist and scale."""
    for flag in ("--lambda-fcis", "--lambda-fkis"):
        assert f"`{flag}`" in PAGE
    from fuzzyemo.cli import app

    result = CliRunner().invoke(app, ["infer", "--help"], env={"COLUMNS": "200"})
    assert "--lambda-fcis" in result.output and "--lambda-fkis" in result.output
    # Larger lambda = more overlap: the normal term's support widens, its core stays.
    wide = shipped.with_options(lambda_fcis=2 * shipped.lambda_fcis)
    a, b = shipped.component_mf("mouth", 0).params, wide.component_mf("mouth", 0).params
    assert b[1:3] == a[1:3] and b[0] < a[0] and b[3] > a[3]
    # The JSON export carries the final parameters, lambda applied.
    exported = wide.to_dict()["components"][COMPONENTS.index("mouth")]["terms"]
    normal = next(t for t in exported if t["code"] == 0)
    assert normal["params"] == pytest.approx(b)


# ============================================================================ 4-5. centroid
def test_exact_centroid_tables(shipped: RuleBase) -> None:
    """4,097-point tables, error < 1e-6 against a 100,001-point table, five lookups."""
    points = int(number(stated(r"tabulated once at compile time \(([\d,]+) points")))
    fine_points = int(number(stated(r"measured against a ([\d,]+)-point table")))
    bound = float(stated(r"lookup; error < ([\d.e-]+)"))
    engine = shipped.compile(precision="double")
    assert isinstance(engine.defuzzify, ExactCentroid)
    assert engine.defuzzify.points == points
    assert "usually five (five for every shipped emotion)" in PROSE
    assert [len(entries) for entries in engine.defuzzify.terms] == [5] * len(EMOTIONS)
    fine = ExactCentroid(engine.intensity_mfs, points=fine_points)
    rng = np.random.default_rng(0)
    levels = rng.random((3, 20000)) * (rng.random((3, 20000)) < 0.7)
    levels[:, :2000] *= 1e-3  # low levels, where a centroid is most sensitive
    for e in range(len(EMOTIONS)):
        np.testing.assert_allclose(engine.defuzzify(e, levels), fine(e, levels),
                                   rtol=0, atol=bound)


def _reference_centroid(mfs: list[MembershipFunction], levels: np.ndarray) -> float:
    """Centroid of max_k min(F_k, nu_k) on U = [0, 1], trapezoid rule on 10^6 intervals."""
    u = np.linspace(0.0, 1.0, 1_000_001)
    b = np.max([np.minimum(f, mf(u)) for f, mf in zip(levels, mfs, strict=True)], axis=0)
    return float(np.sum(u[1:] * b[1:] + u[:-1] * b[:-1]) / np.sum(b[1:] + b[:-1]))


def test_gaussian_intensity_uses_the_grid(shipped: RuleBase) -> None:
    """An emotion with a gaussmf intensity function is defuzzified on the 10,001-point grid
    (the tables miss SPEC's 1e-4 there); the other emotions keep the exact centroid."""
    assert "an emotion with a `gaussmf` intensity function is defuzzified on the" in PROSE
    happiness = shipped.emotions[0]
    gauss = MembershipFunction("gaussmf", (0.1, 0.08))  # cut by U's edge at 0
    rb = dataclasses.replace(shipped, emotions=(
        dataclasses.replace(happiness, intensity={**happiness.intensity, "low": gauss}),
        *shipped.emotions[1:]))
    engine = rb.compile(precision="double")
    mfs = engine.intensity_mfs[0]
    tables = ExactCentroid(engine.intensity_mfs)
    cases = np.array([[0.5, 0, 0], [0.05, 0, 0], [0.2, 0.3, 0], [1e-4, 0, 1e-5],
                      [0.3, 0.05, 0.6]]).T
    ours = engine.defuzzify(0, cases)
    ref = np.array([_reference_centroid(mfs, cases[:, j]) for j in range(cases.shape[1])])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)  # SPEC's accuracy
    assert np.abs(tables(0, cases) - ref).max() > 1e-4  # why the tables are not used
    # Piecewise-linear emotions of the same engine keep the exact centroid, bit for bit.
    levels = np.random.default_rng(1).random((3, 500))
    for e in range(1, len(EMOTIONS)):
        assert np.array_equal(engine.defuzzify(e, levels), tables(e, levels))


def test_grid_resolution(shipped: RuleBase) -> None:
    """Product implication with `resolution: exact` uses 10,001 points; `resolution: N`, N."""
    points = int(number(stated(r"With `resolution: exact` and product implication.*?"
                               r"the engine uses ([\d,]+) points")))
    product = shipped.with_options(implication="product").compile()
    assert isinstance(product.defuzzify, GridCentroid)
    assert product.defuzzify.u.size == points
    assert shipped.with_options(resolution=2001).compile().defuzzify.u.size == 2001


# ============================================================================ 6-7. labels
def _two_emotion_rulebase(shipped: RuleBase, weight: float) -> RuleBase:
    """happiness and anger: the same rule (mouth is open -> high), the same intensity
    functions; happiness's weight is ``weight``, anger's 1."""
    anger = shipped.emotions[EMOTIONS.index("anger")]
    emotions = []
    for emo in shipped.emotions:
        rules: tuple[Rule, ...] = ()
        if emo.name in ("happiness", "anger"):
            w = weight if emo.name == "happiness" else 1.0
            rules = (Rule(f"{emo.name}-open", emo.name, (("mouth", 1),), "high", w, "test",
                          "test:1"),)
        intensity = anger.intensity if emo.name == "happiness" else emo.intensity
        emotions.append(dataclasses.replace(emo, rules=rules, intensity=intensity,
                                            lambda_=anger.lambda_,
                                            lambda_reference=anger.lambda_reference))
    return dataclasses.replace(shipped, emotions=tuple(emotions))


def test_activation_ties_up_to_rounding(shipped: RuleBase) -> None:
    """Activations within 1e-12 of the largest are tied, and ties go to the lower emotion."""
    tie = float(stated(r"activations within ([\d.e-]+) of the largest count as tied"))
    x = np.zeros((1, len(COMPONENTS)))
    x[0, COMPONENTS.index("mouth")] = 1.0
    labels = {}
    for gap in (tie / 10, tie * 10):
        res = _two_emotion_rulebase(shipped, 1.0 - gap).compile(precision="double").evaluate(x)
        act = res.activations[0]
        assert 0 < act[EMOTIONS.index("anger")] - act[0] < 2 * gap  # anger's is the larger
        labels[gap] = res.labels[0]
    assert labels == {tie / 10: "happiness_high", tie * 10: "anger_high"}


def test_no_rule_fires_with_min_activation_zero(shipped: RuleBase) -> None:
    """min_activation 0 and nothing fires: happiness by the tie, nu taken as 0: low."""
    assert "so the row is `happiness_low`, as in rev. 1" in PROSE
    rb = _two_emotion_rulebase(shipped, 1.0).with_options(min_activation=0.0)
    for precision in ("single", "double"):
        res = rb.compile(precision=precision).evaluate(np.zeros((3, len(COMPONENTS))))
        assert (res.activations == 0).all() and np.isnan(res.eccentricity).all()
        assert res.labels.tolist() == ["happiness_low"] * 3


def test_min_activation_up_to_rounding(shipped: RuleBase) -> None:
    """An activation within 1e-12 of `min_activation` counts as reaching it."""
    tie = float(stated(r"an activation within ([\d.e-]+) of `min_activation` counts as"))
    x = np.zeros((1, len(COMPONENTS)))
    x[0, COMPONENTS.index("mouth")] = 0.3  # open: (0.3 - 0.15) / 0.45
    rb = _two_emotion_rulebase(shipped, 1.0)
    a = rb.compile(precision="double").evaluate(x).activations[0].max()
    assert 0.3 < a < 0.4

    def label(min_activation: float) -> str:
        engine = rb.with_options(min_activation=min_activation).compile(precision="double")
        return engine.evaluate(x).labels[0]

    assert label(a + tie / 2) == "happiness_high"
    assert label(a + tie * 10) == "neutral"


def test_intensity_gap_labels_the_emotion_low() -> None:
    """With lambda2 = 0.2 the paper profile's anger functions leave gaps: an eccentricity
    there scores 0 on every level, the levels tie, and the row is anger_low; at the default
    lambda2 nothing is uncovered."""
    lam = float(stated(r"the `paper` profile's anger functions with lambda2 = ([\d.]+)"))
    assert "the row is labelled that emotion's lowest level (`anger_low`)" in PROSE
    paper = RuleBase.default("paper")
    u = np.linspace(0.0, 1.0, 10001)

    def uncovered(rb: RuleBase, emotion: str) -> np.ndarray:
        return np.max([rb.intensity_mf(emotion, k)(u) for k in INTENSITIES], axis=0) == 0

    assert not any(uncovered(paper, e).any() for e in EMOTIONS)
    rb = paper.with_options(lambda_fkis=lam)
    anger = EMOTIONS.index("anger")
    assert uncovered(rb, "anger").any()
    x = np.random.default_rng(0).uniform(-1, 1, (40000, len(COMPONENTS)))
    res = rb.compile().evaluate(x)
    strongest = np.nan_to_num(res.activations).argmax(axis=1) == anger
    in_gap = (strongest & (res.activations[:, anger] >= rb.options.min_activation)
              & (res.scores[:, 3:6].max(axis=1) == 0))
    assert in_gap.sum() >= 3
    gap = uncovered(rb, "anger")
    idx = np.clip(np.round(res.eccentricity[in_gap, anger] * 10000).astype(int), 0, 10000)
    assert gap[idx].all()
    assert set(res.labels[in_gap]) == {"anger_low"}


# ============================================================================ precision
def test_precisions_agree_on_rule_centred_rows(shipped: RuleBase) -> None:
    """The single/double bounds also hold on rule-centred rows (the page's measurement):
    each rule's conditions at their codes + N(0, 0.3), other components uniform."""
    m = re.search(r"activations differ by at most ([\d.e-]+), scores by ([\d.e-]+) and "
                  r"eccentricities by ([\d.e-]+)", PROSE)
    assert m
    act_tol, score_tol, ecc_tol = (float(g) for g in m.groups())
    rng = np.random.default_rng(11)
    rules = shipped.rules
    x = rng.uniform(-1.2, 1.2, (30000, len(COMPONENTS)))
    for row, r in zip(x, rng.integers(len(rules), size=len(x)), strict=True):
        for c, v in rules[r].conditions:
            row[COMPONENTS.index(c)] = v + rng.normal(0.0, 0.3)
    single = shipped.compile().evaluate(x)
    double = shipped.compile(precision="double").evaluate(x)
    assert (single.activations > 0).any(axis=0).all()  # every emotion fired
    np.testing.assert_allclose(single.activations, double.activations, rtol=0, atol=act_tol)
    np.testing.assert_allclose(single.scores, double.scores, rtol=0, atol=score_tol)
    np.testing.assert_allclose(single.eccentricity, double.eccentricity, rtol=0, atol=ecc_tol)
    assert Engine(shipped, precision="double").dtype == np.float64
    assert shipped.compile().dtype == np.float32  # single is the default


# ============================================================================ speed notes
def _working_memory_mb(engine: Engine, x: np.ndarray) -> float:
    """Peak traced allocation of one evaluate call minus what its result keeps."""
    engine.evaluate(x[:10])
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        res = engine.evaluate(x)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del res
    assert current > base
    return (peak - current) / 1e6


def test_chunks_bound_working_memory(shipped: RuleBase) -> None:
    chunk = int(number(stated(r"Rows are processed in chunks \(default ([\d,]+) rows")))
    single_mb = number(stated(r"working memory, about (\d+) MB per chunk in flight"))
    double_mb = number(stated(r"in single precision and (\d+) MB in double"))
    facs_single = number(stated(r"and (\d+) MB and \d+ MB with the `facs` profile"))
    facs_double = number(stated(r"and \d+ MB and (\d+) MB with the `facs` profile"))
    facs_rows = int(number(stated(r"whose (\d+) hedged conditions are rows of their own")))
    facs = RuleBase.default("facs")
    assert len(facs.compile().hedged_rows) == facs_rows
    engine = Engine(shipped, n_jobs=1)
    assert engine.chunk_size == chunk and engine.n_jobs == 1
    x = np.random.default_rng(0).uniform(-1, 1, (3 * chunk, len(COMPONENTS)))
    one = _working_memory_mb(engine, x[:chunk])
    three = _working_memory_mb(engine, x)  # bounded by the chunk, not by n
    assert one == pytest.approx(single_mb, rel=0.25)
    assert three == pytest.approx(one, rel=0.1)
    double = _working_memory_mb(Engine(shipped, n_jobs=1, precision="double"), x[:chunk])
    assert double == pytest.approx(double_mb, rel=0.25)
    assert _working_memory_mb(Engine(facs, n_jobs=1), x[:chunk]) == pytest.approx(
        facs_single, rel=0.25)
    assert _working_memory_mb(Engine(facs, n_jobs=1, precision="double"), x[:chunk]) == \
        pytest.approx(facs_double, rel=0.25)


class _Counting(np.ndarray):
    """An array that records every ufunc applied to it (and to what it produces)."""

    calls: list[str] = []

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):  # type: ignore[no-untyped-def]
        _Counting.calls.append(ufunc.__name__)
        inputs = tuple(np.asarray(i) if isinstance(i, _Counting) else i for i in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(o) if isinstance(o, _Counting) else o
                                  for o in kwargs["out"])
        result = getattr(ufunc, method)(*inputs, **kwargs)
        return result.view(_Counting) if isinstance(result, np.ndarray) else result


def test_trapezoid_memberships_in_eight_operations(shipped: RuleBase) -> None:
    terms = int(number(stated(r"the (\d+) terms of the shipped rules")))
    slots = int(number(stated(r"on the (\d+) slots of 12 components x 3 codes")))
    ops = stated(r"are computed together in (\w+) whole-array operations")
    assert sum(len(c.terms) for c in shipped.components) == terms
    assert all(t.mf.trapezoid is not None for c in shipped.components for t in c.terms)
    assert sum(len(COMPONENT_TERMS[c]) for c in COMPONENTS) == terms
    assert len(COMPONENTS) * MAX_TERMS == slots
    engine = shipped.compile()
    assert engine._rise_slope.shape[0] == slots and engine._gauss_terms == []
    xt = np.random.default_rng(0).uniform(-1, 1, (len(COMPONENTS), 1000)).astype(np.float32)
    _Counting.calls = []
    mu = engine._memberships(xt.view(_Counting))
    words = {"six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
    assert _Counting.calls == ["subtract", "multiply", "add", "subtract", "multiply", "add",
                               "minimum", "clip"]
    assert len(_Counting.calls) == words[ops]
    np.testing.assert_array_equal(np.asarray(mu), engine._memberships(xt))
