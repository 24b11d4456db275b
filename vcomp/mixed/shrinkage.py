"""Shrinkage (partial pooling): each group's own fit against the mixed-model estimate."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import FormulaError
from ..terms import term_key
from .crossprod import level_sums

__all__ = ["shrinkage", "group_ols", "own_fit_columns", "own_fit_matrix", "own_fit_level_sums"]


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


def own_fit_columns(model, matching) -> tuple[list[str], list[tuple[int, int]]]:
    """Names and sources of the own-fit columns: lme4's ``coef()`` (every fixed coefficient, then
    the random-only coefficients of the factor's terms ``matching``).

    Each source is ``(-1, j)`` (fixed column ``j``) or ``(i, j)`` (column ``j`` of random term ``i``).
    """
    names = [_clean(c) for c in model.fixef.index]
    picks = [(-1, j) for j in range(len(names))]
    index = {id(t): i for i, t in enumerate(model._re_terms)}
    for t in matching:
        for j, c in enumerate(t.coef_names):
            c = _clean(c)
            if c not in names:
                names.append(c)
                picks.append((index[id(t)], j))
    return names, picks


def own_fit_matrix(picks, X: np.ndarray, Xis: list) -> np.ndarray:
    """The own-fit columns of some rows: ``X`` (fixed) and each random term's ``Xi``."""
    cols = [np.asarray(X, dtype=float)[:, j] if i < 0 else np.asarray(Xis[i], dtype=float)[:, j] for i, j in picks]
    return np.column_stack(cols) if cols else np.zeros((len(X), 0))


def own_fit_level_sums(codes: np.ndarray, nlev: int, A: np.ndarray, y: np.ndarray):
    """Rows, ``A'A`` and ``A'y`` of every level (the own fits' sufficient statistics)."""
    xty = level_sums(codes, nlev, A, y[:, None])[:, :, 0]
    xtx = level_sums(codes, nlev, A)
    n = np.bincount(codes, minlength=nlev)
    return n, xtx, xty


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
    names, picks = own_fit_columns(model, matching)
    first = matching[0]
    levels = list(first.levels)
    source = getattr(model, "_source", None)
    if source is not None:  # reduced (out-of-core) data: per-level sums from one pass
        n, xtx, xty = source.own_fit_sums(model, first, picks)
    else:
        A = own_fit_matrix(picks, model._X, [t.Xi for t in model._re_terms])
        n, xtx, xty = own_fit_level_sums(np.asarray(first.codes), len(levels), A, np.asarray(model._y, dtype=float))
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
