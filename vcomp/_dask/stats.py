"""Reduced statistics: sums about a shift and their exact combination; per-cell moments.

Sums of products are formed about a shift ``K`` (each partition uses its own means), and two
sets are combined by moving both to their joint mean and adding (Chan, Golub and LeVeque's
pairwise update).  The final sums about any target (the global means, or 0) are then as
accurate as the in-memory centred products, whatever the offsets of the data.

Per-cell moments (count, mean and centred cross-products of a few variables in every
combination of the factors) are reduced the same way, and :func:`weighted_rows` turns them
into a few weighted rows per cell whose first and second moments are exactly those of the
data: the classical ANOVA (and the mixed model's type III contrasts) run on those rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..mixed.crossprod import level_sums

__all__ = ["Sums", "combine_sums", "CellStats", "cell_stats", "combine_cells", "weighted_rows"]


@dataclass
class Sums:
    """Sums over rows of ``w`` (``m`` columns) about the shift ``K``, and random-effect products.

    Attributes
    ----------
    n : int
    K : ndarray (m,)
    s : ndarray (m,)
        ``sum (w - K)``.
    M : ndarray (m, m)
        ``sum (w - K)(w - K)'``.
    ones : ndarray of bool (m,)
        Columns equal to 1 in every row.
    ZZ : ndarray (g, k, k) or sparse (q, q), optional
        ``Z'Z`` (per level in block form), original units.
    ZW : ndarray (g, k, m) or (q, m), optional
        ``sum z (w - K)'``.
    Z1 : ndarray (g, k) or (q,), optional
        ``sum z``.
    cells : CellStats, optional
    """

    n: int
    K: np.ndarray
    s: np.ndarray
    M: np.ndarray
    ones: np.ndarray
    ZZ: object = None
    ZW: np.ndarray | None = None
    Z1: np.ndarray | None = None
    cells: "CellStats | None" = None

    @classmethod
    def of(cls, W: np.ndarray, center: bool = False) -> "Sums":
        """Sums of the rows of ``W`` about their own mean (``center``: ``W`` is centred in place)."""
        K = W.mean(axis=0)
        ones = np.all(W == 1.0, axis=0)
        Wc = W if center else W.copy()
        Wc -= K
        return cls(len(W), K, Wc.sum(axis=0), Wc.T @ Wc, ones)

    @property
    def mean(self) -> np.ndarray:
        return self.K + self.s / self.n

    def shifted(self, K: np.ndarray) -> "Sums":
        """The same sums about the shift ``K``."""
        d = np.asarray(K, dtype=float) - self.K
        s = self.s - self.n * d
        M = self.M - np.outer(d, self.s) - np.outer(self.s, d) + self.n * np.outer(d, d)
        ZW = None
        if self.ZW is not None:
            ZW = self.ZW - self.Z1[..., None] * d
        return Sums(self.n, np.asarray(K, dtype=float), s, M, self.ones, self.ZZ, ZW, self.Z1, self.cells)


def _add(a, b):
    if a is None:
        return b
    return a + b


def combine_sums(a: Sums | None, b: Sums | None) -> Sums | None:
    """Exact sums of two sets of rows (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    n = a.n + b.n
    K = (a.n * a.mean + b.n * b.mean) / n
    a, b = a.shifted(K), b.shifted(K)
    ZZ = _add(a.ZZ, b.ZZ)
    if sp.issparse(ZZ):
        ZZ = ZZ.tocsc()
    return Sums(n, K, a.s + b.s, a.M + b.M, a.ones & b.ones, ZZ, _add(a.ZW, b.ZW), _add(a.Z1, b.Z1),
                combine_cells(a.cells, b.cells))


# --------------------------------------------------------------------------- cells
@dataclass
class CellStats:
    """Moments of ``v`` (a few variables) in every observed combination of some factors.

    Attributes
    ----------
    keys : ndarray (c, f) of int
        Global codes of the factors, one row per cell (sorted).
    n : ndarray (c,)
    mean : ndarray (c, k)
    M2 : ndarray (c, k, k)
        Centred cross-products within the cell.
    """

    keys: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    M2: np.ndarray


def _cells_of(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique key rows (sorted) and the cell of each row."""
    if keys.shape[1] == 0:
        return np.zeros((1, 0), dtype=np.int64), np.zeros(len(keys), dtype=np.int64)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    return uniq, inv.reshape(-1)


def _grouped(inv: np.ndarray, c: int, n: np.ndarray, mean: np.ndarray,
             M2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chan's combination of per-group moments ``(n, mean, M2)`` into cells ``inv``."""
    tot = np.bincount(inv, weights=n, minlength=c)
    k = mean.shape[1]
    wsum = np.zeros((c, k))
    np.add.at(wsum, inv, mean * n[:, None])
    m = wsum / np.where(tot > 0, tot, 1.0)[:, None]
    d = mean - m[inv]
    out = np.zeros((c, k, k))
    np.add.at(out, inv, M2 + n[:, None, None] * d[:, :, None] * d[:, None, :])
    return tot, m, out


def cell_stats(keys: np.ndarray, v: np.ndarray) -> CellStats:
    """Per-cell moments of the rows ``v`` (``n x k``) with factor codes ``keys`` (``n x f``)."""
    keys = np.asarray(keys, dtype=np.int64).reshape(len(v), -1)
    if keys.shape[1] == 0:  # one cell
        mean = v.mean(axis=0)
        dev = v - mean
        return CellStats(np.zeros((1, 0), dtype=np.int64), np.array([float(len(v))]), mean[None, :],
                         (dev.T @ dev)[None, :, :])
    uniq, inv = _cells_of(keys)
    c = len(uniq)
    n = np.bincount(inv, minlength=c).astype(float)
    k = v.shape[1]
    sums = level_sums(inv, c, np.ones((len(v), 1)), v)[:, 0, :] if k else np.zeros((c, 0))
    mean = sums / n[:, None]
    dev = v - mean[inv]
    M2 = level_sums(inv, c, dev) if k else np.zeros((c, 0, 0))
    return CellStats(uniq, n, mean, M2)


def combine_cells(a: CellStats | None, b: CellStats | None) -> CellStats | None:
    if a is None or b is None:
        return a if b is None else b
    keys = np.concatenate([a.keys, b.keys])
    uniq, inv = _cells_of(keys)
    tot, m, M2 = _grouped(inv, len(uniq), np.concatenate([a.n, b.n]), np.concatenate([a.mean, b.mean]),
                          np.concatenate([a.M2, b.M2]))
    return CellStats(uniq, tot, m, M2)


def weighted_rows(cells: CellStats, nu: int, tol: float = 1e-11) -> dict:
    """Weighted rows with the first and second moments of each cell's first ``nu`` variables.

    A cell with ``n`` rows, mean ``u`` and within-cell scatter ``sum_k lambda_k e_k e_k'`` becomes
    the rows ``u +- a_k e_k`` (``a_k = sqrt(nu lambda_k / n)``), each of weight ``n / (2 nu)``:
    their weighted sums of ``x`` and ``x x'`` equal the cell's.  When the cells also hold a
    response (variable ``nu``), each row gets a response mean so that the weighted sums of
    ``x y`` agree as well, and ``within`` is the part of the response's sum of squares that no
    linear function of the rows can reach (the within-cell residual after the variables); a
    least-squares residual sum of squares is then ``sum w (y_row - fit)^2 + within``.

    Returns
    -------
    dict
        ``cell`` (cell of each row), ``w``, ``x`` (rows x nu), ``y`` (or None), ``within``.
    """
    c = len(cells.n)
    has_y = cells.mean.shape[1] > nu
    n = cells.n
    if nu == 0:
        out = {"cell": np.arange(c), "w": n.copy(), "x": np.zeros((c, 0)), "y": None, "within": 0.0}
        if has_y:
            out["y"] = cells.mean[:, 0].copy()
            out["within"] = float(np.sum(cells.M2[:, 0, 0]))
        return out
    W = cells.M2[:, :nu, :nu]
    lam, vec = np.linalg.eigh(W)                                # c x nu, c x nu x nu (columns)
    top = np.max(np.abs(lam), axis=1, keepdims=True)
    pos = lam > tol * np.maximum(top, 1e-300)
    lam = np.where(pos, lam, 0.0)
    a = np.sqrt(nu * lam / n[:, None])                          # c x nu
    u = cells.mean[:, :nu]
    step = vec * a[:, None, :]                                  # columns a_k e_k
    rows = np.concatenate([u[:, None, :] + np.swapaxes(step, 1, 2), u[:, None, :] - np.swapaxes(step, 1, 2)],
                          axis=1)                               # c x 2nu x nu
    w = np.repeat((n / (2 * nu))[:, None], 2 * nu, axis=1)
    out = {"cell": np.repeat(np.arange(c), 2 * nu), "w": w.reshape(-1), "x": rows.reshape(-1, nu), "y": None,
           "within": 0.0}
    if has_y:
        ybar = cells.mean[:, nu]
        beta = np.einsum("cjk,cj->ck", vec, cells.M2[:, :nu, nu])  # e_k' sum (u - ubar)(y - ybar)
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(pos, beta * nu / (np.where(pos, a, 1.0) * n[:, None]), 0.0)
            reach = np.where(pos, beta ** 2 / np.where(pos, lam, 1.0), 0.0).sum(axis=1)
        y = np.concatenate([ybar[:, None] + off, ybar[:, None] - off], axis=1)
        out["y"] = y.reshape(-1)
        out["within"] = float(np.sum(np.maximum(cells.M2[:, nu, nu] - reach, 0.0)))
    return out
