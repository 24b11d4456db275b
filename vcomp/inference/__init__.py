"""Satterthwaite and Kenward-Roger inference for REML mixed models.

Everything goes through one kernel, :func:`contrast_test`; the per-model
ingredients (``Phi``, ``P_r``, ``Q_rs``, the information and Hessian of the
variance parameters) are computed once from cross-products and cached on the
model, so further tables and contrasts cost only ``p x p`` algebra.

Matches lmerTest 3.1-3 (Satterthwaite) and pbkrtest 0.5.2 (Kenward-Roger).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._errors import VcompError
from .._threads import entry_point
from ..hypotheses.lmertest import term_hypotheses
from ..tables import titled
from ._pieces import kr_vcov_pieces
from .kernel import coef_names, contrast_test, model_cache, model_pieces, normalize_ddf, test_1d

__all__ = ["contrast_test", "coef_table", "anova_table", "contrast_table", "vcov_kr"]

#: printed names of the df methods (lmerTest's wording) and of the table columns (R's)
_METHOD = {"satterthwaite": "Satterthwaite's method", "kenward-roger": "Kenward-Roger's method"}
_LABELS = {"num_df": "NumDF", "den_df": "DenDF", "F": "F value", "p": "Pr(>F)", "estimate": "Estimate",
           "se": "Std. Error", "t": "t value"}
_TYPES = {1: 1, 2: 2, 3: 3, "1": 1, "2": 2, "3": 3, "i": 1, "ii": 2, "iii": 3}


@entry_point
def coef_table(model, ddf: str = "satterthwaite") -> pd.DataFrame:
    """t tests of the fixed-effect coefficients (lmerTest's ``summary(m, ddf=...)``).

    Parameters
    ----------
    model : MixedModel
    ddf : {"satterthwaite", "kenward-roger"}
        With Kenward-Roger the SEs come from the adjusted covariance ``Phi_A``.

    Returns
    -------
    DataFrame
        index = coefficient names, columns ``estimate, se, df, t, p``.
    """
    method = normalize_ddf(ddf)
    names = coef_names(model)
    rows = []
    for j in range(len(names)):
        L = np.zeros(len(names))
        L[j] = 1.0
        r = test_1d(model, L, method)
        rows.append([r["estimate"], r["se"], r["df"], r["t"], r["p"]])
    out = pd.DataFrame(rows, index=pd.Index(names), columns=["estimate", "se", "df", "t", "p"], dtype=float)
    return titled(out, "Fixed effects: t tests with %s%s" % (_METHOD[method], "" if method == "satterthwaite"
                                                             else " (adjusted standard errors)"),
                  labels={**_LABELS, "p": "Pr(>|t|)"})


@entry_point
def anova_table(model, ddf: str = "satterthwaite", type: Any = 3) -> pd.DataFrame:
    """F tests of the fixed terms (lmerTest's ``anova(m, type=..., ddf=...)``).

    Parameters
    ----------
    model : MixedModel
    ddf : {"satterthwaite", "kenward-roger"}
        With Kenward-Roger, ``F`` is the scaled statistic ``lambda * F`` from ``Phi_A``
        and ``den_df`` Kenward and Roger's ``m`` (as pbkrtest's ``KRmodcomp``).
    type : {1, 2, 3} or {"I", "II", "III"}
        Sequential, SAS type II, or type III (independent of the contrast coding).

    Returns
    -------
    DataFrame
        index = fixed terms (no intercept), columns ``num_df, den_df, F, p``.
    """
    method = normalize_ddf(ddf)
    key = type.lower() if isinstance(type, str) else type
    if key not in _TYPES:
        raise VcompError("type must be 1, 2 or 3 (or 'I', 'II', 'III'), not %r" % (type,))
    t = _TYPES[key]
    cache = model_cache(model)  # per model (kept by refit: the hypotheses do not depend on y)
    hyp = cache.get(("hyp", t))
    if hyp is None:
        hyp = term_hypotheses(model, t)
        cache[("hyp", t)] = hyp
        cache[("hyp", t, "index")] = pd.Index(list(hyp))
    rows = []
    for L in hyp.values():
        if L.shape[0] == 0:
            rows.append([0, np.nan, np.nan, np.nan])
            continue
        r = contrast_test(model, L, method, checked=True)
        rows.append([r["num_df"], r["den_df"], r["F"], r["p"]])
    a = np.array(rows, dtype=float).reshape(len(rows), 4)
    out = pd.DataFrame({"num_df": a[:, 0].astype(int), "den_df": a[:, 1], "F": a[:, 2], "p": a[:, 3]},
                       index=cache[("hyp", t, "index")].copy())  # a fresh name per table
    return titled(out, "Type %s Analysis of Variance Table with %s" % ({1: "I", 2: "II", 3: "III"}[t], _METHOD[method]),
                  labels=_LABELS)


@entry_point
def contrast_table(model, L: Any, ddf: str = "satterthwaite") -> pd.DataFrame:
    """F test of ``L @ beta = 0`` for any contrast.

    Parameters
    ----------
    model : MixedModel
    L : array_like (r x p or p), or a dict / Series coefficient name -> weight
    ddf : {"satterthwaite", "kenward-roger"}

    Returns
    -------
    DataFrame
        One row, columns ``num_df, den_df, F, p`` (plus ``estimate, se, t`` for a one-row ``L``).
    """
    r = contrast_test(model, L, ddf)
    cols = ["num_df", "den_df", "F", "p"] + [c for c in ("estimate", "se", "t") if c in r]
    out = pd.DataFrame([[r[c] for c in cols]], columns=cols, index=pd.Index(["contrast"]), dtype=float)
    out["num_df"] = out["num_df"].astype(int)
    return titled(out, "F test of the contrast with %s" % _METHOD[normalize_ddf(ddf)], labels=_LABELS)


@entry_point
def vcov_kr(model) -> pd.DataFrame:
    """Kenward-Roger's adjusted covariance ``Phi_A`` of the fixed effects (pbkrtest's ``vcovAdj``).

    Returns
    -------
    DataFrame
        ``p x p``, index and columns = coefficient names.
    """
    names = coef_names(model)
    PhiA = model._std.vcov(kr_vcov_pieces(model_pieces(model))["PhiA"])
    return pd.DataFrame(PhiA, index=names, columns=names)
