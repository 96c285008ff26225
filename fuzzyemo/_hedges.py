"""Linguistic hedges: words that modify a term's membership (``mouth is very open``).

The six hedges and their definitions are fuzzylite's (pyfuzzylite 7, ``fuzzylite/hedge.py``),
so an FLL export evaluates identically there:

=============  =====================================================================
``any``        1 (whatever the membership; fuzzylite: ``mouth is any``, no term follows)
``not``        1 - x
``seldom``     sqrt(0.5 x) if x <= 0.5, else 1 - sqrt(0.5 (1 - x))
``somewhat``   sqrt(x)
``very``       x^2
``extremely``  2 x^2 if x <= 0.5, else 1 - 2 (1 - x)^2
=============  =====================================================================

Hedges chain right to left, as in fuzzylite: ``not very open`` is not(very(open)). ``any``
ends a chain (no term after it): ``mouth is any`` is 1, ``mouth is not any`` is 0.
The arithmetic follows fuzzylite's operation order, so in double precision both give the
same bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

HEDGES: tuple[str, ...] = ("any", "not", "seldom", "somewhat", "very", "extremely")
ANY = "any"


def hedge_value(hedges: Sequence[str], x: float) -> float:
    """``x`` (a membership in [0, 1]) with ``hedges`` applied right to left (scalar)."""
    for h in reversed(tuple(hedges)):
        if h == "any":
            x = 1.0
        elif h == "not":
            x = 1.0 - x
        elif h == "seldom":
            x = math.sqrt(0.5 * x) if x <= 0.5 else 1.0 - math.sqrt(0.5 * (1.0 - x))
        elif h == "somewhat":
            x = math.sqrt(x)
        elif h == "very":
            x = x * x
        elif h == "extremely":
            x = 2.0 * x * x if x <= 0.5 else 1.0 - 2.0 * (1.0 - x) * (1.0 - x)
        else:
            raise ValueError(f"unknown hedge {h!r} (hedges: {', '.join(HEDGES)})")
    return x


def apply_hedges(hedges: Sequence[str], mu: np.ndarray,
                 scratch: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Apply ``hedges`` right to left to the float array ``mu`` in place; return it.

    Whole-array operations in ``mu``'s own dtype (float32 or float64); memberships are in
    [0, 1], so every square root is of a non-negative number. ``scratch``: a float array
    like ``mu`` and a bool array of its shape, reused instead of allocating (fresh large
    arrays cost page faults on every call).
    """
    comp, upper = scratch if scratch is not None else (None, None)
    for h in reversed(tuple(hedges)):
        if h == "any":
            mu.fill(1.0)
        elif h == "not":
            np.subtract(1.0, mu, out=mu)
        elif h == "very":
            np.multiply(mu, mu, out=mu)
        elif h == "somewhat":
            np.sqrt(mu, out=mu)
        elif h in ("seldom", "extremely"):
            # Both are g(x) for x <= 0.5 and 1 - g(1 - x) above, so with d = min(x, 1 - x)
            # and u = 1 where x > 0.5, else 0: u + (1 - 2u) g(d), i.e. g(d) or 1 - g(d).
            # Branch-free (a masked operation on random data is 30x slower), and bit for bit
            # fuzzylite's value on each side: y * (+-1) and 0 + y are exact.
            if comp is None:
                comp, upper = np.empty_like(mu), np.empty(mu.shape, dtype=bool)
            np.greater(mu, 0.5, out=upper)
            np.subtract(1.0, mu, out=comp)
            np.minimum(mu, comp, out=mu)
            if h == "seldom":
                np.multiply(mu, 0.5, out=mu)
                np.sqrt(mu, out=mu)
            else:
                np.multiply(mu, 2.0, out=comp)
                np.multiply(comp, mu, out=mu)
            np.multiply(upper, -2.0, out=comp)
            comp += 1.0
            mu *= comp
            np.add(mu, upper, out=mu)
        else:
            raise ValueError(f"unknown hedge {h!r} (hedges: {', '.join(HEDGES)})")
    return mu


def hedged_text(component: str, term: str | None, hedges: Sequence[str]) -> str:
    """``component is [hedge ...] term`` (no term after a final ``any``), as fuzzylite writes."""
    words = [*hedges] if hedges and hedges[-1] == ANY else [*hedges, str(term)]
    return f"{component} is {' '.join(words)}"


__all__ = ["ANY", "HEDGES", "apply_hedges", "hedge_value", "hedged_text"]
