"""The L matrices of estimated (least-squares) means and of their pairwise differences.

A mean of a term is ``L @ beta`` with ``L`` the equal-weight average of the model-matrix rows of
its reference-grid points (:mod:`vcomp.refgrid`), built with the model's own coding; the pairs are
``D @ L``. Both go to the one test kernel (:func:`vcomp.inference.kernel.contrast_rows`) or to the
classical variance (:mod:`vcomp.classical.lsmeans`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["means_matrix", "pairs_matrix"]


def means_matrix(rows: np.ndarray, group: np.ndarray, ngroups: int) -> np.ndarray:
    """The L matrix of estimated (least-squares) means: equal-weight averages of model-matrix rows.

    Row ``g`` of the result averages the rows ``rows[group == g]`` (the reference-grid points of
    one level combination of the term), so ``L @ beta`` are the means whatever the coding of
    ``beta``: a change of contrasts changes ``rows`` and ``beta`` together.

    Parameters
    ----------
    rows : ndarray, shape (g, p)
        Model-matrix rows of the reference grid.
    group : ndarray of int, shape (g,)
        The mean (0..ngroups-1) each grid point belongs to.
    ngroups : int

    Returns
    -------
    ndarray, shape (ngroups, p)
    """
    rows = np.asarray(rows, dtype=float)
    group = np.asarray(group, dtype=np.int64)
    W = np.zeros((ngroups, rows.shape[0]))
    W[group, np.arange(rows.shape[0])] = 1.0
    W /= np.maximum(W.sum(axis=1, keepdims=True), 1.0)
    return W @ rows


def pairs_matrix(slices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairwise differences ``mean_i - mean_j`` (``i < j``) within each slice.

    Parameters
    ----------
    slices : ndarray of int, shape (m,)
        The slice (``by`` level combination) of each mean; one slice for plain pairs.

    Returns
    -------
    first, second : ndarray of int
        The means compared by each pair, in slice order then ``(i, j)`` order.
    D : ndarray, shape (pairs, m)
        Differencing matrix: ``D @ L_means`` is the L matrix of the pairs.
    """
    slices = np.asarray(slices)
    first, second = [], []
    for s in slices[np.sort(np.unique(slices, return_index=True)[1])]:  # slices in order of appearance
        idx = np.flatnonzero(slices == s)
        i, j = np.triu_indices(len(idx), k=1)
        first.append(idx[i])
        second.append(idx[j])
    first = np.concatenate(first) if first else np.zeros(0, dtype=np.int64)
    second = np.concatenate(second) if second else np.zeros(0, dtype=np.int64)
    D = np.zeros((len(first), len(slices)))
    D[np.arange(len(first)), first] = 1.0
    D[np.arange(len(first)), second] = -1.0
    return first, second, D

