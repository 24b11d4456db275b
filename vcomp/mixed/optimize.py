"""Bounded minimisation of the profiled criterion over theta (lme4-quality optimum).

L-BFGS-B with central-difference gradients from lme4's start (theta = identity factors),
a polishing restart, then boundary candidates: every small diagonal element is tried at
exactly zero with the rest re-optimised, and the better fit is kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


@dataclass
class OptResult:
    """Optimum of the criterion."""

    theta: np.ndarray
    fun: float
    converged: bool
    nfev: int
    message: str


_FTOL = [1e-14]


def _lbfgsb_fd(f, x0, bounds, maxiter=2000, jac="3-point", maxls=20):
    return minimize(f, x0, method="L-BFGS-B", jac=jac, bounds=bounds,
                    options={"maxiter": maxiter, "ftol": _FTOL[0], "gtol": 1e-6, "maxls": maxls})


def optimize_theta(f, theta0: np.ndarray, lower: np.ndarray, polish_nm: bool = False, grad=None) -> OptResult:
    """Minimise ``f(theta)`` subject to ``theta >= lower``.

    Parameters
    ----------
    f : callable
        The profiled criterion (a pure function of theta).
    theta0 : ndarray
        Starting value (lme4: 1 on diagonals, 0 elsewhere).
    lower : ndarray
        Lower bounds (0 for diagonal elements, -inf otherwise).
    polish_nm : bool
        Finish with a short Nelder-Mead run (slower; rarely needed).
    grad : callable, optional
        Analytic gradient of ``f``; used in place of finite differences when given.
    """
    nfev = 0
    m = len(theta0)
    if m == 0:
        return OptResult(np.zeros(0), float(f(np.zeros(0))), True, 1, "no variance parameters")
    bounds = [(None if not np.isfinite(lo) else lo, None) for lo in lower]
    cache = {}

    def fw(x):
        key = tuple(np.round(x, 14))
        if key not in cache:
            v = f(np.asarray(x, dtype=float))
            cache[key] = v if np.isfinite(v) else 1e300
        return cache[key]

    if grad is not None:
        def gw(x):
            try:
                g = np.asarray(grad(np.asarray(x, dtype=float)), dtype=float)
            except (np.linalg.LinAlgError, ValueError, FloatingPointError):
                g = np.full(len(x), np.nan)
            return np.where(np.isfinite(g), g, 0.0)

        def _lbfgsb(fun, x0, bnds, maxiter=2000, jac=None, maxls=20):  # noqa: F811 - analytic gradient
            return minimize(fun, x0, method="L-BFGS-B", jac=gw, bounds=bnds,
                            options={"maxiter": maxiter, "ftol": _FTOL[0], "gtol": 1e-6, "maxls": maxls})
    else:
        _lbfgsb = _lbfgsb_fd
    # stop when a step changes the criterion by < 1e-9 in absolute terms (lme4 compares to 1e-4)
    f0 = fw(np.asarray(theta0, dtype=float))
    _FTOL[0] = min(1e-12, max(1e-15, 1e-9 / max(1.0, abs(f0)))) if np.isfinite(f0) else 1e-14
    r = _lbfgsb(fw, np.asarray(theta0, dtype=float), bounds, jac="2-point")
    best_x, best_f = np.array(r.x), float(r.fun)
    ok = bool(r.success)
    msg = str(r.message)
    # polishing restart (fresh curvature memory)
    r2 = _lbfgsb(fw, best_x, bounds, maxiter=100, maxls=6)
    if r2.fun <= best_f:
        best_x, best_f = np.array(r2.x), float(r2.fun)
        ok = ok or bool(r2.success)
    # escape saddles on the boundary: the criterion depends on a diagonal element only through
    # its square, so a zero diagonal is always stationary; restart away from it
    diag = np.isfinite(lower)
    for i in range(m):
        if diag[i] and best_x[i] < 1e-3:
            x0 = best_x.copy()
            x0[i] = max(0.5 * np.max(np.abs(best_x[diag])), 0.1)
            re = _lbfgsb(fw, x0, bounds)
            if re.fun < best_f - 1e-10:
                best_x, best_f = np.array(re.x), float(re.fun)
    # ... but on a flat criterion L-BFGS-B's first step from such a restart overshoots straight back
    # to the bound (where the gradient is 0 again). Restart with every zero diagonal held off the
    # bound (>= 1e-3), then release the bounds from there (the line search only accepts decreases).
    zero = [i for i in range(m) if diag[i] and best_x[i] < 1e-3]
    if zero:
        b3 = list(bounds)
        x0 = best_x.copy()
        lift = max(0.5 * np.max(np.abs(best_x[diag])), 0.1)
        for i in zero:
            b3[i] = (1e-3, None)
            x0[i] = lift
        re = _lbfgsb(fw, x0, b3)
        if re.fun < best_f - 1e-10:
            best_x, best_f = np.array(re.x), float(re.fun)
            rp = _lbfgsb(fw, best_x, bounds)
            if rp.fun <= best_f:
                best_x, best_f = np.array(rp.x), float(rp.fun)
    # Nelder-Mead polish for tiny remaining improvements (derivative-free, cheap for small m)
    if polish_nm and m <= 6:
        r3 = minimize(fw, best_x, method="Nelder-Mead", bounds=bounds,
                      options={"xatol": 1e-9, "fatol": 1e-12, "maxfev": 400 * m,
                               "initial_simplex": _simplex(best_x, lower)})
        if r3.fun < best_f:
            best_x, best_f = np.array(r3.x), float(r3.fun)
    # boundary candidates: small diagonal elements set exactly to zero
    diag = np.isfinite(lower)
    for _ in range(m):
        small = [i for i in range(m) if diag[i] and 0 < best_x[i] < 1e-2]
        improved = False
        for i in small:
            b2 = list(bounds)
            b2[i] = (0.0, 0.0)
            x0 = best_x.copy()
            x0[i] = 0.0
            free = [j for j in range(m) if j != i]
            if free:
                rz = _lbfgsb(fw, x0, b2)
                xz, fz = np.array(rz.x), float(rz.fun)
            else:
                xz, fz = x0, fw(x0)
            xz[i] = 0.0
            fz = fw(xz)
            if fz <= best_f + 1e-8:
                best_x, best_f, improved = xz, fz, True
                break
        if not improved:
            break
    best_x = np.where(diag & (best_x < 0), 0.0, best_x)
    best_x, best_f = newton_polish(fw, best_x, lower, best_f)
    if not ok:
        # L-BFGS-B often stops with ABNORMAL_TERMINATION_IN_LNSRCH at the optimum because the
        # finite-difference gradient is noisy there; accept the point if the Newton step is tiny
        # (lme4's check.conv.grad: gradient scaled by the Hessian, tolerance 2e-3)
        step = newton_step(fw, best_x, lower)
        if np.max(np.abs(step)) < 2e-3:
            ok, msg = True, "converged (largest Newton step %.1e)" % np.max(np.abs(step))
    nfev = len(cache)
    return OptResult(best_x, float(fw(best_x)), ok, nfev, msg)


def newton_polish(f, x: np.ndarray, lower: np.ndarray, fx: float, iters: int = 6,
                  max_free: int = 6) -> tuple[np.ndarray, float]:
    """A few Newton steps (central-difference gradient and Hessian) on the coordinates off their bounds.

    L-BFGS-B stops when a step gains less than its tolerance, which on a flat criterion leaves
    θ uncertain in the fifth digit; Newton converges quadratically to where the gradient
    vanishes, so two fits of the same cross-products summed in a different order (in memory,
    out of core) land on the same optimum to rounding.  A step is kept only if it lowers the
    criterion; coordinates on a bound stay there.  Skipped beyond ``max_free`` free coordinates.
    """
    x = np.array(x, dtype=float)
    for _ in range(iters):
        free = [i for i in range(len(x)) if not (np.isfinite(lower[i]) and x[i] <= lower[i] + 1e-8)]
        k = len(free)
        if k == 0 or k > max_free:
            break
        h = 1e-3 * np.maximum(1.0, np.abs(x[free]))
        E = np.zeros((k, len(x)))
        E[np.arange(k), free] = h
        fp = np.array([f(x + e) for e in E])
        fm = np.array([f(x - e) for e in E])
        if not (np.all(np.isfinite(fp)) and np.all(np.isfinite(fm))):
            break
        g = (fp - fm) / (2 * h)
        H = np.diag((fp - 2 * fx + fm) / h ** 2)
        for a in range(k):
            for b in range(a + 1, k):
                pp, pm = f(x + E[a] + E[b]), f(x + E[a] - E[b])
                mp, mm = f(x - E[a] + E[b]), f(x - E[a] - E[b])
                H[a, b] = H[b, a] = (pp - pm - mp + mm) / (4 * h[a] * h[b])
        try:
            np.linalg.cholesky(H)
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        done = False
        noise = 1e-12 * max(1.0, abs(fx))  # rounding of the criterion: a Newton step within it is kept
        for t in (1.0, 0.5, 0.25):
            xn = x.copy()
            xn[free] = x[free] - t * step
            xn = np.maximum(xn, np.where(np.isfinite(lower), lower, -np.inf))
            fn = f(xn)
            if fn < fx + noise:
                x, fx, done = xn, fn, True
                break
        if not done or np.max(np.abs(step) / np.maximum(1.0, np.abs(x[free]))) < 1e-9:
            break
    return x, fx


def newton_step(f, x: np.ndarray, lower: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Per-coordinate Newton step ``g_i / H_ii`` of ``f`` at ``x`` from central differences.

    Coordinates on an active lower bound whose gradient pushes against it count as 0.
    """
    f0 = f(x)
    out = np.zeros(len(x))
    for i in range(len(x)):
        hi = h * max(1.0, abs(x[i]))
        e = np.zeros(len(x))
        e[i] = hi
        up = f(x + e)
        if np.isfinite(lower[i]) and x[i] - hi < lower[i]:
            g = (up - f0) / hi
            out[i] = 0.0 if g >= 0 else np.inf
            continue
        dn = f(x - e)
        g = (up - dn) / (2 * hi)
        H = (up - 2 * f0 + dn) / hi ** 2
        out[i] = g / H if H > 0 else np.inf
    return out


def _simplex(x, lower):
    m = len(x)
    S = np.tile(x, (m + 1, 1))
    for i in range(m):
        step = 0.02 * max(abs(x[i]), 0.05)
        S[i + 1, i] = x[i] + step
    return S
