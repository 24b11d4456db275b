"""F tests with exact or synthesized (Satterthwaite) denominators, as PROC GLM ``RANDOM / TEST``."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["f_tests", "error_name"]

#: a denominator is accepted when its EMS matches the null expectation to this (absolute) accuracy
FIT_TOL = 1e-8
#: coefficients smaller than this are dropped from the reported denominator
COEF_TOL = 1e-10


def error_name(coefs: dict[str, float]) -> str:
    """Readable denominator: ``"block:variety"`` or ``"0.988 MS(block:A) + 0.012 MS(Residual)"``."""
    if not coefs:
        return ""
    if len(coefs) == 1:
        (k, v), = coefs.items()
        if abs(v - 1.0) < 1e-8:
            return k
    parts = []
    for i, (k, v) in enumerate(coefs.items()):
        txt = "%.4g MS(%s)" % (abs(v), k)
        parts.append(("- " if v < 0 else "") + txt if i == 0 else ("- " if v < 0 else "+ ") + txt)
    return " ".join(parts)


def f_tests(ems: pd.DataFrame, df: pd.Series, ms: pd.Series, sources: list[str],
            random: list[str]) -> tuple[pd.DataFrame, dict]:
    """F test of every source against the mean-square combination with the null expectation.

    For source ``s`` the target is its EMS with its own component set to zero
    (if ``s`` is random); the denominator is the least-squares combination
    of the EMS rows of the other random sources and the residual.  It is used
    only when it reproduces the target exactly (residual < ``FIT_TOL``);
    otherwise the source has no test.  With more than one mean square the
    denominator df is Satterthwaite's ``den^2 / sum((c_i MS_i)^2 / df_i)``.

    Returns
    -------
    tests : DataFrame
        Index = sources, columns ``F, p, den_df, error``.
    error_terms : dict
        ``{source: {denominator source: coefficient}}`` (empty when untestable).
    """
    comps = list(ems.columns)
    E = ems.loc[sources, comps].to_numpy(dtype=float)
    dfa = df.loc[sources].to_numpy(dtype=float)
    msa = ms.loc[sources].to_numpy(dtype=float)
    pos = {s: i for i, s in enumerate(sources)}
    finite = np.isfinite(E).all(axis=1) & (dfa > 0)
    nan = {"F": np.nan, "p": np.nan, "den_df": np.nan, "error": ""}
    rows_out, terms_out = {}, {}
    for s in sources:
        i = pos[s]
        if s == "Residual" or not finite[i]:
            rows_out[s], terms_out[s] = dict(nan), {}
            continue
        target = E[i].copy()
        if s in random:
            target[comps.index(s)] = 0.0
        rows = [r for r in comps if r != s and r in pos and finite[pos[r]]]
        ri = [pos[r] for r in rows]
        C = E[ri].T
        if rows:
            cf = np.linalg.lstsq(C, target, rcond=None)[0]
            resid = float(np.max(np.abs(C @ cf - target)))
        if not rows or resid > FIT_TOL * max(1.0, float(np.max(np.abs(target)))):
            rows_out[s], terms_out[s] = dict(nan), {}
            continue
        msr, dfr = msa[ri], dfa[ri]
        den = float(cf @ msr)
        dfden = den ** 2 / float(np.sum((cf * msr) ** 2 / dfr))
        F = float(msa[i]) / den if den != 0 else np.inf
        p = float(stats.f.sf(F, dfa[i], dfden)) if np.isfinite(dfden) else np.nan
        kept = {r: float(c) for r, c in zip(rows, cf) if abs(c) > COEF_TOL}
        if len(kept) == 1:  # report an exact test with its exact coefficient
            (k, v), = kept.items()
            if abs(v - 1.0) < 1e-8:
                kept = {k: 1.0}
        rows_out[s] = {"F": F, "p": p, "den_df": dfden, "error": error_name(kept)}
        terms_out[s] = kept
    return pd.DataFrame.from_dict(rows_out, orient="index"), terms_out
