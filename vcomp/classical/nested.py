"""Hierarchical (nested-chain) designs in O(n): sums of squares and EMS from cell counts and sums.

When the terms of a design form a chain -- each term's factors contain the previous term's,
as in a one-way layout or ``Nested(["batch", "cask", "sample"])`` -- the column space of the
first ``j`` terms is spanned by the indicators of term ``j``'s cells.  So the sequential sum of
squares of term ``j`` is ``sum_c S_c^2 / n_c`` over its cells minus the same over the previous
term's cells, and Hartley's EMS coefficients follow from the counts alone:
``tr(Z_m' P_j Z_m) = sum_{c in t_j} sum_{d in t_m, d in c} n_d^2 / n_c`` (``n`` when ``t_m`` is
coarser).  Nothing of the size (levels x levels) is formed, so a random factor with tens of
thousands of levels costs one pass over the data.
"""
from __future__ import annotations

import numpy as np

from .._coding import interaction
from ..terms import split_term, term_key

__all__ = ["is_chain", "chain_table", "CHAIN_MIN_CELLS"]

#: the chain path is used when the finest term has at least this many cells (smaller designs take the
#: general cell-model path, which gives identical numbers)
CHAIN_MIN_CELLS = 2000


def is_chain(terms: list[str]) -> bool:
    """Whether each term's factor set strictly contains the previous one's."""
    keys = [term_key(t) for t in terms]
    return bool(keys) and all(a < b for a, b in zip(keys, keys[1:]))


def _cells(prep, term: str) -> np.ndarray:
    fs = split_term(term)
    codes, _ = interaction([prep.codes[f] for f in fs], [prep.levels[f] for f in fs])
    return codes


def balanced_chain(cells: list[np.ndarray]) -> bool:
    """Equal counts in every finest cell and an equal number of sub-cells in every cell of each term."""
    n_last = np.bincount(cells[-1])
    if n_last.min() != n_last.max():
        return False
    for a, b in zip(cells, cells[1:]):
        parent = np.zeros(int(b.max()) + 1, dtype=np.int64)
        parent[b] = a
        k = np.bincount(parent)
        if k.min() != k.max():
            return False
    return True


def chain_table(prep, terms: list[str]) -> dict:
    """Sequential SS, df and Hartley EMS of a nested chain of terms (cost O(n + cells)).

    Returns
    -------
    dict
        ``df`` and ``ss`` (terms then residual), ``E`` (sources x (terms + residual): the EMS coefficient
        of every term's variance component, whichever terms are later treated as random), ``cells``
        (cell codes per term), ``balanced``.
    """
    y = prep.y - prep.y.mean()
    n = len(y)
    cells = [_cells(prep, t) for t in terms]
    counts = [np.bincount(c).astype(float) for c in cells]
    sums = [np.bincount(c, weights=y) for c in cells]
    between = [0.0] + [float(np.sum(s * s / m)) for s, m in zip(sums, counts)]
    ncell = [1] + [len(m) for m in counts]
    ss = [between[j + 1] - between[j] for j in range(len(terms))]
    df = [ncell[j + 1] - ncell[j] for j in range(len(terms))]
    ss.append(float(y @ y) - between[-1])
    df.append(n - ncell[-1])
    k = len(terms)
    # D[j][m] = tr(Z_m' P_j Z_m), j = 0 the grand mean, m >= 1 the terms
    D = np.zeros((k + 1, k))
    for m in range(k):
        nd2 = counts[m] ** 2
        D[0, m] = float(nd2.sum()) / n
        for j in range(1, k + 1):
            if j - 1 >= m:
                D[j, m] = n
                continue
            parent = np.zeros(len(counts[m]), dtype=np.int64)
            parent[cells[m]] = cells[j - 1]
            per = np.bincount(parent, weights=nd2, minlength=len(counts[j - 1]))
            D[j, m] = float(np.sum(per / counts[j - 1]))
    E = np.zeros((k + 1, k + 1))
    for j in range(k):
        E[j, :k] = (D[j + 1] - D[j]) / df[j] if df[j] > 0 else np.nan
        E[j, k] = 1.0 if df[j] > 0 else np.nan
    E[k, :k] = (n - D[k]) / df[k] if df[k] > 0 else np.nan
    E[k, k] = 1.0
    return {"df": np.array(df, dtype=float), "ss": np.array(ss), "E": E, "cells": cells,
            "balanced": balanced_chain(cells)}
