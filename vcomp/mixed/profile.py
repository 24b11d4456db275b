"""Profile-likelihood and Wald confidence intervals of a mixed model (lme4's ``confint``).

Variance parameters are profiled on lme4's ``sdcor`` scale (the standard deviation of each
random coefficient, the correlations within a term, the residual SD) with the fit's own
criterion: the REML criterion for a REML fit, the ML deviance for an ML fit.  Fixed
coefficients are profiled on the ML deviance, as lme4's ``confint(method = "profile")`` does.
Each bound is the exact root of ``d(v) - d_min = z^2`` (``z`` the normal quantile of the
level), ``d(v)`` being the criterion minimised over every other parameter with the profiled
one held at ``v``; the criterion is evaluated from the cross-products stored on the model
(:func:`vcomp.mixed.fitparts.criterion_pieces`), never from the data.  A parameter whose
profile does not reach the cut-off before its boundary gets the boundary (0 for a standard
deviation, -1 / 1 for a correlation), as lme4 does.

Cost: a few dozen criterion evaluations per parameter (both bounds; :func:`profile_evaluations`
counts them).  The other parameters are re-minimised by quasi-Newton steps with the analytic
gradient in theta (:func:`~vcomp.mixed.fitparts.criterion_gradient` with sigma held;
:func:`~vcomp.mixed.fitparts.fixed_coef_criterion` for a held coefficient), started from the
Hessian at the optimum and from the trace of the other parameters predicted along the path; the
root solves ``r(u) = z`` for ``r = sqrt(d - d_min)``, nearly linear in ``u`` (log SD, atanh
correlation, the coefficient itself), by Newton / cubic Hermite steps with the exact derivative
of ``d`` (envelope theorem) from the Wald step, safeguarded by a bracket.  A fit on the boundary
(a standard deviation at zero or a correlation at +-1; for the fixed rows, the ML fit) can have
several basins along a profile: it takes the derivative-free profile of
:mod:`vcomp.mixed.profile_robust` (a few hundred evaluations per parameter).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .._errors import VcompError, check_level
from . import profile_robust as robust
from .profile_robust import RTOL_R, XTOL
from .fitparts import (blas_single_thread, criterion_gradient, criterion_pieces, fixed_coef_criterion, ml_optimum,
                       profiled_deviance, re_layout, theta_bounds)

__all__ = ["SdCor", "EvalCounter", "confint", "profile_evaluations", "vc_row_names"]

#: a point of a profile is solved when the quadratic model predicts a further decrease of the
#: criterion below this (the value is then the model's minimum, within a fraction of it: far
#: below the 4 z RTOL_R ~ 8e-6 that moves r by RTOL_R)
_INNER_TOL = 1e-6

def _chol_psd(R: np.ndarray) -> np.ndarray | None:
    """Cholesky factor of a positive semi-definite correlation matrix (zero pivots allowed), or None."""
    k = R.shape[0]
    L = np.zeros_like(R)
    for j in range(k):
        d = R[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-10:
            return None
        ljj = np.sqrt(max(d, 0.0))
        L[j, j] = ljj
        for i in range(j + 1, k):
            v = R[i, j] - L[i, :j] @ L[j, :j]
            if ljj > 1e-12:
                L[i, j] = v / ljj
            elif abs(v) > 1e-8:
                return None
    return L


class SdCor:
    """lme4's ``sdcor`` parametrisation of ``(theta, sigma)``.

    The vector ``phi`` holds, term by term, the standard deviations of the term's
    coefficients and then the correlations ``(j, l)``, ``j < l`` (the order of ``varcorr``),
    and finally the residual SD.

    Parameters
    ----------
    layout : list of TermLayout
    """

    def __init__(self, layout) -> None:
        self.layout = layout
        self.kind: list[str] = []
        self.slices = []
        o = 0
        for t in layout:
            k = t.k
            self.kind += ["sd"] * k + ["cor"] * (k * (k - 1) // 2)
            self.slices.append(slice(o, o + k + k * (k - 1) // 2))
            o += k + k * (k - 1) // 2
        self.kind.append("sigma")
        self.ntheta = sum(t.k * (t.k + 1) // 2 for t in layout)

    def __len__(self) -> int:
        return len(self.kind)

    def to_theta(self, phi: np.ndarray) -> tuple[np.ndarray, float] | None:
        """``(theta, sigma)`` for ``phi``, or None where ``phi`` is not a covariance (|cor| > 1, sd < 0)."""
        sigma = float(phi[-1])
        if not sigma > 0:
            return None
        theta = np.empty(self.ntheta)
        for t, sl in zip(self.layout, self.slices):
            k = t.k
            v = phi[sl]
            sd = v[:k]
            if np.any(sd < 0):
                return None
            if k == 1:
                theta[t.theta_slice] = sd / sigma
                continue
            R = np.eye(k)
            r, c = np.triu_indices(k, 1)
            R[r, c] = R[c, r] = v[k:]
            if np.any(np.abs(v[k:]) > 1):
                return None
            Lr = _chol_psd(R)
            if Lr is None:
                return None
            L = sd[:, None] * Lr / sigma
            theta[t.theta_slice] = L.T[np.triu_indices(k)]
        return theta, sigma

    def from_fit(self, varcorr: pd.DataFrame) -> np.ndarray:
        """``phi`` of a fit from its ``varcorr`` (undefined correlations of a zero SD as 0; a correlation
        rounded past +-1 back to it)."""
        phi = np.nan_to_num(varcorr["sdcor"].to_numpy(dtype=float), nan=0.0)
        cor = np.array(self.kind) == "cor"
        phi[cor] = np.clip(phi[cor], -1.0, 1.0)
        return phi


def vc_row_names(model) -> list[str]:
    """The confint row names of the variance parameters: ``"<grp>:<var1>"``,
    ``"<grp>:<var1>:<var2>"``, ``"Residual"`` (one per row of ``varcorr``).

    The parts of ``(x||g)`` are named by their grouping factor ``g`` (lme4's ``g.1`` only if a
    name would repeat)."""
    vc = model.varcorr
    out = []
    bygrp = {t.name: t.group for t in re_layout(model)}
    for _, r in vc.iterrows():
        if r["grp"] == "Residual":
            out.append("Residual")
            continue
        g = bygrp.get(r["grp"], r["grp"])
        parts = [g, r["var1"]] + ([r["var2"]] if isinstance(r["var2"], str) else [])
        out.append(":".join(parts))
    if len(set(out)) < len(out):  # e.g. (1|g) + (1|g): keep lme4's term names
        out = [("Residual" if r["grp"] == "Residual" else
                ":".join([r["grp"], r["var1"]] + ([r["var2"]] if isinstance(r["var2"], str) else [])))
               for _, r in vc.iterrows()]
    return out


class EvalCounter:
    """Criterion evaluations of a profile: every kernel call (a value, or a value with its gradient).

    Attributes
    ----------
    calls : int
        Kernel calls so far.
    """

    def __init__(self) -> None:
        self.calls = 0


def _solve_pd(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``H^-1 g`` with ``H`` made positive definite (eigenvalues floored) where it is not."""
    try:
        c = np.linalg.cholesky(H)
        return np.linalg.solve(c.T, np.linalg.solve(c, g))
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(H)
        w = np.maximum(np.abs(w), 1e-8 * max(np.max(np.abs(w), initial=0.0), 1e-300))
        return V @ ((V.T @ g) / w)


def _newton(vg, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, H: np.ndarray, tol: float, fg=None):
    """Bounded quasi-Newton minimum of ``vg(x) -> (value, gradient)`` from ``x``.

    Steps ``-H^-1 g`` on the coordinates not held at a bound (active set: at the bound with the
    gradient pointing out; a step that reaches a bound stops there), Armijo backtracking and
    BFGS updates of ``H`` on the free coordinates, until the decrease the quadratic model still
    predicts is below ``tol``; the minimum is then the model's (the last value less that
    decrease, at the model's minimiser), within a fraction of ``tol``.  ``fg``: ``(value,
    gradient)`` already known at ``x``.  Returns ``(value, x, gradient at the last evaluated
    point, H)``.
    """
    x = np.clip(np.asarray(x, dtype=float), lo, hi)
    f, g = vg(x) if fg is None else fg
    H = np.array(H, dtype=float)
    for _ in range(60):
        if not np.isfinite(f):
            break
        # held: at a bound with the gradient pointing out (or zero: a stationary SD at zero is left to
        # the caller), or with the step pointing out
        free = ~(((x <= lo) & (g >= 0)) | ((x >= hi) & (g <= 0)))
        for _ in range(len(x)):
            if not free.any():
                break
            step = np.zeros_like(x)
            step[free] = -_solve_pd(H[np.ix_(free, free)], g[free])
            out = ((x <= lo) & (step < 0)) | ((x >= hi) & (step > 0))
            if not out.any():
                break
            free &= ~out
        if not free.any():
            break
        pred = -0.5 * g @ step
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(step > 0, (hi - x) / step, np.where(step < 0, (lo - x) / step, np.inf))
        t_max = float(np.min(room, initial=np.inf))
        t = min(1.0, t_max)
        if pred <= tol:  # the quadratic model's minimum (on the box): its error is a fraction of pred
            x1 = np.clip(x + t * step, lo, hi)
            return f - pred * t * (2.0 - t), x1, g, H
        for _ in range(40):
            x1 = np.clip(x + t * step, lo, hi)
            if t == t_max:  # land exactly on the bound that stops the step
                hit = room <= t_max
                x1[hit] = np.where(step[hit] > 0, hi[hit], lo[hit])
            f1, g1 = vg(x1)
            if f1 <= f + 1e-4 * (g @ (x1 - x)):
                break
            t *= 0.25 if not np.isfinite(f1) else 0.5
        else:
            break
        dx = np.where(free, x1 - x, 0.0)
        dg = np.where(free, g1 - g, 0.0)
        if dx @ dg > 1e-12 * np.linalg.norm(dx) * np.linalg.norm(dg):
            Hd = H @ dx
            H += np.outer(dg, dg) / (dx @ dg) - np.outer(Hd, Hd) / (dx @ Hd)
        x, f, g = x1, f1, g1
    return f, x, g, H


def _hessian(vg, x: np.ndarray, h: np.ndarray, hi: np.ndarray, g0: np.ndarray) -> np.ndarray:
    """Forward differences of the gradient (backward where ``x + h`` passes ``hi``), symmetrised."""
    n = len(x)
    H = np.empty((n, n))
    for j in range(n):
        hj = h[j] if x[j] + h[j] <= hi[j] else -h[j]
        e = np.zeros(n)
        e[j] = hj
        H[:, j] = (vg(x + e)[1] - g0) / hj
    H = 0.5 * (H + H.T)
    return H if np.all(np.isfinite(H)) else np.diag(np.where(np.isfinite(np.diag(H)), np.abs(np.diag(H)), 1.0))


class _Path:
    """One parameter's profile: ``d(v) = min_x g(v, x)`` from warm starts on the path.

    ``vg(v, x) -> (value, gradient in x, derivative in v)`` (the derivative may be a function
    giving it: it is asked only at the solution); ``value(v, x)``, if given, the value alone
    (a cheaper evaluation).  Each point starts from the trace
    of the other parameters predicted by a quadratic in ``v``: through the optimum and the two
    nearest solved points on the same side; through the optimum with the quadratic model's
    tangent there and one solved point; for the first point of a side, the tangent (and, with
    ``mirror``, the curvature of the other side's trace: a fixed coefficient's trace is nearly
    even).  It then re-optimises with :func:`_newton`, the Hessian approximation carried along
    the path.  A standard deviation at zero is a stationary point (the criterion depends on
    its square): a probe off zero checks that it is the minimum (:meth:`_off_zero`).
    """

    def __init__(self, vg, v_hat, x_hat, lo, hi, H, tangent, probe, d_min, tol, mirror=False, value=None,
                 reach=None) -> None:
        self.vg, self.value, self.lo, self.hi = vg, value, lo, hi
        self.reach = probe if reach is None else reach
        self.alt: dict = {}
        self.solved = [(v_hat, np.asarray(x_hat, dtype=float), False)]
        self.H = {-1: H, 1: H}
        self.unit = np.where(probe > 0, probe, 1.0)
        self.tangent, self.probe, self.d_min, self.tol, self.mirror = tangent, probe, d_min, tol, mirror

    def _predict(self, v: float) -> np.ndarray:
        vh, xh, _ = self.solved[0]
        dv = v - vh
        same = sorted(((vi, xi) for vi, xi, _ in self.solved[1:] if (vi - vh) * dv > 0), key=lambda s: abs(s[0] - v))
        if len(same) >= 2:
            (v1, x1), (v2, x2) = same[:2]
            if v1 != v2:
                return (xh * (v - v1) * (v - v2) / ((vh - v1) * (vh - v2))
                        + x1 * (v - vh) * (v - v2) / ((v1 - vh) * (v1 - v2))
                        + x2 * (v - vh) * (v - v1) / ((v2 - vh) * (v2 - v1)))
        other = [(vi, xi) for vi, xi, _ in self.solved[1:] if (vi - vh) * dv < 0] if self.mirror else []
        if same or other:
            v1, x1 = same[0] if same else max(other, key=lambda s: abs(s[0] - vh))
            d1 = v1 - vh
            c = (x1 - xh - self.tangent * d1) / d1 ** 2
            return xh + self.tangent * dv + c * dv ** 2
        return xh + self.tangent * dv

    def _off_zero(self, fx, v, x, d, at0, H, hint):
        """The SDs ``at0`` (at or near zero) moved off zero, if that lowers the criterion.

        Zero can be a local minimum with a lower one further out (the other SDs taking other values),
        or a saddle whose descent starts close to zero: :func:`_newton` from the last minimum off
        zero on this side of the path (the first time: from the SDs' own scale ``reach``, or half the
        largest other SD; not again on a side where it went back to zero); if that is not lower,
        when a probe at 1% of
        that scale shows the criterion falling off zero, from the predicted trace ``hint`` if it is
        off zero and below the probe, or from ``reach`` / 8, / 64, ... (the first point below the
        probe).  None when zero stays the minimum.
        """
        zb = self.probe > 0
        x = np.where(at0, 0.0, x)
        big = max(0.5 * np.max(x[zb] / self.probe[zb]), 0.3)
        E = np.where(at0, np.maximum(self.reach, big * self.probe), 0.0)
        # the basin off zero: followed along the path from its last minimum (first: from x + E)
        side = 1 if v >= self.solved[0][0] else -1
        prev = self.alt.get(side)
        if prev is not False:  # False: on this side the search from there went back to zero
            xs = prev if prev is not None and np.all(prev[at0] > 0) else x + E
            got = _newton(fx, xs, self.lo, self.hi, H, self.tol)
            off = np.isfinite(got[0]) and np.all(got[1][at0] > 1e-2 * self.probe[at0])
            self.alt[side] = got[1] if off else False
            if got[0] < d - 1e-10:
                return got
        e = np.where(at0, self.probe, 0.0) * 0.02 * big
        if self.value is not None:
            fe, at_e = self.value(v, x + e), None
            if not fe < d:  # the criterion does not fall off zero
                return None
        else:
            at_e = fx(x + e)
            fe = at_e[0]
            if not (fe < d or at_e[1] @ e < 0):
                return None
        start = None
        off = np.where(at0, hint - x, 0.0)
        if np.all(off[at0] > e[at0]):
            fh = fx(x + off)
            if fh[0] < fe:
                start = (x + off, fh)
        for _ in range(6):
            E = np.maximum(E / 8.0, e)
            if start is not None or not np.any(E > e):
                break
            fE = (self.value(v, x + E),) if self.value is not None else fx(x + E)
            if fE[0] < fe:
                start = (x + E, fx(x + E) if self.value is not None else fE)
        if start is None:
            start = (x + e, at_e if at_e is not None else fx(x + e))
        got = _newton(fx, start[0], self.lo, self.hi, H, self.tol, start[1])
        return got if got[0] < d - 1e-10 else None

    def __call__(self, v: float) -> tuple[float, float]:
        """``(r, dr/dv)`` at ``v``: ``r = sqrt(d(v) - d_min)``."""
        side = 1 if v >= self.solved[0][0] else -1
        last = {}

        def fx(x):
            f, gx, gv = self.vg(v, x)
            last["gv"] = gv
            return f, gx

        x0 = np.clip(self._predict(v), self.lo, self.hi)
        hint = x0.copy()
        # an SD predicted near zero starts at zero (the search off zero below takes it out if it
        # should be out), not at a point of nearly zero gradient where quasi-Newton steps crawl
        x0[(self.probe > 0) & (x0 <= 1e-2 * self.probe)] = 0.0
        f0, g0 = fx(x0)
        if not np.isfinite(f0):  # the predicted start left the admissible region
            x0 = min(self.solved, key=lambda s: abs(s[0] - v))[1]
            f0, g0 = fx(x0)
        d, x, g, H = _newton(fx, x0, self.lo, self.hi, self.H[side], self.tol, (f0, g0))
        jumped = np.max(np.abs(x - x0) / np.maximum(np.maximum(np.abs(x), np.abs(x0)), self.unit), initial=0.0) > 0.5
        # between a point whose minimum jumped to another basin and the other solved points the
        # profile follows whichever basin is lower: start from both sides
        beyond = sorted((s for s in self.solved if s[2] and (s[0] - v) * side > 0), key=lambda s: abs(s[0] - v))
        gv = last["gv"]
        for k, (vb, xb, _) in enumerate(beyond[:1]):
            got = _newton(fx, xb, self.lo, self.hi, self.H[side], self.tol)
            if got[0] < d - 1e-10:
                d, x, g, H = got
                gv = last["gv"]
                jumped = True
            else:  # that basin has lost to this side's: no more tries from it
                self.solved[self.solved.index(beyond[k])] = (vb, xb, False)
        last["gv"] = gv
        at0 = (self.probe > 0) & (x <= 1e-2 * self.probe)
        if at0.any():
            gv = last["gv"]
            got = self._off_zero(fx, v, x, d, at0, H, hint)
            if got is not None:
                d, x, g, H = got
                gv = last["gv"]
            last["gv"] = gv
        if np.isfinite(d):
            self.H[side] = H
        self.solved.append((v, x, jumped))
        r = float(np.sqrt(max(d - self.d_min, 0.0)))
        gv = last["gv"]() if callable(last["gv"]) else last["gv"]
        return r, (gv / (2.0 * r) if r > 0 else np.inf)


def _hermite(pa: tuple, pb: tuple, z: float) -> float:
    """``u`` at ``r = z`` from the cubic Hermite interpolant of ``u(r)`` through two points
    ``(r, u, du/dr)``."""
    (ra, ua, sa), (rb, ub, sb) = pa, pb
    h = rb - ra
    t = (z - ra) / h
    return float((2 * t ** 3 - 3 * t ** 2 + 1) * ua + (t ** 3 - 2 * t ** 2 + t) * h * sa
                 + (3 * t ** 2 - 2 * t ** 3) * ub + (t ** 3 - t ** 2) * h * sb)


def _root(prof, u_hat: float, direction: int, du1: float, z: float, edge=None, far: float = np.inf) -> float:
    """The root of ``r(u) = z`` on one side of ``u_hat``; ``prof(u) -> (r, dr/du)``.

    ``r`` is nearly linear in ``u`` on the profile's scale.  From the Wald step ``du1`` (``r``
    rises from 0 at ``u_hat`` with slope ``z / du1``), each step inverts the cubic Hermite
    interpolant of ``u(r)`` through the two points nearest the cut-off (values and exact
    derivatives, so two or three points reach ``|r - z| <= RTOL_R``), at most four times the
    distance covered so far; once the root is bracketed a step leaving the bracket is replaced
    by false position.  ``edge`` (the parameter's boundary on this side, a standard deviation of
    0 or a correlation of +-1) returns ``(r_edge, root)``: ``root(a, fa)`` finds the root
    between the last point ``a`` below the cut-off and the edge.  It is asked when the steps
    would go more than ``far`` from ``u_hat``; a boundary inside the interval gives
    ``direction * inf``, and so does no root without an edge.
    """
    br = _Bracket(u_hat, -z)
    pts = [(0.0, u_hat, direction * du1 / z)]
    u = u_hat + direction * du1
    for _ in range(100):
        got = br.evaluate(prof, u, z)
        if got is None:
            return float(u)
        r, dr, fu = got
        if np.isfinite(dr) and dr * direction > 0:
            pts.append((r, u, 1.0 / dr))
            pa, pb = sorted(pts, key=lambda q: abs(q[0] - z))[:2]
            un = _hermite(pa, pb, z) if pa[0] != pb[0] else u - fu / dr
        else:
            un = np.nan
        if br.b is not None:
            un = br.inside(un)
            if br.converged(un, u, XTOL * du1):
                return float(un)
        else:
            dist = abs(u - u_hat)
            flat = not np.isfinite(un)   # r has stopped rising: only the boundary can hold the bound
            if flat or direction * (un - u) > 4.0 * dist or direction * (un - u) <= 0:
                un = u + direction * 4.0 * dist
            if abs(un - u_hat) > far or (flat and edge is not None):
                if edge is None:
                    return direction * np.inf
                r_edge, root = edge()
                if r_edge <= z:
                    return direction * np.inf
                return root(br.a, br.fa)
        u = un
    return float(u)  # pragma: no cover - the steps converge long before


class _Bracket:
    """The two ends of a root search of ``f = r - z`` (``a``: ``f < 0``; ``b``: ``f >= 0``, once found),
    with the Illinois rule (an end kept twice in a row has its value halved) and bisection when
    two steps have not halved ``|f|`` (a kinked profile)."""

    def __init__(self, a: float, fa: float, b: float | None = None, fb: float | None = None) -> None:
        self.a, self.fa, self.b, self.fb = a, fa, b, fb
        self.last = 0
        self.resid: list = []

    def evaluate(self, prof, u: float, z: float):
        """``prof`` at ``u``: None when ``|r - z| <= RTOL_R`` (``u`` is the root), else ``(r, dr, r - z)``
        with the bracket updated."""
        r, dr = prof(u)
        if abs(r - z) <= RTOL_R:
            return None
        self.add(u, r - z)
        return r, dr, r - z

    def add(self, u: float, fu: float) -> None:
        self.resid.append(abs(fu))
        if fu < 0:
            self.a, self.fa = u, fu
            if self.last == -1 and self.b is not None:
                self.fb /= 2.0
            self.last = -1
        else:
            self.b, self.fb = u, fu
            if self.last == 1:
                self.fa /= 2.0
            self.last = 1

    def inside(self, un: float) -> float:
        """``un`` if strictly inside the bracket, else false position; bisection when two steps have not
        halved ``|r - z|`` (a kinked profile)."""
        a, b = self.a, self.b
        if not (min(a, b) < un < max(a, b)):
            un = b - self.fb * (b - a) / (self.fb - self.fa)
        h = self.resid
        if len(h) >= 3 and h[-1] > 0.5 * h[-3]:
            un = 0.5 * (a + b)
        return un

    def converged(self, un: float, u: float, xtol: float) -> bool:
        return abs(un - u) <= xtol or abs(self.b - self.a) <= xtol


def _bracketed(prof, z: float, a: float, fa: float, b: float, fb: float, xtol: float) -> float:
    """Root of ``prof(v)[0] = z`` (``fa < 0 <= fb`` the values of ``r - z`` at ``a``, ``b``): Newton inside
    the bracket, false position where Newton leaves it."""
    br = _Bracket(a, fa, b, fb)
    u = b - fb * (b - a) / (fb - fa)
    for _ in range(100):
        got = br.evaluate(prof, u, z)
        if got is None:
            return float(u)
        r, dr, fu = got
        un = br.inside(u - fu / dr if np.isfinite(dr) and dr != 0 else np.nan)
        if br.converged(un, u, xtol):
            return float(un)
        u = un
    return float(u)  # pragma: no cover


class _VcCriterion:
    """The fit's criterion (REML or ML deviance, sigma held) and its gradient on the sdcor scale."""

    def __init__(self, model, counter: EvalCounter) -> None:
        self.model, self.counter = model, counter
        self.sc = SdCor(re_layout(model))
        self.n, self.reml = model.nobs, model.reml
        self.nu = self.n - (model.fixef.size if self.reml else 0)

    def __call__(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        N = len(phi)
        tr = self.sc.to_theta(phi)
        if tr is None:
            return np.inf, np.zeros(N)
        theta, sigma = tr
        m = self.model
        got = criterion_gradient(m, theta, self.reml, sigma=sigma)
        if got is None:  # no analytic gradient (sparse kernel): forward differences on the sdcor scale
            return self._fd(phi)
        self.counter.calls += 2
        ldL2, M, gth = got
        d = profiled_deviance(ldL2, M, self.n, self.reml, sigma=sigma)
        if not np.isfinite(d):
            return np.inf, np.zeros(N)
        pw = _pwrss(M)
        J = self._jacobian(phi, theta, sigma)
        g = J.T @ gth
        g[-1] += 2.0 * self.nu / sigma - 2.0 * pw / sigma ** 3
        return d, g

    def value(self, phi: np.ndarray) -> float:
        tr = self.sc.to_theta(phi)
        if tr is None:
            return np.inf
        self.counter.calls += 1
        return profiled_deviance(*criterion_pieces(self.model, tr[0]), self.n, self.reml, sigma=tr[1])

    def _fd(self, phi):
        d = self.value(phi)
        g = np.zeros(len(phi))
        for j in range(len(phi)):
            h = 1e-7 * max(abs(phi[j]), 1e-3 * phi[-1])
            h = -h if self.sc.kind[j] == "cor" and phi[j] + h > 1 else h
            e = np.zeros(len(phi))
            e[j] = h
            g[j] = (self.value(phi + e) - d) / h
        return d, g

    def _jacobian(self, phi, theta, sigma) -> np.ndarray:
        """d theta / d phi: exact for the SDs (theta is linear in them), analytic for sigma, central
        differences (one-sided at +-1) for the correlations."""
        N = len(phi)
        J = np.zeros((len(theta), N))
        for j, kind in enumerate(self.sc.kind[:-1]):
            h = 1e-6 if kind == "cor" else max(abs(phi[j]), 1e-3 * sigma)
            cols = []
            for s in ((1.0, -1.0) if kind == "cor" else (1.0,)):
                e = np.zeros(N)
                e[j] = s * h
                tr = self.sc.to_theta(phi + e)
                cols.append(None if tr is None else tr[0])
            if kind == "cor" and cols[0] is not None and cols[1] is not None:
                J[:, j] = (cols[0] - cols[1]) / (2 * h)
            elif cols[0] is not None:
                J[:, j] = (cols[0] - theta) / h
            elif kind == "cor" and cols[1] is not None:
                J[:, j] = (theta - cols[1]) / h
        J[:, -1] = -theta / sigma
        return J


def _pwrss(M: np.ndarray) -> float:
    p = M.shape[0] - 1
    return float(np.linalg.cholesky(M)[p, p] ** 2)


def _vc_intervals(model, z: float, which=None, counter: EvalCounter | None = None,
                  per_row: list | None = None) -> list[tuple[float, float]]:
    """Profile bounds of the sdcor parameters ``which`` (indices; default all), on the fit's own criterion;
    the others get NaN.  ``per_row`` receives the evaluations of each parameter's two bounds."""
    counter = counter or EvalCounter()
    crit = _VcCriterion(model, counter)
    sc = crit.sc
    kind = np.array(sc.kind)
    sig = float(model.sigma)
    phi_hat = sc.from_fit(model.varcorr)
    lo = np.where(kind == "sd", 0.0, np.where(kind == "cor", -1.0, 1e-8 * sig))
    hi = np.where(kind == "cor", 1.0, np.inf)
    scale = np.array([max(abs(v), 1e-2 * sig) if k != "cor" else 1.0 for v, k in zip(phi_hat, sc.kind)])
    # the optimum of the criterion on this scale (the fit's, polished) and the Hessian there
    d0, g0 = crit(phi_hat)
    H = _hessian(crit, phi_hat, 1e-4 * scale, hi, g0)
    d_min, phi_min, _, H = _newton(crit, phi_hat, lo, hi, H, 1e-10, (d0, g0))
    d_min = min(d_min, d0)
    Hinv = np.linalg.inv(H + 1e-12 * np.diag(np.abs(np.diag(H)) + 1e-300)) if len(H) else H
    probe = np.where(kind == "sd", scale, 0.0)
    # on the boundary (an SD at zero, a correlation at +-1): the derivative-free profile
    on_boundary = bool(np.any((kind == "sd") & (phi_hat <= 1e-6 * sig))
                       or np.any((kind == "cor") & (np.abs(phi_hat) >= 1 - 1e-6)))
    reach = np.where(kind == "sd", np.maximum(np.abs(phi_hat), 0.3 * sig), 0.0)  # an SD's scale, off zero
    out = []
    for i, k in enumerate(sc.kind):
        if which is not None and i not in which:
            out.append((np.nan, np.nan))
            continue
        v_hat = float(phi_hat[i])
        if k == "cor" and not np.isfinite(model.varcorr["sdcor"].iloc[i]):
            out.append((np.nan, np.nan))
            continue
        c0 = counter.calls
        oth = np.arange(len(sc)) != i

        def vg(v, x, i=i, oth=oth):
            phi = np.empty(len(sc))
            phi[i] = v
            phi[oth] = x
            d, g = crit(phi)
            return d, g[oth], g[i]

        Hoo = H[np.ix_(oth, oth)]
        tangent = -_solve_pd(Hoo, H[oth, i]) if oth.any() else np.zeros(0)
        sd_wald = float(np.sqrt(2.0 * Hinv[i, i])) if Hinv[i, i] > 0 else np.nan

        def value(v, x, i=i, oth=oth):
            phi = np.empty(len(sc))
            phi[i] = v
            phi[oth] = x
            return crit.value(phi)

        def path():
            return _Path(vg, v_hat, phi_min[oth], lo[oth], hi[oth], Hoo, tangent, probe[oth], d_min, _INNER_TOL,
                         value=value, reach=reach[oth])

        if on_boundary:
            bo = [(lo_, None if not np.isfinite(hi_) else hi_) for lo_, hi_ in zip(lo[oth], hi[oth])]
            out.append(_robust_vc(value, phi_hat[oth], v_hat, k, bo, scale[oth], d_min, z, sig, crit.nu))
        elif k == "cor":  # u = atanh(rho); the edges rho = -1, 1
            u_hat = float(np.arctanh(np.clip(v_hat, -1 + 1e-12, 1 - 1e-12)))
            du1 = z * sd_wald / max(1.0 - v_hat ** 2, 1e-12) if np.isfinite(sd_wald) else 0.3
            b = []
            pr = path()
            for d in (-1, 1):
                b.append(_root(_on_scale(pr, np.tanh, lambda u: 1.0 - np.tanh(u) ** 2), u_hat, d, min(du1, 1.5), z,
                               edge=_edge(pr, float(d), z), far=float(np.arctanh(0.999))))
            out.append(tuple(float(np.tanh(x)) for x in b))
        elif k == "sd" and v_hat <= 1e-6 * sig:  # on the boundary: lower 0, the upper bound on the linear scale
            du1 = z * sd_wald if np.isfinite(sd_wald) and sd_wald > 0 else 0.1 * sig
            out.append((0.0, _root(path(), 0.0, 1, du1, z)))
        else:  # u = log(sd)
            u_hat = np.log(v_hat)
            du1 = z * sd_wald / v_hat if np.isfinite(sd_wald) else 0.3
            du1 = float(np.clip(du1, 1e-3, 1.0))
            lo_pr = hi_pr = path()
            lo_b = _root(_on_scale(lo_pr, np.exp, np.exp), u_hat, -1, du1, z,
                         edge=_edge(lo_pr, 0.0, z) if k == "sd" else None, far=np.log(100.0))
            hi_b = _root(_on_scale(hi_pr, np.exp, np.exp), u_hat, 1, du1, z)
            out.append((float(np.exp(lo_b)), float(np.exp(hi_b))))
        if per_row is not None:
            per_row.append((i, counter.calls - c0))
    return out


def _robust_vc(value, x_hat, v_hat: float, kind: str, bounds: list, scale, d_min: float, z: float, sig: float,
               nu: float) -> tuple[float, float]:
    """One variance parameter's bounds by :mod:`vcomp.mixed.profile_robust` (``value(v, x)``: the criterion)."""
    prof = robust.Profile(value, x_hat, v_hat, bounds, scale, d_min)
    if kind == "cor":  # u = atanh(rho); the edges rho = -1, 1
        u_hat = float(np.arctanh(np.clip(v_hat, -1 + 1e-12, 1 - 1e-12)))
        b = [robust.bound(lambda u: prof(float(np.tanh(u))), u_hat, d, 0.3, z, edge=lambda d=d: prof(float(d)),
                          far=12.0) for d in (-1, 1)]
        return float(np.tanh(b[0])), float(np.tanh(b[1]))
    if kind == "sd" and v_hat <= 1e-6 * sig:  # zero (or as good as): lower 0, the upper bound on the linear scale
        return 0.0, robust.bound(prof, 0.0, 1, 0.1 * sig, z)
    step = 0.3 if kind == "sd" else z / np.sqrt(2.0 * max(nu, 1))
    r = lambda u: prof(float(np.exp(u)))  # noqa: E731
    lo = robust.bound(r, np.log(v_hat), -1, step, z, edge=(lambda: prof(0.0)) if kind == "sd" else None, far=30.0)
    return float(np.exp(lo)), float(np.exp(robust.bound(r, np.log(v_hat), 1, step, z)))


def _on_scale(prof, to_v, dv_du):
    """``prof`` (a function of v) as a function of ``u`` with ``v = to_v(u)``."""
    def f(u):
        r, dr = prof(float(to_v(u)))
        return r, dr * float(dv_du(u))
    return f


def _edge(prof, v_edge: float, z: float):
    """The ``edge`` of :func:`_root`: ``r`` at the boundary ``v_edge`` and the root between the last
    point below the cut-off and the boundary, on the parameter's own (linear) scale."""
    def edge():
        r_edge = prof(v_edge)[0]

        def root(a_u, fa):
            a = float(np.tanh(a_u)) if v_edge != 0.0 else float(np.exp(a_u))
            return _to_u(v_edge, _bracketed(prof, z, a, fa, v_edge, r_edge - z, XTOL * abs(v_edge - a)))
        return r_edge, root
    return edge


def _to_u(v_edge: float, v: float) -> float:
    return float(np.arctanh(np.clip(v, -1 + 1e-16, 1 - 1e-16))) if v_edge != 0.0 else float(np.log(max(v, 1e-300)))


def _theta_on_boundary(model, theta: np.ndarray) -> bool:
    """A random-effects SD at zero or a correlation at +-1 in lme4's ``theta``."""
    for t in re_layout(model):
        k = t.k
        L = np.zeros((k, k))
        rc = sorted(zip(*np.tril_indices(k)), key=lambda ij: (ij[1], ij[0]))  # column-major lower triangle
        L[tuple(np.array(rc).T)] = theta[t.theta_slice]
        C = L @ L.T
        sd = np.sqrt(np.diag(C))
        if np.any(sd <= 1e-6):  # theta is relative to sigma
            return True
        R = C / np.outer(sd, sd)
        if np.any(np.abs(R[np.triu_indices(k, 1)]) >= 1 - 1e-6):
            return True
    return False


def _fixed_intervals(model, z: float, which=None, counter: EvalCounter | None = None,
                     per_row: list | None = None) -> list[tuple[float, float]]:
    """ML profile bounds of the fixed coefficients ``which`` (indices; default all; the others NaN), the
    other coefficients and theta re-optimised.  ``per_row`` receives each coefficient's evaluations."""
    counter = counter or EvalCounter()
    n = model.nobs
    theta_ml, d_min = ml_optimum(model)
    ldL2, M = criterion_pieces(model, theta_ml)
    p = M.shape[0] - 1
    Mxx = M[:p, :p]
    beta = np.linalg.solve(Mxx, M[:p, p])
    pwrss = M[p, p] - M[p, :p] @ beta
    se = np.sqrt(np.diag(np.linalg.inv(Mxx)) * pwrss / n)
    lo = np.where(np.isfinite(theta_bounds(model)), theta_bounds(model), -np.inf)
    hi = np.full(len(theta_ml), np.inf)
    d_min = min(d_min, profiled_deviance(ldL2, M, n, False))
    hstep = 1e-7 * np.maximum(np.abs(theta_ml), 1e-2 * max(np.max(np.abs(theta_ml), initial=0.0), 1.0))

    def pieces(th):
        counter.calls += 1
        return criterion_pieces(model, th)

    kernels: dict = {}

    def d_db(j, b, th):
        """The derivative in b at theta (exact: the deviance is explicit in b given the cross-products)."""
        l2, Mt = pieces(th)
        hb = 1e-6 * se[j]
        return (profiled_deviance(l2, Mt, n, False, fixed=(j, b + hb))
                - profiled_deviance(l2, Mt, n, False, fixed=(j, b - hb))) / (2 * hb)

    def vg(j, b, th):
        """ML deviance with beta_j = b, its gradient in theta (analytic; forward differences without
        an analytic kernel) and (a function giving) its derivative in b."""
        if (j, b) not in kernels:
            kernels[(j, b)] = fixed_coef_criterion(model, j, b)
        fj = kernels[(j, b)]
        if fj is not None:
            counter.calls += 1
            d, g = fj(th)
            return d, g, lambda: d_db(j, b, th)
        l2, Mt = pieces(th)
        d = profiled_deviance(l2, Mt, n, False, fixed=(j, b))
        if not np.isfinite(d):
            return np.inf, np.zeros(len(th)), 0.0
        g = np.empty(len(th))
        for k in range(len(th)):
            e = np.zeros(len(th))
            e[k] = hstep[k]
            g[k] = (profiled_deviance(*pieces(th + e), n, False, fixed=(j, b)) - d) / hstep[k]
        return d, g, lambda: d_db(j, b, th)

    H = None
    on_boundary = _theta_on_boundary(model, theta_ml)  # then the derivative-free profile
    out = []
    for j in range(p):
        if which is not None and j not in which:
            out.append((np.nan, np.nan))
            continue
        c0 = counter.calls
        if H is None and not on_boundary:  # the ML criterion's Hessian in theta at its optimum (shared)
            ml = lambda th: vg(j, float(beta[j]), th)[:2]  # noqa: E731
            H = _hessian(ml, theta_ml, 1e-4 * np.maximum(np.abs(theta_ml), 1e-2), hi, ml(theta_ml)[1])
            c0 = counter.calls
        if on_boundary:
            prof = robust.Profile(lambda v, th, j=j: profiled_deviance(*pieces(th), n, False, fixed=(j, v)), theta_ml,
                                  float(beta[j]), [(lo_ if np.isfinite(lo_) else None, None) for lo_ in lo],
                                  np.ones(len(theta_ml)), d_min)
            out.append(tuple(robust.bound(prof, float(beta[j]), d, z * se[j], z) for d in (-1, 1)))
            if per_row is not None:
                per_row.append((j, counter.calls - c0))
            continue
        b = []
        pr = _Path(lambda v, x, j=j: vg(j, v, x), float(beta[j]), theta_ml, lo, hi, H,
                   np.zeros(len(theta_ml)), (lo == 0).astype(float), d_min, _INNER_TOL, mirror=True,
                   reach=np.where(lo == 0, np.maximum(np.abs(theta_ml), 0.3), 0.0))
        for d in (-1, 1):
            b.append(_root(pr, float(beta[j]), d, z * se[j], z))
        out.append(tuple(b))
        if per_row is not None:
            per_row.append((j, counter.calls - c0))
    return out


def _requested_rows(parm, vc_names: list[str], fe_names: list[str]) -> list[int] | None:
    """Positions (in the full table) of the rows ``parm`` asks for: None (all), ``"theta_"`` (the variance
    parameters), ``"beta_"`` (the fixed coefficients) or a list of row names (lme4's ``parm``)."""
    names = vc_names + fe_names
    if parm is None:
        return None
    if isinstance(parm, str):
        parm = [parm]
    out = []
    for p_ in parm:
        if p_ == "theta_":
            out += range(len(vc_names))
        elif p_ == "beta_":
            out += range(len(vc_names), len(names))
        elif p_ in names:
            out.append(names.index(p_))
        else:
            raise VcompError("confint: unknown parameter %r in parm; use 'theta_', 'beta_' or row names: %s"
                             % (p_, ", ".join(names)))
    return sorted(set(out))


def _profile_bounds(model, z: float, rows, nv: int) -> tuple[list, list, dict]:
    """Profile bounds of the variance rows and the fixed rows (``rows``: positions in the full table or
    None), and the kernel calls: ``{"setup": ..., row position: calls of its two bounds}``."""
    counter, per_vc, per_fe = EvalCounter(), [], []
    with blas_single_thread():
        want_vc = None if rows is None else {i for i in rows if i < nv}
        want_fe = None if rows is None else {i - nv for i in rows if i >= nv}
        vc_b = (_vc_intervals(model, z, want_vc, counter, per_vc) if want_vc is None or want_vc
                else [(np.nan, np.nan)] * nv)
        fe_b = (_fixed_intervals(model, z, want_fe, counter, per_fe) if want_fe is None or want_fe
                else [(np.nan, np.nan)] * model.fixef.size)
    calls = {i: c for i, c in per_vc}
    calls.update({nv + j: c for j, c in per_fe})
    calls["setup"] = counter.calls - sum(c for _, c in per_vc + per_fe)
    return vc_b, fe_b, calls


def profile_evaluations(model, level: float = 0.95, parm=None) -> pd.DataFrame:
    """The cost of :func:`confint`'s profile intervals: criterion evaluations per parameter.

    Every call of the model's criterion kernel counts as one evaluation (a criterion value from
    the stored cross-products, or a value with its analytic gradient in theta; the profile of a
    variance parameter makes one of each per point on the path).

    Parameters
    ----------
    model : MixedModel
    level : float
    parm : None, str or list of str
        As for :func:`confint`.

    Returns
    -------
    DataFrame
        Index: the rows of ``confint(level, "profile", parm)``; columns ``lower``, ``upper`` (the
        same bounds as :func:`confint`) and ``evaluations`` (kernel calls of the row's two bounds).
        ``attrs["setup"]`` holds the calls shared by all rows (the optimum polished on the sdcor
        scale with the Hessian there; for the fixed rows the ML optimum's Hessian in theta; a REML
        fit's ML refit is not counted).
    """
    level = check_level(level)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    vc_names = vc_row_names(model)
    names = vc_names + list(model.fixef.index)
    rows = _requested_rows(parm, vc_names, list(model.fixef.index))
    vc_b, fe_b, calls = _profile_bounds(model, z, rows, len(vc_names))
    keep = list(range(len(names))) if rows is None else rows
    b = vc_b + fe_b
    out = pd.DataFrame({"lower": [b[i][0] for i in keep], "upper": [b[i][1] for i in keep],
                        "evaluations": [calls.get(i, 0) for i in keep]},
                       index=pd.Index([names[i] for i in keep], name="parameter"))
    out.attrs["setup"] = calls["setup"]
    return out


def confint(model, level: float = 0.95, method: str = "profile", parm=None) -> pd.DataFrame:
    """Confidence intervals for the variance parameters and fixed coefficients (lme4's ``confint``).

    Parameters
    ----------
    model : MixedModel
    level : float
        Confidence level in (0, 1).
    method : {"profile", "wald"}
        ``"profile"``: exact roots of the profiled criterion (REML for REML fits) on the sdcor
        scale, fixed coefficients from the ML profile; ``"wald"``: estimate +- z SE for the fixed
        coefficients (the variance rows get no Wald interval, as in lme4).
    parm : None, str or list of str
        The rows to compute (lme4's ``parm``): ``"theta_"`` the variance parameters, ``"beta_"``
        the fixed coefficients, or row names; default all.  Only those rows are returned.

    Returns
    -------
    ResultFrame
        A DataFrame: index = one row per row of ``varcorr`` (``"<grp>:<var1>"`` for an SD,
        ``"<grp>:<var1>:<var2>"`` for a correlation, ``"Residual"``), then the fixed
        coefficients; columns ``estimate, lower, upper``.
    """
    from ..tables import titled

    methods = ("profile", "wald")
    if method not in methods:
        raise VcompError("confint: unknown method %r; use one of %s." % (method, ", ".join(map(repr, methods))))
    if method == "profile" and getattr(model, "_residual", None) is not None:
        raise VcompError("confint(method='profile') profiles lme4's parameters; this model has a residual= "
                         "structure (%s). Use confint(method='wald'), or compare nested structures with "
                         "vcomp.compare(fit0, fit1)." % model._residual.spec.text)
    level = check_level(level)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    vc_names = vc_row_names(model)
    vc_est = model.varcorr["sdcor"].to_numpy(dtype=float)
    beta = model.fixef.to_numpy(dtype=float)
    rows = _requested_rows(parm, vc_names, list(model.fixef.index))
    nv = len(vc_names)
    if method == "wald":
        se = np.sqrt(np.diag(model.vcov.to_numpy(dtype=float)))
        vc_b = [(np.nan, np.nan)] * len(vc_names)
        fe_b = list(zip(beta - z * se, beta + z * se))
        head = "%g%% Wald confidence intervals (fixed effects: estimate +- %.4f SE)" % (100 * level, z)
        notes_w = ["No Wald interval for the variance parameters (as lme4); use method='profile'."]
    else:
        notes_w = []
        vc_b, fe_b, _ = _profile_bounds(model, z, rows, nv)
        head = ("%g%% profile confidence intervals (variance parameters: %s criterion, sdcor scale; "
                "fixed effects: ML profile)" % (100 * level, "REML" if model.reml else "ML"))
    frame = pd.DataFrame({"estimate": np.concatenate([vc_est, beta]),
                          "lower": [b[0] for b in vc_b + fe_b], "upper": [b[1] for b in vc_b + fe_b]},
                         index=pd.Index(vc_names + list(model.fixef.index), name="parameter"))
    if rows is not None:
        frame = frame.iloc[rows]
    notes = list(notes_w)
    on_bound = [nm for nm, kind, est in zip(vc_names, SdCor(re_layout(model)).kind, vc_est)
                if kind == "sd" and est <= 0 and nm in frame.index]
    if on_bound:
        notes.append("On the boundary (lower bound 0): %s." % ", ".join(on_bound))
    return titled(frame, head, index_name="Parameter", notes=notes)
