"""Kenward-Roger (1997) small-sample inference, exactly as pbkrtest 0.5.2 computes it.

``Phi_A`` is pbkrtest's ``vcovAdj``; the df ``m`` and scale ``lambda`` of a
hypothesis ``L`` follow ``.KR_adjust`` (and ``Lb_ddf`` for single rows).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from ._pieces import Pieces, kr_vcov_pieces

__all__ = ["kr_adjust", "kr_1d", "kr_rows", "kr_md"]


#: pbkrtest's ``.divZero``: ``x / y`` is 1 when both are 0.  Both are differences ``1 - A2/q`` and
#: ``1 - c2 B`` of terms of order 1 that cancel exactly in balanced strata; pbkrtest's 1e-14 sits
#: below the rounding of those terms (about 1e-13), so the ratio of two rounding errors decided the
#: df (2.00 or 2.02, and with it F).  Zero here means zero to rounding.
_ZERO = 1e-11


def _div0(x: float, y: float, tol: float = _ZERO) -> float:
    return 1.0 if (abs(x) < tol and abs(y) < tol) else x / y


def _row_rank(L: np.ndarray, LPL: np.ndarray) -> int:
    """Rank of ``L`` (r x p) given ``L Phi L'`` for a positive definite Phi: r when its Cholesky pivots
    are well away from 0 (a dependent row leaves a pivot at rounding level), else the SVD rank."""
    r = L.shape[0]
    if r == 1:
        return int(np.any(L))
    try:
        d = np.diag(np.linalg.cholesky(LPL))
        if d.min() ** 2 > 1e-10 * d.max() ** 2:
            return r
    except np.linalg.LinAlgError:
        pass
    return int(np.linalg.matrix_rank(L))


def _p_stack(pc: Pieces) -> np.ndarray:
    """The ``P_a`` (ng x p x p) as one array, cached on the pieces."""
    P = pc.cache.get("P_stack")
    if P is None:
        P = pc.cache["P_stack"] = np.stack(pc.P)
    return P


def kr_adjust(pc: Pieces, L: np.ndarray) -> dict:
    """Kenward-Roger's ``A1, A2``, df and F scaling for the hypothesis ``L @ beta = 0``.

    Parameters
    ----------
    pc : Pieces
    L : ndarray, shape (r, p)
        Full row rank.

    Returns
    -------
    dict
        ``q`` (rank), ``ddf``, ``scale`` (lambda), ``wald`` (``beta'L'(L Phi_A L')^{-1}L beta``).
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    kr = kr_vcov_pieces(pc)
    Phi, PhiA, W = pc.Phi, kr["PhiA"], kr["W"]
    LPhi = L @ Phi
    LPL = LPhi @ L.T
    q = _row_rank(L, LPL)
    # tr(Theta Phi P_a Phi) and tr(Theta Phi P_a Phi Theta Phi P_c Phi), Theta = L'(L Phi L')^-1 L,
    # as traces of r x r matrices N_a = (L Phi L')^-1 (L Phi) P_a (L Phi)' (cyclic permutation)
    N = np.linalg.solve(LPL, LPhi @ _p_stack(pc) @ LPhi.T)      # ng x r x r
    tr = np.trace(N, axis1=1, axis2=2)
    A1 = tr @ W @ tr                                 # numpy scalars: a degenerate 0/0 gives nan, as in R
    A2 = np.einsum("ac,aij,cji->", W, N, N)
    with np.errstate(divide="ignore", invalid="ignore"):   # R's arithmetic: x/0 is Inf, 0/0 NaN
        B = (A1 + 6.0 * A2) / (2.0 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0 = 1 + c1 * B
        V1 = 1 - c2 * B
        V2 = 1 - c3 * B
        if abs(V0) < 1e-10:
            V0 = 0.0
        rho = 1.0 / q * _div0(1 - A2 / q, V1) ** 2 * V0 / V2
        df2 = 4 + (q + 2) / (q * rho - 1)
        scale = 1.0 if abs(df2 - 2) < 0.01 else df2 * (1 - A2 / q) / (df2 - 2)
    Lb = L @ pc.beta
    wald = float(Lb @ np.linalg.solve(L @ PhiA @ L.T, Lb))
    return {"q": q, "ddf": float(df2), "scale": float(scale), "wald": wald, "A1": float(A1), "A2": float(A2)}


def kr_1d(pc: Pieces, L: np.ndarray) -> dict:
    """t test of one linear combination with the adjusted SE and pbkrtest's ``Lb_ddf`` df.

    Returns
    -------
    dict
        ``estimate, se, df, t, p`` (as lmerTest's ``summary(ddf = "Kenward-Roger")``).
    """
    L = np.asarray(L, dtype=float).ravel()
    kr = kr_vcov_pieces(pc)
    est = float(L @ pc.beta)
    se = float(np.sqrt(L @ kr["PhiA"] @ L))
    df = kr_adjust(pc, L[None, :])["ddf"]
    t = est / se if se > 0 else np.nan
    p = float(2.0 * special.stdtr(df, -abs(t))) if np.isfinite(t) else np.nan
    return {"estimate": est, "se": se, "df": float(df), "t": float(t), "p": p}


def kr_rows(pc: Pieces, L: np.ndarray) -> dict:
    """:func:`kr_1d` for every row of ``L`` at once (pbkrtest's ``Lb_ddf`` per row, adjusted SEs).

    For one row, ``Theta Phi P_a Phi`` has rank one, so ``A2 = A1 = t' W t`` with
    ``t_a = L Phi P_a Phi L' / L Phi L'``; the df then follow :func:`kr_adjust` with ``q = 1``.

    Parameters
    ----------
    pc : Pieces
    L : ndarray, shape (m, p)

    Returns
    -------
    dict
        ``estimate, se, df`` as arrays of length ``m``.
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    kr = kr_vcov_pieces(pc)
    LPhi = L @ pc.Phi
    s = np.einsum("ij,ij->i", LPhi, L)
    t = np.stack([np.einsum("ij,jk,ik->i", LPhi, Pa, LPhi) for Pa in pc.P], axis=1) / s[:, None]
    A1 = np.einsum("ia,ab,ib->i", t, kr["W"], t)
    A2 = A1
    B = (A1 + 6.0 * A2) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (2.0 * A1 - 5.0 * A2) / (3.0 * A2)
        den = 3.0 + 2.0 * (1.0 - g)
        c1, c2, c3 = g / den, (1.0 - g) / den, (3.0 - g) / den
        V0 = 1.0 + c1 * B
        V1 = 1.0 - c2 * B
        V2 = 1.0 - c3 * B
        V0 = np.where(np.abs(V0) < 1e-10, 0.0, V0)
        x = 1.0 - A2
        ratio = np.where((np.abs(x) < _ZERO) & (np.abs(V1) < _ZERO), 1.0, x / V1)
        rho = ratio ** 2 * V0 / V2
        df = 4.0 + 3.0 / (rho - 1.0)
    se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", L, kr["PhiA"], L), 0.0, None))
    return {"estimate": L @ pc.beta, "se": se, "df": df}


def kr_md(pc: Pieces, L: np.ndarray) -> dict:
    """F test of ``L @ beta = 0``: ``F = lambda * Wald(Phi_A) / q`` on ``(q, m)`` df (KRmodcomp).

    Returns
    -------
    dict
        ``num_df, den_df, F, p``.
    """
    a = kr_adjust(pc, L)
    F = a["scale"] * a["wald"] / a["q"]
    p = float(special.fdtrc(a["q"], a["ddf"], F))
    return {"num_df": a["q"], "den_df": a["ddf"], "F": float(F), "p": p}
