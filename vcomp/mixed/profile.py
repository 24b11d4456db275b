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
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .._errors import VcompError, check_level
from .fitparts import blas_single_thread, criterion_pieces, ml_optimum, profiled_deviance, re_layout, theta_bounds

__all__ = ["SdCor", "confint", "vc_row_names"]

#: tolerance of a bound, relative to the first step (in the profile's coordinate)
XTOL = 1e-7
#: tolerance of the signed root sqrt(d(v) - d_min) at a bound (z = 1.96 at 95%)
RTOL_R = 1e-6

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
        """``phi`` of a fit from its ``varcorr`` (undefined correlations of a zero SD as 0)."""
        return np.nan_to_num(varcorr["sdcor"].to_numpy(dtype=float), nan=0.0)


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


def _minimize(fun, x0: np.ndarray, bounds: list) -> tuple[float, np.ndarray]:
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


class _Profile:
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
        d, x = _minimize(f, x0, self.bounds)
        # a standard deviation (or a diagonal of theta) enters only through its square: zero is a
        # stationary point the minimizer cannot leave; try again from off the boundary
        zero = self.zero_bound & (x < 1e-6)
        if zero.any():
            x1 = x.copy()
            x1[zero] = max(0.5 * float(np.max(x[self.zero_bound], initial=0.0)), 0.3)
            d1, x1 = _minimize(f, x1, self.bounds)
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


def _bound(r, u_hat: float, direction: int, step: float, z: float, edge=None, far: float = np.inf) -> float:
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


def _vc_intervals(model, z: float, which=None) -> list[tuple[float, float]]:
    """Profile bounds of the sdcor parameters ``which`` (indices; default all), on the fit's own criterion;
    the others get NaN."""
    layout = re_layout(model)
    sc = SdCor(layout)
    n, reml = model.nobs, model.reml

    def dev(phi):
        tr = sc.to_theta(phi)
        if tr is None:
            return np.inf
        ldL2, M = criterion_pieces(model, tr[0])
        return profiled_deviance(ldL2, M, n, reml, sigma=tr[1])

    phi_hat = sc.from_fit(model.varcorr)
    sig = float(model.sigma)
    scale = np.array([max(abs(v), 1e-2 * sig) if k != "cor" else 1.0 for v, k in zip(phi_hat, sc.kind)])
    bounds_all = [(0.0, None) if k == "sd" else (-1.0, 1.0) if k == "cor" else (1e-8 * sig, None)
                  for k in sc.kind]
    d_fit, _ = _minimize(lambda x: _finite(dev(x * scale)), phi_hat / scale,
                         [(None if lo is None else lo / s, None if hi is None else hi / s)
                          for (lo, hi), s in zip(bounds_all, scale)])
    d_min = min(d_fit, dev(phi_hat))
    nu = max(n - (model.fixef.size if reml else 0), 1)
    out = []
    for i, kind in enumerate(sc.kind):
        if which is not None and i not in which:
            out.append((np.nan, np.nan))
            continue
        others = [j for j in range(len(sc)) if j != i]

        def g(v, x, i=i, others=others):
            phi = np.empty(len(sc))
            phi[i] = v
            phi[others] = x
            return dev(phi)

        v_hat = float(phi_hat[i])
        if kind == "cor" and not np.isfinite(model.varcorr["sdcor"].iloc[i]):
            out.append((np.nan, np.nan))
            continue
        prof = _Profile(g, phi_hat[others], v_hat, [bounds_all[j] for j in others], scale[others], d_min)
        if kind == "cor":  # u = atanh(rho); the edges rho = -1, 1
            u_hat = float(np.arctanh(np.clip(v_hat, -1 + 1e-12, 1 - 1e-12)))
            r = lambda u: prof(float(np.tanh(u)))  # noqa: E731
            b = [_bound(r, u_hat, d, 0.3, z, edge=lambda d=d: prof(float(d)), far=12.0) for d in (-1, 1)]
            out.append(tuple(float(np.tanh(x)) for x in b))
        elif kind == "sd" and v_hat <= 0:  # on the boundary: lower 0, the upper bound on the linear scale
            out.append((0.0, _bound(prof, 0.0, 1, 0.1 * sig, z)))
        else:  # u = log(sd)
            step = 0.3 if kind == "sd" else z / np.sqrt(2.0 * nu)
            r = lambda u: prof(float(np.exp(u)))  # noqa: E731
            lo = _bound(r, np.log(v_hat), -1, step, z, edge=(lambda: prof(0.0)) if kind == "sd" else None,
                        far=30.0)
            hi = _bound(r, np.log(v_hat), 1, step, z)
            out.append((float(np.exp(lo)), float(np.exp(hi))))
    return out


def _finite(v: float) -> float:
    return v if np.isfinite(v) else 1e300


def _fixed_intervals(model, z: float, which=None) -> list[tuple[float, float]]:
    """ML profile bounds of the fixed coefficients ``which`` (indices; default all; the others NaN), the
    other coefficients and theta re-optimised."""
    n = model.nobs
    theta_ml, d_min = ml_optimum(model)
    ldL2, M = criterion_pieces(model, theta_ml)
    p = M.shape[0] - 1
    Mxx = M[:p, :p]
    beta = np.linalg.solve(Mxx, M[:p, p])
    pwrss = M[p, p] - M[p, :p] @ beta
    se = np.sqrt(np.diag(np.linalg.inv(Mxx)) * pwrss / n)
    lower = theta_bounds(model)
    tb = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    d_min = min(d_min, profiled_deviance(ldL2, M, n, False))
    out = []
    for j in range(p):
        if which is not None and j not in which:
            out.append((np.nan, np.nan))
            continue

        def g(v, th, j=j):
            l2, Mt = criterion_pieces(model, th)
            return profiled_deviance(l2, Mt, n, False, fixed=(j, v))

        prof = _Profile(g, theta_ml, float(beta[j]), tb, np.ones(len(theta_ml)), d_min)
        out.append(tuple(_bound(prof, float(beta[j]), d, z * se[j], z) for d in (-1, 1)))
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
        with blas_single_thread():
            want_vc = None if rows is None else {i for i in rows if i < nv}
            want_fe = None if rows is None else {i - nv for i in rows if i >= nv}
            vc_b = _vc_intervals(model, z, want_vc) if want_vc is None or want_vc else [(np.nan, np.nan)] * nv
            fe_b = (_fixed_intervals(model, z, want_fe) if want_fe is None or want_fe
                    else [(np.nan, np.nan)] * beta.size)
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
