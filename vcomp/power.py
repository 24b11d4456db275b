"""Power of a design's F tests: exact (noncentral F) or by simulation and refitting (SAS PROC POWER, simr).

Parameterization: shared/notes/power-and-layout.md.  For a balanced plan,
term ``T`` with error stratum ``E`` (the denominator of its exact F test in
the classical analysis) has

    λ_T = μ' A_T μ / E0[MS_E],   power = P(F'(df_T, df_E; λ_T) > F_{1-α}(df_T, df_E)),

``μ' A_T μ`` the sum of squares of ``T`` computed from the plots' expected
values and ``E0[MS_E]`` the error stratum's expected mean square under the
components.  Both come from the design's own classical analysis
(:meth:`~vcomp.Design.anova`): its sums of squares, Hartley EMS and error
terms.  Otherwise (an unbalanced plan, a term without an exact F test, or
``nsim`` given) the power is the share of ``nsim`` data sets simulated on the
plan whose F test (REML with ``ddf``, or the classical F test of a design
without random terms) rejects at level ``alpha``.

The callee takes the design as a plain object (this module does not import
:mod:`vcomp.design`); it reaches the analyses through the design's methods.
"""
from __future__ import annotations

import math
import sys
import warnings
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from .terms import split_term, term_key
from ._errors import DesignError, VcompWarning
from .inference.kernel import normalize_ddf
from .layout import field_plan, level_labels, random_generator
from .simulate import NoiseModel, expected_values

__all__ = ["power", "exact_power", "simulated_power", "noncentral_f_power", "DEFAULT_NSIM"]

#: data sets simulated when a term has no exact power and ``nsim`` is not given
DEFAULT_NSIM = 500

_COLUMNS = ["power", "method", "num_df", "den_df", "ncp", "error", "nsim", "mc_se"]


def noncentral_f_power(ncp: float, df1: float, df2: float, alpha: float = 0.05) -> float:
    """``P(F'(df1, df2; ncp) > F_{1-alpha}(df1, df2))``: the power of an F test with noncentrality ``ncp``."""
    crit = stats.f.isf(alpha, df1, df2)
    if ncp <= 0:
        return float(stats.f.sf(crit, df1, df2))
    return float(stats.ncf.sf(crit, df1, df2, ncp))


def _response_name(plan: pd.DataFrame) -> str:
    name = "y"
    while name in plan.columns:
        name += "_"
    return name


def _analyse(design, plan: pd.DataFrame, y: np.ndarray, response: str):
    """The design's classical analysis of ``y`` on ``plan`` (type I = type III in a balanced plan)."""
    data = plan.drop(columns=["plot"], errors="ignore").copy()
    data[response] = y
    try:
        return design.anova(data, response, ss_type=1)
    except DesignError as exc:
        raise DesignError("%s  For power, the plan needs residual degrees of freedom: give reps=2 or more "
                          "(plots per treatment of a CRD, sub-samples of a nested design)." % exc) from None


def _component_vector(res, components: Mapping[str, float]) -> np.ndarray:
    comp = {("Residual" if k == "Residual" else term_key(k)): float(v) for k, v in components.items()}
    return np.array([comp.get("Residual" if c == "Residual" else term_key(c), 0.0) for c in res.ems.columns])


def exact_power(design, plan: pd.DataFrame, mu: np.ndarray, components: Mapping[str, float],
                alpha: float = 0.05) -> dict:
    """Exact power of every fixed term with an exact F test, from the classical analysis of ``plan``.

    Parameters
    ----------
    design : Design
    plan : DataFrame
        A balanced field plan (:func:`vcomp.layout.field_plan`).
    mu : ndarray
        Expected value of every plot (:func:`vcomp.simulate.expected_values`).
    components : mapping
        ``{random term: variance, "Residual": variance}``.
    alpha : float
        Level of the tests.

    Returns
    -------
    dict
        ``{fixed term: {"power", "num_df", "den_df", "ncp", "error"}}`` for
        the terms whose F test has a single mean square as its exact
        denominator; the other fixed terms are missing.
    """
    response = _response_name(plan)
    # μ'Aμ by polarization: Q(μ) = (Q(μ+z) + Q(μ-z)) / 2 - Q(z), each analysis with residual df > 0
    z = np.random.default_rng(20240601).standard_normal(len(plan)) * max(1.0, float(np.std(mu)))
    r0 = _analyse(design, plan, z, response)
    rp = _analyse(design, plan, mu + z, response)
    rm = _analyse(design, plan, mu - z, response)
    comp = _component_vector(r0, components)
    tab = r0.table
    by_key = {term_key(s): s for s in tab.index if s != "Residual"}
    out = {}
    for term in design.fixed_terms:
        src = by_key[term_key(term)]
        err = r0.error_terms.get(src, {})
        if len(err) != 1 or abs(next(iter(err.values())) - 1.0) > 1e-8:
            continue
        (e,) = err
        e0 = float(r0.ems.loc[e].to_numpy() @ comp)
        if not e0 > 0:
            raise DesignError("the error stratum %r of %r has expected mean square 0 under the components; give a "
                              "positive components['Residual']." % (e, term))
        ss = 0.5 * (rp.table.loc[src, "SS"] + rm.table.loc[src, "SS"]) - r0.table.loc[src, "SS"]
        scale = max(1.0, rp.table.loc[src, "SS"], rm.table.loc[src, "SS"])
        ss = max(float(ss), 0.0) if ss > -1e-10 * scale else float(ss)
        df1, df2 = int(tab.loc[src, "df"]), int(tab.loc[e, "df"])
        ncp = ss / e0
        out[term] = {"power": noncentral_f_power(ncp, df1, df2, alpha), "num_df": df1, "den_df": df2,
                     "ncp": ncp, "error": e}
    return out


def _pvalues_mixed(fit, ddf: str) -> dict:
    tab = fit.anova(ddf=ddf)
    return {term_key(t): float(p) for t, p in tab["p"].items()}


def _pvalues_classical(res) -> dict:
    return {term_key(t): float(p) for t, p in res.table["p"].items() if t != "Residual"}


def simulated_power(design, plan: pd.DataFrame, mu: np.ndarray, noise: NoiseModel, terms, alpha: float,
                    nsim: int, ddf: str, rng: np.random.Generator, progress: bool | None = None) -> dict:
    """Power of the F tests of ``terms`` by simulation on ``plan`` and refitting.

    The first data set is fitted with ``design.lmm`` (REML), the others with
    :meth:`~vcomp.MixedModel.refit` (a refit whose test gives no p-value is
    fitted afresh); each term's F test (``ddf``) counts as a rejection when its
    p-value is below ``alpha``.  A design without random
    terms is analysed with its classical F tests.

    Parameters
    ----------
    design : Design
    plan : DataFrame
    mu : ndarray
        Expected values of the plots.
    noise : NoiseModel
        The random part.
    terms : list of str
        Fixed terms to count.
    alpha : float
    nsim : int
        Number of simulated data sets.
    ddf : {"kenward-roger", "satterthwaite"}
    rng : numpy Generator
    progress : bool or None
        A tqdm progress bar: ``None`` shows it on a terminal only.

    Returns
    -------
    dict
        ``{term: {"power", "nsim", "mc_se", "failed"}}`` (``failed``: data
        sets whose test gave no p-value; they count as not rejected).
    """
    from tqdm.auto import tqdm

    response = _response_name(plan)
    data = plan.drop(columns=["plot"]).copy()
    hits = {term_key(t): 0 for t in terms}
    failed = {k: 0 for k in hits}
    fit = None
    # many small fits: BLAS threads only add overhead (and contend with other processes)
    # boundary fits are common in simulations: their warnings (and KR's 0/0 at a zero component) are expected
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"), \
            np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", VcompWarning)
        warnings.filterwarnings("ignore", message="fixed-effect model matrix is rank deficient")
        with tqdm(total=nsim, desc="power by simulation", unit="fit", file=sys.stderr,
                  disable=None if progress is None else not progress) as bar:
            for _ in range(nsim):
                y = mu + noise.draw(rng)
                if not design.random_terms:
                    data[response] = y
                    p = _pvalues_classical(design.anova(data, response, ss_type=3))
                else:
                    if fit is None:
                        data[response] = y
                        fit = design.lmm(data, response)
                        p = _pvalues_mixed(fit, ddf)
                    else:
                        p = _pvalues_mixed(fit.refit(y), ddf)
                        if not all(np.isfinite(p.get(k, math.nan)) for k in hits):
                            # a warm-started optimum can sit where KR's df is degenerate (m = 2): fit afresh
                            data[response] = y
                            p = _pvalues_mixed(design.lmm(data, response), ddf)
                for k in hits:
                    pk = p.get(k, math.nan)
                    if not np.isfinite(pk):
                        failed[k] += 1
                    elif pk < alpha:
                        hits[k] += 1
                bar.update()
    out = {}
    for t in terms:
        k = term_key(t)
        pw = hits[k] / nsim
        out[t] = {"power": pw, "nsim": nsim, "mc_se": math.sqrt(pw * (1 - pw) / nsim), "failed": failed[k]}
    return out


def _plan_from(design, plan, levels, reps: int, rng) -> tuple[pd.DataFrame, bool]:
    """The plan to compute on and whether it is balanced (a complete plan of the design)."""
    if plan is None:
        return field_plan(design, levels, seed=rng, reps=reps), True
    if not isinstance(plan, pd.DataFrame):
        raise DesignError("plan must be a DataFrame (e.g. from design.layout(...)), got %r" % type(plan).__name__)
    miss = [f for f in design.factors if f not in plan.columns]
    if miss:
        raise DesignError("plan lacks the design's factor column(s) %s" % ", ".join(map(repr, miss)))
    if plan[design.factors].isna().any().any():
        raise DesignError("plan has missing factor labels; drop those plots first.")
    got = plan[design.factors].astype(str).reset_index(drop=True)
    got.insert(0, "plot", np.arange(1, len(got) + 1))
    levels = {f: sorted(got[f].unique()) for f in design.factors}
    try:
        full = field_plan(design, {f: level_labels(f, v) for f, v in levels.items()}, seed=0)
    except DesignError:
        return got, False
    # balanced: for every term and pair of terms, each combination of their factors that a complete plan
    # holds occurs, and equally often (a Latin square: any square; a split-plot: no lost plot)
    keys = list(dict.fromkeys(frozenset(split_term(t)) for t in design.terms))
    unions = {a | b for a in keys for b in keys}
    balanced = True
    for u in unions:
        cols = [f for f in design.factors if f in u]
        counts = got.groupby(cols).size()
        if counts.nunique() != 1 or len(counts) != full.groupby(cols).ngroups:
            balanced = False
            break
    return got, balanced


def power(design, levels, effects, components: Mapping[str, float], alpha: float = 0.05, nsim: int | None = None,
          ddf: str = "kenward-roger", seed=None, progress: bool | None = None, reps: int = 1,
          plan: pd.DataFrame | None = None) -> pd.DataFrame:
    """Power of the F test of every fixed term of ``design`` (API.md, "Field layouts and power").

    Parameters
    ----------
    design : Design
    levels : mapping
        ``{factor: number of levels or list of labels}`` for every factor
        (ignored when ``plan`` is given).
    effects : mapping
        ``{fixed term: {level key: effect}}`` (or one value per level
        combination in sorted key order); see shared/notes/power-and-layout.md.
    components : mapping
        ``{random term: variance, "Residual": variance}``; ``"Residual"`` is required.
    alpha : float
        Level of the tests.
    nsim : int, optional
        Simulate this many data sets (method ``"simulation"``) instead of the
        exact computation.  Without it the power is exact where the plan is
        balanced and the term has an exact F test, and simulated otherwise
        (:data:`DEFAULT_NSIM` data sets).
    ddf : {"kenward-roger", "satterthwaite"}
        Denominator df of the simulated REML tests (the exact power does not
        depend on it: in a balanced design these tests are the exact F tests).
    seed : int, numpy Generator or None
        Seeds the plan and the simulation; the same seed gives the same result.
    progress : bool or None
        Progress bar while simulating: ``None`` (default) on a terminal only,
        ``True`` always, ``False`` never.
    reps : int
        Plots (CRD, RCBD) or sub-samples (other designs) per cell of the plan.
    plan : DataFrame, optional
        A field plan to use instead of ``design.layout(levels, reps=reps)``
        (e.g. with lost plots removed); an incomplete plan is simulated.

    Returns
    -------
    DataFrame
        index = the fixed terms; columns ``power``, ``method`` (``"exact"`` or
        ``"simulation"``), ``num_df``, ``den_df``, ``ncp`` and ``error`` (the
        exact test's error stratum), ``nsim`` and ``mc_se`` (the Monte Carlo
        standard error) of simulated rows; NaN where not applicable.

    Examples
    --------
    >>> import vcomp
    >>> d = vcomp.RCBD(treatment="trt", block="block")
    >>> pw = d.power({"trt": 4, "block": 5}, {"trt": {"trt2": 1, "trt3": 1.5, "trt4": 0.5}},
    ...              {"block": 2, "Residual": 1.5})
    >>> round(float(pw.loc["trt", "power"]), 4)
    0.2787
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise DesignError("alpha must be a number in (0, 1), got %r" % (alpha,))
    if nsim is not None and (isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1):
        raise DesignError("nsim must be a positive integer (data sets to simulate) or None, got %r" % (nsim,))
    if not isinstance(components, Mapping) or "Residual" not in components:
        raise DesignError("components must be a dict with the residual variance as components['Residual'] "
                          "(and the random terms' variances: %s)" % (", ".join(design.random_terms) or "none"))
    if progress is not None and not isinstance(progress, bool):
        raise DesignError("progress must be True, False or None, got %r" % (progress,))
    ddf = normalize_ddf(ddf)
    rng = random_generator(seed)
    the_plan, balanced = _plan_from(design, plan, levels, reps, rng)
    mu = expected_values(design, the_plan, effects)
    noise = NoiseModel(design, the_plan, components, residual=None)
    terms = [t for t in design.terms if t in design.fixed_terms]
    rows = {t: dict.fromkeys(_COLUMNS, np.nan) for t in terms}
    if not terms:
        return pd.DataFrame(columns=_COLUMNS, index=pd.Index([], name="term"))
    exact = {}
    if nsim is None and balanced:
        with threadpool_limits(limits=1, user_api="blas"):  # three small analyses: threads only add overhead
            exact = exact_power(design, the_plan, mu, components, alpha)
    for t, r in exact.items():
        rows[t].update(r, method="exact")
    rest = [t for t in terms if t not in exact]
    if rest:
        sim = simulated_power(design, the_plan, mu, noise, rest, float(alpha), int(nsim or DEFAULT_NSIM), ddf,
                              rng, progress)
        for t in rest:
            rows[t].update(power=sim[t]["power"], nsim=sim[t]["nsim"], mc_se=sim[t]["mc_se"], method="simulation")
            if sim[t]["failed"]:
                warnings.warn("%d of %d simulated fits gave no p-value for %r (counted as not rejected)"
                              % (sim[t]["failed"], sim[t]["nsim"], t), VcompWarning, stacklevel=3)
    out = pd.DataFrame([rows[t] for t in terms], index=pd.Index(terms, name="term"), columns=_COLUMNS)
    out["error"] = out["error"].where(out["error"].notna(), "")
    return out
