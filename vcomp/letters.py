"""Compact letter displays by the insert-absorb algorithm (Piepho 2004; multcompView, multcomp::cld).

Two means share a letter exactly when their difference is not significant. The
insert-absorb algorithm starts with one letter shared by every mean; for each
significant pair it splits every letter column holding both means into two
(one without each mean), then absorbs columns contained in another. The result
is the set of maximal groups of mutually non-significant means, whatever the
order of the pairs. Letters are then named so that ``"a"`` marks the group of
the largest mean (then ``"b"`` the next, ...), as Genstat and agricolae print them.
"""
from __future__ import annotations

import string

import numpy as np

__all__ = ["insert_absorb", "letter_names", "compact_letters"]


def insert_absorb(n: int, significant: list[tuple[int, int]]) -> list[frozenset]:
    """Letter columns (sets of mean indices) of ``n`` means given the significant pairs.

    Parameters
    ----------
    n : int
        Number of means.
    significant : list of (i, j)
        Pairs of means whose difference is significant.

    Returns
    -------
    list of frozenset
        One set per letter: the means carrying it.

    Notes
    -----
    Columns are bit sets. Only the columns made by an insertion can be absorbed: a column
    kept unchanged is never contained in a part of another old column.
    """
    cols = [(1 << n) - 1] if n else []
    for i, j in significant:
        bi, bj = 1 << int(i), 1 << int(j)
        both = bi | bj
        hit = [c for c in cols if c & both == both]
        if not hit:
            continue
        keep = [c for c in cols if c & both != both]
        new = []
        for c in hit:
            new += [c & ~bj, c & ~bi]
        added = []
        for k, x in enumerate(new):
            if any(x & ~d == 0 for d in keep) or any(x & ~d == 0 and (x != d or m < k)
                                                   for m, d in enumerate(new) if m != k):
                continue
            added.append(x)
        cols = keep + added
    return [frozenset(b for b in range(n) if c >> b & 1) for c in cols]


def letter_names(k: int) -> list[str]:
    """``a, b, ..., z, A, ..., Z``, then two-character names: as many as ``k``."""
    base = list(string.ascii_lowercase + string.ascii_uppercase)
    out = base[:k]
    i = 0
    while len(out) < k:
        out += [base[i] + b for b in base][: k - len(out)]
        i += 1
    return out


def compact_letters(means: np.ndarray, significant: list[tuple[int, int]]) -> list[str]:
    """Letters of each mean: ``"a"`` for the group holding the largest mean.

    Parameters
    ----------
    means : ndarray, shape (n,)
        The estimates (the order of the groups' names follows them).
    significant : list of (i, j)
        Significant pairs (indices into ``means``).

    Returns
    -------
    list of str
        The letters of each mean, in letter order.
    """
    means = np.asarray(means, dtype=float)
    n = len(means)
    if n == 0:
        return []
    cols = insert_absorb(n, significant)
    # name groups by their largest mean, then their average, both descending
    cols.sort(key=lambda c: (-max(means[list(c)]), -float(np.mean(means[list(c)])), sorted(c)))
    names = letter_names(len(cols))
    return ["".join(nm for nm, c in zip(names, cols) if i in c) for i in range(n)]
