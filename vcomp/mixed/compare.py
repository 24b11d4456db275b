"""Likelihood-ratio comparisons of mixed models: lme4's ``anova(m0, m1, ...)`` and lmerTest's ``ranova``."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats

from ..terms import split_term
from .._errors import VcompError, VcompWarning, warn
from .fitparts import (criterion_pieces, formula_parts, ml_optimum, profiled_deviance, random_spec,
                       random_terms_as_written, reduced_model, refit, response_values)

__all__ = ["compare", "ranova", "reduced_formulas", "lr_table"]


def _ml_loglik(fit) -> float:
    """The ML log-likelihood of a fit (refitted by ML on its stored cross-products when REML)."""
    return -0.5 * ml_optimum(fit)[1]


def _check_same_data(fits) -> None:
    first = fits[0]
    for f in fits[1:]:
        if f.nobs != first.nobs:
            raise VcompError("compare: the models were fitted to different numbers of observations (%d for %r, "
                             "%d for %r); fit them to the same rows (drop missing values first)."
                             % (first.nobs, first.formula, f.nobs, f.formula))
        if not np.array_equal(response_values(first), response_values(f)):
            raise VcompError("compare: %r and %r do not model the same response values; likelihood-ratio tests "
                             "need the same response on the same rows." % (first.formula, f.formula))


def compare(*fits, refit: bool = True) -> pd.DataFrame:
    """Likelihood-ratio tests of nested mixed models, lme4's ``anova(m0, m1, ...)``.

    Parameters
    ----------
    *fits : MixedModel
        Models fitted to the same rows and response.
    refit : bool
        Refit REML fits by maximum likelihood first (lme4's default; needed when the fixed
        effects differ).  With ``refit=False`` REML fits are compared on their REML likelihood.

    Returns
    -------
    ResultFrame
        A DataFrame: index = the formulas, in increasing number of parameters (ties in the order
        given); columns ``npar, AIC, BIC, loglik, deviance, chisq, df, p``; ``chisq`` is twice the
        gain in log-likelihood over the row above (at least 0), ``df`` the gain in parameters.
    """
    from ..tables import titled

    if not fits:
        raise VcompError("compare needs at least one fitted model: vcomp.compare(fit0, fit1, ...).")
    for f in fits:
        if not (hasattr(f, "loglik") and hasattr(f, "reml") and hasattr(f, "npar")):
            raise VcompError("compare: %r is not a fitted mixed model (vcomp.lmm(...))." % (type(f).__name__,))
    _check_same_data(fits)
    kinds = {bool(f.reml) for f in fits}
    if not refit and len(fits) > 1:
        if len(kinds) > 1:
            warn("compare(refit=False) mixes REML and ML fits: their likelihoods are not comparable; "
                 "use refit=True.", VcompWarning)
        elif kinds == {True} and len({formula_parts(f)[1].replace(" ", "") for f in fits}) > 1:
            warn("compare(refit=False) on REML fits with different fixed effects: REML likelihoods of "
                 "different fixed-effects models are not comparable; use refit=True.", VcompWarning)
    ll = [(_ml_loglik(f) if refit and f.reml else float(f.loglik)) for f in fits]
    npar = [int(f.npar) for f in fits]
    names = _unique([_label(f) for f in fits])
    order = sorted(range(len(fits)), key=lambda i: npar[i])  # stable, as R's order()
    tab = lr_table([names[i] for i in order], [npar[i] for i in order], [ll[i] for i in order],
                   fits[0].nobs, sequential=True)
    how = ("ML (REML fits refitted by ML)" if refit and True in kinds else
           "REML" if kinds == {True} else "ML" if kinds == {False} else "REML and ML")
    return titled(tab, "Model comparison (likelihood-ratio tests on %s log-likelihoods; %d observations)"
                  % (how, fits[0].nobs), index_name="Model")


def _label(fit) -> str:
    """A fit's row name: its formula, and its residual structure when it has one."""
    res = getattr(fit, "_residual", None)
    return str(fit.formula) if res is None else "%s, residual=%s" % (fit.formula, res.spec.text)


def _unique(names: list[str]) -> list[str]:
    seen: dict = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else "%s [%d]" % (n, seen[n]))
    return out


def lr_table(names, npar, loglik, nobs: int, sequential: bool) -> pd.DataFrame:
    """The likelihood-ratio table of lme4's ``anova`` (``sequential``: each row against the one above)
    or lmerTest's ``ranova`` (each row against the first).

    Columns ``npar, AIC, BIC, loglik, deviance, chisq, df, p`` (sequential) or
    ``npar, loglik, AIC, LRT, df, p``.
    """
    npar = np.asarray(npar, dtype=float)
    ll = np.asarray(loglik, dtype=float)
    k = len(ll)
    stat = np.full(k, np.nan)
    df = np.full(k, np.nan)
    if sequential:
        stat[1:] = 2.0 * np.maximum(0.0, np.diff(ll))
        df[1:] = np.diff(npar)
    else:
        stat[1:] = 2.0 * (ll[0] - ll[1:])
        df[1:] = npar[0] - npar[1:]
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(stat, np.where(df > 0, df, 1.0)), np.nan)
    aic = -2.0 * ll + 2.0 * npar
    idx = pd.Index(names, name="model")
    if sequential:
        return pd.DataFrame({"npar": npar.astype(int), "AIC": aic, "BIC": -2.0 * ll + np.log(nobs) * npar,
                             "loglik": ll, "deviance": -2.0 * ll, "chisq": stat, "df": df, "p": p}, index=idx)
    return pd.DataFrame({"npar": npar.astype(int), "loglik": ll, "AIC": aic, "LRT": stat, "df": df, "p": p},
                        index=idx)


# ---------------------------------------------------------------------------- ranova

def _deparse(expr: str) -> str:
    """An expression as R deparses it (spaces around ``+``, ``-``, ``*``)."""
    return re.sub(r"\s*([+*]|(?<![eE])-)\s*", r" \1 ", expr.replace(" ", "")).strip()


def _drop_scope(terms: tuple) -> list[str]:
    """Terms not contained in another term (R's ``drop.scope``)."""
    keys = [frozenset(split_term(t)) for t in terms]
    return [t for t, k in zip(terms, keys) if not any(k < o for o in keys)]


def _same_spec(a, b) -> bool:
    """Two random terms R's formula would merge (same expression and group; correlation moot for one coefficient)."""
    ka = (a.intercept, frozenset(t.key for t in a.terms), a.group.key)
    kb = (b.intercept, frozenset(t.key for t in b.terms), b.group.key)
    return ka == kb and (a.correlated == b.correlated or len(a.terms) + a.intercept <= 1)


def _spec_text(spec) -> str:
    return "(%s | %s)" % (_deparse(spec.expr), spec.group.name)


def reduced_formulas(model) -> list[tuple[str, object]]:
    """lmerTest's reductions of each random term: ``(row name, reduced model)``.

    ``(1|g)`` is removed; ``(f1 + f2|g)`` gives one reduction per droppable term (the term
    dropped from the left-hand side; ``(f|g)`` and ``(0 + f|g)`` become ``(1|g)``).  The
    reduced model is a :class:`~vcomp.terms.ModelFormula`, or None when no random term is left
    (a linear model).
    """
    written = random_terms_as_written(model)
    response, fixed_rhs = formula_parts(model)
    out = []
    for w in _findbars_order(written):
        full = "%s | %s" % (_deparse(w.expr), w.lme4_group)
        others = [o.spec for o in written if o is not w]
        scope = _drop_scope(w.terms)
        reductions = []
        if not scope:
            reductions.append(("(%s)" % full, others))
        for sc in scope:
            rest = tuple(t for t in w.terms if t != sc)
            new = random_spec(w.intercept if rest else True, rest, w.group, w.correlated)
            # R's formula terms are a set: a reduction to a term already there removes this one
            same = any(_same_spec(new, o) for o in others)
            reductions.append(("%s in (%s)" % (sc, full), others + ([] if same else [new])))
        for name, rand in reductions:
            if not rand:
                out.append((name, None))
                continue
            text = "%s ~ %s + %s" % (response, fixed_rhs, " + ".join(_spec_text(r) for r in rand))
            out.append((name, reduced_model(model, random=rand, text=text)))
    return out


def _findbars_order(written: list) -> list:
    """lme4's order: the terms of an ``a/b`` chain innermost first (``b:a`` before ``a``)."""
    out, i = [], 0
    while i < len(written):
        j = i + 1
        while (j < len(written) and written[j].lme4_group != written[j].group and written[j].expr == written[i].expr
               and written[j].correlated == written[i].correlated
               and written[j].group.split(":")[:-1] == written[j - 1].group.split(":")):
            j += 1
        out += written[i:j][::-1]
        i = j
    return out


def _lm_loglik(model) -> float:
    """Log-likelihood (REML for a REML fit) of the model without random effects: the criterion at theta = 0."""
    ldL2, M = criterion_pieces(model, np.zeros(len(model.theta)))
    return -0.5 * profiled_deviance(ldL2, M, model.nobs, model.reml)


def ranova(model, fit) -> pd.DataFrame:
    """Likelihood-ratio tests of the random terms, lmerTest's ``ranova``.

    Parameters
    ----------
    model : MixedModel
    fit : callable
        :func:`vcomp.mixed.model.fit`, to fit each reduced model (by the same method as ``model``).

    Returns
    -------
    ResultFrame
        A DataFrame: index ``"<none>"`` (the model), then one row per reduction
        (``"(1 | g)"`` removed, ``"x in (x | g)"`` reduced to ``(1 | g)``); columns
        ``npar, loglik, AIC, LRT, df, p``.
    """
    from ..tables import titled

    if getattr(model, "_residual", None) is not None:
        raise VcompError("ranova tests the random terms of an lme4-style model; this model has a residual= "
                         "structure (%s). Fit the reduced model with the same residual= and compare them: "
                         "vcomp.compare(reduced, fit)." % model._residual.spec.text)
    names, npar, ll = ["<none>"], [int(model.npar)], [float(model.loglik)]
    for name, formula in reduced_formulas(model):
        names.append(name)
        if formula is None:
            npar.append(int(model.fixef.size) + 1)
            ll.append(_lm_loglik(model))
        else:
            red = refit(model, formula, model.reml, fit)
            npar.append(int(red.npar))
            ll.append(float(red.loglik))
    tab = lr_table(names, npar, ll, model.nobs, sequential=False)
    return titled(tab, "Likelihood-ratio tests of the random terms (%s; single term deletions)"
                  % ("REML" if model.reml else "ML"), index_name="Reduction", notes=["Model: %s" % model.formula])
