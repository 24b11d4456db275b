"""Hypothesis matrices of the fixed terms in lmerTest's row bases.

The F statistics (and Kenward-Roger's df) depend only on the row space of a
hypothesis; Satterthwaite's multi-df ``den_df`` (lmerTest's ``contestMD``)
also depends on the rows chosen, so the rows are put in lmerTest's basis:

* type 1: rows of the Doolittle factor of ``X'X`` (``R / diag(R)`` from the
  Cholesky factor ``R``) at the term's columns;
* type 2: the same on ``X'X`` with the columns reordered so that the term and the
  terms containing it come last; terms contained in no other term use the
  identity rows of their columns (lmerTest's "marginal" contrasts);
* type 3: the coding-independent SAS type III space (the sum-coded model's own
  coefficients, mapped to the model's coding without a data pass), written with the
  identity on the term's own columns.

Everything comes from the model's stored, standardised cross-products, so the rows do
not depend on the units or offsets of the data.

With one term (or one column) every type uses the type 1 rows, as lmerTest does.
"""
from __future__ import annotations

import numpy as np

from ..terms import term_key
from .containment import contains
from .matrices import row_basis

__all__ = ["term_hypotheses", "coding_map"]


def coding_map(model, other) -> np.ndarray:
    """``T`` with ``X_other = X_model T`` (both codings of the same terms), without a pass over the data.

    Solved exactly on the coding's spanning rows (each observed factor combination times each
    covariate pattern); when that fails (aliasing that only holds on the observed covariate
    values) it is solved on the data rows.
    """
    fixed = model._fixed
    vals = fixed.spanning_values(model._mf.values)
    A, B = fixed.build(vals), other.build(vals)
    T = np.linalg.lstsq(A, B, rcond=None)[0]
    if np.max(np.abs(B - A @ T), initial=0.0) > 1e-9 * max(1.0, np.max(np.abs(B), initial=0.0)):
        A = _rows(model)
        B = other.build(model._mf.values, A.shape[0])
        T = np.linalg.lstsq(A, B, rcond=None)[0]
    return T


def _rows(model) -> np.ndarray:
    """The model's fixed-effect rows (for reduced out-of-core data, weighted rows with the data's moments)."""
    if model._X is None:
        from .._errors import VcompError
        raise VcompError("these type III contrasts need the fixed-effect rows, which a model fitted to Dask data "
                         "keeps only when no fixed term multiplies two covariates; add the product as a column "
                         "(ddf['xz'] = ddf.x * ddf.z) or fit in memory")
    return np.asarray(model._X, dtype=float)


def _doolittle_rows(xtx_int: np.ndarray, T: np.ndarray, order: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of lmerTest's ``R / diag(R)`` (``R'R = X'X`` in column order ``order``), original coordinates.

    Computed stably from the internal cross-product ``X_int'X_int = T' X'X T``: for ``T`` upper
    triangular in ``order`` (the intercept first), the Cholesky factor is ``R_int = R T``, so the
    rows are those of ``R_int`` mapped by ``T^-1`` and renormalised to a unit pivot.
    """
    p = xtx_int.shape[0]
    xo = xtx_int[np.ix_(order, order)]
    d = np.sqrt(np.clip(np.diag(xo), 1e-300, None))
    R = np.linalg.cholesky(xo / d[:, None] / d[None, :]).T * d[None, :]
    inv = np.empty(p, dtype=int)
    inv[order] = np.arange(p)
    Ri = np.zeros((len(rows), p))
    Ri[:, order] = R[inv[rows], :]
    out = Ri @ np.linalg.inv(T)
    out = out / out[np.arange(len(rows)), rows][:, None]
    out[np.abs(out) < 1e-12] = 0.0
    return out


def _zapsmall(a: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    mx = np.max(np.abs(a), initial=0.0)
    if mx <= 0 or not np.isfinite(mx):
        return a
    return np.round(a, max(0, int(digits - np.ceil(np.log10(mx)))))


def _type3_rank_deficient(model) -> dict:
    """lmerTest's type III contrasts (``extract_contrasts_type3``) for a rank-deficient fixed part.

    With empty cells the sum-coded model loses columns and its type III space no longer is
    lmerTest's. lmerTest maps the over-parametrised indicator design ``rdX`` (one column per
    observed level combination of each term, times its covariates) onto the fitted ``X``,
    ``L = (X^+ rdX)'``, orthogonalises each term's columns of ``L`` against those of the terms
    containing it (higher order first, SAS's containment), and keeps the rows of ``X``'s own
    columns.  ``X' rdX`` comes from one pass of group sums over the coded variables.
    """
    from .._coding import interaction

    fixed, mf = model._fixed, model._mf
    X = _rows(model)
    n, p = X.shape
    rw = getattr(mf, "weights", None)  # observations per row (reduced data)
    names = list(fixed.term_names)
    assign = np.asarray(fixed.assign)
    cont = set(fixed.continuous())
    blocks, xrow = [], np.full(p, -1)
    r0 = 0
    icpt = np.flatnonzero(assign < 0)
    if icpt.size:
        blocks.append((X.sum(axis=0) if rw is None else rw @ X)[:, None])
        xrow[icpt] = 0
        r0 = 1
    for t, term in enumerate(fixed.terms):
        facs = [v for v in term.variables if v not in cont]
        w = np.ones(n) if rw is None else np.array(rw, dtype=float)
        for v in term.variables:
            if v in cont:
                w = w * mf.values[v]
        if facs:
            g, _ = interaction([mf.values[v] for v in facs], [mf.specs[v].labels for v in facs])
        else:
            g = np.zeros(n, dtype=np.int64)
        ng = int(g.max()) + 1 if n else 0
        XtR = np.stack([np.bincount(g, weights=w * X[:, j], minlength=ng) for j in range(p)])
        for j in np.flatnonzero(assign == t):
            nz = X[:, j] != 0
            cells = np.unique(g[nz])
            if cells.size != 1:
                return None
            xrow[j] = r0 + cells[0]
        blocks.append(XtR)
        r0 += ng
    if np.any(xrow < 0):
        return None
    XtR = np.hstack(blocks)  # p x r
    std, xtx_int = model._std, model._cp.XtX
    L = _zapsmall((std.T @ np.linalg.solve(xtx_int, std.T.T @ XtR)).T)  # (X^+ rdX)', from the stable X_int'X_int
    order = sorted(range(len(names)), key=lambda t: -len(term_key(names[t])))  # stable, as R's order()
    coded = _r_coded(names)
    for t in order:
        # lmerTest's term_contain counts only the variables R's terms() codes with contrasts
        cont_t = [u for u in range(len(names)) if contains(coded[u], coded[t], cont)]
        cols = np.flatnonzero(assign == t)
        ccols = np.flatnonzero(np.isin(assign, cont_t))
        if not cont_t or cols.size == 0 or ccols.size == 0:
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


def _r_coded(names: list) -> list:
    """Per term, the variables R's ``terms()`` codes with contrasts (factor code 1, not 2): those
    whose margin (the term without them) is a term of the model too; all of a main effect."""
    keys = [term_key(n) for n in names]
    allk = set(keys)
    return [":".join(sorted(v for v in k if len(k) == 1 or (k - {v}) in allk)) for k in keys]


def _hierarchical(names: list) -> bool:
    """Every term's margins are terms of the model (then R codes every variable with contrasts)."""
    return all(c == ":".join(sorted(term_key(n))) for c, n in zip(_r_coded(names), names))


def _type3_rows(model) -> dict:
    """Coding-independent SAS type III hypotheses in the model's coding.

    In the full-rank sum-coded model a term's type III hypothesis is "its own coefficients are 0";
    with ``X_sum = X C`` (:func:`coding_map`, exact and well conditioned) that is ``C^-1`` at the term's
    sum-coded rows, written with the identity on the term's own columns.  With aliased columns, or a
    fixed part that is not hierarchical (``trial + trial:rep``: there lmerTest's contrasts are not the
    SAS type III space), lmerTest's own construction is used.
    """
    fixed = model._fixed
    p = fixed.p
    if fixed.dropped or not _hierarchical(list(fixed.term_names)):
        rd = _type3_rank_deficient(model)
        if rd is not None:
            return rd
    summed = fixed.with_contrasts("sum")
    C = coding_map(model, summed)
    if C.shape != (p, p) or np.linalg.cond(C) > 1e12:  # pragma: no cover - full rank implies square
        raise ValueError("the sum-coded model does not map onto the model's coding")
    Ci = np.linalg.inv(C)
    by_key = {term_key(k): np.flatnonzero(summed.assign == j) for j, k in enumerate(summed.term_names)}
    assign = np.asarray(fixed.assign)
    out = {}
    for t, name in enumerate(fixed.term_names):
        rows = by_key.get(term_key(name))
        if rows is None or rows.size == 0:
            out[name] = np.zeros((0, p))
            continue
        lt = row_basis(Ci[rows])
        cols = np.flatnonzero(assign == t)
        Tt = lt[:, cols]
        if Tt.shape[0] == Tt.shape[1] and Tt.size and np.linalg.cond(Tt) < 1e10:
            lt = np.linalg.solve(Tt, lt)
            lt[np.abs(lt) < 1e-10] = 0.0
        out[name] = lt
    return out


def term_hypotheses(model, ss_type: int = 3) -> dict:
    """Hypothesis matrix of every fixed term (intercept excluded), in lmerTest's row bases.

    Parameters
    ----------
    model : MixedModel
        Needs ``_fixed`` (its coding), ``_cp``/``_std`` (stored cross-products) and ``_mf``.
    ss_type : {1, 2, 3}

    Returns
    -------
    dict
        ``{term: L}``, ``L`` of shape ``(num_df, p)`` over the model's coefficients, in model term order.
    """
    fixed = model._fixed
    p = fixed.p
    xtx, T = model._cp.XtX, model._std.T
    assign = np.asarray(fixed.assign)
    names = list(fixed.term_names)
    present = [t for t in range(len(names)) if np.any(assign == t)]
    if ss_type not in (1, 2, 3):
        from .._errors import VcompError
        raise VcompError("type must be 1, 2 or 3 (or 'I', 'II', 'III'), not %r" % (ss_type,))
    if p <= 1 or len(present) <= 1 or ss_type == 1:
        order = np.arange(p)  # the coding is in R's term order already
        return {names[t]: _doolittle_rows(xtx, T, order, np.flatnonzero(assign == t)) for t in present}
    if ss_type == 3:
        return {k: v for k, v in _type3_rows(model).items() if k in {names[t] for t in present}}
    cont = set(fixed.continuous())
    out = {}
    for t in present:
        containing = [u for u in present if u != t and contains(names[u], names[t], cont)]
        cols = np.flatnonzero(assign == t)
        if not containing:
            L = np.zeros((len(cols), p))
            L[np.arange(len(cols)), cols] = 1.0
            out[names[t]] = L
            continue
        last = np.isin(assign, [t] + containing)
        order = np.concatenate([np.flatnonzero(~last), np.flatnonzero(last)])
        out[names[t]] = _doolittle_rows(xtx, T, order, cols)
    return out
