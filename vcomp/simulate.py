"""Simulated data sets: random-slope clusters and designed field trials.

>>> import vcomp
>>> d = vcomp.simulate.random_slopes(n_cluster=20, seed=1)
>>> sorted(d.columns)
['cluster', 'x', 'y']
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from .terms import split_term, term_key
from ._errors import DesignError

__all__ = ["random_slopes", "design_data", "expected_values", "NoiseModel"]


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
    for name, v in (("obs_per_cluster", obs_per_cluster), ("n_cluster", n_cluster)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise DesignError("%s must be a whole number, got %r" % (name, v))
    for name, v in (("intercept", intercept), ("beta", beta), ("sigma", sigma), ("sd_int", sd_int),
                    ("sd_slope", sd_slope), ("cor", cor), ("balanced", balanced)):
        if not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            raise DesignError("%s must be a finite number, got %r" % (name, v))
    if obs_per_cluster < 1 or n_cluster < 1:
        raise DesignError("obs_per_cluster and n_cluster must be at least 1")
    if not -1.0 <= cor <= 1.0:
        raise DesignError("cor is a correlation and must lie in [-1, 1], got %r" % cor)
    if min(sigma, sd_int, sd_slope) < 0:
        raise DesignError("standard deviations must be non-negative")
    if not 0.0 < balanced <= 1.0:
        raise DesignError("balanced is the fraction of rows kept and must lie in (0, 1], got %r" % balanced)
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


def _level_keys(plan: pd.DataFrame, term: str) -> np.ndarray:
    """The level key of every plot for ``term``: its factors' labels in the term's order, joined with ``:``."""
    cols = [plan[f].astype(str).to_numpy() for f in split_term(term)]
    out = cols[0].astype(object)
    for c in cols[1:]:
        out = out + ":" + c
    return out


def _fixed_term(design, term: str) -> None:
    if not isinstance(term, str) or term_key(term) not in {term_key(t) for t in design.fixed_terms}:
        raise DesignError("effects names %r, which is not a fixed term of the design (%s)"
                          % (term, ", ".join(design.fixed_terms) or "none"))


def expected_values(design, plan: pd.DataFrame, effects: Mapping[str, object] | None, mean: float = 0.0,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """The expected value of every plot: ``mean`` plus the sum of its fixed-term effects.

    Parameters
    ----------
    design : Design
    plan : DataFrame
        A field plan (:func:`vcomp.layout.field_plan`).
    effects : mapping or None
        ``{fixed term: effects}``; the effects of a term are a mapping of
        level keys (``"a2"``, ``"a2:b1"`` in the term's factor order) to
        values (levels not listed: 0), a sequence with one value per level
        combination in sorted key order, or a scalar standard deviation from
        which the effects are drawn (``rng`` needed).
    mean : float
        Overall mean.
    rng : numpy Generator, optional
        Draws the scalar-SD effects.

    Returns
    -------
    ndarray
    """
    mu = np.full(len(plan), float(mean))
    if effects is None:
        return mu
    if not isinstance(effects, Mapping):
        raise DesignError("effects must be a dict {fixed term: effects}, got %r" % type(effects).__name__)
    for term, spec in effects.items():
        _fixed_term(design, term)
        keys = _level_keys(plan, term)
        uniq = sorted(set(keys))
        if isinstance(spec, Mapping):
            vals = {str(k): _finite_number(v, "effects[%r][%r]" % (term, k)) for k, v in spec.items()}
            unknown = [k for k in vals if k not in set(uniq)]
            if unknown:
                raise DesignError("effects[%r] names level(s) %s not in the plan; the term's levels are %s%s "
                                  "(labels of %s joined with ':')"
                                  % (term, ", ".join(map(repr, unknown[:5])), ", ".join(uniq[:6]),
                                     ", ..." if len(uniq) > 6 else "", ", ".join(split_term(term))))
            mu += np.array([vals.get(k, 0.0) for k in keys])
        elif np.isscalar(spec):
            sd = _finite_number(spec, "effects[%r]" % term)
            if sd < 0:
                raise DesignError("effects[%r] = %r: a scalar is the standard deviation of the effects and "
                                  "must be non-negative" % (term, spec))
            if rng is None:
                raise DesignError("effects[%r] is a standard deviation (random effects of a fixed term); give "
                                  "the effects themselves as {level: value}." % term)
            draw = dict(zip(uniq, rng.normal(0.0, sd, len(uniq))))
            mu += np.array([draw[k] for k in keys])
        else:
            seq = [_finite_number(v, "effects[%r]" % term) for v in spec]
            if len(seq) != len(uniq):
                raise DesignError("effects[%r] has %d values but the term has %d level combinations (%s, ...)"
                                  % (term, len(seq), len(uniq), ", ".join(uniq[:3])))
            m = dict(zip(uniq, seq))
            mu += np.array([m[k] for k in keys])
    return mu


def _finite_number(v, what: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise DesignError("%s must be a number, got %r" % (what, v)) from None
    if not np.isfinite(x):
        raise DesignError("%s must be finite, got %r" % (what, v))
    return x


class NoiseModel:
    """The random part of a design on a plan: one normal effect per level of each random term, plus the residual.

    Parameters
    ----------
    design : Design
    plan : DataFrame
        A field plan.
    components : mapping
        ``{random term: variance, "Residual": variance}``; random terms not
        listed have variance 0.
    residual : float or None
        Residual variance when ``components`` lacks ``"Residual"``
        (``None``: then it is required).
    """

    def __init__(self, design, plan: pd.DataFrame, components: Mapping[str, float], residual: float | None = 1.0):
        if not isinstance(components, Mapping):
            raise DesignError("components must be a dict {random term: variance, 'Residual': variance}, got %r"
                              % type(components).__name__)
        rkeys = {term_key(t) for t in design.random_terms}
        unknown = [k for k in components if k != "Residual" and (not isinstance(k, str) or term_key(k) not in rkeys)]
        if unknown:
            raise DesignError("components names term(s) %s that are not random terms of the design (%s)"
                              % (", ".join(map(repr, unknown)), ", ".join(design.random_terms) or "none"))
        if "Residual" not in components and residual is None:
            raise DesignError("components must give the residual variance as components['Residual'].")
        comp = {term_key(k): _finite_number(v, "components[%r]" % k) for k, v in components.items() if k != "Residual"}
        res = _finite_number(components["Residual"], "components['Residual']") if "Residual" in components else residual
        bad = [k for k, v in components.items() if _finite_number(v, "components[%r]" % k) < 0]
        if bad:
            raise DesignError("variance of %s must be non-negative" % ", ".join(map(repr, bad)))
        self.n = len(plan)
        self.terms = []  # (codes, number of levels, sd)
        for term in design.random_terms:
            sd = float(np.sqrt(comp.get(term_key(term), 0.0)))
            _, inv = np.unique(_level_keys(plan, term).astype(str), return_inverse=True)
            self.terms.append((inv.reshape(-1), int(inv.max()) + 1, sd))
        self.residual_sd = float(np.sqrt(res))

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of the random part (length: the plan's plots)."""
        y = np.zeros(self.n)
        for codes, nlev, sd in self.terms:
            y += rng.normal(0.0, sd, nlev)[codes]
        return y + rng.normal(0.0, self.residual_sd, self.n)


def design_data(design, levels: Mapping[str, object], components: Mapping[str, float],
                effects: Mapping[str, object] | None = None, seed=None, reps: int = 1,
                mean: float = 0.0, response: str = "y") -> pd.DataFrame:
    """Simulate a data set on a randomized field plan of ``design``.

    The plan is :func:`vcomp.layout.field_plan` with the same ``seed`` (a
    simulated Latin square is a Latin square; a split-plot has its blocks,
    whole plots and sub-plots); the response is the expected value of each
    plot (``mean`` + fixed effects) plus one normal effect per level of each
    random term plus a normal residual.

    Parameters
    ----------
    design : Design
        Supplies the fixed and random terms and the plan.
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
    seed : int, numpy Generator or None
        Seed of numpy's random generator (the plan is ``design.layout(levels, seed)``).
    reps : int
        Plots (CRD, RCBD) or sub-samples (other designs) per cell.
    mean : float
        Overall mean.
    response : str
        Name of the response column.

    Returns
    -------
    DataFrame
        The plan (``plot``, then one column per factor, strings) and the response.
    """
    from .layout import field_plan, random_generator

    if not isinstance(response, str) or not response or response == "plot" or response in design.factors:
        raise DesignError("response must be a new column name (not 'plot' or a factor of the design), got %r"
                          % (response,))
    rng = random_generator(seed)
    plan = field_plan(design, levels, seed=rng, reps=reps)
    noise = NoiseModel(design, plan, components)
    mu = expected_values(design, plan, effects, mean, rng)
    plan[response] = mu + noise.draw(rng)
    return plan
