"""Type I, II and III hypothesis matrices computed from a cross-product matrix.

The hypothesis of term ``k`` (columns ``K`` of the model matrix ``X``) is the
row space of

.. math:: L_k = X_K' (I - P_{adj}) X,

where :math:`P_{adj}` projects on the columns that the term is adjusted for:

* type 1 (sequential): the intercept and the columns of the terms before ``k``;
* type 2 (SAS type II): the intercept and the columns of every term that does
  not contain ``k`` (SAS's containment, :func:`vcomp.hypotheses.contains`; ``k`` itself excluded);
* type 3: every other column.  With sum-to-zero coding and a full-rank model
  this is SAS type III.

Everything is computed from ``X'X`` alone (never an ``n x n`` matrix):
``L = xtx[K,:] - xtx[K,adj] pinv(xtx[adj,adj]) xtx[adj,:]``.  The result is
reduced to an orthonormal basis of its row space (in the scaled coordinates
described below), so the number of rows is the term's numerator df.

Numerics: the columns are first scaled to unit length
(``D^{-1/2} X'X D^{-1/2}``) so that the rank decisions do not depend on the
units of covariates; the basis is mapped back to the original coordinates.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.linalg.lapack import dpotrf as _potrf, dpotri as _potri

from .containment import contains

__all__ = ["hypothesis_matrices", "reparametrize", "pinv_psd", "row_basis"]

#: relative tolerance for eigenvalues of a scaled cross-product (as R's MASS::ginv on singular values)
PINV_TOL = 1e-10
#: relative tolerance for singular values of a scaled hypothesis matrix
RANK_TOL = 1e-8


def pinv_psd(a: np.ndarray, tol: float = PINV_TOL) -> tuple[np.ndarray, int]:
    """Moore-Penrose inverse and rank of a symmetric positive semi-definite matrix.

    Parameters
    ----------
    a : ndarray, shape (m, m)
        Symmetric positive semi-definite matrix (e.g. a cross-product).
    tol : float
        Eigenvalues below ``tol * max(eigenvalue)`` are treated as zero.

    Returns
    -------
    inv : ndarray, shape (m, m)
    rank : int
    """
    a = np.asarray(a, dtype=float)
    m = a.shape[0]
    if m == 0:
        return np.zeros((0, 0)), 0
    d = np.sqrt(np.clip(np.diag(a), 0, None))
    d[d == 0] = 1.0
    s = a / d[:, None] / d[None, :]
    s = (s + s.T) / 2
    # fast path: Cholesky of a clearly well-conditioned matrix.  kappa <= tr(S) tr(S^-1),
    # so a small bound proves full rank at the eigenvalue tolerance.
    c, info = _potrf(s, lower=1, clean=1)
    if info == 0:
        si, info = _potri(c, lower=1)                  # the inverse from the factor (lower triangle)
        if info == 0:
            si = np.tril(si) + np.tril(si, -1).T
            if np.trace(s) * np.trace(si) < 1e-2 / tol:
                return si / d[:, None] / d[None, :], m
    w, v = np.linalg.eigh(s)
    top = max(w.max(), 0.0)
    keep = w > tol * top if top > 0 else np.zeros(m, bool)
    vk = v[:, keep] / d[:, None]
    return (vk / w[keep]) @ vk.T, int(keep.sum())


def row_basis(l: np.ndarray, tol: float = RANK_TOL, scale: float | None = None) -> np.ndarray:
    """Orthonormal basis (as rows) of the row space of ``l``.

    Singular values below ``tol * max(scale, largest singular value)`` are dropped.

    Parameters
    ----------
    l : ndarray, shape (r, p)
    tol : float
    scale : float, optional
        Reference magnitude for the rank decision (defaults to the largest singular value).

    Returns
    -------
    ndarray, shape (rank, p)
    """
    l = np.asarray(l, dtype=float)
    if l.size == 0:
        return np.zeros((0, l.shape[1] if l.ndim == 2 else 0))
    _, s, vt = np.linalg.svd(l, full_matrices=False)
    ref = max(s.max() if s.size else 0.0, scale or 0.0)
    if ref <= 0:
        return np.zeros((0, l.shape[1]))
    return vt[s > tol * ref]


def hypothesis_matrices(xtx: np.ndarray, assign: Sequence[int], term_names: Sequence[str],
                        ss_type: int, continuous: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Hypothesis matrices of every term for type I, II or III sums of squares.

    Parameters
    ----------
    xtx : ndarray, shape (p, p)
        Cross-product ``X'X`` of the model matrix.
    assign : sequence of int, length p
        ``assign[j]`` is the index into ``term_names`` of column ``j``, or -1
        for the intercept column.
    term_names : sequence of str
        Terms in model order, written ``"a:b"`` (factor or covariate names
        joined by ``":"``; the order of the names inside a term is irrelevant).
    ss_type : {1, 2, 3}
        Type of the hypotheses (see the module docstring).
    continuous : sequence of str
        The covariates among the terms' variables (for SAS's containment rule in type II).

    Returns
    -------
    dict
        ``{term: L}`` with ``L`` of shape ``(df, p)``: a basis of the row
        space of the term's hypothesis (``df = 0`` for a term completely
        aliased with the terms it is adjusted for).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.column_stack([np.ones(6), [1, 1, 0, 0, -1, -1], [0, 0, 1, 1, -1, -1]])
    >>> L = hypothesis_matrices(X.T @ X, [-1, 0, 0], ["a"], 3)
    >>> L["a"].shape
    (2, 3)
    """
    if ss_type not in (1, 2, 3):
        raise ValueError("ss_type must be 1, 2 or 3, not %r" % (ss_type,))
    xtx = np.asarray(xtx, dtype=float)
    assign = np.asarray(assign, dtype=int)
    p = xtx.shape[0]
    if xtx.shape != (p, p) or assign.shape != (p,):
        raise ValueError("xtx must be p x p and assign of length p")
    # scale columns to unit length: rank decisions independent of units
    d = np.sqrt(np.clip(np.diag(xtx), 0, None))
    d[d == 0] = 1.0
    xs = xtx / d[:, None] / d[None, :]
    names = [str(t) for t in term_names]
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(term_names):
        cols = np.flatnonzero(assign == k)
        if ss_type == 1:
            adj_mask = assign < k
        elif ss_type == 2:
            ok = np.array([-1] + [j for j, e in enumerate(names) if j != k and not contains(e, name, continuous)])
            adj_mask = np.isin(assign, ok)
        else:
            adj_mask = assign != k
        adj_mask[cols] = False
        adj = np.flatnonzero(adj_mask)
        lk = xs[cols, :]
        if adj.size:
            ginv, _ = pinv_psd(xs[np.ix_(adj, adj)])
            lk = lk - xs[np.ix_(cols, adj)] @ ginv @ xs[adj, :]
        # rank decision relative to the size of the term's own columns (unit diagonal)
        basis = row_basis(lk, RANK_TOL, scale=1.0)
        # back to original coordinates: L_orig = D_K^{1/2} Ls D^{1/2} has the row space of Ls D^{1/2}
        lo = basis * d[None, :]
        if lo.shape[0]:
            lo = lo / np.linalg.norm(lo, axis=1, keepdims=True)
        out[str(name)] = lo
    return out


def reparametrize(l_from: np.ndarray, xtx_from: np.ndarray, xcross_from_to: np.ndarray) -> np.ndarray:
    """Map a hypothesis matrix from one full-rank coding to another of the same column space.

    With ``X_t beta_t = X_f beta_f`` (both codings span the same space),
    ``beta_f = T beta_t`` where ``T = pinv(X_f'X_f) X_f'X_t``, so the
    hypothesis ``L_f beta_f = 0`` reads ``(L_f T) beta_t = 0``.

    Parameters
    ----------
    l_from : ndarray, shape (r, p_f)
        Hypothesis in the "from" coding.
    xtx_from : ndarray, shape (p_f, p_f)
        ``X_f'X_f``.
    xcross_from_to : ndarray, shape (p_f, p_t)
        ``X_f'X_t``.

    Returns
    -------
    ndarray, shape (r, p_t)
    """
    ginv, _ = pinv_psd(np.asarray(xtx_from, dtype=float))
    return np.asarray(l_from, dtype=float) @ (ginv @ np.asarray(xcross_from_to, dtype=float))
