"""F tests with exact or synthesized (Satterthwaite) denominators, as PROC GLM ``RANDOM / TEST``."""
from __future__ import annotations

import numpy as np
from scipy import special

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


def f_tests(E: np.ndarray, df: np.ndarray, ms: np.ndarray, sources: list[str],
            comps: list[str], random: list[str]) -> tuple[dict, dict]:
    """F test of every source against the mean-square combination with the null expectation.

    For source ``s`` the target is its EMS with its own component set to zero
    (if ``s`` is random); the denominator is the least-squares combination
    of the EMS rows of the other random sources and the residual.  It is used
    only when it reproduces the target exactly (residual < ``FIT_TOL``);
    otherwise the source has no test.  With more than one mean square the
    denominator df is Satterthwaite's ``den^2 / sum((c_i MS_i)^2 / df_i)``.

    Parameters
    ----------
    E : ndarray, shape (sources, components)
        EMS coefficients; components are the random terms then ``"Residual"``.
    df, ms : ndarray
        Degrees of freedom and mean squares of the sources.
    sources, comps, random : list of str
        Names of the rows of ``E``, of its columns, and the random terms.

    Returns
    -------
    tests : dict
        ``{"F", "p", "den_df", "error"}`` -> list over sources (NaN / "" where untestable).
    error_terms : dict
        ``{source: {denominator source: coefficient}}`` (empty when untestable).
    """
    pos = {s: i for i, s in enumerate(sources)}
    finite = np.isfinite(E).all(axis=1) & (df > 0)
    out = {"F": [], "p": [], "den_df": [], "error": []}
    terms_out = {}
    for s in sources:
        i = pos[s]
        res = (np.nan, np.nan, np.nan, "")
        kept: dict = {}
        if s != "Residual" and finite[i]:
            target = E[i].copy()
            if s in random:
                target[comps.index(s)] = 0.0
            rows = [r for r in comps if r != s and r in pos and finite[pos[r]]]
            ri = [pos[r] for r in rows]
            if rows:
                C = E[ri].T
                cf = np.linalg.lstsq(C, target, rcond=None)[0]
                resid = float(np.max(np.abs(C @ cf - target)))
                if resid <= FIT_TOL * max(1.0, float(np.max(np.abs(target)))):
                    msr, dfr = ms[ri], df[ri]
                    den = float(cf @ msr)
                    dfden = den ** 2 / float(np.sum((cf * msr) ** 2 / dfr))
                    F = float(ms[i]) / den if den != 0 else np.inf
                    p = float(special.fdtrc(df[i], dfden, F)) if F >= 0 else 1.0
                    kept = {r: float(c) for r, c in zip(rows, cf) if abs(c) > COEF_TOL}
                    if len(kept) == 1:  # report an exact test with its exact coefficient
                        (k, v), = kept.items()
                        if abs(v - 1.0) < 1e-8:
                            kept = {k: 1.0}
                    res = (F, p, dfden, error_name(kept))
        for key, v in zip(("F", "p", "den_df", "error"), res):
            out[key].append(v)
        terms_out[s] = kept
    return out, terms_out
