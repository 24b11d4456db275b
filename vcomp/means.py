"""Estimated (least-squares) means, pairwise differences, letters, SEDs and LSDs.

:class:`Means` is the result of ``MixedModel.means`` and ``AnovaResult.means``. Its means
are ``L @ beta`` with ``L`` the equal-weight average of the model-matrix rows of the
reference grid (:mod:`vcomp.refgrid`, :func:`vcomp.hypotheses.means_matrix`); pairs are
``D @ L`` (:func:`vcomp.hypotheses.pairs_matrix`). A model supplies the rows of the grid
and the estimate, SE and df of any ``L`` (for mixed models the one inference kernel,
:func:`vcomp.inference.kernel.contrast_rows`; for the classical analysis
:mod:`vcomp.classical.lsmeans`). Adjustments follow emmeans 1.8 (:mod:`vcomp.multiplicity`),
letters multcomp's insert-absorb (:mod:`vcomp.letters`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .terms import split_term
from ._errors import VcompError, VcompWarning
from .hypotheses import pairs_matrix
from .letters import compact_letters
from .multiplicity import adjust_p, check_adjust, critical_values, t_upper, zapsmall
from .refgrid import reference_grid, term_means
from .tables import TableMixin

__all__ = ["Means", "GridSpec", "estimated_means", "mixed_means", "mixed_grid_spec", "mixed_grid_rows"]

#: emmeans' estimability tolerance (``estble.tol``): squared non-estimable part / squared row
ESTIMABLE_TOL = 1e-8


@dataclass
class GridSpec:
    """What a model tells the reference grid.

    Attributes
    ----------
    levels : dict
        factor -> level labels, in level order.
    codes : dict
        factor -> level codes of the observations used in the fit.
    covariates : dict
        covariate -> values of those observations.
    coef_names : list of str
        Names of the coefficients (columns of ``L``).
    weights : ndarray, optional
        Observations each row stands for (reduced out-of-core data), else None.
    variables : dict
        Grid column -> the model variable it codes (for rows built from codes).
    """

    levels: dict
    codes: dict
    covariates: dict
    coef_names: list
    weights: np.ndarray | None = None
    variables: dict = field(default_factory=dict)


def _as_factors(spec: GridSpec, term, what: str, allowed: Sequence[str] | None = None) -> list[str]:
    facs = split_term(term) if isinstance(term, str) else [str(t) for t in term]
    if not facs:
        raise VcompError("%s must name at least one factor, e.g. 'variety' or 'variety:nitro'" % what)
    pool = list(spec.levels) if allowed is None else list(allowed)
    for f in facs:
        if f in spec.covariates:
            raise VcompError("%s %r names the covariate %r: means are for factors (covariates are held at "
                             "their mean); choose among the factors %s" % (what, term, f, ", ".join(pool)))
        if f not in pool:
            raise VcompError("%s %r: %r is not a factor of the fixed part of the model; choose among %s"
                             % (what, term, f, ", ".join(pool) or "(none)"))
    if len(set(facs)) < len(facs):
        raise VcompError("%s %r repeats a factor" % (what, term))
    return facs


def estimated_means(spec: GridSpec, rows_fn: Callable, stats_fn: Callable, term, by=None, level: float = 0.95,
                    allowed: Sequence[str] | None = None, method: str = "", response: str = "",
                    non_estimable_hint: str = "") -> "Means":
    """The :class:`Means` of ``term`` for a model described by ``spec``, ``rows_fn`` and ``stats_fn``.

    Parameters
    ----------
    spec : GridSpec
    rows_fn : callable
        ``rows_fn(grid) -> (rows, check)``: model-matrix rows of the grid points (codes in a
        DataFrame from :func:`vcomp.refgrid.reference_grid`) and, for estimability, their
        components in the non-estimable directions (``None`` when every row is estimable).
    stats_fn : callable
        ``stats_fn(L) -> {"estimate", "se", "df"}`` for estimable rows ``L``.
    term, by, level
        As :meth:`vcomp.MixedModel.means`.
    allowed : list of str, optional
        Factors a term may use (default: every factor of the grid).
    method, response : str
        Labels for printing.
    non_estimable_hint : str
        Appended to the warning given when some means are not estimable.
    """
    facs = _as_factors(spec, term, "term", allowed)
    if by is None:
        byf: list[str] = []
    else:
        byf = _as_factors(spec, by, "by")
        out = [b for b in byf if b not in facs]
        if out:
            raise VcompError("by=%r: %s not a factor of the term %r; by must be among %s"
                             % (by, ", ".join(map(repr, out)), ":".join(facs), ", ".join(facs)))
        if len(byf) == len(facs):
            raise VcompError("by=%r leaves no factor of %r to compare; give a by= that is part of the term"
                             % (by, ":".join(facs)))
    if not 0.0 < float(level) < 1.0:
        raise VcompError("level must lie strictly between 0 and 1 (e.g. 0.95), not %r" % (level,))
    nlev = {f: len(v) for f, v in spec.levels.items()}
    grid = reference_grid(spec.codes, nlev, spec.covariates, spec.weights)
    rows, check = rows_fn(grid)
    combos, L = term_means(grid, rows, facs)
    estimable = np.ones(len(combos), dtype=bool)
    if check is not None and np.size(check):
        _, C = term_means(grid, check, facs)
        estimable = np.sum(C * C, axis=1) <= ESTIMABLE_TOL * np.maximum(np.sum(L * L, axis=1), 1e-300)
    labels = pd.DataFrame({f: [spec.levels[f][int(c)] for c in combos[f]] for f in facs})
    if not estimable.all():
        warnings.warn("%d of the %d means of %s are not estimable (they average over empty cells of the model) and "
                      "are NaN%s" % (int((~estimable).sum()), len(estimable), ":".join(facs), non_estimable_hint),
                      VcompWarning, stacklevel=4)
    return Means(labels=labels, L=L, estimable=estimable, stats_fn=stats_fn, by=byf, level=float(level),
                 coef_names=list(spec.coef_names), method=method, response=response)


class Means(TableMixin):
    """Estimated marginal (least-squares) means of a term, with comparisons.

    Attributes
    ----------
    table : DataFrame
        index = the term's levels (a MultiIndex named by the factors for an interaction);
        columns ``mean, se, df, lower, upper``.
    term : str
        The factors of the term joined by ``":"``.
    factors, by : list of str
    level : float
        Confidence level of ``table``'s intervals (and the default of :meth:`pairs`).
    L : DataFrame
        The linear combinations of the coefficients that give the means (index like ``table``).
    method : str
        How SEs and df were obtained.
    """

    def __init__(self, *, labels: pd.DataFrame, L: np.ndarray, estimable: np.ndarray, stats_fn: Callable,
                 by: list, level: float, coef_names: list, method: str = "", response: str = ""):
        self.factors: list[str] = list(labels.columns)
        self.term: str = ":".join(self.factors)
        self.by: list[str] = list(by)
        self.level: float = level
        self.method: str = method
        self.response: str = response
        self._labels = labels.reset_index(drop=True)
        self._stats_fn = stats_fn
        self._estimable = np.asarray(estimable, dtype=bool)
        self._Lm = np.asarray(L, dtype=float)
        if len(self.factors) == 1:
            self._index = pd.Index(self._labels[self.factors[0]].tolist(), name=self.factors[0])
        else:
            self._index = pd.MultiIndex.from_frame(self._labels)
        self.L: pd.DataFrame = pd.DataFrame(self._Lm, index=self._index, columns=coef_names)
        est, se, df = self._stats(self._Lm, self._estimable)
        crit = t_upper((1.0 - level) / 2.0, df)
        self.table: pd.DataFrame = pd.DataFrame({"mean": est, "se": se, "df": df, "lower": est - crit * se,
                                                 "upper": est + crit * se}, index=self._index)
        # slices: the by level combination of each mean, in order of appearance
        if self.by:
            key = self._labels[self.by].astype(str).agg("\x1f".join, axis=1)
            self._slice = pd.factorize(key)[0]
        else:
            self._slice = np.zeros(len(self._labels), dtype=np.int64)
        self._cache: dict = {}

    # ------------------------------------------------------------------ numbers
    def _stats(self, L: np.ndarray, ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = L.shape[0]
        ok = np.ones(m, dtype=bool) if ok is None else ok
        est, se, df = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
        if ok.any():
            r = self._stats_fn(L[ok])
            est[ok], se[ok], df[ok] = r["estimate"], r["se"], r["df"]
        return est, se, df

    def _pair_base(self) -> dict:
        """Every pair within each slice: indices, estimates, SEs, df, t, and per-slice ranks."""
        if "pairs" in self._cache:
            return self._cache["pairs"]
        first, second, D = pairs_matrix(self._slice)
        Lp = D @ self._Lm
        ok = self._estimable[first] & self._estimable[second]
        est, se, df = self._stats(Lp, ok)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = est / se
        sl = self._slice[first]
        ranks = {}
        for s in np.unique(sl):
            rows = Lp[(sl == s) & ok]
            if rows.size:
                z = zapsmall(rows)
                sv = np.linalg.svd(z, compute_uv=False)
                ranks[s] = int(np.sum(sv > 1e-7 * sv[0])) if sv[0] > 0 else 0
            else:
                ranks[s] = 0
        base = {"first": first, "second": second, "L": Lp, "ok": ok, "estimate": est, "se": se, "df": df,
                "t": t, "slice": sl, "rank": ranks}
        self._cache["pairs"] = base
        return base

    def _adjusted(self, adjust: str, level: float) -> tuple[np.ndarray, np.ndarray]:
        key = ("adj", adjust, level)
        if key in self._cache:
            return self._cache[key]
        b = self._pair_base()
        p = np.full(len(b["t"]), np.nan)
        cv = np.full(len(b["t"]), np.nan)
        for s in np.unique(b["slice"]):
            rows = np.flatnonzero(b["slice"] == s)
            nmeans = int(np.sum(self._slice == s))
            p[rows] = adjust_p(b["t"][rows], b["df"][rows], adjust, nmeans, b["rank"][s])
            cv[rows] = critical_values(level, b["df"][rows], adjust, nmeans, b["rank"][s])
        self._cache[key] = (p, cv)
        return p, cv

    def _label(self, i: int, drop_by: bool):
        facs = [f for f in self.factors if not (drop_by and f in self.by)]
        vals = tuple(self._labels.loc[i, f] for f in facs)
        return vals[0] if len(vals) == 1 else vals

    def pairs(self, adjust: str = "none", level: float | None = None) -> pd.DataFrame:
        """All pairwise differences of the means (within each ``by`` slice).

        Parameters
        ----------
        adjust : {"none", "tukey", "bonferroni", "holm", "sidak", "scheffe"}
            Multiplicity adjustment of the p values and intervals, per slice (as emmeans'
            ``pairs(..., adjust=)`` and its ``confint``; Holm's intervals are Bonferroni's).
        level : float, optional
            Confidence level (default: the level of the means).

        Returns
        -------
        DataFrame
            Columns ``level1, level2`` (labels; tuples for interactions, without the ``by``
            factors when there is a ``by``), the ``by`` factors, then ``estimate`` (mean1 - mean2),
            ``se, df, t, p, lower, upper``.
        """
        adjust = check_adjust(adjust)
        level = self.level if level is None else float(level)
        if not 0.0 < level < 1.0:
            raise VcompError("level must lie strictly between 0 and 1 (e.g. 0.95), not %r" % (level,))
        b = self._pair_base()
        p, cv = self._adjusted(adjust, level)
        drop = bool(self.by)
        out = {"level1": [self._label(i, drop) for i in b["first"]],
               "level2": [self._label(i, drop) for i in b["second"]]}
        for f in self.by:
            out[f] = self._labels[f].to_numpy()[b["first"]]
        out.update({"estimate": b["estimate"], "se": b["se"], "df": b["df"], "t": b["t"], "p": p,
                    "lower": b["estimate"] - cv * b["se"], "upper": b["estimate"] + cv * b["se"]})
        return pd.DataFrame(out)

    def letters(self, adjust: str = "tukey", alpha: float = 0.05) -> pd.Series:
        """Compact letter display: two means share a letter when their difference is not significant.

        Parameters
        ----------
        adjust : str
            Adjustment of the pairwise p values (default Tukey), see :meth:`pairs`.
        alpha : float
            Significance level.

        Returns
        -------
        Series
            Indexed like ``table``; within each ``by`` slice, ``"a"`` marks the group of the
            largest mean (multcomp's insert-absorb algorithm). Non-estimable means get ``""``.
        """
        adjust = check_adjust(adjust)
        if not 0.0 < float(alpha) < 1.0:
            raise VcompError("alpha must lie strictly between 0 and 1 (e.g. 0.05), not %r" % (alpha,))
        b = self._pair_base()
        if adjust == "tukey":
            # significant exactly when |t| exceeds the Tukey critical value: no p values needed
            p = np.full(len(b["t"]), np.nan)
            for s in np.unique(b["slice"]):
                rows = np.flatnonzero(b["slice"] == s)
                cv = critical_values(1.0 - float(alpha), zapsmall(np.where(np.isnan(b["df"][rows]), np.inf,
                                                                            b["df"][rows])),
                                     "tukey", int(np.sum(self._slice == s)), b["rank"][s])
                with np.errstate(invalid="ignore"):
                    p[rows] = np.where(np.isfinite(b["t"][rows]) & np.isfinite(cv),
                                       np.where(np.abs(b["t"][rows]) > cv, 0.0, 1.0), np.nan)
        else:
            p, _ = self._adjusted(adjust, self.level)
        est = self.table["mean"].to_numpy()
        out = np.array([""] * len(est), dtype=object)
        for s in np.unique(self._slice):
            idx = np.flatnonzero((self._slice == s) & self._estimable & np.isfinite(est))
            pos = {int(i): k for k, i in enumerate(idx)}
            rows = np.flatnonzero(b["slice"] == s)
            sig = [(pos[int(b["first"][r])], pos[int(b["second"][r])]) for r in rows
                   if np.isfinite(p[r]) and p[r] < alpha and int(b["first"][r]) in pos and int(b["second"][r]) in pos]
            for i, lab in zip(idx, compact_letters(est[idx], sig)):
                out[i] = lab
        return pd.Series(out, index=self._index, name="letters")

    def _kinds(self) -> np.ndarray:
        b = self._pair_base()
        f1 = self._labels.iloc[b["first"]].reset_index(drop=True)
        f2 = self._labels.iloc[b["second"]].reset_index(drop=True)
        diff = np.column_stack([(f1[f] != f2[f]).to_numpy() for f in self.factors])
        return np.array([":".join(f for f, d in zip(self.factors, row) if d) for row in diff], dtype=object)

    def _kind_order(self, kinds: np.ndarray) -> list[str]:
        return sorted(set(kinds), key=lambda k: (len(k.split(":")), [self.factors.index(f) for f in k.split(":")]))

    @property
    def sed(self) -> pd.DataFrame:
        """Standard errors of differences, one row per kind of comparison.

        Index: the factors that differ between the two means compared (joined with ``":"``);
        columns ``min, mean, max`` of the SEs over those pairs, ``df`` (the smallest df among
        them) and ``n`` (number of pairs). In a balanced split-plot the ``whole:sub`` means give the
        textbook's three SEDs.
        """
        b = self._pair_base()
        kinds = self._kinds()
        rows = []
        for k in self._kind_order(kinds):
            sel = (kinds == k) & b["ok"]
            se, df = b["se"][sel], b["df"][sel]
            rows.append([np.min(se), np.mean(se), np.max(se), np.min(df), int(sel.sum())] if sel.any()
                        else [np.nan, np.nan, np.nan, np.nan, 0])
        return pd.DataFrame(rows, index=pd.Index(self._kind_order(kinds), name="comparison"),
                            columns=["min", "mean", "max", "df", "n"])

    def lsd(self, alpha: float = 0.05) -> pd.DataFrame:
        """Least significant differences ``t(1 - alpha/2, df) x SE`` (each pair its own df).

        Returns
        -------
        DataFrame
            Indexed like :attr:`sed`; columns ``min, mean, max`` over the pairs of each kind.
        """
        if not 0.0 < float(alpha) < 1.0:
            raise VcompError("alpha must lie strictly between 0 and 1 (e.g. 0.05), not %r" % (alpha,))
        b = self._pair_base()
        kinds = self._kinds()
        with np.errstate(invalid="ignore"):
            lsd = t_upper(alpha / 2.0, b["df"]) * b["se"]
        rows = []
        for k in self._kind_order(kinds):
            v = lsd[(kinds == k) & b["ok"]]
            rows.append([np.min(v), np.mean(v), np.max(v)] if v.size else [np.nan] * 3)
        return pd.DataFrame(rows, index=pd.Index(self._kind_order(kinds), name="comparison"),
                            columns=["min", "mean", "max"])

    def plot(self, ax=None, letters: bool = True, title: str | None = None):
        """Means with their confidence intervals and letters (needs matplotlib); see :func:`vcomp.plot.means`."""
        from .plot import means as plot_means
        return plot_means(self, ax=ax, letters=letters, title=title)

    # ------------------------------------------------------------------ printing
    def _blocks(self) -> list:
        head = "Estimated means of %s%s" % (self.response + " by " if self.response else "", self.term)
        if self.method:
            head += " (%s)" % self.method
        tab = self.table.copy()
        tab["group"] = self.letters() if len(tab) > 1 else ""
        blocks: list = [(head, tab, {"formats": {"group": "text"}})]  # one index column per factor
        if len(tab) > 1:
            slices = (" within each level of %s" % ":".join(self.by)) if self.by else ""
            blocks.append("Letters: means sharing a letter do not differ at the 5%% level (Tukey%s); "
                          "\"a\" marks the largest." % slices)
            sed, lsd = self.sed, self.lsd(0.05)
            if len(sed):
                both = pd.DataFrame({"SED": sed["mean"], "df": sed["df"], "LSD 5%": lsd["mean"]}, index=sed.index)
                if np.any(sed["max"] - sed["min"] > 1e-9 * np.maximum(sed["max"], 1e-300)):
                    both.insert(1, "SED min", sed["min"])
                    both.insert(2, "SED max", sed["max"])
                    both["LSD min"], both["LSD max"] = lsd["min"], lsd["max"]
                blocks.append(("Standard errors of differences (SED) and least significant differences (LSD), "
                               "by the factors that differ between the means compared", both,
                               {"index_name": "comparison"}))
        if not self._estimable.all():
            blocks.append("%d mean(s) are not estimable (empty cells): shown blank." % int((~self._estimable).sum()))
        return blocks


# ---------------------------------------------------------------------------- mixed models
# The two functions below are the only places that read the mixed model's internals for the
# reference grid: ``model._fixed`` (the FixedCoding: specs, terms, build_frame, dropped columns),
# ``model._mf`` (the coded ModelFrame) and ``model._frame`` (the analysed raw columns).

def mixed_grid_spec(model) -> GridSpec:
    """Factors (levels, codes) and covariates of the fixed part of a fitted mixed model, by data column.

    A factor is named by its data column (``dose`` for ``C(dose)``), with the coding layer's levels;
    every other column of the fixed part is a covariate, held at the mean of its raw values (so a
    transformed covariate is evaluated at the transform of the mean, as emmeans). A fit from reduced
    (out-of-core) data keeps no raw rows: its covariates are the model's variables (``log(x)``) at their
    weighted mean.
    """
    fixed, mf, frame = model._fixed, model._mf, model._frame
    used = list(fixed.variables())
    reduced = len(frame) == 0 and model.nobs > 0
    levels, codes, covs, names = {}, {}, {}, {}
    for v in used:
        spec = fixed.specs[v]
        if spec.kind != "factor":
            continue
        if len(spec.columns) != 1:
            raise VcompError("the factor %r of the fixed part combines several columns (%s); estimated means "
                             "need factors read from one column each" % (v, ", ".join(spec.columns)))
        col = spec.columns[0]
        levels[col] = list(spec.labels)
        codes[col] = np.asarray(mf.values[v], dtype=np.int64)
        names[col] = v
    for v in used:
        spec = fixed.specs[v]
        if spec.kind == "factor":
            continue
        if reduced:
            covs[v] = np.asarray(mf.values[v], dtype=float)
            names[v] = v
            continue
        for col in spec.columns:
            if col not in levels and col not in covs:
                covs[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
    return GridSpec(levels=levels, codes=codes, covariates=covs, coef_names=[str(c) for c in model.fixef.index],
                    weights=getattr(mf, "weights", None) if reduced else None, variables=names if reduced else {})


def mixed_grid_rows(model, grid: pd.DataFrame, spec: GridSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """Model-matrix rows of the reference grid (the model's own coding), and their non-estimable part.

    Each factor level is represented by a raw value of its column seen with that level, so the rows
    go through the same evaluation as ``model.predict`` (from reduced data: the coded values). With
    aliased (dropped) fixed-effect columns the second result holds the grid rows of the full coding
    projected on its null space.
    """
    from ._coding import FixedCoding

    fixed, frame = model._fixed, model._frame
    full = FixedCoding(fixed.terms, fixed.intercept, fixed.specs, fixed.default_contrast) if fixed.dropped else None
    if spec.variables:  # reduced data: build from codes and variable values
        values = {spec.variables[c]: grid[c].to_numpy() for c in grid.columns}
        rows = fixed.build(values, len(grid))
        grid_full = full.build(values, len(grid)) if full is not None else None
    else:
        data = {}
        for c in grid.columns:
            if c in spec.levels:
                raw = frame[c].to_numpy()
                first = np.full(len(spec.levels[c]), -1, dtype=np.int64)
                cd = spec.codes[c]
                seen = np.unique(cd[cd >= 0], return_index=True)
                first[seen[0]] = np.flatnonzero(cd >= 0)[seen[1]]
                pick = first[grid[c].to_numpy()]
                if (pick < 0).any():
                    raise VcompError("factor %r has a level without observations; it cannot be in a reference grid"
                                     % c)
                data[c] = pd.Series(raw[pick])
            else:
                data[c] = pd.Series(grid[c].to_numpy(dtype=float))
        gframe = pd.DataFrame(data)
        rows = fixed.build_frame(gframe)
        grid_full = full.build_frame(gframe) if full is not None else None
    if full is None:
        return rows, None
    Xf = full.build(model._mf.values, len(next(iter(model._mf.values.values()))))
    wts = getattr(model._mf, "weights", None)
    if wts is not None:
        Xf = Xf * np.sqrt(np.asarray(wts, dtype=float))[:, None]
    sc = np.sqrt(np.maximum(np.sum(Xf * Xf, axis=0), 1e-300))
    _, s, vt = np.linalg.svd(Xf / sc, full_matrices=True)
    rank = int(np.sum(s > 1e-9 * s[0]))
    null = np.linalg.qr((vt[rank:] / sc).T)[0]  # orthonormal basis of the null space of the full X
    return rows, grid_full @ null


def mixed_means(model, term, by=None, ddf: str = "kenward-roger", level: float = 0.95) -> Means:
    """``emmeans(fit, ~ term, lmer.df = ddf)`` for a fitted :class:`~vcomp.MixedModel`.

    Equal weights over the other fixed factors, covariates at their mean (a covariate with two
    distinct values keeps both); SEs from the Kenward-Roger adjusted covariance with pbkrtest's
    df of each linear combination, or the model-based covariance with Satterthwaite's df.
    """
    from .inference.kernel import contrast_rows, normalize_ddf

    method = normalize_ddf(ddf)
    spec = mixed_grid_spec(model)
    label = {"kenward-roger": "Kenward-Roger", "satterthwaite": "Satterthwaite"}[method]
    return estimated_means(spec, lambda grid: mixed_grid_rows(model, grid, spec),
                           lambda L: contrast_rows(model, L, method), term, by=by, level=level,
                           method="REML, %s df" % label if model.reml else "ML, %s df" % label,
                           response=str(getattr(model._mf, "response", "") or ""))
