"""Lint a rule base: problems a loader cannot see because each rule is valid on its own.

Findings (level: code):
- error: ``conflict``      two rules with the same antecedent and different consequents
- warning: ``duplicate``   two rules with the same antecedent and the same consequent
- error: ``never-fires``   a rule whose firing strength is 0 everywhere in the region: a
                           condition that is 0 on all of [-1, 1] (a dead term, ``not any``)
                           or conditions on one component that never hold together
- warning: ``unreachable-rule``  a rule whose firing strength stays below min_activation
                           everywhere in the region of measurements (exact: see below)
- warning: ``tie``         two rules of different emotions with equal weights, one's
                           antecedent contained in the other's (hedges included): they fire
                           with the same strength at the larger rule's prototype, where the
                           label is then decided by the emotion order alone
- warning: ``constant``    a condition whose hedges make it constant (``mouth is any`` is
                           always 1: it does nothing)
- warning: ``unreachable`` a class that no crisp coding and no sampled measurement labels
- warning: ``gap``         an emotion's intensity functions leave part of U = [0, 1] with
                           zero membership: an eccentricity there scores 0 on all three
                           levels, which tie, so the row is labelled the emotion's low level
                           whatever its rules say
- info: ``shadowed``       at a rule's own prototype (its conditions at their codes, a hedged
                           component where its conditions peak, other
                           components neutral) another class wins; often intended (the
                           rule contributes to blends), sometimes a sign of a missing rule

The *region* is the box of measurements the checks consider: per component an interval
[lo, hi] within [-1, 1] (default [-1, 1] for every component), e.g. the values a
calibration can produce. A rule's firing strength is its weight times a t-norm of
functions of one component each, and components vary independently, so its largest value
over the box is the weight times the t-norm of each component's largest value on its
interval (the min of maxima for min, the product of maxima for product): each is found on a
4,001-point grid and refined around its best point, exact to about 1e-9.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ._errors import did_you_mean
from ._hedges import apply_hedges
from ._rulebase import Condition, Rule, RuleBase
from ._vocab import CLASS_NAMES, COMPONENT_TERMS, COMPONENTS, EMOTIONS, INTENSITIES, class_name

TIE = 1e-12  # as the engine's: values this close count as equal

Region = Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning" | "info"
    code: str
    message: str
    location: str = ""

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.level}: {self.message} [{self.code}]"


@dataclass
class LintReport:
    findings: list[Finding]
    counts: dict[str, dict[str, int]]  # emotion -> level -> number of rules
    reached: set[int]
    # rule id -> the largest firing strength in the region (weight included)
    max_strength: dict[str, float] = field(default_factory=dict)
    region: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]


def crisp_grid() -> np.ndarray:
    """Every crisp coding: 3^10 * 2^2 = 236,196 rows (nose and nostril have two codes)."""
    domains = [sorted(COMPONENT_TERMS[c]) for c in COMPONENTS]
    return np.array(list(itertools.product(*domains)), dtype=float)


GRID = np.linspace(-1.0, 1.0, 4001)  # step 5e-4: every knot of a 2-decimal parameter on it


def condition_values(rulebase: RuleBase, cond: Condition, x: np.ndarray = GRID) -> np.ndarray:
    """A condition's membership, hedges applied (docs/semantics.md), at the measurements ``x``."""
    mu = np.asarray(rulebase.component_mf(cond.component, cond.code)(x), dtype=float)
    return apply_hedges(cond.hedges, mu.copy())


def component_values(rulebase: RuleBase, conds: list[Condition],
                     x: np.ndarray = GRID) -> np.ndarray:
    """The t-norm of one component's conditions of a rule at ``x`` (one 1-D function)."""
    values = [condition_values(rulebase, c, x) for c in conds]
    if rulebase.options.tnorm == "product":
        return np.prod(values, axis=0)
    return np.min(values, axis=0)


def by_component(rule: Rule) -> dict[str, list[Condition]]:
    """A rule's conditions grouped by component, in component order."""
    out: dict[str, list[Condition]] = {}
    for cond in rule.terms:
        out.setdefault(cond.component, []).append(cond)
    return out


def check_region(region: Region | None) -> dict[str, tuple[float, float]]:
    """Every component's interval: ``region``'s, else [-1, 1]; ValueError when invalid."""
    region = dict(region or {})
    unknown = [c for c in region if c not in COMPONENT_TERMS]
    if unknown:
        hint = did_you_mean(unknown[0], COMPONENTS)
        raise ValueError(f"region: unknown component {unknown[0]!r}"
                         + (f" ({hint})" if hint else ""))
    out = {}
    for c in COMPONENTS:
        lo, hi = (float(v) for v in region.get(c, (-1.0, 1.0)))
        if not (-1.0 <= lo <= hi <= 1.0):
            raise ValueError(f"region: {c} must be an interval [lo, hi] within [-1, 1], "
                             f"got [{lo:g}, {hi:g}]")
        out[c] = (lo, hi)
    return out


def component_max(rulebase: RuleBase, conds: list[Condition],
                  interval: tuple[float, float] = (-1.0, 1.0)) -> tuple[float, float]:
    """(largest value, a point reaching it) of one component's conditions on ``interval``.

    Grid points of :data:`GRID` inside the interval plus its ends, then three zooms of 201
    points into the best point's neighbourhood (peaks between knots, such as ``raised and
    not very raised``, lie there): exact to about 1e-9. Among equal maxima the point is the
    conditions' code when it is one of them, else the one nearest 0.
    """
    lo, hi = interval
    grid = GRID
    xs = np.unique(np.r_[grid[(grid >= lo) & (grid <= hi)], lo, hi])
    values = component_values(rulebase, conds, xs)
    i = int(np.argmax(values))
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
    seen_x, seen_v = [xs], [values]
    for _ in range(3):  # zoom in: 201 points, then the best one's neighbours, three times
        fine = np.linspace(a, b, 201)
        v = component_values(rulebase, conds, fine)
        seen_x.append(fine)
        seen_v.append(v)
        k, width = int(np.argmax(v)), (b - a) / 200
        a, b = max(fine[k] - width, lo), min(fine[k] + width, hi)
    xs, values = np.concatenate(seen_x), np.concatenate(seen_v)
    best = values.max()
    at = xs[values >= best - TIE]
    code = conds[0].code
    point = code if (np.abs(at - code) < 1e-9).any() else at[np.argmin(np.abs(at))]
    return float(best), float(point)


def _rule_max(rulebase: RuleBase, rule: Rule, region: dict[str, tuple[float, float]],
              cache: dict) -> tuple[float, dict[str, float], dict[str, float]]:
    """(largest firing strength in the region, per-component maxima, a point reaching it)."""
    maxima, points = {}, {}
    for c, conds in by_component(rule).items():
        key = (tuple(conds), region[c])
        if key not in cache:
            cache[key] = component_max(rulebase, conds, region[c])
        maxima[c], points[c] = cache[key]
    vals = list(maxima.values())
    t = float(np.prod(vals)) if rulebase.options.tnorm == "product" else min(vals)
    return rule.weight * t, maxima, points


def _strength_at(rulebase: RuleBase, rule: Rule, point: dict[str, float]) -> float:
    vals = [float(component_values(rulebase, conds, np.array([point[c]]))[0])
            for c, conds in by_component(rule).items()]
    t = float(np.prod(vals)) if rulebase.options.tnorm == "product" else min(vals)
    return rule.weight * t


def prototype(rule: Rule, rulebase: RuleBase | None = None) -> np.ndarray:
    """A rule's prototype point: named components at their codes, the others neutral (0).

    For a hedged rule (given ``rulebase``), a hedged component sits where its conditions
    together are largest (``raised and not very raised`` peaks between the codes): at its
    code when that is among the maxima (``very raised``), else at the maximum nearest 0
    (``not low``: neutral).
    """
    x = np.zeros(len(COMPONENTS))
    for c, conds in by_component(rule).items():
        if rulebase is None or (len(conds) == 1 and not conds[0].hedges):
            x[COMPONENTS.index(c)] = conds[0].code
        else:
            x[COMPONENTS.index(c)] = component_max(rulebase, conds)[1]
    return x


def _antecedent(rule: Rule) -> str:
    return rule.coding if not rule.hedged else " and ".join(c.text() for c in rule.terms)


def _box(region: dict[str, tuple[float, float]]) -> str:
    narrowed = [f"{c} [{lo:g}, {hi:g}]" for c, (lo, hi) in region.items() if (lo, hi) != (-1, 1)]
    return "the region (" + ", ".join(narrowed) + ")" if narrowed else "[-1, 1]"


def _same_antecedents(rules: tuple[Rule, ...]) -> list[Finding]:
    """``conflict`` (error) and ``duplicate`` (warning): rules with the same antecedent."""
    findings = []
    by_antecedent: dict[frozenset, list] = defaultdict(list)
    for r in rules:
        by_antecedent[frozenset(r.terms)].append(r)
    for group in by_antecedent.values():
        for a, b in itertools.combinations(group, 2):
            if (a.emotion, a.then) == (b.emotion, b.then):
                findings.append(Finding("warning", "duplicate",
                                        f"rules {a.id!r} and {b.id!r} have the same antecedent "
                                        f"and consequent", b.location))
            else:
                findings.append(Finding(
                    "error", "conflict",
                    f"rules {a.id!r} ({a.emotion} {a.then}, {a.location}) and {b.id!r} "
                    f"({b.emotion} {b.then}) have the same antecedent {_antecedent(a)}",
                    b.location))
    return findings


def _never_fires(rulebase: RuleBase, r: Rule, cache: dict) -> Finding:
    """The ``never-fires`` error of a rule whose strength is 0 on all of [-1, 1]^12."""
    dead = [c.text() for c in r.terms if not (condition_values(rulebase, c) > 0).any()]
    full_max = _rule_max(rulebase, r, check_region(None), cache)[1]
    why = (f"{', '.join(dead)} has zero membership everywhere on [-1, 1]" if dead else
           "its conditions on " + ", ".join(c for c, v in full_max.items() if v <= TIE)
           + " never hold together on [-1, 1]")
    return Finding("error", "never-fires", f"rule {r.id!r} can never fire: {why}", r.location)


def lint_errors(rulebase: RuleBase) -> list[Finding]:
    """Only the findings :func:`lint` calls errors (``conflict``, ``never-fires``), which do
    not depend on the region: what ``infer``, ``annotate`` and the dataset builders refuse.
    A fraction of a full lint's time (no sampling)."""
    found = [f for f in _same_antecedents(rulebase.rules) if f.level == "error"]
    cache: dict = {}
    full = check_region(None)
    for r in rulebase.rules:
        if _rule_max(rulebase, r, full, cache)[0] <= TIE:
            found.append(_never_fires(rulebase, r, cache))
    return found


def lint(rulebase: RuleBase, samples: int = 200_000, seed: int = 0,
         region: Region | None = None) -> LintReport:
    """Lint ``rulebase``; ``region``: component -> (lo, hi), the measurements to consider
    (components not given: [-1, 1]). See the module docstring for the findings."""
    box = check_region(region)
    findings: list[Finding] = []
    rules = rulebase.rules

    findings += _same_antecedents(rules)

    # Conditions made constant by their hedges (or a term that is constant on [-1, 1]).
    for r in rules:
        for cond in r.terms:
            values = condition_values(rulebase, cond)
            if values.max() - values.min() <= TIE:
                what = ("does nothing (drop it)" if values[0] >= 1 - TIE else
                        "keeps the rule from ever firing" if values[0] <= TIE else
                        "only scales the rule's strength (use its weight)")
                findings.append(Finding(
                    "warning", "constant",
                    f"rule {r.id!r}: '{cond.text()}' is {values[0]:g} for every measurement: "
                    f"it {what}", r.location))

    # Largest firing strength of every rule in the region: never-fires, unreachable-rule.
    cache: dict = {}
    reach: dict[str, float] = {}
    points: dict[str, dict[str, float]] = {}
    min_act = rulebase.options.min_activation
    full = check_region(None)
    for r in rules:
        best, maxima, points[r.id] = _rule_max(rulebase, r, box, cache)
        reach[r.id] = best
        if best <= TIE and (box == full or _rule_max(rulebase, r, full, cache)[0] <= TIE):
            # Never, whatever the measurements: an error of the rule itself.
            findings.append(_never_fires(rulebase, r, cache))
        elif best < min_act - TIE:
            weakest = min(maxima, key=maxima.get)
            findings.append(Finding(
                "warning", "unreachable-rule",
                f"rule {r.id!r} ({r.emotion} {r.then}) fires at most {best:.4g} in "
                f"{_box(box)}, below min_activation {min_act:g} (weight {r.weight:g}; its "
                f"weakest component, {weakest}, reaches {maxima[weakest]:.4g}): it can never "
                "decide a label", r.location))

    # Cross-emotion ties: equal weights, one antecedent contained in the other's.
    terms = {r.id: frozenset(r.terms) for r in rules}
    for a, b in itertools.combinations(rules, 2):
        if a.emotion == b.emotion or a.weight != b.weight:
            continue
        if terms[a.id] <= terms[b.id]:
            small, large = a, b
        elif terms[b.id] < terms[a.id]:
            small, large = b, a
        else:
            continue
        at = points[large.id]  # where the larger antecedent is strongest
        strength = _strength_at(rulebase, large, at)
        if strength < min_act - TIE or strength <= TIE:
            continue
        if abs(_strength_at(rulebase, small, at) - strength) > TIE:
            continue
        first, second = sorted((a, b), key=lambda r: EMOTIONS.index(r.emotion))
        where = ("the same antecedent" if terms[a.id] == terms[b.id] else
                 f"{small.id!r}'s antecedent is part of {large.id!r}'s")
        findings.append(Finding(
            "warning", "tie",
            f"rules {first.id!r} ({first.emotion} {first.then}, {first.location}) and "
            f"{second.id!r} ({second.emotion} {second.then}, {second.location}) have equal "
            f"weights {a.weight:g} and {where}: both fire at {strength:.4g} where "
            f"{large.id!r} is strongest, and the label there is {first.emotion} only because "
            f"{first.emotion} comes before {second.emotion} (SPEC 3.7); name a component that "
            "tells them apart, or change a weight", second.location))

    u = np.linspace(0.0, 1.0, 10001)
    for e in rulebase.emotions:
        covered = np.max([rulebase.intensity_mf(e.name, k)(u) for k in INTENSITIES], axis=0) > 0
        if not covered.all():
            # Report each maximal run of uncovered points as an interval.
            edges = np.flatnonzero(np.diff(np.r_[0, (~covered).astype(int), 0]))
            spans = ", ".join(f"[{u[a]:.3f}, {u[b - 1]:.3f}]" for a, b in zip(edges[::2], edges[1::2],
                                                                            strict=True))
            findings.append(Finding(
                "warning", "gap",
                f"{e.name}'s intensity functions (lambda2={e.lambda_:g}) leave {spans} of U "
                "uncovered: an eccentricity there scores 0 on every level and is labelled "
                f"{e.name}_low", e.path))

    engine = rulebase.compile()
    rng = np.random.default_rng(seed)
    lo = np.array([box[c][0] for c in COMPONENTS])
    hi = np.array([box[c][1] for c in COMPONENTS])
    probes = [np.clip(crisp_grid(), lo, hi), rng.uniform(lo, hi, (samples, len(COMPONENTS)))]
    if rules:
        probes.append(np.clip(np.stack([prototype(r, rulebase) for r in rules]), lo, hi))
    reached: set[int] = set()
    for x in probes:
        reached.update(int(c) for c in np.unique(engine.evaluate(x).class_index) if c >= 0)
    for i, name in enumerate(CLASS_NAMES):
        if i not in reached:
            findings.append(Finding(
                "warning", "unreachable",
                f"class {name} is the label of no crisp coding and none of {samples:,} sampled "
                f"measurements in {_box(box)}: add or reweight a rule for it"))

    if rules:
        protos = np.stack([prototype(r, rulebase) for r in rules])
        got = engine.evaluate(protos).class_index
        for r, cls, x in zip(rules, got, protos, strict=True):
            want = 3 * EMOTIONS.index(r.emotion) + INTENSITIES.index(r.then)
            if cls != want:
                at = r.coding if not r.hedged else ", ".join(
                    f"{c}={x[COMPONENTS.index(c)]:g}" for c in by_component(r))
                findings.append(Finding(
                    "info", "shadowed",
                    f"rule {r.id!r} ({r.emotion} {r.then}): at its prototype {at} "
                    f"(others neutral) the label is {class_name(int(cls))}", r.location))

    counts = {e.name: {k: sum(r.then == k for r in e.rules) for k in INTENSITIES}
              for e in rulebase.emotions}
    return LintReport(findings, counts, reached, reach, box)
