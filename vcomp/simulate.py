"""Simulated data sets: random-slope clusters and designed field trials.

>>> import vcomp
>>> d = vcomp.simulate.random_slopes(n_cluster=20, seed=1)
>>> sorted(d.columns)
['cluster', 'x', 'y']
"""
from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np
import pandas as pd

from .terms import split_term, term_key
from ._errors import DesignError

__all__ = ["random_slopes", "design_data"]


def random_slopes(obs_per_cluster: int = 10, n_cluster: int = 100, intercept: float = 1.0, beta: float = 0.5,
                  sigma: float = 1.0, sd_int: float = 0.5, sd_slope: float = 0.25, cor: float = 0.0,
                  balanced: float = 1.0, seed: int | None = 888) -> pd.DataFrame:
    """Simulate ``y = (intercept + b0_j) + (beta + b1_j) x + e`` for clusters ``j``.

    As in the "Shrinkage in Mixed Effects Models" simulation: ``x ~ N(0, 1)``,
    per-cluster random intercept and slope with standard deviations ``sd_int``,
    ``sd_slope`` and correlation ``cor`` (a true correlation, in [-1, 1]), and
    residual standard deviation ``sigma``.

    Parameters
    ----------
    obs_per_cluster, n_cluster : int
        Rows per cluster before thinning, and number of clusters.
    intercept, beta : float
        Population intercept and slope.
    sigma, sd_int, sd_slope : float
        Residual, random-intercept and random-slope standard deviations (>= 0).
    cor : float
        Correlation of the random intercept and slope.
    balanced : float
        Fraction of rows kept (1.0 keeps all; 0.5 drops a random half, making
        cluster sizes unequal).
    seed : int or None
        Seed of numpy's random generator.

    Returns
    -------
    DataFrame
        Columns ``y``, ``x``, ``cluster`` (labels ``c001``, ``c002``, ...).
    """
    if obs_per_cluster < 1 or n_cluster < 1:
        raise ValueError("obs_per_cluster and n_cluster must be at least 1")
    if not -1.0 <= cor <= 1.0:
        raise ValueError("cor is a correlation and must lie in [-1, 1], got %r" % cor)
    if min(sigma, sd_int, sd_slope) < 0:
        raise ValueError("standard deviations must be non-negative")
    if not 0.0 < balanced <= 1.0:
        raise ValueError("balanced is the fraction of rows kept and must lie in (0, 1], got %r" % balanced)
    rng = np.random.default_rng(seed)
    n = obs_per_cluster * n_cluster
    cluster = np.repeat(np.arange(n_cluster), obs_per_cluster)
    x = rng.standard_normal(n)
    cov = np.array([[sd_int ** 2, cor * sd_int * sd_slope], [cor * sd_int * sd_slope, sd_slope ** 2]])
    re = rng.multivariate_normal(np.zeros(2), cov, size=n_cluster, method="eigh")
    y = intercept + re[cluster, 0] + (beta + re[cluster, 1]) * x + rng.normal(0.0, sigma, n)
    width = max(3, len(str(n_cluster)))
    d = pd.DataFrame({"y": y, "x": x, "cluster": ["c%0*d" % (width, c + 1) for c in cluster]})
    if balanced < 1.0:
        keep = np.sort(rng.choice(n, size=int(round(n * balanced)), replace=False))
        d = d.iloc[keep].reset_index(drop=True)
    return d


def _labels(factor: str, spec) -> list[str]:
    if isinstance(spec, (int, np.integer)):
        if spec < 1:
            raise DesignError("levels[%r] must be a positive number of levels, got %r" % (factor, spec))
        width = len(str(int(spec)))
        return ["%s%0*d" % (factor, width, i + 1) for i in range(int(spec))]
    labels = [str(s) for s in spec]
    if not labels:
        raise DesignError("levels[%r] is empty" % factor)
    return labels


def design_data(design, levels: Mapping[str, object], components: Mapping[str, float],
                effects: Mapping[str, object] | None = None, seed: int | None = None, reps: int = 1,
                mean: float = 0.0, response: str = "y") -> pd.DataFrame:
    """Simulate a data set with the structure of ``design``.

    Every combination of the factors' levels appears ``reps`` times (factors
    of nested terms such as ``batch:cask`` are crossed, which gives the nested
    structure when the inner factor is only used inside the outer one).

    Parameters
    ----------
    design : Design
        Supplies the fixed and random terms.
    levels : mapping
        Factor name -> number of levels or list of level labels; every factor
        of the design must be given.
    components : mapping
        Random term (and ``"Residual"``) -> variance. Missing random terms get 0;
        ``"Residual"`` defaults to 1.
    effects : mapping, optional
        Fixed term -> effects: a mapping of level label (``"a2"`` or ``"a2:b1"``
        for interactions) to effect, a sequence with one effect per level
        combination (in sorted order), or a scalar standard deviation from
        which effects are drawn. Terms not given have no effect.
    seed : int, optional
        Seed of numpy's random generator.
    reps : int
        Replicates of every cell (use > 1 for CRD and for sub-sampling).
    mean : float
        Overall mean.
    response : str
        Name of the response column.

    Returns
    -------
    DataFrame
        One column per factor (strings) and the response.
    """
    factors = list(dict.fromkeys(f for t in design.terms for f in split_term(t)))
    missing = [f for f in factors if f not in levels]
    if missing:
        raise DesignError("levels must give the number of levels of every factor; missing: %s" % ", ".join(missing))
    unknown = [k for k in components if k != "Residual" and term_key(k) not in {term_key(t) for t in design.random_terms}]
    if unknown:
        raise DesignError("components names term(s) %s that are not random terms of the design (%s)"
                          % (", ".join(map(repr, unknown)), ", ".join(design.random_terms) or "none"))
    if reps < 1:
        raise DesignError("reps must be at least 1")
    rng = np.random.default_rng(seed)
    labs = {f: _labels(f, levels[f]) for f in factors}
    rows = [combo for combo in itertools.product(*(labs[f] for f in factors)) for _ in range(reps)]
    d = pd.DataFrame(rows, columns=factors)
    y = np.full(len(d), float(mean))
    comp = {term_key(k): float(v) for k, v in components.items()}
    for term in design.random_terms:
        var = comp.get(term_key(term), 0.0)
        if var < 0:
            raise DesignError("variance of %r must be non-negative" % term)
        keys = d[split_term(term)].astype(str).agg(":".join, axis=1)
        uniq, inv = np.unique(keys.to_numpy(), return_inverse=True)
        y += rng.normal(0.0, np.sqrt(var), len(uniq))[inv]
    y += rng.normal(0.0, np.sqrt(comp.get(term_key("Residual"), 1.0)), len(d))
    for term, spec in (effects or {}).items():
        if term_key(term) not in {term_key(t) for t in design.fixed_terms}:
            raise DesignError("effects names %r, which is not a fixed term of the design (%s)"
                              % (term, ", ".join(design.fixed_terms) or "none"))
        keys = d[split_term(term)].astype(str).agg(":".join, axis=1).to_numpy()
        uniq = sorted(set(keys))
        if isinstance(spec, Mapping):
            vals = {str(k): float(v) for k, v in spec.items()}
            eff = np.array([vals.get(k, 0.0) for k in keys])
        elif np.isscalar(spec):
            draw = dict(zip(uniq, rng.normal(0.0, float(spec), len(uniq))))
            eff = np.array([draw[k] for k in keys])
        else:
            seq = [float(v) for v in spec]
            if len(seq) != len(uniq):
                raise DesignError("effects[%r] has %d values but the term has %d level combinations (%s, ...)"
                                  % (term, len(seq), len(uniq), ", ".join(uniq[:3])))
            m = dict(zip(uniq, seq))
            eff = np.array([m[k] for k in keys])
        y += eff
    d[response] = y
    return d
