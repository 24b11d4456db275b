"""Classical ANOVA of a design: sums of squares, EMS, method of moments, F tests."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..terms import term_key
from .._errors import DesignError, NotEstimableError
from ..hypotheses import hypothesis_matrices
from .ems import fixed_parts, ems_row, residual_ems, source_form
from .ftests import f_tests
from .goodnight import goodnight_type3_ss
from .model import build_model, incomplete_terms, nested_cell_model, prepare
from .moments import mom_components
from .result import AnovaResult, ems_strings

__all__ = ["anova"]


def _type3_not_estimable(model) -> list[str]:
    """Terms whose sum-coded type III hypothesis is not estimable in a rank-deficient model."""
    R = np.eye(model.p) - model.G @ model.xtx
    bad = []
    for k, t in enumerate(model.terms):
        cols = model.assign == k
        if np.max(np.abs(R[cols]), initial=0.0) > 1e-6:
            bad.append(t)
    return bad


def _type3_model(prep, model):
    """Nested-cell coded model for type III when the sum-coded ``X`` is rank deficient, or raise.

    Raises :class:`NotEstimableError` naming the terms with empty cells of
    crossed factors (see :func:`~vcomp.classical.model.incomplete_terms`).
    """
    head = ("type III sums of squares are not defined here: with all terms as fixed effects the sum-coded model "
            "is rank deficient (rank %d < %d columns)" % (model.rank, model.p))
    tail = "; use ss_type=1 (sequential, valid with missing cells) or fit the mixed model with design.lmm(...)."
    bad = incomplete_terms(model, model.terms)
    if bad:
        raise NotEstimableError(
            head + " and term(s) %s have empty cells of crossed factors (e.g. a missing whole plot or an "
            "empty A:B cell), where SAS's type III is a different construction that vcomp does not implement"
            % ", ".join("%r (missing %s%s)" % (t, " | ".join(m), ", ..." if len(m) == 3 else "")
                        for t, m in bad.items()) + tail)
    new = nested_cell_model(prep, model)
    if new.rank < new.p or new.rank != model.rank:
        bad = _type3_not_estimable(new) or list(model.terms)
        raise NotEstimableError(
            head + " and the type III hypotheses of %s are not estimable even with within-outer-level "
            "contrasts for nested terms" % ", ".join(map(repr, bad)) + tail)
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
    y = prep.y - prep.y.mean()
    floor = 1e-12 * float(y @ y)
    names, bad = [], []
    for t, f in zip(terms, forms):
        df, ss = gn[t]
        if df != f.df or abs(ss - f.ss) > GOODNIGHT_RTOL * max(abs(ss), abs(f.ss)) + floor:
            names.append(repr(t))
            bad.append("%r: SS = %.8g (df %d) with the nested-cell coding (hierarchical unweighted means of the "
                       "nested cells) vs %.8g (df %d) by Goodnight's literal construction of SAS's type III "
                       "estimable functions" % (t, f.ss, f.df, ss, df))
    if bad:
        raise NotEstimableError(
            "type III sums of squares are ambiguous here: with all terms as fixed effects the sum-coded model is "
            "rank deficient (unequal numbers of nested levels), and SAS's type III "
            "hypothesis for this unequal multi-stage nesting is ambiguous for term(s) %s: the two standard "
            "readings of SAS's rule give different sums of squares (%s). Use ss_type=1 (sequential, well defined "
            "here) or fit the mixed model with design.lmm(...)." % (", ".join(names), "; ".join(bad)))


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
    if ss_type not in (1, 2, 3):
        raise DesignError("ss_type must be 1, 2 or 3, not %r" % (ss_type,))
    prep = prepare(data, response, design)
    terms = design.terms_for(data)
    model = build_model(prep, terms)
    df_res = model.n - model.rank
    if df_res <= 0:
        raise DesignError(
            "no residual degrees of freedom: the model with all %d terms as fixed effects has rank %d = "
            "number of observations (%d), e.g. one observation per cell of the highest interaction. "
            "Remove the term that plays the role of the error (usually the highest interaction) from the design."
            % (len(terms), model.rank, model.n))
    rank_deficient = model.rank < model.p
    coding = None
    if ss_type == 3:
        coding = "sum"
        if rank_deficient:
            model = _type3_model(prep, model)
            coding = "nested-cell"
        Ls = {}
        for k, t in enumerate(terms):
            cols = np.flatnonzero(model.assign == k)
            Ls[t] = np.eye(model.p)[cols]
    else:
        Ls = hypothesis_matrices(model.xtx, model.assign, terms, ss_type)

    random = design.random_terms
    # random terms in the design's term order for the EMS columns
    rkeys = {term_key(r) for r in random}
    random = [t for t in terms if term_key(t) in rkeys]
    comps = random + ["Residual"]
    xz, zz = [], []
    for r in random:
        a, b = model.incidence_cross(r)
        xz.append(a)
        zz.append(b)

    forms = [source_form(Ls[t], model.G, model.b) for t in terms]
    if coding == "nested-cell":
        _check_goodnight(prep, model, forms, terms)
    sources = terms + ["Residual"]
    dfs = np.array([f.df for f in forms] + [df_res], dtype=float)
    ss = np.array([f.ss for f in forms] + [model.ss_resid])
    with np.errstate(invalid="ignore", divide="ignore"):
        ms = np.where(dfs > 0, ss / np.where(dfs > 0, dfs, 1.0), np.nan)

    E = np.zeros((len(sources), len(comps)))
    for i, f in enumerate(forms):
        E[i, :-1] = ems_row(f, xz)
        E[i, -1] = 1.0 if f.df > 0 else np.nan
    E[-1, :-1] = residual_ems(model.G, xz, zz, df_res)
    E[-1, -1] = 1.0
    index = pd.Index(sources, name="source")
    ems = pd.DataFrame(E, index=index, columns=comps)

    fixed_cols = {t: np.flatnonzero(model.assign == k) for k, t in enumerate(terms) if term_key(t) not in rkeys}
    fparts = {t: fixed_parts(f, model.xtx, fixed_cols) for t, f in zip(terms, forms)}
    fparts["Residual"] = []

    tests, error_terms = f_tests(E, dfs, ms, sources, comps, random)
    table = pd.DataFrame({"df": np.rint(dfs).astype(int), "SS": ss, "MS": ms, "F": tests["F"], "p": tests["p"],
                          "den_df": tests["den_df"], "error": tests["error"]}, index=index)
    rows = [sources.index(c) for c in comps]
    comp = mom_components(E[rows], ms[rows], comps)
    text = ems_strings(E, sources, comps, fparts, ["Residual"] + random[::-1])
    return AnovaResult(table=table, ems=ems, ems_text=text, fixed_parts=fparts, error_terms=error_terms,
                       components=comp, ss_type=ss_type, nobs=model.n, n_dropped=prep.n_dropped,
                       response=response, design=design, rank_deficient=bool(rank_deficient),
                       type3_coding=coding)
