"""Exports: SPEC JSON, fuzzylite FLL (checked by running pyfuzzylite), JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fuzzyemo import COMPONENT_TERMS, COMPONENTS, EMOTIONS, INTENSITIES, RuleBase
from fuzzyemo._export import json_schema_files, schema_texts, to_fll, to_json

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "rules" / "paper"  # the paper profile: its content is stable
SPEC_TOP = ["format", "rules_sha256", "engine", "lambda_fcis", "lambda_fkis",
            "components", "emotions"]
SPEC_ENGINE = ["tnorm", "implication", "aggregation", "defuzzifier", "min_activation"]


@pytest.fixture(scope="module")
def rb() -> RuleBase:
    return RuleBase.load(RULES)


def _in_order(keys: list[str], wanted: list[str]) -> bool:
    """All of ``wanted`` are present and appear in that relative order."""
    return [k for k in keys if k in wanted] == wanted


# ----------------------------------------------------------------------------- JSON
def test_json_round_trips_with_spec_keys_and_orders(rb: RuleBase) -> None:
    text = to_json(rb)
    assert text.endswith("}\n") and text == to_json(RuleBase.load(RULES))  # deterministic
    assert text.startswith('{\n  "format": "fuzzyemo-rulebase/1",\n')  # indent 2, SPEC order
    d = json.loads(text)
    assert d == json.loads(json.dumps(rb.to_dict()))
    assert _in_order(list(d), SPEC_TOP)
    assert d["rules_sha256"] == rb.sha256 and len(d["rules_sha256"]) == 64
    assert _in_order(list(d["engine"]), SPEC_ENGINE)
    assert [c["name"] for c in d["components"]] == list(COMPONENTS)
    assert [c["index"] for c in d["components"]] == list(range(1, 13))
    assert [e["name"] for e in d["emotions"]] == list(EMOTIONS)
    for c in d["components"]:
        assert [t["code"] for t in c["terms"]] == sorted(COMPONENT_TERMS[c["name"]])
        for t in c["terms"]:
            assert list(t)[:4] == ["name", "code", "mf", "params"]
            assert t["name"] == COMPONENT_TERMS[c["name"]][t["code"]]
    for e in d["emotions"]:
        assert [k["name"] for k in e["intensity"]] == list(INTENSITIES)
        assert len(e["rules"]) == len(rb.emotions[EMOTIONS.index(e["name"])].rules) > 0
        for r in e["rules"]:
            assert _in_order(list(r), ["id", "when", "then", "weight", "source"])
            assert list(r["when"]) == [c for c in COMPONENTS if c in r["when"]]
            assert all(v in COMPONENT_TERMS[c] for c, v in r["when"].items())


def _json_params(rb: RuleBase) -> tuple[dict, dict]:
    d = json.loads(to_json(rb))
    comp = {(c["name"], t["code"]): (t["mf"], t["params"]) for c in d["components"]
            for t in c["terms"]}
    inten = {(e["name"], k["name"]): (k["mf"], k["params"]) for e in d["emotions"]
             for k in e["intensity"]}
    return comp, inten


def _core(kind: str, p: list[float]) -> tuple[float, float]:
    return {"trimf": (p[1], p[1]), "trapmf": (p[1], p[2]), "gaussmf": (p[0], p[0])}[kind]


def test_json_params_are_final_and_follow_lambda(rb: RuleBase) -> None:
    comp, inten = _json_params(rb)
    for (c, code), (kind, params) in comp.items():
        mf = rb.component_mf(c, code)
        assert kind == mf.kind and params == pytest.approx(mf.params, abs=1e-12)
    for (e, k), (kind, params) in inten.items():
        mf = rb.intensity_mf(e, k)
        assert kind == mf.kind and params == pytest.approx(mf.params, abs=1e-12)

    wide = rb.with_options(lambda_fcis=0.6)  # slopes x 1.5 around the fixed cores
    comp2, inten2 = _json_params(wide)
    assert json.loads(to_json(wide))["lambda_fcis"] == 0.6
    assert inten2 == inten  # lambda_fcis leaves the FKIS alone
    changed = 0
    for key, (kind, p) in comp.items():
        kind2, q = comp2[key]
        mf2 = wide.component_mf(*key)
        assert kind2 == kind and q == pytest.approx(mf2.params, abs=1e-12)
        assert _core(kind, q) == pytest.approx(_core(kind, p))  # cores stay
        if kind in ("trimf", "trapmf"):
            lo, hi = _core(kind, p)
            assert lo - q[0] == pytest.approx(1.5 * (lo - p[0]))  # rising side x 1.5
            assert q[-1] - hi == pytest.approx(1.5 * (p[-1] - hi))  # falling side x 1.5
        changed += q != p
    assert changed >= 12  # every component has at least one sloped term


# ----------------------------------------------------------------------------- FLL text
def test_fll_text_shape(rb: RuleBase) -> None:
    text = to_fll(rb)
    assert text == to_fll(RuleBase.load(RULES)) and text.endswith("\n")
    body = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert body.count("Engine: fuzzyemo") == 1
    assert [ln.split(": ")[1] for ln in body if ln.startswith("InputVariable:")] == list(COMPONENTS)
    assert [ln.split(": ")[1] for ln in body if ln.startswith("OutputVariable:")] == list(EMOTIONS)
    assert body.count("lock-range: true") == 12 and body.count("range: -1 1") == 12
    assert body.count("range: 0 1") == 6 and body.count("defuzzifier: Centroid 10001") == 6
    assert body.count("default: nan") == 6 and body.count("aggregation: Maximum") == 6
    assert "conjunction: Minimum" in body and "implication: Minimum" in body
    assert "activation: General" in body
    rules = [ln for ln in body if ln.startswith("rule: ")]
    assert len(rules) == len(rb.rules)
    for line, r in zip(rules, rb.rules, strict=True):
        assert line.endswith(f"then {r.emotion} is {r.then}" if r.weight == 1.0
                             else f"then {r.emotion} is {r.then} with {r.weight:g}")
    # Our extra information travels in comments: ids, sources, hash, min_activation, scores.
    comments = "\n".join(ln for ln in text.splitlines() if ln.lstrip().startswith("#"))
    assert rb.sha256 in comments and "min_activation: 0.1" in comments
    assert "s[e][k] = a_e * nu_{e,k}(eps_e)" in comments
    assert all(f"# {r.id} [" in comments for r in rb.rules)
    assert "Centroid 257" in to_fll(rb, resolution=np.int64(257))
    for bad in (0, 2.5, True, "exact"):
        with pytest.raises(ValueError, match="resolution"):
            to_fll(rb, resolution=bad)


def test_fll_product_norms(rb: RuleBase) -> None:
    text = to_fll(rb.with_options(tnorm="product", implication="product"))
    assert "  conjunction: AlgebraicProduct\n" in text
    assert "  implication: AlgebraicProduct\n" in text
    mixed = to_fll(rb.with_options(tnorm="product"))
    assert "  conjunction: AlgebraicProduct\n" in mixed and "  implication: Minimum\n" in mixed


# ----------------------------------------------------------------------------- FLL in fuzzylite
# pyfuzzylite 7 defuzzifies in pure Python (one call per grid point), so the equivalence
# check runs at a coarser Centroid resolution than the export's 10001 and uses the error
# bound of _centroid_bound; the exported text differs only in that number (test_fll_text_shape).
FL_RESOLUTION = 500
FL_TOLERANCE = 1e-5  # fuzzylite's lib.abs_tolerance: rules weaker than this do not fire


@pytest.fixture(scope="module")
def fl():
    return pytest.importorskip("fuzzylite", reason="pyfuzzylite (the bench extra) is not installed")


def _fl_params(term) -> list[float]:
    """A fuzzylite term's parameters at full precision (parameters() rounds to 3 decimals)."""
    attrs = {"Triangle": ("left", "top", "right"),
             "Trapezoid": ("bottom_left", "top_left", "top_right", "bottom_right"),
             "Gaussian": ("mean", "standard_deviation")}[type(term).__name__]
    return [float(getattr(term, a)) for a in attrs]


def _sample_rows(rb: RuleBase, n_uniform: int, n_near: int, seed: int) -> np.ndarray:
    """Uniform rows (mostly nothing fires; some out of [-1, 1] to exercise lock-range) and
    rows near a random rule's coding (that rule, and often neighbours, fire)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.2, 1.2, (n_uniform + n_near, len(COMPONENTS)))
    rules = rb.rules
    for i in range(n_uniform, n_uniform + n_near):
        for c, v in rules[rng.integers(len(rules))].conditions:
            x[i, COMPONENTS.index(c)] = v + rng.normal(0.0, 0.25)
    return x


def _run_fuzzylite(fl, text: str, x: np.ndarray):
    """Per row: output values (eccentricities), activations a_e and every rule's strength."""
    engine = fl.FllImporter().from_string(text)
    inputs = [engine.input_variable(c) for c in COMPONENTS]
    outputs = [engine.output_variable(e) for e in EMOTIONS]
    rules = engine.rule_blocks[0].rules
    ecc = np.empty((len(x), len(EMOTIONS)))
    act = np.empty_like(ecc)
    strength = np.empty((len(x), len(rules)))
    for i, row in enumerate(x):
        for var, value in zip(inputs, row, strict=True):
            var.value = float(value)
        engine.process()
        ecc[i] = [o.value for o in outputs]
        act[i] = [max((o.fuzzy.activation_degree(t) for t in o.terms), default=0.0)
                  for o in outputs]
        strength[i] = [r.activation_degree for r in rules]
    return engine, ecc, act, strength


def _centroid_bound(rb: RuleBase, activation: np.ndarray, resolution: int,
                    faint: np.ndarray) -> np.ndarray:
    """|fuzzylite centroid - our eccentricity| bound per (row, emotion).

    fuzzylite's Centroid is the midpoint rule with h = 1/resolution over [0, 1]. The
    aggregated set B_e is continuous and piecewise linear (tri/trap terms, no vertical side
    inside (0, 1): checked below), slopes <= L_e. The midpoint rule is exact on linear
    pieces; a kink with slope jump ds costs <= |ds| h^2/8. B_e's slope jumps sum to <= 24 L_e
    (each of the 3 clipped or scaled terms contributes <= 4 L_e, and <= 6 switches between
    terms <= 2 L_e each). So |dArea| <= 3 L h^2 and |dMoment| <= (5 L + L/12) h^2 (u <= 1,
    plus the h^2/12 curvature of u*B on linear pieces), and
    |d centroid| <= (|dMoment| + |dArea|) / (Area - |dArea|), with
    Area >= a_e * min_k integral_U nu_{e,k} (min(a, nu) >= a * nu; a * nu is the product case).
    Where a rule of e fires below fuzzylite's 1e-5 tolerance (``faint``), fuzzylite drops it:
    B changes by <= 1e-5, so at most 2e-5 / Area more. Plus SPEC's accuracy of our own
    eccentricity, 1e-4.
    """
    h2 = (1.0 / resolution) ** 2
    u = np.linspace(0.0, 1.0, 100001)
    bound = np.empty_like(activation)
    for j, e in enumerate(EMOTIONS):
        slopes, areas = [], []
        for k in INTENSITIES:
            mf = rb.intensity_mf(e, k)
            assert mf.kind in ("trimf", "trapmf"), "bound derived for piecewise-linear terms"
            a, b, c, d = mf.trapezoid
            for lo, hi in ((a, b), (c, d)):
                if hi > lo:
                    slopes.append(1.0 / (hi - lo))
                else:
                    assert lo <= 0.0 or lo >= 1.0, "vertical side inside U: O(h) error"
            areas.append(mf(u).mean() - 1e-4)  # integral over U (length 1), rounded down
        lip, min_area = max(slopes), min(areas)
        area = activation[:, j] * min_area - 3 * lip * h2
        with np.errstate(divide="ignore", invalid="ignore"):
            col = (8.1 * lip * h2 + np.where(faint[:, j], 2 * FL_TOLERANCE, 0.0)) / area + 1e-4
        bound[:, j] = np.where(area > 0, col, np.inf)
    return bound


def _compare(fl, rb: RuleBase, x: np.ndarray) -> dict:
    # Double precision so strengths can be compared to rounding (the default single
    # precision engine agrees to ~1e-7, checked in the peer tests).
    ours = rb.compile(precision="double").evaluate(x, strengths=True)
    engine, ecc, act, strength = _run_fuzzylite(fl, to_fll(rb, resolution=FL_RESOLUTION), x)
    # Every rule's firing strength (SPEC step 2: weight, t-norm, terms) agrees to rounding.
    np.testing.assert_allclose(strength, ours.strengths, rtol=0, atol=1e-12)
    a = ours.activations
    fires = a > FL_TOLERANCE
    # Not activated: fuzzylite gives its default (nan), we give NaN.
    assert np.isnan(ours.eccentricity[a == 0]).all() and np.isnan(ecc[a == 0]).all()
    # Activated beyond fuzzylite's tolerance: both give a number, and the same a_e (step 3).
    assert not np.isnan(ecc[fires]).any() and not np.isnan(ours.eccentricity[fires]).any()
    np.testing.assert_allclose(act[fires], a[fires], rtol=0, atol=1e-12)
    emotion_of = np.array([EMOTIONS.index(r.emotion) for r in rb.rules])
    weak = (ours.strengths > 0) & (ours.strengths <= FL_TOLERANCE)
    faint = np.stack([weak[:, emotion_of == j].any(axis=1) for j in range(len(EMOTIONS))], 1)
    bound = _centroid_bound(rb, a, FL_RESOLUTION, faint)
    err = np.abs(ecc - ours.eccentricity)
    assert (err[fires] <= bound[fires]).all(), (err - bound)[fires].max()
    return {"engine": engine, "fires": fires, "ecc": ecc, "bound": bound, "act": a}


def test_fll_loads_and_matches_engine(fl, rb: RuleBase) -> None:
    x = _sample_rows(rb, n_uniform=200, n_near=100, seed=7)
    out = _compare(fl, rb, x)
    engine, fires = out["engine"], out["fires"]
    # The parsed engine is ours: variables, terms, params, norms, rule count and weights.
    assert [v.name for v in engine.input_variables] == list(COMPONENTS)
    assert all(v.lock_range and v.range == (-1.0, 1.0) for v in engine.input_variables)
    for v in engine.input_variables:
        assert [t.name for t in v.terms] == [COMPONENT_TERMS[v.name][c]
                                             for c in sorted(COMPONENT_TERMS[v.name])]
        for t in v.terms:
            code = next(c for c, n in COMPONENT_TERMS[v.name].items() if n == t.name)
            assert _fl_params(t) == pytest.approx(rb.component_mf(v.name, code).params, abs=1e-12)
    assert [v.name for v in engine.output_variables] == list(EMOTIONS)
    block = engine.rule_blocks[0]
    assert type(block.conjunction).__name__ == "Minimum"
    assert type(block.implication).__name__ == "Minimum"
    assert [r.weight for r in block.rules] == [r.weight for r in rb.rules]
    # The sample exercises both branches, with strong activations among them.
    assert fires.sum() >= 60 and (~fires).sum() >= 300
    assert (out["act"] > 0.5).sum() >= 20
    # The bound is tight enough to tell implication min from product, or a 10% lambda2 change.
    for wrong in (rb.with_options(implication="product"), rb.with_options(lambda_fkis=0.44)):
        off = np.abs(out["ecc"] - wrong.compile().evaluate(x).eccentricity) > out["bound"]
        assert off[fires].sum() >= 10


def test_fll_product_matches_engine(fl, rb: RuleBase) -> None:
    prod = rb.with_options(tnorm="product", implication="product")
    x = _sample_rows(prod, n_uniform=20, n_near=40, seed=11)
    out = _compare(fl, prod, x)
    block = out["engine"].rule_blocks[0]
    assert type(block.conjunction).__name__ == "AlgebraicProduct"
    assert type(block.implication).__name__ == "AlgebraicProduct"
    assert out["fires"].sum() >= 20


def test_fll_lambda_reaches_fuzzylite(fl, rb: RuleBase) -> None:
    wide = rb.with_options(lambda_fcis=0.6, lambda_fkis=0.5)
    engine = fl.FllImporter().from_string(to_fll(wide))
    for e in EMOTIONS:
        for t in engine.output_variable(e).terms:
            assert _fl_params(t) == pytest.approx(wide.intensity_mf(e, t.name).params, abs=1e-12)
    normal = engine.input_variable("mouth").term("normal")
    # Shipped [-0.5, -0.15, 0.15, 0.5]: the core stays, the slopes (0.35) stretch x 1.5.
    assert _fl_params(normal) == pytest.approx([-0.675, -0.15, 0.15, 0.675])


# ----------------------------------------------------------------------------- hedges
def test_fll_writes_hedges_natively(hedged_rulebase: RuleBase) -> None:
    text = to_fll(hedged_rulebase)
    rules = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("rule: ")]
    assert ("rule: if nose is any and mouth is normal and left_mouth_corner is raised and "
            "left_mouth_corner is not very raised and right_mouth_corner is raised and "
            "right_mouth_corner is not very raised then happiness is low with 0.8") in rules
    assert ("rule: if brow_crest is extremely frowning and mouth is seldom pressed and "
            "mouth is not very pressed then anger is medium with 0.75") in rules
    assert any("brow_crest is not not frowning" in r for r in rules)
    # The coding comment marks the hedged components '*' (a coding cannot express hedges).
    assert "# happiness-h-low [*******0****]" in text


def test_json_format_declares_hedges(rb: RuleBase, hedged_rulebase: RuleBase) -> None:
    """SPEC section 4's ``when`` maps a component to one code; a rule base that needs a list
    of hedged conditions says so in its format, so a plain SPEC reader refuses it by name."""
    plain, hedged = rb.to_dict(), hedged_rulebase.to_dict()
    assert plain["format"] == "fuzzyemo-rulebase/1"
    assert all(isinstance(v, int) for e in plain["emotions"] for r in e["rules"]
               for v in r["when"].values())
    assert hedged["format"] == "fuzzyemo-rulebase/1+hedges"
    assert any(isinstance(v, list) for e in hedged["emotions"] for r in e["rules"]
               for v in r["when"].values())
    assert RuleBase.load("facs").to_dict()["format"] == "fuzzyemo-rulebase/1+hedges"


def _near_hedged(rb: RuleBase, per_rule: int, seed: int) -> np.ndarray:
    """Rows centred on the hedged rules' codes (so they fire, at partial strengths)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in (r for r in rb.rules if r.hedged):
        for _ in range(per_rule):
            row = rng.uniform(-1.2, 1.2, len(COMPONENTS))
            for c, v in r.conditions:
                row[COMPONENTS.index(c)] = v * rng.uniform(0.4, 1.0) + rng.normal(0.0, 0.1)
            rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("norms", ["min", "product"])
def test_fll_hedged_rulebase_matches_engine(fl, hedged_rulebase: RuleBase, norms: str) -> None:
    """pyfuzzylite evaluates the hedged FLL like our engine: every rule strength and
    activation to 1e-12, eccentricities within the centroid bound; and, at the export's
    default Centroid 10001 on a few rows, eccentricities to 1e-4 (SPEC's accuracy)."""
    rb = hedged_rulebase.with_options(tnorm=norms, implication=norms)
    x = np.vstack([_sample_rows(rb, n_uniform=40, n_near=60, seed=3), _near_hedged(rb, 12, 4)])
    out = _compare(fl, rb, x)
    ours = rb.compile(precision="double").evaluate(x, strengths=True)
    hedged = [i for i, r in enumerate(rb.rules) if r.hedged]
    fired = ours.strengths[:, hedged]
    assert ((fired > 0.01) & (fired < 0.5)).any(axis=0).all()  # each hedged rule, partially
    assert out["fires"].sum() >= 60
    few = _near_hedged(rb, 2, 5)
    _, ecc, act, _ = _run_fuzzylite(fl, to_fll(rb), few)
    mine = rb.compile(precision="double").evaluate(few)
    strong = mine.activations > 0.01
    assert strong.sum() >= 12
    np.testing.assert_allclose(ecc[strong], mine.eccentricity[strong], rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- JSON Schema
def _validator(name: str):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    schema = json.loads(schema_texts()[name])
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


SHIPPED = []
for _profile in sorted(p.parent for p in (REPO / "rules").glob("*/fcis.yaml")):
    SHIPPED += [("engine.schema.json", _profile / "engine.yaml"),
                ("fcis.schema.json", _profile / "fcis.yaml")]
    SHIPPED += [("fkis.schema.json", _profile / "fkis" / f"{e}.yaml") for e in EMOTIONS]


@pytest.mark.parametrize(("schema", "path"), SHIPPED,
                         ids=[f"{p.relative_to(REPO / 'rules')}" for _, p in SHIPPED])
def test_schema_validates_shipped_yaml(schema: str, path: Path) -> None:
    errors = list(_validator(schema).iter_errors(_yaml(path)))
    assert not errors, [e.message for e in errors]


def test_schema_validates_hedged_yaml(hedged_rules: Path) -> None:
    validator = _validator("fkis.schema.json")
    for e in EMOTIONS:
        doc = _yaml(hedged_rules / "fkis" / f"{e}.yaml")
        assert any(isinstance(v, list) or " " in str(v) for r in doc["rules"]
                   for v in (r.get("when") or {}).values()) or any("if" in r for r in doc["rules"])
        errors = list(validator.iter_errors(doc))
        assert not errors, [er.message for er in errors]
    bad = _yaml(hedged_rules / "fkis" / "happiness.yaml")
    bad["rules"][-1]["when"] = {"mouth": [["open"]]}  # a list inside a list
    assert not validator.is_valid(bad)


def test_schema_rejects_unknown_keys_and_bad_values() -> None:
    engine = _yaml(RULES / "engine.yaml")
    assert _validator("engine.schema.json").is_valid({**engine, "resolution": 1001})
    for bad in ({**engine, "tnrom": "min"}, {**engine, "tnorm": "max"},
                {**engine, "format": "fuzzyemo-engine/2"}):
        assert not _validator("engine.schema.json").is_valid(bad), bad
    fkis = _yaml(RULES / "fkis" / "anger.yaml")
    rule = {**fkis["rules"][0], "wieght": 0.5}  # unknown key inside a rule
    assert not _validator("fkis.schema.json").is_valid({**fkis, "rules": [rule]})
    fcis = _yaml(RULES / "fcis.yaml")
    comp = next(iter(fcis["components"]))
    term = next(iter(fcis["components"][comp]["terms"]))
    fcis["components"][comp]["terms"][term]["colour"] = "red"
    assert not _validator("fcis.schema.json").is_valid(fcis)


def test_schema_files_written_and_docs_up_to_date(tmp_path: Path) -> None:
    written = json_schema_files(tmp_path / "new")
    assert sorted(p.name for p in written) == [
        "engine.schema.json", "fcis.schema.json", "fkis.schema.json"]
    texts = schema_texts()
    for p in written:
        assert p.read_text(encoding="utf-8") == texts[p.name]
        assert json.loads(texts[p.name])["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert not [p for p in (tmp_path / "new").iterdir() if p.name.startswith(".")]
    # docs/schema/ holds the generated files; regenerate with `fuzzyemo rules schema -o docs/schema`.
    for name, text in texts.items():
        shipped = REPO / "docs" / "schema" / name
        assert shipped.read_text(encoding="utf-8") == text, f"{shipped} is stale"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        json_schema_files(tmp_path / "file")



def test_docs_pyfuzzylite_example_runs_and_agrees(fl, rb: RuleBase, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/exports.md's two snippets (pyfuzzylite on the FLL, then fuzzyemo) print the same line."""
    import contextlib
    import io
    import re

    doc = (REPO / "docs" / "exports.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Running it in pyfuzzylite"):]
    section = section[:section.index("\n## ")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    (tmp_path / "fuzzyemo.fll").write_text(to_fll(rb), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = []
    for block in blocks:  # the second snippet reuses the first one's `face`
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(block, "docs/exports.md", "exec"), namespace)  # noqa: S102
        printed.append(buf.getvalue().strip())
    match = re.search(r"This prints `([^`]+)`", section)
    assert match is not None
    assert printed == [match.group(1)] * 2
