"""Reference grids of estimated (least-squares) means, as emmeans' ``ref_grid``.

A reference grid holds one point per combination of the levels of the model's
factors; covariates sit at their mean (a covariate with at most two distinct
values keeps both, as emmeans' ``cov.keep = 2``). Factors nested in another
(each level seen with one level of the other, as emmeans' nesting detection)
take only their observed combinations with it. The means of a term are the
equal-weight averages of the model-matrix rows of the grid points of each of
its level combinations (:func:`vcomp.hypotheses.means_matrix`).

The grid is built from integer codes; the caller turns it into model-matrix
rows with its own coding.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .hypotheses import means_matrix

__all__ = ["KEEP_DISTINCT", "nesting_clusters", "reference_grid", "term_means"]

#: a covariate with at most this many distinct values keeps them in the grid (emmeans' cov.keep)
KEEP_DISTINCT = 2


def nesting_clusters(codes: dict) -> list[list[str]]:
    """Groups of factors linked by nesting (each level of one seen with a single level of another).

    Parameters
    ----------
    codes : dict
        factor -> integer codes of the observations.

    Returns
    -------
    list of list of str
        Factor groups in the order of ``codes``; crossed factors are alone in their group.
    """
    names = list(codes)
    parent = {f: f for f in names}

    def root(f):
        while parent[f] != f:
            f = parent[f]
        return f

    nlev = {f: len(np.unique(codes[f])) for f in names}
    for f in names:
        if nlev[f] < 2:
            continue
        for g in names:
            if g == f or nlev[g] < 2:
                continue
            pairs = pd.DataFrame({"f": codes[f], "g": codes[g]}).drop_duplicates()
            if pairs.groupby("f")["g"].nunique().max() == 1:  # f nested in g
                parent[root(f)] = root(g)
    groups: dict = {}
    for f in names:
        groups.setdefault(root(f), []).append(f)
    return [g for g in groups.values()]


def reference_grid(codes: dict, nlevels: dict, covariates: dict | None = None,
                   weights: np.ndarray | None = None) -> pd.DataFrame:
    """The reference grid of a model: factor codes and covariate values of every grid point.

    Parameters
    ----------
    codes : dict
        factor -> integer codes (0..nlevels-1) of the observations used in the fit.
    nlevels : dict
        factor -> number of levels.
    covariates : dict, optional
        covariate -> values of the observations.
    weights : ndarray, optional
        Observations each row stands for (reduced out-of-core data); covariate means are weighted.

    Returns
    -------
    DataFrame
        One row per grid point; factor columns hold codes (first factor slowest), covariate
        columns their mean (or each of their at most :data:`KEEP_DISTINCT` distinct values).
    """
    covariates = covariates or {}
    parts = []
    for group in nesting_clusters(codes):
        if len(group) == 1:
            f = group[0]
            parts.append(pd.DataFrame({f: np.arange(nlevels[f], dtype=np.int64)}))
        else:
            obs = pd.DataFrame({f: np.asarray(codes[f], dtype=np.int64) for f in group}).drop_duplicates()
            parts.append(obs.sort_values(group).reset_index(drop=True))
    for v, x in covariates.items():
        x = np.asarray(x, dtype=float)
        uniq = np.unique(x)
        vals = uniq if len(uniq) <= KEEP_DISTINCT else np.array([np.average(x, weights=weights)])
        parts.append(pd.DataFrame({v: vals}))
    grid = pd.DataFrame(index=[0])
    for part in parts:
        grid = grid.merge(part, how="cross")
    order = [c for c in list(codes) + list(covariates)]
    grid = grid[order]
    return grid.sort_values(list(codes), kind="stable").reset_index(drop=True) if codes else grid


def term_means(grid: pd.DataFrame, rows: np.ndarray, factors: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The level combinations of ``factors`` present in the grid and the L matrix of their means.

    Parameters
    ----------
    grid : DataFrame
        From :func:`reference_grid`.
    rows : ndarray, shape (len(grid), p)
        The model-matrix rows of the grid points.
    factors : list of str
        The factors of the term.

    Returns
    -------
    combos : DataFrame
        One row per mean (factor codes, first factor slowest).
    L : ndarray, shape (len(combos), p)
    """
    key = grid[factors].reset_index(drop=True)
    combos = key.drop_duplicates().sort_values(factors).reset_index(drop=True)
    group = key.merge(combos.reset_index(), on=factors, how="left")["index"].to_numpy()
    return combos, means_matrix(rows, group, len(combos))
