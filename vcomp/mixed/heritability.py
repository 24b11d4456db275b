"""Broad-sense heritability of a random genotype factor (Cullis, Piepho & Mohring, standard).

* ``"cullis"``: ``1 - vbar_BLUP / (2 sigma2_g)``, ``vbar_BLUP`` the mean prediction-error variance of
  a difference of two genotype BLUPs, from the inverse of the full mixed-model equations
  (Cullis, Smith & Coombes 2006).
* ``"piepho"``: ``sigma2_g / (sigma2_g + vbar_BLUE / 2)``, ``vbar_BLUE`` the mean variance of a
  difference of two genotype BLUEs of the same model refitted with the genotype fixed
  (model-based covariance; Piepho & Mohring 2007).
* ``"standard"``: ``sigma2_g / (sigma2_g + sigma2_e / rbar)``, ``rbar`` the mean number of
  observations per genotype.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..terms import term_key
from .._errors import FormulaError, VcompError
from .fitparts import fixed_rows, formula_parts, random_pev, random_terms_as_written, re_layout, reduced_model, refit

__all__ = ["heritability", "heritability_parts", "mean_pairwise_variance"]

METHODS = ("cullis", "piepho", "standard")


def mean_pairwise_variance(V: np.ndarray) -> float:
    """Mean of ``V_ii + V_jj - 2 V_ij`` over all pairs ``i < j`` (the mean variance of a difference)."""
    g = V.shape[0]
    return float(2.0 * (g * np.trace(V) - V.sum()) / (g * (g - 1)))


def _genotype_term(model, group: str):
    terms = [t for t in re_layout(model) if term_key(t.group) == term_key(group)]
    if not terms:
        raise VcompError("heritability: %r is not a grouping factor of the model's random terms (%s); "
                         "write the genotype as a random intercept, e.g. '(1|%s)'."
                         % (group, ", ".join("(%s|%s)" % (t.expr, t.group) for t in re_layout(model)), group))
    icpt = [t for t in terms if t.k == 1 and t.coef_names[0] == "(Intercept)"]
    if len(terms) != 1 or not icpt:
        raise VcompError("heritability needs the genotype %r as a single random intercept term (1|%s); the "
                         "model has %s." % (group, group, ", ".join("(%s|%s)" % (t.expr, t.group) for t in terms)))
    if icpt[0].nlev < 2:  # pragma: no cover - lmm refuses one-level factors
        raise VcompError("heritability: %r has fewer than 2 levels." % group)
    return icpt[0]


def _fixed_model(model, term):
    """The model with ``(1|group)`` moved into the fixed part (a ModelFormula; its text for display)."""
    rand = [w for w in random_terms_as_written(model) if term_key(w.group) != term_key(term.group)]
    if not rand:
        raise VcompError("heritability(method='piepho') refits the model with %r fixed, which leaves no "
                         "random term; add the design's blocking structure, e.g. (1|block)." % term.group)
    response, fixed_rhs = formula_parts(model)
    rhs = fixed_rhs if fixed_rhs.strip() not in ("1", "") else ""
    fixed = " + ".join([p for p in (rhs, term.group) if p])
    text = "%s ~ %s + %s" % (response, fixed, " + ".join("(%s | %s)" % (w.expr, w.group) for w in rand))
    return reduced_model(model, random=rand, add_fixed=term.group, text=text)


def heritability_parts(model, group: str, fit=None) -> dict:
    """Every heritability of ``group`` and its pieces.

    Parameters
    ----------
    model : MixedModel
        With a random intercept ``(1|group)``.
    group : str
        The genotype factor.
    fit : callable, optional
        :func:`vcomp.mixed.model.fit`, needed for ``piepho`` (the refit with ``group`` fixed); without it
        ``piepho`` and ``vbar_blue`` are NaN and ``fixed_formula`` None.

    Returns
    -------
    dict
        ``cullis, piepho, standard, vbar_blup, vbar_blue, rbar, sigma2_g, sigma2_e, fixed_formula``.
    """
    term = _genotype_term(model, group)
    vc = model.varcorr
    s2g = float(vc.loc[(vc["grp"] == term.name) & vc["var2"].isna(), "vcov"].iloc[0])
    s2e = float(model.sigma ** 2)
    vbar_blup = mean_pairwise_variance(random_pev(model, term))
    codes = _level_counts(model, term)
    rbar = float(np.mean(codes))
    out = {"sigma2_g": s2g, "sigma2_e": s2e, "vbar_blup": vbar_blup, "rbar": rbar,
           "cullis": 1.0 - vbar_blup / (2.0 * s2g) if s2g > 0 else 0.0,
           "standard": s2g / (s2g + s2e / rbar) if s2g + s2e > 0 else np.nan,
           "piepho": np.nan, "vbar_blue": np.nan, "fixed_formula": None}
    if fit is not None:
        fixed_model = _fixed_model(model, term)
        out["fixed_formula"] = fixed_model.text
        vbar_blue = _vbar_blue(model, term, fixed_model, fit)
        out["vbar_blue"] = vbar_blue
        out["piepho"] = s2g / (s2g + vbar_blue / 2.0) if s2g + vbar_blue > 0 else np.nan
    return out


def _level_counts(model, term) -> np.ndarray:
    facs = term.group.split(":")
    counts = model.data.groupby(facs, observed=True).size()
    return counts.to_numpy(dtype=float)


def _vbar_blue(model, term, formula, fit) -> float:
    """Mean variance of a difference of two genotype BLUEs (model-based covariance of the refit)."""
    fixed = refit(model, formula, model.reml, fit)
    data = model.data
    facs = term.group.split(":")
    # one row per genotype, every other column at its first row's value: the differences of these
    # rows are the genotype differences whatever the coding (the genotype is a main effect)
    first = data.iloc[[0]]
    grid = data.drop_duplicates(facs)[facs].reset_index(drop=True)
    new = pd.concat([first.drop(columns=facs)] * len(grid), ignore_index=True)
    for f in facs:
        new[f] = grid[f].to_numpy()
    try:
        X = fixed_rows(fixed, new)
    except VcompError as exc:  # pragma: no cover - the refit saw every level
        raise FormulaError("heritability(method='piepho'): cannot build the genotype rows of %r: %s"
                           % (formula.text, exc)) from None
    V = X @ fixed.vcov.to_numpy(dtype=float) @ X.T
    return mean_pairwise_variance(V)


def heritability(model, group: str, method: str = "cullis", fit=None) -> float:
    """Heritability of the random factor ``group`` (see the module docstring for the three methods).

    Parameters
    ----------
    model : MixedModel
        A fit with the genotype as a random intercept ``(1|group)``.
    group : str
        The genotype factor.
    method : {"cullis", "piepho", "standard"}
    fit : callable
        :func:`vcomp.mixed.model.fit` (for ``"piepho"``, which refits the model with ``group`` fixed).

    Returns
    -------
    float
    """
    if method not in METHODS:
        raise VcompError("heritability: unknown method %r; use one of %s." % (method, ", ".join(map(repr, METHODS))))
    if method == "piepho" and fit is None:
        raise VcompError("heritability(method='piepho') refits the model; call it as model.heritability(...).")
    parts = heritability_parts(model, group, fit if method == "piepho" else None)
    return float(parts[method])
