"""Method-of-moments (ANOVA) variance components: solve E[MS] = MS."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._errors import VcompWarning

__all__ = ["mom_components"]


def mom_components(ems: pd.DataFrame, ms: pd.Series) -> pd.DataFrame:
    """Solve the expected-mean-square equations of the random sources and the residual.

    Parameters
    ----------
    ems : DataFrame
        EMS coefficients, index = sources, columns = random terms then ``"Residual"``.
    ms : Series
        Mean squares by source.

    Returns
    -------
    DataFrame
        Index = components, columns ``estimate`` (negative values set to zero)
        and ``raw`` (the untruncated solution).  NaN when the equations are singular.
    """
    comps = list(ems.columns)
    C = ems.loc[comps, comps].to_numpy(dtype=float)
    m = ms.loc[comps].to_numpy(dtype=float)
    raw = np.full(len(comps), np.nan)
    if np.isfinite(C).all() and np.isfinite(m).all():
        try:
            if np.linalg.cond(C) < 1e12:
                raw = np.linalg.solve(C, m)
        except np.linalg.LinAlgError:  # pragma: no cover - cond guards it
            pass
    if np.isnan(raw).any():
        warnings.warn("the expected-mean-square equations of the random terms are singular "
                      "(a random term has no degrees of freedom of its own); method-of-moments "
                      "components are not available.", VcompWarning, stacklevel=3)
    return pd.DataFrame({"estimate": np.where(np.isnan(raw), np.nan, np.maximum(raw, 0.0)), "raw": raw},
                        index=pd.Index(comps, name="component"))
