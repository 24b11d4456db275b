"""Method-of-moments (ANOVA) variance components: solve E[MS] = MS."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import VcompWarning, warn

__all__ = ["mom_components"]


def mom_components(C: np.ndarray, ms: np.ndarray, comps: list[str]) -> tuple[pd.DataFrame, bool]:
    """Solve the expected-mean-square equations of the random sources and the residual.

    Parameters
    ----------
    C : ndarray, shape (k, k)
        EMS coefficients of the random sources and the residual (rows, in the
        order of ``comps``) for the components (columns).
    ms : ndarray, shape (k,)
        Their mean squares.
    comps : list of str
        Random terms then ``"Residual"``.

    Returns
    -------
    components : DataFrame
        Index = components, columns ``estimate`` (negative values set to zero)
        and ``raw`` (the untruncated solution).  NaN when the equations are singular.
    singular : bool
        The equations are singular (a :class:`~vcomp.VcompWarning` was issued).
    """
    raw = np.full(len(comps), np.nan)
    if np.isfinite(C).all() and np.isfinite(ms).all():
        try:
            if np.linalg.cond(C) < 1e12:
                raw = np.linalg.solve(C, ms)
        except np.linalg.LinAlgError:  # pragma: no cover - cond guards it
            pass
    singular = bool(np.isnan(raw).any())
    if singular:
        warn("the expected-mean-square equations of the random terms are singular "
             "(a random term has no degrees of freedom of its own); method-of-moments "
             "components are not available.", VcompWarning)
    comp = pd.DataFrame({"estimate": np.where(np.isnan(raw), np.nan, np.maximum(raw, 0.0)), "raw": raw},
                        index=pd.Index(comps, name="component"))
    return comp, singular
