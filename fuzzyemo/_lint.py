"""Lint a rule base: problems a loader cannot see because each rule is valid on its own.

Findings (level: code):
- error: ``conflict``      two rules with the same antecedent and different consequents
- warning: ``duplicate``   two rules with the same antecedent and the same consequent
- error: ``never-fires``   a condition's term has zero membership on all of [-1, 1]
- warning: ``unreachable`` a class that no crisp coding and no sampled measurement labels
- warning: ``gap``         an emotion's intensity functions leave part of U = [0, 1] with
                           zero membership: an eccentricity there scores 0 on all 18
                           classes, and SPEC's tie rule then labels the row happiness_low
- info: ``shadowed``       at a rule's own prototype (its conditions at their codes, other
                           components neutral) another class wins; often intended (the
                           rule contributes to blends), sometimes a sign of a missing rule
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ._rulebase import RuleBase
from ._vocab import CLASS_NAMES, COMPONENT_TERMS, COMPONENTS, EMOTIONS, INTENSITIES, class_name


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


def prototype(rule) -> np.ndarray:
    """A rule's prototype point: named components at their codes, the others neutral (0)."""
    x = np.zeros(len(COMPONENTS))
    for c, v in rule.conditions:
        x[COMPONENTS.index(c)] = v
    return x


def lint(rulebase: RuleBase, samples: int = 200_000, seed: int = 0) -> LintReport:
    findings: list[Finding] = []
    rules = rulebase.rules

    by_antecedent: dict[tuple, list] = defaultdict(list)
    for r in rules:
        by_antecedent[r.conditions].append(r)
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
                    f"({b.emotion} {b.then}) have the same antecedent {a.coding}", b.location))

    grid = np.linspace(-1.0, 1.0, 4001)
    dead_terms = {
        (comp.name, t.code)
        for comp in rulebase.components for t in comp.terms
        if not (rulebase.component_mf(comp.name, t.code)(grid) > 0).any()
    }
    for r in rules:
        dead = [f"{c} is {COMPONENT_TERMS[c][v]}" for c, v in r.conditions if (c, v) in dead_terms]
        if dead:
            findings.append(Finding("error", "never-fires",
                                    f"rule {r.id!r} can never fire: {', '.join(dead)} has zero "
                                    "membership everywhere on [-1, 1]", r.location))

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
                "uncovered: an eccentricity there scores 0 on every class", e.path))

    engine = rulebase.compile()
    rng = np.random.default_rng(seed)
    probes = [crisp_grid(), rng.uniform(-1, 1, (samples, len(COMPONENTS)))]
    if rules:
        probes.append(np.stack([prototype(r) for r in rules]))
    reached: set[int] = set()
    for x in probes:
        reached.update(int(c) for c in np.unique(engine.evaluate(x).class_index) if c >= 0)
    for i, name in enumerate(CLASS_NAMES):
        if i not in reached:
            findings.append(Finding(
                "warning", "unreachable",
                f"class {name} is the label of no crisp coding and none of {samples:,} sampled "
                "measurements: add or reweight a rule for it"))

    if rules:
        protos = np.stack([prototype(r) for r in rules])
        got = engine.evaluate(protos).class_index
        for r, cls in zip(rules, got, strict=True):
            want = 3 * EMOTIONS.index(r.emotion) + INTENSITIES.index(r.then)
            if cls != want:
                findings.append(Finding(
                    "info", "shadowed",
                    f"rule {r.id!r} ({r.emotion} {r.then}): at its prototype {r.coding} "
                    f"(others neutral) the label is {class_name(int(cls))}", r.location))

    counts = {e.name: {k: sum(r.then == k for r in e.rules) for k in INTENSITIES}
              for e in rulebase.emotions}
    return LintReport(findings, counts, reached)
