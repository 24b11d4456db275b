"""Method of moments against REML, classical F against Satterthwaite / Kenward-Roger.

:func:`crosscheck` runs both analyses of one design on one data set and puts
them side by side, with a plain-language note for every disagreement.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._coding import _is_dask, as_frame
from .terms import split_term, term_key
from ._errors import DesignError, NotEstimableError
from .classical.model import describe_cells
from .classical.notes import biased_test_notes, join_names
from .classical.structure import data_structure
from .tables import Notes, TableMixin, fmt_df, fmt_number

__all__ = ["crosscheck", "CrossCheck"]

_REL = 0.01  # relative difference worth a note


@dataclass(frozen=True, repr=False)
class CrossCheck(TableMixin):
    """Side-by-side classical and likelihood analyses of one design.

    Attributes
    ----------
    components : DataFrame
        Index random terms then ``"Residual"``; columns ``mom`` (method of
        moments, truncated at zero), ``mom_raw`` and ``reml``.
    tests : DataFrame
        Index fixed terms; columns ``F_anova, den_df_anova, p_anova,
        F_satterthwaite, den_df_satterthwaite, p_satterthwaite,
        F_kenward_roger, den_df_kenward_roger, p_kenward_roger``.
    notes : list of str
        One plain-language sentence for each disagreement (or one saying
        that everything agrees).
    anova : AnovaResult
        The classical analysis used.
    model : MixedModel
        The REML fit used.
    ss_type : int
        Sums of squares behind the method of moments (3, or 1 when the
        sum-coded all-fixed model is rank deficient).
    """

    components: pd.DataFrame
    tests: pd.DataFrame
    notes: list = field(default_factory=list)
    anova: object = None
    model: object = None
    ss_type: int = 3

    def _blocks(self) -> list:
        comp = self.components.copy()
        tests = self.tests.copy()
        kind = "type III" if self.ss_type == 3 else "type I, fixed terms first"
        blocks = [("Variance components: method of moments (%s) vs REML" % kind,
                   comp, {"index_name": "Component"})]
        if len(tests):
            rows, index = [], []
            for term in tests.index:
                for label, suf in (("ANOVA (classical)", "anova"), ("Satterthwaite", "satterthwaite"),
                                   ("Kenward-Roger", "kenward_roger")):
                    index.append(term if suf == "anova" else "")
                    rows.append({"method": label, "F": tests.loc[term, "F_" + suf],
                                 "den df": tests.loc[term, "den_df_" + suf], "p": tests.loc[term, "p_" + suf]})
            blocks.append(("Fixed-effect tests: classical F vs REML", pd.DataFrame(rows, index=index),
                           {"index_name": "Term"}))
        blocks.append(Notes(self.notes))
        return blocks


def _reml_components(model, random_terms: list[str]) -> pd.Series:
    vc = model.varcorr
    out = {}
    for term in random_terms:
        rows = vc[(vc["grp"].map(lambda g: term_key(str(g).split(".")[0] if str(g).split(".")[-1].isdigit() else g))
                   == term_key(term)) & vc["var2"].isna()]
        out[term] = float(rows["vcov"].sum()) if len(rows) else np.nan
    res = vc[vc["grp"] == "Residual"]
    out["Residual"] = float(res["vcov"].iloc[0])
    return pd.Series(out)


def _differs(a: float, b: float, scale: float) -> bool:
    if not (np.isfinite(a) and np.isfinite(b)):
        return np.isfinite(a) != np.isfinite(b)
    return abs(a - b) > max(_REL * max(abs(a), abs(b)), 1e-8 * scale)


def crosscheck(data: pd.DataFrame, response: str, design) -> CrossCheck:
    """Analyse ``design`` classically and by REML and explain every difference.

    The classical side is the type III ANOVA (all terms as fixed effects, SAS
    PROC GLM) with Hartley's expected mean squares, method-of-moments
    components and F tests against the right (or a synthesized) error term.
    Where R's sum-coded type III is not defined (an empty cell or a missing
    plot, nesting that the sum-to-zero coding cannot represent, or SAS's
    type III ambiguous) the F tests use type I sums of squares in textbook
    order and the method of moments the type I sums of squares with the
    fixed terms fitted first (SAS PROC VARCOMP METHOD=TYPE1), with a note
    that names the terms and counts the cells.  The likelihood side is the
    REML fit of ``design.formula(response)`` with Satterthwaite and
    Kenward-Roger type III tests.

    Parameters
    ----------
    data : DataFrame
        The data (not modified).
    response : str
        Response column.
    design : Design
        The design (a builder's result or ``vcomp.Design``).

    Returns
    -------
    CrossCheck
    """
    if not (hasattr(design, "model_formula") and hasattr(design, "anova")):
        raise DesignError("design must be a vcomp.Design (e.g. vcomp.SplitPlot(...)), got %r" % type(design).__name__)
    if not design.random_terms:
        raise DesignError("the design has no random terms, so there are no variance components to cross-check; "
                          "use design.anova(data, response) for its classical analysis")
    data = data if _is_dask(data) else as_frame(data)  # Dask data: both analyses reduce it
    notes: list[str] = []
    an3, err = None, None
    try:
        an3 = design.anova(data, response, ss_type=3)
    except NotEstimableError as exc:
        err = exc
    an1 = design.anova(data, response, ss_type=1)
    structure = data_structure(data, response, design)
    if an3 is not None and an3.type3_coding == "sum":
        an, ss_type = an3, 3
    else:
        an, ss_type = an1, 1
        notes.append(_type3_note(err, an3, an1, structure))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = design.lmm(data, response)
    random = list(design.random_terms)
    comp_idx = random + ["Residual"]
    mom = an.components.reindex(comp_idx)
    reml = _reml_components(fit, random).reindex(comp_idx)
    components = pd.DataFrame({"mom": mom["estimate"].to_numpy(float), "mom_raw": mom["raw"].to_numpy(float),
                               "reml": reml.to_numpy(float)}, index=pd.Index(comp_idx, name="component"))

    fixed = list(design.fixed_terms)
    tab = an.table
    cols = {}
    cols["F_anova"] = [float(tab.loc[t, "F"]) for t in fixed]
    cols["den_df_anova"] = [float(tab.loc[t, "den_df"]) for t in fixed]
    cols["p_anova"] = [float(tab.loc[t, "p"]) for t in fixed]
    for ddf, suf in (("satterthwaite", "satterthwaite"), ("kenward-roger", "kenward_roger")):
        if fixed:
            a = fit.anova(ddf=ddf, type=3)
            a_by = {term_key(k): v for k, v in a.iterrows()}
            rows = [a_by.get(term_key(t)) for t in fixed]
        else:
            rows = []
        cols["F_" + suf] = [np.nan if r is None else float(r["F"]) for r in rows]
        cols["den_df_" + suf] = [np.nan if r is None else float(r["den_df"]) for r in rows]
        cols["p_" + suf] = [np.nan if r is None else float(r["p"]) for r in rows]
    tests = pd.DataFrame(cols, index=pd.Index(fixed, name="term"))

    notes.extend(_explain(data, design, an, an1, fit, components, tests, structure))
    return CrossCheck(components=components, tests=tests, notes=notes, anova=an, model=fit, ss_type=ss_type)


def _fitting_orders(an1) -> str:
    """``"type I sums of squares in textbook order (...) ... fixed terms fitted first (...)"``."""
    order = an1.moments_order or []
    rand = [t for t in order if an1.design.is_random(t)]
    fixed = [t for t in order if t not in rand]
    if fixed:
        moments = ("the type I sums of squares with the fixed terms fitted first (%s, then %s), as SAS PROC VARCOMP "
                   "METHOD=TYPE1 does" % (", ".join(fixed), ", ".join(rand)))
    else:
        moments = "the same sums of squares (there are no fixed terms), as SAS PROC VARCOMP METHOD=TYPE1 does"
    return ("the classical F tests use type I (sequential) sums of squares in textbook order (%s) and the method of "
            "moments %s" % (", ".join(an1.table.index[:-1]), moments))


def _type3_note(err, an3, an1, structure) -> str:
    """Why the (sum-coded) type III analysis is not used, with the terms and counts, and what is used instead."""
    used = _fitting_orders(an1)
    if err is not None and err.reason == "empty_cells":
        cells = "; ".join("%s has %d empty cell%s (%s)" % (t, len(m), "" if len(m) == 1 else "s", describe_cells(m))
                          for t, m in err.missing_cells.items())
        return "Type III sums of squares are not defined: %s. Instead, %s." % (cells, used)
    if err is not None and err.reason == "ambiguous":
        nums = "; ".join("%s: %s vs %s on %d df" % (t, fmt_number(d["nested_cell_ss"]), fmt_number(d["goodnight_ss"]),
                                                     d["nested_cell_df"]) for t, d in err.details.items())
        why = "; ".join(x.describe() for x in structure.unequal_nesting)
        return ("Type III sums of squares are ambiguous here: the two readings of SAS's type III rule give different "
                "sums of squares (%s), because the nesting is unequal (%s). Instead, %s."
                % (nums, why or "unequal numbers of inner levels", used))
    if err is not None:
        return ("Type III hypotheses are not estimable for %s. Instead, %s." % (join_names(err.terms), used))
    deficient = [x for x in structure.nesting if not x.complete_reuse]
    what = ("nesting that R's sum-to-zero coding of the all-fixed model cannot represent (%s), so R's type III is not "
            "defined" % "; ".join(x.describe() for x in deficient)) if deficient else \
        "R's sum-to-zero coding of the all-fixed model, which is rank deficient here, so R's type III is not defined"
    comp3, comp1 = an3.components["raw"], an1.components["raw"]
    scale = float(np.nanmax(np.abs(comp1.to_numpy()))) or 1.0
    same = bool(np.all(np.abs(comp3.to_numpy() - comp1.reindex(comp3.index).to_numpy()) <= 1e-8 * scale))
    if same:
        tail = "These components equal those of design.anova() (type III with within-level contrasts, SAS PROC GLM)."
    else:
        diff = [c for c in comp3.index if abs(comp3[c] - comp1[c]) > 1e-8 * scale]
        tail = ("design.anova() (type III with within-level contrasts, SAS PROC GLM) gives %s, because its "
                "outer mean squares weight the inner cells' means equally."
                % ", ".join("%s %s instead of %s" % (c, fmt_number(comp3[c]), fmt_number(comp1[c])) for c in diff))
    return "The design has %s. Instead, %s. %s" % (what, used, tail)


def _nonorthogonal(an1, design) -> dict:
    """Random term -> fixed terms whose effects its textbook-order type I mean square contains."""
    return {t: list(an1.fixed_parts.get(t, [])) for t in design.random_terms if an1.fixed_parts.get(t)}


def _explain(data, design, an, an1, fit, components, tests, structure) -> list[str]:
    notes: list[str] = []
    scale = float(np.nanmax(np.abs(components[["mom_raw", "reml"]].to_numpy()))) or 1.0
    truncated = [t for t in components.index if components.loc[t, "mom_raw"] < 0]
    for t in truncated:
        r = components.loc[t, "reml"]
        notes.append(
            "The method-of-moments estimate of the %s variance is negative (%s) and was set to 0; %s"
            % (t, fmt_number(components.loc[t, "mom_raw"]),
               "REML also puts it on its boundary (0)." if abs(r) <= 1e-8 * scale
               else "REML, which cannot go below 0, estimates it at %s and moves the other components to compensate." % fmt_number(r)))
    if fit.singular:
        zero = [t for t in components.index[:-1] if abs(components.loc[t, "reml"]) <= 1e-6 * scale]
        notes.append("The REML fit is singular: %s on the boundary (zero variance), so the likelihood-based "
                     "df for tests that involve %s are less reliable."
                     % ((", ".join(zero) + (" is" if len(zero) == 1 else " are")) if zero else "a covariance factor is",
                        "these strata" if len(zero) != 1 else "this stratum"))
    uneven = structure.unequal_counts
    if uneven or structure.unequal_nesting:
        parts = [c.describe() for c in uneven[:4]] + (["..."] if len(uneven) > 4 else [])
        parts += [x.describe() for x in structure.unequal_nesting]
        notes.append("The data are unbalanced (%s): the method of moments (Hartley's expected mean squares) and "
                     "REML weight the strata differently, so their estimates and tests need not agree."
                     % "; ".join(parts))
    nonorth = _nonorthogonal(an1, design)
    if nonorth and not uneven and not structure.empty:
        notes.append("Every cell holds the same number of observations, but the strata are not orthogonal: the "
                     "type I mean square of %s (textbook order) contains fixed effects (%s), as with incomplete "
                     "blocks. REML recovers the information between those strata, the method of moments does not, "
                     "so they need not agree." % (join_names(nonorth), "; ".join(
                         "%s: Q(%s)" % (t, ", ".join(q)) for t, q in nonorth.items())))
    balanced = structure.balanced and not nonorth
    notes.extend(biased_test_notes(an.table, an.fixed_parts, {t: an.error_terms.get(t, {}) for t in tests.index},
                                   list(design.random_terms)))
    for t in tests.index:
        err = an.error_terms.get(t, {})
        if len(err) > 1:
            notes.append("The classical F test of %s has no exact error term: its denominator is synthesized "
                         "(%s) with Satterthwaite's df %s; Satterthwaite and Kenward-Roger use the REML "
                         "estimates instead." % (t, an.table.loc[t, "error"], fmt_df(an.table.loc[t, "den_df"])))
    diff_c = [t for t in components.index if t not in truncated
              and _differs(components.loc[t, "mom"], components.loc[t, "reml"], scale)]
    if diff_c:
        notes.append("Method of moments and REML differ by more than %d%% for %s."
                     % (int(_REL * 100), ", ".join("%s (%s vs %s)" % (t, fmt_number(components.loc[t, "mom"]),
                                                                     fmt_number(components.loc[t, "reml"])) for t in diff_c)))
    diff_t = []
    for t in tests.index:
        for suf, label in (("kenward_roger", "Kenward-Roger"), ("satterthwaite", "Satterthwaite")):
            fa, fr = tests.loc[t, "F_anova"], tests.loc[t, "F_" + suf]
            da, dr = tests.loc[t, "den_df_anova"], tests.loc[t, "den_df_" + suf]
            if _differs(fa, fr, 1.0) or _differs(da, dr, 1.0):
                diff_t.append("%s: classical F = %s on %s df vs %s F = %s on %s df"
                              % (t, fmt_number(fa), fmt_df(da), label, fmt_number(fr), fmt_df(dr)))
                break
    if diff_t:
        notes.append("Tests differ for " + "; ".join(diff_t) + ". " + _why_tests_differ(
            fit, design, tests, an.ss_type, bool(uneven or structure.empty or structure.unequal_nesting),
            nonorth, bool(truncated) or bool(fit.singular),
            any(len(an.error_terms.get(t, {})) > 1 for t in tests.index)))
    if not notes and balanced:  # (unbalanced or non-orthogonal data always have a note above)
        notes.append("All agree: the data are balanced and every method-of-moments component is positive, so REML "
                     "reproduces the method-of-moments components and the Satterthwaite and Kenward-Roger tests "
                     "reproduce the classical F tests and their stratum df.")
    return notes


def _why_tests_differ(fit, design, tests, ss_type: int, unbalanced: bool, nonorth: dict, boundary: bool,
                      synthesized: bool) -> str:
    """The reasons, in plain words and from the numbers, why classical and likelihood tests differ."""
    why = []
    if unbalanced:
        why.append("with unbalanced data the classical F uses the type %s mean squares while REML weights "
                   "every observation by the estimated covariance" % {1: "I", 2: "II", 3: "III"}[ss_type])
    if nonorth:
        why.append("REML combines the information in the non-orthogonal strata (%s) that the classical F test, "
                   "using one stratum, leaves out" % join_names(nonorth))
    if synthesized:
        why.append("a synthesized denominator mixes mean squares with Satterthwaite's approximate df")
    if boundary:
        why.append("a variance component at zero changes the error strata REML pools")
    few = []
    nlev = {term_key(r.group): r.nlev for r in fit._re_terms}
    for t in design.random_terms:
        k = nlev.get(term_key(t), 0)
        if k < 6:
            few.append("%s has %d levels" % (t, k))
    kr, sa = tests["F_kenward_roger"].to_numpy(float), tests["F_satterthwaite"].to_numpy(float)
    if few and np.any(np.abs(kr - sa) > 0.1 * np.maximum(np.abs(kr), np.abs(sa))):
        why.append("Kenward-Roger inflates the fixed-effect covariance for the uncertainty in the variance "
                   "components, which is large with few levels (%s), so its F is smaller than Satterthwaite's"
                   % ", ".join(few))
    if not why:
        return ("No structural reason applies (the data are balanced, the strata orthogonal and every component "
                "positive): the difference comes from the REML optimum's numerical precision.")
    return "Likely reasons: " + "; ".join(why) + "."
