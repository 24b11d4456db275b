"""Least-squares means of the classical analysis (``AnovaResult.means``).

The means are ``L b`` of the all-fixed, sum-coded fit (every term of the design as a
fixed effect, as SAS PROC GLM's LSMEANS), on the reference grid of every factor of the
design (:mod:`vcomp.refgrid`). With ``G = (X'X)^+`` and the variance model
``V = sum_j s2_j Z_j Z_j' + s2 I`` of the design's random terms,

.. math:: \\mathrm{Var}(L b) = \\sum_j s^2_j \\lVert L G X'Z_j \\rVert^2 + s^2 L G L'

(``X'Z_j`` from the cell model, no ``n x n`` matrix), so the variance of a mean carries every
random stratum above it. The components are the method-of-moments solution of
``E[MS] = MS`` (:mod:`vcomp.classical.moments`), hence linear in the mean squares:
``Var(L b) = c' MS`` and its df is Satterthwaite's ``(c'MS)^2 / sum (c_k MS_k)^2 / df_k``.

* Balanced (orthogonal, equally replicated) data: the untruncated components, which make
  ``c' MS`` the textbook combination of stratum mean squares (equal to REML + Kenward-Roger
  whenever every component is positive).
* Otherwise: the truncated components (negative ones set to zero).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import VcompError
from ..means import GridSpec, Means, estimated_means
from ..terms import split_term, term_key
from .model import cell_coding

__all__ = ["classical_means", "is_orthogonal", "mean_square_weights"]


# The only place that reads the classical fit behind an AnovaResult (rewire here).
def _fixed_fit(result):
    """``(Prepared, CellModel)`` of the sum-coded all-fixed fit behind an :class:`AnovaResult`."""
    fit = getattr(result, "_fixed_fit", None)
    if fit is None:
        raise VcompError("this AnovaResult carries no fitted model; recompute it with vcomp.anova(...) "
                         "to get least-squares means")
    return fit


def is_orthogonal(model) -> bool:
    """Whether the design is balanced: every term equally replicated and every two terms orthogonal.

    Terms ``T1, T2`` (with ``I`` their common factors and ``U`` all their factors) are orthogonal
    with equal replication when each of ``T1, T2, I, U`` has equally replicated cells and
    ``r_U r_I = r_T1 r_T2`` (proportional frequencies within the cells of ``I``: every
    combination of a ``T1`` and a ``T2`` cell inside an ``I`` cell is present). Models with a
    covariate are not balanced.

    Parameters
    ----------
    model : CellModel
    """
    facs = set(model.cell_codes)
    if any(f not in facs for t in model.terms for f in split_term(t)):
        return False
    frame = pd.DataFrame({f: np.asarray(c) for f, c in model.cell_codes.items()})
    w = np.asarray(model.w, dtype=float)
    reps: dict = {}

    def rep(key: frozenset):
        if key not in reps:
            if not key:
                reps[key] = float(w.sum())
            else:
                n = pd.Series(w).groupby([frame[f] for f in sorted(key)]).sum().to_numpy()
                reps[key] = float(n[0]) if np.all(n == n[0]) else None
        return reps[key]

    keys = [term_key(t) for t in model.terms]
    if any(rep(k) is None for k in keys):
        return False
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            ru, ri = rep(keys[a] | keys[b]), rep(keys[a] & keys[b])
            if ru is None or ri is None or ru * ri != rep(keys[a]) * rep(keys[b]):
                return False
    return True


def mean_square_weights(result) -> tuple[list, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The method-of-moments components as linear combinations of the mean squares.

    The system is the analysis' own (``result.moments``: the random rows and the residual of the
    table the components were solved from, e.g. SAS PROC VARCOMP's fixed-first type I).

    Returns
    -------
    comps : list of str
        Random terms then ``"Residual"``.
    K : ndarray, shape (comps, comps)
        ``component = K @ MS`` (the inverse of the EMS coefficients of those rows).
    ms, df : ndarray
        Their mean squares and degrees of freedom.
    raw : ndarray
        The untruncated components.
    """
    comps = list(result.components.index)
    mom = result.moments
    if mom is not None:
        E = mom.loc[comps, comps].to_numpy(dtype=float)
        ms = mom.loc[comps, "MS"].to_numpy(dtype=float)
        df = mom.loc[comps, "df"].to_numpy(dtype=float)
    else:
        E = result.ems.loc[comps, comps].to_numpy(dtype=float)
        ms = result.table.loc[comps, "MS"].to_numpy(dtype=float)
        df = result.table.loc[comps, "df"].to_numpy(dtype=float)
    if not (np.isfinite(E).all() and np.isfinite(ms).all()) or np.linalg.cond(E) > 1e12:
        raise VcompError("the method-of-moments components are not available (a random term has no degrees of "
                         "freedom of its own), so the classical standard errors of means cannot be formed; "
                         "use the mixed model: design.lmm(data, response).means(term)")
    K = np.linalg.inv(E)
    return comps, K, ms, df, K @ ms


def classical_means(result, term, by=None, level: float = 0.95) -> Means:
    """Least-squares means of a fixed term of a classical analysis, with comparisons.

    Parameters
    ----------
    result : AnovaResult
    term : str
        A term of the design's fixed factors (``"nitro"``, ``"variety:nitro"``).
    by : str or list of str, optional
        Factors of ``term``: comparisons within each of their levels.
    level : float
        Confidence level.

    Returns
    -------
    Means
        SEs and df as described in the module docstring.
    """
    prep, model = _fixed_fit(result)
    fixed = [f for t in result.design.fixed_terms for f in split_term(t)]
    allowed = [f for f in prep.levels if f in fixed]
    comps, K, ms, df_ms, raw = mean_square_weights(result)
    balanced = is_orthogonal(model)
    keep = np.ones(len(comps), dtype=bool) if balanced else raw > 0
    G, xtx = model.G, model.xtx                        # in the cell model's standardised coordinates
    T = model.T if model.T is not None else np.eye(model.p)   # coded coefficients = T @ internal ones
    xz = [model.incidence_cross(r)[0] for r in comps[:-1]]
    icpt = np.flatnonzero(np.asarray(model.assign) < 0)
    R = np.eye(model.p) - G @ xtx                      # L T is estimable when L T R = 0

    coding = cell_coding(prep, model.terms)

    def rows_fn(grid: pd.DataFrame):
        values = {f: grid[f].to_numpy(dtype=np.int64) for f in prep.levels}
        values.update({v: grid[v].to_numpy(dtype=float) for v in prep.covars})
        X = coding.build(values, len(grid))
        return X, X @ T @ R

    def stats_fn(L: np.ndarray) -> dict:
        L = L @ T
        H = L @ G
        a = np.column_stack([np.sum((H @ m) ** 2, axis=1) for m in xz] + [np.sum(H * L, axis=1)])
        c = (a * keep[None, :]) @ K                      # Var = c @ MS
        var = c @ ms
        with np.errstate(divide="ignore", invalid="ignore"):
            df = var ** 2 / np.sum((c * ms[None, :]) ** 2 / df_ms[None, :], axis=1)
        est = L @ model.b + model.ybar * L[:, icpt].sum(axis=1)
        return {"estimate": est, "se": np.sqrt(np.clip(var, 0.0, None)), "df": df}

    spec = GridSpec(levels=dict(prep.levels), codes=dict(prep.codes), covariates=dict(prep.covars),
                    coef_names=list(model.colnames), weights=prep.w)
    how = ("stratum mean squares (balanced)" if balanced
           else "all-fixed least squares, truncated method-of-moments components")
    return estimated_means(spec, rows_fn, stats_fn, term, by=by, level=level, allowed=allowed,
                           method=how + ", Satterthwaite df", response=result.response,
                           non_estimable_hint="; the mixed model estimates them: design.lmm(data, response).means(term)")
