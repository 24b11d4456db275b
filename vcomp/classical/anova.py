"""Classical ANOVA of a design: sums of squares, EMS, method of moments, F tests."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..terms import split_term, term_key
from .._coding import _is_dask
from .._errors import DataError, DesignError, NotEstimableError
from .._threads import entry_point
from ..hypotheses import hypothesis_matrices
from .ems import fixed_parts, ems_row, residual_ems, source_form
from .ftests import f_tests
from .goodnight import goodnight_type3_ss
from .model import build_model, describe_cells, incomplete_terms, nested_cell_model, prepare
from .moments import mom_components
from .nested import CHAIN_MIN_CELLS, chain_table, is_chain
from .notes import anova_notes
from .result import AnovaResult, ems_strings
from .structure import nesting

__all__ = ["anova"]


def _type3_not_estimable(model) -> list[str]:
    """Terms whose sum-coded type III hypothesis is not estimable in a rank-deficient model."""
    R = np.eye(model.p) - model.G @ model.xtx
    bad = []
    for k, t in enumerate(model.terms):
        cols = model.assign == k
        if np.max(np.abs(model.T[cols] @ R), initial=0.0) > 1e-6:
            bad.append(t)
    return bad


def _type3_model(prep, model):
    """Nested-cell coded model for type III when the sum-coded ``X`` is rank deficient, or raise.

    Raises :class:`NotEstimableError` naming the terms with empty cells of
    crossed factors (see :func:`~vcomp.classical.model.incomplete_terms`),
    with the empty cells in ``.missing_cells``.
    """
    head = ("type III sums of squares are not defined here: with all terms as fixed effects the sum-coded model "
            "is rank deficient (rank %d < %d columns)" % (model.rank, model.p))
    tail = "; use ss_type=1 (sequential, valid with missing cells) or fit the mixed model with design.lmm(...)."
    bad = incomplete_terms(model, model.terms)
    if bad:
        raise NotEstimableError(
            head + " and term(s) %s have empty cells of crossed factors (e.g. a missing whole plot or an "
            "empty A:B cell), where SAS's type III is a different construction that vcomp does not implement"
            % ", ".join("%r (%d empty cell%s: %s)" % (t, len(m), "" if len(m) == 1 else "s", describe_cells(m))
                        for t, m in bad.items()) + tail,
            terms=list(bad), details={t: {"empty_cells": len(m)} for t, m in bad.items()}, missing_cells=bad,
            reason="empty_cells")
    new = nested_cell_model(prep, model)
    if new.rank < new.p or new.rank != model.rank:
        bad = _type3_not_estimable(new) or list(model.terms)
        raise NotEstimableError(
            head + " and the type III hypotheses of %s are not estimable even with within-outer-level "
            "contrasts for nested terms" % ", ".join(map(repr, bad)) + tail, terms=bad, reason="not_estimable")
    return new


#: relative agreement required between the nested-cell and Goodnight type III SS of every term
GOODNIGHT_RTOL = 1e-8


def _check_goodnight(prep, model, forms, terms) -> None:
    """Raise unless the nested-cell type III SS of every term equals SAS's literal (Goodnight) type III SS.

    The two readings of SAS's type III rule agree for 2-stage nesting; with unequal numbers of levels at
    more than one nesting stage (or nested sub-samples inside a crossed whole plot) they can differ, and
    vcomp then refuses to choose.
    """
    covars = prep.covars if prep.covars else None
    gn = goodnight_type3_ss(model, prep.y, covars)
    y = prep.y - model.ybar
    floor = 1e-12 * (float(y @ y) if prep.w is None else float(prep.w @ (y * y)) + prep.ss_within)
    names, bad, details = [], [], {}
    for t, f in zip(terms, forms):
        df, ss = gn[t]
        if df != f.df or abs(ss - f.ss) > GOODNIGHT_RTOL * max(abs(ss), abs(f.ss)) + floor:
            names.append(repr(t))
            details[t] = {"nested_cell_ss": f.ss, "nested_cell_df": f.df, "goodnight_ss": ss, "goodnight_df": df}
            bad.append("%r: SS = %.8g (df %d) with the nested-cell coding (hierarchical unweighted means of the "
                       "nested cells) vs %.8g (df %d) by Goodnight's literal construction of SAS's type III "
                       "estimable functions" % (t, f.ss, f.df, ss, df))
    if bad:
        raise NotEstimableError(
            "type III sums of squares are ambiguous here: with all terms as fixed effects the sum-coded model is "
            "rank deficient (unequal numbers of nested levels), and SAS's type III "
            "hypothesis for this unequal multi-stage nesting is ambiguous for term(s) %s: the two standard "
            "readings of SAS's rule give different sums of squares (%s). Use ss_type=1 (sequential, well defined "
            "here) or fit the mixed model with design.lmm(...)." % (", ".join(names), "; ".join(bad)),
            terms=list(details), reason="ambiguous", details=details)


@entry_point
def anova(data, response: str, design, ss_type: int = 3) -> AnovaResult:
    """Classical ANOVA with expected mean squares, variance components and F tests.

    All terms of the design, random ones included, enter the linear model as
    fixed effects with sum-to-zero coding (SAS PROC GLM).  Each source gets
    its expected mean square by Hartley's synthesis, the random terms their
    method-of-moments variance components, and every source an F test with
    the exact denominator or a synthesized one (Satterthwaite's df).

    Parameters
    ----------
    data : DataFrame
        One row per observation (never modified).
    response : str
        Numeric response column.
    design : Design
        E.g. ``vcomp.SplitPlot(whole="variety", sub="nitro", block="block")``.
    ss_type : {1, 2, 3}
        Sequential (in ``design.terms_for(data)`` order: a builder's textbook order), SAS type II, or SAS type III
        (see Notes for rank-deficient models).

    Returns
    -------
    AnovaResult

    Raises
    ------
    DataError
        Missing column, non-numeric/infinite response, one-level factor.
    DesignError
        No residual degrees of freedom.
    NotEstimableError
        Type III requested where a term has empty cells of crossed factors
        (a missing whole plot, an empty ``A:B`` cell), or where SAS's type III
        is ambiguous (unequal multi-stage nesting, see Notes): the error
        names the terms (and the missing combinations or the two competing
        sums of squares); use ``ss_type=1`` or the mixed model.

    Notes
    -----
    Type III in rank-deficient models.  When the sum-coded ``X`` (R's
    ``model.matrix`` rule) is full rank, type III tests its term columns
    (the R oracle's and ``car::Anova``'s answer, identical to SAS PROC GLM's
    type III).  When it is rank deficient (``result.rank_deficient``), each
    factor term ``T`` is classified by
    :func:`vcomp.classical.model.incomplete_terms`: its *crossed factors*
    are those of its marginal terms in the model (terms whose factor sets are
    strict subsets of ``T``'s); ``T`` is complete when every combination of
    them that the marginal terms' present cells allow occurs among ``T``'s
    cells, with the other (nested) factors free to take any number of levels.

    * Every term complete (the deficiency comes only from nesting with
      unequal numbers of inner levels, e.g. ``Nested(["batch", "sample"])``
      with 2 to 4 samples per batch): each factor term is re-coded by the
      orthogonal complement, in its unweighted cell space, of the indicators
      of its marginal terms and the intercept (*nested-cell* coding):
      within-outer-level contrasts for a nested term and, for an outer
      factor, the hypothesis that the unweighted means of its inner cells'
      (unweighted) means are equal.  Complete crossed parts are unchanged.
      The result is then checked term by term against SAS's documented rule
      applied literally (:mod:`vcomp.classical.goodnight`: Goodnight's
      construction of the type III estimable functions from the echelon form
      of the over-parameterised ``X'X``; it reproduces the full-rank type
      III of every reference case).

      - The two agree (relative 1e-8) for every term -- 2-stage nesting,
        or e.g. 3-stage nesting with the same number of subsamples in every
        bag of a lot (unequal across lots): type III is reported (``result.type3_coding ==
        "nested-cell"``), with EMS by Hartley's synthesis, method of moments
        and F tests as usual.
      - They differ for some term -- e.g. 3-stage nesting with unequal
        numbers of subsamples per bag, or sub-samples (plants) nested in the
        whole plots of a split-plot with unequal numbers per whole plot:
        SAS's type III hypothesis is ambiguous there and vcomp raises
        :class:`NotEstimableError` naming the terms and both sums of squares.
    * Some term incomplete (a missing whole plot makes ``block:A``
      incomplete, an empty cell ``A:B``): :class:`NotEstimableError` naming
      the terms (SAS's type III is a different construction there).

    Types I and II always use the sum-coded ``X``.

    Variance components.  The method of moments solves E[MS] = MS over the
    random terms' rows and the residual (:attr:`AnovaResult.moments`).  For
    type I these rows come from the type I sums of squares with the fixed
    terms fitted first, then the random terms (each group in table order), as
    SAS PROC VARCOMP METHOD=TYPE1 does, so that no row holds a fixed effect;
    the displayed table keeps the textbook order and its EMS, and a note says
    when its random rows hold ``Q(...)``.  For types II and III the table's
    rows are used, unless one of them holds a fixed effect: then the
    fixed-first type I rows are used, with a note.

    Examples
    --------
    >>> import vcomp
    >>> oats = vcomp.datasets.load("oats")
    >>> res = vcomp.anova(oats, "yield", vcomp.SplitPlot("variety", "nitro", "block"))
    >>> res.table.loc["variety", "error"]
    'block:variety'
    """
    if not (hasattr(design, "model_formula") and hasattr(design, "terms_for")):
        raise DesignError("design must be a vcomp.Design (e.g. vcomp.SplitPlot(...)), got %r" % type(design).__name__)
    ss_type = _SS_TYPES.get(ss_type.strip().upper() if isinstance(ss_type, str) else ss_type) \
        if isinstance(ss_type, (int, str)) and not isinstance(ss_type, bool) else None
    if ss_type is None:
        raise DesignError("ss_type must be 1, 2 or 3 (or 'I', 'II', 'III')")
    if _is_dask(data):  # out of core: cell statistics reduced by Dask (vcomp._dask.classical)
        from .._dask.classical import prepare_reduced
        prep = prepare_reduced(data, response, design)
    else:
        prep = prepare(data, response, design)
    rw = np.ones(len(prep.y)) if prep.w is None else np.asarray(prep.w, dtype=float)
    ybar = float(rw @ prep.y / rw.sum())
    ss_total = float(rw @ (prep.y - ybar) ** 2) + (prep.ss_within if prep.w is not None else 0.0)
    if ss_total <= (1e-13 * max(1.0, abs(ybar))) ** 2 * rw.sum():
        raise DataError("the response %r is constant (every value is %.10g): there is no variation to analyse"
                        % (response, ybar))
    terms = design.terms_for(data)
    rkeys = {term_key(r) for r in design.random_terms}
    random = [t for t in terms if term_key(t) in rkeys]  # the design's term order for the EMS columns
    chain = (_chain(prep, terms, ss_type, random)
             if not prep.covars and prep.w is None and is_chain(terms) else None)
    model = chain.model if chain is not None else build_model(prep, terms)
    df_res = model.n - model.rank
    if df_res <= 0:
        raise DesignError(
            "no residual degrees of freedom: the model with all %d terms as fixed effects has rank %d = "
            "number of observations (%d), e.g. one observation per cell of the highest interaction. "
            "Remove the term that plays the role of the error (usually the highest interaction) from the design."
            % (len(terms), model.rank, model.n))
    if model.ss_resid <= 1e-20 * ss_total * model.n:
        raise DataError("the response %r is fitted exactly by the design's terms (every residual is 0): no error "
                        "variation is left for tests or variance components; check for a duplicated or derived "
                        "response" % response)
    rank_deficient = model.rank < model.p
    sum_model = model
    coding = None
    if ss_type == 3:
        coding = "sum"
        if rank_deficient:
            model = _type3_model(prep, model)
            coding = "nested-cell"

    comps = random + ["Residual"]
    rows = chain.rows if chain is not None else _sources(model, terms, ss_type, random, rkeys)
    if coding == "nested-cell":
        _check_goodnight(prep, model, rows.forms, terms)
    sources = terms + ["Residual"]
    index = pd.Index(sources, name="source")
    ems = pd.DataFrame(rows.E, index=index, columns=comps)
    tests, error_terms = f_tests(rows.E, rows.df, rows.ms, sources, comps, random)
    table = pd.DataFrame({"df": np.rint(rows.df).astype(int), "SS": rows.ss, "MS": rows.ms, "F": tests["F"],
                          "p": tests["p"], "den_df": tests["den_df"], "error": tests["error"]}, index=index)
    text = ems_strings(rows.E, sources, comps, rows.fparts, ["Residual"] + random[::-1])

    # method of moments: the random rows and the residual, free of fixed effects
    contaminated = [r for r in random if rows.fparts[r]]
    order = None
    if random and (ss_type == 1 or contaminated):
        order = [t for t in terms if term_key(t) not in rkeys] + random  # SAS PROC VARCOMP METHOD=TYPE1
        mrows = rows if order == terms and ss_type == 1 else _sources(
            sum_model if order == terms else build_model(prep, order), order, 1, random, rkeys)
        take = [order.index(c) for c in random] + [len(order)]
    else:
        mrows = rows
        take = [sources.index(c) for c in comps]
    moments = {"df": mrows.df[take], "SS": mrows.ss[take], "MS": mrows.ms[take]}
    Et = mrows.E[take]
    if set(comps) & set(moments):     # a component named like a column: keep both (concat)
        moments = pd.DataFrame(moments, index=pd.Index(comps, name="component"))
        moments = pd.concat([moments, pd.DataFrame(Et, index=moments.index, columns=comps)], axis=1)
    else:                             # one frame from one dict (a concat costs twice as much)
        moments.update({c: Et[:, j] for j, c in enumerate(comps)})
        moments = pd.DataFrame(moments, index=pd.Index(comps, name="component"))
    comp, singular = mom_components(mrows.E[take], mrows.ms[take], comps)

    y = prep.y
    ss_total = float(np.sum((y - y.mean()) ** 2))
    ms_res = float(rows.ms[-1])           # the Residual row is last (sources = terms + ["Residual"])
    fit_stats = pd.Series({"R-Square": 1.0 - model.ss_resid / ss_total if ss_total > 0 else np.nan,
                           "Coeff Var": 100.0 * np.sqrt(ms_res) / y.mean() if y.mean() != 0 else np.nan,
                           "Root MSE": np.sqrt(ms_res), "Mean": float(y.mean())}, name=response, dtype=float)
    total = pd.Series({"df": model.n - 1, "SS": ss_total}, name="Corrected Total")

    notes = anova_notes(ss_type=ss_type, coding=coding, table=table, comp=comp, fparts=rows.fparts,
                        error_terms=error_terms, random=random, contaminated=contaminated, order=order,
                        moments_fparts=mrows.fparts if order is not None else None, singular=singular,
                        nested=nesting(sum_model) if coding == "nested-cell" else [])
    return AnovaResult(table=table, ems=ems, ems_text=text, fixed_parts=rows.fparts, error_terms=error_terms,
                       components=comp, ss_type=ss_type, nobs=model.n, n_dropped=prep.n_dropped,
                       response=response, design=design, rank_deficient=bool(rank_deficient),
                       type3_coding=coding, moments=moments, moments_order=order, notes=notes,
                       fit_stats=fit_stats, total=total,
                       _fixed_fit=(prep, sum_model) if chain is None else None)  # for least-squares means


_SS_TYPES = {1: 1, 2: 2, 3: 3, "1": 1, "2": 2, "3": 3, "I": 1, "II": 2, "III": 3}


@dataclass
class _ChainModel:
    """What :func:`anova` needs of a nested chain's all-fixed model (no cell matrix is formed)."""

    n: int
    rank: int
    p: int
    ss_resid: float


@dataclass
class _Chain:
    model: _ChainModel
    rows: "_Rows"


def _chain(prep, terms: list[str], ss_type: int, random: list[str]):
    """The O(n) sources of a large nested chain (one-way, hierarchical designs); None for the general path."""
    fs = split_term(terms[-1])
    if np.prod([float(len(prep.levels[f])) for f in fs]) < CHAIN_MIN_CELLS:
        return None
    ct = chain_table(prep, terms)
    ncell = int(ct["cells"][-1].max()) + 1 if len(ct["cells"][-1]) else 0
    if ncell < CHAIN_MIN_CELLS:
        return None
    if ss_type == 3 and len(terms) > 1 and not ct["balanced"]:
        raise NotEstimableError(
            "type III sums of squares of this large unbalanced nested design are not available (they need the "
            "nested-cell coding of every level); use ss_type=1, the hierarchical (sequential) analysis, which is "
            "what SAS PROC NESTED and most texts use for nested designs.", terms=list(terms), reason="large_nested")
    rk = {term_key(r) for r in random}
    cols = [terms.index(c) for c in random] + [len(terms)]
    E = ct["E"][:, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        ms = np.where(ct["df"] > 0, ct["ss"] / np.where(ct["df"] > 0, ct["df"], 1.0), np.nan)
    fparts = {t: [f for f in terms[j:] if term_key(f) not in rk] for j, t in enumerate(terms)}
    fparts["Residual"] = []
    model = _ChainModel(len(prep.y), ncell, ncell, float(ct["ss"][-1]))
    return _Chain(model, _Rows(None, ct["df"], ct["ss"], ms, E, fparts))


@dataclass
class _Rows:
    """Every source of one ANOVA table (terms in model order, then the residual)."""

    forms: list
    df: np.ndarray
    ss: np.ndarray
    ms: np.ndarray
    E: np.ndarray
    fparts: dict


#: EMS coefficients this small relative to their row's largest are rounding noise and stored as 0
EMS_ZERO = 1e-10


def _sources(model, terms: list[str], ss_type: int, random: list[str], rkeys: set) -> _Rows:
    """Sums of squares, mean squares, EMS coefficients and fixed parts of every source of ``model``."""
    if ss_type == 3:
        # the coded coefficients of each term, in the model's standardised coordinates
        Ls = {t: model.T[np.flatnonzero(model.assign == k)] for k, t in enumerate(terms)}   # rows of T
    else:
        Ls = hypothesis_matrices(model.xtx, model.assign, terms, ss_type)
    xz, zz = [], []
    for r in random:
        a, b = model.incidence_cross(r)
        xz.append(a)
        zz.append(b)
    df_res = model.n - model.rank
    forms = [source_form(Ls[t], model.G, model.b) for t in terms]
    dfs = np.array([f.df for f in forms] + [df_res], dtype=float)
    ss = np.array([f.ss for f in forms] + [model.ss_resid])
    with np.errstate(invalid="ignore", divide="ignore"):
        ms = np.where(dfs > 0, ss / np.where(dfs > 0, dfs, 1.0), np.nan)
    E = np.zeros((len(terms) + 1, len(random) + 1))
    for i, f in enumerate(forms):
        E[i, :-1] = ems_row(f, xz)
        E[i, -1] = 1.0 if f.df > 0 else np.nan
    E[-1, :-1] = residual_ems(model.G, xz, zz, df_res)
    E[-1, -1] = 1.0
    big = np.max(np.where(np.isfinite(E), np.abs(E), 0.0), axis=1, keepdims=True)
    E = np.where(np.abs(E) <= EMS_ZERO * np.maximum(big, 1.0), 0.0, E)  # NaN rows stay NaN
    fixed_cols = {t: np.flatnonzero(model.assign == k) for k, t in enumerate(terms) if term_key(t) not in rkeys}
    fparts = {t: fixed_parts(f, model.xtx, fixed_cols) for t, f in zip(terms, forms)}
    fparts["Residual"] = []
    return _Rows(forms, dfs, ss, ms, E, fparts)
