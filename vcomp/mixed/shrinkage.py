"""Shrinkage (partial pooling): each group's own fit against the mixed-model estimate."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import FormulaError
from ..terms import term_key
from .crossprod import level_sums

__all__ = ["shrinkage", "group_ols"]


def _clean(name: str) -> str:
    return "Intercept" if name in ("(Intercept)", "Intercept") else str(name)


def group_ols(xtx: np.ndarray, xty: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per-level least squares from per-level cross-products (``g x k x k`` and ``g x k``).

    Returns the coefficients (``g x k``), NaN for a level whose own fit is not estimable
    (fewer rows than coefficients, or a singular cross-product).
    """
    nlev, k, _ = xtx.shape
    coef = np.full((nlev, k), np.nan)
    scale = np.sqrt(np.maximum(np.einsum("gii->gi", xtx), 1e-300))
    corr = xtx / scale[:, :, None] / scale[:, None, :]
    sv = np.linalg.svd(corr, compute_uv=False)
    ok = (n >= k) & (sv[:, -1] > 1e-10 * np.maximum(sv[:, 0], 1e-300))
    if ok.any():
        coef[ok] = np.linalg.solve(xtx[ok], xty[ok][..., None])[..., 0]
    return coef


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
        One row per level: ``n``, then ``ols_<coef>`` (the level's own least-squares fit of the
        model's fixed part, e.g. ``lm(y ~ x)`` within the level) and ``mixed_<coef>`` (fixed effect
        + BLUP, lme4's ``coef()``) for every fixed-effect coefficient and every random-only
        coefficient of the factor.  A level whose own fit is not estimable has ``None`` in its
        ``ols_*`` cells, as R's ``NA``; those columns are then of object dtype.
    """
    terms = list(model._re_terms)
    groups = list(dict.fromkeys(t.group for t in terms))
    if group is None:
        group = groups[0]
    matching = [t for t in terms if term_key(t.group) == term_key(group)]
    if not matching:
        raise FormulaError("shrinkage: %r is not a grouping factor of the model; choose one of %s"
                           % (group, ", ".join(map(repr, groups))))
    # lme4's coef(): every fixed-effect coefficient, plus the random-only ones of this factor
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
    A = np.column_stack(cols)
    y = np.asarray(model._y, dtype=float)
    xty = level_sums(codes, len(levels), A, y[:, None])[:, :, 0]
    xtx = level_sums(codes, len(levels), A)
    n = np.bincount(codes, minlength=len(levels))
    coef = group_ols(xtx, xty, n)
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
    return pd.DataFrame(out, index=pd.Index(levels, name=str(group)))
