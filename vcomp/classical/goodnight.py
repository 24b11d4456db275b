"""SAS PROC GLM's type III hypotheses by Goodnight's construction (the literal rule).

SAS/STAT, "The Four Types of Estimable Functions" (Goodnight 1978, 1980):

1. The over-parameterised model matrix ``X`` has an intercept column and a
   full indicator column for every level combination of every effect that
   occurs in the data (a covariate multiplies its effect's indicators),
   columns in model order.  The *general form of estimable functions* is
   the row-reduced echelon form ``R`` of ``X'X`` (equivalently of ``X``):
   one row per pivot column ``j``, each with a free symbol ``L_j``.
2. For effect ``F``: keep only the rows whose pivot lies in ``F`` or in an
   effect *containing* ``F`` (the other symbols are set to zero).
3. The symbols of the containing effects are equated to linear functions
   of ``F``'s so that ``F``'s hypothesis is orthogonal (Euclidean
   orthogonality of the coefficient vectors) to the hypotheses of the
   effects containing ``F``: the ``F`` rows are projected off the row space
   of the containing-effect rows.

The rows so obtained are ``F``'s type III hypothesis ``L``;
``SS = (Lb)' (L G L')^{-1} (Lb)`` with ``G`` a generalized inverse of
``X'X``.  Because only the row space of ``X`` enters steps 1-3, the
hypotheses depend on which cells are filled, never on the cell counts.

Containment (SAS): ``E`` contains ``F`` when both involve the same
covariates and ``E``'s factors are a strict superset of ``F``'s.

vcomp uses this only as a check of its nested-cell type III coding in
rank-deficient models (see :func:`vcomp.anova`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from .._data import split_term
from ..hypotheses import pinv_psd
from .ems import source_form

__all__ = ["echelon_form", "sas_type3_hypotheses", "OverParam", "overparam_model", "goodnight_type3_ss"]

#: a column is a pivot when its component orthogonal to the previous columns exceeds this fraction of its norm
PIVOT_TOL = 1e-9


def echelon_form(a: np.ndarray, tol: float = PIVOT_TOL) -> tuple[np.ndarray, np.ndarray]:
    """Row-reduced echelon form of the row space of ``a`` and its pivot columns.

    Column ``j`` is a pivot when it is linearly independent of columns
    ``0..j-1`` (its residual after orthogonal projection on them, computed by
    twice-repeated Gram-Schmidt, exceeds ``tol`` times its norm).

    Parameters
    ----------
    a : ndarray, shape (m, p)
        Any matrix with the row space of interest (``X``, the distinct cell
        rows of ``X`` or ``X'X``).
    tol : float

    Returns
    -------
    R : ndarray, shape (r, p)
        ``R[:, pivots] = I`` and ``R`` spans the row space of ``a``.
    pivots : ndarray of int, shape (r,)
    """
    a = np.asarray(a, dtype=float)
    m, p = a.shape
    Q = np.zeros((m, min(m, p)))
    piv = []
    r = 0
    for j in range(p):
        v = a[:, j].copy()
        nv = float(np.linalg.norm(v))
        if nv == 0.0 or r == m:
            continue
        for _ in range(2):
            v -= Q[:, :r] @ (Q[:, :r].T @ v)
        nr = float(np.linalg.norm(v))
        if nr > tol * nv:
            Q[:, r] = v / nr
            piv.append(j)
            r += 1
    piv = np.asarray(piv, dtype=int)
    B = Q[:, :r].T @ a                                    # same row space as a; B[:, piv] upper triangular
    R = solve_triangular(B[:, piv], B, lower=False, check_finite=False)
    R[:, piv] = np.eye(r)
    return R, piv


def sas_type3_hypotheses(a: np.ndarray, blocks: dict, contains: dict, tol: float = PIVOT_TOL) -> dict:
    """Type III hypotheses of every effect by SAS's (Goodnight's) rule.

    Parameters
    ----------
    a : ndarray, shape (m, p)
        ``X'X`` of the over-parameterised model, or any matrix with the same
        row space (e.g. its distinct cell rows); columns in model order.
    blocks : dict
        Effect -> its column indices in ``a`` (the intercept is not an effect).
    contains : dict
        Effect -> list of the effects that contain it.
    tol : float
        Pivot tolerance of :func:`echelon_form`.

    Returns
    -------
    dict
        Effect -> ``L`` of shape ``(df, p)`` (full row rank; ``df`` = number of
        the effect's pivot columns, 0 when the effect is aliased with earlier ones).

    Examples
    --------
    One-way with three levels: ``L`` compares the level effects.

    >>> import numpy as np
    >>> X = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1.]])
    >>> sas_type3_hypotheses(X, {"a": [1, 2, 3]}, {"a": []})["a"]
    array([[ 0.,  1.,  0., -1.],
           [ 0.,  0.,  1., -1.]])
    """
    R, piv = echelon_form(a, tol)
    owner = np.full(np.asarray(a).shape[1], None, dtype=object)
    for e, cols in blocks.items():
        owner[np.asarray(cols, dtype=int)] = e
    prow = owner[piv]
    out = {}
    for e in blocks:
        F = R[prow == e]
        C = R[np.isin(prow, list(contains.get(e, [])))] if contains.get(e) else R[:0]
        if F.shape[0] and C.shape[0]:
            q, _ = np.linalg.qr(C.T)                      # C's rows are independent (echelon rows)
            F = F - (F @ q) @ q.T
        out[e] = F
    return out


@dataclass
class OverParam:
    """Over-parameterised model held as distinct cell rows.

    Attributes
    ----------
    X : ndarray, shape (cells, p)
        Intercept and indicator columns (present level combinations of each term).
    w : ndarray
        Observations per cell row.
    blocks : dict
        Term -> column indices.
    contains : dict
        Term -> terms containing it (SAS's rule).
    """

    X: np.ndarray
    w: np.ndarray
    blocks: dict
    contains: dict


def _sas_contains(big: str, small: str, covars) -> bool:
    fb, fs = set(split_term(big)), set(split_term(small))
    cb, cs = fb & covars, fs & covars
    return cb == cs and (fs - cs) < (fb - cb)


def overparam_model(model, covars: dict | None = None) -> OverParam:
    """Over-parameterised cell rows of a :class:`~vcomp.classical.model.CellModel` (model order).

    ``covars`` maps a covariate to its values on ``model``'s cell rows (with
    covariates the cell rows are the observations).
    """
    covars = covars or {}
    ncell = model.X.shape[0]
    cols = [np.ones((ncell, 1))]
    blocks, start = {}, 1
    for t in model.terms:
        facs = split_term(t)
        fac = [f for f in facs if f not in covars]
        code = np.zeros(ncell, dtype=np.int64)
        for f in fac:
            code = code * len(model.levels[f]) + model.cell_codes[f]
            _, code = np.unique(code, return_inverse=True)
            code = code.reshape(-1)
        m = int(code.max()) + 1 if fac else 1
        block = np.eye(m)[code]
        for v in facs:
            if v in covars:
                block = block * np.asarray(covars[v], dtype=float)[:, None]
        cols.append(block)
        blocks[t] = np.arange(start, start + m)
        start += m
    cv = set(covars)
    contains = {t: [e for e in model.terms if e != t and _sas_contains(e, t, cv)] for t in model.terms}
    return OverParam(X=np.hstack(cols), w=np.asarray(model.w, dtype=float), blocks=blocks, contains=contains)


def goodnight_type3_ss(model, y: np.ndarray, covars: dict | None = None) -> dict:
    """SAS type III ``(df, SS)`` of every term of ``model`` by Goodnight's rule.

    Parameters
    ----------
    model : CellModel
        Any coding of the all-fixed model (only its cells and terms are used).
    y : ndarray
        Response of the observations (``model.cell`` maps them to cell rows).
    covars : dict, optional
        Covariate values on the cell rows (see :func:`overparam_model`).

    Returns
    -------
    dict
        Term -> ``(df, SS)``.
    """
    op = overparam_model(model, covars)
    X, w = op.X, op.w
    Ls = sas_type3_hypotheses(X, op.blocks, op.contains)   # distinct cell rows: counts do not enter
    xtx = X.T @ (X * w[:, None])
    y = np.asarray(y, dtype=float)
    ysum = np.bincount(model.cell, weights=y - y.mean(), minlength=X.shape[0])
    G, _ = pinv_psd(xtx)
    b = G @ (X.T @ ysum)
    out = {}
    for t, L in Ls.items():
        f = source_form(L, G, b)
        out[t] = (f.df, f.ss)
    return out

