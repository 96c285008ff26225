"""The compiled engine: SPEC section 3, vectorised over rows.

A :class:`RuleBase` is compiled once into flat arrays (term membership functions, rule
antecedents as column indices, defuzzification tables). :meth:`Engine.evaluate` then runs
over an ``(n, 12)`` array in chunks; inside a chunk every step is a whole-array numpy
operation over the chunk's rows (loops run over rules and terms, never over rows), and
chunks run on a thread pool (numpy releases the GIL).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._defuzz import ExactCentroid, GridCentroid
from ._hedges import apply_hedges, hedge_value
from ._membership import evaluate_into
from ._rulebase import Rule, RuleBase
from ._vocab import (
    CLASS_NAMES,
    COMPONENTS,
    EMOTIONS,
    INTENSITIES,
    MAX_TERMS,
    NEUTRAL_INDEX,
    UNKNOWN_INDEX,
    class_name,
)

N_COMP = len(COMPONENTS)
N_EMO = len(EMOTIONS)
N_CLASSES = len(CLASS_NAMES)
N_TERMS = N_COMP * MAX_TERMS  # membership rows of the 36 (component, slot) terms
_ROOTS = frozenset({"somewhat", "seldom"})  # hedges with a square root (see _memberships)
TIE = 1e-12  # scores (and activations vs min_activation) closer than this are equal


class InferenceResult:
    """Per-row outputs of :meth:`Engine.evaluate` (row order = input order).

    Rows with a NaN component are ``unknown``: NaN activations, eccentricities and scores,
    code -128 (no code). ``memberships`` and ``strengths`` are only filled on request.
    Arrays are stored feature-major (one contiguous row per column, which is what table
    writers want) and exposed row-major as transposed views: ``scores[i, j]`` is row i.
    """

    def __init__(self, n: int, rule_ids: tuple[str, ...], memberships: bool, strengths: bool):
        self.rule_ids = rule_ids
        self._codes = np.empty((N_COMP, n), dtype=np.int8)
        self._activations = np.empty((N_EMO, n))
        self._eccentricity = np.empty((N_EMO, n))
        self._scores = np.empty((N_CLASSES, n))
        self.class_index = np.empty(n, dtype=np.int16)  # 0..17, -1 neutral, -2 unknown
        self._memberships = np.empty((n, N_COMP, MAX_TERMS)) if memberships else None
        self._strengths = np.empty((len(rule_ids), n)) if strengths else None

    codes = property(lambda self: self._codes.T, doc="(n, 12) int8 crisp codes")
    activations = property(lambda self: self._activations.T, doc="(n, 6) emotion activations")
    eccentricity = property(lambda self: self._eccentricity.T,
                            doc="(n, 6) centroids; NaN where an emotion is not activated")
    scores = property(lambda self: self._scores.T, doc="(n, 18) intensity scores")
    memberships = property(lambda self: self._memberships,
                           doc="(n, 12, 3) memberships, slot = code + 1 (on request)")
    strengths = property(lambda self: None if self._strengths is None else self._strengths.T,
                         doc="(n, n_rules) rule firing strengths (on request)")

    @property
    def labels(self) -> np.ndarray:
        """Class names, with ``neutral`` and ``unknown``."""
        names = np.array([*CLASS_NAMES, "unknown", "neutral"], dtype=object)
        # -2 -> index 18 ("unknown"), -1 -> 19 ("neutral") via Python's negative indexing.
        return names[self.class_index.astype(np.int64)]

    def __len__(self) -> int:
        return len(self.class_index)


class Engine:
    """A rule base compiled for fast evaluation.

    Parameters
    ----------
    rulebase: the validated rule base (its ``options`` decide t-norm, implication, ...).
    chunk_size: rows per chunk; working memory is bounded by the chunk (about 28 MB per
        thread at the default, single precision), not by n. Large chunks keep numpy's
        per-call overhead, which holds the GIL, small next to the work, so the threads
        run in parallel.
    n_jobs: threads over chunks (default: the number of CPUs).
    precision: "single" (default) computes memberships and rule strengths in float32,
        "double" in float64; everything after the rule strengths is float64.
    """

    def __init__(
        self,
        rulebase: RuleBase,
        *,
        chunk_size: int = 65536,
        n_jobs: int | None = None,
        precision: str = "single",
    ) -> None:
        if precision not in ("single", "double"):
            raise ValueError(f"precision must be 'single' or 'double', got {precision!r}")
        # Memberships and rule strengths are the bulk of the memory traffic: single precision
        # halves it (errors <= 1e-7, far inside SPEC's 1e-4); defuzzification and scores
        # always run in double precision.
        self.dtype = np.float32 if precision == "single" else np.float64
        self.rulebase = rulebase
        self.options = rulebase.options
        self.chunk_size = int(chunk_size)
        self.n_jobs = n_jobs or os.cpu_count() or 1
        # Term membership functions on the (component, slot) grid; None = absent term.
        self.term_mfs = [[None] * MAX_TERMS for _ in range(N_COMP)]
        for c, comp in enumerate(rulebase.components):
            for term in comp.terms:
                self.term_mfs[c][term.code + 1] = rulebase.component_mf(comp.name, term.code)
        self._compile_terms()
        self.rules: tuple[Rule, ...] = rulebase.rules
        self.rule_ids = tuple(r.id for r in self.rules)
        # Antecedents as flat column indices into memberships laid out (12 * 3 + H, m): the
        # 36 (component, slot) terms, then one row per distinct hedged condition
        # (component, code, hedges) used by any rule, computed once per chunk.
        hedged: dict[tuple[int, tuple[str, ...]], int] = {}
        self.rule_columns = []
        for r in self.rules:
            cols = []
            for (c, v), h in zip(r.conditions, r.hedges, strict=True):
                col = COMPONENTS.index(c) * MAX_TERMS + v + 1
                if h:
                    col = hedged.setdefault((col, h), N_TERMS + len(hedged))
                cols.append(col)
            self.rule_columns.append(cols)
        # (row, base row, hedges), in row order; computed grouped by their term's row.
        self.hedged_rows = [(row, base, h) for (base, h), row in hedged.items()]
        self._hedged_by_base = sorted(self.hedged_rows, key=lambda t: (t[1], t[0]))
        self.rule_weights = np.array([r.weight for r in self.rules])
        self.rule_group = np.array(
            [3 * EMOTIONS.index(r.emotion) + INTENSITIES.index(r.then) for r in self.rules],
            dtype=np.int64,
        )
        self.program = _rule_program(self.rule_columns, self.rule_group, self.rule_weights)
        self.intensity_mfs = [[rulebase.intensity_mf(e, k) for k in INTENSITIES] for e in EMOTIONS]
        o = self.options
        if o.resolution == "exact" and o.implication == "min":
            self.defuzzify = ExactCentroid(self.intensity_mfs)
            # The tables are exact up to O(h^2) for piecewise-linear functions only: a
            # Gaussian's level-set width sigma sqrt(-2 ln t) is singular at t = 0 and its
            # tables miss SPEC's 1e-4 at low levels, so an emotion with a Gaussian
            # intensity function uses the 10,001-point grid instead.
            gauss = [any(mf.trapezoid is None for mf in mfs) for mfs in self.intensity_mfs]
            if any(gauss):
                exact, grid = self.defuzzify, GridCentroid(self.intensity_mfs, 10001, "min")
                self.defuzzify = lambda e, levels: (grid if gauss[e] else exact)(e, levels)
        else:
            points = 10001 if o.resolution == "exact" else int(o.resolution)
            self.defuzzify = GridCentroid(self.intensity_mfs, points, o.implication)

    # ------------------------------------------------------------------ public API
    def evaluate(
        self,
        x: np.ndarray,
        *,
        memberships: bool = False,
        strengths: bool = False,
    ) -> InferenceResult:
        """Evaluate an ``(n, 12)`` array of component measurements (columns in SPEC order)."""
        x = self._check(x)
        n = len(x)
        out = InferenceResult(n, self.rule_ids, memberships, strengths)
        starts = range(0, n, self.chunk_size)

        def run(start: int) -> None:
            stop = min(start + self.chunk_size, n)
            self._chunk(x[start:stop], out, slice(start, stop))

        if self.n_jobs > 1 and n > self.chunk_size:
            with ThreadPoolExecutor(self.n_jobs) as pool:
                list(pool.map(run, starts))
        else:
            for s in starts:
                run(s)
        return out

    def iter_evaluate(self, x: np.ndarray) -> Iterator[InferenceResult]:
        """Yield results chunk by chunk (for streaming very large inputs)."""
        x = self._check(x)
        for s in range(0, len(x), self.chunk_size):
            yield self.evaluate(x[s:s + self.chunk_size])

    def explain(self, x: np.ndarray, top: int = 5) -> list[dict]:
        """The ``top`` strongest rules for one row: id, emotion, level, strength, conditions.

        Each condition lists the component's measurement and the membership of the named
        term, so "why this label" has an answer in the user's own vocabulary: ``term``
        (None after a final ``any``), ``hedges`` (words, [] if none), ``text`` (``mouth is
        very open``), ``x``, ``membership`` (with the hedges applied: the value the rule
        uses) and ``term_membership`` (the term's own membership).
        """
        row = np.asarray(x, dtype=float).reshape(1, N_COMP)
        res = self.evaluate(row, memberships=True, strengths=True)
        order = np.argsort(-res.strengths[0], kind="stable")[:top]
        out = []
        for r in order:
            rule = self.rules[r]
            out.append({
                "rule": rule.id,
                "emotion": rule.emotion,
                "then": rule.then,
                "strength": float(res.strengths[0, r]),
                "weight": rule.weight,
                "source": rule.source,
                "location": rule.location,
                "conditions": [
                    {"component": cond.component, "term": cond.term,
                     "hedges": list(cond.hedges), "text": cond.text(),
                     "x": float(row[0, COMPONENTS.index(cond.component)]),
                     "membership": hedge_value(cond.hedges, base),
                     "term_membership": base}
                    for cond in rule.terms
                    for base in [float(res.memberships[0, COMPONENTS.index(cond.component),
                                                       cond.code + 1])]
                ],
            })
        return out

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != N_COMP:
            raise ValueError(f"expected an (n, {N_COMP}) array of component measurements "
                             f"in SPEC order, got shape {x.shape}")
        return x

    def _memberships(self, xt: np.ndarray, x64: np.ndarray | None = None) -> np.ndarray:
        """(12 * 3 + H, m) memberships of clipped, NaN-free inputs; absent terms are 0.

        All trapezoid-shaped terms are evaluated together, as (36, m) arrays, from their
        sides written as ``slope * (x - knot) + offset``: a vertical side gets a huge slope
        and offset 1 (so it is 1 from its knot on, as scikit-fuzzy's), an absent term
        the constant 0. Gaussian terms are evaluated one by one. Then each of the H hedged
        conditions is its term's row with the hedges applied (right to left).

        In single precision a hedged row whose chain has a square root (``somewhat``,
        ``seldom``) is computed from ``x64`` (the clipped float64 measurements) in double
        precision, then stored as float32: a square root amplifies float32 rounding near
        memberships 0 and 1 (sqrt(6e-8) = 2.4e-4, beyond SPEC's 1e-4); the other hedges
        (Lipschitz, slope <= 2 each) are applied to the float32 row.
        """
        x = xt[self._term_component]  # (36, m): a fresh array, reused for the falling sides
        mu = np.empty_like(x, shape=(N_TERMS + len(self.hedged_rows), x.shape[1]))
        terms = mu[:N_TERMS]
        np.subtract(x, self._rise_knot, out=terms)
        terms *= self._rise_slope
        terms += self._rise_offset
        fall = np.subtract(self._fall_knot, x, out=x)
        fall *= self._fall_slope
        fall += self._fall_offset
        np.minimum(terms, fall, out=terms)
        np.clip(terms, 0.0, 1.0, out=terms)
        for row, c, mf in self._gauss_terms:
            evaluate_into(mf, xt[c], mu[row], nan_safe=False)
        if not self.hedged_rows:
            return mu
        m = xt.shape[1]
        scratch = (np.empty(m, dtype=mu.dtype), np.empty(m, dtype=bool))
        exact = None  # (base row, its float64 membership), one base at a time
        for row, base, hedges in self._hedged_by_base:
            if x64 is None or self.dtype == np.float64 or not _ROOTS.intersection(hedges):
                np.copyto(mu[row], mu[base])
                apply_hedges(hedges, mu[row], scratch)
                continue
            if exact is None:
                exact = (-1, np.empty(m), np.empty(m), (np.empty(m), scratch[1]))
            if exact[0] != base:
                c, slot = divmod(base, MAX_TERMS)
                mf = self.term_mfs[c][slot]
                if mf is None:  # an absent term (only from a hand-built Rule) is 0
                    exact[1].fill(0.0)
                else:
                    evaluate_into(mf, x64[c], exact[1], nan_safe=False)
                    np.clip(exact[1], 0.0, 1.0, out=exact[1])
                exact = (base, *exact[1:])
            work = exact[2]
            np.copyto(work, exact[1])
            mu[row] = apply_hedges(hedges, work, exact[3])
        return mu

    def _compile_terms(self) -> None:
        """Side parameters of every (component, slot) term for :meth:`_memberships`."""
        n = N_COMP * MAX_TERMS
        dt = self.dtype
        big = dt(1e30)  # (x - knot) * big overflows nothing: |x - knot| <= 2 in float32 too
        self._term_component = np.repeat(np.arange(N_COMP), MAX_TERMS)
        self._rise_slope = np.zeros((n, 1), dtype=dt)
        self._rise_knot = np.zeros((n, 1), dtype=dt)
        self._rise_offset = np.full((n, 1), -1.0, dtype=dt)  # absent: constant -1 -> 0
        self._fall_slope = np.zeros((n, 1), dtype=dt)
        self._fall_knot = np.zeros((n, 1), dtype=dt)
        self._fall_offset = np.ones((n, 1), dtype=dt)
        self._gauss_terms = []
        for c in range(N_COMP):
            for slot, mf in enumerate(self.term_mfs[c]):
                row = c * MAX_TERMS + slot
                if mf is None:
                    continue
                if mf.trapezoid is None:
                    self._gauss_terms.append((row, c, mf))
                    continue
                a, b, cc, d = mf.trapezoid
                self._rise_knot[row], self._fall_knot[row] = a, d
                if b > a:
                    self._rise_slope[row], self._rise_offset[row] = 1.0 / (b - a), 0.0
                else:
                    self._rise_slope[row], self._rise_offset[row] = big, 1.0
                if d > cc:
                    self._fall_slope[row], self._fall_offset[row] = 1.0 / (d - cc), 0.0
                else:
                    self._fall_slope[row], self._fall_offset[row] = big, 1.0

    def _levels(self, mu: np.ndarray, strengths: np.ndarray | None) -> np.ndarray:
        """Rule strengths folded straight into the 18 (emotion, level) maxima, (18, m).

        Runs the prefix-trie program built by :func:`_rule_program`: rules that share the
        first conditions share their partial conjunctions.
        """
        m = mu.shape[1]
        levels = np.zeros((N_CLASSES, m), dtype=self.dtype)
        conjoin = np.multiply if self.options.tnorm == "product" else np.minimum
        # One buffer per trie depth (a rule may name a component more than once, so a
        # depth can exceed 12).
        depth_max = max((len(c) for c in self.rule_columns), default=1)
        partial = np.empty((depth_max, m), dtype=self.dtype)
        weighted = np.empty(m, dtype=self.dtype)
        current: list[np.ndarray] = [mu[0]] * depth_max
        for depth, col, ends in self.program:
            if depth == 0:
                current[0] = mu[col]  # a view: the first condition needs no copy
            else:
                conjoin(current[depth - 1], mu[col], out=partial[depth])
                current[depth] = partial[depth]
            for r, g, w in ends:
                strength = current[depth]
                if w != 1.0:
                    np.multiply(strength, self.dtype(w), out=weighted)
                    strength = weighted
                np.maximum(levels[g], strength, out=levels[g])
                if strengths is not None:
                    strengths[r] = strength
        return levels

    @staticmethod
    def _codes(mu: np.ndarray) -> np.ndarray:
        """Crisp codes (12, m): the highest-membership term, ties to the term nearer 0."""
        mu3 = mu.reshape(N_COMP, MAX_TERMS, -1)
        low, normal, high = mu3[:, 0], mu3[:, 1], mu3[:, 2]
        # Strict comparisons make 'normal' win every tie, and 'low' win a low/high tie.
        high_wins = (high > normal) & (high > low)
        low_wins = (low > normal) & ~high_wins
        return high_wins.view(np.int8) - low_wins.view(np.int8)

    def _chunk(self, x: np.ndarray, out: InferenceResult, rows: slice) -> None:
        m = len(x)
        nan = np.isnan(x)
        unknown = nan.any(axis=1)
        # SPEC: measurements are clipped to [-1, 1]; NaN rows are computed as 0, then masked.
        x64 = np.clip(x.T, -1.0, 1.0)
        if unknown.any():
            x64[nan.T] = 0.0
        xt = x64 if self.dtype == np.float64 else x64.astype(self.dtype)
        mu = self._memberships(xt, x64)
        strengths = out._strengths[:, rows] if out._strengths is not None else None
        levels = self._levels(mu, strengths).astype(np.float64)
        by_emotion = levels.reshape(N_EMO, 3, m)
        act = out._activations[:, rows]
        np.maximum(np.maximum(by_emotion[:, 0], by_emotion[:, 1]), by_emotion[:, 2], out=act)
        ecc = out._eccentricity[:, rows]
        scores = out._scores[:, rows]
        ecc.fill(np.nan)
        scores.fill(0.0)
        # SPEC 7 (rev. 2) needs, per emotion, the level k maximising nu_{e,k}(eps_e): found
        # here from the unscaled memberships (0 = low where the emotion did not fire).
        level = np.zeros((N_EMO, m), dtype=np.int8)
        for e in range(N_EMO):
            # Defuzzify only the rows where the emotion fired: real faces activate few
            # emotions at a time, so this usually skips most of the work.
            active = np.flatnonzero(act[e] > 0)
            if len(active) == 0:
                continue
            dense = len(active) > 0.7 * m
            sub = by_emotion[e] if dense else by_emotion[e][:, active]
            ecc_e = self.defuzzify(e, sub)
            a_e = act[e] if dense else act[e][active]
            safe = np.where(np.isnan(ecc_e), 0.0, ecc_e)
            part = np.empty((3, len(safe)))
            for k in range(3):
                evaluate_into(self.intensity_mfs[e][k], safe, part[k], nan_safe=False)
            level_e = _first_max(part)
            if dense:
                level_e[a_e <= 0] = 0  # an emotion that did not fire has no level: low
            part *= a_e
            if dense:
                ecc[e] = ecc_e
                scores[3 * e:3 * e + 3] = part
                level[e] = level_e
            else:
                ecc[e, active] = ecc_e
                scores[3 * e:3 * e + 3, active] = part
                level[e, active] = level_e
        # SPEC 7 (rev. 2): the emotion with the largest activation (ties: the lower emotion
        # index), at the level whose intensity function is largest at its eccentricity
        # (ties: the lower level). Values within TIE of the maximum count as tied: equal
        # activations reached along different paths (e.g. two emotions' rules firing
        # equally) differ by rounding only (~1e-16). Scores do not take part.
        emotion = _first_max(act)
        cls = 3 * emotion.astype(np.int16) + np.take_along_axis(level, emotion[None], 0)[0]
        # A strongest activation equal to min_activation up to rounding is not "below" it.
        cls[act.max(axis=0) < self.options.min_activation - TIE] = NEUTRAL_INDEX
        cls[unknown] = UNKNOWN_INDEX
        out.class_index[rows] = cls
        out._codes[:, rows] = self._codes(mu[:N_TERMS])
        if unknown.any():
            out._codes[:, rows][:, unknown] = -128
            for block in (act, ecc, scores):
                block[:, unknown] = np.nan
            if strengths is not None:
                strengths[:, unknown] = np.nan
        if out._memberships is not None:
            block = mu[:N_TERMS].reshape(N_COMP, MAX_TERMS, m).transpose(2, 0, 1).astype(np.float64)
            block[unknown] = np.nan
            out._memberships[rows] = block


def _first_max(values: np.ndarray) -> np.ndarray:
    """Per column, the lowest row index whose value is within TIE of the column's maximum
    (int8, shape (m,)): SPEC 7's "ties: the lower index", up to rounding."""
    best = values.max(axis=0)
    best -= TIE
    out = np.empty(values.shape[1], dtype=np.int8)
    for i in range(len(values) - 1, -1, -1):  # descending: the lowest tied index wins
        out[values[i] >= best] = i
    return out


def _rule_program(
    columns: list[list[int]], groups: np.ndarray, weights: np.ndarray
) -> list[tuple[int, int, list[tuple[int, int, float]]]]:
    """Compile antecedents into a prefix trie, flattened in depth-first order.

    Each step is ``(depth, column, ends)``: the partial conjunction at ``depth`` is the one
    at ``depth - 1`` combined with membership row ``column``; ``ends`` lists the rules
    ``(rule, group, weight)`` whose antecedent is complete there. Conditions are ordered by
    how many rules use them, so common ones come first and are shared (min and product are
    commutative and associative, so the order does not change any result).
    """
    use = Counter(c for cols in columns for c in cols)
    root: dict = {}
    for r, cols in enumerate(columns):
        node = root
        for depth, col in enumerate(sorted(cols, key=lambda c: (-use[c], c))):
            node = node.setdefault(col, {"children": {}, "ends": []})
            if depth == len(cols) - 1:
                node["ends"].append((r, int(groups[r]), float(weights[r])))
            else:
                node = node["children"]
    program: list[tuple[int, int, list[tuple[int, int, float]]]] = []

    def visit(children: dict, depth: int) -> None:
        for col, node in children.items():
            program.append((depth, col, node["ends"]))
            visit(node["children"], depth + 1)

    visit(root, 0)
    return program


__all__ = ["Engine", "InferenceResult", "class_name"]
