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

from ..terms import split_term
from ..hypotheses import containing, pinv_psd
from .ems import source_form

__all__ = ["echelon_form", "sas_type3_hypotheses", "OverParam", "overparam_model", "goodnight_type3_ss"]

#: a column is a pivot when its component orthogonal to the previous columns exceeds this fraction of its norm
PIVOT_TOL = 1e-9
#: columns processed together by :func:`echelon_form`
CHUNK = 64


def echelon_form(a: np.ndarray, tol: float = PIVOT_TOL, weights: bool = False):
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
    M : ndarray, shape (r, m)
        Only with ``weights=True``: ``R = M a``.
    """
    a = np.asarray(a, dtype=float)
    m, p = a.shape
    norms = np.linalg.norm(a, axis=0)
    Q = np.zeros((m, 0))
    piv = []
    for c0 in range(0, p, CHUNK):
        # project the chunk off the pivots so far (twice, BLAS-3), then in order within the chunk
        V = a[:, c0:c0 + CHUNK].copy()
        for _ in range(2):
            V -= Q @ (Q.T @ V)
        new = np.zeros((m, V.shape[1]))
        k = 0
        for j in range(V.shape[1]):
            if norms[c0 + j] == 0.0 or Q.shape[1] + k >= m:
                continue
            v = V[:, j]
            for _ in range(2):
                v = v - new[:, :k] @ (new[:, :k].T @ v)
            nr = float(np.linalg.norm(v))
            if nr > tol * norms[c0 + j]:
                new[:, k] = v / nr
                piv.append(c0 + j)
                k += 1
        Q = np.hstack([Q, new[:, :k]])
    r = Q.shape[1]
    piv = np.asarray(piv, dtype=int)
    B = Q.T @ a                                    # same row space as a; B[:, piv] upper triangular
    R = solve_triangular(B[:, piv], B, lower=False, check_finite=False)
    R[:, piv] = np.eye(r)
    if weights:
        return R, piv, solve_triangular(B[:, piv], Q.T, lower=False, check_finite=False)
    return R, piv


def sas_type3_hypotheses(a: np.ndarray, blocks: dict, contains: dict, tol: float = PIVOT_TOL,
                         weights: bool = False) -> dict:
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
    weights : bool
        Also return ``N`` with ``L = N a``: with ``a`` the cell rows of ``X``,
        ``L beta = N mu`` for the cell means ``mu``, so ``N X_t`` is the same
        hypothesis in any other coding ``X_t`` of the model.

    Returns
    -------
    dict
        Effect -> ``L`` of shape ``(df, p)`` (full row rank; ``df`` = number of
        the effect's pivot columns, 0 when the effect is aliased with earlier
        ones), or ``(L, N)`` with ``weights=True``.

    Examples
    --------
    One-way with three levels: ``L`` compares the level effects.

    >>> import numpy as np
    >>> X = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1.]])
    >>> sas_type3_hypotheses(X, {"a": [1, 2, 3]}, {"a": []})["a"]
    array([[ 0.,  1.,  0., -1.],
           [ 0.,  0.,  1., -1.]])
    """
    R, piv, M = echelon_form(a, tol, weights=True)
    owner = np.full(np.asarray(a).shape[1], None, dtype=object)
    for e, cols in blocks.items():
        owner[np.asarray(cols, dtype=int)] = e
    prow = owner[piv]
    out = {}
    for e in blocks:
        sel = prow == e
        F, N = R[sel], M[sel]
        csel = np.isin(prow, list(contains.get(e, [])))
        if F.shape[0] and csel.any():
            # C' = q s (C's rows are independent echelon rows): F - (F q) q' with q' = s^-T M_C a
            q, s_ = np.linalg.qr(R[csel].T)
            Fq = F @ q
            F = F - Fq @ q.T
            N = N - Fq @ solve_triangular(s_, M[csel], trans="T", lower=False, check_finite=False)
        out[e] = (F, N) if weights else F
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
    contains = containing(model.terms, cv)
    return OverParam(X=np.hstack(cols), w=np.asarray(model.w, dtype=float), blocks=blocks, contains=contains)


def goodnight_type3_ss(model, y: np.ndarray, covars: dict | None = None, over: bool = False) -> dict:
    """SAS type III ``(df, SS)`` of every term of ``model`` by Goodnight's rule.

    Parameters
    ----------
    model : CellModel
        Any coding of the all-fixed model (only its cells and terms are used).
    y : ndarray
        Response of the observations (``model.cell`` maps them to cell rows).
    covars : dict, optional
        Covariate values on the cell rows (see :func:`overparam_model`).
    over : bool
        Compute the sums of squares with a generalized inverse of the
        over-parameterised ``X'X``.  By default, when ``model`` is full rank,
        the hypotheses are mapped to ``model``'s coding through the cell
        means (``L_over = N X_over``, so ``N X`` in ``model``'s coding) and
        its fit is used (cheaper, same numbers).

    Returns
    -------
    dict
        Term -> ``(df, SS)``.
    """
    op = overparam_model(model, covars)
    X, w = op.X, op.w
    Ls = sas_type3_hypotheses(X, op.blocks, op.contains, weights=True)  # cell rows: counts do not enter
    if model.rank == model.p and not over:
        # L beta_over = N mu (cell means) = N X_model beta_model: use the full-rank fit of `model`
        G, b = model.G, model.b
        Ls = {t: N @ model.X for t, (L, N) in Ls.items()}
    else:
        xtx = X.T @ (X * w[:, None])
        ysum = model.ysum  # centred response summed per cell row (weighted rows of reduced data too)
        G, _ = pinv_psd(xtx)
        b = G @ (X.T @ ysum)
        Ls = {t: L for t, (L, N) in Ls.items()}
    out = {}
    for t, L in Ls.items():
        f = source_form(L, G, b)
        out[t] = (f.df, f.ss)
    return out
