"""Confidence intervals for method-of-moments variance components (SAS PROC VARCOMP ``CL``).

Every method-of-moments component is a linear combination of mean squares,
``sigma2_k = sum_q c_kq MS_q`` (the inverse of the expected-mean-square equations
that :func:`vcomp.anova` solves).  Two intervals follow from that combination:

* Satterthwaite: ``nu * est / chi2`` with Satterthwaite's df
  ``nu = est^2 / sum_q (c_kq MS_q)^2 / df_q`` (the residual: the exact chi-square interval).
* MLS, the modified large-sample interval of Graybill and Wang (1980) for sums of mean
  squares, extended to differences by Ting, Burdick, Graybill, Jeyaratnam and Lu (1990);
  see Burdick and Graybill (1992), *Confidence Intervals on Variance Components*, and the
  SAS PROC VARCOMP documentation ("Confidence Limits").
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .._errors import VcompError, check_level

__all__ = ["moment_equations", "component_coefficients", "satterthwaite_interval", "mls_interval",
           "components_ci"]

#: coefficients smaller than this (relative to the largest of a component) are rounding noise
COEF_RTOL = 1e-10


def moment_equations(result) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The expected-mean-square equations behind ``result.components``.

    This is the one place the intervals read the classical analysis: ``result.moments``, the EMS
    rows (of the random sources and the residual; for type I those of the fit with the fixed terms
    first), their mean squares and degrees of freedom.

    Parameters
    ----------
    result : AnovaResult

    Returns
    -------
    C : ndarray (k, k)
        EMS coefficients (rows: the sources whose mean squares are used; columns: components).
    ms, df : ndarray (k,)
        Their mean squares and degrees of freedom.
    comps : list of str
        Components (random terms, then ``"Residual"``), as ``result.components.index``.

    Raises
    ------
    VcompError
        If the components are not the solution of these equations (so that an interval
        built from them would belong to other estimates).
    """
    comps = [str(c) for c in result.components.index]
    mom = result.moments
    missing = [c for c in comps if c not in mom.index or c not in mom.columns]
    if missing:
        raise VcompError("components_ci: component(s) %s have no moment equation; the intervals are not "
                         "available." % ", ".join(missing))
    C = mom.loc[comps, comps].to_numpy(dtype=float)
    ms = mom.loc[comps, "MS"].to_numpy(dtype=float)
    df = mom.loc[comps, "df"].to_numpy(dtype=float)
    raw = result.components["raw"].to_numpy(dtype=float)
    if not (np.isfinite(C).all() and np.isfinite(ms).all() and np.isfinite(raw).all()):
        raise VcompError("components_ci: the method-of-moments components are not available (singular "
                         "expected-mean-square equations: a random term has no degrees of freedom of its own).")
    sol = np.linalg.solve(C, ms)
    if not np.allclose(sol, raw, rtol=1e-8, atol=1e-10 * max(1.0, float(np.max(np.abs(ms))))):
        raise VcompError("components_ci: result.components is not the solution of result.moments; "
                         "intervals need the mean squares the components came from.")
    return C, ms, df, comps


def component_coefficients(C: np.ndarray) -> np.ndarray:
    """Rows: each component as a combination of the mean squares (the inverse of ``C``),
    with rounding noise (relative ``COEF_RTOL``) set to zero."""
    A = np.linalg.inv(C)
    big = np.max(np.abs(A), axis=1, keepdims=True)
    A[np.abs(A) <= COEF_RTOL * big] = 0.0
    return A


def satterthwaite_interval(c: np.ndarray, ms: np.ndarray, df: np.ndarray, level: float
                           ) -> tuple[float, float, float, float]:
    """Satterthwaite's chi-square interval for ``sum c_q MS_q``.

    Returns
    -------
    estimate, df, lower, upper : float
        The raw estimate, Satterthwaite's df and the interval; ``[0, 0]`` when the estimate is
        not positive (a component truncated at zero).
    """
    terms = c * ms
    est = float(terms.sum())
    nu = est ** 2 / float(np.sum(terms ** 2 / df)) if np.any(terms) else np.nan
    if est <= 0:
        return est, nu, 0.0, 0.0
    a = (1.0 - level) / 2.0
    return est, nu, nu * est / stats.chi2.ppf(1 - a, nu), nu * est / stats.chi2.ppf(a, nu)


def mls_interval(c: np.ndarray, ms: np.ndarray, df: np.ndarray, level: float) -> tuple[float, float]:
    """Modified large-sample interval for ``sum c_q MS_q`` (Graybill-Wang; Ting et al. for differences).

    With ``a = (1 - level)/2``, ``G_q = 1 - df_q / chi2_{1-a, df_q}``, ``H_q = df_q / chi2_{a, df_q} - 1``
    and the F quantiles ``F_{1-a}`` / ``F_a`` of ``(df_q, df_r)`` for a positive term ``q`` and a negative
    term ``r``:

    ``V_L = sum_P G_q^2 c_q^2 MS_q^2 + sum_N H_r^2 c_r^2 MS_r^2 + sum_{P x N} G_qr c_q |c_r| MS_q MS_r
    + sum_{q<t in P} G*_qt c_q c_t MS_q MS_t`` and
    ``V_U = sum_P H_q^2 c_q^2 MS_q^2 + sum_N G_r^2 c_r^2 MS_r^2 + sum_{P x N} H_qr c_q |c_r| MS_q MS_r``,
    the interval ``[est - sqrt(V_L), est + sqrt(V_U)]``, truncated at zero.

    Returns
    -------
    lower, upper : float
    """
    a = (1.0 - level) / 2.0
    est = float(np.sum(c * ms))
    pos = [i for i in range(len(c)) if c[i] > 0]
    neg = [i for i in range(len(c)) if c[i] < 0]
    G = 1.0 - df / stats.chi2.ppf(1 - a, df)
    H = df / stats.chi2.ppf(a, df) - 1.0
    t = np.abs(c) * ms  # |c_q| MS_q
    vl = float(np.sum((G[pos] * t[pos]) ** 2) + np.sum((H[neg] * t[neg]) ** 2))
    vu = float(np.sum((H[pos] * t[pos]) ** 2) + np.sum((G[neg] * t[neg]) ** 2))
    for q in pos:
        for r in neg:
            f_hi = stats.f.ppf(1 - a, df[q], df[r])
            f_lo = stats.f.ppf(a, df[q], df[r])
            g_qr = ((f_hi - 1) ** 2 - G[q] ** 2 * f_hi ** 2 - H[r] ** 2) / f_hi
            h_qr = ((1 - f_lo) ** 2 - H[q] ** 2 * f_lo ** 2 - G[r] ** 2) / f_lo
            vl += g_qr * t[q] * t[r]
            vu += h_qr * t[q] * t[r]
    if len(pos) > 1:
        for i, q in enumerate(pos):
            for s in pos[i + 1:]:
                nqs = df[q] + df[s]
                g_all = 1.0 - nqs / stats.chi2.ppf(1 - a, nqs)
                g_star = (g_all ** 2 * nqs ** 2 / (df[q] * df[s]) - G[q] ** 2 * df[q] / df[s]
                          - G[s] ** 2 * df[s] / df[q]) / (len(pos) - 1)
                vl += g_star * t[q] * t[s]
    lower = est - np.sqrt(max(vl, 0.0))
    upper = est + np.sqrt(max(vu, 0.0))
    return max(lower, 0.0), max(upper, 0.0)


def components_ci(result, level: float = 0.95, method: str = "satterthwaite") -> pd.DataFrame:
    """Confidence intervals for the method-of-moments variance components of an ANOVA.

    Parameters
    ----------
    result : AnovaResult
        A classical analysis (``vcomp.anova`` / ``Design.anova``), type I, II or III.
    level : float
        Confidence level, in (0, 1).
    method : {"satterthwaite", "mls"}
        Satterthwaite's chi-square approximation, or the modified large-sample interval of
        Graybill and Wang (SAS PROC VARCOMP ``CL``).  The residual gets the exact chi-square
        interval either way.

    Returns
    -------
    ResultFrame
        A DataFrame: index = random terms then ``"Residual"``; columns ``estimate``
        (truncated at zero), ``lower``, ``upper``, ``raw`` (untruncated) and ``df``
        (Satterthwaite's).  A component truncated at zero gets lower = 0 (Satterthwaite:
        ``[0, 0]``; MLS: its own upper bound).

    Raises
    ------
    VcompError
        An unknown ``method`` or a ``level`` outside (0, 1); components not available.
    """
    from ..tables import titled

    methods = ("satterthwaite", "mls")
    if method not in methods:
        raise VcompError("components_ci: unknown method %r; use one of %s." % (method, ", ".join(map(repr, methods))))
    check_level(level)
    C, ms, df, comps = moment_equations(result)
    A = component_coefficients(C)
    rows = []
    for k in range(len(comps)):
        est, nu, lo, hi = satterthwaite_interval(A[k], ms, df, level)
        if method == "mls":
            lo, hi = mls_interval(A[k], ms, df, level)
        rows.append((max(est, 0.0), lo, hi, est, nu))
    frame = pd.DataFrame(rows, columns=["estimate", "lower", "upper", "raw", "df"],
                         index=pd.Index(comps, name="component"))
    name = {"satterthwaite": "Satterthwaite", "mls": "modified large-sample (Graybill-Wang)"}[method]
    notes = []
    trunc = [c for c, r in frame.iterrows() if r["raw"] <= 0]
    if trunc:
        notes.append("Truncated at zero (lower bound 0%s): %s." % (
            ", interval [0, 0]" if method == "satterthwaite" else "", ", ".join(trunc)))
    return titled(frame, "%g%% %s intervals for the variance components (method of moments, type %s)"
                  % (100 * level, name, {1: "I", 2: "II", 3: "III"}.get(result.ss_type, result.ss_type)),
                  index_name="Component", notes=notes)

