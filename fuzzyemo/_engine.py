"""The compiled engine: SPEC section 3, vectorised over rows.

A :class:`RuleBase` is compiled once into flat arrays (term membership functions, rule
antecedents as column indices, defuzzification tables). :meth:`Engine.evaluate` then runs
over an ``(n, 12)`` array in chunks; inside a chunk every step is a whole-array numpy
operation over the chunk's rows (loops run over rules and terms, never over rows), and
chunks run on a thread pool (numpy releases the GIL).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ._defuzz import ExactCentroid, GridCentroid
from ._membership import evaluate_into
from ._rulebase import Rule, RuleBase
from ._vocab import (
    CLASS_NAMES,
    COMPONENT_TERMS,
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
# Order in which slots (code + 1) win ties when choosing a crisp code: nearer 0 first.
_TIE_ORDER = np.array([1, 0, 2])


@dataclass
class InferenceResult:
    """Per-row outputs of :meth:`Engine.evaluate` (row order = input order).

    Rows with a NaN component are ``unknown``: NaN activations, eccentricities and scores,
    code -128 (no code). ``memberships`` and ``strengths`` are only filled on request.
    """

    codes: np.ndarray  # (n, 12) int8
    activations: np.ndarray  # (n, 6)
    eccentricity: np.ndarray  # (n, 6), NaN where an emotion is not activated
    scores: np.ndarray  # (n, 18)
    class_index: np.ndarray  # (n,) int16: 0..17, -1 neutral, -2 unknown
    memberships: np.ndarray | None = None  # (n, 12, 3), slot = code + 1
    strengths: np.ndarray | None = None  # (n, n_rules)
    rule_ids: tuple[str, ...] = field(default=())

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
    chunk_size: rows per chunk; memory is bounded by the chunk, not by n.
    n_jobs: threads over chunks (default: the number of CPUs).
    """

    def __init__(self, rulebase: RuleBase, *, chunk_size: int = 16384, n_jobs: int | None = None):
        self.rulebase = rulebase
        self.options = rulebase.options
        self.chunk_size = int(chunk_size)
        self.n_jobs = n_jobs or os.cpu_count() or 1
        # Term membership functions on the (component, slot) grid; None = absent term.
        self.term_mfs = [[None] * MAX_TERMS for _ in range(N_COMP)]
        for c, comp in enumerate(rulebase.components):
            for term in comp.terms:
                self.term_mfs[c][term.code + 1] = rulebase.component_mf(comp.name, term.code)
        self.rules: tuple[Rule, ...] = rulebase.rules
        self.rule_ids = tuple(r.id for r in self.rules)
        # Antecedents as flat column indices into memberships laid out (12 * 3, m).
        self.rule_columns = [
            [COMPONENTS.index(c) * MAX_TERMS + v + 1 for c, v in r.conditions] for r in self.rules
        ]
        self.rule_weights = np.array([r.weight for r in self.rules])
        self.rule_group = np.array(
            [3 * EMOTIONS.index(r.emotion) + INTENSITIES.index(r.then) for r in self.rules],
            dtype=np.int64,
        )
        self.group_rules = [np.flatnonzero(self.rule_group == g) for g in range(N_CLASSES)]
        self.intensity_mfs = [[rulebase.intensity_mf(e, k) for k in INTENSITIES] for e in EMOTIONS]
        o = self.options
        if o.resolution == "exact" and o.implication == "min":
            self.defuzzify = ExactCentroid(self.intensity_mfs)
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
        out = InferenceResult(
            codes=np.empty((n, N_COMP), dtype=np.int8),
            activations=np.empty((n, N_EMO)),
            eccentricity=np.empty((n, N_EMO)),
            scores=np.empty((n, N_CLASSES)),
            class_index=np.empty(n, dtype=np.int16),
            memberships=np.empty((n, N_COMP, MAX_TERMS)) if memberships else None,
            strengths=np.empty((n, len(self.rules))) if strengths else None,
            rule_ids=self.rule_ids,
        )
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
        term, so "why this label" has an answer in the user's own vocabulary.
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
                    {"component": c, "term": COMPONENT_TERMS[c][v],
                     "x": float(row[0, COMPONENTS.index(c)]),
                     "membership": float(res.memberships[0, COMPONENTS.index(c), v + 1])}
                    for c, v in rule.conditions
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

    def _memberships(self, xt: np.ndarray) -> np.ndarray:
        """(12 * 3, m) memberships; absent terms are 0."""
        m = xt.shape[1]
        mu = np.zeros((N_COMP * MAX_TERMS, m))
        for c in range(N_COMP):
            for slot, mf in enumerate(self.term_mfs[c]):
                if mf is not None:
                    evaluate_into(mf, xt[c], mu[c * MAX_TERMS + slot])
        return mu

    def _chunk(self, x: np.ndarray, out: InferenceResult, rows: slice) -> None:
        m = len(x)
        unknown = np.isnan(x).any(axis=1)
        # SPEC: measurements are clipped to [-1, 1]; NaN rows are computed as 0, then masked.
        xt = np.clip(np.where(np.isnan(x), 0.0, x), -1.0, 1.0).T.copy()
        mu = self._memberships(xt)

        # Rule strengths, folded straight into the 18 (emotion, level) maxima.
        levels = np.zeros((N_CLASSES, m))
        keep = out.strengths is not None
        product = self.options.tnorm == "product"
        buf = np.empty(m)
        for r, cols in enumerate(self.rule_columns):
            np.copyto(buf, mu[cols[0]])
            for col in cols[1:]:
                (np.multiply if product else np.minimum)(buf, mu[col], out=buf)
            if self.rule_weights[r] != 1.0:
                buf *= self.rule_weights[r]
            g = self.rule_group[r]
            np.maximum(levels[g], buf, out=levels[g])
            if keep:
                out.strengths[rows, r] = buf
        by_emotion = levels.reshape(N_EMO, 3, m)
        act = by_emotion.max(axis=1)  # (6, m)
        ecc = self.defuzzify(by_emotion)  # (6, m), NaN where B is empty
        ecc = np.where(act > 0, ecc, np.nan)

        scores = np.zeros((N_CLASSES, m))
        safe_ecc = np.where(np.isnan(ecc), 0.0, ecc)
        for e in range(N_EMO):
            for k in range(3):
                g = 3 * e + k
                evaluate_into(self.intensity_mfs[e][k], safe_ecc[e], scores[g])
                scores[g] *= act[e]
        cls = np.argmax(scores, axis=0).astype(np.int16)  # ties: lowest class index
        cls[act.max(axis=0) < self.options.min_activation] = NEUTRAL_INDEX
        cls[unknown] = UNKNOWN_INDEX

        # Crisp codes: the highest-membership term, ties to the term nearer 0.
        mu3 = mu.reshape(N_COMP, MAX_TERMS, m)
        best = np.argmax(mu3[:, _TIE_ORDER, :], axis=1)
        codes = (_TIE_ORDER[best] - 1).astype(np.int8)

        out.codes[rows] = codes.T
        out.activations[rows] = act.T
        out.eccentricity[rows] = ecc.T
        out.scores[rows] = scores.T
        out.class_index[rows] = cls
        if unknown.any():
            out.codes[rows][unknown] = -128
            for arr in (out.activations, out.eccentricity, out.scores):
                arr[rows][unknown] = np.nan
            if keep:
                out.strengths[rows][unknown] = np.nan
        if out.memberships is not None:
            block = mu3.transpose(2, 0, 1).copy()
            block[unknown] = np.nan
            out.memberships[rows] = block


__all__ = ["Engine", "InferenceResult", "class_name"]
