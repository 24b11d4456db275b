"""Sums of squares and expected mean squares (Hartley's synthesis) from cross-products.

A source with hypothesis matrix ``L`` (``r x p``, full row rank, estimable)
has the quadratic form ``A = X G L' (L G L')^{-1} L G X'`` with ``G = pinv(X'X)``.
Its sum of squares is ``(Lb)' (L G L')^{-1} (Lb)`` and the coefficient of the
variance component of random term ``j`` in its expected mean square is
``tr(Z_j' A Z_j) / r = tr((L G L')^{-1} L G (X'Z_j)(Z_j'X) G L') / r``.
For the residual (``A = I - X G X'``) it is
``(tr(Z_j'Z_j) - tr(Z_j'X G X'Z_j)) / df_resid``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dtrtri as _trtri

__all__ = ["SourceForm", "source_form", "ems_row", "residual_ems", "fixed_parts"]


@dataclass
class SourceForm:
    """Quadratic form of one source, whitened: ``W = C^{-1} L G`` with ``L G L' = C C'``.

    Then ``A = X W' W X'``, ``SS = ||C^{-1} L b||^2`` and ``tr(M' A M) = ||W X'M||_F^2``.
    """

    L: np.ndarray
    W: np.ndarray
    df: int
    ss: float

    def trace(self, xm: np.ndarray) -> float:
        """``tr(M' A M)`` given ``xm = X'M``."""
        v = self.W @ xm
        return float(np.sum(v * v))

    def quad(self, xm: np.ndarray) -> np.ndarray:
        """``M' A M`` given ``xm = X'M``."""
        v = self.W @ xm
        return v.T @ v


def _whitener(S: np.ndarray) -> np.ndarray:
    """``C^{-1}`` for ``S = C C'`` (Cholesky; eigen-decomposition if ``S`` is not numerically PD)."""
    try:
        c = np.linalg.cholesky(S)
        ci, info = _trtri(c, lower=1)          # the triangular inverse itself (no solve with I)
        if info == 0:
            return ci
        raise np.linalg.LinAlgError("singular factor")
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(S)
        keep = w > 1e-12 * max(w.max(), 0.0)
        return (v[:, keep] / np.sqrt(w[keep])).T


def source_form(L: np.ndarray, G: np.ndarray, b: np.ndarray) -> SourceForm:
    """Quadratic form and sum of squares of the hypothesis ``L beta = 0``."""
    r = L.shape[0]
    if r == 0:
        return SourceForm(L, np.zeros((0, G.shape[0])), 0, 0.0)
    H = L @ G
    S = H @ L.T
    Ci = _whitener((S + S.T) / 2)
    W = Ci @ H
    z = Ci @ (L @ b)
    return SourceForm(L, W, Ci.shape[0], float(z @ z))


def ems_row(form: SourceForm, xz: list[np.ndarray]) -> np.ndarray:
    """EMS coefficients of one source for the random terms whose ``X'Z_j`` are ``xz``."""
    if form.df == 0:
        return np.full(len(xz), np.nan)
    return np.array([form.trace(m) / form.df for m in xz])


def residual_ems(G: np.ndarray, xz: list[np.ndarray], zz: list[np.ndarray], df_resid: int) -> np.ndarray:
    """EMS coefficients of the residual for the random terms."""
    if df_resid <= 0:
        return np.full(len(xz), np.nan)
    return np.array([(z.sum() - float(np.sum(m * (G @ m)))) / df_resid for m, z in zip(xz, zz)])


def fixed_parts(form: SourceForm, xtx: np.ndarray, fixed_cols: dict[str, np.ndarray],
                tol: float = 1e-8) -> list[str]:
    """Fixed terms whose effects enter the source's expected mean square (SAS's ``Q(...)``).

    Term ``f`` (columns ``F``) is in the EMS when ``X_F' A X_F`` is not zero.
    """
    if form.df == 0:
        return []
    out = []
    dg = np.abs(np.diagonal(xtx))
    for name, cols in fixed_cols.items():
        q = form.quad(xtx[:, cols])
        scale = max(1.0, 1e-2 * float(np.max(dg[cols])))
        if np.max(np.abs(q)) > tol * scale:
            out.append(name)
    return out
