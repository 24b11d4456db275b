"""Method of moments against REML, classical F against Satterthwaite / Kenward-Roger.

:func:`crosscheck` runs both analyses of one design on one data set and puts
them side by side, with a plain-language note for every disagreement.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._coding import as_frame
from .terms import split_term, term_key
from ._errors import NotEstimableError
from .tables import TableMixin, fmt_number

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
        blocks = [("Variance components: method of moments (type %s) vs REML" % ("III" if self.ss_type == 3 else "I"),
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
        blocks.append("Notes:\n" + "\n".join("  - " + n for n in self.notes))
        return blocks


def _balance(data: pd.DataFrame, terms: list[str]) -> list[str]:
    """Terms whose level combinations do not occur equally often (or are missing)."""
    out = []
    for t in terms:
        fs = split_term(t)
        counts = data.groupby(fs, observed=True).size()
        full = int(np.prod([data[f].nunique() for f in fs]))
        if counts.nunique() > 1:
            out.append("%s (%d to %d rows per level)" % (t, counts.min(), counts.max()))
        elif len(counts) < full and len(fs) > 1:
            # nested terms legitimately have fewer combinations; only flag if an outer combination is partial
            outer = data.groupby(fs[:-1], observed=True)[fs[-1]].nunique()
            if outer.nunique() > 1:
                out.append("%s (%d to %d levels of %s within %s)" % (t, outer.min(), outer.max(), fs[-1], ":".join(fs[:-1])))
    return out


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
    Where the sum-coded all-fixed model is rank deficient (empty cells, a
    missing whole plot, unequal nesting) type I is used, with a note (R's
    sum-coded type III, the reference, is not defined there). The
    likelihood side is the REML fit of ``design.formula(response)`` with
    Satterthwaite and Kenward-Roger type III tests.

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
    data = as_frame(data)
    notes: list[str] = []
    ss_type = 3
    why = None
    try:
        an = design.anova(data, response, ss_type=3)
        if an.rank_deficient:  # nested-cell type III exists, but R's sum-coded one (the reference) does not
            why = ("Type III sums of squares of the sum-coded model are not defined here (it is rank deficient: "
                   "unequal numbers of inner levels per outer level)")
    except NotEstimableError as exc:
        named = list(dict.fromkeys(t for t in re.findall(r"'([^']+)'", str(exc)) if term_key(t) in
                                   {term_key(x) for x in design.terms}))
        why = ("Type III sums of squares are not estimable here: with every term fitted as a fixed effect the "
               "model is rank deficient (empty cells or a missing plot)%s"
               % ("; not estimable: " + ", ".join(named) if named else ""))
    if why is not None:
        ss_type = 1
        an = design.anova(data, response, ss_type=1)
        notes.append("%s; the method of moments and the classical F tests use sequential (type I) sums of "
                     "squares in the order %s." % (why, ", ".join(an.table.index[:-1])))
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

    notes.extend(_explain(data, design, an, fit, components, tests))
    return CrossCheck(components=components, tests=tests, notes=notes, anova=an, model=fit, ss_type=ss_type)


def _explain(data, design, an, fit, components, tests) -> list[str]:
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
    unbalanced = _balance(fit.data if hasattr(fit, "data") else data, list(design.terms))
    if unbalanced:
        notes.append("The data are unbalanced (%s): the method of moments (Hartley's expected mean squares) and "
                     "REML weight the strata differently, so their estimates and tests need not agree."
                     % "; ".join(unbalanced))
    for t in tests.index:
        err = an.error_terms.get(t, {})
        if len(err) > 1:
            notes.append("The classical F test of %s has no exact error term: its denominator is synthesized "
                         "(%s) with Satterthwaite's df %s; Satterthwaite and Kenward-Roger use the REML "
                         "estimates instead." % (t, an.table.loc[t, "error"], fmt_number(an.table.loc[t, "den_df"])))
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
                              % (t, fmt_number(fa), fmt_number(da), label, fmt_number(fr), fmt_number(dr)))
                break
    if diff_t:
        notes.append("Tests differ for " + "; ".join(diff_t) + ". " + _why_tests_differ(
            data, design, tests, an.ss_type, bool(unbalanced), bool(truncated) or bool(fit.singular),
            any(len(an.error_terms.get(t, {})) > 1 for t in tests.index)))
    if not notes:
        notes.append("All agree: the data are balanced and every method-of-moments component is positive, so REML "
                     "reproduces the method-of-moments components and the Satterthwaite and Kenward-Roger tests "
                     "reproduce the classical F tests and their stratum df.")
    return notes


def _why_tests_differ(data, design, tests, ss_type: int, unbalanced: bool, boundary: bool,
                      synthesized: bool) -> str:
    """The likely reasons, in plain words, why classical and likelihood tests differ."""
    why = []
    if unbalanced:
        why.append("with unbalanced data the classical F uses the type %s mean squares while REML weights "
                   "every observation by the estimated covariance" % {1: "I", 2: "II", 3: "III"}[ss_type])
    if synthesized:
        why.append("a synthesized denominator mixes mean squares with Satterthwaite's approximate df")
    if boundary:
        why.append("a variance component at zero changes the error strata REML pools")
    few = []
    for t in design.random_terms:
        k = data.groupby(split_term(t), observed=True).ngroups
        if k < 6:
            few.append("%s has %d levels" % (t, k))
    kr, sa = tests["F_kenward_roger"].to_numpy(float), tests["F_satterthwaite"].to_numpy(float)
    if few and np.any(np.abs(kr - sa) > 0.1 * np.maximum(np.abs(kr), np.abs(sa))):
        why.append("Kenward-Roger inflates the fixed-effect covariance for the uncertainty in the variance "
                   "components, which is large with few levels (%s), so its F is smaller than Satterthwaite's"
                   % ", ".join(few))
    if not why:
        return "Small differences are expected whenever the data are not balanced."
    return "Likely reasons: " + "; ".join(why) + "."
