"""Centroid defuzzification of ``B(u) = max_k I(F_k, nu_k(u))`` over U = [0, 1].

Two methods, both vectorised over rows:

``ExactCentroid`` (implication = min) uses the layer-cake identity
    integral B du = integral_0^1 |{u: B(u) > t}| dt,  {B > t} = union_{k: F_k > t} L_k(t)
with L_k(t) = {u: nu_k(u) > t}, an interval because every membership kind is convex.
Inclusion-exclusion over the (at most three) intensity terms turns the union into
intersections, and the intersection of intervals is again an interval, so

    area   = sum over non-empty S of (-1)^(|S|+1) * P_S(min_{k in S} F_k)
    moment = the same with Q_S,

where P_S(t) = integral_0^t |intersection_{k in S} L_k(tau)| dtau and Q_S likewise for the
first moment. P_S and Q_S depend only on the membership functions: we tabulate them (and their
first two derivatives) once,
when the rule base is compiled, and each row costs one table lookup per non-empty
intersection (five for the usual low/medium/high where low and high do not overlap). With
piecewise-linear functions the tables are exact up to O(h^2), h = 1/(points - 1).

``GridCentroid`` samples B on a uniform grid and integrates the piecewise-linear
interpolant exactly (what scikit-fuzzy's ``defuzz(..., 'centroid')`` computes); any
implication.
"""

from __future__ import annotations

import itertools

import numpy as np

from ._membership import MembershipFunction

N_LEVELS = 3
_TABLE_POINTS = 4097  # h = 2.4e-4; quadratic lookups: error O(h^2) only in cells holding a kink


class ExactCentroid:
    """Exact centroid for min implication, via tabulated layer-cake integrals."""

    def __init__(self, intensity_mfs: list[list[MembershipFunction]], points: int = _TABLE_POINTS):
        self.points = points
        t = np.linspace(0.0, 1.0, points)
        dt = np.diff(t)
        # Per emotion: [(subset, sign, cumulative, rate, curvature)], complex (area + i moment).
        self.terms: list[list[tuple]] = []
        self.step = 1.0 / (points - 1)
        for mfs in intensity_mfs:
            bounds = [mf.level_interval(t) for mf in mfs]
            lo = [np.clip(b[0], 0.0, 1.0) for b in bounds]
            hi = [np.clip(b[1], 0.0, 1.0) for b in bounds]
            entries = []
            for size in (1, 2, 3):
                for subset in itertools.combinations(range(len(mfs)), size):
                    a = np.max([lo[k] for k in subset], axis=0)
                    b = np.min([hi[k] for k in subset], axis=0)
                    span = b > a
                    length = np.where(span, b - a, 0.0)
                    moment = np.where(span, (b * b - a * a) / 2.0, 0.0)
                    if not length.any():
                        continue  # these terms never overlap: the lookup is always 0
                    # rate = d/dt of the cumulative integrals (area + i moment), exact at the
                    # grid points; the cumulative values follow by the trapezoid rule, which
                    # the quadratic lookup below reproduces exactly at every grid point.
                    rate = length + 1j * moment
                    cum = np.zeros(points, dtype=complex)
                    cum[1:] = np.cumsum((rate[1:] + rate[:-1]) / 2.0 * dt)
                    curve = np.append(np.diff(rate) / dt, 0.0)
                    # Pad one cell so level 1.0 needs no bounds check.
                    tables = [np.append(a, a[-1]) for a in (cum, rate, curve)]
                    entries.append((subset, (-1.0) ** (size + 1), *tables))
            self.terms.append(entries)

    def __call__(self, emotion: int, levels: np.ndarray) -> np.ndarray:
        """Centroids (m,) of one emotion from its (3, m) float64 levels F (low, medium, high).

        Rows whose aggregated set is empty (all F = 0) give NaN.
        """
        m = levels.shape[1]
        scale = float(self.points - 1)
        acc = np.zeros(m, dtype=complex)
        for subset, sign, cum, rate, curve in self.terms[emotion]:
            level = levels[subset[0]]
            for k in subset[1:]:
                level = np.minimum(level, levels[k])
            cell = (level * scale).astype(np.intp)
            delta = level - cell * self.step  # distance above the grid point, in level units
            # Quadratic in delta: exact for piecewise-linear rates (tri/trap functions) away
            # from their kinks, and exact for tiny levels inside the first cell too.
            val = np.take(curve, cell)
            val *= delta / 2.0
            val += np.take(rate, cell)
            val *= delta
            val += np.take(cum, cell)
            if sign > 0:
                acc += val
            else:
                acc -= val
        area, moment = acc.real, acc.imag
        with np.errstate(invalid="ignore", divide="ignore"):
            out = moment / area
        out[~(area > 0)] = np.nan  # empty aggregated set: no centroid
        return out


class GridCentroid:
    """Centroid on a uniform grid of ``resolution`` points (any implication)."""

    def __init__(self, intensity_mfs: list[list[MembershipFunction]], resolution: int,
                 implication: str, block: int = 512):
        self.u = np.linspace(0.0, 1.0, resolution)
        self.nu = np.stack([np.stack([mf(self.u) for mf in mfs]) for mfs in intensity_mfs])
        self.implication = implication
        self.block = block

    def __call__(self, emotion: int, levels: np.ndarray) -> np.ndarray:
        """Centroids (m,) of one emotion from its (3, m) levels; NaN where B is empty."""
        m = levels.shape[1]
        out = np.empty(m)
        u = self.u
        du = np.diff(u)
        x1, x2 = u[:-1], u[1:]
        nu = self.nu[emotion][None]  # (1, 3, G)
        for s in range(0, m, self.block):
            f = levels[:, s:s + self.block].T[:, :, None]  # (b, 3, 1)
            clipped = np.minimum(f, nu) if self.implication == "min" else f * nu
            b = clipped.max(axis=1)  # (b, G)
            y1, y2 = b[:, :-1], b[:, 1:]
            area = (du * (y1 + y2) / 2).sum(axis=1)
            # Exact first moment of each linear piece.
            moment = (du / 6 * (x1 * (2 * y1 + y2) + x2 * (y1 + 2 * y2))).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[s:s + self.block] = np.where(area > 0, moment / area, np.nan)
        return out
