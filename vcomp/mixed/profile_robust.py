"""The derivative-free profile of :mod:`vcomp.mixed.profile`, for fits on the boundary.

When a fit has a standard deviation at zero or a correlation at +-1, the criterion can have
several basins along a profile (the zero SD switched on with the others at other values, a
correlation flipping), and quasi-Newton steps from a warm start can stay in the wrong one.  Such
fits are profiled as before the fast path: every point of a profile is minimised by L-BFGS-B
(3-point differences) from the nearest solved points and their extrapolated trace, restarted off
zero for every SD at zero; bounds by secant steps and Illinois false position.  It costs a few
hundred criterion evaluations per parameter instead of a few dozen.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = ["XTOL", "RTOL_R", "Profile", "bound", "minimize_from"]

#: tolerance of a bound, relative to the first step (in the profile's coordinate)
XTOL = 1e-7
#: tolerance of the signed root sqrt(d(v) - d_min) at a bound (z = 1.96 at 95%)
RTOL_R = 1e-6


def minimize_from(fun, x0: np.ndarray, bounds: list) -> tuple[float, np.ndarray]:
    """Bounded minimum (L-BFGS-B from ``x0``, then a restart from its end point)."""
    if len(x0) == 0:
        return float(fun(x0)), x0
    best_f, best_x = float(fun(x0)), np.array(x0, dtype=float)
    # stop when a step gains < 1e-9 in the criterion (absolute): far below what moves a bound
    opts = {"ftol": 1e-9 / max(1.0, abs(best_f)), "gtol": 1e-5, "maxiter": 1000, "maxls": 20}
    r = optimize.minimize(fun, best_x, method="L-BFGS-B", jac="3-point", bounds=bounds, options=opts)
    if np.isfinite(r.fun) and r.fun <= best_f:
        best_f, best_x = float(r.fun), np.array(r.x)
    return best_f, best_x


class Profile:
    """``r(v) = sqrt(d(v) - d_min)``, ``d(v) = min_x g(v, x)``, warm-started from the solved neighbours."""

    def __init__(self, g, x_hat: np.ndarray, v_hat: float, bounds: list, scale: np.ndarray, d_min: float) -> None:
        self.g = g
        self.bounds = [(None if lo is None else lo / s, None if hi is None else hi / s)
                       for (lo, hi), s in zip(bounds, scale)]
        self.lo = np.array([-np.inf if lo is None else lo for lo, _ in self.bounds])
        self.hi = np.array([np.inf if hi is None else hi for _, hi in self.bounds])
        self.scale = scale
        self.zero_bound = self.lo == 0.0
        self.d_min = d_min
        self.solved = [(v_hat, np.asarray(x_hat, dtype=float) / scale)]
        self.cache: dict = {}

    def dev(self, v: float) -> float:
        """The profiled criterion at ``v``."""
        near = sorted(self.solved, key=lambda s: abs(s[0] - v))
        f = lambda z: self._safe(v, z)  # noqa: E731
        x0, f0 = near[0][1], f(near[0][1])
        if len(near) > 1 and near[1][0] != near[0][0]:  # extrapolate the trace of the other parameters
            (v1, x1), (v2, x2) = near[0], near[1]
            xe = np.clip(x1 + (v - v1) * (x1 - x2) / (v1 - v2), self.lo, self.hi)
            fe = f(xe)
            if fe < f0:
                x0, f0 = xe, fe
        d, x = minimize_from(f, x0, self.bounds)
        # a standard deviation (or a diagonal of theta) enters only through its square: zero is a
        # stationary point the minimizer cannot leave; try again from off the boundary
        zero = self.zero_bound & (x < 1e-6)
        if zero.any():
            x1 = x.copy()
            x1[zero] = max(0.5 * float(np.max(x[self.zero_bound], initial=0.0)), 0.3)
            d1, x1 = minimize_from(f, x1, self.bounds)
            if d1 < d - 1e-10:
                d, x = d1, x1
        self.solved.append((v, x))
        return d

    def __call__(self, v: float) -> float:
        if v not in self.cache:
            self.cache[v] = float(np.sqrt(max(self.dev(v) - self.d_min, 0.0)))
        return self.cache[v]

    def _safe(self, v, z):
        val = self.g(v, z * self.scale)
        return val if np.isfinite(val) else 1e300


def bound(r, u_hat: float, direction: int, step: float, z: float, edge=None, far: float = np.inf) -> float:
    """The root of ``r(u) = z`` on one side of ``u_hat`` (``r`` the profile in a coordinate ``u``).

    Secant steps (each at most four times the distance covered so far) until the root is
    bracketed, then false position (:func:`_falsi`).  ``edge`` gives ``r`` at the parameter's boundary on this side (a
    standard deviation of 0, a correlation of +-1): when the steps have gone more than ``far``
    from ``u_hat`` and the boundary is still inside the interval, the boundary is returned as
    ``direction * inf``.  Without an edge and without a root, ``direction * inf``.
    """
    a_u, a_r = u_hat, 0.0
    u = u_hat + direction * step
    edge_checked = False
    for _ in range(200):
        if abs(u - u_hat) > far and not edge_checked:
            edge_checked = True
            if edge is None or edge() <= z:
                return direction * np.inf
        ru = r(u)
        if ru >= z:
            return _falsi(lambda t: r(t) - z, a_u, a_r - z, u, ru - z, XTOL * step)
        dist = abs(u - u_hat)
        slope = (ru - a_r) / abs(u - a_u)
        move = 1.1 * (z - ru) / slope if slope > 0 else 4.0 * dist
        move = min(max(move, 0.25 * dist), 4.0 * dist)
        a_u, a_r = u, ru
        u = u + direction * move
        if not np.isfinite(u):
            break
    return direction * np.inf


def _falsi(f, a: float, fa: float, b: float, fb: float, xtol: float) -> float:
    """Root of ``f`` between ``a`` (``fa < 0``) and ``b`` (``fb >= 0``) by the Illinois false-position
    method: the profile is nearly linear in its coordinate, so two or three steps reach
    ``|f| <= RTOL_R`` (an error of ~1e-7 of the interval's width in the bound)."""
    if fb == 0:
        return float(b)
    last = 0
    c = b
    for _ in range(100):
        c = b - fb * (b - a) / (fb - fa)
        fc = f(c)
        if abs(fc) <= RTOL_R or abs(b - a) <= xtol:
            return float(c)
        if fc > 0:
            b, fb = c, fc
            if last == 1:
                fa /= 2.0
            last = 1
        else:
            a, fa = c, fc
            if last == -1:
                fb /= 2.0
            last = -1
    return float(c)  # pragma: no cover - the bracket shrinks geometrically
