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

__all__ = ["SourceForm", "source_form", "ems_row", "residual_ems", "fixed_parts"]


@dataclass
class SourceForm:
    """Quadratic form of one source: ``H = L G``, ``S = L G L'`` (Cholesky-factored)."""

    L: np.ndarray
    H: np.ndarray
    S: np.ndarray
    df: int
    ss: float

    def quad(self, M: np.ndarray) -> np.ndarray:
        """``M' S^{-1} M``."""
        return M.T @ np.linalg.solve(self.S, M)

    def trace(self, M: np.ndarray) -> float:
        """``tr(S^{-1} M M')`` = sum of squares of ``S^{-1/2} M``."""
        return float(np.sum(np.linalg.solve(self.S, M) * M))


def source_form(L: np.ndarray, G: np.ndarray, b: np.ndarray) -> SourceForm:
    """Quadratic form and sum of squares of the hypothesis ``L beta = 0``."""
    r = L.shape[0]
    if r == 0:
        return SourceForm(L, np.zeros((0, G.shape[0])), np.zeros((0, 0)), 0, 0.0)
    H = L @ G
    S = H @ L.T
    S = (S + S.T) / 2
    lb = L @ b
    ss = float(lb @ np.linalg.solve(S, lb))
    return SourceForm(L, H, S, r, max(ss, 0.0))


def ems_row(form: SourceForm, xz: list[np.ndarray]) -> np.ndarray:
    """EMS coefficients of one source for the random terms whose ``X'Z_j`` are ``xz``."""
    if form.df == 0:
        return np.full(len(xz), np.nan)
    return np.array([form.trace(form.H @ m) / form.df for m in xz])


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
    for name, cols in fixed_cols.items():
        c = form.H @ xtx[:, cols]
        q = form.quad(c)
        scale = max(1.0, 1e-2 * float(np.max(np.abs(np.diag(xtx)[cols]))))
        if np.max(np.abs(q)) > tol * scale:
            out.append(name)
    return out
