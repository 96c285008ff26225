"""The differentiable FCIS/FKIS layer (stf2m_model.fuzzy) against the numpy rule engine and
against an independent per-row reference that also knows linguistic hedges."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import stf2m_fixtures as fx  # noqa: E402

from fuzzyemo import COMPONENTS, InputError, RuleBase  # noqa: E402
from fuzzyemo._vocab import EMOTIONS, INTENSITIES  # noqa: E402
from stf2m_model.fuzzy import FuzzyInference, compile_rules, rules_dict  # noqa: E402

torch.set_num_threads(1)


def _rows(n: int = 1500, seed: int = 0) -> np.ndarray:
    """Half uniform over [-1.2, 1.2] (clipping exercised), half near rule prototypes."""
    rng = np.random.default_rng(seed)
    protos = fx.rule_prototypes()
    near = protos[rng.integers(len(protos), size=n)] * rng.uniform(0.3, 1.0, (n, 1))
    near = np.clip(near + rng.normal(0, 0.25, near.shape), -1, 1)
    return np.concatenate([rng.uniform(-1.2, 1.2, (n, 12)), near])


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return _rows()


def _compare(rb: RuleBase, x: np.ndarray, dtype=torch.float64, tol: float = 1e-4, **kw) -> None:
    fis = FuzzyInference(rb.to_dict(), **kw).to(dtype)
    res = rb.compile(precision="double").evaluate(x, memberships=True, strengths=True)
    out = {k: v.double().numpy() for k, v in fis(torch.as_tensor(x, dtype=dtype)).items()}
    fired = res.activations > 0
    assert out["fired"].astype(bool).tolist() == fired.tolist()
    assert fired.any(1).mean() > 0.3  # the rows really exercise the rules
    np.testing.assert_allclose(out["memberships"], res.memberships, atol=tol)
    np.testing.assert_allclose(out["strengths"], res.strengths, atol=tol)
    np.testing.assert_allclose(out["activations"], res.activations, atol=tol)
    np.testing.assert_allclose(out["eccentricity"][fired], res.eccentricity[fired], atol=tol)
    np.testing.assert_allclose(out["scores"], res.scores, atol=tol)


@pytest.mark.parametrize("profile", ["facs", "paper"])
def test_agrees_with_the_numpy_engine_on_each_shipped_profile(rows, profile):
    """facs has graded (hedged) rules, paper plain ones: F(Z) is both engines exactly."""
    _compare(RuleBase.default(profile), rows)


def test_agrees_in_single_precision_too(rows):
    _compare(RuleBase.default(), rows, dtype=torch.float32)


@pytest.mark.parametrize("tnorm,implication", [("product", "min"), ("min", "product"),
                                                ("product", "product")])
def test_agrees_with_other_tnorms_and_implications(rows, tnorm, implication):
    rb = RuleBase.default().with_options(tnorm=tnorm, implication=implication)
    _compare(rb, rows[::3])


def test_both_exact_centroids_agree_and_lambda_is_honoured(rows):
    rb = RuleBase.default().with_options(lambda_fcis=0.25, lambda_fkis=0.6)
    _compare(rb, rows[::3], centroid="breakpoints")
    _compare(rb, rows[::3], centroid="tables")
    # the lambdas change the numbers (the comparison above is not vacuous)
    a = FuzzyInference(RuleBase.default().to_dict()).double()(torch.as_tensor(rows))
    b = FuzzyInference(rb.to_dict()).double()(torch.as_tensor(rows))
    assert (a["scores"] - b["scores"]).abs().max() > 0.05


def test_rules_dict_accepts_a_rulebase_a_directory_or_none():
    rb = RuleBase.default()
    assert rules_dict() == rb.to_dict()
    assert rules_dict(rb, 0.3, None) == rb.with_options(lambda_fcis=0.3).to_dict()
    assert rules_dict(rb.directory if hasattr(rb, "directory") else None) == rb.to_dict()
    d = rb.to_dict()
    assert rules_dict(d) == d
    with pytest.raises(InputError, match="lambda"):
        rules_dict(d, 0.3)


# ----------------------------------------------------------------------------- hedges
HEDGE = {
    "any": lambda m: np.ones_like(m),
    "not": lambda m: 1 - m,
    "seldom": lambda m: np.where(m <= 0.5, np.sqrt(m / 2), 1 - np.sqrt((1 - m) / 2)),
    "somewhat": np.sqrt,
    "very": lambda m: m ** 2,
    "extremely": lambda m: np.where(m <= 0.5, 2 * m ** 2, 1 - 2 * (1 - m) ** 2),
}


def _mf(kind: str, p: list[float], u: np.ndarray) -> np.ndarray:
    """scikit-fuzzy's trimf / trapmf / gaussmf, written independently of both engines."""
    u = np.asarray(u, dtype=float)
    if kind == "gaussmf":
        return np.exp(-((u - p[0]) ** 2) / (2 * p[1] ** 2))
    a, b, c, d = (p[0], p[1], p[1], p[2]) if kind == "trimf" else p
    rise = (u >= a).astype(float) if b == a else (u - a) / (b - a)
    fall = (u <= d).astype(float) if d == c else (d - u) / (d - c)
    return np.clip(np.minimum(rise, fall), 0, 1)


def reference(spec: dict, x: np.ndarray, grid: int = 20001) -> dict[str, np.ndarray]:
    """SPEC section 3 with hedges, one row and one rule at a time, grid centroid."""
    u = np.linspace(0, 1, grid)
    tn = np.min if spec["engine"]["tnorm"] == "min" else np.prod
    impl = np.minimum if spec["engine"]["implication"] == "min" else np.multiply
    terms = {(c["name"], t["code"]): t for c in spec["components"] for t in c["terms"]}
    n = len(x)
    act, ecc, scores = np.zeros((n, 6)), np.full((n, 6), np.nan), np.zeros((n, 18))
    for i, row in enumerate(np.clip(x, -1, 1)):
        for e, emo in enumerate(spec["emotions"]):
            nus = {t["name"]: _mf(t["mf"], t["params"], u) for t in emo["intensity"]}
            agg = np.zeros_like(u)
            for rule in emo["rules"]:
                mus = []
                for comp, cond in rule["when"].items():
                    for item in cond if isinstance(cond, list) else [{"code": cond}]:
                        t = terms[(comp, item["code"])]
                        m = _mf(t["mf"], t["params"], row[COMPONENTS.index(comp)])
                        for h in reversed(item.get("hedges", [])):
                            m = HEDGE[h](m)
                        mus.append(float(m))
                f = rule.get("weight", 1.0) * tn(mus)
                act[i, e] = max(act[i, e], f)
                agg = np.maximum(agg, impl(f, nus[rule["then"]]))
            if act[i, e] > 0:
                ecc[i, e] = np.trapezoid(u * agg, u) / np.trapezoid(agg, u)
                for k, level in enumerate(INTENSITIES):
                    scores[i, 3 * e + k] = act[i, e] * _mf(
                        *[next(t for t in emo["intensity"] if t["name"] == level)[key]
                          for key in ("mf", "params")], ecc[i, e])
    return {"activations": act, "eccentricity": ecc, "scores": scores}


def hedged_rules(gauss: bool = False) -> dict:
    """A small hand-written rule base in the hedged compiled form (SPEC section 4)."""
    spec = copy.deepcopy(RuleBase.default().to_dict())
    rules = {
        "happiness": [
            {"id": "h1", "then": "high", "weight": 1.0,
             "when": {"left_mouth_corner": [{"term": "raised", "code": 1, "hedges": ["very"]}],
                      "right_mouth_corner": 1}},
            {"id": "h2", "then": "low", "weight": 0.8,
             "when": {"left_mouth_corner": [{"term": "raised", "code": 1,
                                             "hedges": ["somewhat"]},
                                            {"term": "raised", "code": 1,
                                             "hedges": ["not", "very"]}]}}],
        "anger": [
            {"id": "a1", "then": "medium", "weight": 0.9,
             "when": {"brow_crest": [{"term": "frowning", "code": 1, "hedges": ["extremely"]}],
                      "mouth": [{"term": "pressed", "code": -1, "hedges": ["seldom"]}]}},
            {"id": "a2", "then": "low", "weight": 1.0,
             "when": {"brow_crest": [{"term": "frowning", "code": 1, "hedges": []}],
                      "nose": [{"term": "normal", "code": 0, "hedges": ["any"]}]}}],
        "sadness": [
            {"id": "s1", "then": "high", "weight": 1.0,
             "when": {"left_eyebrow": -1, "right_eyebrow": [
                 {"term": "low", "code": -1, "hedges": ["somewhat", "extremely"]}]}}],
        "disgust": [], "fear": [],
        "surprise": [
            {"id": "u1", "then": "medium", "weight": 1.0,
             "when": {"mouth": [{"term": "open", "code": 1, "hedges": ["not", "not"]}],
                      "left_eye": 1}}],
    }
    for emo in spec["emotions"]:
        emo["rules"] = rules[emo["name"]]
    if gauss:  # Gaussian intensity functions: the grid path
        spec["emotions"][1]["intensity"] = [
            {"name": "low", "mf": "gaussmf", "params": [0.1, 0.12]},
            {"name": "medium", "mf": "gaussmf", "params": [0.45, 0.15]},
            {"name": "high", "mf": "trapmf", "params": [0.6, 0.8, 1, 1]}]
    return spec


@pytest.mark.parametrize("implication", ["min", "product"])
@pytest.mark.parametrize("gauss", [False, True], ids=["piecewise-linear", "gaussmf"])
def test_hedged_rules_match_an_independent_reference(implication, gauss):
    spec = hedged_rules(gauss)
    spec["engine"]["implication"] = implication
    x = _rows(150, seed=4)
    ref = reference(spec, x)
    out = {k: v.numpy() for k, v in
           FuzzyInference(spec).double()(torch.as_tensor(x)).items()}
    fired = ref["activations"] > 0
    assert fired[:, [0, 1, 2, 5]].mean(0).min() > 0.1  # every hedged emotion fires often
    np.testing.assert_allclose(out["activations"], ref["activations"], atol=1e-9)
    np.testing.assert_allclose(out["eccentricity"][fired], ref["eccentricity"][fired],
                               atol=1e-4)
    np.testing.assert_allclose(out["scores"], ref["scores"], atol=1e-4)


def test_each_hedge_and_the_right_to_left_order():
    from stf2m_model.fuzzy import apply_hedge

    m = torch.linspace(0, 1, 101, dtype=torch.float64)
    for name, f in HEDGE.items():
        np.testing.assert_allclose(apply_hedge(name, m).numpy(), f(m.numpy()), atol=1e-12)
    # "not very x" = not(very(x)), which differs from very(not(x))
    spec = hedged_rules()
    cr = compile_rules(spec)
    chains = {h for h, _, _ in cr.atom_chains}
    assert ("not", "very") in chains
    x = torch.zeros(1, 12, dtype=torch.float64)
    x[0, COMPONENTS.index("left_mouth_corner")] = 0.5
    fis = FuzzyInference(spec).double()
    mu = fis.memberships(x)[0, COMPONENTS.index("left_mouth_corner"), 2].item()
    h2 = cr.rule_ids.index("h2")
    assert fis.strengths(fis.memberships(x))[0, h2].item() == pytest.approx(
        0.8 * min(np.sqrt(mu), 1 - mu ** 2))


def test_gradients_flow_and_match_finite_differences():
    fis = FuzzyInference(RuleBase.default().to_dict()).double()
    x0 = torch.as_tensor(_rows(200, seed=7)[200:], dtype=torch.float64)
    x = x0.clone().requires_grad_(True)
    out = fis(x)
    w = torch.randn(out["scores"].shape, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    (g,) = torch.autograd.grad((out["scores"] * w).sum(), x)
    assert g.abs().sum() > 0 and torch.isfinite(g).all()
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps = 1e-7
    with torch.no_grad():
        plus = (fis(x0 + eps * v)["scores"] * w).sum(-1)
        minus = (fis(x0 - eps * v)["scores"] * w).sum(-1)
    fd = (plus - minus) / (2 * eps)
    analytic = (g * v).sum(-1)
    # piecewise-linear functions: a few rows sit within eps of a kink; the rest agree
    close = (fd - analytic).abs() <= 1e-4 * (1 + fd.abs())
    assert close.float().mean() > 0.95, (fd - analytic).abs().max()


def test_works_under_vmap():
    from torch.func import vmap

    fis = FuzzyInference(RuleBase.default().to_dict()).double()
    x = torch.as_tensor(_rows(60, seed=2)).reshape(4, 30, 12)
    batched = vmap(lambda t: fis(t)["scores"])(x)
    assert torch.allclose(batched, fis(x.reshape(-1, 12))["scores"].reshape(4, 30, 18))


def test_label_follows_spec_rev2(rows):
    """Rev. 2: the strongest emotion, at its best-fitting level (not the largest score)."""
    fis = FuzzyInference(RuleBase.default().to_dict()).double()
    out = fis(torch.as_tensor(rows))
    label = fis.label(out).numpy()
    act = out["activations"].numpy()
    ecc = out["eccentricity"].numpy()
    spec = RuleBase.default().to_dict()
    expected = np.full(len(rows), -1)
    for i in range(len(rows)):
        if act[i].max() < spec["engine"]["min_activation"]:
            continue
        e = int(np.argmax(act[i]))
        nus = [_mf(t["mf"], t["params"], ecc[i, e]) for t in spec["emotions"][e]["intensity"]]
        expected[i] = 3 * e + int(np.argmax(nus))
    assert (label == expected).all()
    rev1 = np.where(act.max(1) >= 0.1, out["scores"].numpy().argmax(1), -1)
    assert (rev1 // 3 != label // 3).any(), "no row where the two rules differ"


def test_bad_rule_dicts_are_one_line_errors():
    spec = hedged_rules()
    bad = copy.deepcopy(spec)
    bad["emotions"][0]["rules"][0]["when"]["left_mouth_corner"][0]["hedges"] = ["slightly"]
    with pytest.raises(InputError, match="unknown hedge 'slightly'"):
        FuzzyInference(bad)
    bad = copy.deepcopy(spec)
    bad["emotions"][0]["rules"][0]["when"]["chin"] = 1
    with pytest.raises(InputError, match="unknown component 'chin'"):
        FuzzyInference(bad)
    bad = copy.deepcopy(spec)
    bad["emotions"][0]["rules"][0]["when"]["nose"] = -1  # nose has no code -1
    with pytest.raises(InputError, match="nose has no term with code -1"):
        FuzzyInference(bad)
    bad = copy.deepcopy(spec)
    bad["emotions"][0]["rules"][0]["when"]["left_mouth_corner"][0]["term"] = "low"
    with pytest.raises(InputError, match="term 'low' does not have code 1"):
        FuzzyInference(bad)
    with pytest.raises(InputError, match="compiled rule base"):
        FuzzyInference({"rules": []})
    bad = copy.deepcopy(spec)
    bad["format"] = "fuzzyemo-rulebase/2"
    with pytest.raises(InputError, match="format 'fuzzyemo-rulebase/2' is not"):
        FuzzyInference(bad)
    assert [e for e in EMOTIONS] == [e["name"] for e in spec["emotions"]]
