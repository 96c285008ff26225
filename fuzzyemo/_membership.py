"""Membership functions: scikit-fuzzy's kinds and parameter order, vectorised.

Semantics follow ``skfuzzy.membership`` exactly (including vertical sides: ``trapmf``
with ``a == b`` is 1 from ``a`` on). Every kind is convex, so a level set
``{u: mf(u) > t}`` is one interval; the engine's exact centroid relies on that.

``lambda`` scaling (SPEC: the "membership range" knobs lambda1/lambda2) keeps each
function's core (where it is 1) fixed and stretches its slopes by ``scale``: a term keeps
membership exactly 1 at its code whatever the lambda.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MF_KINDS: dict[str, int] = {"trimf": 3, "trapmf": 4, "gaussmf": 2}


def check_params(kind: str, params: tuple[float, ...] | list[float]) -> str | None:
    """Return a human-readable problem with ``params`` for ``kind``, or None if valid."""
    if kind not in MF_KINDS:
        return f"unknown membership function {kind!r} (expected one of {', '.join(MF_KINDS)})"
    need = MF_KINDS[kind]
    if len(params) != need:
        names = {"trimf": "[a, b, c]", "trapmf": "[a, b, c, d]", "gaussmf": "[mean, sigma]"}[kind]
        return f"{kind} takes {need} parameters {names}, got {len(params)}"
    if not all(math.isfinite(p) for p in params):
        return f"{kind} parameters must be finite numbers"
    if kind == "gaussmf":
        if params[1] <= 0:
            return f"gaussmf sigma must be > 0, got {params[1]}"
        return None
    letters = "abcd"[:need]
    for i in range(need - 1):
        if params[i] > params[i + 1]:
            return (
                f"{kind} needs {' <= '.join(letters)}, but "
                f"{letters[i]}={params[i]} > {letters[i + 1]}={params[i + 1]}"
            )
    return None


@dataclass(frozen=True)
class MembershipFunction:
    """One membership function in scikit-fuzzy's parameterisation."""

    kind: str
    params: tuple[float, ...]

    def __post_init__(self) -> None:
        problem = check_params(self.kind, self.params)
        if problem:
            raise ValueError(problem)

    # -- shape -----------------------------------------------------------------
    @property
    def trapezoid(self) -> tuple[float, float, float, float] | None:
        """(a, b, c, d) for trimf/trapmf, None for gaussmf."""
        p = self.params
        if self.kind == "trimf":
            return (p[0], p[1], p[1], p[2])
        if self.kind == "trapmf":
            return (p[0], p[1], p[2], p[3])
        return None

    @property
    def core(self) -> tuple[float, float]:
        """The interval where membership is 1."""
        t = self.trapezoid
        if t is None:
            return (self.params[0], self.params[0])
        return (t[1], t[2])

    def scaled(self, scale: float) -> MembershipFunction:
        """Stretch the slopes by ``scale`` around the fixed core (the lambda knob)."""
        if scale == 1.0:
            return self
        t = self.trapezoid
        if t is None:
            return MembershipFunction("gaussmf", (self.params[0], self.params[1] * scale))
        a, b, c, d = t
        a2, d2 = b - (b - a) * scale, c + (d - c) * scale
        if self.kind == "trimf":
            return MembershipFunction("trimf", (a2, b, d2))
        return MembershipFunction("trapmf", (a2, b, c, d2))

    # -- evaluation ------------------------------------------------------------
    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = np.empty_like(x)
        evaluate_into(self, x, out)
        return out

    def level_interval(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the level set {u: mf(u) > t} for levels 0 < t < 1 (an interval)."""
        t = np.asarray(t, dtype=float)
        tr = self.trapezoid
        if tr is None:
            mean, sigma = self.params
            half = sigma * np.sqrt(-2.0 * np.log(np.clip(t, 1e-300, 1.0)))
            return mean - half, mean + half
        a, b, c, d = tr
        return a + t * (b - a), d - t * (d - c)


def evaluate_into(
    mf: MembershipFunction,
    x: np.ndarray,
    out: np.ndarray,
    *,
    domain: tuple[float, float] | None = None,
    nan_safe: bool = True,
) -> np.ndarray:
    """Write ``mf(x)`` into ``out`` with a handful of whole-array operations.

    NaN inputs give NaN (unless ``nan_safe=False``: the caller guarantees no NaN). With
    ``domain=(lo, hi)`` the caller guarantees ``lo <= x <= hi``, which lets shoulder
    functions skip the side that is constant on the domain. Branches are on the (scalar)
    parameters only, never per element.
    """
    tr = mf.trapezoid
    if tr is None:
        mean, sigma = mf.params
        np.subtract(x, mean, out=out)
        np.square(out, out=out)
        np.multiply(out, -0.5 / (sigma * sigma), out=out)
        return np.exp(out, out=out)
    a, b, c, d = tr
    lo, hi = domain if domain is not None else (-np.inf, np.inf)
    rising_is_one = b <= lo  # x >= b everywhere: the rising side is 1 on the domain
    falling_is_one = c >= hi
    nan = np.isnan(x) if nan_safe else None
    if rising_is_one and falling_is_one:
        out.fill(1.0)
    elif rising_is_one:
        _side(x, out, c, d, falling=True)
    elif falling_is_one:
        _side(x, out, a, b, falling=False)
    else:
        _side(x, out, a, b, falling=False)
        fall = np.empty_like(out)
        _side(x, fall, c, d, falling=True)
        np.minimum(out, fall, out=out)
    np.clip(out, 0.0, 1.0, out=out)
    if nan is not None and nan.any():
        out[nan] = np.nan
    return out


def _side(x: np.ndarray, out: np.ndarray, p: float, q: float, *, falling: bool) -> None:
    """One side of a trapezoid, unclipped: rising (x - p) / (q - p) or falling (q - x) / (q - p).

    A vertical side (p == q) is a step: rising is 1 from p on, falling is 1 up to q.
    """
    if q > p:
        if falling:
            np.subtract(q, x, out=out)
        else:
            np.subtract(x, p, out=out)
        np.multiply(out, 1.0 / (q - p), out=out)
    elif falling:
        np.less_equal(x, q, out=out, casting="unsafe")
    else:
        np.greater_equal(x, p, out=out, casting="unsafe")
