"""Hypothesis matrices of the fixed terms in lmerTest's row bases.

The F statistics (and Kenward-Roger's df) depend only on the row space of a
hypothesis; Satterthwaite's multi-df ``den_df`` (lmerTest's ``contestMD``)
also depends on the rows chosen, so the rows are put in lmerTest's basis:

* type 1: rows of the Doolittle factor of ``X'X`` (``R / diag(R)`` from the
  Cholesky factor ``R``) at the term's columns;
* type 2: the same on ``X'X`` with the columns reordered so that the term and the
  terms containing it come last; terms contained in no other term use the
  identity rows of their columns (lmerTest's "marginal" contrasts);
* type 3: the coding-independent SAS type III space (from the sum-coded model
  matrix, :func:`vcomp.hypotheses.hypothesis_matrices`, mapped to the model's
  coding), written with the identity on the term's own columns.

With one term (or one column) every type uses the type 1 rows, as lmerTest does.
"""
from __future__ import annotations

import numpy as np

__all__ = ["term_hypotheses"]


def _key(term: str) -> frozenset:
    return frozenset(s.strip() for s in str(term).split(":") if s.strip())


def _r_term_order(fm) -> list[int]:
    """Term indices in R's ``terms()`` order: by degree, then by where the variables first appear in the rhs."""
    import re
    rhs = str(getattr(fm, "rhs", "") or "")

    def pos(var: str) -> int:
        m = re.search(r"(?<![A-Za-z0-9_.])" + re.escape(var) + r"(?![A-Za-z0-9_.])", rhs)
        return m.start() if m else len(rhs)

    names = list(fm.term_names)
    keys = []
    for t, name in enumerate(names):
        parts = [s.strip() for s in str(name).split(":") if s.strip()]
        keys.append((len(parts), sorted(pos(v) for v in parts), t))
    return [k[2] for k in sorted(keys)]


def _doolittle_rows(xtx: np.ndarray, order: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (original column indices) of ``R / diag(R)``, ``R'R = X'X`` in column order ``order``."""
    p = xtx.shape[0]
    xo = xtx[np.ix_(order, order)]
    d = np.sqrt(np.clip(np.diag(xo), 1e-300, None))
    R = np.linalg.cholesky(xo / d[:, None] / d[None, :]).T * d[None, :]
    R = R / np.diag(R)[:, None]
    inv = np.empty(p, dtype=int)
    inv[order] = np.arange(p)
    out = np.zeros((len(rows), p))
    out[:, order] = R[inv[rows], :]
    out[np.abs(out) < 1e-12] = 0.0
    return out


#: below this many rows the sum-coded matrix is simply built on the whole frame
SUBSET_MIN_ROWS = 2000


def _sum_coded_from_subset(model, fm, X: np.ndarray, xtx: np.ndarray):
    """Sum-coded design's cross-products without building it on every row.

    The sum-coded and the model's (treatment-coded, rank-reduced) matrices span the same
    column space, so ``X_sum = X T`` for one ``p x p_s`` matrix ``T``.  ``T`` is solved on a
    few rows (one per combination of the non-float rhs variables, so every level is present,
    plus a fixed pseudo-random sample) and checked there: full column rank of ``X`` on those
    rows and an exact fit.  Then ``X_sum'X_sum = T' X'X T`` and ``X_sum'X = T' X'X``.

    Returns
    -------
    (FixedMatrix of the subset, xtx_s, cross) or None
        None when the shortcut does not apply (small data, ``C()`` in the formula, a check fails).
    """
    import pandas as pd

    from ..formula import fixed_matrix, validate_expression

    n, p = X.shape
    rhs = str(fm.rhs)
    frame = model._frame
    if n < SUBSET_MIN_ROWS or p == 0 or "C(" in rhs.replace(" ", ""):
        return None
    names = validate_expression(rhs, frame.columns)
    keys = [c for c in names if not pd.api.types.is_float_dtype(frame[c])]
    first = np.flatnonzero(~frame[keys].duplicated().to_numpy()) if keys else np.zeros(0, dtype=int)
    rng = np.random.default_rng(20240607)
    sample = rng.choice(n, size=min(n, 4 * p + 64), replace=False)
    rows = np.union1d(first, sample)
    if rows.size > n // 4:
        return None
    fs = fixed_matrix(rhs, frame.iloc[rows].reset_index(drop=True), coding="sum")
    Xr, Xsr = X[rows], np.asarray(fs.X, dtype=float)
    scale = np.sqrt(np.clip(np.diag(xtx), 1e-300, None))
    if np.linalg.matrix_rank(Xr / scale) < p:
        return None
    T = np.linalg.lstsq(Xr, Xsr, rcond=None)[0]
    if np.max(np.abs(Xsr - Xr @ T), initial=0.0) > 1e-9 * max(1.0, np.max(np.abs(Xsr), initial=0.0)):
        return None
    cross = T.T @ xtx
    return fs, (cross @ T + (cross @ T).T) / 2.0, cross


def _zapsmall(a: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    mx = np.max(np.abs(a), initial=0.0)
    if mx <= 0 or not np.isfinite(mx):
        return a
    return np.round(a, max(0, int(digits - np.ceil(np.log10(mx)))))


def _type3_rank_deficient(model, fm) -> dict | None:
    """lmerTest's type III contrasts (``extract_contrasts_type3``) for a rank-deficient fixed part.

    With empty cells the sum-coded model loses columns and its type III space no longer is
    lmerTest's. lmerTest maps the over-parametrised indicator design ``rdX`` (one column per
    observed level combination of each term) onto the fitted treatment-coded ``X``,
    ``L = (X^+ rdX)'``, orthogonalises each term's columns of ``L`` against those of the terms
    containing it (higher order first), and keeps the rows of ``X``'s own columns.
    Cost: one pass over the rows per term (``X' rdX`` by group sums), no n x n work.

    Returns None when a column of ``X`` is not one indicator (times numerics) of a term's level
    combination (non-treatment coding, ``C()``, transformations).
    """
    import pandas as pd

    frame = model._frame
    X = np.asarray(model._X, dtype=float)
    n, p = X.shape
    names = list(fm.term_names)
    assign = np.asarray(fm.assign)
    if any("(" in nm for nm in names):
        return None
    tvars = [[v.strip() for v in nm.split(":")] for nm in names]
    if any(v not in frame.columns for vs in tvars for v in vs):
        return None
    is_num = {v: bool(pd.api.types.is_numeric_dtype(frame[v]) and not pd.api.types.is_bool_dtype(frame[v]))
              for vs in tvars for v in vs}
    blocks, xrow = [], np.full(p, -1)
    r0 = 0
    icpt = np.flatnonzero(assign < 0)
    if icpt.size:
        blocks.append(X.sum(axis=0)[:, None])
        xrow[icpt] = 0
        r0 = 1
    for t, vs in enumerate(tvars):
        facs = [v for v in vs if not is_num[v]]
        w = np.ones(n)
        for v in vs:
            if is_num[v]:
                w = w * frame[v].to_numpy(dtype=float)
        if facs:
            key = pd.MultiIndex.from_frame(frame[facs].astype(str)) if len(facs) > 1 else frame[facs[0]].astype(str)
            g = pd.factorize(key, sort=True)[0]
        else:
            g = np.zeros(n, dtype=int)
        ng = int(g.max()) + 1 if n else 0
        XtR = np.stack([np.bincount(g, weights=w * X[:, j], minlength=ng) for j in range(p)])
        for j in np.flatnonzero(assign == t):
            nz = X[:, j] != 0
            cells = np.unique(g[nz])
            if cells.size != 1 or np.max(np.abs(X[nz, j] - w[nz])) > 1e-10 * max(1.0, np.max(np.abs(w))) \
                    or np.any(w[(g == cells[0]) & ~nz] != 0):
                return None
            xrow[j] = r0 + cells[0]
        blocks.append(XtR)
        r0 += ng
    if np.any(xrow < 0):
        return None
    XtR = np.hstack(blocks)  # p x r
    L = _zapsmall(np.linalg.solve(X.T @ X, XtR).T)  # r x p
    # containment (lmerTest's term_contain): more variables, all of F1's, the same numerics -- counting
    # only the variables R's terms() codes with contrasts in a term (its margin without them is a term)
    allkeys = {frozenset(vs) for vs in tvars}
    keys = [frozenset(v for v in vs if len(vs) == 1 or frozenset(vs) - {v} in allkeys) for vs in tvars]
    numset = [frozenset(v for v in k if is_num[v]) for k in keys]
    order = sorted(range(len(names)), key=lambda t: -len(keys[t]))  # stable, as R's order()
    for t in order:
        cont = [u for u in range(len(names)) if keys[t] < keys[u] and numset[t] == numset[u]]
        cols = np.flatnonzero(assign == t)
        ccols = np.flatnonzero(np.isin(assign, cont))
        if not cont or cols.size == 0 or ccols.size == 0:
            continue
        A = L[:, ccols]
        coef = np.linalg.lstsq(A, L[:, cols], rcond=1e-7)[0]
        L[:, cols] = _zapsmall(L[:, cols] - A @ coef)
    L = L[xrow, :]  # p x p: rows of X's own columns
    out = {}
    for t, nm in enumerate(names):
        Lt = L[:, assign == t].T
        out[nm] = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
    return out


def _hierarchical(fm) -> bool:
    """Every term's factors-minus-one (its margins) are terms of the model too."""
    keys = {_key(n) for n in fm.term_names}
    return all(k - {v} in keys for k in keys if len(k) > 1 for v in k)


def _type3_rows(model, fm, xtx: np.ndarray, fast: bool = True) -> dict:
    from ..formula import fixed_matrix
    from ..hypotheses import hypothesis_matrices, reparametrize, row_basis

    X = np.asarray(model._X, dtype=float)
    if getattr(model, "dropped_columns", None) or not _hierarchical(fm):
        # lmerTest's own construction; in a non-hierarchical model (``trial + trial:rep``) its
        # contrasts are not the SAS type III space of the sum-coded design
        rd = _type3_rank_deficient(model, fm)
        if rd is not None:
            return rd
    sub = None
    if fast:
        try:
            sub = _sum_coded_from_subset(model, fm, X, xtx)
        except Exception:  # pragma: no cover - the full-frame route below is the reference
            sub = None
    if sub is not None:
        fs, xtx_s, cross = sub
        xs_names, xs_assign = list(fs.term_names), list(fs.assign)
    else:
        try:
            fs = fixed_matrix(fm.rhs, model._frame, coding="sum")
            Xs = np.asarray(fs.X, dtype=float)
            xs_names, xs_assign = list(fs.term_names), list(fs.assign)
        except Exception:  # pragma: no cover - fall back to the model's own coding
            Xs, xs_names, xs_assign = X, list(fm.term_names), list(fm.assign)
        cross = Xs.T @ X
        xtx_s = Xs.T @ Xs
    Ls = hypothesis_matrices(xtx_s, xs_assign, xs_names, 3)
    by_key = {_key(k): v for k, v in Ls.items()}
    assign = np.asarray(fm.assign)
    out = {}
    for t, name in enumerate(fm.term_names):
        ls = by_key.get(_key(name))
        if ls is None or ls.shape[0] == 0:
            out[name] = np.zeros((0, X.shape[1]))
            continue
        lt = reparametrize(ls, xtx_s, cross)
        lt = row_basis(lt)
        cols = np.flatnonzero(assign == t)
        T = lt[:, cols]
        if T.shape[0] == T.shape[1] and T.size and np.linalg.cond(T) < 1e10:
            lt = np.linalg.solve(T, lt)
            lt[np.abs(lt) < 1e-10] = 0.0
        out[name] = lt
    return out


def term_hypotheses(model, ss_type: int = 3) -> dict:
    """Hypothesis matrix of every fixed term (intercept excluded).

    Parameters
    ----------
    model : MixedModel
        Needs ``_X``, ``_fixed`` (``term_names``, ``assign``, ``rhs``) and ``_frame``.
    ss_type : {1, 2, 3}

    Returns
    -------
    dict
        ``{term: L}``, ``L`` of shape ``(num_df, p)``, in model term order.
    """
    fm = model._fixed
    X = np.asarray(model._X, dtype=float)
    p = X.shape[1]
    xtx = X.T @ X
    assign = np.asarray(fm.assign)
    names = list(fm.term_names)
    present = [t for t in range(len(names)) if np.any(assign == t)]
    if ss_type not in (1, 2, 3):
        from .._errors import VcompError
        raise VcompError("type must be 1, 2 or 3 (or 'I', 'II', 'III'), not %r" % (ss_type,))
    if p <= 1 or len(present) <= 1 or ss_type == 1:
        # sequential in R's term order (patsy puts numeric terms last)
        rank = {t: i for i, t in enumerate(_r_term_order(fm))}
        order = np.array(sorted(range(p), key=lambda j: (-1 if assign[j] < 0 else rank.get(assign[j], 10 ** 6), j)),
                         dtype=int)
        seq = [t for t in _r_term_order(fm) if t in present]
        return {names[t]: _doolittle_rows(xtx, order, np.flatnonzero(assign == t)) for t in seq}
    if ss_type == 3:
        return {k: v for k, v in _type3_rows(model, fm, xtx).items() if k in {names[t] for t in present}}
    keys = [_key(n) for n in names]
    out = {}
    for t in present:
        containing = [u for u in present if u != t and keys[t] < keys[u]]
        cols = np.flatnonzero(assign == t)
        if not containing:
            L = np.zeros((len(cols), p))
            L[np.arange(len(cols)), cols] = 1.0
            out[names[t]] = L
            continue
        last = np.isin(assign, [t] + containing)
        order = np.concatenate([np.flatnonzero(~last), np.flatnonzero(last)])
        out[names[t]] = _doolittle_rows(xtx, order, cols)
    return out
