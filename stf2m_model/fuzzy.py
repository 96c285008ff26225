"""F: the rule engine's FCIS and FKIS as a differentiable torch layer (Section IV-B3).

:class:`FuzzyInference` is built from a rule base's compiled JSON form (``RuleBase.to_dict()``,
SPEC section 4) and computes, for component values ``x`` of shape ``(..., 12)``, exactly the
numbers SPEC section 3 defines: memberships, rule firing strengths, the 18 (emotion, level)
rule maxima, activations, eccentricities (exact centroids) and the 18 scores. Everything is
a pure tensor function of ``x`` (no parameters, constant buffers only), so gradients flow
from the scores back to whatever produced ``x`` and the layer works under ``vmap`` and in
second-order meta-gradients.

Rule conditions accept two forms in ``when`` (component -> condition):

- an int code (today's compiled form): ``{"mouth": 1}``;
- a list of objects ``{"term": str, "code": int, "hedges": [str, ...]}`` (linguistic
  hedges, fuzzylite's definitions, applied right to left: ``["not", "very"]`` is
  not(very(mu))); a component may appear in several conditions of one rule.

Centroids (eccentricities) of piecewise-linear intensity functions (``trimf``/``trapmf``):

- min implication (the default): the engine's layer-cake method. With L_S the smallest
  level of a subset S of the terms, ``area = sum_S (-1)^(|S|+1) P_S(L_S)`` (inclusion-
  exclusion of max over min, exact pointwise) where ``P_S(t)`` integrates the width of the
  level set of ``min_{k in S} nu_k``; ``P_S`` and its first moment are tabulated once
  (4,097 levels, quadratic lookup: exact for piecewise-linear functions away from their
  kinks) and the lookup is differentiable in the level. A handful of gathers per emotion.
- product implication: ``B(u) = max_k L_k nu_k(u)`` is piecewise linear and each of its
  breakpoints is a knot or the crossing of two scaled lines, computed from the levels;
  between consecutive breakpoints ``B`` is linear, so two-point Gauss-Legendre quadrature
  integrates ``B`` and ``u B`` exactly (``centroid="breakpoints"`` uses this for min too).

An emotion with a Gaussian intensity function (not piecewise linear) uses a uniform grid.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fuzzyemo._errors import InputError
from fuzzyemo._rulebase import RULEBASE_FORMAT, RULEBASE_FORMAT_HEDGES
from fuzzyemo._vocab import COMPONENTS, EMOTIONS, INTENSITIES, MAX_TERMS

N_COMP = len(COMPONENTS)
N_EMO = len(EMOTIONS)
N_LEVELS = len(INTENSITIES)
N_CLASSES = N_EMO * N_LEVELS
HEDGES = ("any", "not", "seldom", "somewhat", "very", "extremely")
GAUSS_GRID = 4001  # grid points for emotions with Gaussian intensity functions
TABLE_POINTS = 4097  # levels of the layer-cake tables (as the engine's exact centroid)
SUBSETS = tuple(s for n in (1, 2, 3) for s in itertools.combinations(range(3), n))
_GAUSS_LEGENDRE = 0.5 / math.sqrt(3.0)  # nodes at mid +- this fraction of the segment


# ----------------------------------------------------------------------------- hedges
def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not infinite) gradient at 0, so 0 * inf never makes NaN."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))),
                       torch.zeros_like(x))


def apply_hedge(name: str, mu: torch.Tensor) -> torch.Tensor:
    """One linguistic hedge with fuzzylite's definition."""
    if name == "any":
        return torch.ones_like(mu)
    if name == "not":
        return 1.0 - mu
    if name == "seldom":
        return torch.where(mu <= 0.5, _safe_sqrt(mu / 2.0), 1.0 - _safe_sqrt((1.0 - mu) / 2.0))
    if name == "somewhat":
        return _safe_sqrt(mu)
    if name == "very":
        return mu * mu
    if name == "extremely":
        return torch.where(mu <= 0.5, 2.0 * mu * mu, 1.0 - 2.0 * (1.0 - mu) ** 2)
    raise InputError(f"unknown hedge {name!r}; one of {', '.join(HEDGES)}")


# ----------------------------------------------------------------------------- compiling
@dataclass(frozen=True)
class CompiledRules:
    """The rule base as flat numpy arrays (what the torch layer turns into buffers)."""

    term_kind: np.ndarray      # (12, 3) 0 absent, 1 trapezoid, 2 gauss
    term_params: np.ndarray    # (12, 3, 4) a, b, c, d (trapezoid) or mean, sigma, 0, 0
    atom_term: np.ndarray      # (A,) flat term index c * 3 + slot of each condition atom
    atom_chains: tuple[tuple[tuple[str, ...], int, int], ...]  # (hedges, start, stop)
    rule_atoms: np.ndarray     # (R, Lmax) atom index, padded with A (the constant-1 atom)
    rule_weight: np.ndarray    # (R,)
    group_rules: np.ndarray    # (18, Gmax) rule index per (emotion, level), padded with R
    intensity_kind: np.ndarray   # (6, 3) 1 trapezoid, 2 gauss
    intensity_params: np.ndarray  # (6, 3, 4)
    tnorm: str
    implication: str
    min_activation: float
    rule_ids: tuple[str, ...]


def _mf_arrays(kind: str, params: Sequence[float], where: str) -> tuple[int, list[float]]:
    p = [float(v) for v in params]
    if kind == "trimf" and len(p) == 3:
        return 1, [p[0], p[1], p[1], p[2]]
    if kind == "trapmf" and len(p) == 4:
        return 1, p
    if kind == "gaussmf" and len(p) == 2 and p[1] > 0:
        return 2, [p[0], p[1], 0.0, 0.0]
    raise InputError(f"rules: {where}: unsupported membership function {kind} {p}")


def _conditions(rule: Mapping[str, Any], where: str, term_names: dict[tuple[int, int], str]
                ) -> list[tuple[int, int, tuple[str, ...]]]:
    """(component, slot, hedges) of every condition of one rule, in the written order."""
    out = []
    when = rule.get("when")
    if not isinstance(when, Mapping):
        raise InputError(f"rules: {where}: 'when' must map components to conditions")
    for comp, spec in when.items():
        if comp not in COMPONENTS:
            raise InputError(f"rules: {where}: unknown component {comp!r}")
        items = spec if isinstance(spec, list) else [spec]
        for item in items:
            term = None
            if isinstance(item, Mapping):
                code, hedges = item.get("code"), tuple(item.get("hedges") or ())
                term = item.get("term")
            else:
                code, hedges = item, ()
            if isinstance(code, bool) or not isinstance(code, int) or code not in (-1, 0, 1):
                raise InputError(f"rules: {where}: {comp}: code must be -1, 0 or 1, got {code!r}")
            for h in hedges:
                if h not in HEDGES:
                    raise InputError(f"rules: {where}: unknown hedge {h!r}; "
                                     f"one of {', '.join(HEDGES)}")
            c = COMPONENTS.index(comp)
            known = term_names.get((c, code + 1))
            if term is not None and known is not None and term != known:
                raise InputError(f"rules: {where}: {comp}: term {term!r} does not have code "
                                 f"{code} (that is {known!r})")
            out.append((c, code + 1, hedges))
    return out


def compile_rules(spec: Mapping[str, Any]) -> CompiledRules:
    """Check and flatten a ``fuzzyemo-rulebase/1`` dict (SPEC section 4)."""
    if not isinstance(spec, Mapping) or "components" not in spec or "emotions" not in spec:
        raise InputError("rules: expected the compiled rule base (RuleBase.to_dict(), "
                         "'fuzzyemo rules export --format json')")
    if spec.get("format", RULEBASE_FORMAT) not in (RULEBASE_FORMAT, RULEBASE_FORMAT_HEDGES):
        raise InputError(f"rules: format {spec.get('format')!r} is not {RULEBASE_FORMAT!r} "
                         f"or {RULEBASE_FORMAT_HEDGES!r}")
    engine = spec.get("engine", {})
    tnorm, implication = engine.get("tnorm", "min"), engine.get("implication", "min")
    if tnorm not in ("min", "product") or implication not in ("min", "product"):
        raise InputError(f"rules: tnorm and implication must be min or product, got "
                         f"{tnorm!r}, {implication!r}")
    term_kind = np.zeros((N_COMP, MAX_TERMS), np.int64)
    term_params = np.zeros((N_COMP, MAX_TERMS, 4))
    term_names: dict[tuple[int, int], str] = {}
    names = [c.get("name") for c in spec["components"]]
    if tuple(names) != COMPONENTS:
        raise InputError("rules: components must be the 12 of SPEC section 1, in order")
    for c, comp in enumerate(spec["components"]):
        for term in comp["terms"]:
            slot = int(term["code"]) + 1
            term_names[(c, slot)] = str(term.get("name"))
            term_kind[c, slot], term_params[c, slot] = _mf_arrays(
                term["mf"], term["params"], f"{comp['name']}.{term.get('name')}")
    if tuple(e.get("name") for e in spec["emotions"]) != EMOTIONS:
        raise InputError("rules: emotions must be the 6 of SPEC section 2, in order")
    intensity_kind = np.zeros((N_EMO, N_LEVELS), np.int64)
    intensity_params = np.zeros((N_EMO, N_LEVELS, 4))
    raw_rules: list[tuple[str, list, float, int]] = []
    for e, emo in enumerate(spec["emotions"]):
        by_name = {t["name"]: t for t in emo["intensity"]}
        for k, level in enumerate(INTENSITIES):
            if level not in by_name:
                raise InputError(f"rules: {emo['name']}: no '{level}' intensity function")
            t = by_name[level]
            intensity_kind[e, k], intensity_params[e, k] = _mf_arrays(
                t["mf"], t["params"], f"{emo['name']}.{level}")
        for i, rule in enumerate(emo.get("rules", [])):
            rid = str(rule.get("id", f"{emo['name']}-{i + 1}"))
            if rule.get("then") not in INTENSITIES:
                raise InputError(f"rules: {rid}: 'then' must be low, medium or high")
            weight = float(rule.get("weight", 1.0))
            if not 0.0 < weight <= 1.0:
                raise InputError(f"rules: {rid}: weight must be in (0, 1], got {weight}")
            conds = _conditions(rule, rid, term_names)
            for c, slot, _ in conds:
                if term_kind[c, slot] == 0:
                    raise InputError(f"rules: {rid}: {COMPONENTS[c]} has no term with code "
                                     f"{slot - 1}")
            raw_rules.append((rid, conds, weight, N_LEVELS * e + INTENSITIES.index(rule["then"])))
    # Condition atoms, grouped by hedge chain so each chain is applied to one slice.
    atoms = sorted({(hedges, c * MAX_TERMS + slot) for _, conds, _, _ in raw_rules
                    for c, slot, hedges in conds})
    atom_index = {a: i for i, a in enumerate(atoms)}
    chains = []
    for hedges, group in itertools.groupby(enumerate(atoms), key=lambda t: t[1][0]):
        idx = [i for i, _ in group]
        chains.append((hedges, idx[0], idx[-1] + 1))
    n_rules = len(raw_rules)
    lmax = max((len(c) for _, c, _, _ in raw_rules), default=1) or 1
    rule_atoms = np.full((n_rules, lmax), len(atoms), np.int64)
    for r, (_, conds, _, _) in enumerate(raw_rules):
        for j, (c, slot, hedges) in enumerate(conds):
            rule_atoms[r, j] = atom_index[(hedges, c * MAX_TERMS + slot)]
    groups = [[r for r, rule in enumerate(raw_rules) if rule[3] == g] for g in range(N_CLASSES)]
    gmax = max((len(g) for g in groups), default=1) or 1
    group_rules = np.full((N_CLASSES, gmax), n_rules, np.int64)
    for g, members in enumerate(groups):
        group_rules[g, : len(members)] = members
    return CompiledRules(
        term_kind=term_kind, term_params=term_params,
        atom_term=np.array([t for _, t in atoms], np.int64), atom_chains=tuple(chains),
        rule_atoms=rule_atoms, rule_weight=np.array([w for _, _, w, _ in raw_rules]),
        group_rules=group_rules, intensity_kind=intensity_kind,
        intensity_params=intensity_params, tnorm=tnorm, implication=implication,
        min_activation=float(engine.get("min_activation", 0.1)),
        rule_ids=tuple(r[0] for r in raw_rules))


def _breakpoint_constants(params: np.ndarray) -> np.ndarray:
    """Constant candidate breakpoints of one emotion's aggregated set on [0, 1].

    0, 1, every knot, and every crossing of two sloped sides of different terms (those
    stay fixed whatever the levels under min implication; under product the crossings
    move and are computed in the forward pass instead).
    """
    pts = [0.0, 1.0, *params.reshape(-1).tolist()]
    lines = []
    for a, b, c, d in params:
        if b > a:
            lines.append((1.0 / (b - a), -a / (b - a)))
        if d > c:
            lines.append((-1.0 / (d - c), d / (d - c)))
    for (s1, o1), (s2, o2) in itertools.combinations(lines, 2):
        if abs(s1 - s2) > 1e-12:
            pts.append((o2 - o1) / (s1 - s2))
    pts = np.unique(np.clip(np.array(pts), 0.0, 1.0))
    return pts


def _layer_cake_tables(params: np.ndarray, points: int = TABLE_POINTS
                       ) -> tuple[np.ndarray, ...]:
    """Per subset S of one emotion's 3 terms: P_S(t) and its moment, their rates, curvature.

    The level set of ``min_{k in S} nu_k`` at level t is the interval
    ``[max_k a_k + t (b_k - a_k), min_k d_k - t (d_k - c_k)]`` clipped to U = [0, 1];
    the cumulative integrals over t follow by the trapezoid rule, which the quadratic
    lookup reproduces exactly at every grid level (as ``fuzzyemo._defuzz.ExactCentroid``).
    Returns (cum_area, rate_area, curve_area, cum_moment, rate_moment, curve_moment), each
    (7, points + 1): one padding level so a level of exactly 1 needs no bounds check.
    """
    t = np.linspace(0.0, 1.0, points)
    dt = np.diff(t)
    out = np.zeros((6, len(SUBSETS), points + 1))
    for i, subset in enumerate(SUBSETS):
        lo = np.max([np.clip(params[k, 0] + t * (params[k, 1] - params[k, 0]), 0, 1)
                     for k in subset], axis=0)
        hi = np.min([np.clip(params[k, 3] - t * (params[k, 3] - params[k, 2]), 0, 1)
                     for k in subset], axis=0)
        span = hi > lo
        for j, rate in enumerate((np.where(span, hi - lo, 0.0),
                                  np.where(span, (hi * hi - lo * lo) / 2.0, 0.0))):
            cum = np.zeros(points)
            cum[1:] = np.cumsum((rate[1:] + rate[:-1]) / 2.0 * dt)
            curve = np.append(np.diff(rate) / dt, 0.0)
            for k, table in enumerate((cum, rate, curve)):
                out[3 * j + k, i] = np.append(table, table[-1])
    return tuple(out)


def _trapezoid(u: torch.Tensor, a, b, c, d, inv_rise, inv_fall, vert_rise, vert_fall
               ) -> torch.Tensor:
    """scikit-fuzzy's trapmf (vertical sides: 1 from a on / up to d), broadcast."""
    one, zero = torch.ones_like(u), torch.zeros_like(u)
    rise = torch.where(vert_rise, torch.where(u >= a, one, zero), (u - a) * inv_rise)
    fall = torch.where(vert_fall, torch.where(u <= d, one, zero), (d - u) * inv_fall)
    return torch.clamp(torch.minimum(rise, fall), 0.0, 1.0)


class FuzzyInference(nn.Module):
    """FCIS + FKIS of a compiled rule base as a differentiable function of ``(..., 12)``.

    ``forward(x)`` returns a dict of ``memberships (..., 12, 3)`` (slot = code + 1),
    ``strengths (..., R)``, ``levels (..., 18)``, ``activations (..., 6)``,
    ``eccentricity (..., 6)`` (0 where an emotion did not fire; see ``fired``),
    ``fired (..., 6)`` (bool) and ``scores (..., 18)``. The layer has no parameters.
    """

    def __init__(self, rules: Mapping[str, Any] | CompiledRules, centroid: str = "auto"
                 ) -> None:
        super().__init__()
        self.compiled = rules if isinstance(rules, CompiledRules) else compile_rules(rules)
        cr = self.compiled
        self.tnorm, self.implication = cr.tnorm, cr.implication
        if centroid not in ("auto", "tables", "breakpoints"):
            raise ValueError(f"centroid must be auto, tables or breakpoints, got {centroid!r}")
        if centroid == "tables" and self.implication != "min":
            raise ValueError("the layer-cake tables need min implication")
        self.centroid = ("tables" if self.implication == "min" else "breakpoints") \
            if centroid == "auto" else centroid
        self.chains = cr.atom_chains

        def buf(name: str, value: Any, dtype=torch.float64) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=dtype),
                                 persistent=False)

        tp = cr.term_params
        buf("term_a", tp[..., 0])
        buf("term_b", tp[..., 1])
        buf("term_c", tp[..., 2])
        buf("term_d", tp[..., 3])
        buf("term_inv_rise", np.where(tp[..., 1] > tp[..., 0],
                                      1.0 / np.where(tp[..., 1] > tp[..., 0],
                                                     tp[..., 1] - tp[..., 0], 1.0), 0.0))
        buf("term_inv_fall", np.where(tp[..., 3] > tp[..., 2],
                                      1.0 / np.where(tp[..., 3] > tp[..., 2],
                                                     tp[..., 3] - tp[..., 2], 1.0), 0.0))
        buf("term_vert_rise", tp[..., 1] <= tp[..., 0], torch.bool)
        buf("term_vert_fall", tp[..., 3] <= tp[..., 2], torch.bool)
        buf("term_gauss", cr.term_kind == 2, torch.bool)
        buf("term_present", cr.term_kind > 0, torch.bool)
        buf("gauss_scale", np.where(cr.term_kind == 2,
                                    -0.5 / np.where(cr.term_kind == 2, tp[..., 1], 1.0) ** 2, 0.0))
        buf("atom_term", cr.atom_term, torch.long)
        buf("rule_atoms", cr.rule_atoms, torch.long)
        buf("rule_weight", cr.rule_weight)
        buf("group_rules", cr.group_rules, torch.long)
        ip = cr.intensity_params
        buf("int_a", ip[..., 0])
        buf("int_b", ip[..., 1])
        buf("int_c", ip[..., 2])
        buf("int_d", ip[..., 3])
        buf("int_inv_rise", np.where(ip[..., 1] > ip[..., 0],
                                     1.0 / np.where(ip[..., 1] > ip[..., 0],
                                                    ip[..., 1] - ip[..., 0], 1.0), 0.0))
        buf("int_inv_fall", np.where(ip[..., 3] > ip[..., 2],
                                     1.0 / np.where(ip[..., 3] > ip[..., 2],
                                                    ip[..., 3] - ip[..., 2], 1.0), 0.0))
        buf("int_vert_rise", ip[..., 1] <= ip[..., 0], torch.bool)
        buf("int_vert_fall", ip[..., 3] <= ip[..., 2], torch.bool)
        buf("int_gauss", cr.intensity_kind == 2, torch.bool)
        buf("int_gauss_scale", np.where(cr.intensity_kind == 2,
                                        -0.5 / np.where(cr.intensity_kind == 2,
                                                        ip[..., 1], 1.0) ** 2, 0.0))
        # Emotions whose intensity functions are all piecewise linear take the exact path.
        gauss_emotions = (cr.intensity_kind == 2).any(1)
        self.exact_emotions = [e for e in range(N_EMO) if not gauss_emotions[e]]
        self.grid_emotions = [e for e in range(N_EMO) if gauss_emotions[e]]
        consts = [_breakpoint_constants(ip[e]) for e in self.exact_emotions]
        width = max((len(c) for c in consts), default=1)
        padded = np.ones((len(consts), width))  # pads repeat 1.0: zero-width segments
        for i, c in enumerate(consts):
            padded[i, : len(c)] = c
        buf("breakpoints", padded)
        buf("grid", np.linspace(0.0, 1.0, GAUSS_GRID))
        if self.centroid == "tables" and self.exact_emotions:
            tables = [_layer_cake_tables(ip[e]) for e in self.exact_emotions]
            stacked = np.stack(tables, 1)  # (6 kinds, E, 7, points + 1)
            buf("tables", stacked.reshape(6, -1))
            member = np.array([[k in sub for k in range(N_LEVELS)] for sub in SUBSETS])
            buf("subset_member", member, torch.bool)
            buf("subset_sign", [(-1.0) ** (len(sub) + 1) for sub in SUBSETS])
            buf("table_offset", np.arange(len(self.exact_emotions) * len(SUBSETS)).reshape(
                len(self.exact_emotions), len(SUBSETS)) * (TABLE_POINTS + 1), torch.long)
        buf("exact_idx", self.exact_emotions, torch.long)
        buf("grid_idx", self.grid_emotions, torch.long)
        buf("all_idx", list(range(N_EMO)), torch.long)
        # Which emotion each output column comes from (exact ones first, then grid ones).
        order = self.exact_emotions + self.grid_emotions
        buf("emotion_order", np.argsort(order), torch.long)

    # ------------------------------------------------------------------ pieces
    def memberships(self, x: torch.Tensor) -> torch.Tensor:
        """FCIS: (..., 12) -> (..., 12, 3) memberships of the clipped measurements."""
        u = torch.clamp(x, -1.0, 1.0).unsqueeze(-1)
        dt = u.dtype
        trap = _trapezoid(u, self.term_a.to(dt), self.term_b.to(dt), self.term_c.to(dt),
                          self.term_d.to(dt), self.term_inv_rise.to(dt),
                          self.term_inv_fall.to(dt), self.term_vert_rise, self.term_vert_fall)
        gauss = torch.exp((u - self.term_a.to(dt)) ** 2 * self.gauss_scale.to(dt))
        mu = torch.where(self.term_gauss, gauss, trap)
        return torch.where(self.term_present, mu, torch.zeros_like(mu))

    def strengths(self, mu: torch.Tensor) -> torch.Tensor:
        """Rule firing strengths f_r = w_r * T(conditions of hedged memberships)."""
        flat = mu.flatten(-2)
        base = flat[..., self.atom_term]
        parts = []
        for hedges, start, stop in self.chains:
            v = base[..., start:stop]
            for h in reversed(hedges):  # "not very x" = not(very(x)): right to left
                v = apply_hedge(h, v)
            parts.append(v)
        parts.append(torch.ones_like(base[..., :1]))  # the pad atom: neutral for min and prod
        atoms = torch.cat(parts, -1)
        conds = atoms[..., self.rule_atoms]  # (..., R, Lmax)
        t = conds.amin(-1) if self.tnorm == "min" else conds.prod(-1)
        return t * self.rule_weight.to(t.dtype)

    def levels(self, strengths: torch.Tensor) -> torch.Tensor:
        """Max firing strength per (emotion, level): (..., R) -> (..., 18)."""
        padded = torch.cat([strengths, torch.zeros_like(strengths[..., :1])], -1)
        return padded[..., self.group_rules].amax(-1)

    def _intensity(self, u: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """nu_{e,k}(u) for u (..., E, 1, P) -> (..., E, 3, P), E = len(idx) emotions."""
        dt = u.dtype

        def p(t: torch.Tensor) -> torch.Tensor:
            t = t[idx].unsqueeze(-1)
            return t.to(dt) if t.is_floating_point() else t

        trap = _trapezoid(u, p(self.int_a), p(self.int_b), p(self.int_c), p(self.int_d),
                          p(self.int_inv_rise), p(self.int_inv_fall), p(self.int_vert_rise),
                          p(self.int_vert_fall))
        gauss = torch.exp((u - p(self.int_a)) ** 2 * p(self.int_gauss_scale))
        return torch.where(p(self.int_gauss), gauss, trap)

    def _implicate(self, lv: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        return torch.minimum(lv, nu) if self.implication == "min" else lv * nu

    def _moving_breakpoints(self, lv: torch.Tensor) -> torch.Tensor:
        """Breakpoints that move with the levels lv (..., E, 3) of the exact emotions."""
        idx = self.exact_idx
        dt = lv.dtype
        a, b = self.int_a[idx].to(dt), self.int_b[idx].to(dt)
        c, d = self.int_c[idx].to(dt), self.int_d[idx].to(dt)
        if self.implication == "min":
            # where the clip level L_j meets a side of nu_k, for every j and k
            lj = lv.unsqueeze(-1)                                   # (..., E, 3j, 1)
            rise = a.unsqueeze(-2) + lj * (b - a).unsqueeze(-2)     # (..., E, 3j, 3k)
            fall = d.unsqueeze(-2) - lj * (d - c).unsqueeze(-2)
            return torch.cat([rise.flatten(-2), fall.flatten(-2)], -1)
        # product: each term is L_k * (one of its three lines); crossings of any two lines
        # of different terms, u = (L_k o2 - L_j o1) / (L_j s1 - L_k s2)
        inv_r = self.int_inv_rise[idx].to(dt)
        inv_f = self.int_inv_fall[idx].to(dt)
        slopes = torch.stack([inv_r, torch.zeros_like(inv_r), -inv_f], -1)  # (E, 3k, 3 lines)
        offsets = torch.stack([-a * inv_r, torch.ones_like(a), d * inv_f], -1)
        out = []
        for j, k in itertools.combinations(range(N_LEVELS), 2):
            s1, o1 = slopes[:, j].unsqueeze(-1), offsets[:, j].unsqueeze(-1)  # (E, 3, 1)
            s2, o2 = slopes[:, k].unsqueeze(-2), offsets[:, k].unsqueeze(-2)  # (E, 1, 3)
            lj, lk = lv[..., j, None, None], lv[..., k, None, None]
            num = lk * o2 - lj * o1
            den = lj * s1 - lk * s2
            ok = den.abs() > 1e-12
            out.append(torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)),
                                   torch.zeros_like(den)).flatten(-2))
        return torch.cat(out, -1)

    def _centroid_exact(self, lv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(area, moment) of B over [0, 1] for the piecewise-linear emotions, exactly."""
        const = self.breakpoints.to(lv.dtype).expand(*lv.shape[:-2], -1, -1)
        pts = torch.cat([const, self._moving_breakpoints(lv)], -1).clamp(0.0, 1.0)
        pts, _ = torch.sort(pts, -1)
        u0, width = pts[..., :-1], pts[..., 1:] - pts[..., :-1]
        mid = u0 + 0.5 * width
        nodes = torch.stack([mid - _GAUSS_LEGENDRE * width, mid + _GAUSS_LEGENDRE * width], -1)
        nodes = nodes.flatten(-2)                                # (..., E, 2S)
        nu = self._intensity(nodes.unsqueeze(-2), self.exact_idx)  # (..., E, 3, 2S)
        agg = self._implicate(lv.unsqueeze(-1), nu).amax(-2)     # (..., E, 2S)
        w = width.repeat_interleave(2, -1) * 0.5
        return (w * agg).sum(-1), (w * nodes * agg).sum(-1)

    def _centroid_tables(self, lv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(area, moment) by inclusion-exclusion over the tabulated layer-cake integrals."""
        big = torch.full_like(lv[..., :1], 2.0)
        # L_S = min of the levels of the terms in S, for the 7 subsets: (..., E, 7)
        ls = torch.where(self.subset_member, lv.unsqueeze(-2), big.unsqueeze(-1)).amin(-1)
        scale = float(TABLE_POINTS - 1)
        cell = torch.clamp((ls.detach() * scale).long(), 0, TABLE_POINTS - 1)
        delta = ls - cell.to(ls.dtype) / scale       # carries the gradient of the level
        flat = cell + self.table_offset              # (..., E, 7)
        tables = self.tables.to(ls.dtype)

        def lookup(kind: int) -> torch.Tensor:
            cum, rate, curve = (tables[3 * kind + j][flat] for j in range(3))
            return (cum + delta * (rate + delta / 2.0 * curve)) * self.subset_sign.to(ls.dtype)

        return lookup(0).sum(-1), lookup(1).sum(-1)

    def _centroid_grid(self, lv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(area, moment) on a uniform grid (piecewise-linear interpolant, exact moments)."""
        u = self.grid.to(lv.dtype)
        nu = self._intensity(u.view(1, 1, -1).expand(len(self.grid_emotions), 1, -1),
                             self.grid_idx)                   # (E, 3, G)
        agg = self._implicate(lv.unsqueeze(-1), nu).amax(-2)      # (..., E, G)
        y1, y2 = agg[..., :-1], agg[..., 1:]
        du = u[1:] - u[:-1]
        x1, x2 = u[:-1], u[1:]
        area = (du * (y1 + y2) / 2).sum(-1)
        moment = (du / 6 * (x1 * (2 * y1 + y2) + x2 * (y1 + 2 * y2))).sum(-1)
        return area, moment

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu = self.memberships(x)
        strengths = self.strengths(mu)
        levels = self.levels(strengths)
        lv = levels.unflatten(-1, (N_EMO, N_LEVELS))
        activations = lv.amax(-1)
        areas, moments = [], []
        if self.exact_emotions:
            exact = self._centroid_tables if self.centroid == "tables" else self._centroid_exact
            area, moment = exact(lv[..., self.exact_idx, :])
            areas.append(area)
            moments.append(moment)
        if self.grid_emotions:
            area, moment = self._centroid_grid(lv[..., self.grid_idx, :])
            areas.append(area)
            moments.append(moment)
        area = torch.cat(areas, -1)[..., self.emotion_order]
        moment = torch.cat(moments, -1)[..., self.emotion_order]
        fired = (activations > 0) & (area > 0)
        safe_area = torch.where(fired, area, torch.ones_like(area))
        ecc = torch.where(fired, moment / safe_area, torch.zeros_like(area))
        nu = self._intensity(ecc.unsqueeze(-1).unsqueeze(-1), self.all_idx)[..., 0]
        scores = torch.where(fired.unsqueeze(-1), activations.unsqueeze(-1) * nu,
                             torch.zeros_like(nu)).flatten(-2)
        return {"memberships": mu, "strengths": strengths, "levels": levels,
                "activations": activations, "eccentricity": ecc, "fired": fired,
                "scores": scores}

    def label(self, out: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """SPEC rev. 2 labels from a forward output: class 0..17, or -1 (neutral).

        The emotion with the largest activation (ties: lower index), at its best-fitting
        intensity argmax_k nu_k(eps) (ties: lower level); neutral below min_activation.
        """
        act = out["activations"]
        emotion = torch.argmax(_first_max(act), -1)
        nu = self._intensity(out["eccentricity"].unsqueeze(-1).unsqueeze(-1),
                             self.all_idx)[..., 0]        # (..., 6, 3)
        nu_e = torch.gather(nu, -2, emotion[..., None, None].expand(*emotion.shape, 1, 3))
        level = torch.argmax(_first_max(nu_e[..., 0, :]), -1)
        cls = N_LEVELS * emotion + level
        best = act.amax(-1)
        return torch.where(best < self.compiled.min_activation - 1e-12,
                           torch.full_like(cls, -1), cls)


def _first_max(v: torch.Tensor, tie: float = 1e-12) -> torch.Tensor:
    """A 0/1 tensor marking entries within ``tie`` of the maximum, weighted so that
    argmax picks the first of them (argmax's own tie rule is unspecified)."""
    near = v >= v.amax(-1, keepdim=True) - tie
    rank = torch.arange(v.shape[-1], 0, -1, device=v.device, dtype=v.dtype)
    return near.to(v.dtype) * rank


def rules_dict(rules: Any = None, lambda_fcis: float | None = None,
               lambda_fkis: float | None = None) -> dict[str, Any]:
    """The compiled dict of a rule base: a dict (as is), a RuleBase, a directory or name.

    ``None`` is the default rule base. Lambda overrides need a RuleBase (the dict form has
    them applied already).
    """
    if isinstance(rules, Mapping):
        if lambda_fcis is not None or lambda_fkis is not None:
            raise InputError("lambda overrides need a rule base, not a compiled dict")
        return dict(rules)
    from fuzzyemo import RuleBase

    if isinstance(rules, RuleBase):
        return rules.with_options(lambda_fcis=lambda_fcis, lambda_fkis=lambda_fkis).to_dict()
    # Parsing the YAML rule files takes about a second; reuse the result while no file
    # under the rule directory changed (experiments build many runs from one rule base).
    stamp = _stamp(rules)
    key = (None if rules is None else str(rules), lambda_fcis, lambda_fkis, stamp)
    if stamp is None or key not in _RULES_CACHE:
        rb = RuleBase.default() if rules is None else RuleBase.load(rules)
        _RULES_CACHE[key] = rb.with_options(lambda_fcis=lambda_fcis,
                                            lambda_fkis=lambda_fkis).to_dict()
    return copy.deepcopy(_RULES_CACHE[key])


_RULES_CACHE: dict[tuple, dict[str, Any]] = {}


def _stamp(rules: Any) -> tuple | None:
    """(path, mtime, size) of every rule file that ``rules`` may read; None: do not cache."""
    import os

    try:
        from fuzzyemo._rulebase import resolve_rules

        root = resolve_rules(rules)[0]  # a path, a profile name, or None (the default)
        files = sorted(root.rglob("*.yaml"))
        return tuple((str(f), os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in files)
    except Exception:  # noqa: BLE001 - anything unusual: no caching, just load
        return None
