"""Bounded minimisation of the profiled criterion over theta (lme4-quality optimum).

L-BFGS-B from lme4's start (theta = identity factors) with the criterion's analytic gradient
(``fg``, from :mod:`vcomp.mixed.criterion`; finite differences only when a kernel has none),
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
    ngev: int = 0


_FTOL = [1e-14]
#: projected-gradient tolerance with the analytic gradient (exact, so it can be tight)
_GTOL = 1e-9


def _gradient_tolerance(f: float) -> float:
    """Projected-gradient size at which an iterate is accepted: the rounding noise of the gradient of a
    criterion of size |f| (it grows with n), never looser than 2e-7 |f| nor tighter than the L-BFGS-B gtol."""
    a = max(1.0, abs(f))
    return min(2e-7 * a, max(_GTOL, 1e-12 * a * a))


def _lbfgsb(f, x0, bounds, maxiter=2000, jac="3-point", maxls=20):
    callback = None
    if getattr(f, "fg", None) is not None:   # analytic gradient
        fw, f, jac = f, f.fg, True
        lower = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
        upper = np.array([np.inf if b[1] is None else b[1] for b in bounds])

        def callback(intermediate_result):
            # stop at the first iterate whose exact projected gradient is negligible relative to the
            # criterion: beyond it L-BFGS-B only chases rounding noise (large n: |f| ~ 1e5-1e6)
            x = np.asarray(intermediate_result.x, dtype=float)
            v, g = fw.fg(x)
            at = ((x <= lower + 1e-12) & (g > 0)) | ((x >= upper - 1e-12) & (g < 0))
            if np.max(np.abs(np.where(at, 0.0, g)), initial=0.0) < _gradient_tolerance(v):
                raise StopIteration
    r = minimize(f, x0, method="L-BFGS-B", jac=jac, bounds=bounds, callback=callback,
                 options={"maxiter": maxiter, "ftol": _FTOL[0], "gtol": _GTOL if jac is True else 1e-6,
                          "maxls": maxls})
    if callback is not None and not r.success and "callback" in str(r.message).lower():
        r.success = True
    return r


class _Objective:
    """The criterion with a cache of values (and gradients) keyed by θ; counts evaluations."""

    def __init__(self, f, fg=None) -> None:
        self.f, self._fg = f, fg
        self.values: dict = {}
        self.grads: dict = {}
        self.fg = self._value_grad if fg is not None else None

    @staticmethod
    def _key(x) -> tuple:
        return tuple(np.round(np.asarray(x, dtype=float), 14))

    def __call__(self, x) -> float:
        key = self._key(x)
        if key not in self.values:
            v = self.f(np.asarray(x, dtype=float))
            self.values[key] = v if np.isfinite(v) else 1e300
        return self.values[key]

    def _value_grad(self, x):
        key = self._key(x)
        if key not in self.grads:
            self.values[key], self.grads[key] = _finite_value_grad(self._fg, np.asarray(x, dtype=float))
        return self.values[key], self.grads[key]


def _finite_value_grad(fg, x: np.ndarray) -> tuple[float, np.ndarray]:
    """``fg(x)``, with a failed evaluation (non-finite value or gradient) read as 1e300 and a zero gradient."""
    v, g = fg(x)
    if np.isfinite(v) and np.isfinite(g).all():
        return v, np.asarray(g, dtype=float)
    return 1e300, np.zeros(len(x))


def _projected_gradient(fw: "_Objective", x: np.ndarray, lower: np.ndarray) -> float:
    """Largest entry of the analytic gradient projected on the bounds (0 where a bound is active)."""
    g = fw.fg(x)[1]
    at = np.isfinite(lower) & (x <= lower + 1e-12) & (g > 0)
    return float(np.max(np.abs(np.where(at, 0.0, g)))) if len(g) else 0.0


def _scaled_start(fw: "_Objective", theta0: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """lme4's start scaled by the best factor on a coarse grid (criterion values only, no gradients).

    From the identity factors L-BFGS-B's first steps are unit-length along a gradient of the
    order of n and overshoot to the bounds; a few cheap values along the ray ``c * theta0`` put
    the quasi-Newton run near the right scale (evaluations per fit: oats 10 -> 8, 1e6-row slopes
    29 -> ~15)."""
    if not np.any(theta0 != 0):
        return theta0
    best_c, best_f = 1.0, fw(theta0)
    for c in (0.5, 0.25, 0.125, 0.0625):
        v = fw(theta0 * c)
        if not v < best_f:
            break
        best_c, best_f = c, v
    if best_c == 1.0:
        for c in (2.0, 4.0):
            v = fw(theta0 * c)
            if not v < best_f:
                break
            best_c, best_f = c, v
    return theta0 * best_c


def optimize_theta(f, theta0: np.ndarray, lower: np.ndarray, polish_nm: bool = False, fg=None,
                   scale_start: bool | None = None, quick: bool | None = None) -> OptResult:
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
    fg : callable, optional
        ``fg(theta) -> (value, gradient)``: the criterion with its analytic gradient
        (without it, L-BFGS-B uses finite differences).
    scale_start : bool, optional
        Start from the best multiple of ``theta0`` on a coarse grid (with ``fg`` only); default:
        what ``fg.scale_start`` says (:func:`~vcomp.mixed.criterion.objective` sets it for the
        per-level kernel, where it pays).  With ``fg.quick`` (small dense systems) and at most
        ``QUICK_MAX_THETA`` parameters, a plain BFGS run (:func:`refine_theta`) is tried first; an
        interior optimum it reaches is final.
    quick : bool, optional
        Whether to try that BFGS run (default: ``fg.quick``); a refit whose own quasi-Newton run
        was declined skips it.
    """
    m = len(theta0)
    if m == 0:
        return OptResult(np.zeros(0), float(f(np.zeros(0))), True, 1, "no variance parameters")
    bounds = [(None if not np.isfinite(lo) else lo, None) for lo in lower]
    fw = _Objective(f, fg)

    theta0 = np.asarray(theta0, dtype=float)
    if scale_start is None:
        scale_start = bool(getattr(fg, "scale_start", False))
    if fw.fg is not None and scale_start:
        theta0 = _scaled_start(fw, theta0, lower)
    if quick is None:
        quick = bool(getattr(fg, "quick", False))
    if fw.fg is not None and m <= QUICK_MAX_THETA and quick:
        # few parameters: BFGS with exact gradients and no scipy overhead; an optimum in the interior
        # is final (no boundary candidate applies there), anything else takes the full path below
        quick = refine_theta(fw, fw.fg, theta0, lower, _start_hessian(fw, theta0))
        if quick is not None:
            return OptResult(quick.theta, quick.fun, True, len(fw.values), quick.message, len(fw.grads))
    # stop when a step changes the criterion by < 1e-9 in absolute terms (lme4 compares to 1e-4)
    f0 = fw.fg(theta0)[0] if fw.fg is not None else fw(theta0)
    # (relative, floored well above the rounding noise of a large criterion: 1e-13 of 5e5 is 5e-8)
    _FTOL[0] = min(1e-12, max(1e-13, 1e-9 / max(1.0, abs(f0)))) if np.isfinite(f0) else 1e-14
    r = _lbfgsb(fw, theta0, bounds, jac="2-point")
    best_x, best_f = np.array(r.x), float(r.fun)
    ok = bool(r.success)
    msg = str(r.message)
    if fw.fg is not None and not ok and _projected_gradient(fw, best_x, lower) < _gradient_tolerance(best_f):
        ok, msg = True, "converged (projected gradient %.1e)" % _projected_gradient(fw, best_x, lower)
    # polishing restart (fresh curvature memory); not needed when the exact projected gradient is ~0
    if not (ok and fw.fg is not None and _projected_gradient(fw, best_x, lower) < 1e-6 * max(1.0, abs(best_f))):
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
    return OptResult(best_x, float(fw(best_x)), ok, len(fw.values), msg, len(fw.grads))


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
    if getattr(f, "fg", None) is not None:
        return _newton_polish_exact(f, x, lower, fx, iters, max_free)
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


def _newton_polish_exact(fw: "_Objective", x: np.ndarray, lower: np.ndarray, fx: float, iters: int,
                         max_free: int) -> tuple[np.ndarray, float]:
    """:func:`newton_polish` with the analytic gradient: nothing to do once the projected gradient is
    within its rounding noise; otherwise Newton steps with the Hessian from differences of exact
    gradients (one gradient per free coordinate)."""
    for _ in range(iters):
        v, g = fw.fg(x)
        free = [i for i in range(len(x)) if not (np.isfinite(lower[i]) and x[i] <= lower[i] + 1e-8 and g[i] >= 0)]
        k = len(free)
        if k == 0 or k > max_free or np.max(np.abs(g[free])) < _gradient_tolerance(v):
            break
        H = gradient_hessian(fw.fg, x, free, g)
        try:
            np.linalg.cholesky(H)
            step = np.linalg.solve(H, g[free])
        except np.linalg.LinAlgError:
            break
        xn = x.copy()
        xn[free] = x[free] - step
        xn = np.maximum(xn, np.where(np.isfinite(lower), lower, -np.inf))
        fn = fw.fg(xn)[0]
        if not fn < fx + 1e-12 * max(1.0, abs(fx)):
            break
        x, fx = xn, fn
        if np.max(np.abs(step) / np.maximum(1.0, np.abs(x[free]))) < 1e-9:
            break
    return x, fx


def gradient_hessian(fg, x: np.ndarray, free, g: np.ndarray | None = None) -> np.ndarray:
    """Hessian of the criterion in the ``free`` coordinates from forward differences of exact gradients."""
    x = np.asarray(x, dtype=float)
    free = list(free)
    if g is None:
        g = fg(x)[1]
    h = 1e-6 * np.maximum(1.0, np.abs(x[free]))
    H = np.empty((len(free), len(free)))
    for a, i in enumerate(free):
        xe = x.copy()
        xe[i] += h[a]
        H[:, a] = (np.asarray(fg(xe)[1])[free] - g[free]) / h[a]
    return (H + H.T) / 2.0


#: a warm-started refit accepts its optimum only when every diagonal θ stays at least this far from 0
_REFINE_INTERIOR = 1e-2
#: a refit stops when its quasi-Newton step changes no θ entry by more than this (relative to max(1, |θ|))
REFINE_STEP = 1e-7
#: fits with at most this many θ entries try the interior quasi-Newton path first
QUICK_MAX_THETA = 6


def _start_hessian(fw: "_Objective", x: np.ndarray) -> np.ndarray:
    """Initial BFGS matrix at the start: the difference Hessian when positive definite, else a scaled identity."""
    g = fw.fg(x)[1]
    H = gradient_hessian(fw.fg, x, range(len(x)), g)
    try:
        np.linalg.cholesky(H)
        return H
    except np.linalg.LinAlgError:
        return np.eye(len(x)) * max(1.0, float(np.max(np.abs(np.diag(H)))))


def refine_theta(f, fg, theta0: np.ndarray, lower: np.ndarray, H0: np.ndarray, max_iter: int = 40,
                 trail: list | None = None) -> OptResult | None:
    """Quasi-Newton (BFGS) from a warm start and a known Hessian: the optimiser of a refit.

    A refit's optimum is close to its parent fit's, and so is its Hessian: Newton steps with the
    parent's Hessian, updated by BFGS, reach the optimum in a handful of evaluations where a cold
    L-BFGS-B run spends a dozen.  Returns None (the caller then runs :func:`optimize_theta`) unless
    the iterate converges (projected gradient within the rounding noise of the criterion, or a
    Newton step below ``REFINE_STEP``) in the interior, where :func:`optimize_theta` would try no
    boundary candidate either.  ``f`` may be an :class:`_Objective` (its cache is then shared);
    otherwise ``fg`` is called directly.  ``trail`` (a list, optional) receives every accepted
    iterate: where a declined run got to.
    """
    x = np.array(theta0, dtype=float)
    diag = np.isfinite(lower)
    if len(x) == 0 or np.any(x[diag] < _REFINE_INTERIOR):
        return None
    try:
        B = np.linalg.inv(H0)           # the inverse-Hessian form: a step is one small product
        np.linalg.cholesky(H0)
    except np.linalg.LinAlgError:
        return None
    shared = isinstance(f, _Objective)
    evals = 0

    def value_grad(z):
        nonlocal evals
        evals += 1
        return f.fg(z) if shared else _finite_value_grad(fg, z)

    def result(msg):
        n = len(f.values) if shared else evals
        return OptResult(x, float(v), True, n, "converged (warm-started quasi-Newton%s)" % msg,
                         len(f.grads) if shared else evals)

    v, g = value_grad(x)
    if not np.isfinite(v) or v >= 1e300:
        return None
    eye = np.eye(len(x))
    for _ in range(max_iter):
        if np.abs(g).max() < _gradient_tolerance(v):
            return result("")
        step = B @ g
        if (np.abs(step) / np.maximum(1.0, np.abs(x))).max() < REFINE_STEP:   # the Newton step is negligible
            return result(", step")
        t, accepted, gs = 1.0, False, float(g @ step)
        for _ in range(8):
            xn = x - t * step
            if (xn[diag] < _REFINE_INTERIOR).any():
                t *= 0.5
                continue
            vn, gn = value_grad(xn)
            if vn <= v - 1e-4 * t * gs or (vn <= v + 1e-12 * max(1.0, abs(v))
                                           and np.abs(gn).max() < np.abs(g).max()):
                accepted = True
                break
            t *= 0.5
        if not accepted:
            return None
        if trail is not None:
            trail.append(xn)
        sv, yv = xn - x, gn - g
        sy = float(sv @ yv)
        if sy > 1e-12 * float(np.sqrt((sv @ sv) * (yv @ yv))):
            E = eye - yv[:, None] * (sv[None, :] / sy)       # I - y s'/s'y
            B = E.T @ B @ E + sv[:, None] * (sv[None, :] / sy)
        x, v, g = xn, vn, gn
    return None


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
