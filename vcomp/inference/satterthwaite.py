"""Satterthwaite's denominator degrees of freedom, exactly as lmerTest 3.1-3 computes them.

lmerTest differentiates ``Var(beta)`` and the REML deviance numerically in
``varpar = (theta, sigma)``; here the same quantities come analytically from the
cached ingredients (see :func:`vcomp.inference._pieces.satterthwaite_pieces`).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from ._pieces import Pieces, satterthwaite_pieces

__all__ = ["satterthwaite_1d", "satterthwaite_rows", "satterthwaite_md", "fstat_ddf"]

_EPS = float(np.sqrt(np.finfo(float).eps))


def _qform(x: np.ndarray, A: np.ndarray) -> float:
    return float(x @ A @ x)


def satterthwaite_1d(pc: Pieces, L: np.ndarray) -> dict:
    """t test of one linear combination ``L @ beta = 0`` (lmerTest's ``contest1D``).

    Parameters
    ----------
    pc : Pieces
        Cached ingredients of the model.
    L : ndarray, shape (p,)

    Returns
    -------
    dict
        ``estimate, se, df, t, p``.
    """
    L = np.asarray(L, dtype=float).ravel()
    sp_ = satterthwaite_pieces(pc)
    est = float(L @ pc.beta)
    var = _qform(L, pc.Phi)
    g = np.array([_qform(L, J) for J in sp_["jac"]])
    denom = _qform(g, sp_["vcov_varpar"])
    df = 2.0 * var ** 2 / denom if denom > 0 else np.inf
    se = np.sqrt(var)
    t = est / se if se > 0 else np.nan
    p = float(2.0 * special.stdtr(df, -abs(t))) if np.isfinite(t) else np.nan
    return {"estimate": est, "se": float(se), "df": float(df), "t": float(t), "p": p}


def satterthwaite_rows(pc: Pieces, L: np.ndarray) -> dict:
    """:func:`satterthwaite_1d` for every row of an ``(m, p)`` ``L`` at once (means, pairwise
    differences): a dict of the arrays ``estimate, se, df`` (length ``m``)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    sp_ = satterthwaite_pieces(pc)
    var = np.einsum("ij,jk,ik->i", L, pc.Phi, L)
    g = np.einsum("ij,vjk,ik->iv", L, sp_["jac"], L)          # m x nv: d var / d varpar
    denom = np.einsum("iv,vw,iw->i", g, sp_["vcov_varpar"], g)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, 2.0 * var ** 2 / np.where(denom > 0, denom, 1.0), np.inf)
    return {"estimate": L @ pc.beta, "se": np.sqrt(np.clip(var, 0.0, None)), "df": df}


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """Combine per-direction t df into the F denominator df (lmerTest's ``get_Fstat_ddf``)."""
    nu = np.asarray(nu, dtype=float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * E / (E - nu.size)


def satterthwaite_md(pc: Pieces, L: np.ndarray) -> dict:
    """F test of ``L @ beta = 0`` for a multi-row ``L`` (lmerTest's ``contestMD``).

    Parameters
    ----------
    pc : Pieces
    L : ndarray, shape (r, p)

    Returns
    -------
    dict
        ``num_df, den_df, F, p``.
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[0] == 1:
        r = satterthwaite_1d(pc, L[0])
        return {"num_df": 1, "den_df": r["df"], "F": r["t"] ** 2, "p": r["p"]}
    VL = L @ pc.Phi @ L.T
    d, P = np.linalg.eigh((VL + VL.T) / 2)
    order = np.argsort(d)[::-1]
    d, P = d[order], P[:, order]
    tol = max(_EPS * d[0], 0.0)
    q = int(np.sum(d > tol))
    if q <= 0:
        return {"num_df": 0, "den_df": np.nan, "F": np.nan, "p": np.nan}
    PtL = P[:, :q].T @ L
    if q == 1:
        r = satterthwaite_1d(pc, PtL[0])
        return {"num_df": 1, "den_df": r["df"], "F": r["t"] ** 2, "p": r["p"]}
    sp_ = satterthwaite_pieces(pc)
    t2 = (PtL @ pc.beta) ** 2 / d[:q]
    F = float(np.sum(t2) / q)
    nu = []
    for m in range(q):
        g = np.array([_qform(PtL[m], J) for J in sp_["jac"]])
        den = _qform(g, sp_["vcov_varpar"])
        nu.append(2.0 * d[m] ** 2 / den if den > 0 else np.inf)
    ddf = fstat_ddf(np.array(nu))
    p = float(special.fdtrc(q, ddf, F))
    return {"num_df": q, "den_df": float(ddf), "F": F, "p": p}
