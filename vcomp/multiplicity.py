"""Multiplicity adjustment of p values and confidence intervals, as emmeans 1.8 does it.

One family is one set of pairwise comparisons (one ``by`` slice). The methods are
emmeans' ``adjust=`` choices:

* ``"none"``: t tests and t intervals;
* ``"tukey"``: the studentized range (``scipy.stats.studentized_range``) for the family's
  number of means, ``P(Q > sqrt(2) |t|)``; intervals ``qtukey(level) / sqrt(2)``;
* ``"bonferroni"``, ``"sidak"``: ``n`` = number of comparisons in the family;
* ``"holm"``: Holm's step-down p values; intervals by Bonferroni (emmeans has no Holm intervals);
* ``"scheffe"``: ``F = t^2 / r`` on ``(r, df)`` df, ``r`` the rank of the family's contrasts.

With a single comparison every method but Scheffé is ``"none"`` (as emmeans).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special

from ._errors import VcompError

__all__ = ["ADJUST_METHODS", "check_adjust", "adjust_p", "critical_values", "t_upper", "zapsmall"]

ADJUST_METHODS = ("none", "tukey", "bonferroni", "holm", "sidak", "scheffe")

#: above this many distinct df in a family, Tukey quantiles come from an interpolant in 1/df
TUKEY_EXACT_MAX = 3
_CHEB_NODES = 24
#: R's ptukey (and scipy) use the infinite-df distribution above this df
TUKEY_DF_INF = 25000.0
TUKEY_DF_INF_VALUE = math.inf
#: above this many comparisons in a family, Tukey p values come from an interpolant (see _ptukey_many)
TUKEY_P_EXACT_MAX = 300


def check_adjust(adjust: str) -> str:
    """The adjustment method in lower case, or a :class:`VcompError` listing the choices."""
    key = str(adjust).strip().lower() if isinstance(adjust, str) else None
    if key == "bonf":
        key = "bonferroni"
    if key not in ADJUST_METHODS:
        raise VcompError("adjust must be one of %s, not %r" % (", ".join(map(repr, ADJUST_METHODS)), adjust))
    return key


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry (Inf: to integers)."""
    x = np.asarray(x, dtype=float)
    ok = ~np.isnan(x)
    if not ok.any():
        return x
    mx = float(np.max(np.abs(x[ok])))
    if mx <= 0:
        return np.round(x, digits)
    places = 0 if math.isinf(mx) else max(0, digits - int(math.ceil(math.log10(mx))))
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(x), x, np.round(x, places))


def t_upper(a, df) -> np.ndarray:
    """Upper ``a`` quantile of Student's t (``qt(1 - a, df)``); df NaN or infinite: the normal's."""
    a, df = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(df, dtype=float))
    inf = ~np.isfinite(df)
    with np.errstate(invalid="ignore"):
        return np.where(inf, -special.ndtri(a), -special.stdtrit(np.where(inf, 1.0, df), a))


def _f_upper(a: float, d1: int, df: np.ndarray) -> np.ndarray:
    """Upper ``a`` quantile of F(d1, df) (chi-square / d1 for infinite df)."""
    inf = ~np.isfinite(df)
    with np.errstate(invalid="ignore"):
        return np.where(inf, special.chdtri(d1, a) / d1, special.fdtri(d1, np.where(inf, 1.0, df), 1.0 - a))


def _t_sf2(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided t p values (df NaN treated as infinite, as emmeans)."""
    df = np.where(np.isnan(df), np.inf, df)
    with np.errstate(invalid="ignore"):
        return 2.0 * np.where(np.isinf(df), special.ndtr(-np.abs(t)), special.stdtr(df, -np.abs(t)))


@lru_cache(maxsize=200_000)
def _ptukey_upper(q: float, k: int, df: float) -> float:
    from scipy import stats
    if not (np.isfinite(q)) or df < 2 or k < 2:
        return float("nan")
    return float(stats.studentized_range.sf(q, k, df))


@lru_cache(maxsize=20_000)
def _qtukey(level: float, k: int, df: float) -> float:
    from scipy import stats
    if df < 2 or k < 2:
        return float("nan")
    return float(stats.studentized_range.ppf(level, k, df))


def _newton_qtukey(level: float, k: int, df: float, q: float) -> float:
    """``qtukey`` by Newton steps on scipy's studentized-range cdf and pdf from a close start ``q``."""
    from scipy import stats
    dist = stats.studentized_range
    for _ in range(8):
        step = (float(dist.cdf(q, k, df)) - level) / float(dist.pdf(q, k, df))
        if not np.isfinite(step) or q - step <= 0:
            return _qtukey(level, k, df)
        q -= step
        if abs(step) <= 1e-12 * q:
            return q
    return _qtukey(level, k, df)


@lru_cache(maxsize=256)
def _qtukey_interpolant(level: float, k: int):
    """``qtukey(level, k, 1/x)`` on ``x`` in [0, 1/2] (df from infinity down to 2): a Chebyshev
    interpolant through exact values at Chebyshev-Lobatto nodes (analytic in ``x``; relative error
    about 1e-10, far below R's own ``qtukey`` tolerance)."""
    j = np.arange(_CHEB_NODES)
    nodes = 0.25 - 0.25 * np.cos(np.pi * j / (_CHEB_NODES - 1))   # 0 ... 0.5
    vals = np.empty(_CHEB_NODES)
    q = _qtukey(level, k, math.inf)
    for i, x in enumerate(nodes):
        vals[i] = q if x == 0 else _newton_qtukey(level, k, 1.0 / x, q)
        q = vals[i]
    return np.polynomial.chebyshev.Chebyshev.fit(nodes, vals, _CHEB_NODES - 1, domain=[0.0, 0.5])


def _ptukey_exact(q: np.ndarray, k: int, df: np.ndarray) -> np.ndarray:
    return np.array([_ptukey_upper(float(a), k, float(TUKEY_DF_INF_VALUE if d > TUKEY_DF_INF else d))
                     for a, d in zip(q, df)])


def _ptukey_many(q: np.ndarray, k: int, df: np.ndarray) -> np.ndarray:
    """Upper tail ``P(Q > q)`` of the studentized range for many ``(q, df)`` of one family.

    Exact (scipy) for up to :data:`TUKEY_P_EXACT_MAX` comparisons (or while that costs less than
    the nodes below). Beyond, a tensor Chebyshev interpolant of ``log P`` in ``(q, 1/df)`` through
    exact values at 64 x (1 to 9) nodes (about 1e-7 to 1e-6 relative), checked against exact values at
    a few of the family's own points (relative error at most 1e-5, else everything is computed exactly).
    """
    q = np.asarray(q, dtype=float)
    df = np.asarray(df, dtype=float)
    ok = np.isfinite(q) & (df >= 2)
    out = np.full(q.shape, np.nan)
    qq, dd = q[ok], np.minimum(df[ok], TUKEY_DF_INF)
    x = 1.0 / dd if dd.size else dd
    xlo, xhi = (float(x.min()), float(x.max())) if dd.size else (0.0, 0.0)
    nq = 64
    nx = 1 if xhi - xlo <= 1e-9 * xhi else 4 if xhi < 1.25 * xlo else 6 if xhi < 2 * xlo else 9
    if ok.sum() <= max(TUKEY_P_EXACT_MAX, 2 * nq * nx):
        out[ok] = _ptukey_exact(q[ok], k, df[ok])
        return out
    qmax = float(qq.max()) * 1.02 + 1e-3
    qn = qmax / 2 * (1 - np.cos(np.pi * np.arange(nq) / (nq - 1)))
    xn = np.array([xlo]) if nx == 1 else (xlo + xhi) / 2 - (xhi - xlo) / 2 * np.cos(np.pi * np.arange(nx) / (nx - 1))
    vals = np.array([[_ptukey_upper(float(a), k, float(1.0 / b)) if a > 0 else 1.0 for a in qn] for b in xn])
    if not np.all(np.isfinite(vals)) or np.any(vals <= 0):
        out[ok] = _ptukey_exact(qq, k, dd)
        return out
    cheb = np.polynomial.chebyshev
    logv = np.log(vals)                                           # (nx, nq)
    cq = cheb.chebfit(2 * qn / qmax - 1, logv.T, nq - 1)          # (nq coefficients, nx)
    tq = 2 * qq / qmax - 1
    along_q = cheb.chebval(tq, cq)                                # (nx, m): each x node at the pairs' q
    if nx == 1:
        est = np.exp(along_q[0])
    else:
        tx = (2 * x - (xlo + xhi)) / (xhi - xlo)
        tn = (2 * xn - (xlo + xhi)) / (xhi - xlo)
        cx = cheb.chebfit(tn, along_q, nx - 1)                    # (nx coefficients, m)
        est = np.exp(np.einsum("jm,jm->m", cheb.chebvander(tx, nx - 1).T, cx))
    probe = np.unique(np.linspace(0, len(qq) - 1, 8).astype(int))
    exact = _ptukey_exact(qq[probe], k, dd[probe])
    if np.max(np.abs(est[probe] - exact) / np.maximum(exact, 1e-300)) > 1e-5:
        est = _ptukey_exact(qq, k, dd)
    out[ok] = np.minimum(est, 1.0)
    return out


def _qtukey_many(level: float, k: int, df: np.ndarray) -> np.ndarray:
    """``qtukey(level, k, df)`` for many df: exact for a few distinct values, else the interpolant."""
    out = np.full(df.shape, np.nan)
    big = df > TUKEY_DF_INF
    ok = (df >= 2) & ~big
    if big.any():
        out[big] = _qtukey(level, k, math.inf)
    u = np.unique(df[ok])
    if len(u) <= TUKEY_EXACT_MAX:
        for d in u:
            out[df == d] = _qtukey(level, k, float(d))
    else:
        out[ok] = _qtukey_interpolant(level, k)(1.0 / df[ok])
    return out


def adjust_p(t: np.ndarray, df: np.ndarray, method: str, nmeans: int, rank: int) -> np.ndarray:
    """Adjusted two-sided p values of one family of pairwise comparisons.

    Parameters
    ----------
    t, df : ndarray
        t ratios and df of the family's comparisons (NaN for a non-estimable one).
    method : str
        One of :data:`ADJUST_METHODS`.
    nmeans : int
        Number of means in the family (Tukey).
    rank : int
        Rank of the family's contrasts (Scheffé).

    Returns
    -------
    ndarray
    """
    method = check_adjust(method)
    t = np.asarray(t, dtype=float)
    df = np.asarray(df, dtype=float)
    n = len(t)
    if n == 1 and method != "scheffe":
        method = "none"
    p = _t_sf2(t, df)
    if method == "none":
        return p
    if method == "bonferroni":
        return np.minimum(1.0, n * p)
    if method == "sidak":
        return 1.0 - (1.0 - p) ** n
    if method == "holm":
        out = np.full(n, np.nan)
        ok = np.flatnonzero(~np.isnan(p))
        o = ok[np.argsort(p[ok], kind="stable")]
        steps = (n - np.arange(len(o))) * p[o]
        out[o] = np.minimum(1.0, np.maximum.accumulate(steps))
        return out
    dfi = np.where(np.isnan(df), np.inf, df)
    if method == "scheffe":
        with np.errstate(invalid="ignore", divide="ignore"):
            F = t ** 2 / rank
            return np.where(np.isinf(dfi), special.chdtrc(rank, rank * F), special.fdtrc(rank, dfi, F))
    return _ptukey_many(np.sqrt(2.0) * np.abs(t), int(nmeans), zapsmall(dfi))


def critical_values(level: float, df: np.ndarray, method: str, nmeans: int, rank: int) -> np.ndarray:
    """Multipliers of the SE for simultaneous intervals of one family (emmeans' ``confint``).

    Parameters as :func:`adjust_p`; ``"holm"`` gives Bonferroni's multipliers.
    """
    method = check_adjust(method)
    df = np.asarray(df, dtype=float)
    n = len(df)
    if n == 1 and method != "scheffe":
        method = "none"
    dfi = np.where(np.isnan(df), np.inf, df)
    a = 1.0 - level
    if method == "none":
        return t_upper(a / 2.0, dfi)
    if method in ("bonferroni", "holm"):
        return t_upper(a / n / 2.0, dfi)
    if method == "sidak":
        return t_upper((1.0 - level ** (1.0 / n)) / 2.0, dfi)
    if method == "scheffe":
        return np.sqrt(rank * _f_upper(1.0 - level, rank, dfi))
    return _qtukey_many(float(level), int(nmeans), dfi) / math.sqrt(2.0)
