"""Temporal smoothing: the One Euro filter (Casiez, Roussel & Vogel, CHI 2012).

Per-frame landmarks jitter by a pixel or two and per-frame labels flicker with them. The One
Euro filter is a first-order low-pass filter whose cutoff frequency rises with the signal's
speed: slow drifts (jitter around a still face) are smoothed hard, fast movements (a smile
starting) pass with little lag. For each value, frame by frame::

    dx      = (x_t - xhat_{t-1}) / dt                        speed
    dxhat   = lowpass(dx, cutoff = d_cutoff)                 smoothed speed
    cutoff  = min_cutoff + beta * |dxhat| / scale            adaptive cutoff (Hz)
    xhat_t  = lowpass(x_t, cutoff)                           output
    lowpass(v, fc): alpha = 1 / (1 + 1 / (2 pi fc dt)); out = alpha v + (1 - alpha) out_prev

Parameters (documented in docs/annotate.md):

- ``min_cutoff`` (Hz): cutoff at rest. Lower = smoother but laggier when still. 1.0 is a good
  start at 25-30 fps.
- ``beta``: how fast the cutoff opens with speed (per unit of speed, in units of ``scale``
  per second). 0 gives a plain low-pass filter; raise it until fast movements stop lagging.
- ``d_cutoff`` (Hz): cutoff of the speed estimate; 1.0 rarely needs changing.
- ``scale``: the unit in which speed is measured, per frame or constant. For landmarks in
  pixels pass the face's inter-ocular distance so one setting works for every face size; for
  component measurements (already dimensionless) leave it at 1.

The filter runs along axis 0 (time) and is vectorised over every other axis (all points and
coordinates of a frame at once). A non-finite value (a frame with no face) passes through as
NaN and restarts that value's filter, so a face that comes back is not dragged from where it
was lost. Time is given explicitly (``t`` in seconds), so dropped frames and ``every``
stepping are handled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import InputError

TARGETS = ("landmarks", "measurements")
# Default speed coefficients. Landmarks: a smile's corners move ~0.3 inter-ocular distances
# per second, which should open the cutoff to ~4 Hz (beta 10). Measurements: the same smile
# moves its component ~3 units/s, so beta 1 gives the same ~4 Hz.
DEFAULT_BETA = {"landmarks": 10.0, "measurements": 1.0}


@dataclass(frozen=True)
class OneEuro:
    """One Euro filter settings and what to smooth (``"landmarks"`` or ``"measurements"``).

    ``annotate(..., smoothing="landmarks")`` uses these defaults; pass an instance to tune.
    For landmarks, speed is measured in inter-ocular distances per second (beta defaults to
    10); for measurements, in component units (the [-1, 1] scale) per second (beta 1).
    """

    target: str = "landmarks"
    min_cutoff: float = 1.0
    beta: float | None = None  # None: DEFAULT_BETA[target]
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.beta is None:
            object.__setattr__(self, "beta", DEFAULT_BETA.get(self.target, 1.0))
        if self.target not in TARGETS:
            raise InputError(f"smoothing target must be one of {', '.join(TARGETS)}, "
                             f"got {self.target!r}")
        for name in ("min_cutoff", "d_cutoff"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"smoothing {name} must be a positive number (Hz), got {v!r}")
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta)
                and self.beta >= 0):
            raise InputError(f"smoothing beta must be a number >= 0, got {self.beta!r}")

    @classmethod
    def parse(cls, spec: Any) -> OneEuro | None:
        """None, a target name, or an OneEuro instance -> OneEuro or None."""
        if spec is None or spec is False:
            return None
        if isinstance(spec, OneEuro):
            return spec
        if isinstance(spec, str):
            if spec in ("none", "off", ""):
                return None
            return cls(target=spec)
        raise InputError(f"smoothing must be None, 'landmarks', 'measurements' or OneEuro(...), "
                         f"got {spec!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"filter": "one-euro", "target": self.target, "min_cutoff": self.min_cutoff,
                "beta": self.beta, "d_cutoff": self.d_cutoff}


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    # Exact form of the paper's smoothing factor: alpha = 1 / (1 + tau / dt), tau = 1/(2 pi fc).
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))


def one_euro(x: Any, t: Any, min_cutoff: float = 1.0, beta: float = 1.0,
             d_cutoff: float = 1.0, scale: Any = 1.0) -> np.ndarray:
    """Filter ``x`` ``(n, ...)`` along axis 0 with frame times ``t`` ``(n,)`` in seconds.

    ``scale`` is a scalar or ``(n,)`` (one per frame). Returns a new float array shaped like
    ``x``. The loop runs over frames (the filter is recursive in time); each step is a handful
    of numpy operations over all values of the frame.
    """
    OneEuro(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)  # validates the numbers
    x = np.asarray(x, dtype=float)
    t = np.asarray(t, dtype=float).reshape(-1)
    n = x.shape[0] if x.ndim else 0
    if x.ndim == 0 or t.shape[0] != n:
        raise InputError(f"one_euro needs one time per frame: x has {n} frames, t has "
                         f"{t.shape[0]}")
    sc = np.broadcast_to(np.asarray(scale, dtype=float), (n,))
    out = np.full_like(x, np.nan)
    if n == 0:
        return out
    prev = np.full(x.shape[1:], np.nan)    # filtered value; NaN = (re)start
    dprev = np.zeros(x.shape[1:])           # filtered speed
    t_prev = -math.inf
    for i in range(n):
        xi = x[i]
        ok = np.isfinite(xi)
        dt = t[i] - t_prev
        if not (math.isfinite(dt) and dt > 0):
            # First frame, or a repeated/backward time stamp: start over from this frame.
            res = np.where(ok, xi, np.nan)
            dprev = np.zeros_like(dprev)
        else:
            fresh = ~np.isfinite(prev)
            with np.errstate(invalid="ignore"):
                dx = (xi - prev) / dt
                dx = np.where(fresh, 0.0, dx)
                ad = _alpha(d_cutoff, dt)
                dhat = ad * dx + (1 - ad) * dprev
                s = sc[i] if math.isfinite(sc[i]) and sc[i] > 0 else 1.0
                a = _alpha(min_cutoff + beta * np.abs(dhat) / s, dt)
                res = a * xi + (1 - a) * prev
            res = np.where(fresh, xi, res)
            res = np.where(ok, res, np.nan)
            dprev = np.where(ok & ~fresh, dhat, 0.0)
        out[i] = res
        prev = res
        t_prev = t[i]
    return out


def smooth_tracks(values: np.ndarray, t: np.ndarray, tracks: np.ndarray, spec: OneEuro,
                  scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Apply :func:`one_euro` to each track (e.g. one face in one video) separately.

    ``tracks`` ``(n,)`` holds one key per row; rows of a track must be in time order.
    """
    out = np.array(values, dtype=float, copy=True)
    sc = np.broadcast_to(np.asarray(scale, dtype=float), (len(out),))
    _, inverse = np.unique(tracks, return_inverse=True)
    for g in range(int(inverse.max()) + 1 if len(inverse) else 0):
        rows = np.flatnonzero(inverse == g)
        out[rows] = one_euro(values[rows], t[rows], spec.min_cutoff, spec.beta, spec.d_cutoff,
                             sc[rows])
    return out
