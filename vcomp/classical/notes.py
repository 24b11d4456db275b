"""The plain-language notes of a classical ANOVA (``AnovaResult.notes``).

Each note is written from the numbers it describes (fixed parts of the
expected mean squares, error terms, components, nesting counts), so it is
produced only when its condition holds in the data analysed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..tables import fmt_df, fmt_number

__all__ = ["anova_notes", "biased_test_notes", "join_names"]

_KIND = {1: "type I", 2: "type II", 3: "type III"}


def join_names(names) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    names = [str(n) for n in names]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _q(parts) -> str:
    return "Q(%s)" % ", ".join(parts) if parts else "no fixed effects"


def anova_notes(*, ss_type: int, coding, table: pd.DataFrame, comp: pd.DataFrame, fparts: dict,
                error_terms: dict, random: list, contaminated: list, order, moments_fparts,
                singular: bool, nested: list) -> list[str]:
    """Notes of one ANOVA, in the order they are printed.

    Parameters
    ----------
    ss_type : int
    coding : {"sum", "nested-cell"} or None
        Coding behind type III.
    table : DataFrame
        The ANOVA table (``df, SS, MS, F, p, den_df, error``).
    comp : DataFrame
        The method-of-moments components (``estimate``, ``raw``).
    fparts : dict
        Source -> fixed terms in its E[MS] (the displayed table).
    error_terms : dict
        Source -> {denominator source: coefficient}.
    random : list of str
        Random terms.
    contaminated : list of str
        Random terms whose displayed mean square has fixed effects in its E[MS].
    order : list of str or None
        The type I fitting order of the moment equations (fixed terms first), or None
        when the displayed rows were used.
    moments_fparts : dict or None
        Fixed parts of the moment rows (fixed-first fit).
    singular : bool
        The moment equations are singular.
    nested : list of Nesting
        Nested terms of the sum-coded model (type III with nested-cell coding).

    Returns
    -------
    list of str
    """
    notes: list[str] = []
    kind = _KIND[ss_type]
    deficient = [x for x in nested if not x.complete_reuse]
    if coding == "nested-cell" and deficient:
        notes.append(
            "Nested terms (%s): type III uses contrasts within each level of the outer factors, as SAS PROC GLM "
            "does, so an outer factor is tested by the unweighted means of its inner cells; R's sum-to-zero coding "
            "of the all-fixed model cannot represent this nesting (its type III is not defined here)."
            % "; ".join(x.describe() for x in deficient))
    if contaminated:
        many = len(contaminated) > 1
        notes.append(
            "The %s mean square%s of %s contain%s fixed effects (%s), so %s not estimate variance components "
            "alone: the components are solved from the type I sums of squares with the fixed terms fitted first "
            "(%s, then %s), as SAS PROC VARCOMP METHOD=TYPE1 does."
            % (kind, "s" if many else "", join_names(contaminated), "" if many else "s",
               "; ".join("%s: %s" % (t, _q(fparts[t])) for t in contaminated) if many
               else "its E[MS] has %s" % _q(fparts[contaminated[0]]),
               "they do" if many else "it does",
               ", ".join(t for t in order if t not in random) or "the intercept", ", ".join(random)))
    if moments_fparts:
        left = [t for t in random if moments_fparts.get(t)]
        if left:  # cannot happen in exact arithmetic: said rather than used silently
            notes.append("Even with the fixed terms fitted first, the expected mean square of %s contains fixed "
                         "effects (%s); its component is not reliable." % (join_names(left),
                                                                          _q(moments_fparts[left[0]])))
    synth = [s for s, c in error_terms.items() if len(c) > 1]
    if synth:
        notes.append("Synthesized denominators use Satterthwaite's df: "
                     + "; ".join("%s (den df %s)" % (s, fmt_df(table.loc[s, "den_df"])) for s in synth) + ".")
    notes += biased_test_notes(table, fparts, error_terms, random)
    if singular:
        notes.append("The expected-mean-square equations of the random terms are singular (a random term has no "
                     "degrees of freedom of its own): method-of-moments components are not available.")
    raw = comp["raw"].to_numpy(dtype=float)       # column arrays: no per-row pandas lookups
    neg = [(c, r) for c, r in zip(comp.index.tolist(), raw) if np.isfinite(r) and r < 0]
    if neg:
        notes.append("Negative method-of-moments estimate%s set to zero: %s."
                     % ("" if len(neg) == 1 else "s", ", ".join("%s (%s)" % (c, fmt_number(r)) for c, r in neg)))
    F = table["F"].to_numpy(dtype=float)
    untested = [s for s, f in zip(table.index.tolist()[:-1], F[:-1]) if not np.isfinite(f)]
    if untested:
        notes.append("No valid F test (no mean-square combination has the null expectation): %s."
                     % ", ".join(untested))
    return notes


def biased_test_notes(table: pd.DataFrame, fparts: dict, error_terms: dict, random: list) -> list[str]:
    """One note per F test whose denominator's expectation does not match the numerator's in fixed effects.

    A variance-component test needs equal fixed parts in numerator and denominator; a fixed term's
    (type I) hypothesis may involve other fixed effects, but its denominator must not bring in any it lacks.

    Parameters
    ----------
    table : DataFrame
        ANOVA table (for the ``error`` names).
    fparts : dict
        Source -> fixed terms in its E[MS].
    error_terms : dict
        Source -> {denominator source: coefficient}.
    random : list of str
        Random terms.
    """
    notes = []
    for s, coefs in error_terms.items():
        if not coefs:
            continue
        num = set(fparts.get(s, [])) - {s}
        den = list(dict.fromkeys(q for d in coefs for q in fparts.get(d, [])))
        if (s in random and num != set(den)) or (s not in random and set(den) - num):
            notes.append(
                "The F test of %s is biased by fixed effects: the expected mean square of its numerator holds %s, "
                "that of its denominator (%s) %s. Use the type III table or the mixed model (design.lmm) for "
                "this test." % (s, _q(fparts.get(s, [])), table.loc[s, "error"], _q(den)))
    return notes
