"""REML/ML fits with a residual covariance structure, and their inference pieces.

Model: ``V = Z G Z' + R`` with ``G`` lme4's random-effects covariance and ``R`` block diagonal
(:mod:`vcomp.mixed.residual`). The scale is profiled: ``V = sigma^2 (Z Lambda Lambda' Z' + R~)``,
``R~`` the structure's relative matrix. With ``A = [Z X y]' R~^{-1} [Z X y]`` (pattern
cross-products, :class:`~vcomp.mixed.residual_xp.PatternCrossprods`) the criterion is lme4's
profiled one with ``A`` in place of ``[Z X y]'[Z X y]`` (the blocked Woodbury form), plus
``log|R~|``:

.. math:: -2\\ell_R = \\log|\\tilde R| + \\log|\\Lambda'A_{ZZ}\\Lambda + I| + \\log|R_X|^2
          + (n-p)(1 + \\log(2\\pi\\,\\mathrm{pwrss}/(n-p))).

Every evaluation costs ``O(patterns k^3 + k^2 m^2 + q^3 + p^3)``, independent of the number of subjects.

Inference (:func:`residual_pieces`) differentiates ``V`` in the natural parameters ``gamma``
(random-term covariances, then the structure's parameters) and builds the
:class:`vcomp.inference._pieces.Pieces` the test kernel uses, with ``Hobs`` the observed Hessian
of the REML deviance including the second derivatives of ``R`` (lmerTest's Satterthwaite
ingredient) and ``IE2`` the expected information (pbkrtest's Kenward-Roger ingredient).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg as sla
from threadpoolctl import ThreadpoolController

from .._errors import DataError
from ..formula import ResidualSpec
from .optimize import optimize_theta
from .residual import Layout, Pattern, ResidualStructure, WithNugget, build_structure
from .residual_xp import PatternCrossprods
from .reterm import lambda_dense, lambda_index

__all__ = ["ResidualCriterion", "ResidualFit", "fit_residual", "split_nugget", "residual_pieces"]


_THREADS: list = []


def _value_and_grad(crit, reml: bool, full=None, free=None):
    """``fg(v) -> (criterion, analytic gradient)`` for the optimizer (a failed gradient reads as NaN)."""
    def fg(v):
        x = full(v) if full is not None else v
        val = crit(x, reml)
        try:
            g = np.asarray(crit.gradient(x, reml), dtype=float)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            g = np.full(len(x), np.nan)
        return val, (g[free] if free is not None else g)
    return fg


def _one_blas_thread():
    """A context limiting BLAS to one thread (the controller is built once: it scans the loaded libraries)."""
    if not _THREADS:
        _THREADS.append(ThreadpoolController())
    return _THREADS[0].limit(limits=1, user_api="blas")


# --------------------------------------------------------------------------- lme4 internals used here
def lme4_profiled(ldL2: float, M: np.ndarray, n: int, p: int, reml: bool) -> tuple[float, dict]:
    """lme4's profiled criterion from ``log|L|^2`` and the downdated ``[X y]'V~^{-1}[X y]``.

    One of the two places this module reaches into the lme4 engine (``vcomp.mixed.criterion``).
    """
    from .criterion import _profiled
    return _profiled(ldL2, M, n, p, reml)


def lme4_estimates(parts: dict, n: int, p: int, reml: bool) -> dict:
    """beta, sigma and Var(beta) from :func:`lme4_profiled`'s factor (``vcomp.mixed.criterion``)."""
    from .criterion import _estimates
    return _estimates(parts, n, p, reml)


# --------------------------------------------------------------------------- nugget
def split_nugget(specs: list, mf) -> tuple[list, str | None]:
    """Separate a ``(1 | g)`` term whose factor has one level per observation (a nugget).

    Parameters
    ----------
    specs : list of RandomSpec
    mf : ModelFrame

    Returns
    -------
    (the other random terms, the nugget's group name or None)
    """
    keep, nug = [], None
    for rs in specs:
        if rs.intercept and not rs.terms:
            codes, _ = mf.group(rs.group)
            if len(np.unique(codes)) == mf.n:
                if nug is not None:
                    raise DataError("two random terms (1 | %s) and (1 | %s) have one level per observation; "
                                    "keep at most one nugget." % (nug, rs.group.name))
                nug = rs.group.name
                continue
        keep.append(rs)
    return keep, nug


# --------------------------------------------------------------------------- criterion
class ResidualCriterion:
    """The profiled REML/ML criterion of ``x = (theta_random, xi_structure)``.

    Parameters
    ----------
    structure : ResidualStructure
    layout : Layout
    X, y : ndarray
    terms : list of ReTerm
        lme4's random terms (may be empty).
    Z : sparse matrix (n x q) or None
    """

    def __init__(self, structure: ResidualStructure, layout: Layout, X: np.ndarray, y: np.ndarray,
                 terms: list, Z=None) -> None:
        from .reterm import theta_layout
        self.structure, self.terms = structure, list(terms)
        #: the layout in the data's row order (``layout`` indexes ``W``'s rows)
        self.data_layout = layout
        self.n, self.p = X.shape
        self.q = 0 if Z is None else Z.shape[1]
        # W = [Z X y] with its rows in pattern order, position-major within a pattern, so that the rows
        # of one position of one pattern are a contiguous block (no gather when forming cross-products)
        perm = np.concatenate([pat.rows.T.ravel() for pat in layout.patterns])
        self.row_order = perm
        self.W = W = np.empty((self.n, self.q + self.p + 1))
        if Z is not None:
            W[:, :self.q] = Z.tocsr()[perm].toarray()
        np.take(np.asarray(X, dtype=float), perm, axis=0, out=W[:, self.q:self.q + self.p])
        W[:, -1] = np.asarray(y, dtype=float)[perm]
        pats, off = [], 0
        for pat in layout.patterns:
            N, k = pat.count, pat.k
            rows = off + np.arange(k)[None, :] * N + np.arange(N)[:, None]
            pats.append(Pattern(pat.group, pat.pos, rows))
            off += N * k
        self.layout = Layout(layout.n, pats, layout.nblocks)
        self.xp = PatternCrossprods(self.W, self.layout.patterns, [structure.band] * len(pats))
        self.ntheta = sum(t.ntheta for t in self.terms)
        self.lower = np.concatenate([theta_layout(self.terms)[0], structure.xi_lower])
        self._lam_index = lambda_index(self.terms)
        self._WtW = None

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=float)
        return x[:self.ntheta], x[self.ntheta:]

    def rel_inverses(self, xi: np.ndarray) -> tuple[list, float]:
        """Inverse relative blocks per pattern and ``log|R~|``."""
        inv, ld = [], 0.0
        for pat in self.layout.patterns:
            R = self.structure.rel_cov(pat, xi)
            L = np.linalg.cholesky(R)
            Li = sla.solve_triangular(L, np.eye(pat.k), lower=True, check_finite=False)
            Ri = Li.T @ Li
            if self.structure.band is not None:
                Ri[self._outside(pat.k)] = 0.0
            inv.append(Ri)
            ld += pat.count * 2.0 * float(np.sum(np.log(np.diag(L))))
        return inv, ld

    def _outside(self, k: int) -> np.ndarray:
        lag = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
        return lag > self.structure.band

    def unweighted(self) -> np.ndarray:
        """``[Z X y]'[Z X y]`` (from the stored cross-products, computed once)."""
        if self._WtW is None:
            self._WtW = self.xp.M([np.eye(pat.k) for pat in self.layout.patterns])
        return self._WtW

    def crossproducts(self):
        """The model's :class:`~vcomp.mixed.crossprod.CrossProducts` (unweighted), without a pass over the data."""
        import scipy.sparse as sp

        from .crossprod import CrossProducts
        A, q, p = self.unweighted(), self.q, self.p
        return CrossProducts(self.n, p, A[q:q + p, q:q + p].copy(), A[q:q + p, q + p].copy(), float(A[-1, -1]),
                             False, ZtZ=sp.csc_matrix(A[:q, :q]), ZtX=A[:q, q:q + p].copy(), Zty=A[:q, -1].copy())

    def ols_residuals(self) -> np.ndarray:
        """Least-squares residuals of y on X (from the stored cross-products), in ``W``'s row order."""
        q, p = self.q, self.p
        A = self.unweighted()
        beta = np.linalg.solve(A[q:q + p, q:q + p], A[q:q + p, q + p])
        return self.W[:, q + p] - self.W[:, q:q + p] @ beta

    def _factor(self, x: np.ndarray, reml: bool):
        theta, xi = self.split(x)
        inv, ldR = self.rel_inverses(xi)
        A = self.xp.M(inv)
        q = self.q
        if q:
            Lam = lambda_dense(self.terms, theta, self._lam_index)
            C = Lam.T @ A[:q, :q] @ Lam
            C[np.diag_indices(q)] += 1.0
            Lc = np.linalg.cholesky((C + C.T) / 2)
            RZ = sla.solve_triangular(Lc, Lam.T @ A[:q, q:], lower=True, check_finite=False)
            Mx = A[q:, q:] - RZ.T @ RZ
            ldL2 = 2.0 * float(np.sum(np.log(np.diag(Lc))))
        else:
            Lam = Lc = RZ = None
            Mx, ldL2 = A[q:, q:], 0.0
        crit, parts = lme4_profiled(ldL2 + ldR, (Mx + Mx.T) / 2, self.n, self.p, reml)
        return crit, parts, (theta, xi, Lam, Lc, RZ, inv, A)

    def _xi_jacobian(self, xi: np.ndarray, h: float = 1e-6) -> np.ndarray:
        """d gamma / d xi of the relative problem (scale 1), by central differences of a cheap map."""
        nat = self.structure.natural
        J = np.zeros((len(nat(xi, 1.0)), len(xi)))
        for j in range(len(xi)):
            e = np.zeros(len(xi))
            e[j] = h
            J[:, j] = (nat(xi + e, 1.0) - nat(xi - e, 1.0)) / (2 * h)
        return J

    def gradient(self, x: np.ndarray, reml: bool = True) -> np.ndarray:
        """Analytic gradient of the profiled criterion in ``x`` (no pass over the data).

        ``d crit / dx_j = tr(V~^-1 V~_j) - tr(Phi~ X'V~^-1 V~_j V~^-1 X) - r'V~^-1 V~_j V~^-1 r / sigma^2``
        (ML: without the middle term), each written as ``sum(G * W'(R~^-1 R~_j R~^-1)W)`` for one
        ``m x m`` matrix ``G`` (residual parameters) or through ``Z'V~^-1 Z`` (lme4's theta).
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._gradient(x, reml)

    def _gradient(self, x: np.ndarray, reml: bool) -> np.ndarray:
        crit, parts, (theta, xi, Lam, Lc, RZ, inv, A) = self._factor(x, reml)
        if not np.isfinite(crit):
            raise np.linalg.LinAlgError("criterion not finite")
        n, p, q = self.n, self.p, self.q
        m = A.shape[0]
        Lm = parts["Lm"]
        LX = Lm[:p, :p]
        beta = sla.solve_triangular(LX.T, Lm[p, :p], lower=False)
        s2 = parts["pwrss"] / ((n - p) if reml else n)
        LXi = sla.solve_triangular(LX, np.eye(p), lower=True)
        Phi = LXi.T @ LXi
        Y = np.zeros((m, p + 1))
        Y[q:q + p, :p] = np.eye(p)
        Y[q:q + p, p] = -beta
        Y[q + p, p] = 1.0
        if q:
            Ci = sla.cho_solve((Lc, True), np.eye(q))
            K = Lam @ Ci @ Lam.T
            TY = Y.copy()
            TY[:q] -= K @ (A[:q] @ Y)
        else:
            TY = Y
        TX, Tr = TY[:, :p], TY[:, p]
        G = -np.outer(Tr, Tr) / s2
        if reml:
            G -= TX @ Phi @ TX.T
        if q:
            G[:q, :q] -= K
        G = (G + G.T) / 2
        H = self.xp.contract(G)
        # residual structure: gradient in gamma (relative problem), then the chain rule to xi
        gam = self.structure.natural(xi, 1.0)
        band = self.structure.band
        gg = np.zeros(len(gam))
        for pat, Ri, Hm in zip(self.layout.patterns, inv, H):
            _, d1, _ = self.structure.cov_derivs(pat, gam, second=False)
            for a, dR in d1.items():
                B = Ri @ dR @ Ri
                if band is not None:
                    B[self._outside(pat.k)] = 0.0
                gg[a] += pat.count * float(np.sum(dR * Ri)) + float(np.sum(B * Hm))
        jac = getattr(self.structure, "natural_jacobian", None)
        g_xi = (jac(xi) if jac is not None else self._xi_jacobian(xi)).T @ gg
        if not q:
            return g_xi
        # lme4's theta: sum(D_j * Gq), D_j = d(Lam Lam')/dtheta_j, Gq = Z'V~^-1 Z - F Phi F' - F_r F_r'/s2
        AZ = A[:q]
        S = A[:q, :q] - AZ[:, :q] @ K @ AZ[:, :q]
        F = AZ @ TY
        Gq = S - np.outer(F[:, p], F[:, p]) / s2
        if reml:
            Gq -= F[:, :p] @ Phi @ F[:, :p].T
        GL = ((Gq + Gq.T) / 2) @ Lam
        r, c, idx, _ = self._lam_index
        g_th = 2.0 * np.bincount(idx, weights=GL[r, c], minlength=self.ntheta)
        return np.concatenate([g_th, g_xi])

    def __call__(self, x: np.ndarray, reml: bool = True) -> float:
        # far from the optimum a trial point may overflow: it is then simply not a candidate
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                crit = self._factor(x, reml)[0]
            except (np.linalg.LinAlgError, ValueError, FloatingPointError):
                return np.inf
        return crit if np.isfinite(crit) else np.inf

    def solve(self, x: np.ndarray, reml: bool = True) -> dict:
        """beta, sigma, vcov, criterion, and the BLUPs of lme4's terms at ``x``."""
        crit, parts, (theta, xi, Lam, Lc, RZ, _, _) = self._factor(x, reml)
        out = lme4_estimates(parts, self.n, self.p, reml)
        out["criterion"] = crit
        out["b_terms"], out["condvar_terms"] = [], []
        if self.q:
            p = self.p
            u = sla.solve_triangular(Lc.T, RZ[:, p] - RZ[:, :p] @ out["beta"], lower=False)
            b = Lam @ u
            Li = sla.solve_triangular(Lc, np.eye(self.q), lower=True)
            LL = Lam @ Li.T
            s2 = out["sigma"] ** 2
            for t in self.terms:
                out["b_terms"].append(b[t.offset:t.offset + t.q].reshape(t.nlev, t.k))
                blk = LL[t.offset:t.offset + t.q].reshape(t.nlev, t.k, self.q)
                out["condvar_terms"].append(s2 * blk @ np.swapaxes(blk, 1, 2))
        return out


# --------------------------------------------------------------------------- the fit
@dataclass
class ResidualFit:
    """A fitted residual structure: what :class:`vcomp.MixedModel` reports and the inference uses.

    Attributes
    ----------
    spec : ResidualSpec
    structure : ResidualStructure
    layout : Layout
    criterion : ResidualCriterion
    x : ndarray
        Optimum of the criterion (theta of lme4's terms, then the structure's ``xi``).
    gamma : ndarray
        The structure's natural parameters at the optimum (``structure.infer_names``).
    sigma2 : float
        The profiled scale.
    reml : bool
    scale : float
        The response's scale ``s`` of the model's standardisation: everything above is internal
        (variances in units of ``s^2``); ``params`` and ``varcorr_rows`` are in the data's units.
    """

    spec: ResidualSpec
    structure: ResidualStructure
    layout: Layout
    criterion: ResidualCriterion
    x: np.ndarray
    gamma: np.ndarray
    sigma2: float
    reml: bool
    scale: float = 1.0
    cache: dict = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """Variance parameters beyond lme4's theta and the residual scale."""
        return int(self.structure.n_xi)

    @property
    def params(self) -> pd.DataFrame:
        """``residual_params``: ``name, estimate``."""
        names = list(self.structure.names)
        est = self.structure.reported(self.gamma).astype(float)
        est = np.where([n.startswith("sigma2") for n in names], est * self.scale ** 2, est)
        return pd.DataFrame({"name": names, "estimate": est})

    @property
    def nugget(self) -> tuple[str, float] | None:
        """Name and variance (data units) of a ``(1 | plot)`` nugget."""
        if isinstance(self.structure, WithNugget):
            return self.structure.nugget_name, float(self.gamma[-1]) * self.scale ** 2
        return None

    @property
    def singular(self) -> bool:
        return bool(self.structure.singular(self.gamma))

    def varcorr_rows(self) -> list:
        """Rows ``(grp, var1, var2, vcov, sdcor)``: the nugget (a random term), then ``Residual`` rows,
        one per parameter (``var1`` = its name; ``sdcor`` = SD of a variance, the correlation itself)."""
        rows = []
        nug = self.nugget
        if nug is not None:
            rows.append((nug[0], "(Intercept)", None, nug[1], np.sqrt(max(nug[1], 0.0))))
        for name, v in zip(self.params["name"], self.params["estimate"]):
            sd = np.sqrt(max(v, 0.0)) if name.startswith("sigma2") else v
            rows.append(("Residual", name, None, float(v), float(sd)))
        return rows

    def describe(self) -> str:
        return "Residual covariance: %s (%d blocks, %d patterns)" % (self.spec.text, self.layout.nblocks,
                                                                     len(self.layout.patterns))


def _partial_optimum(crit: ResidualCriterion, x0: np.ndarray, free: np.ndarray, reml: bool) -> np.ndarray:
    """``x0`` with the ``free`` coordinates optimised and the others held (a start value)."""
    x0 = np.asarray(x0, dtype=float)
    if not np.any(free):
        return x0

    def full(v):
        x = x0.copy()
        x[free] = v
        return x

    o = optimize_theta(lambda v: crit(full(v), reml), x0[free], crit.lower[free],
                       fg=_value_and_grad(crit, reml, full, free))
    return full(o.theta)


def fit_residual(spec: ResidualSpec, frame: pd.DataFrame, X: np.ndarray, y: np.ndarray, terms: list,
                 Z, nugget: str | None, reml: bool = True, x0: np.ndarray | None = None, scale: float = 1.0
                 ) -> tuple[ResidualFit, dict, object]:
    """Fit a model with a residual structure.

    Parameters
    ----------
    spec : ResidualSpec
    frame : DataFrame
        The structure's columns, one row per row of ``X``.
    X, y : ndarray
        Fixed-effects matrix and response (the model's internal, standardised ones).
    terms : list of ReTerm
        lme4's random terms without the nugget.
    Z : sparse matrix or None
        Their internal ``Z``.
    nugget : str or None
        Group name of a ``(1 | plot)`` nugget.
    reml : bool
    x0 : ndarray, optional
        Starting point (internal theta, then xi).
    scale : float
        The standardisation's response scale (for reporting, see :class:`ResidualFit`).

    Returns
    -------
    (ResidualFit, solution dict as lme4's kernels return it, OptResult)
    """
    structure, layout = build_structure(spec, frame, nugget)
    crit = ResidualCriterion(structure, layout, X, y, terms, Z)
    return _optimize(spec, crit, reml, x0, scale)


def refit_residual(fit: ResidualFit, X: np.ndarray, y: np.ndarray, Z, reml: bool, scale: float
                   ) -> tuple[ResidualFit, dict, object]:
    """The same structure, terms and ``X`` with a new (internal) response, warm-started at ``fit.x``."""
    c = fit.criterion
    crit = ResidualCriterion(fit.structure, c.data_layout, X, y, c.terms, Z)
    return _optimize(fit.spec, crit, reml, fit.x, scale)


def _optimize(spec: ResidualSpec, crit: ResidualCriterion, reml: bool, x0, scale: float):
    """Minimise the criterion from ``x0`` or from data-based starts; the fit at the optimum."""
    from .reterm import theta_layout
    structure, layout, terms = crit.structure, crit.layout, crit.terms
    nugget = isinstance(structure, WithNugget)
    theta_start = theta_layout(terms)[1]
    if x0 is not None:
        starts = [np.asarray(x0, dtype=float)]
        if starts[0].shape != crit.lower.shape:
            raise DataError("theta0 has %d values; this model has %d variance parameters (lme4's theta, then "
                            "the residual structure's)" % (starts[0].size, crit.lower.size))
    else:
        resid = crit.ols_residuals()
        starts = [np.concatenate([theta_start, structure.xi_start(layout, resid)])]
    # each evaluation is a handful of small products: BLAS threads only thrash there
    with _one_blas_thread():
        if x0 is None and (terms or nugget):
            # least-squares residuals carry the random effects, and lme4's start can fall into a basin
            # where the correlation absorbs them: also start from the random terms fitted with the
            # residual correlations held at 0
            xn = np.concatenate([theta_start, structure.xi_start(layout, resid, corr=False)])
            free = np.zeros(len(xn), dtype=bool)
            free[:crit.ntheta] = True
            if isinstance(structure, WithNugget):
                free[-1] = True
            starts.append(_partial_optimum(crit, xn, free, reml))
        opt = None
        for x in starts:
            if not np.isfinite(crit(x, reml)):
                x = np.concatenate([theta_start, np.zeros(structure.n_xi)])
                if isinstance(structure, WithNugget):
                    x[-1] = 0.5
            o = optimize_theta(lambda v: crit(v, reml), x, crit.lower, fg=_value_and_grad(crit, reml))
            if opt is None or o.fun < opt.fun - 1e-9:
                opt = o
    sol = crit.solve(opt.theta, reml)
    _, xi = crit.split(opt.theta)
    s2 = float(sol["sigma"]) ** 2
    fit = ResidualFit(spec, structure, layout, crit, np.asarray(opt.theta, dtype=float),
                      structure.natural(xi, s2), s2, bool(reml), float(scale))
    return fit, sol, opt


def ml_refit(fit: ResidualFit) -> tuple[np.ndarray, float]:
    """The ML optimum of the same model from the stored cross-products (lme4's ``refitML``), started at
    the fit's own parameters: the internal parameters (θ, then the structure's) and the internal deviance."""
    crit = fit.criterion
    with _one_blas_thread():
        opt = optimize_theta(lambda v: crit(v, False), np.asarray(fit.x, dtype=float), crit.lower,
                             fg=_value_and_grad(crit, False))
    return np.asarray(opt.theta, dtype=float), float(opt.fun)


# --------------------------------------------------------------------------- inference pieces
def _dmul(t, i: int, j: int, A: np.ndarray) -> np.ndarray:
    """``D A`` for ``D`` the indicator of entry (i, j) (and (j, i)) of term ``t``'s covariance, q rows."""
    out = np.zeros_like(A)
    base = t.offset + np.arange(t.nlev) * t.k
    out[base + i] = A[base + j]
    if i != j:
        out[base + j] = A[base + i]
    return out


def _random_varpars(terms: list, theta: np.ndarray, s2: float) -> tuple[list, list]:
    """pbkrtest's random-effect parameters: per term, its covariance's lower triangle (column-major)."""
    out, gam = [], []
    for t in terms:
        L = t.lam(theta[t.theta_slice])
        C = s2 * L @ L.T
        for j in range(t.k):
            for i in range(j, t.k):
                out.append((t, i, j, "%s:%s:%s" % (t.name, t.coef_names[i], t.coef_names[j])))
                gam.append(C[i, j])
    return out, gam


def residual_pieces(fit: ResidualFit, terms: list, theta: np.ndarray, beta: np.ndarray):
    """Satterthwaite and Kenward-Roger ingredients of a residual-structure fit (no n x n matrix).

    Parameters
    ----------
    fit : ResidualFit
    terms : list of ReTerm
        lme4's random terms of the model (without the nugget).
    theta : ndarray
        Their theta.
    beta : ndarray
        The fixed effects of the fit (of the criterion's ``X`` and ``y``).

    Returns
    -------
    vcomp.inference._pieces.Pieces
        With ``cache["satt"]`` = ``vcov_varpar`` (twice the inverse observed Hessian of the REML
        deviance in ``gamma``, on its positive eigen-space) and ``jac`` (``dPhi/dgamma``).
    """
    from ..inference._pieces import VarPar, _assemble

    crit, st, lay = fit.criterion, fit.structure, fit.layout
    xp = crit.xp
    p, q = crit.p, crit.q
    s2 = fit.sigma2
    gam_r = np.asarray(fit.gamma, dtype=float)
    pats = lay.patterns
    # natural blocks and their derivatives
    Rs, Rinv, d1, d2 = [], [], [], []
    for pat in pats:
        R, a1, a2 = st.cov_derivs(pat, gam_r)
        Rs.append(R)
        Ri = np.linalg.inv(R)
        Rinv.append((Ri + Ri.T) / 2)
        d1.append(a1)
        d2.append(a2)
    nr = len(st.infer_names)
    M0 = xp.M(Rinv)
    m = M0.shape[0]
    # Woodbury pieces in W-space
    if q:
        Lam = lambda_dense(terms, theta)
        Gam = np.sqrt(s2) * Lam
        Cg = Gam.T @ M0[:q, :q] @ Gam + np.eye(q)
        K = Gam @ np.linalg.solve(Cg, Gam.T)
        K = (K + K.T) / 2
        T = np.eye(m)
        T[:q, :] -= K @ M0[:q, :]
        Mq = np.eye(q) - K @ M0[:q, :q]
    else:
        K = np.zeros((0, 0))
        T = None
        Mq = np.zeros((0, 0))
    Y = np.zeros((m, p + 1))
    Y[q:q + p, :p] = np.eye(p)
    Y[q:q + p, p] = -beta
    Y[q + p, p] = 1.0
    TY = Y if T is None else T @ Y

    def sand(Mw: np.ndarray) -> np.ndarray:
        return TY.T @ Mw @ TY

    H0Y = M0 @ TY
    XHX0 = Y.T @ H0Y
    Phi = np.linalg.inv((XHX0[:p, :p] + XHX0[:p, :p].T) / 2)
    Phi = (Phi + Phi.T) / 2
    F = H0Y[:q]                                   # Z'V^-1 [X r]
    S = (M0[:q, :q] @ Mq) if q else np.zeros((0, 0))  # Z'V^-1 Z
    S = (S + S.T) / 2

    # parameter list: random covariances (G-type), then the structure's (R-type)
    rv, gam_g = _random_varpars(terms, theta, s2)
    ng = len(rv) + nr
    kinds = [("G", v) for v in rv] + [("R", a) for a in range(nr)]
    varpars = [VarPar(0 if kk == "G" else -1, 0, 0, v[3] if kk == "G" else st.infer_names[v]) for kk, v in kinds]
    gamma = np.concatenate([gam_g, gam_r])

    # per R-parameter W-space matrices
    RiRa = [[None if a not in d1[i] else Rinv[i] @ d1[i][a] for i in range(len(pats))] for a in range(nr)]
    Ma = [xp.M([None if B is None else B @ Rinv[i] for i, B in enumerate(RiRa[a])]) for a in range(nr)]
    t1 = [sum(pats[i].count * np.trace(B) for i, B in enumerate(RiRa[a]) if B is not None) for a in range(nr)]

    XHX, ZHY, ZHZ, trSiG = [], [], [], []
    for kk, v in kinds:
        if kk == "G":
            t, i, j = v[0], v[1], v[2]
            DF = _dmul(t, i, j, F)
            DS = _dmul(t, i, j, S)
            XHX.append(F.T @ DF)
            ZHY.append(S @ DF)
            ZHZ.append(S @ DS)
            trSiG.append(float(np.trace(DS)))
        else:
            Mw = Ma[v]
            XHX.append(sand(Mw))
            if q:
                ZHY.append(Mq.T @ Mw[:q, :] @ TY)
                ZHZ.append(Mq.T @ Mw[:q, :q] @ Mq)
                trSiG.append(t1[v] - float(np.sum(K * Mw[:q, :q])))
            else:
                ZHY.append(None)
                ZHZ.append(None)
                trSiG.append(t1[v])
    P = [-(h[:p, :p] + h[:p, :p].T) / 2 for h in XHX]
    cvec = [h[:p, p] for h in XHX]
    ypgpy = [float(h[p, p]) for h in XHX]

    Q, Ktr, bSb = {}, np.zeros((ng, ng)), np.zeros((ng, ng))
    Nsec = {}                                     # second-derivative terms (R-type pairs)
    for a in range(ng):
        ka, va = kinds[a]
        for b in range(a, ng):
            kb, vb = kinds[b]
            if ka == "G" and kb == "G":
                DSb = _dmul(vb[0], vb[1], vb[2], S)
                QQ = _dmul(va[0], va[1], va[2], F).T @ (S @ _dmul(vb[0], vb[1], vb[2], F))
                kt = float(np.sum(_dmul(va[0], va[1], va[2], S) * DSb.T))
            elif ka == "G":
                QQ = _dmul(va[0], va[1], va[2], F).T @ ZHY[b]
                kt = float(np.trace(_dmul(va[0], va[1], va[2], ZHZ[b])))
            elif kb == "G":
                QQ = ZHY[a].T @ _dmul(vb[0], vb[1], vb[2], F)
                kt = float(np.trace(_dmul(vb[0], vb[1], vb[2], ZHZ[a])))
            else:
                Bs, tab = [], 0.0
                for i in range(len(pats)):
                    A1, A2 = RiRa[va][i], RiRa[vb][i]
                    if A1 is None or A2 is None:
                        Bs.append(None)
                        continue
                    Bs.append(A1 @ A2 @ Rinv[i])
                    tab += pats[i].count * float(np.sum(A1 * A2.T))
                Mab = xp.M(Bs)
                QQ = sand(Mab)
                kt = tab
                if q:
                    Ua, Ub = Ma[va][:q, :] @ TY, Ma[vb][:q, :] @ TY
                    QQ = QQ - Ua.T @ K @ Ub
                    kt += -2.0 * float(np.sum(K * Mab[:q, :q].T)) \
                        + float(np.sum((K @ Ma[va][:q, :q]) * (K @ Ma[vb][:q, :q]).T))
                sec = [None if (va, vb) not in d2[i] else Rinv[i] @ d2[i][va, vb] @ Rinv[i] for i in range(len(pats))]
                if any(s_ is not None for s_ in sec):
                    Nw = xp.M(sec)
                    trv = sum(pats[i].count * float(np.sum(sec[i] * Rs[i].T))
                              for i in range(len(pats)) if sec[i] is not None)
                    if q:
                        trv -= float(np.sum(K * Nw[:q, :q]))
                    Nsec[a, b] = (trv, sand(Nw))
            Q[a, b] = QQ[:p, :p]
            Ktr[a, b] = Ktr[b, a] = kt
            bSb[a, b] = bSb[b, a] = float(QQ[p, p])
    pc = _assemble(beta, Phi, varpars, gamma, P, Q, Ktr, bSb, cvec, trSiG, ypgpy, np.asarray(fit.x),
                   np.sqrt(s2), [], fit.reml)
    H = pc.Hobs.copy()
    for (a, b), (trv, XNX) in Nsec.items():
        add = (trv - float(np.sum(Phi * XNX[:p, :p])) if fit.reml else trv) - float(XNX[p, p])
        H[a, b] += add
        if a != b:
            H[b, a] += add
    pc.Hobs = (H + H.T) / 2
    w, U = np.linalg.eigh(pc.Hobs)
    pos = w > 1e-8
    A = 2.0 * (U[:, pos] / w[pos]) @ U[:, pos].T
    jac = np.array([-(Phi @ Pr @ Phi) for Pr in P])
    pc.cache["satt"] = {"vcov_varpar": A, "jac": jac, "hessian": pc.Hobs}
    return pc
