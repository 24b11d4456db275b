"""What the data look like to the classical model: nesting, cell counts, empty cells.

The notes of :func:`vcomp.anova` and :func:`vcomp.crosscheck` are written
from these counts, so every sentence about (im)balance or nesting describes
the data actually analysed.  Everything works on the cell model
(:class:`~vcomp.classical.model.CellModel`: one row per cell, counts as weights).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..terms import split_term, term_key
from .._coding import _is_dask
from .model import CellModel, _combo, _factor_terms, _marginals, build_model, incomplete_terms, prepare

__all__ = ["Nesting", "nesting", "CellCounts", "cell_counts", "DataStructure", "data_structure"]


@dataclass(frozen=True)
class Nesting:
    """How the nested factors of one term sit inside its crossed (outer) factors.

    Attributes
    ----------
    term : str
    inner, outer : list of str
        The term's nested factors and its crossed factors (those of its marginal terms).
    n_outer : int
        Outer combinations present.
    min, max : int
        Fewest and most inner combinations within one outer combination.
    n_labels : int
        Distinct inner combinations over the whole data set.
    unique_labels : bool
        Every inner label occurs within one outer combination only (``R0B00, R1B00, ...``).
    complete_reuse : bool
        Every outer combination holds every inner label (labels ``1..k`` reused): then
        R's sum-to-zero coding of the term is full rank.
    """

    term: str
    inner: list
    outer: list
    n_outer: int
    min: int
    max: int
    n_labels: int
    unique_labels: bool
    complete_reuse: bool

    def describe(self) -> str:
        """One clause, e.g. ``"rep:block: the labels of block are unique to each rep (30 in every rep)"``."""
        inner, outer = ":".join(self.inner), ":".join(self.outer)
        count = ("%d in every %s" % (self.min, outer) if self.min == self.max
                 else "%d to %d per %s" % (self.min, self.max, outer))
        if self.unique_labels:
            return "%s: the labels of %s are unique to each %s (%s)" % (self.term, inner, outer, count)
        if self.min != self.max:
            return "%s: %s has %d to %d levels per %s" % (self.term, inner, self.min, self.max, outer)
        return "%s: each %s uses a different subset of the %d labels of %s (%s)" % (
            self.term, outer, self.n_labels, inner, count)


def nesting(model: CellModel, terms: list[str] | None = None) -> list[Nesting]:
    """The nested terms of ``model`` (terms with factors outside their marginal terms' factors).

    Parameters
    ----------
    model : CellModel
    terms : list of str, optional
        Terms to describe (default: all of the model's factor terms).

    Returns
    -------
    list of Nesting
        One entry per factor term that has both crossed (outer) and nested (inner) factors.
    """
    fterms = _factor_terms(model, model.terms)
    out = []
    for t in (fterms if terms is None else [x for x in fterms if term_key(x) in {term_key(y) for y in terms}]):
        margs = _marginals(t, fterms)
        kset = {f for m in margs for f in split_term(m)}
        outer = [f for f in split_term(t) if f in kset]
        inner = [f for f in split_term(t) if f not in kset]
        if not outer or not inner:
            continue
        oc = _combo(model, outer)
        ic = _combo(model, inner)
        pairs = np.unique(np.column_stack([oc, ic]), axis=0)
        per_outer = np.bincount(pairs[:, 0])
        per_outer = per_outer[per_outer > 0]
        outers_per_label = np.bincount(pairs[:, 1])
        n_labels = int(np.count_nonzero(outers_per_label))
        n_outer = len(per_outer)
        out.append(Nesting(term=t, inner=inner, outer=outer, n_outer=n_outer, min=int(per_outer.min()),
                           max=int(per_outer.max()), n_labels=n_labels,
                           unique_labels=bool(n_outer > 1 and np.all(outers_per_label[outers_per_label > 0] == 1)),
                           complete_reuse=bool(np.all(per_outer == n_labels))))
    return out


@dataclass(frozen=True)
class CellCounts:
    """Observations per present cell of one term.

    Attributes
    ----------
    term : str
    n_cells : int
        Present combinations of the term's factors.
    min, max : int
        Fewest and most observations in one of them.
    """

    term: str
    n_cells: int
    min: int
    max: int

    @property
    def equal(self) -> bool:
        return self.min == self.max

    def describe(self) -> str:
        return "%s has %d to %d observations per cell" % (self.term, self.min, self.max)


def cell_counts(model: CellModel, terms: list[str]) -> list[CellCounts]:
    """Observations per present cell of every factor term in ``terms``."""
    out = []
    for t in _factor_terms(model, terms):
        codes = _combo(model, split_term(t))
        n = np.bincount(codes, weights=model.w)
        n = n[n > 0]
        out.append(CellCounts(term=t, n_cells=len(n), min=int(round(n.min())), max=int(round(n.max()))))
    return out


@dataclass(frozen=True)
class DataStructure:
    """Balance and nesting of a data set for a design (all terms as fixed effects).

    Attributes
    ----------
    nesting : list of Nesting
        Nested terms (inner factors within the factors of their marginal terms).
    counts : list of CellCounts
        Observations per present cell of every factor term.
    empty : dict of str -> DataFrame
        Terms with empty cells of crossed factors, and those cells
        (:func:`~vcomp.classical.model.incomplete_terms`).
    rank_deficient : bool
        R's sum-to-zero coding of the all-fixed model is rank deficient.
    """

    nesting: list
    counts: list
    empty: dict
    rank_deficient: bool

    @property
    def unequal_counts(self) -> list:
        """The terms whose present cells hold different numbers of observations."""
        return [c for c in self.counts if not c.equal]

    @property
    def unequal_nesting(self) -> list:
        """Nested terms with different numbers of inner levels per outer level."""
        return [x for x in self.nesting if x.min != x.max]

    @property
    def balanced(self) -> bool:
        """Equal counts in every cell of every term, no empty cells, equal nesting."""
        return not (self.unequal_counts or self.empty or self.unequal_nesting)


def data_structure(data, response: str, design) -> DataStructure:
    """The balance and nesting of ``data`` for ``design`` (the data as :func:`vcomp.anova` reads them).

    Parameters
    ----------
    data : DataFrame
    response : str
    design : Design

    Returns
    -------
    DataStructure
    """
    if _is_dask(data):  # the reduced table of cells carries the counts
        from .._dask.classical import prepare_reduced
        prep = prepare_reduced(data, response, design)
    else:
        prep = prepare(data, response, design)
    terms = design.terms_for(data)
    model = build_model(prep, terms)
    return DataStructure(nesting=nesting(model), counts=cell_counts(model, terms),
                         empty=incomplete_terms(model, terms), rank_deficient=bool(model.rank < model.p))
