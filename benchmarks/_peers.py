"""Peer implementations of a compiled rule base (SPEC section 4 JSON) for the benchmarks.

Both peers are built ONLY from ``RuleBase.to_dict()``; nothing of fuzzyemo's engine is
used, so their eccentricities are an independent check of ours:

- scikit-fuzzy's control API (``skfuzzy.control``: Antecedent / Consequent / Rule /
  ControlSystemSimulation), in its array mode;
- pyfuzzylite (``import fuzzylite as fl``), built through its Python API, one
  OutputVariable per emotion, Minimum/Maximum/Centroid. Version 7 is scalar-only: one
  ``process()`` per row. Version 8 is vectorised (``engine.input_values = X``, one
  ``process()`` per batch) but requires numpy < 2, so it runs in its own interpreter:
  ``python benchmarks/_peers.py fuzzylite8 COMPILED.json X.npy OUT.npz SECONDS`` (called by
  ``benchmarks/engine.py --fuzzylite8-python``).

Measurements are clipped to [-1, 1] before they reach a peer (SPEC section 1); NaN rows are
not sent (SPEC: unknown).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

INTENSITY_LEVELS = ("low", "medium", "high")


# ============================================================================ skfuzzy
def _skfuzzy_mf(kind: str, params: list[float], x: np.ndarray) -> np.ndarray:
    import skfuzzy

    if kind == "trimf":
        return skfuzzy.trimf(x, params)
    if kind == "trapmf":
        return skfuzzy.trapmf(x, params)
    return skfuzzy.gaussmf(x, params[0], params[1])


def _ordered_once_class() -> type:
    import skfuzzy.control as ctrl

    class _OrderedOnce(ctrl.ControlSystem):
        """A ControlSystem whose rule firing order is computed once, not per access."""

        _ordered: list | None = None

        @property
        def rules(self):  # type: ignore[override]
            if self._ordered is None:
                self._ordered = list(super().rules)
            return iter(self._ordered)

    return _OrderedOnce


class SkfuzzyControlPeer:
    """The rule base as a ``skfuzzy.control.ControlSystem``.

    Input universes are 2,001-point grids over [-1, 1] (step 0.001, every knot of the
    shipped FCIS lies on it, so skfuzzy's linear interpolation of the membership functions
    is exact); output universes have ``output_points`` points over U = [0, 1].
    """

    name = "scikit-fuzzy control"

    def __init__(self, compiled: dict[str, Any], output_points: int = 1001):
        import skfuzzy.control as ctrl

        eng = compiled["engine"]
        if eng["implication"] != "min":
            raise ValueError("skfuzzy.control clips consequents (min implication) only")
        and_func = np.multiply if eng["tnorm"] == "product" else np.fmin
        x_univ = np.linspace(-1.0, 1.0, 2001)
        u_univ = np.linspace(0.0, 1.0, output_points)
        self.inputs = []
        ants = {}
        for comp in compiled["components"]:
            ant = ctrl.Antecedent(x_univ, comp["name"])
            for t in comp["terms"]:
                ant[t["name"]] = _skfuzzy_mf(t["mf"], t["params"], x_univ)
            ants[comp["name"]] = ant
            self.inputs.append(comp["name"])
        term_name = {c["name"]: {t["code"]: t["name"] for t in c["terms"]}
                     for c in compiled["components"]}
        rules = []
        self.outputs = []
        for emo in compiled["emotions"]:
            if not emo["rules"]:
                continue
            cons = ctrl.Consequent(u_univ, emo["name"], defuzzify_method="centroid")
            for t in emo["intensity"]:
                cons[t["name"]] = _skfuzzy_mf(t["mf"], t["params"], u_univ)
            self.outputs.append(emo["name"])
            for r in emo["rules"]:
                parts = [ants[c][term_name[c][int(v)]] for c, v in r["when"].items()]
                antecedent = parts[0]
                for p in parts[1:]:
                    antecedent = antecedent & p
                consequent = cons[r["then"]]
                if float(r["weight"]) != 1.0:
                    consequent = consequent % float(r["weight"])
                rules.append(ctrl.Rule(antecedent, consequent, and_func=and_func,
                                       label=r["id"]))
        # ControlSystem(rules) adds rules one by one and re-derives the firing order of all
        # rules on every addition (O(n^2) graph compositions: ~3 minutes for 176 rules).
        # Composing the rule graphs once gives the same system graph in a second.
        # Likewise ``ControlSystem.rules`` re-derives that order on every access, i.e. on
        # every compute(); the system never changes here, so derive it once (see
        # _OrderedOnce). Both only make the peer faster, never different.
        import networkx as nx

        self.system = _ordered_once_class()()
        self.system.graph = nx.compose_all([r.graph for r in rules])
        self.emotion_names = [e["name"] for e in compiled["emotions"]]

    def eccentricity(self, x: np.ndarray, array_mode: bool = False) -> np.ndarray:
        """(n, 6) centroids, NaN where an emotion has no activated rule.

        ``array_mode=True`` uses skfuzzy's array inputs; it only works when every row
        activates every emotion (otherwise skfuzzy raises EmptyMembershipError for the
        whole array), so the benchmark runs per row.
        """
        import skfuzzy.control as ctrl

        x = np.clip(np.asarray(x, dtype=float), -1.0, 1.0)
        out = np.full((len(x), len(self.emotion_names)), np.nan)
        if array_mode:
            sim = ctrl.ControlSystemSimulation(self.system, lenient=True, cache=False)
            for i, name in enumerate(self.inputs):
                sim.input[name] = x[:, i].copy()
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                sim.compute()
            for name, value in sim.output.items():
                out[:, self.emotion_names.index(name)] = np.asarray(value, dtype=float)
            return out
        sim = ctrl.ControlSystemSimulation(self.system, lenient=True, cache=False)
        for r, row in enumerate(x):
            for i, name in enumerate(self.inputs):
                sim.input[name] = float(row[i])
            sim.compute()
            for name, value in sim.output.items():
                out[r, self.emotion_names.index(name)] = float(value)
        return out


# ============================================================================ fuzzylite
class FuzzyLitePeer:
    """The rule base as a pyfuzzylite ``Engine`` (Minimum / Maximum / Centroid)."""

    name = "pyfuzzylite"

    def __init__(self, compiled: dict[str, Any], resolution: int = 1000):
        import fuzzylite as fl

        eng = compiled["engine"]
        self.fl = fl
        # Version 8 evaluates a whole array per process(); 7 takes one row at a time.
        self.vectorised = int(str(fl.__version__).split(".")[0]) >= 8
        if self.vectorised:
            self.name = f"pyfuzzylite {fl.__version__} (vectorised)"
        self.engine = fl.Engine(name="fuzzyemo_peer")
        for comp in compiled["components"]:
            var = fl.InputVariable(name=comp["name"], minimum=-1.0, maximum=1.0,
                                   lock_range=False,
                                   terms=[self._term(t) for t in comp["terms"]])
            self.engine.input_variables.append(var)
        term_name = {c["name"]: {t["code"]: t["name"] for t in c["terms"]}
                     for c in compiled["components"]}
        self.emotion_names = [e["name"] for e in compiled["emotions"]]
        rule_texts = []
        for emo in compiled["emotions"]:
            out = fl.OutputVariable(
                name=emo["name"], minimum=0.0, maximum=1.0, lock_range=False,
                lock_previous=False, default_value=fl.nan,
                aggregation=fl.Maximum(), defuzzifier=fl.Centroid(resolution),
                terms=[self._term(t) for t in emo["intensity"]])
            self.engine.output_variables.append(out)
            for r in emo["rules"]:
                cond = " and ".join(f"{c} is {term_name[c][int(v)]}" for c, v in r["when"].items())
                text = f"if {cond} then {emo['name']} is {r['then']}"
                if float(r["weight"]) != 1.0:
                    text += f" with {float(r['weight'])!r}"
                rule_texts.append(text)
        conj = fl.AlgebraicProduct() if eng["tnorm"] == "product" else fl.Minimum()
        impl = fl.AlgebraicProduct() if eng["implication"] == "product" else fl.Minimum()
        block = fl.RuleBlock(name="rules", conjunction=conj, disjunction=fl.Maximum(),
                             implication=impl, activation=fl.General())
        self.engine.rule_blocks.append(block)
        for text in rule_texts:
            block.rules.append(fl.Rule.create(text, self.engine))

    def _term(self, t: dict[str, Any]) -> Any:
        fl, p = self.fl, t["params"]
        if t["mf"] == "trimf":
            return fl.Triangle(t["name"], p[0], p[1], p[2])
        if t["mf"] == "trapmf":
            return fl.Trapezoid(t["name"], p[0], p[1], p[2], p[3])
        return fl.Gaussian(t["name"], p[0], p[1])

    def eccentricity(self, x: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(x, dtype=float), -1.0, 1.0)
        if self.vectorised:
            # Its centroid holds (rows, resolution) arrays per term: batches bound memory.
            parts = []
            for start in range(0, len(x), 2000):
                self.engine.input_values = x[start:start + 2000]
                self.engine.process()
                parts.append(np.asarray(self.engine.output_values, dtype=float))
            return np.concatenate(parts) if parts else np.empty((0, len(self.emotion_names)))
        inputs = self.engine.input_variables
        outputs = self.engine.output_variables
        out = np.empty((len(x), len(outputs)))
        for r, row in enumerate(x):
            for var, value in zip(inputs, row, strict=True):
                var.value = float(value)
            self.engine.process()
            out[r] = [v.value for v in outputs]
        return out


# ============================================================================ subprocess
def _fuzzylite_subprocess(compiled_json: str, x_npy: str, out_npz: str,
                          target_s: float) -> None:
    """Time the pyfuzzylite peer in this interpreter (used for pyfuzzylite 8, numpy < 2).

    Evaluates growing prefixes of X until about ``target_s`` seconds were spent in one
    call (after a warm-up), and saves the rows, the seconds and the eccentricities.
    """
    import json
    import time
    from pathlib import Path

    import fuzzylite as fl

    compiled = json.loads(Path(compiled_json).read_text(encoding="utf-8"))
    x = np.load(x_npy)
    t = time.perf_counter()
    peer = FuzzyLitePeer(compiled)
    build_s = time.perf_counter() - t
    peer.eccentricity(x[:10])  # warm-up
    n = 200
    while True:
        t = time.perf_counter()
        ecc = peer.eccentricity(x[:n])
        secs = time.perf_counter() - t
        if secs >= target_s or n >= len(x):
            break
        n = min(len(x), max(n + 1, int(n * min(target_s / max(secs, 1e-3), 10) * 1.1)))
    np.savez(out_npz, rows=n, seconds=secs, build_seconds=build_s, eccentricity=ecc,
             version=str(fl.__version__), numpy=np.__version__)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 6 or sys.argv[1] != "fuzzylite8":
        raise SystemExit("usage: python _peers.py fuzzylite8 COMPILED.json X.npy OUT.npz SECONDS")
    _fuzzylite_subprocess(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
