"""Shrinkage (partial pooling): each group's own fit against the mixed-model estimate."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import FormulaError

__all__ = ["shrinkage", "group_ols"]


def _clean(name: str) -> str:
    return "Intercept" if name in ("(Intercept)", "Intercept") else str(name)


def group_ols(Xi: np.ndarray, y: np.ndarray, codes: np.ndarray, nlev: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-level least squares of ``y`` on the columns of ``Xi``.

    One O(n k^2) pass of per-level cross-products, then a batched k x k solve.

    Returns
    -------
    coef : ndarray (nlev, k)
        Coefficients; NaN for a level whose own fit is not estimable
        (fewer distinct rows than coefficients).
    n : ndarray (nlev,)
        Rows per level.
    """
    k = Xi.shape[1]
    n = np.bincount(codes, minlength=nlev)
    xtx = np.empty((nlev, k, k))
    xty = np.empty((nlev, k))
    for a in range(k):
        xty[:, a] = np.bincount(codes, weights=Xi[:, a] * y, minlength=nlev)
        for b in range(a, k):
            xtx[:, a, b] = xtx[:, b, a] = np.bincount(codes, weights=Xi[:, a] * Xi[:, b], minlength=nlev)
    coef = np.full((nlev, k), np.nan)
    # rank check on the scaled cross-product: singular values relative to the largest
    scale = np.sqrt(np.maximum(np.einsum("gii->gi", xtx), 1e-300))
    corr = xtx / scale[:, :, None] / scale[:, None, :]
    sv = np.linalg.svd(corr, compute_uv=False)
    ok = (n >= k) & (sv[:, -1] > 1e-10 * np.maximum(sv[:, 0], 1e-300))
    if ok.any():
        coef[ok] = np.linalg.solve(xtx[ok], xty[ok][..., None])[..., 0]
    return coef, n


def shrinkage(model, group: str | None = None) -> pd.DataFrame:
    """Each level's own least-squares coefficients next to its mixed-model ones.

    Parameters
    ----------
    model : MixedModel
        A fitted model.
    group : str, optional
        Grouping factor (as written in the formula, e.g. ``"cluster"``).
        Defaults to the grouping factor of the first random term.

    Returns
    -------
    DataFrame
        One row per level: ``n``, then ``ols_<coef>`` (the level's own
        least-squares fit of the model's fixed part, e.g. ``lm(y ~ x)`` within the
        level) and ``mixed_<coef>`` (fixed effect + BLUP, lme4's ``coef()``) for every
        fixed-effect coefficient and every random-only coefficient of the factor. A level whose own fit is not estimable (fewer distinct rows than
        coefficients) has ``None`` in its ``ols_*`` cells, as R's ``NA`` (JSON ``null``);
        those columns are then of object dtype (``.astype(float)`` turns ``None`` into NaN).
    """
    terms = list(model._re_terms)
    groups = list(dict.fromkeys(t.group for t in terms))
    if group is None:
        group = groups[0]
    from .._data import term_key
    matching = [t for t in terms if term_key(t.group) == term_key(group)]
    if not matching:
        raise FormulaError("shrinkage: %r is not a grouping factor of the model; choose one of %s"
                           % (group, ", ".join(map(repr, groups))))
    # lme4's coef(): every fixed-effect coefficient, plus the random-only ones of this factor;
    # each level's own fit is the fixed-effects model (plus random-only columns) fitted to that level
    X = np.asarray(model._X, dtype=float)
    names = [_clean(c) for c in model.fixef.index]
    cols = [X[:, j] for j in range(X.shape[1])]
    for t in matching:
        for j, c in enumerate(t.coef_names):
            c = _clean(c)
            if c not in names:
                names.append(c)
                cols.append(np.asarray(t.Xi)[:, j])
    first = matching[0]
    codes, levels = np.asarray(first.codes), list(first.levels)
    Xi = np.column_stack(cols)
    coef, n = group_ols(Xi, np.asarray(model._y, dtype=float), codes, len(levels))
    re = model.ranef[first.group]
    fixef = {_clean(k): float(v) for k, v in model.fixef.items()}
    out = {"n": n}
    bad = np.isnan(coef).any(axis=1)
    for j, c in enumerate(names):
        col = coef[:, j]
        if bad.any():
            col = pd.array([None if b else float(v) for v, b in zip(col, bad)], dtype=object)
        out["ols_" + c] = col
    for c in names:
        blup = re[c].reindex(levels).to_numpy(dtype=float) if c in re.columns else np.zeros(len(levels))
        out["mixed_" + c] = fixef.get(c, 0.0) + blup
    frame = pd.DataFrame(out, index=pd.Index(levels, name=str(group)))
    return frame
